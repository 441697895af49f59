//! The sans-IO core of a meeting's coordinator: the [`Meeting`], the partition [`Planner`],
//! and who is connected where. Fed requests from nodes, audio levels, time and what the
//! cluster's registry says; it answers with what to do, in order ([`CoreOutput`]): keep a
//! commit in the journal, broadcast to every node, answer a request, stop. Nothing leaves
//! before a journal append made after it was decided: answers and broadcasts wait for the
//! commit of what led to them (an empty one, if nothing did), so a coordinator that lost the
//! meeting to another — its append refused — never acts on what it believes. The shell ([`crate::coordinator`]) does the I/O under the
//! meeting's lease; a simulation drives the same core over a simulated bus.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use myriad_plan::{Planner, PlannerConfig};
use myriad_proto::cluster::{NodeInfo, PartitionRef};
use myriad_proto::meeting::{
    ConnRef, EndReason, MeetingBroadcast, MeetingReply, MeetingRequest, Presence, RefusalKind,
};
use myriad_proto::{ParticipantId, SeqEvent, ServerMsg, PROTOCOL_VERSION};
use myriad_room::{
    Addressing, Commit, JoinRequest, Meeting, Output, Permissions, ResumeFrom, RoomError, Settled,
    StopReason,
};

/// A warm-up holds seats for a day at most (a request cannot keep a meeting open forever).
const MAX_HOLD_MS: u64 = 24 * 3600 * 1000;

/// What a coordinator needs to know of the cluster's nodes.
pub trait ClusterView {
    /// A living node's last announcement.
    fn node(&self, name: &str) -> Option<NodeInfo>;
    /// The living nodes.
    fn alive(&self) -> Vec<NodeInfo>;
    /// Whether a node is known to be gone (heard from once, silent since).
    fn is_gone(&self, name: &str) -> bool;
    /// The living nodes that pass their active health checks (where this process runs
    /// them): routes name only these.
    fn routable(&self) -> Vec<NodeInfo> {
        self.alive()
    }
}

/// What the core asks its shell to do, in this order.
#[derive(Debug)]
pub enum CoreOutput<R> {
    /// Keep this commit in the meeting's journal before anything that follows goes out;
    /// if that cannot be done (another coordinator wrote to it), stop acting.
    Append(Commit),
    /// To every node (an events batch's `sent_unix_ms` is the shell's to fill in).
    Broadcast(MeetingBroadcast),
    /// The answer to a request, to where it asked to be answered.
    Reply(R, MeetingReply),
    /// The meeting ended or went idle: stop, and give the lease up.
    Stopped(StopReason),
}

pub struct CoordinatorCore<R> {
    meeting: Meeting,
    /// Who is in which partition (rebuilt from what nodes report after a takeover).
    planner: Planner,
    /// Each participant's current signalling connection.
    conns: HashMap<ParticipantId, ConnRef>,
    /// Each participant's latest connection, connected or not: a node's report of an older
    /// one is stale.
    latest: HashMap<ParticipantId, ConnRef>,
    /// The connection a resume replaced, until it is told to go.
    replaced: HashMap<ParticipantId, ConnRef>,
    /// Answers held until the commit holding what their requests changed is kept.
    waiting: Vec<(R, MeetingReply)>,
    out: VecDeque<CoreOutput<R>>,
    /// Broadcasts waiting for the next commit to be kept (see [`Self::release_held`]).
    held: Vec<MeetingBroadcast>,
    /// Seats readied on nodes ahead of people forecast to come, until when.
    reservations: HashMap<String, Instant>,
    /// Who joined (identity, node), for the meeting's turnout record.
    joined: Vec<(String, String)>,
}

