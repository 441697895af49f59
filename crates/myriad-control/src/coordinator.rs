//! A meeting's coordinator: the task that owns one [`Meeting`] core and the meeting's
//! partition [`Planner`], and speaks only over the bus — requests from nodes in; the
//! meeting's batches, plan, partitions and session ends out to every node at once. It knows
//! nothing of sockets, media or HTTP: each node fans out to its own connections and drives
//! its own media. It watches the cluster's registry: the people of a node that is gone are
//! disconnected (they may resume elsewhere) and its tracks unpublished.
//!
//! It acts under the meeting's lease, and every commit goes to the meeting's journal before
//! its events go out and before the requests that made it are answered; a coordinator that
//! takes the meeting over rebuilds it from the journal, its sequence going on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Message, Subscription};
use myriad_plan::{Planner, PlannerConfig};
use myriad_proto::bus::{decode, encode};
use myriad_proto::cluster::PartitionRef;
use myriad_proto::meeting::{
    broadcast_subject, levels_subject, rpc_subject, AudioLevels, ConnRef, EndReason,
    MeetingBroadcast, MeetingReply, MeetingRequest, RefusalKind,
};
use myriad_proto::{MeetingId, ParticipantId, SeqEvent, ServerMsg, PROTOCOL_VERSION};
use myriad_room::{
    Commit, JoinRequest, Meeting, MeetingConfig, Output, Permissions, ResumeFrom, RoomError,
    StopReason,
};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
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
        planner: Planner::new(id.as_str(), partitions),
        cluster,
        meeting,
        bus,
        conns: HashMap::new(),
        replaced: HashMap::new(),
        journal,
        lease,
        renewed_at: now,
        waiting: Vec::new(),
    };
    Ok(tokio::spawn(coordinator.run(rpc, levels, replay)))
}

