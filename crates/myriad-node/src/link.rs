//! A node's link to one meeting: while anyone on this node is in the meeting, one task hears
//! the coordinator's broadcasts and fans them out to the local connections (a batch is
//! serialized once for all of them), drives this node's media workers for the meeting (the
//! plan; each track, pulled by each partition here from its upstream in the relay tree; the
//! partitions open ahead; the peers), and relays media events to the right connection.
//! Peers are this node's: which media connection is whose, on which worker, lives here, not
//! at the coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use myriad_bus::Subscription;
use myriad_control::{AskError, MeetingClient};
use myriad_plan::{upstream, RELAY_FANOUT};
use myriad_proto::bus::decode;
use myriad_proto::cluster::PartitionRef;
use myriad_proto::meeting::{ConnRef, EndReason, MeetingBroadcast, Presence};
use myriad_proto::{
    MeetingEvent, MeetingId, ParticipantId, ReactionCount, Seq, SeqEvent, ServerMsg, TrackId,
    TrackInfo,
};
use myriad_room::{Passed, ReactionTally, SeqGate};
use myriad_sfu::{Media, PeerId, RoomEvent, SfuHandle};
use tokio::sync::{mpsc, oneshot};

use crate::load::Load;

/// How many messages may wait for one connection. A client that falls this far behind is
/// disconnected; it can resume and catch up from the event log.
pub const SESSION_QUEUE_LEN: usize = 512;

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

pub(crate) enum LinkCmd {
    /// A connection about to join or resume: the batches from now on are kept for it until
    /// it is bound.
    Register {
        conn: u64,
        tx: mpsc::Sender<SessionMsg>,
    },
    /// The connection is this participant's, in `partition`, and its welcome brought it to
    /// `seq`: the kept events after it go to it next. Answers with the participant's media
    /// connection on this node (and its worker), which survives a signalling drop.
    Bind {
        conn: u64,
        participant: ParticipantId,
        partition: Option<PartitionRef>,
        seq: Seq,
        reply: oneshot::Sender<Option<(PeerId, u16)>>,
    },
    Unregister {
        conn: u64,
    },
    /// A reaction from a participant here: its number in the reactions (checked by the
    /// session).
    React {
        index: usize,
    },
    /// Counts the coordinator did not take (it is moving): they go with the next ones.
    ReactionsUnsent(Vec<ReactionCount>),
    /// The coordinator's answer to the link's ask for the events after a gap: the events, or
    /// `None` when they are too old to be had (`Err`: no answer).
    Missed(Result<Option<Vec<SeqEvent>>, ()>),
    /// The meeting's last event, as its coordinator answered a presence report (`empty`: one
    /// that listed nobody).
    Heard {
        seq: Seq,
        empty: bool,
    },
    /// This is the participant's media connection now, on `worker`; a previous one is
    /// dropped with its tracks. Answers once done, so media events about the peer cannot
    /// overtake it.
    AttachPeer {
        participant: ParticipantId,
        peer: PeerId,
        worker: u16,
        reply: oneshot::Sender<()>,
    },
}

/// The link's mailbox; cheap to clone.
#[derive(Clone)]
pub(crate) struct LinkHandle {
    tx: mpsc::Sender<LinkCmd>,
}

impl LinkHandle {
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Registers a connection; fails if the link has stopped (take a new one).
    async fn register(&self, conn: u64, tx: mpsc::Sender<SessionMsg>) -> Result<(), ()> {
        self.tx
            .send(LinkCmd::Register { conn, tx })
            .await
            .map_err(|_| ())
    }

    pub(crate) async fn bind(
        &self,
        conn: u64,
        participant: ParticipantId,
        partition: Option<PartitionRef>,
        seq: Seq,
    ) -> Option<(PeerId, u16)> {
        let (reply, rx) = oneshot::channel();
        let cmd = LinkCmd::Bind {
            conn,
            participant,
            partition,
            seq,
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return None;
        }
        rx.await.ok().flatten()
    }