impl<R> CoordinatorCore<R> {
    /// The core of `meeting` (new, or restored from its journal: its seats are known).
    pub fn new(meeting: Meeting, partitions: PlannerConfig) -> Self {
        let mut planner = Planner::new(meeting.id().as_str(), partitions);
        for (participant, partition) in meeting.seats() {
            planner.place_at(participant, partition.clone());
        }
        Self {
            meeting,
            planner,
            conns: HashMap::new(),
            latest: HashMap::new(),
            replaced: HashMap::new(),
            waiting: Vec::new(),
            out: VecDeque::new(),
            held: Vec::new(),
            reservations: HashMap::new(),
            joined: Vec::new(),
        }
    }

    pub fn meeting(&self) -> &Meeting {
        &self.meeting
    }

    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// Who is connected, and through which connection.
    pub fn connections(&self) -> impl Iterator<Item = (ParticipantId, &ConnRef)> {
        self.conns.iter().map(|(p, c)| (*p, c))
    }

    /// This coordinator took the meeting over (lease epoch `epoch`): nodes are told (they
    /// report who is connected to them), and the last commit's events go out again, as the
    /// last holder may have stopped before sending them (nodes drop what they have).
    pub fn took_over(&mut self, epoch: u64, last_commit: Vec<SeqEvent>) {
        self.out
            .push_back(CoreOutput::Broadcast(MeetingBroadcast::TookOver { epoch }));
        if !last_commit.is_empty() {
            self.out
                .push_back(CoreOutput::Broadcast(MeetingBroadcast::Events {
                    events: last_commit,
                    sent_unix_ms: 0,
                }));
        }
    }

    /// A request from a node (or one that could not be read: refused); its answer, if it
    /// wants one, waits for the commit of what it changed.
    pub fn handle_request(
        &mut self,
        now: Instant,
        req: Result<MeetingRequest, String>,
        reply_to: Option<R>,
        cluster: &dyn ClusterView,
    ) {
        let req = match req {
            Ok(req) => req,
            Err(e) => {
                if let Some(to) = reply_to {
                    self.waiting.push((to, refused(RefusalKind::BadRequest, e)));
                }
                return;
            }
        };
        let reply = self.handle(now, req, cluster);
        if let Some(to) = reply_to {
            self.waiting.push((to, reply));
        }
    }

    pub fn handle_levels(&mut self, now: Instant, levels: &[(ParticipantId, f32)]) {
        self.meeting.handle_audio_levels(now, levels);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.meeting.handle_timeout(now);
        let lapsed: Vec<String> = self
            .reservations
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(node, _)| node.clone())
            .collect();
        for node in lapsed {
            self.reservations.remove(&node);
            self.planner.release(&node);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let lapse = self.reservations.values().min().copied();
        let meeting = self.meeting.poll_timeout().map(|(t, _)| t);
        meeting.into_iter().chain(lapse).min()
    }

