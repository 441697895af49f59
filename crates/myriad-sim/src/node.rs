//! A simulated `myriad serve` node, as `myriad-node` behaves: signalling connections of its
//! clients; per meeting a link that passes the coordinator's batches through the real
//! [`SeqGate`] to the bound connections (and keeps them for those whose welcome is on its
//! way); asks to coordinators as `MeetingClient` makes them (a coordinator is started here,
//! under the lease, when nobody answers); and the meeting coordinators it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use myriad_proto::cluster::{NodeInfo, PartitionRef};
use myriad_proto::meeting::{
    ConnRef, EndReason, Joiner, MeetingBroadcast, MeetingReply, MeetingRequest, Presence,
    RefusalKind,
};
use myriad_proto::{ParticipantId, Role, Seq, SeqEvent, ServerMsg};
use myriad_room::{Passed, SeqGate};

use crate::client::{Ballot, ToClient};
use crate::coordinator::SimCoordinator;
use crate::world::{Answer, AskRef, ClientId, Event, MeetingIx, NodeId, World};
use crate::Config;

/// How long an ask waits for its answer (as `MeetingClient`'s).
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ask waits for a coordinator to exist.
const COORDINATOR_WAIT: Duration = Duration::from_secs(6);
/// While another node holds the lease but does not answer yet, ask again this often.
const HELD_RETRY: Duration = Duration::from_millis(200);
/// How often a node announces itself.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How often a node tells each meeting's coordinator its connections (as the link does).
const PRESENCE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeTimer {
    Heartbeat,
    /// Time to tell every coordinator of a meeting with people here who they are.
    Presence,
    /// The ask's attempt went unanswered for [`ASK_TIMEOUT`].
    AskTimeout {
        ask: u64,
        attempt: u32,
    },
    /// Ask again (nobody coordinated the meeting a moment ago).
    AskRetry {
        ask: u64,
    },
}

/// The poll the simulated clients answer: the meeting's first (more may be opened when two
/// nodes open it at once; those stay unanswered).
pub(crate) const SIM_POLL: u64 = 1;
/// The question they upvote: the Q&A's first (its asker's vote is its first).
pub(crate) const SIM_QUESTION: u64 = 1;

#[derive(Debug, Clone)]
enum Purpose {
    Join {
        conn: u64,
    },
    Chat {
        conn: u64,
        text: String,
    },
    Vote {
        conn: u64,
        ballot: Ballot,
    },
    Leave {
        conn: u64,
    },
    Route {
        client: ClientId,
    },
    Media,
    Missed,
    /// A presence report; `empty`: it listed nobody.
    Presence {
        empty: bool,
    },
    /// Told, no answer needed (disconnects).
    Tell,
}

#[derive(Debug)]
struct Ask {
    meeting: MeetingIx,
    req: MeetingRequest,
    purpose: Purpose,
    deadline: Duration,
    attempt: u32,
    timed_out: bool,
}

#[derive(Debug)]
struct Conn {
    client: ClientId,
    meeting: MeetingIx,
    participant: Option<ParticipantId>,
    partition: Option<PartitionRef>,
    /// Events up to here the client has.
    after: Seq,
    /// Until bound: the events passed on since it registered.
    kept: Option<Vec<SeqEvent>>,
}

#[derive(Debug, Default)]
struct Link {
    /// Set once the meeting's sequence is known (the Media answer).
    gate: Option<SeqGate>,
    /// Broadcasts heard before that.
    queued: Vec<Rc<MeetingBroadcast>>,
    /// Joins waiting for that too: a link starts before its first connection registers.
    joins: Vec<(u64, MeetingRequest)>,
    conns: BTreeSet<u64>,
    highest_conn: u64,
}

pub(crate) struct Node {
    pub name: String,
    pub region: String,
    pub alive: bool,
    pub incarnation: u64,
    pub cut: bool,
    pub frozen_until: Option<Duration>,
    pub workers: u16,
    conns: BTreeMap<u64, Conn>,
    /// Connections bound to a participant (its load, as announced).
    bound: u32,
    next_conn: u64,
    links: BTreeMap<MeetingIx, Link>,
    asks: BTreeMap<u64, Ask>,
    next_ask: u64,
    pub coordinators: BTreeMap<MeetingIx, SimCoordinator>,
}