    pub(crate) async fn unregister(&self, conn: u64) {
        let _ = self.tx.send(LinkCmd::Unregister { conn }).await;
    }

    /// Reaction number `index` of [`myriad_proto::REACTIONS`] from someone here.
    pub(crate) async fn react(&self, index: usize) {
        let _ = self.tx.send(LinkCmd::React { index }).await;
    }

    pub(crate) async fn attach_peer(&self, participant: ParticipantId, peer: PeerId, worker: u16) {
        let (reply, rx) = oneshot::channel();
        let cmd = LinkCmd::AttachPeer {
            participant,
            peer,
            worker,
            reply,
        };
        if self.tx.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Which media connection is whose, both ways, and on which worker: media events name the
/// peer, meeting events the participant, and both are frequent in a large meeting.
#[derive(Default)]
struct PeerIndex {
    by_participant: HashMap<ParticipantId, (PeerId, u16)>,
    by_peer: HashMap<PeerId, (ParticipantId, u16)>,
}

impl PeerIndex {
    /// Records the participant's peer; returns the one it replaces (and its worker).
    fn attach(
        &mut self,
        participant: ParticipantId,
        peer: PeerId,
        worker: u16,
    ) -> Option<(PeerId, u16)> {
        let old = self.by_participant.insert(participant, (peer, worker));
        if let Some((old, _)) = old {
            self.by_peer.remove(&old);
        }
        self.by_peer.insert(peer, (participant, worker));
        old
    }

    fn detach(&mut self, participant: ParticipantId) -> Option<(PeerId, u16)> {
        let (peer, worker) = self.by_participant.remove(&participant)?;
        self.by_peer.remove(&peer);
        Some((peer, worker))
    }

    fn peer_of(&self, participant: ParticipantId) -> Option<(PeerId, u16)> {
        self.by_participant.get(&participant).copied()
    }

    fn owner(&self, peer: PeerId) -> Option<(ParticipantId, u16)> {
        self.by_peer.get(&peer).copied()
    }

    fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }
}

struct Conn {
    tx: mpsc::Sender<SessionMsg>,
    participant: Option<ParticipantId>,
    /// Where the coordinator seated it.
    partition: Option<PartitionRef>,
    /// Until bound: the events broadcast since it registered (its welcome is not out yet).
    kept: Option<Vec<SeqEvent>>,
    /// Its welcome brought it this far: events up to here it has.
    after: Seq,
}

/// How often a link sends its participants' reactions, counted, to the coordinator: one
/// request per node per interval, however many people react.
const REACTIONS_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// How often a link tells the coordinator every connection it has.
const PRESENCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a link with nobody left waits for its coordinator to hear so before it ends
/// anyway.
const FAREWELL_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Events kept for one connection between its registration and its welcome, at most: a
/// join takes a round trip to the coordinator, not this many events.
const MAX_KEPT_EVENTS: usize = 4096;

struct Link {
    meeting: MeetingId,
    node: String,
    client: MeetingClient,
    media: Media,
    /// The meeting's tracks, each with the partition it is published in.
    tracks: BTreeMap<TrackId, TrackInfo>,
    /// The meeting's open partitions, everywhere.
    partitions: Vec<PartitionRef>,
    conns: HashMap<u64, Conn>,
    /// Bound connections by participant.
    by_participant: HashMap<ParticipantId, u64>,
    peers: PeerIndex,
    /// Set by the first connection: the link ends once it has nobody left and the
    /// coordinator heard so.
    used: bool,
    /// Since when nobody is left, and whether a presence report saying so was answered: a
    /// leave or disconnect lost on the way (a coordinator taking over) would otherwise leave
    /// the coordinator a participant connected here for ever.
    empty_since: Option<tokio::time::Instant>,
    farewell_heard: bool,
    /// Batches go on in order and once each (a coordinator taking over sends its last
    /// commit again; the bus may lose one).
    gate: SeqGate,
    /// The link's own mailbox, for answers it asked for.
    mailbox: mpsc::WeakSender<LinkCmd>,
    /// The highest connection number registered here: the coordinator learns that those
    /// below it and not listed are gone.
    highest_conn: u64,
    load: Arc<Load>,
    /// Reactions from here since they were last sent.
    reactions: ReactionTally,
}

/// Starts the link of `client`'s meeting on this node: hears the coordinator's broadcasts
/// from now on (the subscription is in place when this returns) and this node's media events
/// for the meeting.
pub(crate) async fn start(
    client: MeetingClient,
    media: Media,
    load: Arc<Load>,
) -> Result<LinkHandle, myriad_bus::BusError> {
    let meeting = client.meeting().clone();
    let bus = client.bus();
    let broadcasts = bus
        .subscribe(&myriad_proto::meeting::broadcast_subject(&meeting))
        .await?;
    bus.flush().await?;
    let (media_tx, media_rx) = mpsc::channel(4096);
    for worker in media.workers() {
        if worker
            .open_room(meeting.clone(), media_tx.clone())
            .await
            .is_err()
        {
            tracing::error!(%meeting, worker = worker.name(), "media worker gone: its media for the meeting is off");
        }
    }
    let (tx, rx) = mpsc::channel(1024);
    let mut link = Link {
        meeting,
        node: media.node().to_owned(),
        client,
        media,
        tracks: BTreeMap::new(),
        partitions: Vec::new(),
        conns: HashMap::new(),
        by_participant: HashMap::new(),
        peers: PeerIndex::default(),
        used: false,
        empty_since: None,
        farewell_heard: false,
        gate: SeqGate::new(Seq(0)),
        mailbox: tx.downgrade(),
        highest_conn: 0,
        load,
        reactions: ReactionTally::default(),
    };
    // What is published already, the plan and the partitions: tracks of other partitions
    // are pulled from upstream.
    match link.client.media().await {
        Ok(state) => {
            link.gate = SeqGate::new(state.seq);
            link.set_plan(state.plan).await;
            link.tracks = state.tracks.into_iter().map(|t| (t.id, t)).collect();
            link.set_partitions(state.partitions).await;
        }
        Err(e) => {
            tracing::warn!(meeting = %link.meeting, "the meeting's tracks unknown for now: {e}")
        }
    }
    link.load.meetings.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(link.run(rx, broadcasts, media_rx));
    Ok(LinkHandle { tx })
}

impl Link {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<LinkCmd>,
        mut broadcasts: Subscription,
        mut media: mpsc::Receiver<RoomEvent>,
    ) {
        tracing::debug!(meeting = %self.meeting, "meeting link up");
        let mut presence = tokio::time::interval(PRESENCE_EVERY);
        presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        presence.tick().await;
        let mut reactions = tokio::time::interval(REACTIONS_EVERY);
        reactions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = presence.tick() => self.tell_presence(),
                _ = reactions.tick(), if !self.reactions.is_empty() => self.send_reactions(),
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd).await,
                    None => break,
                },
                msg = broadcasts.next() => match msg {
                    Some(msg) => match decode::<MeetingBroadcast>(&msg.payload) {
                        Ok(b) => self.handle_broadcast(b).await,
                        Err(e) => tracing::warn!(meeting = %self.meeting, "broadcast ignored: {e}"),
                    },
                    None => {
                        tracing::error!(meeting = %self.meeting, "broadcast subscription ended");
                        break;
                    }
                },
                Some(ev) = media.recv() => self.handle_media(ev).await,
            }
            if self.used && self.is_empty() {
                // Nobody on this node is in the meeting any more: the link ends once the
                // coordinator has heard so.
                let since = match self.empty_since {
                    Some(since) => since,
                    None => {
                        self.tell_presence();
                        *self.empty_since.insert(tokio::time::Instant::now())
                    }
                };
                if self.farewell_heard {
                    break;
                }
                if since.elapsed() >= FAREWELL_FOR {
                    tracing::warn!(meeting = %self.meeting, "the coordinator did not hear that nobody is left here");
                    break;
                }
            } else {
                self.empty_since = None;
                self.farewell_heard = false;
            }
        }
        self.load.meetings.fetch_sub(1, Ordering::Relaxed);
        let bound = self
            .conns
            .values()
            .filter(|c| c.participant.is_some())
            .count();
        self.load
            .participants
            .fetch_sub(bound as i64, Ordering::Relaxed);
        tracing::debug!(meeting = %self.meeting, "meeting link down");
    }

    async fn handle_command(&mut self, cmd: LinkCmd) {
        match cmd {
            LinkCmd::Register { conn, tx } => {
                self.used = true;
                self.highest_conn = self.highest_conn.max(conn);
                self.conns.insert(
                    conn,
                    Conn {
                        tx,
                        participant: None,
                        partition: None,
                        kept: Some(Vec::new()),
                        after: Seq(0),
                    },
                );
            }
            LinkCmd::Bind {
                conn,
                participant,
                partition,
                seq,
                reply,
            } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.after = seq;
                    c.partition = partition;
                    if c.participant.replace(participant).is_none() {
                        self.load.participants.fetch_add(1, Ordering::Relaxed);
                    }
                    let after: Vec<SeqEvent> = c
                        .kept
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|e| e.seq > seq)
                        .map(|e| e.seen_by(participant))
                        .collect();
                    if !after.is_empty() {
                        send_one(c, &ServerMsg::Events { events: after });
                    }
                    self.by_participant.insert(participant, conn);
                }
                let peer = self.peers.peer_of(participant);
                if let Some((peer, worker)) = peer {
                    // Its media goes on; what the old connection may have taken with it (an
                    // offer, its slots' mapping) comes again.
                    if let Some(w) = self.worker(worker) {
                        let _ = w.resync(peer).await;
                    }
                }
                let _ = reply.send(peer);
            }
            LinkCmd::Unregister { conn } => self.forget(conn),
            LinkCmd::React { index } => {
                self.reactions.add_one(index);
            }
            LinkCmd::ReactionsUnsent(counts) => {
                if let Err(e) = self.reactions.add(&counts) {
                    tracing::warn!(meeting = %self.meeting, "unsent reactions dropped: {e}");
                }
            }
            LinkCmd::Missed(Ok(Some(events))) => {
                let passed = self.gate.offer(events);
                self.pass_on(passed).await;
            }
            LinkCmd::Missed(Ok(None)) => self.give_up_gap().await,
            LinkCmd::Missed(Err(())) => self.gate.ask_failed(),
            LinkCmd::Heard { seq, empty } => {
                self.farewell_heard |= empty && self.is_empty();
                // A batch lost at the end of a burst shows no gap: the meeting's sequence
                // does.
                let ask_after = self.gate.behind(seq);
                self.pass_on(Passed {
                    events: Vec::new(),
                    ask_after,
                })
                .await;
            }
            LinkCmd::AttachPeer {
                participant,
                peer,
                worker,
                reply,
            } => {
                if let Some((old, old_worker)) = self.peers.attach(participant, peer, worker) {
                    if old != peer {
                        // The old connection's tracks go before the new one publishes.
                        if let Err(e) = self.client.media_closed(participant).await {
                            tracing::warn!(meeting = %self.meeting, %participant, "old tracks not dropped: {e}");
                        }
                        if let Some(w) = self.worker(old_worker) {
                            let _ = w.remove_peer(old).await;
                        }
                    }
                }
                let _ = reply.send(());
            }
        }
    }

    fn forget(&mut self, conn: u64) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(p) = c.participant {
                self.load.participants.fetch_sub(1, Ordering::Relaxed);
                if self.by_participant.get(&p) == Some(&conn) {
                    self.by_participant.remove(&p);
                }
            }
        }
    }

    fn conn_of(&self, participant: ParticipantId) -> Option<&Conn> {
        self.conns.get(self.by_participant.get(&participant)?)
    }

    async fn handle_broadcast(&mut self, b: MeetingBroadcast) {
        match b {
            MeetingBroadcast::Events {
                events,
                sent_unix_ms,
            } => {
                self.load.event_lag(sent_unix_ms);
                let passed = self.gate.offer(events);
                self.pass_on(passed).await;
            }
            MeetingBroadcast::Plan { plan } => self.set_plan(plan).await,
            MeetingBroadcast::Partitions { partitions } => self.set_partitions(partitions).await,
            MeetingBroadcast::SessionEnded {
                participant,
                conn,
                reason,
            } => self.session_ended(participant, conn, reason).await,
            MeetingBroadcast::Stopped => {
                tracing::debug!(meeting = %self.meeting, "the coordinator stopped");
            }
            MeetingBroadcast::TookOver { epoch } => {
                // The new coordinator learns who is here, and where; the others' sessions
                // expire.
                tracing::info!(meeting = %self.meeting, epoch, "a coordinator took the meeting over");
                self.tell_presence();
            }
        }
    }

    /// Tells the coordinator every connection here to the meeting: who is in it, in which
    /// partition, and which connections are still joining. A disconnect lost on the bus is
    /// made good this way.
    fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.peers.is_empty()
    }

    fn send_reactions(&mut self) {
        let counts = self.reactions.take();
        let (client, mailbox) = (self.client.clone(), self.mailbox.clone());
        tokio::spawn(async move {
            match client.reactions(counts.clone()).await {
                Ok(()) => {}
                Err(e @ AskError::Refused { .. }) => {
                    tracing::debug!(meeting = %client.meeting(), "reactions refused: {e}")
                }
                // Not heard (a coordinator taking over): they go with the next ones.
                Err(e) => {
                    tracing::debug!(meeting = %client.meeting(), "reactions kept for later: {e}");
                    if let Some(mailbox) = mailbox.upgrade() {
                        let _ = mailbox.send(LinkCmd::ReactionsUnsent(counts)).await;
                    }
                }
            }
        });
    }

    fn tell_presence(&self) {
        let mut present = Vec::new();
        let mut joining = Vec::new();
        for (id, c) in &self.conns {
            let Some(participant) = c.participant else {
                joining.push(*id);
                continue;
            };
            let partition = match self.peers.peer_of(participant) {
                Some((_, worker)) => Some(PartitionRef::new(&self.node, worker)),
                None => c.partition.clone(),
            };
            present.push(Presence {
                participant,
                conn: ConnRef {
                    node: self.node.clone(),
                    conn: *id,
                },
                partition,
            });
        }
        let empty = present.is_empty() && joining.is_empty();
        let (client, node, up_to) = (
            self.client.clone(),
            self.node.clone(),
            self.highest_conn + 1,
        );
        let mailbox = self.mailbox.clone();
        tokio::spawn(async move {
            match client.present(node, up_to, present, joining).await {
                Ok(seq) => {
                    if let Some(mailbox) = mailbox.upgrade() {
                        let _ = mailbox.send(LinkCmd::Heard { seq, empty }).await;
                    }
                }
                Err(e) => tracing::warn!(meeting = %client.meeting(), "presence not told: {e}"),
            }
        });
    }

    async fn session_ended(
        &mut self,
        participant: ParticipantId,
        conn: Option<ConnRef>,
        reason: EndReason,
    ) {
        if let Some(conn) = conn.filter(|c| c.node == self.node) {
            if let Some(c) = self.conns.get(&conn.conn) {
                let _ = c.tx.try_send(SessionMsg::End(reason));
            }
            self.forget(conn.conn);
        }
        // A resumed session keeps its media; any other end takes it.
        if reason != EndReason::Replaced {
            if let Some((peer, worker)) = self.peers.detach(participant) {
                if let Some(w) = self.worker(worker) {
                    let _ = w.remove_peer(peer).await;
                }
            }
        }
    }

    fn worker(&self, index: u16) -> Option<&SfuHandle> {
        self.media.workers().get(usize::from(index))
    }

    async fn set_plan(&self, plan: myriad_proto::ForwardingPlan) {
        for w in self.media.workers() {
            let _ = w.set_plan(self.meeting.clone(), plan.clone()).await;
        }
    }

    /// The meeting's open partitions changed: this node's open ones pull the plan ahead of
    /// their people, and every worker pulls each track from its upstream in the new tree.
    async fn set_partitions(&mut self, partitions: Vec<PartitionRef>) {
        self.partitions = partitions;
        for (i, w) in self.media.workers().iter().enumerate() {
            let me = PartitionRef::new(&self.node, i as u16);
            let _ = w
                .set_warm(self.meeting.clone(), self.partitions.contains(&me))
                .await;
        }
        let tracks: Vec<TrackInfo> = self.tracks.values().cloned().collect();
        for track in &tracks {
            self.place_track(track).await;
        }
    }

    /// Tells every worker here but the publisher's of a track, and where to pull it from.
    async fn place_track(&self, track: &TrackInfo) {
        let Some(origin) = &track.partition else {
            return;
        };
        for (i, w) in self.media.workers().iter().enumerate() {
            let me = PartitionRef::new(&self.node, i as u16);
            if &me == origin {
                continue;
            }
            let from = upstream(origin, &me, &self.partitions, RELAY_FANOUT, track.id.0);
            let _ = w
                .add_remote_track(self.meeting.clone(), track.clone(), from.to_string())
                .await;
        }
    }

    /// Keeps a batch for the connections still waiting for their welcome; one that waits
    /// for too long is dropped.
    fn keep_for_unbound(&mut self, events: &[SeqEvent]) {
        let mut overflowing = Vec::new();
        for (id, conn) in &mut self.conns {
            if let Some(kept) = &mut conn.kept {
                kept.extend_from_slice(events);
                if kept.len() > MAX_KEPT_EVENTS {
                    overflowing.push(*id);
                }
            }
        }
        for id in overflowing {
            tracing::warn!(meeting = %self.meeting, "a join waited too long for its welcome: dropped");
            self.forget(id);
        }
    }

    /// Sends a batch to every bound connection here: serialized once, the bytes shared (once
    /// per way of seeing it when it holds messages for some only: those withheld from the
    /// others). A connection whose welcome already covers part of it (bound while the batch
    /// was on its way) gets only what follows its welcome. A connection whose queue is full
    /// is dropped; its client resumes and catches up.
    async fn fan_out(&mut self, events: Vec<SeqEvent>) {
        let (Some(first), Some(last)) =
            (events.first().map(|e| e.seq), events.last().map(|e| e.seq))
        else {
            return;
        };
        let serialize = |batch: &[SeqEvent]| {
            serde_json::to_string(&EventsMsg { events: batch })
                .map(Utf8Bytes::from)
                .map_err(|e| tracing::error!("event batch not serializable: {e}"))
                .ok()
        };
        let private: Vec<&SeqEvent> = events.iter().filter(|e| e.is_private()).collect();
        // The text for everyone; with private events, per way of seeing the batch (which of
        // them one may read).
        let shared = if private.is_empty() {
            match serialize(&events) {
                Some(text) => Some(text),
                None => return,
            }
        } else {
            None
        };
        let mut texts: HashMap<Vec<bool>, Option<Utf8Bytes>> = HashMap::new();
        let mut too_slow = Vec::new();
        let mut partly = Vec::new();
        for (id, conn) in self.conns.iter().filter(|(_, c)| c.kept.is_none()) {
            if conn.after >= last {
                continue;
            }
            if conn.after >= first {
                partly.push(*id);
                continue;
            }
            let text = match &shared {
                Some(text) => text,
                None => {
                    let reader = conn.participant;
                    let sees: Vec<bool> = private
                        .iter()
                        .map(|e| reader.is_some_and(|p| e.is_for(p)))
                        .collect();
                    let text = texts.entry(sees).or_insert_with(|| {
                        let seen: Vec<SeqEvent> =
                            events.iter().map(|e| as_seen(e, reader)).collect();
                        serialize(&seen)
                    });
                    let Some(text) = text else {
                        continue;
                    };
                    text
                }
            };
            if conn.tx.try_send(SessionMsg::Text(text.clone())).is_err() {
                too_slow.push(*id);
            }
        }
        if !partly.is_empty() {
            for id in partly {
                if let Some(conn) = self.conns.get(&id) {
                    let after: Vec<SeqEvent> = events
                        .iter()
                        .filter(|e| e.seq > conn.after)
                        .map(|e| as_seen(e, conn.participant))
                        .collect();
                    send_one(conn, &ServerMsg::Events { events: after });
                }
            }
        }
        for id in too_slow {
            tracing::warn!(meeting = %self.meeting, conn = id, "connection too slow, dropped");
            self.drop_conn(id).await;
        }
    }

    /// Drops a connection's queue, which ends its session task ("resume to continue"), and
    /// tells the coordinator it is disconnected.
    async fn drop_conn(&mut self, id: u64) {
        let participant = self.conns.get(&id).and_then(|c| c.participant);
        self.forget(id);
        if let Some(p) = participant {
            let conn = ConnRef {
                node: self.node.clone(),
                conn: id,
            };
            if let Err(e) = self.client.disconnect(p, conn).await {
                tracing::warn!(meeting = %self.meeting, %p, "disconnect not told: {e}");
            }
        }
    }

    /// Passes events through the gate on: their effect on media here, then to everyone
    /// here (held for those whose welcome is on its way). A gap is asked for, once.
    async fn pass_on(&mut self, passed: Passed) {
        if let Some(after) = passed.ask_after {
            let (client, mailbox) = (self.client.clone(), self.mailbox.clone());
            tokio::spawn(async move {
                let answer = client.missed(after).await.map_err(|e| {
                    tracing::warn!(meeting = %client.meeting(), %after, "missed events not had: {e}");
                });
                if let Some(mailbox) = mailbox.upgrade() {
                    let _ = mailbox.send(LinkCmd::Missed(answer)).await;
                }
            });
        }
        let events = passed.events;
        if events.is_empty() {
            return;
        }
        for ev in &events {
            match &ev.event {
                MeetingEvent::TrackUnpublished { track } => {
                    self.tracks.remove(track);
                    for w in self.media.workers() {
                        let _ = w.unbind_track(self.meeting.clone(), *track).await;
                    }
                }
                MeetingEvent::TrackPublished { track } => {
                    self.tracks.insert(track.id, track.clone());
                    self.place_track(track).await;
                }
                _ => {}
            }
        }
        self.keep_for_unbound(&events);
        self.fan_out(events).await;
        if self.gate.overflowing() {
            self.give_up_gap().await;
        }
    }

    /// The missed events cannot be had: everyone here starts again from a snapshot (their
    /// clients resume).
    async fn give_up_gap(&mut self) {
        let last = self.gate.give_up();
        tracing::warn!(meeting = %self.meeting, %last, "missed events cannot be had: this node's sessions resume");
        let conns: Vec<u64> = self.conns.keys().copied().collect();
        for conn in conns {
            self.drop_conn(conn).await;
        }
    }

    async fn handle_media(&mut self, ev: RoomEvent) {
        match ev {
            RoomEvent::TrackAdded {
                peer,
                participant,
                mid,
                source,
            } => {
                let Some((_, worker)) = self.peers.owner(peer) else {
                    return;
                };
                let Some(sfu) = self.worker(worker).cloned() else {
                    return;
                };
                // A round trip to the coordinator: not in the link's loop.
                let client = self.client.clone();
                let partition = PartitionRef::new(&self.node, worker);
                tokio::spawn(async move {
                    match client.publish(participant, source, partition).await {
                        Ok(track) => {
                            let _ = sfu.bind_track(peer, mid, track).await;
                        }
                        Err(e) => {
                            tracing::info!(meeting = %client.meeting(), %participant, "publish refused: {e}")
                        }
                    }
                });
            }
            RoomEvent::AudioLevels(levels) => self.client.report_levels(levels).await,
            RoomEvent::Offer { peer, sdp, tracks } => {
                let conn = self.peers.owner(peer).and_then(|(p, _)| self.conn_of(p));
                if let Some(conn) = conn {
                    send_one(conn, &ServerMsg::Offer { sdp, tracks });
                }
            }
            RoomEvent::Slots { peer, slots } => {
                let conn = self.peers.owner(peer).and_then(|(p, _)| self.conn_of(p));
                if let Some(conn) = conn {
                    send_one(conn, &ServerMsg::Slots { slots });
                }
            }
            RoomEvent::PeerClosed { peer, reason } => {
                if let Some((participant, _)) = self.peers.owner(peer) {
                    self.peers.detach(participant);
                    if let Some(conn) = self.conn_of(participant) {
                        let _ = conn.tx.try_send(SessionMsg::MediaClosed {
                            reason: reason.clone(),
                        });
                    }
                    if let Err(e) = self.client.media_closed(participant).await {
                        tracing::warn!(meeting = %self.meeting, %participant, "tracks of a closed peer not dropped: {e}");
                    }
                }
            }
        }
    }
}

