//! A meeting's coordinator: the task that drives one [`CoordinatorCore`] (the meeting and its
//! partitions) and speaks only over the bus — requests from nodes in; the meeting's batches,
//! plan, partitions and session ends out to every node at once. It knows nothing of sockets,
//! media or HTTP: each node fans out to its own connections and drives its own media. It
//! watches the cluster's registry: the people of a node that is gone are disconnected (they
//! may resume elsewhere) and its tracks unpublished.
//!
//! It acts under the meeting's lease, and every commit goes to the meeting's journal before
//! its events go out and before the requests that made it are answered; a coordinator that
//! takes the meeting over rebuilds it from the journal, its sequence going on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Subscription};
use myriad_plan::prewarm::{Turnout, ANY_REGION};
use myriad_plan::PlannerConfig;
use myriad_proto::bus::{decode, encode};
use myriad_proto::meeting::{
    broadcast_subject, levels_subject, rpc_subject, AudioLevels, MeetingBroadcast, MeetingRequest,
};
use myriad_proto::{MeetingId, SeqEvent};
use myriad_room::{Commit, Meeting, MeetingConfig, StopReason};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::core::{ClusterView, CoordinatorCore, CoreOutput};
use crate::directory::Directory;
use crate::journal::{Journal, JournalError};
use crate::lease::{self, Lease, RENEW_EVERY, TERM};

/// How long the coordinator sleeps when the meeting wants no wake-up (it wakes for input).
const NOTHING_DUE: Duration = Duration::from_secs(3600);
/// A commit the journal refuses for a bus failure is tried again this often, this many times.
const APPEND_RETRY: Duration = Duration::from_millis(250);
const APPEND_TRIES: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("another node coordinates the meeting")]
    Held,
    #[error("the meeting has ended")]
    Ended,
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Takes the meeting's lease for `node`, rebuilds the meeting from its journal (or starts it
/// anew), subscribes to its subjects and starts its coordinator. Returns once the bus has the
/// subscriptions, so a request sent next is heard.
pub(crate) async fn start(
    bus: Arc<dyn Bus>,
    cluster: Arc<Cluster>,
    id: MeetingId,
    config: MeetingConfig,
    partitions: PlannerConfig,
    node: &str,
    turnout: Option<(Turnout, Arc<Directory>)>,
) -> Result<JoinHandle<()>, StartError> {
    let leases = lease::bucket(bus.as_ref()).await?;
    let lease = Lease::acquire(leases, &id, node)
        .await?
        .ok_or(StartError::Held)?;
    let (journal, history) = match Journal::open(bus.as_ref(), &id).await {
        Ok(opened) => opened,
        Err(e) => {
            lease.release().await;
            return Err(e.into());
        }
    };
    let now = Instant::now();
    // The last commit's events may not have gone out before the last holder stopped: they go
    // (again) first; nodes drop what they have.
    let replay = (!history.is_empty()).then(|| {
        history
            .commits
            .last()
            .map(|c| c.events.clone())
            .unwrap_or_default()
    });
    let meeting = if history.is_empty() {
        Meeting::new(id.clone(), config, now)
    } else {
        Meeting::restore(id.clone(), config, now, history.state, history.commits)
    };
    if meeting.is_stopped() {
        lease.release().await;
        return Err(StartError::Ended);
    }
    let rpc = bus.subscribe(&rpc_subject(&id)).await?;
    let levels = bus.subscribe(&levels_subject(&id)).await?;
    bus.flush().await?;
    tracing::info!(meeting = %id, epoch = lease.epoch(), took_over = replay.is_some(), "meeting coordinator started");
    let coordinator = Coordinator {
        out: broadcast_subject(&id),
        core: CoordinatorCore::new(meeting, partitions),
        cluster,
        bus,
        journal,
        lease,
        renewed_at: now,
        turnout: turnout.map(|(record, directory)| TurnoutBook {
            record,
            seen: HashSet::new(),
            directory,
        }),
    };
    Ok(tokio::spawn(coordinator.run(rpc, levels, replay)))
}

struct Coordinator {
    bus: Arc<dyn Bus>,
    cluster: Arc<Cluster>,
    core: CoordinatorCore<String>,
    out: String,
    journal: Journal,
    lease: Lease,
    renewed_at: Instant,
    turnout: Option<TurnoutBook>,
}

/// Who came to a scheduled meeting while this coordinator ran it, kept when it stops.
struct TurnoutBook {
    record: Turnout,
    /// Identities seen joining (each person is counted once).
    seen: HashSet<String>,
    directory: Arc<Directory>,
}

/// Why a coordinator stopped acting.
enum Halt {
    /// The meeting ended or went idle: the lease is given up.
    Stopped(StopReason),
    /// Another coordinator has the meeting, or its journal or lease cannot be reached.
    Lost(String),
}

