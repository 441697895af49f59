//! The meeting directory: which meetings exist, their settings, whether they ended. One node
//! keeps it in its SQLite database; a cluster keeps it in a KV bucket on the bus, so any node
//! answers for any meeting.

use std::sync::Arc;

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Kv, KvConfig};
use myriad_proto::MeetingId;
use myriad_store::{MeetingRecord, Store};

use crate::ControlError;

/// The bucket of the shared directory.
const BUCKET: &str = "myriad_meetings";
/// A record that changed under a writer (another node ended the meeting at once) is read
/// again and written again at most this many times.
const CAS_TRIES: usize = 5;

pub enum Directory {
    /// This node's database.
    Local(Arc<Store>),
    /// Shared by the nodes of a cluster.
    Shared(Arc<dyn Kv>),
}

impl Directory {
    /// The cluster's directory, on `bus`.
    pub async fn shared(bus: &dyn Bus) -> Result<Self, BusError> {
        let kv = bus
            .kv(KvConfig {
                bucket: BUCKET.to_owned(),
                ttl: None,
            })
            .await?;
        Ok(Directory::Shared(kv))
    }

    pub async fn create(&self, record: &MeetingRecord) -> Result<(), ControlError> {
        match self {
            Directory::Local(store) => Ok(store.create_meeting(record)?),
            Directory::Shared(kv) => {
                let value = serde_json::to_vec(record).map_err(corrupt)?;
                match kv.create(&record.id, Bytes::from(value)).await {
                    Ok(_) => Ok(()),
                    Err(BusError::Exists) => Err(ControlError::Exists),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    pub async fn get(&self, id: &MeetingId) -> Result<Option<MeetingRecord>, ControlError> {
        match self {
            Directory::Local(store) => Ok(store.meeting(id.as_str())?),
            Directory::Shared(kv) => match kv.get(id.as_str()).await? {
                Some(entry) => Ok(Some(serde_json::from_slice(&entry.value).map_err(corrupt)?)),
                None => Ok(None),
            },
        }
    }

    /// Marks the meeting ended; false if there is no such meeting.
    pub async fn end(&self, id: &MeetingId, now_unix_s: u64) -> Result<bool, ControlError> {
        match self {
            Directory::Local(store) => Ok(store.end_meeting(id.as_str(), now_unix_s)?),
            Directory::Shared(kv) => {
                for _ in 0..CAS_TRIES {
                    let Some(entry) = kv.get(id.as_str()).await? else {
                        return Ok(false);
                    };
                    let mut record: MeetingRecord =
                        serde_json::from_slice(&entry.value).map_err(corrupt)?;
                    if record.ended_unix_s.is_some() {
                        return Ok(true);
                    }
                    record.ended_unix_s = Some(now_unix_s);
                    let value = Bytes::from(serde_json::to_vec(&record).map_err(corrupt)?);
                    match kv.update(id.as_str(), value, entry.revision).await {
                        Ok(_) => return Ok(true),
                        Err(BusError::WrongRevision { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(ControlError::Busy)
            }
        }
    }
}

fn corrupt(e: serde_json::Error) -> ControlError {
    ControlError::Corrupt(e.to_string())
}
