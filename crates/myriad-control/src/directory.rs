//! The meeting directory: which meetings exist, their settings, whether they ended. One node
//! keeps it in its SQLite database; a cluster keeps it in a KV bucket on the bus, so any node
//! answers for any meeting.

use std::sync::Arc;

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Kv, KvConfig};
use myriad_plan::prewarm::Turnout;
use myriad_proto::{MeetingId, Role};
use myriad_store::{MeetingRecord, Schedule, Store};

use crate::ControlError;

/// The bucket of the shared directory.
const BUCKET: &str = "myriad_meetings";
/// The scheduled meetings that have not ended, by id: what feeds and pre-warming list
/// without reading every meeting.
const SCHEDULE_BUCKET: &str = "myriad_schedule";
/// Who came to each scheduled meeting, by id: what forecasts learn from.
const TURNOUT_BUCKET: &str = "myriad_turnout";
/// Forecasts learn from the latest this many meetings.
const TURNOUT_KEPT: usize = 1000;
/// A record that changed under a writer (another node ended the meeting at once) is read
/// again and written again at most this many times.
const CAS_TRIES: usize = 5;

pub enum Directory {
    /// This node's database.
    Local(Arc<Store>),
    /// Shared by the nodes of a cluster: the meetings, and an index of the scheduled ones.
    Shared {
        meetings: Arc<dyn Kv>,
        schedule: Arc<dyn Kv>,
        turnout: Arc<dyn Kv>,
    },
}

impl Directory {
    /// The cluster's directory, on `bus`.
    pub async fn shared(bus: &dyn Bus) -> Result<Self, BusError> {
        let bucket = |name: &str| KvConfig {
            bucket: name.to_owned(),
            ttl: None,
        };
        Ok(Directory::Shared {
            meetings: bus.kv(bucket(BUCKET)).await?,
            schedule: bus.kv(bucket(SCHEDULE_BUCKET)).await?,
            turnout: bus.kv(bucket(TURNOUT_BUCKET)).await?,
        })
    }