impl Coordinator {
    async fn run(
        mut self,
        mut rpc: Subscription,
        mut levels: Subscription,
        replay: Option<Vec<SeqEvent>>,
    ) {
        let id = self.core.meeting().id().clone();
        if let Some(events) = replay {
            self.core.took_over(self.lease.epoch(), events);
        }
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        let halt = loop {
            let drained = self.drain().await;
            self.note_joins();
            if let Err(halt) = drained {
                break halt;
            }
            let wake = self
                .core
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + NOTHING_DUE);
            tokio::select! {
                _ = renew.tick() => {
                    if let Err(halt) = self.renew().await {
                        break halt;
                    }
                    self.core.drop_lost_nodes(Instant::now(), self.cluster.as_ref());
                }
                msg = rpc.next() => match msg {
                    Some(msg) => {
                        let req = decode::<MeetingRequest>(&msg.payload).map_err(|e| {
                            tracing::warn!(meeting = %id, "request refused: {e}");
                            e.to_string()
                        });
                        self.core.handle_request(Instant::now(), req, msg.reply, self.cluster.as_ref());
                    }
                    None => break Halt::Lost("the request subscription ended".into()),
                },
                Some(msg) = levels.next() => match decode::<AudioLevels>(&msg.payload) {
                    Ok(report) => self.core.handle_levels(Instant::now(), &report.levels),
                    Err(e) => tracing::warn!(meeting = %id, "audio levels ignored: {e}"),
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.core.handle_timeout(Instant::now());
                }
            }
        };
        if let Some(book) = &self.turnout {
            if let Err(e) = book.directory.add_turnout(&book.record).await {
                tracing::warn!(meeting = %id, "turnout not kept: {e}");
            }
        }
        match halt {
            Halt::Stopped(reason) => {
                self.lease.release().await;
                tracing::info!(meeting = %id, ?reason, "meeting coordinator stopped");
            }
            Halt::Lost(why) => {
                tracing::warn!(meeting = %id, "meeting coordinator stopped: {why}");
            }
        }
    }

    /// Counts the people who joined in the meeting's turnout (first joins only).
    fn note_joins(&mut self) {
        let joined = self.core.take_joined();
        let Some(book) = &mut self.turnout else {
            return;
        };
        let now = crate::now_unix_s();
        for (identity, node) in joined {
            if book.seen.insert(identity) {
                let region = self.cluster.node(&node).map(|n| n.region);
                book.record
                    .record_join(region.as_deref().unwrap_or(ANY_REGION), now);
            }
        }
    }

    /// Renews the lease; lost, or not renewed within its term, the coordinator must stop.
    async fn renew(&mut self) -> Result<(), Halt> {
        match self.lease.renew().await {
            Ok(()) => {
                self.renewed_at = Instant::now();
                Ok(())
            }
            Err(BusError::WrongRevision { .. }) | Err(BusError::Exists) => {
                Err(Halt::Lost("the lease went to another node".into()))
            }
            Err(e) if self.renewed_at.elapsed() >= TERM => Err(Halt::Lost(format!(
                "the lease could not be renewed within its term: {e}"
            ))),
            Err(e) => {
                tracing::warn!(meeting = %self.core.meeting().id(), "lease not renewed (will retry): {e}");
                Ok(())
            }
        }
    }

    /// Does what the core asks, in order: each commit kept in the journal before what
    /// follows goes out; broadcasts to every node; answers.
    async fn drain(&mut self) -> Result<(), Halt> {
        while let Some(out) = self.core.poll_output() {
            match out {
                CoreOutput::Append(commit) => self.commit(&commit).await?,
                CoreOutput::Broadcast(mut broadcast) => {
                    if let MeetingBroadcast::Events { sent_unix_ms, .. } = &mut broadcast {
                        *sent_unix_ms = crate::now_unix_ms();
                    }
                    self.broadcast(&broadcast).await;
                }
                CoreOutput::Reply(to, reply) => {
                    if let Err(e) = self.bus.respond(&to, Bytes::from(encode(&reply))).await {
                        tracing::warn!(meeting = %self.core.meeting().id(), "answer not sent: {e}");
                    }
                }
                CoreOutput::Stopped(reason) => return Err(Halt::Stopped(reason)),
            }
        }
        Ok(())
    }

    /// Keeps a commit in the journal (retrying while the bus is away for a while), and the
    /// whole state when one is due.
    async fn commit(&mut self, commit: &Commit) -> Result<(), Halt> {
        let mut tries = 0;
        loop {
            match self.journal.append(commit).await {
                Ok(()) => break,
                Err(JournalError::Bus(e)) if tries < APPEND_TRIES => {
                    tries += 1;
                    tracing::warn!(meeting = %self.core.meeting().id(), "commit not kept (will retry): {e}");
                    tokio::time::sleep(APPEND_RETRY).await;
                }
                Err(e) => return Err(Halt::Lost(e.to_string())),
            }
        }
        let now = Instant::now();
        if self.journal.state_due(now) {
            match self
                .journal
                .save_state(self.core.meeting().state(), now)
                .await
            {
                Ok(()) => {}
                Err(e @ JournalError::Fenced) => return Err(Halt::Lost(e.to_string())),
                Err(e) => {
                    tracing::warn!(meeting = %self.core.meeting().id(), "state not kept: {e}")
                }
            }
        }
        Ok(())
    }

    async fn broadcast(&self, broadcast: &MeetingBroadcast) {
        if let Err(e) = self
            .bus
            .publish(&self.out, Bytes::from(encode(broadcast)))
            .await
        {
            tracing::warn!(meeting = %self.core.meeting().id(), "broadcast not sent: {e}");
        }
    }
}
