//! A meeting's coordinator: the task that owns one [`Meeting`] core, fans its events out to
//! the participants' connections once per tick, and drives the media plan.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use myriad_auth::Grants;
use myriad_proto::{
    MeetingEvent, MeetingId, ParticipantId, ParticipantInfo, Seq, SeqEvent, ServerMsg, TrackId,
    TrackSource, PROTOCOL_VERSION,
};
use myriad_room::{
    Actor, EndReason, JoinRequest, Meeting, MeetingConfig, Output, Permissions, ResumeFrom,
    RoomError,
};
use myriad_sfu::{PeerId, RoomEvent, SfuHandle};
use tokio::sync::{mpsc, oneshot};

/// What a participant's connection receives from its meeting.
#[derive(Debug, Clone)]
pub enum SessionMsg {
    /// A server message serialized once for everyone it goes to (clones share the bytes).
    Text(Utf8Bytes),
    /// The media connection died; the session forgets its peer and tells the client.
    MediaClosed { reason: String },
    /// The session is over; close the connection.
    End(EndReason),
}

/// How many messages may wait for one connection. A client that falls this far behind is
/// disconnected; it can resume and catch up from the event log.
pub const SESSION_QUEUE_LEN: usize = 512;

/// The coordinator fans events out in batches, at most once per tick: an event after a quiet
/// tick goes out at once, what follows it within the tick waits for the next one.
const TICK: Duration = Duration::from_millis(25);

/// A meeting nobody is in stops its coordinator after this long.
const IDLE_STOP: Duration = Duration::from_secs(300);

/// A connection to a participant, as registered with the coordinator.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: u64,
    pub tx: mpsc::Sender<SessionMsg>,
}

#[derive(Debug)]
pub struct Joined {
    pub participant: ParticipantId,
    /// Media connection to reuse after a resume.
    pub peer: Option<PeerId>,
}