/// `ServerMsg::Events` over borrowed events: the same JSON, without copying the batch.
#[derive(serde::Serialize)]
#[serde(tag = "type", rename = "events")]
struct EventsMsg<'a> {
    events: &'a [SeqEvent],
}

/// Sends one connection a message of its own.
/// An event as the connection of `reader` gets it: a message for others withheld (from a
/// connection not bound to anyone too).
fn as_seen(e: &SeqEvent, reader: Option<ParticipantId>) -> SeqEvent {
    match reader {
        Some(p) => e.seen_by(p),
        None if e.is_private() => SeqEvent {
            seq: e.seq,
            event: MeetingEvent::Withheld,
        },
        None => e.clone(),
    }
}

fn send_one(conn: &Conn, msg: &ServerMsg) {
    match serde_json::to_string(msg) {
        Ok(s) => {
            let _ = conn.tx.try_send(SessionMsg::Text(s.into()));
        }
        Err(e) => tracing::error!("server message not serializable: {e}"),
    }
}

/// Shared by the node: the links of the meetings it has people in.
pub(crate) type Links = tokio::sync::Mutex<HashMap<MeetingId, LinkHandle>>;

/// Registers connection `conn` with the link of `client`'s meeting on this node, starting
/// the link if there is none (or the last one has just stopped).
pub(crate) async fn register(
    links: &Links,
    client: &MeetingClient,
    media: &Media,
    load: Arc<Load>,
    conn: u64,
    tx: mpsc::Sender<SessionMsg>,
) -> Result<LinkHandle, myriad_bus::BusError> {
    let mut links = links.lock().await;
    if let Some(link) = links.get(client.meeting()).filter(|l| !l.is_closed()) {
        // A link stopping right now refuses: a new one is started below.
        if link.register(conn, tx.clone()).await.is_ok() {
            return Ok(link.clone());
        }
    }
    let link = start(client.clone(), media.clone(), load).await?;
    if link.register(conn, tx).await.is_err() {
        return Err(myriad_bus::BusError::Unavailable(
            "the meeting link stopped at once".into(),
        ));
    }
    links.insert(client.meeting().clone(), link.clone());
    Ok(link)
}

#[cfg(test)]
mod tests {
    use myriad_proto::{MeetingEvent, Seq, SeqEvent, ServerMsg};

    use super::EventsMsg;

    #[test]
    fn borrowed_events_serialize_as_the_server_message() {
        let events = vec![SeqEvent {
            seq: Seq(4),
            event: MeetingEvent::Count { count: 2 },
        }];
        let borrowed = serde_json::to_string(&EventsMsg { events: &events }).unwrap();
        let owned = serde_json::to_string(&ServerMsg::Events { events }).unwrap();
        assert_eq!(borrowed, owned);
    }
}