impl Node {
    pub fn new(index: NodeId, config: &Config) -> Self {
        Self {
            name: node_name(index),
            region: config.region_of_node(index),
            alive: true,
            incarnation: 1,
            cut: false,
            frozen_until: None,
            workers: config.workers,
            conns: BTreeMap::new(),
            bound: 0,
            next_conn: 1,
            links: BTreeMap::new(),
            asks: BTreeMap::new(),
            next_ask: 1,
            coordinators: BTreeMap::new(),
        }
    }

    pub fn coordinates(&self, meeting: MeetingIx) -> bool {
        self.coordinators.contains_key(&meeting)
    }

    /// Whether it listens to the meeting's broadcasts (someone here is in it).
    pub fn has_link(&self, meeting: MeetingIx) -> bool {
        self.links.contains_key(&meeting)
    }

    /// What it announces in the registry.
    pub fn info(&self, capacity: u32) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            region: self.region.clone(),
            url: format!("sim://{}", self.name),
            relays: Vec::new(),
            media: true,
            workers: self.workers,
            capacity,
            participants: self.bound,
            partitions: self.links.len() as u32,
            cpu: 0.0,
            egress_bps: 0,
            draining: false,
            addrs: Vec::new(),
            location: None,
        }
    }

    /// The bound connection `conn`: its participant, if it is still this client's.
    pub fn bound(&self, conn: u64) -> Option<(ClientId, MeetingIx, ParticipantId)> {
        let c = self.conns.get(&conn)?;
        Some((c.client, c.meeting, c.participant?))
    }

    /// The partition the coordinator seated connection `conn` in.
    pub fn partition_of(&self, conn: u64) -> Option<&PartitionRef> {
        self.conns.get(&conn)?.partition.as_ref()
    }
}

pub(crate) fn node_name(index: NodeId) -> String {
    format!("n{index}")
}

pub(crate) fn node_index(name: &str) -> Option<NodeId> {
    name.strip_prefix('n')?.parse().ok()
}

impl World {
    pub fn start_nodes(&mut self) {
        for n in 0..self.nodes.len() {
            self.start_node(n);
        }
    }

    fn start_node(&mut self, node: NodeId) {
        self.heartbeat(node);
        let incarnation = self.nodes[node].incarnation;
        let offset = self.rng.duration_below(PRESENCE_EVERY);
        self.after(
            offset,
            Event::Node {
                node,
                incarnation,
                what: NodeTimer::Presence,
            },
        );
    }

    fn heartbeat(&mut self, node: NodeId) {
        if self.on_bus(node) {
            self.store.heard(node, self.now);
        }
        let incarnation = self.nodes[node].incarnation;
        self.after(
            HEARTBEAT,
            Event::Node {
                node,
                incarnation,
                what: NodeTimer::Heartbeat,
            },
        );
    }

    pub fn node_timer(&mut self, node: NodeId, what: NodeTimer) {
        match what {
            NodeTimer::Heartbeat => self.heartbeat(node),
            NodeTimer::Presence => {
                let meetings: Vec<MeetingIx> = self.nodes[node].links.keys().copied().collect();
                for meeting in meetings {
                    self.tell_presence(node, meeting);
                }
                let incarnation = self.nodes[node].incarnation;
                self.after(
                    PRESENCE_EVERY,
                    Event::Node {
                        node,
                        incarnation,
                        what: NodeTimer::Presence,
                    },
                );
            }
            NodeTimer::AskTimeout { ask, attempt } => {
                let Some(a) = self.nodes[node]
                    .asks
                    .get_mut(&ask)
                    .filter(|a| a.attempt == attempt)
                else {
                    return;
                };
                // As `MeetingClient`: once, a coordinator whose lease ran out (it may be hung)
                // is replaced here, and the ask made again.
                let meeting = a.meeting;
                let first = !a.timed_out;
                a.timed_out = true;
                if first && self.on_bus(node) && self.start_coordinator(node, meeting) {
                    self.send_ask(node, ask);
                } else {
                    self.ask_failed(node, ask);
                }
            }
            NodeTimer::AskRetry { ask } => self.send_ask(node, ask),
        }
    }