    /// Who joined since the last call (identity, node), in order.
    pub fn take_joined(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.joined)
    }

    /// The next thing to do. Answers go out once nothing waits to be committed, so none is
    /// sent before what its request changed is kept.
    pub fn poll_output(&mut self) -> Option<CoreOutput<R>> {
        loop {
            if let Some(out) = self.out.pop_front() {
                return Some(out);
            }
            match self.meeting.poll_output() {
                Some(Output::Commit(commit)) => {
                    let events = commit.events.clone();
                    self.out.push_back(CoreOutput::Append(commit));
                    if !events.is_empty() {
                        self.out
                            .push_back(CoreOutput::Broadcast(MeetingBroadcast::Events {
                                events,
                                sent_unix_ms: 0,
                            }));
                    }
                    self.release_held();
                }
                Some(Output::Plan(plan)) => self.held.push(MeetingBroadcast::Plan { plan }),
                Some(Output::SessionEnded {
                    participant,
                    reason,
                }) => {
                    let conn = if reason == EndReason::Replaced {
                        self.replaced.remove(&participant)
                    } else {
                        self.planner.remove(participant);
                        self.latest.remove(&participant);
                        self.conns.remove(&participant)
                    };
                    self.held.push(MeetingBroadcast::SessionEnded {
                        participant,
                        conn,
                        reason,
                    });
                }
                Some(Output::Stopped(reason)) => {
                    self.answer_waiting();
                    self.held.push(MeetingBroadcast::Stopped);
                    self.fence();
                    self.out.push_back(CoreOutput::Stopped(reason));
                }
                None => {
                    if self.planner.take_changed() {
                        let partitions = self.planner.partitions();
                        self.held.push(MeetingBroadcast::Partitions { partitions });
                    } else if !self.meeting.has_uncommitted() && !self.held.is_empty() {
                        self.fence();
                    } else if !self.meeting.has_uncommitted() && !self.waiting.is_empty() {
                        self.answer_waiting();
                    } else {
                        return None;
                    }
                }
            }
        }
    }

    /// Broadcasts decided before a commit go out once it is kept: a coordinator that lost
    /// the meeting to another (its append is refused) says nothing more.
    fn release_held(&mut self) {
        for b in std::mem::take(&mut self.held) {
            self.out.push_back(CoreOutput::Broadcast(b));
        }
    }

    /// With nothing to commit, an empty commit proves the journal is still this
    /// coordinator's before what is held goes out.
    fn fence(&mut self) {
        if !self.held.is_empty() {
            self.out.push_back(CoreOutput::Append(Commit::default()));
            self.release_held();
        }
    }

    fn answer_waiting(&mut self) {
        for (to, reply) in std::mem::take(&mut self.waiting) {
            self.out.push_back(CoreOutput::Reply(to, reply));
        }
    }

    fn handle(
        &mut self,
        now: Instant,
        req: MeetingRequest,
        cluster: &dyn ClusterView,
    ) -> MeetingReply {
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
                let identity = joiner.identity.clone();
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
                        self.latest.insert(participant, conn.clone());
                        self.conns.insert(participant, conn);
                        let partition = self.planner.place(participant, &node, workers(&node)).ok();
                        m.seat(now, participant, partition.clone());
                        self.joined.push((identity, node));
                        self.joined(participant, session_token, false, None, partition)
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
                self.latest.insert(participant, conn.clone());
                if let Some(old) = self.conns.insert(participant, conn) {
                    self.replaced.insert(participant, old);
                }
                // What it missed, the unpublications above included: the welcome brings it to
                // the meeting's sequence as of now.
                let missed = match from {
                    ResumeFrom::Events(_) => m.events_for(last_seq, participant),
                    ResumeFrom::Snapshot(_) => None,
                };
                let partition = self.planner.place(participant, &node, workers(&node)).ok();
                m.seat(now, participant, partition.clone());
                self.joined(participant, session_token, true, missed, partition)
            }
            MeetingRequest::Disconnect { participant, conn } => {
                if self.conns.get(&participant) == Some(&conn) {
                    self.conns.remove(&participant);
                    m.handle_disconnect(now, participant);
                }
                MeetingReply::Done
            }
            MeetingRequest::ConnLost { conn } => {
                // A join whose answer never reached its node: the session it made is
                // disconnected, and expires unless someone resumes it.
                let gone: Vec<ParticipantId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| **c == conn)
                    .map(|(p, _)| *p)
                    .collect();
                for participant in gone {
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
            MeetingRequest::MuteAll { actor } => done(m.handle_mute_all(now, actor)),
            MeetingRequest::SetAudience { actor, audience } => {
                done(m.handle_set_audience(now, actor, audience))
            }
            MeetingRequest::ChatHistory {
                before,
                limit,
                participant,
            } => MeetingReply::ChatHistory {
                messages: m.chat_history(before, limit as usize, participant),
            },
            MeetingRequest::DeleteChat { actor, id } => done(m.handle_delete_chat(now, actor, id)),
            MeetingRequest::LikeChat { participant, id } => {
                done(m.handle_like_chat(now, participant, id))
            }
            MeetingRequest::ReleaseChat { actor, id } => {
                done(m.handle_release_chat(now, actor, id))
            }
            MeetingRequest::BanChat {
                actor,
                target,
                banned,
            } => done(m.handle_ban_chat(now, actor, target, banned)),
            MeetingRequest::Ask { participant, text } => {
                done(m.handle_ask(now, participant, &text).map(|_| ()))
            }
            MeetingRequest::Upvote {
                participant,
                question,
            } => done(m.handle_upvote(now, participant, question)),
            MeetingRequest::SettleQuestion {
                actor,
                question,
                dismiss,
                text,
            } => {
                let settled = if dismiss {
                    Settled::Dismissed
                } else {
                    Settled::Answered(text)
                };
                done(m.handle_settle_question(now, actor, question, settled))
            }
            MeetingRequest::Lock { actor, locked } => done(m.handle_lock(now, actor, locked)),
            MeetingRequest::Breakouts { actor, breakout } => {
                done(m.handle_breakouts(now, actor, breakout))
            }
            MeetingRequest::Board { participant, board } => {
                done(m.handle_board(now, participant, board))
            }
            MeetingRequest::BoardState => {
                let (shapes, seq) = m.board();
                MeetingReply::Board { shapes, seq }
            }
            MeetingRequest::BreakoutPass { participant, room } => {
                match m.breakout_pass(participant, room) {
                    Ok((room, meeting, moderate)) => MeetingReply::BreakoutPass {
                        room,
                        meeting,
                        moderate,
                    },
                    Err(e) => room_refused(&e),
                }
            }
            MeetingRequest::SetWaitingRoom { actor, on } => {
                done(m.handle_set_waiting_room(now, actor, on))
            }
            MeetingRequest::Admit {
                actor,
                ticket,
                admit,
            } => done(m.handle_admit(now, actor, ticket, admit)),
            MeetingRequest::End { actor } => done(m.handle_end(now, actor)),
            MeetingRequest::Chat {
                participant,
                text,
                to_hosts,
                mentions,
            } => done(m.handle_chat(now, participant, &text, Addressing { to_hosts, mentions })),
            MeetingRequest::SetDefaultRole { actor, role } => {
                done(m.handle_set_default_role(now, actor, role))
            }
            MeetingRequest::Spotlight { actor, target } => {
                done(m.handle_spotlight(now, actor, target))
            }
            MeetingRequest::SetRole {
                actor,
                target,
                role,
            } => done(m.handle_set_role(now, actor, target, role)),
            MeetingRequest::Hand {
                participant,
                raised,
            } => done(m.handle_hand(now, participant, raised)),
            MeetingRequest::Reactions { counts } => done(m.handle_reactions(now, &counts)),
            MeetingRequest::CreatePoll {
                actor,
                question,
                kind,
                anonymous,
            } => match m.handle_create_poll(now, actor, &question, kind, anonymous) {
                Ok(poll) => MeetingReply::PollCreated { poll },
                Err(e) => room_refused(&e),
            },
            MeetingRequest::Vote {
                participant,
                poll,
                answer,
            } => done(m.handle_vote(now, participant, poll, answer)),
            MeetingRequest::ClosePoll { actor, poll } => {
                done(m.handle_close_poll(now, actor, poll))
            }
            MeetingRequest::PollAnswers { poll } => match m.poll_answers(poll) {
                Ok((poll, answers)) => MeetingReply::PollAnswers { poll, answers },
                Err(e) => room_refused(&e),
            },
            MeetingRequest::LowerHands { actor, target } => {
                done(m.handle_lower_hands(now, actor, target))
            }
            MeetingRequest::Stage { actor, target, on } => {
                done(m.handle_stage(now, actor, target, on))
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
            MeetingRequest::Prepare {
                node,
                seats,
                hold_ms,
            } => {
                let until = now + std::time::Duration::from_millis(hold_ms.min(MAX_HOLD_MS));
                self.planner.reserve(&node, seats, workers(&node));
                self.meeting.hold_until(until);
                self.reservations.insert(node, until);
                MeetingReply::Prepared {
                    seated: self.planner.seated() as u32,
                }
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
                nodes: self.planner.route(&cluster.routable(), region.as_deref()),
            },
            MeetingRequest::Participants { after, limit } => MeetingReply::Page {
                count: m.count(),
                participants: m.participants_page(after, limit.min(1000) as usize),
            },
            MeetingRequest::Present {
                node,
                up_to,
                present,
                joining,
            } => {
                // Connections the node no longer has (their disconnect was lost on the way).
                let listed: HashSet<u64> =
                    present.iter().map(|p| p.conn.conn).chain(joining).collect();
                let gone: Vec<ParticipantId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.node == node && c.conn < up_to && !listed.contains(&c.conn))
                    .map(|(p, _)| *p)
                    .collect();
                for participant in gone {
                    self.conns.remove(&participant);
                    m.handle_disconnect(now, participant);
                }
                // Those connected nowhere as far as this coordinator knows (it took over, or
                // their disconnect came first) are connected there.
                let back: Vec<Presence> = present
                    .into_iter()
                    .filter(|p| {
                        !self.conns.contains_key(&p.participant)
                            && m.participant(p.participant).is_some()
                            && self
                                .latest
                                .get(&p.participant)
                                .is_none_or(|latest| *latest == p.conn)
                    })
                    .collect();
                let ids: Vec<ParticipantId> = back.iter().map(|p| p.participant).collect();
                m.handle_present(now, &ids);
                for p in back {
                    self.latest.insert(p.participant, p.conn.clone());
                    self.conns.insert(p.participant, p.conn);
                    if let Some(partition) = p.partition {
                        if self.planner.place_at(p.participant, partition.clone()) {
                            m.seat(now, p.participant, Some(partition));
                        }
                    }
                }
                MeetingReply::Presence { seq: m.seq() }
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
            .then(|| Box::new(self.meeting.snapshot_for(participant)));
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
    pub fn drop_lost_nodes(&mut self, now: Instant, cluster: &dyn ClusterView) {
        for (participant, partition) in self.planner.mark_lost(|n| cluster.is_gone(n)) {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)] // the tests pick their start time

    use myriad_proto::meeting::Joiner;
    use myriad_proto::{MeetingEvent, MeetingId, Role, Seq, TrackSource};
    use myriad_room::MeetingConfig;

    use super::*;

    /// Two media nodes, both alive.
    struct Nodes;

    impl ClusterView for Nodes {
        fn node(&self, name: &str) -> Option<NodeInfo> {
            Some(NodeInfo {
                name: name.into(),
                region: "r".into(),
                url: String::new(),
                relays: Vec::new(),
                media: true,
                workers: 2,
                capacity: 100,
                participants: 0,
                partitions: 0,
                cpu: 0.0,
                egress_bps: 0,
                draining: false,
                addrs: Vec::new(),
                location: None,
            })
        }

        fn alive(&self) -> Vec<NodeInfo> {
            ["n1", "n2"].iter().filter_map(|n| self.node(n)).collect()
        }

        fn is_gone(&self, _name: &str) -> bool {
            false
        }
    }

    fn conn(node: &str, conn: u64) -> ConnRef {
        ConnRef {
            node: node.into(),
            conn,
        }
    }

    /// Ada's join, through `node`.
    fn ada_joins_through(node: &str) -> MeetingRequest {
        let joiner = Joiner {
            identity: "ada".into(),
            name: "Ada".into(),
            role: Role::Panelist,
            publish: true,
            subscribe: true,
            moderate: false,
        };
        MeetingRequest::Join {
            joiner,
            session_token: "secret".into(),
            conn: conn(node, 1),
        }
    }

    /// Asks, then drains (time going on by ticks) until the answer comes after its commit.
    fn ask(
        core: &mut CoordinatorCore<u32>,
        now: &mut Instant,
        req: MeetingRequest,
    ) -> MeetingReply {
        core.handle_request(*now, Ok(req), Some(7), &Nodes);
        for _ in 0..10 {
            while let Some(out) = core.poll_output() {
                if let CoreOutput::Reply(7, r) = out {
                    return r;
                }
            }
            *now += std::time::Duration::from_millis(30);
            core.handle_timeout(*now);
        }
        panic!("no answer")
    }

    #[test]
    fn a_resume_on_another_node_brings_the_client_to_its_welcomes_sequence() {
        let mut now = Instant::now();
        let meeting = Meeting::new(
            MeetingId::parse("m").unwrap(),
            MeetingConfig::default(),
            now,
        );
        let mut core = CoordinatorCore::new(meeting, PlannerConfig::default());
        let join = ada_joins_through("n1");
        let MeetingReply::Joined {
            participant,
            partition: Some(partition),
            ..
        } = ask(&mut core, &mut now, join)
        else {
            panic!("not joined");
        };
        for source in [TrackSource::Camera, TrackSource::Microphone] {
            let publish = MeetingRequest::Publish {
                participant,
                source,
                partition: partition.clone(),
            };
            assert!(matches!(
                ask(&mut core, &mut now, publish),
                MeetingReply::Published { .. }
            ));
        }
        let last_seq = core.meeting().seq();
        // Its node dies; it resumes on n2: its tracks from n1 go, and the events saying so
        // are among those it missed, up to its welcome's sequence.
        let resume = MeetingRequest::Resume {
            identity: "ada".into(),
            participant,
            session_token: "secret".into(),
            last_seq,
            conn: conn("n2", 1),
        };
        let MeetingReply::Joined {
            missed,
            seq,
            partition: Some(now_in),
            ..
        } = ask(&mut core, &mut now, resume)
        else {
            panic!("not resumed");
        };
        assert_eq!(now_in.node, "n2");
        let seqs: Vec<Seq> = missed.iter().map(|e| e.seq).collect();
        let expected: Vec<Seq> = (last_seq.0 + 1..=seq.0).map(Seq).collect();
        assert_eq!(
            seqs, expected,
            "every event up to the welcome's, none after"
        );
        let unpublished = missed
            .iter()
            .filter(|e| matches!(e.event, MeetingEvent::TrackUnpublished { .. }))
            .count();
        assert_eq!(unpublished, 2);
    }

    #[test]
    fn prepared_seats_open_ahead_hold_the_empty_meeting_and_lapse() {
        let mut now = Instant::now();
        let config = MeetingConfig::default();
        let idle = config.idle_stop;
        let meeting = Meeting::new(MeetingId::parse("m").unwrap(), config, now);
        let mut core = CoordinatorCore::new(meeting, PlannerConfig::with_capacity(10));
        let hold = idle * 2;
        let prepare = MeetingRequest::Prepare {
            node: "n1".into(),
            seats: 15,
            hold_ms: hold.as_millis() as u64,
        };
        assert_eq!(
            ask(&mut core, &mut now, prepare),
            MeetingReply::Prepared { seated: 0 }
        );
        assert_eq!(core.planner().partitions().len(), 2, "both workers of n1");
        let held_until = now + hold;
        core.handle_timeout(now + idle);
        assert!(!core.meeting().is_stopped(), "held past the idle time");
        let join = ada_joins_through("n1");
        assert!(matches!(
            ask(&mut core, &mut now, join),
            MeetingReply::Joined { .. }
        ));
        assert_eq!(core.take_joined(), [("ada".to_owned(), "n1".to_owned())]);
        assert!(core.take_joined().is_empty());
        // The hold lapses: only what the one person needs stays open.
        let due = core.poll_timeout().unwrap();
        assert!(due <= held_until);
        core.handle_timeout(held_until);
        assert_eq!(core.planner().partitions().len(), 1);
    }
}