    pub async fn create(&self, record: &MeetingRecord) -> Result<(), ControlError> {
        match self {
            Directory::Local(store) => Ok(store.create_meeting(record)?),
            Directory::Shared {
                meetings, schedule, ..
            } => {
                let value = Bytes::from(serde_json::to_vec(record).map_err(corrupt)?);
                match meetings.create(&record.id, value.clone()).await {
                    Ok(_) => {}
                    Err(BusError::Exists) => return Err(ControlError::Exists),
                    Err(e) => return Err(e.into()),
                }
                if record.settings.schedule.is_some() {
                    schedule.put(&record.id, value).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn get(&self, id: &MeetingId) -> Result<Option<MeetingRecord>, ControlError> {
        match self {
            Directory::Local(store) => Ok(store.meeting(id.as_str())?),
            Directory::Shared { meetings: kv, .. } => match kv.get(id.as_str()).await? {
                Some(entry) => Ok(Some(serde_json::from_slice(&entry.value).map_err(corrupt)?)),
                None => Ok(None),
            },
        }
    }

    /// Marks the meeting ended; false if there is no such meeting.
    pub async fn end(&self, id: &MeetingId, now_unix_s: u64) -> Result<bool, ControlError> {
        match self {
            Directory::Local(store) => Ok(store.end_meeting(id.as_str(), now_unix_s)?),
            Directory::Shared {
                meetings, schedule, ..
            } => {
                let scheduled = std::sync::atomic::AtomicBool::new(false);
                let found = modify(meetings.as_ref(), id, |r| {
                    scheduled.store(
                        r.settings.schedule.is_some(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let unset = r.ended_unix_s.is_none();
                    r.ended_unix_s.get_or_insert(now_unix_s);
                    unset
                })
                .await?;
                if scheduled.load(std::sync::atomic::Ordering::Relaxed) {
                    schedule.delete(id.as_str()).await?;
                }
                Ok(found)
            }
        }
    }

    /// Moves a meeting that has not ended to a new schedule (its event changed); false if
    /// there is no such meeting, or it ended.
    pub async fn set_schedule(
        &self,
        id: &MeetingId,
        schedule: &Schedule,
    ) -> Result<bool, ControlError> {
        match self {
            Directory::Local(store) => {
                let Some(mut record) = store.meeting(id.as_str())? else {
                    return Ok(false);
                };
                if record.ended_unix_s.is_some() {
                    return Ok(false);
                }
                record.settings.schedule = Some(schedule.clone());
                Ok(store.update_settings(id.as_str(), &record.settings)?)
            }
            Directory::Shared {
                meetings,
                schedule: index,
                ..
            } => {
                let ended = std::sync::atomic::AtomicBool::new(false);
                let found = modify(meetings.as_ref(), id, |r| {
                    ended.store(
                        r.ended_unix_s.is_some(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let changed =
                        r.ended_unix_s.is_none() && r.settings.schedule.as_ref() != Some(schedule);
                    if changed {
                        r.settings.schedule = Some(schedule.clone());
                    }
                    changed
                })
                .await?;
                if !found || ended.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(false);
                }
                // The index lists the record as it is now.
                if let Some(record) = self.get(id).await? {
                    let value = Bytes::from(serde_json::to_vec(&record).map_err(corrupt)?);
                    index.put(id.as_str(), value).await?;
                }
                Ok(true)
            }
        }
    }

    /// The role of people who join without one of their own, from now on; false if there is
    /// no such meeting.
    pub async fn set_default_role(&self, id: &MeetingId, role: Role) -> Result<bool, ControlError> {
        match self {
            Directory::Local(store) => {
                let Some(mut record) = store.meeting(id.as_str())? else {
                    return Ok(false);
                };
                record.settings.default_role = role;
                Ok(store.update_settings(id.as_str(), &record.settings)?)
            }
            Directory::Shared { meetings: kv, .. } => {
                modify(kv.as_ref(), id, |r| {
                    std::mem::replace(&mut r.settings.default_role, role) != role
                })
                .await
            }
        }
    }
}

impl Directory {
    /// Scheduled meetings that have not ended, soonest first.
    pub async fn scheduled(&self) -> Result<Vec<MeetingRecord>, ControlError> {
        let mut records = match self {
            Directory::Local(store) => return Ok(store.scheduled_meetings()?),
            Directory::Shared { schedule, .. } => {
                let mut records = Vec::new();
                for key in schedule.keys().await? {
                    // Deleted between the listing and the read: ended meanwhile.
                    if let Some(entry) = schedule.get(&key).await? {
                        let record: MeetingRecord =
                            serde_json::from_slice(&entry.value).map_err(corrupt)?;
                        records.push(record);
                    }
                }
                records
            }
        };
        records.retain(|r| r.ended_unix_s.is_none());
        records.sort_by_key(|r| {
            (
                r.settings.schedule.as_ref().map_or(0, |s| s.starts_unix_s),
                r.id.clone(),
            )
        });
        Ok(records)
    }
}

impl Directory {
    /// Adds what one coordinator saw of a meeting's turnout to what others saw of it.
    pub async fn add_turnout(&self, seen: &Turnout) -> Result<(), ControlError> {
        let merged = |old: Option<&[u8]>| -> Result<Bytes, ControlError> {
            let mut record = seen.clone();
            if let Some(old) = old {
                record = serde_json::from_slice::<Turnout>(old).map_err(corrupt)?;
                record.merge(seen);
            }
            Ok(Bytes::from(serde_json::to_vec(&record).map_err(corrupt)?))
        };
        match self {
            Directory::Local(store) => {
                let old = store.turnout(&seen.meeting)?;
                let value = merged(old.as_deref().map(str::as_bytes))?;
                let text = String::from_utf8_lossy(&value);
                Ok(store.put_turnout(&seen.meeting, seen.starts_unix_s, &text)?)
            }
            Directory::Shared { turnout: kv, .. } => {
                for _ in 0..CAS_TRIES {
                    let written = match kv.get(&seen.meeting).await? {
                        Some(entry) => {
                            let value = merged(Some(&entry.value))?;
                            kv.update(&seen.meeting, value, entry.revision).await
                        }
                        None => kv.create(&seen.meeting, merged(None)?).await,
                    };
                    match written {
                        Ok(_) => return Ok(()),
                        Err(BusError::WrongRevision { .. } | BusError::Exists) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(ControlError::Busy)
            }
        }
    }

    /// The turnout of the latest scheduled meetings, latest start first.
    pub async fn turnouts(&self) -> Result<Vec<Turnout>, ControlError> {
        let parse = |bytes: &[u8]| serde_json::from_slice::<Turnout>(bytes).map_err(corrupt);
        match self {
            Directory::Local(store) => store
                .turnouts(TURNOUT_KEPT as u32)?
                .iter()
                .map(|text| parse(text.as_bytes()))
                .collect(),
            Directory::Shared { turnout: kv, .. } => {
                let mut records = Vec::new();
                for key in kv.keys().await? {
                    if let Some(entry) = kv.get(&key).await? {
                        records.push(parse(&entry.value)?);
                    }
                }
                records.sort_by(|a, b| {
                    (b.starts_unix_s, &a.meeting).cmp(&(a.starts_unix_s, &b.meeting))
                });
                records.truncate(TURNOUT_KEPT);
                Ok(records)
            }
        }
    }
}

/// Changes a shared record by `change` (which says whether it changed anything), written
/// only if nobody wrote it meanwhile (else read and changed again); false if there is no such
/// meeting.
async fn modify(
    kv: &dyn Kv,
    id: &MeetingId,
    change: impl Fn(&mut MeetingRecord) -> bool,
) -> Result<bool, ControlError> {
    for _ in 0..CAS_TRIES {
        let Some(entry) = kv.get(id.as_str()).await? else {
            return Ok(false);
        };
        let mut record: MeetingRecord = serde_json::from_slice(&entry.value).map_err(corrupt)?;
        if !change(&mut record) {
            return Ok(true);
        }
        let value = Bytes::from(serde_json::to_vec(&record).map_err(corrupt)?);
        match kv.update(id.as_str(), value, entry.revision).await {
            Ok(_) => return Ok(true),
            Err(BusError::WrongRevision { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControlError::Busy)
}

fn corrupt(e: serde_json::Error) -> ControlError {
    ControlError::Corrupt(e.to_string())
}