    /// Asks the meeting's coordinator; the answer comes to [`World::node_answer`].
    fn ask(&mut self, node: NodeId, meeting: MeetingIx, req: MeetingRequest, purpose: Purpose) {
        let n = &mut self.nodes[node];
        let ask = n.next_ask;
        n.next_ask += 1;
        n.asks.insert(
            ask,
            Ask {
                meeting,
                req,
                purpose,
                deadline: self.now + COORDINATOR_WAIT,
                attempt: 0,
                timed_out: false,
            },
        );
        self.send_ask(node, ask);
    }

    fn send_ask(&mut self, node: NodeId, ask: u64) {
        let incarnation = self.nodes[node].incarnation;
        let Some(a) = self.nodes[node].asks.get_mut(&ask) else {
            return;
        };
        a.attempt += 1;
        let (attempt, meeting, req) = (a.attempt, a.meeting, a.req.clone());
        let from = AskRef {
            node,
            incarnation,
            ask,
        };
        self.send_bus(node, Event::Rpc { from, meeting, req });
        self.after(
            ASK_TIMEOUT,
            Event::Node {
                node,
                incarnation,
                what: NodeTimer::AskTimeout { ask, attempt },
            },
        );
    }

    pub fn node_answer(&mut self, node: NodeId, ask: u64, answer: Answer) {
        match answer {
            Answer::NoResponders => {
                let Some(a) = self.nodes[node].asks.get(&ask) else {
                    return;
                };
                let (meeting, deadline) = (a.meeting, a.deadline);
                if self.now >= deadline {
                    self.ask_failed(node, ask);
                } else if self.on_bus(node) && self.start_coordinator(node, meeting) {
                    self.send_ask(node, ask);
                } else {
                    let incarnation = self.nodes[node].incarnation;
                    self.after(
                        HELD_RETRY,
                        Event::Node {
                            node,
                            incarnation,
                            what: NodeTimer::AskRetry { ask },
                        },
                    );
                }
            }
            Answer::Reply(reply) => {
                if let Some(a) = self.nodes[node].asks.remove(&ask) {
                    self.answered(node, a, Ok(reply));
                }
            }
        }
    }

    fn ask_failed(&mut self, node: NodeId, ask: u64) {
        if let Some(a) = self.nodes[node].asks.remove(&ask) {
            self.answered(node, a, Err(()));
        }
    }