pub(crate) enum Command {
    Join {
        grants: Grants,
        session_token: String,
        conn: Connection,
        reply: oneshot::Sender<Result<Joined, RoomError>>,
    },
    Resume {
        identity: String,
        participant: ParticipantId,
        session_token: String,
        last_seq: Seq,
        conn: Connection,
        reply: oneshot::Sender<Result<Joined, RoomError>>,
    },
    Disconnect {
        participant: ParticipantId,
        conn_id: u64,
    },
    Leave {
        participant: ParticipantId,
    },
    AttachPeer {
        participant: ParticipantId,
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    Mute {
        actor: Actor,
        target: ParticipantId,
        source: TrackSource,
        muted: bool,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Remove {
        actor: Actor,
        target: ParticipantId,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Chat {
        participant: ParticipantId,
        text: String,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Participants {
        after: Option<ParticipantId>,
        limit: usize,
        reply: oneshot::Sender<(u32, Vec<ParticipantInfo>)>,
    },
    End,
}

/// The coordinator's mailbox.
#[derive(Clone)]
pub struct MeetingHandle {
    pub(crate) tx: mpsc::Sender<Command>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("the meeting is not running")]
    Gone,
    #[error(transparent)]
    Room(#[from] RoomError),
}

impl MeetingHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CoordinatorError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| CoordinatorError::Gone)?;
        rx.await.map_err(|_| CoordinatorError::Gone)
    }

    /// Asks for something the meeting core may refuse.
    async fn ask_room<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RoomError>>) -> Command,
    ) -> Result<T, CoordinatorError> {
        Ok(self.ask(make).await??)
    }

    pub async fn join(
        &self,
        grants: Grants,
        session_token: String,
        conn: Connection,
    ) -> Result<Joined, CoordinatorError> {
        self.ask_room(|reply| Command::Join {
            grants,
            session_token,
            conn,
            reply,
        })
        .await
    }

    /// Resumes a session; `identity` comes from the new connection's token and must match.
    pub async fn resume(
        &self,
        identity: String,
        participant: ParticipantId,
        session_token: String,
        last_seq: Seq,
        conn: Connection,
    ) -> Result<Joined, CoordinatorError> {
        self.ask_room(|reply| Command::Resume {
            identity,
            participant,
            session_token,
            last_seq,
            conn,
            reply,
        })
        .await
    }

    pub async fn disconnect(&self, participant: ParticipantId, conn_id: u64) {
        let _ = self
            .tx
            .send(Command::Disconnect {
                participant,
                conn_id,
            })
            .await;
    }

    pub async fn leave(&self, participant: ParticipantId) {
        let _ = self.tx.send(Command::Leave { participant }).await;
    }

    /// Tells the coordinator which media connection is the participant's; returns once it
    /// knows, so media events about the peer cannot overtake it.
    pub async fn attach_peer(&self, participant: ParticipantId, peer: PeerId) {
        let _ = self
            .ask(|reply| Command::AttachPeer {
                participant,
                peer,
                reply,
            })
            .await;
    }

    pub async fn mute(
        &self,
        actor: Actor,
        target: ParticipantId,
        source: TrackSource,
        muted: bool,
    ) -> Result<(), CoordinatorError> {
        self.ask_room(|reply| Command::Mute {
            actor,
            target,
            source,
            muted,
            reply,
        })
        .await
    }

    pub async fn remove(
        &self,
        actor: Actor,
        target: ParticipantId,
    ) -> Result<(), CoordinatorError> {
        self.ask_room(|reply| Command::Remove {
            actor,
            target,
            reply,
        })
        .await
    }

    pub async fn chat(
        &self,
        participant: ParticipantId,
        text: String,
    ) -> Result<(), CoordinatorError> {
        self.ask_room(|reply| Command::Chat {
            participant,
            text,
            reply,
        })
        .await
    }

    pub async fn participants(
        &self,
        after: Option<ParticipantId>,
        limit: usize,
    ) -> Result<(u32, Vec<ParticipantInfo>), CoordinatorError> {
        self.ask(|reply| Command::Participants {
            after,
            limit,
            reply,
        })
        .await
    }

    pub async fn end(&self) {
        let _ = self.tx.send(Command::End).await;
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Which media connection is whose, both ways: media events name the peer, meeting events
/// the participant, and both are frequent in a large meeting.
#[derive(Default)]
struct PeerIndex {
    by_participant: HashMap<ParticipantId, PeerId>,
    by_peer: HashMap<PeerId, ParticipantId>,
}

impl PeerIndex {
    /// Records the participant's peer; returns the one it replaces.
    fn attach(&mut self, participant: ParticipantId, peer: PeerId) -> Option<PeerId> {
        let old = self.by_participant.insert(participant, peer);
        if let Some(old) = old {
            self.by_peer.remove(&old);
        }
        self.by_peer.insert(peer, participant);
        old
    }

    fn detach(&mut self, participant: ParticipantId) -> Option<PeerId> {
        let peer = self.by_participant.remove(&participant)?;
        self.by_peer.remove(&peer);
        Some(peer)
    }

    fn peer_of(&self, participant: ParticipantId) -> Option<PeerId> {
        self.by_participant.get(&participant).copied()
    }

    fn owner(&self, peer: PeerId) -> Option<ParticipantId> {
        self.by_peer.get(&peer).copied()
    }
}

struct Coordinator {
    meeting: Meeting,
    sfu: SfuHandle,
    sessions: HashMap<ParticipantId, Connection>,
    peers: PeerIndex,
    batch: Vec<SeqEvent>,
    /// When the last batch went out.
    flushed_at: Option<Instant>,
}

pub(crate) fn spawn(id: MeetingId, config: MeetingConfig, sfu: SfuHandle) -> MeetingHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (media_tx, media_rx) = mpsc::channel(4096);
    let coordinator = Coordinator {
        meeting: Meeting::new(id, config),
        sfu,
        sessions: HashMap::new(),
        peers: PeerIndex::default(),
        batch: Vec::new(),
        flushed_at: None,
    };
    tokio::spawn(coordinator.run(rx, media_tx, media_rx));
    MeetingHandle { tx }
}