struct Coordinator {
    bus: Arc<dyn Bus>,
    meeting: Meeting,
    /// Who is in which partition (rebuilt from what nodes report after a takeover).
    planner: Planner,
    cluster: Arc<Cluster>,
    out: String,
    /// Each participant's current signalling connection.
    conns: HashMap<ParticipantId, ConnRef>,
    /// The connection a resume replaced, until it is told to go.
    replaced: HashMap<ParticipantId, ConnRef>,
    journal: Journal,
    lease: Lease,
    renewed_at: Instant,
    /// Answers held until the commit holding what their requests changed is kept.
    waiting: Vec<(String, MeetingReply)>,
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
        let id = self.meeting.id().clone();
        if let Some(events) = replay {
            self.broadcast(&MeetingBroadcast::TookOver {
                epoch: self.lease.epoch(),
            })
            .await;
            if !events.is_empty() {
                self.broadcast(&MeetingBroadcast::Events {
                    events,
                    sent_unix_ms: crate::now_unix_ms(),
                })
                .await;
            }
        }
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        let halt = loop {
            if let Err(halt) = self.drain().await {
                break halt;
            }
            let wake = self
                .meeting
                .poll_timeout()
                .map_or(Instant::now() + NOTHING_DUE, |(t, _)| t);
            tokio::select! {
                _ = renew.tick() => {
                    if let Err(halt) = self.renew().await {
                        break halt;
                    }
                    self.drop_lost_nodes();
                }
                msg = rpc.next() => match msg {
                    Some(msg) => self.handle_message(msg),
                    None => break Halt::Lost("the request subscription ended".into()),
                },
                Some(msg) = levels.next() => match decode::<AudioLevels>(&msg.payload) {
                    Ok(report) => self.meeting.handle_audio_levels(Instant::now(), &report.levels),
                    Err(e) => tracing::warn!(meeting = %id, "audio levels ignored: {e}"),
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.meeting.handle_timeout(Instant::now());
                }
            }
        };
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
                tracing::warn!(meeting = %self.meeting.id(), "lease not renewed (will retry): {e}");
                Ok(())
            }
        }
    }

    /// Handles one request; its answer waits for the commit of what it changed.
    fn handle_message(&mut self, msg: Message) {
        let reply = match decode::<MeetingRequest>(&msg.payload) {
            Ok(req) => self.handle(req),
            Err(e) => {
                tracing::warn!(meeting = %self.meeting.id(), "request refused: {e}");
                refused(RefusalKind::BadRequest, e.to_string())
            }
        };
        match msg.reply {
            Some(to) => self.waiting.push((to, reply)),
            None => {
                tracing::debug!(meeting = %self.meeting.id(), "a request without a reply subject")
            }
        }
    }

    fn handle(&mut self, req: MeetingRequest) -> MeetingReply {
        let now = Instant::now();
        let cluster = &self.cluster;
        let workers = |node: &str| cluster.node(node).map_or(1, |n| n.workers.max(1));
        let m = &mut self.meeting;
        let done =
            |r: Result<(), RoomError>| r.map_or_else(|e| room_refused(&e), |()| MeetingReply::Done);
        match req {
            MeetingRequest::Join {
                joiner,
                session_token,
                conn,
            } => {
                let req = JoinRequest {
                    identity: joiner.identity,
                    name: joiner.name,
                    role: joiner.role,
                    permissions: Permissions {
                        publish: joiner.publish,
                        subscribe: joiner.subscribe,
                        moderate: joiner.moderate,
                    },
                    session_token: session_token.clone(),
                };
                let node = conn.node.clone();
                if !self.planner.has_room(&node, workers(&node)) {
                    return node_full(&node);
                }
                match m.handle_join(now, req) {
                    Ok(participant) => {
                        self.conns.insert(participant, conn);
                        let partition = self.planner.place(participant, &node, workers(&node));
                        self.joined(participant, session_token, false, None, partition.ok())
                    }
                    Err(e) => room_refused(&e),
                }
            }
            MeetingRequest::Resume {
                identity,
                participant,
                session_token,
                last_seq,
                conn,
            } => {
                let node = conn.node.clone();
                if !self.planner.can_place(participant, &node, workers(&node)) {
                    return node_full(&node);
                }
                let from =
                    match m.handle_resume(now, participant, &identity, &session_token, last_seq) {
                        Ok(from) => from,
                        Err(e) => return room_refused(&e),
                    };
                // Media lives on a node: tracks published from another one than the session
                // resumes on are gone with that node's connection.
                for track in m.tracks_of(participant) {
                    let elsewhere = m
                        .track(track)
                        .and_then(|t| t.partition.as_ref())
                        .is_some_and(|p| p.node != node);
                    if elsewhere {
                        m.handle_unpublish(now, track);
                    }
                }
                // The old connection is told to go with its own reference.
                if let Some(old) = self.conns.insert(participant, conn) {
                    self.replaced.insert(participant, old);
                }
                let missed = match from {
                    ResumeFrom::Events(missed) => Some(missed),
                    ResumeFrom::Snapshot(_) => None,
                };
                let partition = self.planner.place(participant, &node, workers(&node));
                self.joined(participant, session_token, true, missed, partition.ok())
            }
            MeetingRequest::Disconnect { participant, conn } => {
                if self.conns.get(&participant) == Some(&conn) {
                    self.conns.remove(&participant);
                    m.handle_disconnect(now, participant);
                }
                MeetingReply::Done
            }
            MeetingRequest::Leave { participant } => {
                m.handle_leave(now, participant);
                MeetingReply::Done
            }
            MeetingRequest::Mute {
                actor,
                target,
                source,
                muted,
            } => done(m.handle_mute(now, actor, target, source, muted)),
            MeetingRequest::Remove { actor, target } => done(m.handle_remove(now, actor, target)),
            MeetingRequest::Chat { participant, text } => {
                done(m.handle_chat(now, participant, &text))
            }
            MeetingRequest::Publish {
                participant,
                source,
                partition,
            } => match m.handle_publish(now, participant, source, Some(partition)) {
                Ok(track) => MeetingReply::Published { track },
                Err(e) => room_refused(&e),
            },
            MeetingRequest::MediaClosed { participant } => {
                for track in m.tracks_of(participant) {
                    m.handle_unpublish(now, track);
                }
                MeetingReply::Done
            }
            MeetingRequest::Media => MeetingReply::Media {
                tracks: m.tracks(),
                plan: m.plan().clone(),
                partitions: self.planner.partitions(),
                seq: m.seq(),
            },
            MeetingRequest::Missed { after } => MeetingReply::Missed {
                events: m.events_after(after),
            },
            MeetingRequest::Route { region } => MeetingReply::Route {
                nodes: self.planner.route(&cluster.alive(), region.as_deref()),
            },
            MeetingRequest::Participants { after, limit } => MeetingReply::Page {
                count: m.count(),
                participants: m.participants_page(after, limit.min(1000) as usize),
            },
            MeetingRequest::End => {
                m.end(now);
                MeetingReply::Done
            }
            MeetingRequest::Present { present } => {
                let ids: Vec<ParticipantId> = present.iter().map(|p| p.participant).collect();
                m.handle_present(now, &ids);
                for p in present {
                    if m.participant(p.participant).is_some() {
                        self.conns.insert(p.participant, p.conn);
                        if let Some(partition) = p.partition {
                            self.planner.place_at(p.participant, partition);
                        }
                    }
                }
                MeetingReply::Done
            }
        }
    }

    /// The answer to a join or a resume: the welcome, then the events the client missed; or,
    /// on a first join and when too many were missed (`None`), a snapshot in the welcome.
    fn joined(
        &self,
        participant: ParticipantId,
        session_token: String,
        resumed: bool,
        missed: Option<Vec<SeqEvent>>,
        partition: Option<PartitionRef>,
    ) -> MeetingReply {
        let Some(you) = self.meeting.participant(participant).cloned() else {
            return refused(RefusalKind::UnknownParticipant, "gone meanwhile".into());
        };
        let snapshot = missed
            .is_none()
            .then(|| self.meeting.snapshot_for(participant));
        let missed = missed.unwrap_or_default();
        MeetingReply::Joined {
            participant,
            welcome: Box::new(ServerMsg::Welcome {
                v: PROTOCOL_VERSION,
                meeting: self.meeting.id().clone(),
                you,
                session_token,
                resumed,
                snapshot,
            }),
            missed,
            seq: self.meeting.seq(),
            partition,
        }
    }

    /// The people of nodes the registry says are gone lose their seats and are disconnected
    /// (they may resume on another node for a while); tracks published there are gone.
    fn drop_lost_nodes(&mut self) {
        let now = Instant::now();
        let cluster = &self.cluster;
        for (participant, partition) in self.planner.retain_nodes(|n| !cluster.is_gone(n)) {
            if self
                .conns
                .get(&participant)
                .is_some_and(|c| c.node == partition.node)
            {
                tracing::info!(meeting = %self.meeting.id(), %participant, node = %partition.node, "node gone: disconnected");
                self.conns.remove(&participant);
                self.meeting.handle_disconnect(now, participant);
            }
        }
        for track in self.meeting.tracks() {
            if track
                .partition
                .as_ref()
                .is_some_and(|p| cluster.is_gone(&p.node))
            {
                self.meeting.handle_unpublish(now, track.id);
            }
        }
    }

    /// Sends what the meeting produced: each commit to the journal, then its events to every
    /// node; plans and session ends to every node. Answers go once nothing waits to be
    /// committed, so none is sent before what its request changed is kept.
    async fn drain(&mut self) -> Result<(), Halt> {
        while let Some(out) = self.meeting.poll_output() {
            let broadcast = match out {
                Output::Commit(commit) => {
                    self.commit(&commit).await?;
                    if commit.events.is_empty() {
                        continue;
                    }
                    MeetingBroadcast::Events {
                        events: commit.events,
                        sent_unix_ms: crate::now_unix_ms(),
                    }
                }
                Output::Plan(plan) => MeetingBroadcast::Plan { plan },
                Output::SessionEnded {
                    participant,
                    reason,
                } => {
                    let conn = if reason == EndReason::Replaced {
                        self.replaced.remove(&participant)
                    } else {
                        self.planner.remove(participant);
                        self.conns.remove(&participant)
                    };
                    MeetingBroadcast::SessionEnded {
                        participant,
                        conn,
                        reason,
                    }
                }
                Output::Stopped(reason) => {
                    self.answer_waiting().await;
                    self.broadcast(&MeetingBroadcast::Stopped).await;
                    return Err(Halt::Stopped(reason));
                }
            };
            self.broadcast(&broadcast).await;
        }
        if self.planner.take_changed() {
            let partitions = self.planner.partitions();
            self.broadcast(&MeetingBroadcast::Partitions { partitions })
                .await;
        }
        if !self.meeting.has_uncommitted() {
            self.answer_waiting().await;
        }
        Ok(())
    }

    async fn answer_waiting(&mut self) {
        for (to, reply) in std::mem::take(&mut self.waiting) {
            if let Err(e) = self.bus.respond(&to, Bytes::from(encode(&reply))).await {
                tracing::warn!(meeting = %self.meeting.id(), "answer not sent: {e}");
            }
        }
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
                    tracing::warn!(meeting = %self.meeting.id(), "commit not kept (will retry): {e}");
                    tokio::time::sleep(APPEND_RETRY).await;
                }
                Err(e) => return Err(Halt::Lost(e.to_string())),
            }
        }
        let now = Instant::now();
        if self.journal.state_due(now) {
            match self.journal.save_state(self.meeting.state(), now).await {
                Ok(()) => {}
                Err(e @ JournalError::Fenced) => return Err(Halt::Lost(e.to_string())),
                Err(e) => tracing::warn!(meeting = %self.meeting.id(), "state not kept: {e}"),
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
            tracing::warn!(meeting = %self.meeting.id(), "broadcast not sent: {e}");
        }
    }
}

fn node_full(node: &str) -> MeetingReply {
    refused(
        RefusalKind::NodeFull,
        format!("node {node} has no free seat in this meeting: connect where the route says"),
    )
}

fn room_refused(e: &RoomError) -> MeetingReply {
    refused(e.kind(), e.to_string())
}

fn refused(kind: RefusalKind, message: String) -> MeetingReply {
    MeetingReply::Refused { kind, message }
}
