//! The control layer: the meeting directory (SQLite, or the cluster's KV), the cluster's
//! registry ([`Cluster`]), and the coordinators of the meetings this process holds, which
//! speak to nodes only over the bus and place each meeting's people in partitions; and
//! [`MeetingClient`], how anyone (a node's sessions, the REST API) asks a meeting's
//! coordinator for something.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod client;
mod cluster;
mod coordinator;
mod core;
mod directory;
mod journal;
mod lease;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use myriad_auth::ApiKey;
use myriad_bus::{Bus, BusError};
use myriad_plan::prewarm::Turnout;
pub use myriad_plan::PlannerConfig;
use myriad_proto::meeting::{Actor, MeetingRequest};
use myriad_proto::{MeetingId, Role};
use myriad_room::MeetingConfig;
use myriad_store::{MeetingRecord, MeetingSettings, StoreError};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use tokio::task::JoinHandle;

pub use client::{AskError, Joined, MediaState, MeetingClient};
pub use cluster::{Cluster, HEARTBEAT, SILENT_OUT};
pub use core::{ClusterView, CoordinatorCore, CoreOutput};
pub use directory::Directory;

#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Dev mode: the web page may get tokens for typed names and create meetings without
    /// the API key. Only for a server on loopback.
    pub dev_mode: bool,
    /// This node's name: it holds leases under it.
    pub node: String,
    /// How the meetings coordinated here are partitioned.
    pub partitions: PlannerConfig,
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
    #[error("the bus failed: {0}")]
    Bus(#[from] myriad_bus::BusError),
    #[error("the directory holds an unreadable record: {0}")]
    Corrupt(String),
    #[error("the record kept changing under this write; try again")]
    Busy,
    #[error("another node coordinates the meeting")]
    Held,
    #[error("the meeting's journal failed: {0}")]
    Journal(String),
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
    directory: Arc<Directory>,
    api_key: ApiKey,
    bus: Arc<dyn Bus>,
    cluster: Arc<Cluster>,
    config: ControlConfig,
    /// The coordinators running in this process. Held across a start (which subscribes on
    /// the bus), so two joins at once start one coordinator.
    coordinators: tokio::sync::Mutex<HashMap<MeetingId, JoinHandle<()>>>,
}