impl Coordinator {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        media_tx: mpsc::Sender<RoomEvent>,
        mut media: mpsc::Receiver<RoomEvent>,
    ) {
        let id = self.meeting.id().clone();
        if self.sfu.open_room(id.clone(), media_tx).await.is_err() {
            tracing::error!(meeting = %id, "media task gone; meeting not started");
            return;
        }
        tracing::info!(meeting = %id, "meeting started");
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut empty_since: Option<Instant> = None;
        while !self.meeting.is_ended() {
            tokio::select! {
                cmd = commands.recv() => {
                    match cmd {
                        Some(cmd) => self.handle_command(cmd).await,
                        None => self.meeting.end(Instant::now()),
                    }
                    self.flush_if_quiet().await;
                }
                Some(ev) = media.recv() => {
                    self.handle_media(ev).await;
                    self.flush_if_quiet().await;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if self.meeting.poll_timeout().is_some_and(|t| t <= now) {
                        self.meeting.handle_timeout(now);
                    }
                    self.drain().await;
                    self.flush();
                    // An empty meeting gives its resources back; the next join starts it anew.
                    if self.meeting.count() > 0 {
                        empty_since = None;
                    } else if now.duration_since(*empty_since.get_or_insert(now)) >= IDLE_STOP {
                        break;
                    }
                }
            }
        }
        self.drain().await;
        self.flush();
        let _ = self.sfu.close_room(id.clone()).await;
        if self.meeting.is_ended() {
            tracing::info!(meeting = %id, "meeting ended");
        } else {
            tracing::info!(meeting = %id, "meeting idle, coordinator stopped");
        }
    }

    async fn handle_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join {
                grants,
                session_token,
                conn,
                reply,
            } => {
                let req = JoinRequest {
                    name: grants
                        .name
                        .clone()
                        .unwrap_or_else(|| grants.identity.clone()),
                    identity: grants.identity,
                    role: grants.role,
                    permissions: Permissions {
                        publish: grants.publish,
                        subscribe: grants.subscribe,
                        moderate: grants.moderate,
                    },
                    session_token: session_token.clone(),
                };
                match self.meeting.handle_join(now, req) {
                    Ok(participant) => {
                        self.drain().await;
                        // Events up to the join go out now, before the welcome: the snapshot
                        // already contains them, and the client skips seq it has.
                        self.flush();
                        self.welcome(participant, session_token, &conn, false, None);
                        self.sessions.insert(participant, conn);
                        let _ = reply.send(Ok(Joined {
                            participant,
                            peer: None,
                        }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Resume {
                identity,
                participant,
                session_token,
                last_seq,
                conn,
                reply,
            } => match self
                .meeting
                .participant(participant)
                .is_some_and(|p| p.identity == identity)
                .then_some(())
                .ok_or(RoomError::UnknownSession)
                .and_then(|()| {
                    self.meeting
                        .handle_resume(participant, &session_token, last_seq)
                }) {
                Ok(from) => {
                    // Ends the old connection (if it still exists) before the new one is in.
                    self.drain().await;
                    self.flush();
                    match from {
                        ResumeFrom::Snapshot(_) => {
                            self.welcome(participant, session_token, &conn, true, None)
                        }
                        ResumeFrom::Events(missed) => {
                            self.welcome(participant, session_token, &conn, true, Some(missed))
                        }
                    }
                    self.sessions.insert(participant, conn);
                    let _ = reply.send(Ok(Joined {
                        participant,
                        peer: self.peers.peer_of(participant),
                    }));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Disconnect {
                participant,
                conn_id,
            } => {
                if self
                    .sessions
                    .get(&participant)
                    .is_some_and(|c| c.id == conn_id)
                {
                    self.sessions.remove(&participant);
                    self.meeting.handle_disconnect(now, participant);
                }
            }
            Command::Leave { participant } => self.meeting.handle_leave(now, participant),
            Command::AttachPeer {
                participant,
                peer,
                reply,
            } => {
                if let Some(old) = self.peers.attach(participant, peer) {
                    if old != peer {
                        self.unpublish_all(participant);
                        let _ = self.sfu.remove_peer(old).await;
                    }
                }
                let _ = reply.send(());
            }
            Command::Mute {
                actor,
                target,
                source,
                muted,
                reply,
            } => {
                let _ = reply.send(self.meeting.handle_mute(actor, target, source, muted));
            }
            Command::Remove {
                actor,
                target,
                reply,
            } => {
                let _ = reply.send(self.meeting.handle_remove(now, actor, target));
            }
            Command::Chat {
                participant,
                text,
                reply,
            } => {
                let _ = reply.send(self.meeting.handle_chat(participant, &text));
            }
            Command::Participants {
                after,
                limit,
                reply,
            } => {
                let page = self.meeting.participants_page(after, limit);
                let _ = reply.send((self.meeting.count(), page));
            }
            Command::End => self.meeting.end(now),
        }
        self.drain().await;
    }

    /// Sends the welcome (and, on a resume, the missed events) to a new connection.
    fn welcome(
        &self,
        participant: ParticipantId,
        session_token: String,
        conn: &Connection,
        resumed: bool,
        missed: Option<Vec<SeqEvent>>,
    ) {
        let Some(you) = self.meeting.participant(participant).cloned() else {
            return;
        };
        // A resume that can be served from the event log gets the missed events; otherwise
        // (and on a first join) the client starts from a snapshot.
        let snapshot = missed
            .is_none()
            .then(|| self.meeting.snapshot_for(participant));
        let welcome = ServerMsg::Welcome {
            v: PROTOCOL_VERSION,
            meeting: self.meeting.id().clone(),
            you,
            session_token,
            resumed,
            snapshot,
        };
        send_json(conn, &welcome);
        if let Some(events) = missed.filter(|m| !m.is_empty()) {
            send_json(conn, &ServerMsg::Events { events });
        }
    }

    async fn handle_media(&mut self, ev: RoomEvent) {
        let now = Instant::now();
        match ev {
            RoomEvent::TrackAdded {
                peer,
                participant,
                mid,
                source,
            } => match self.meeting.handle_publish(participant, source) {
                Ok(track) => {
                    let _ = self.sfu.bind_track(peer, mid, track).await;
                }
                Err(e) => {
                    tracing::info!(meeting = %self.meeting.id(), %participant, "publish refused: {e}")
                }
            },
            RoomEvent::AudioLevels(levels) => self.meeting.handle_audio_levels(now, &levels),
            RoomEvent::Offer { peer, sdp, tracks } => {
                if let Some(conn) = self.connection_of_peer(peer) {
                    send_json(conn, &ServerMsg::Offer { sdp, tracks });
                }
            }
            RoomEvent::PeerClosed { peer, reason } => {
                if let Some(participant) = self.peers.owner(peer) {
                    self.peers.detach(participant);
                    self.unpublish_all(participant);
                    if let Some(conn) = self.sessions.get(&participant) {
                        let _ = conn.tx.try_send(SessionMsg::MediaClosed { reason });
                    }
                }
            }
        }
        self.drain().await;
    }

    fn connection_of_peer(&self, peer: PeerId) -> Option<&Connection> {
        self.sessions.get(&self.peers.owner(peer)?)
    }

    fn unpublish_all(&mut self, participant: ParticipantId) {
        let tracks: Vec<TrackId> = [
            TrackSource::Microphone,
            TrackSource::Camera,
            TrackSource::Screen,
        ]
        .into_iter()
        .filter_map(|source| self.meeting.track_of(participant, source))
        .collect();
        for t in tracks {
            self.meeting.handle_unpublish(t);
        }
    }

    /// Applies the meeting core's outputs.
    async fn drain(&mut self) {
        while let Some(out) = self.meeting.poll_output() {
            match out {
                Output::Event(ev) => {
                    if let MeetingEvent::TrackUnpublished { track } = ev.event {
                        let _ = self
                            .sfu
                            .unbind_track(self.meeting.id().clone(), track)
                            .await;
                    }
                    self.batch.push(ev);
                }
                Output::Plan(plan) => {
                    let _ = self.sfu.set_plan(self.meeting.id().clone(), plan).await;
                }
                Output::SessionEnded {
                    participant,
                    reason,
                } => {
                    if let Some(conn) = self.sessions.remove(&participant) {
                        let _ = conn.tx.try_send(SessionMsg::End(reason));
                    }
                    if reason != EndReason::Replaced {
                        if let Some(peer) = self.peers.detach(participant) {
                            let _ = self.sfu.remove_peer(peer).await;
                        }
                    }
                }
            }
        }
    }

    /// Flushes at once unless a batch went out less than a tick ago.
    async fn flush_if_quiet(&mut self) {
        if self.flushed_at.is_none_or(|t| t.elapsed() >= TICK) {
            self.drain().await;
            self.flush();
        }
    }

    /// Sends the batched events to every connection: serialized once, shared by all.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.flushed_at = Some(Instant::now());
        let events = std::mem::take(&mut self.batch);
        let text: Utf8Bytes = match serde_json::to_string(&ServerMsg::Events { events }) {
            Ok(s) => s.into(),
            Err(e) => {
                tracing::error!("event batch not serializable: {e}");
                return;
            }
        };
        let mut too_slow = Vec::new();
        for (participant, conn) in &self.sessions {
            if conn.tx.try_send(SessionMsg::Text(text.clone())).is_err() {
                too_slow.push(*participant);
            }
        }
        let now = Instant::now();
        for participant in too_slow {
            // Its queue is full (or gone): drop the connection; the client resumes and catches
            // up from the event log or a snapshot.
            tracing::warn!(meeting = %self.meeting.id(), %participant, "connection too slow, dropped");
            if let Some(conn) = self.sessions.remove(&participant) {
                let _ = conn.tx.try_send(SessionMsg::End(EndReason::Replaced));
            }
            self.meeting.handle_disconnect(now, participant);
        }
    }
}

fn send_json(conn: &Connection, msg: &ServerMsg) {
    match serde_json::to_string(msg) {
        Ok(s) => {
            let _ = conn.tx.try_send(SessionMsg::Text(s.into()));
        }
        Err(e) => tracing::error!("message not serializable: {e}"),
    }
}