    fn answered(&mut self, node: NodeId, ask: Ask, reply: Result<MeetingReply, ()>) {
        let meeting = ask.meeting;
        match (ask.purpose, reply) {
            (
                Purpose::Join { conn },
                Ok(MeetingReply::Joined {
                    participant,
                    welcome,
                    missed,
                    seq,
                    partition,
                }),
            ) => self.bind(node, conn, participant, *welcome, missed, seq, partition),
            (Purpose::Join { conn }, Ok(MeetingReply::Refused { kind, .. })) => {
                self.refuse_conn(node, conn, ToClient::Refused(kind));
            }
            (Purpose::Join { conn }, _) => {
                // Unanswered: whatever session the coordinator made for it is disconnected.
                let name = self.nodes[node].name.clone();
                self.ask(
                    node,
                    meeting,
                    MeetingRequest::ConnLost {
                        conn: ConnRef { node: name, conn },
                    },
                    Purpose::Tell,
                );
                self.refuse_conn(node, conn, ToClient::Refused(RefusalKind::BadRequest));
            }
            (Purpose::Chat { conn, text }, reply) => {
                if let Some(client) = self.nodes[node].conns.get(&conn).map(|c| c.client) {
                    let ok = matches!(reply, Ok(MeetingReply::Done));
                    let msg = if ok {
                        ToClient::ChatAcked(text)
                    } else {
                        ToClient::ChatFailed
                    };
                    self.tell_client(client, node, conn, msg);
                }
            }
            (Purpose::Vote { conn, ballot }, reply) => {
                let Some(client) = self.nodes[node].conns.get(&conn).map(|c| c.client) else {
                    return;
                };
                let msg = match reply {
                    Ok(MeetingReply::Done) => ToClient::VoteCounted(ballot),
                    // Asked again after an answer was lost: it was counted then.
                    Ok(MeetingReply::Refused {
                        kind: RefusalKind::AlreadyVoted,
                        ..
                    }) => ToClient::VoteCounted(ballot),
                    Ok(MeetingReply::Refused {
                        kind: RefusalKind::UnknownPoll | RefusalKind::UnknownQuestion,
                        ..
                    }) => {
                        // Nothing to vote in yet: a host opens the poll; the voter asks the
                        // question (its ask is its vote, an upvote after it is refused as
                        // already made, and counted).
                        self.open_ballot(node, meeting, conn, ballot);
                        ToClient::VoteNotCounted(ballot)
                    }
                    _ => ToClient::VoteNotCounted(ballot),
                };
                self.tell_client(client, node, conn, msg);
            }
            (Purpose::Leave { conn }, _) => {
                if let Some(c) = self.nodes[node].conns.get(&conn) {
                    let client = c.client;
                    self.forget(node, conn);
                    self.tell_client(client, node, conn, ToClient::End(EndReason::Left));
                }
            }
            (Purpose::Route { client }, reply) => {
                let nodes = match reply {
                    Ok(MeetingReply::Route { nodes }) => nodes,
                    _ => Vec::new(),
                };
                self.tell_client(client, node, 0, ToClient::Route(nodes));
            }
            (Purpose::Media, reply) => {
                let seq = match reply {
                    Ok(MeetingReply::Media { seq, .. }) => seq,
                    _ => Seq(0),
                };
                let Some(link) = self.nodes[node].links.get_mut(&meeting) else {
                    return;
                };
                link.gate = Some(SeqGate::new(seq));
                let (queued, joins) = (
                    std::mem::take(&mut link.queued),
                    std::mem::take(&mut link.joins),
                );
                for b in queued {
                    self.node_broadcast(node, meeting, b);
                }
                for (conn, req) in joins {
                    self.ask(node, meeting, req, Purpose::Join { conn });
                }
            }
            (
                Purpose::Missed,
                Ok(MeetingReply::Missed {
                    events: Some(events),
                }),
            ) => {
                let Some(gate) = self.gate(node, meeting) else {
                    return;
                };
                let passed = gate.offer(events);
                self.pass_on(node, meeting, passed);
            }
            (Purpose::Missed, Ok(MeetingReply::Missed { events: None })) => {
                self.give_up_gap(node, meeting);
            }
            (Purpose::Missed, _) => {
                if let Some(gate) = self.gate(node, meeting) {
                    gate.ask_failed();
                }
            }
            (Purpose::Presence { empty }, Ok(MeetingReply::Presence { seq })) => {
                // Nobody here and the coordinator heard so: the link may end.
                let links = &mut self.nodes[node].links;
                if empty && links.get(&meeting).is_some_and(|l| l.conns.is_empty()) {
                    links.remove(&meeting);
                    return;
                }
                let Some(gate) = self.gate(node, meeting) else {
                    return;
                };
                let ask_after = gate.behind(seq);
                self.pass_on(
                    node,
                    meeting,
                    Passed {
                        events: Vec::new(),
                        ask_after,
                    },
                );
            }
            (Purpose::Presence { .. } | Purpose::Tell, _) => {}
        }
    }

    fn gate(&mut self, node: NodeId, meeting: MeetingIx) -> Option<&mut SeqGate> {
        self.nodes[node].links.get_mut(&meeting)?.gate.as_mut()
    }