pub fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    /// Starts the control layer on `bus`: it hears the cluster's registry from now on.
    pub async fn start(
        directory: Directory,
        api_key: ApiKey,
        bus: Arc<dyn Bus>,
        config: ControlConfig,
    ) -> Result<Arc<Self>, BusError> {
        let cluster = Cluster::watch(bus.as_ref()).await?;
        Ok(Arc::new(Self {
            directory: Arc::new(directory),
            api_key,
            bus,
            cluster,
            config,
            coordinators: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    pub fn api_key(&self) -> &ApiKey {
        &self.api_key
    }

    pub fn dev_mode(&self) -> bool {
        self.config.dev_mode
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// The cluster's nodes, as this process hears them.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub async fn create_meeting(
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
        self.directory.create(&record).await?;
        tracing::info!(meeting = %record.id, "meeting created");
        Ok(record)
    }

    /// Makes breakout room `room` of `parent` (meeting `id`) unless it exists: everyone in
    /// it may talk (panelist by default).
    pub async fn ensure_breakout_room(
        &self,
        parent: &MeetingId,
        room: u32,
        id: &MeetingId,
    ) -> Result<(), ControlError> {
        match self.meeting_record(id).await {
            Ok(r) if r.ended_unix_s.is_none() => return Ok(()),
            Ok(_) => return Err(ControlError::Ended),
            Err(ControlError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let title = match self.meeting_record(parent).await {
            Ok(p) if !p.title.is_empty() => format!("{} · room {room}", p.title),
            _ => format!("Room {room}"),
        };
        let settings = MeetingSettings {
            default_role: myriad_proto::Role::Panelist,
            ..MeetingSettings::default()
        };
        match self.create_meeting(Some(id.clone()), title, settings).await {
            // Another node made it first.
            Ok(_) | Err(ControlError::Exists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves a scheduled meeting to `schedule` (its calendar event changed); false if there
    /// is no such meeting or it ended.
    pub async fn reschedule(
        &self,
        id: &MeetingId,
        schedule: &myriad_store::Schedule,
    ) -> Result<bool, ControlError> {
        self.directory.set_schedule(id, schedule).await
    }

    /// The turnout of the latest scheduled meetings (what forecasts learn from).
    pub async fn turnouts(&self) -> Result<Vec<Turnout>, ControlError> {
        self.directory.turnouts().await
    }

    /// Meetings scheduled ahead that have not ended, soonest first.
    pub async fn scheduled_meetings(&self) -> Result<Vec<MeetingRecord>, ControlError> {
        self.directory.scheduled().await
    }

    pub async fn meeting_record(&self, id: &MeetingId) -> Result<MeetingRecord, ControlError> {
        self.directory.get(id).await?.ok_or(ControlError::NotFound)
    }

    /// A client for the meeting's coordinator (started here when nobody runs it).
    pub fn client(self: &Arc<Self>, id: &MeetingId) -> MeetingClient {
        MeetingClient::new(Arc::clone(self), id.clone())
    }

    /// Starts the meeting's coordinator in this process unless it runs already here;
    /// [`ControlError::Held`] while another node holds the meeting's lease.
    pub async fn ensure_coordinator(&self, id: &MeetingId) -> Result<(), ControlError> {
        let mut running = self.coordinators.lock().await;
        if running.get(id).is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let record = self.meeting_record(id).await?;
        if record.ended_unix_s.is_some() {
            return Err(ControlError::Ended);
        }
        let s = &record.settings;
        let config = MeetingConfig {
            max_participants: s.max_participants,
            roster_broadcast_max: s.roster_broadcast_max,
            last_n_video: s.last_n_video as usize,
            default_role: s.default_role,
            blocked_words: s.blocked_words.clone(),
            ..MeetingConfig::default()
        };
        // A scheduled meeting's turnout is kept for forecasts.
        let turnout = s.schedule.as_ref().map(|sch| {
            let record = Turnout::new(
                id.as_str(),
                sch.host.clone(),
                sch.starts_unix_s,
                sch.audience.clone(),
            );
            (record, Arc::clone(&self.directory))
        });
        let started = coordinator::start(
            Arc::clone(&self.bus),
            Arc::clone(&self.cluster),
            id.clone(),
            config,
            self.config.partitions,
            &self.config.node,
            turnout,
        )
        .await;
        let handle = started.map_err(|e| match e {
            coordinator::StartError::Held => ControlError::Held,
            coordinator::StartError::Ended => ControlError::Ended,
            coordinator::StartError::Bus(e) => ControlError::Bus(e),
            coordinator::StartError::Journal(e) => ControlError::Journal(e.to_string()),
        })?;
        running.insert(id.clone(), handle);
        Ok(())
    }

    /// The coordinators running in this process (the meeting leases it holds).
    pub fn coordinators_running(&self) -> usize {
        match self.coordinators.try_lock() {
            Ok(running) => running.values().filter(|h| !h.is_finished()).count(),
            // A start under way holds the lock: the figure of a moment later will do.
            Err(_) => 0,
        }
    }

    /// Sets the role of people who join `id` without one of their own: the meeting checks
    /// that `actor` may (a host, or the API) and tells everyone, then the directory keeps it
    /// for the tokens made from now on.
    pub async fn set_default_role(
        self: &Arc<Self>,
        id: &MeetingId,
        actor: Actor,
        role: Role,
    ) -> Result<(), AskError> {
        self.client(id)
            .ask_done(MeetingRequest::SetDefaultRole { actor, role })
            .await?;
        if !self.directory.set_default_role(id, role).await? {
            return Err(ControlError::NotFound.into());
        }
        Ok(())
    }

    /// Ends the meeting for everyone and for good.
    pub async fn end_meeting(self: &Arc<Self>, id: &MeetingId) -> Result<(), ControlError> {
        if !self.directory.end(id, now_unix_s()).await? {
            return Err(ControlError::NotFound);
        }
        // Whichever node coordinates it ends it for everyone (none: nobody is in it).
        if let Err(e) = self.client(id).end().await {
            tracing::warn!(meeting = %id, "end not delivered to the coordinator: {e}");
        }
        Ok(())
    }
}
