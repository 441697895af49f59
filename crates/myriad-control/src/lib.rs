//! The control layer: the meeting directory with one coordinator per live meeting, the REST
//! API, and access-token issuing. In `myriad serve` it runs in the same process as the edge.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod api;
mod coordinator;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use myriad_auth::ApiKey;
use myriad_proto::MeetingId;
use myriad_room::MeetingConfig;
use myriad_sfu::SfuHandle;
use myriad_store::{MeetingRecord, MeetingSettings, Store, StoreError};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;

pub use api::router;
pub use coordinator::{
    Connection, CoordinatorError, Joined, MeetingHandle, SessionMsg, SESSION_QUEUE_LEN,
};

#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Dev mode: the web page may get tokens for typed names and create meetings without
    /// the API key. Only for a server on loopback.
    pub dev_mode: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("no such meeting")]
    NotFound,
    #[error("the meeting has ended")]
    Ended,
    #[error("a meeting with that id exists already")]
    Exists,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::MeetingExists(_) => ControlError::Exists,
            e => ControlError::Store(e),
        }
    }
}

pub struct Control {
    store: Arc<Store>,
    api_key: ApiKey,
    sfu: SfuHandle,
    config: ControlConfig,
    live: Mutex<HashMap<MeetingId, MeetingHandle>>,
}

pub fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new API key and secret.
pub fn generate_api_key() -> (String, String) {
    let mut rng = rand::rng();
    (
        format!("MK{}", Alphanumeric.sample_string(&mut rng, 12)),
        Alphanumeric.sample_string(&mut rng, 40),
    )
}

/// A random secret for resuming sessions.
pub fn generate_session_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// A meeting id people can read out: `abc-defg-hij`.
fn generate_meeting_id() -> MeetingId {
    let mut rng = rand::rng();
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };
    let id = format!("{}-{}-{}", part(3), part(4), part(3));
    MeetingId::parse(&id).expect("generated ids are valid")
}

impl Control {
    pub fn new(
        store: Arc<Store>,
        api_key: ApiKey,
        sfu: SfuHandle,
        config: ControlConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            api_key,
            sfu,
            config,
            live: Mutex::new(HashMap::new()),
        })
    }

    pub fn api_key(&self) -> &ApiKey {
        &self.api_key
    }

    pub fn dev_mode(&self) -> bool {
        self.config.dev_mode
    }

    pub fn sfu(&self) -> &SfuHandle {
        &self.sfu
    }

    pub fn create_meeting(
        &self,
        id: Option<MeetingId>,
        title: String,
        settings: MeetingSettings,
    ) -> Result<MeetingRecord, ControlError> {
        let record = MeetingRecord {
            id: id.unwrap_or_else(generate_meeting_id).to_string(),
            title,
            created_unix_s: now_unix_s(),
            ended_unix_s: None,
            settings,
        };
        self.store.create_meeting(&record)?;
        tracing::info!(meeting = %record.id, "meeting created");
        Ok(record)
    }

    pub fn meeting_record(&self, id: &MeetingId) -> Result<MeetingRecord, ControlError> {
        self.store
            .meeting(id.as_str())?
            .ok_or(ControlError::NotFound)
    }

    /// The live coordinator of a meeting, started on first use.
    pub fn meeting(&self, id: &MeetingId) -> Result<MeetingHandle, ControlError> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = live.get(id).filter(|h| h.is_running()) {
            return Ok(h.clone());
        }
        let record = self.meeting_record(id)?;
        if record.ended_unix_s.is_some() {
            return Err(ControlError::Ended);
        }
        let s = &record.settings;
        let config = MeetingConfig {
            max_participants: s.max_participants,
            roster_broadcast_max: s.roster_broadcast_max,
            last_n_video: s.last_n_video as usize,
            ..MeetingConfig::default()
        };
        let handle = coordinator::spawn(id.clone(), config, self.sfu.clone());
        live.insert(id.clone(), handle.clone());
        Ok(handle)
    }

    /// The coordinator of a meeting only if it is running now.
    pub fn live_meeting(&self, id: &MeetingId) -> Option<MeetingHandle> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).filter(|h| h.is_running()).cloned()
    }

    pub async fn end_meeting(&self, id: &MeetingId) -> Result<(), ControlError> {
        if !self.store.end_meeting(id.as_str(), now_unix_s())? {
            return Err(ControlError::NotFound);
        }
        let handle = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(h) = handle {
            h.end().await;
        }
        Ok(())
    }
}