    /// A client connects and joins (or resumes) through this node.
    pub fn node_join(
        &mut self,
        node: NodeId,
        client: ClientId,
        resume: Option<(ParticipantId, String, Seq)>,
    ) -> u64 {
        let meeting = self.clients[client].meeting;
        let n = &mut self.nodes[node];
        let conn = n.next_conn;
        n.next_conn += 1;
        n.conns.insert(
            conn,
            Conn {
                client,
                meeting,
                participant: None,
                partition: None,
                after: Seq(0),
                kept: Some(Vec::new()),
            },
        );
        let new_link = !n.links.contains_key(&meeting);
        let link = n.links.entry(meeting).or_default();
        link.conns.insert(conn);
        link.highest_conn = link.highest_conn.max(conn);
        if new_link {
            self.ask(node, meeting, MeetingRequest::Media, Purpose::Media);
        }
        let conn_ref = ConnRef {
            node: self.nodes[node].name.clone(),
            conn,
        };
        let identity = self.clients[client].identity.clone();
        let req = match resume {
            Some((participant, session_token, last_seq)) => MeetingRequest::Resume {
                identity,
                participant,
                session_token,
                last_seq,
                conn: conn_ref,
            },
            None => MeetingRequest::Join {
                joiner: Joiner {
                    name: identity.clone(),
                    identity,
                    role: if client.is_multiple_of(50) {
                        Role::Panelist
                    } else {
                        Role::Attendee
                    },
                    publish: false,
                    subscribe: true,
                    moderate: false,
                },
                session_token: format!("secret-{client}-{}", self.now.as_micros()),
                conn: conn_ref,
            },
        };
        match self.nodes[node].links.get_mut(&meeting) {
            Some(link) if link.gate.is_none() => link.joins.push((conn, req)),
            _ => self.ask(node, meeting, req, Purpose::Join { conn }),
        }
        conn
    }

    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        node: NodeId,
        conn: u64,
        participant: ParticipantId,
        welcome: ServerMsg,
        missed: Vec<SeqEvent>,
        seq: Seq,
        partition: Option<PartitionRef>,
    ) {
        let Some(c) = self.nodes[node].conns.get_mut(&conn) else {
            return;
        };
        if c.participant.replace(participant).is_none() {
            self.nodes[node].bound += 1;
        }
        let Some(c) = self.nodes[node].conns.get_mut(&conn) else {
            return;
        };
        c.partition = partition;
        c.after = seq;
        let kept: Vec<SeqEvent> = c
            .kept
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.seq > seq)
            .collect();
        let client = c.client;
        let ServerMsg::Welcome {
            session_token,
            snapshot,
            ..
        } = welcome
        else {
            return;
        };
        let welcome = ToClient::Welcome {
            participant,
            session_token,
            snapshot: snapshot.map(|s| s.seq),
        };
        self.tell_client(client, node, conn, welcome);
        if !missed.is_empty() {
            self.tell_client(client, node, conn, ToClient::Events(&missed));
        }
        if let Some(last) = kept.last().map(|e| e.seq) {
            self.tell_client(client, node, conn, ToClient::Events(&kept));
            if let Some(c) = self.nodes[node].conns.get_mut(&conn) {
                c.after = last;
            }
        }
    }

    fn refuse_conn(&mut self, node: NodeId, conn: u64, msg: ToClient<'_>) {
        if let Some(client) = self.nodes[node].conns.get(&conn).map(|c| c.client) {
            self.forget(node, conn);
            self.tell_client(client, node, conn, msg);
        }
    }

    /// Forgets a connection (and the meeting's link once nobody here is in it).
    fn forget(&mut self, node: NodeId, conn: u64) {
        let n = &mut self.nodes[node];
        let Some(c) = n.conns.remove(&conn) else {
            return;
        };
        if c.participant.is_some() {
            n.bound -= 1;
        }
        let Some(link) = n.links.get_mut(&c.meeting) else {
            return;
        };
        link.conns.remove(&conn);
        if link.conns.is_empty() {
            // The link ends once the coordinator heard that nobody is left here (a leave or
            // disconnect lost on the way would leave it a ghost), as the node's does.
            self.tell_presence(node, c.meeting);
        }
    }

    /// The client closed its connection (it left, or gave up on this node).
    pub fn node_close(&mut self, node: NodeId, conn: u64) {
        if !self.nodes[node].alive {
            return;
        }
        if let Some((_, meeting, participant)) = self.nodes[node].bound(conn) {
            let name = self.nodes[node].name.clone();
            self.ask(
                node,
                meeting,
                MeetingRequest::Disconnect {
                    participant,
                    conn: ConnRef { node: name, conn },
                },
                Purpose::Tell,
            );
        }
        self.forget(node, conn);
    }

    pub fn node_chat(&mut self, node: NodeId, conn: u64, text: String) {
        if let Some((_, meeting, participant)) = self.nodes[node].bound(conn) {
            let req = MeetingRequest::Chat {
                participant,
                text: text.clone(),
                to_hosts: false,
                mentions: Vec::new(),
            };
            self.ask(node, meeting, req, Purpose::Chat { conn, text });
        }
    }

    /// The client votes: answers the meeting's poll (the first option, named), or upvotes
    /// its first question.
    pub fn node_vote(&mut self, node: NodeId, conn: u64, ballot: Ballot) {
        if let Some((_, meeting, participant)) = self.nodes[node].bound(conn) {
            let req = match ballot {
                Ballot::Poll => MeetingRequest::Vote {
                    participant,
                    poll: SIM_POLL,
                    answer: myriad_proto::Answer::Single { option: 0 },
                },
                Ballot::Upvote => MeetingRequest::Upvote {
                    participant,
                    question: SIM_QUESTION,
                },
            };
            self.ask(node, meeting, req, Purpose::Vote { conn, ballot });
        }
    }

    /// What `ballot` votes in does not exist yet: it is made (the poll by the API, as a
    /// host's would; the question by the voter through `conn`).
    fn open_ballot(&mut self, node: NodeId, meeting: MeetingIx, conn: u64, ballot: Ballot) {
        let req = match ballot {
            Ballot::Poll => MeetingRequest::CreatePoll {
                actor: myriad_proto::meeting::Actor::Api,
                question: "Go on?".into(),
                kind: myriad_proto::PollKind::Single {
                    options: vec!["yes".into(), "no".into()],
                },
                anonymous: false,
            },
            Ballot::Upvote => {
                let Some((_, _, participant)) = self.nodes[node].bound(conn) else {
                    return;
                };
                MeetingRequest::Ask {
                    participant,
                    text: "When is the next one?".into(),
                }
            }
        };
        self.ask(node, meeting, req, Purpose::Tell);
    }

    pub fn node_leave(&mut self, node: NodeId, conn: u64) {
        if let Some((_, meeting, participant)) = self.nodes[node].bound(conn) {
            self.ask(
                node,
                meeting,
                MeetingRequest::Leave { participant },
                Purpose::Leave { conn },
            );
        }
    }

    /// `GET /api/v1/route?meeting=…` on this node.
    pub fn node_route(&mut self, node: NodeId, client: ClientId) {
        let c = &self.clients[client];
        let (meeting, region) = (c.meeting, c.region.clone());
        self.ask(
            node,
            meeting,
            MeetingRequest::Route {
                region: Some(region),
            },
            Purpose::Route { client },
        );
    }

    pub fn node_broadcast(&mut self, node: NodeId, meeting: MeetingIx, b: Rc<MeetingBroadcast>) {
        let name = self.nodes[node].name.clone();
        let Some(link) = self.nodes[node].links.get_mut(&meeting) else {
            return;
        };
        let Some(gate) = link.gate.as_mut() else {
            link.queued.push(b);
            return;
        };
        match b.as_ref() {
            MeetingBroadcast::Events { events, .. } => {
                let passed = gate.offer(events.clone());
                self.pass_on(node, meeting, passed);
            }
            MeetingBroadcast::SessionEnded {
                conn: Some(conn),
                reason,
                ..
            } if conn.node == name => {
                if let Some(client) = self.nodes[node].conns.get(&conn.conn).map(|c| c.client) {
                    let conn = conn.conn;
                    self.forget(node, conn);
                    self.tell_client(client, node, conn, ToClient::End(*reason));
                }
            }
            MeetingBroadcast::TookOver { .. } => self.tell_presence(node, meeting),
            _ => {}
        }
    }

    /// Tells the coordinator every connection here to the meeting (as the link does every
    /// few seconds, and after a takeover).
    fn tell_presence(&mut self, node: NodeId, meeting: MeetingIx) {
        let n = &self.nodes[node];
        let Some(link) = n.links.get(&meeting) else {
            return;
        };
        let mut present = Vec::new();
        let mut joining = Vec::new();
        for id in &link.conns {
            let Some(c) = n.conns.get(id) else {
                continue;
            };
            match c.participant {
                Some(participant) => present.push(Presence {
                    participant,
                    conn: ConnRef {
                        node: n.name.clone(),
                        conn: *id,
                    },
                    partition: c.partition.clone(),
                }),
                None => joining.push(*id),
            }
        }
        let empty = present.is_empty() && joining.is_empty();
        let req = MeetingRequest::Present {
            node: n.name.clone(),
            up_to: link.highest_conn + 1,
            present,
            joining,
        };
        self.ask(node, meeting, req, Purpose::Presence { empty });
    }

    /// Passes events through the gate on to the connections here; asks for a gap.
    fn pass_on(&mut self, node: NodeId, meeting: MeetingIx, passed: Passed) {
        if let Some(after) = passed.ask_after {
            self.ask(
                node,
                meeting,
                MeetingRequest::Missed { after },
                Purpose::Missed,
            );
        }
        let events = passed.events;
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            let (first, last) = (first.seq, last.seq);
            let conns: Vec<u64> = self.nodes[node]
                .links
                .get(&meeting)
                .map(|l| l.conns.iter().copied().collect())
                .unwrap_or_default();
            for id in conns {
                let Some(c) = self.nodes[node].conns.get_mut(&id) else {
                    continue;
                };
                if let Some(kept) = &mut c.kept {
                    kept.extend_from_slice(&events);
                    continue;
                }
                if c.after >= last {
                    continue;
                }
                let skip = if c.after >= first {
                    (c.after.0 - first.0 + 1) as usize
                } else {
                    0
                };
                c.after = last;
                let client = c.client;
                self.tell_client(client, node, id, ToClient::Events(&events[skip..]));
            }
        }
        if self.nodes[node]
            .links
            .get(&meeting)
            .and_then(|l| l.gate.as_ref())
            .is_some_and(SeqGate::overflowing)
        {
            self.give_up_gap(node, meeting);
        }
    }

    /// The missed events cannot be had: the node's connections to the meeting are dropped
    /// (their clients resume, from a snapshot).
    fn give_up_gap(&mut self, node: NodeId, meeting: MeetingIx) {
        let Some(link) = self.nodes[node].links.get_mut(&meeting) else {
            return;
        };
        if let Some(gate) = link.gate.as_mut() {
            gate.give_up();
        }
        let conns: Vec<u64> = link.conns.iter().copied().collect();
        for conn in conns {
            let Some(client) = self.nodes[node].conns.get(&conn).map(|c| c.client) else {
                continue;
            };
            self.node_close(node, conn);
            self.tell_client(client, node, conn, ToClient::Closed);
        }
    }

    /// Kill -9: everything the node held is gone; its clients notice their connections
    /// closed.
    pub fn crash(&mut self, node: NodeId) {
        if !self.nodes[node].alive {
            return;
        }
        self.check.crashes += 1;
        let n = &mut self.nodes[node];
        n.alive = false;
        n.frozen_until = None;
        n.coordinators.clear();
        n.links.clear();
        n.bound = 0;
        n.asks.clear();
        let conns: Vec<(u64, ClientId)> = std::mem::take(&mut n.conns)
            .into_iter()
            .map(|(id, c)| (id, c.client))
            .collect();
        for (conn, client) in conns {
            self.client_disconnected(client, node, conn);
        }
    }

    pub fn restart(&mut self, node: NodeId) {
        let n = &mut self.nodes[node];
        if n.alive {
            return;
        }
        n.alive = true;
        n.cut = false;
        n.incarnation += 1;
        self.start_node(node);
    }
}
