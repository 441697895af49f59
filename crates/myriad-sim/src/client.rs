//! A simulated participant, as the web client behaves: asks a node where to connect, joins
//! there, chats now and then, maybe leaves; when its connection closes it asks again and
//! resumes its session from the last event it has (a fresh join once the session expired).
//! It checks what it receives: each event exactly the one after the last.

use std::collections::BTreeSet;
use std::time::Duration;

use myriad_proto::meeting::{EndReason, RefusalKind};
use myriad_proto::{MeetingEvent, ParticipantId, Seq, SeqEvent};
use myriad_seeded::SeededRng;

use crate::node::node_index;
use crate::world::{ClientId, Event, MeetingIx, NodeId, World};
use crate::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientTimer {
    /// Ask where to connect (first join, or again after a failure).
    Connect,
    Chat,
    /// Cast a ballot (again, until told it is counted).
    Vote(Ballot),
    Leave,
    /// Its connection to `node` closed (the node died): it notices now.
    Lost {
        node: NodeId,
        conn: u64,
    },
    /// Its route question (number `attempt`) is still unanswered: the node died under it.
    RouteTimeout {
        attempt: u64,
    },
}

/// Mixed into a client's index for its voting stream.
const VOTE_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// How long a route question may take before the client asks elsewhere.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(8);

/// What a node tells a client.
#[derive(Debug)]
pub(crate) enum ToClient<'a> {
    Route(Vec<String>),
    Welcome {
        participant: ParticipantId,
        session_token: String,
        /// A fresh start from a snapshot at this sequence (else the events it missed follow).
        snapshot: Option<Seq>,
    },
    Events(&'a [SeqEvent]),
    Refused(RefusalKind),
    /// The node dropped the connection: resume to continue.
    Closed,
    End(EndReason),
    ChatAcked(String),
    ChatFailed,
    /// Its ballot is counted (now, or it was before and this ask came again).
    VoteCounted(Ballot),
    /// Not counted (no poll or question yet, or no answer): it tries again.
    VoteNotCounted(Ballot),
}

/// What a client votes in, once each: the meeting's poll, and the Q&A's first question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ballot {
    Poll,
    Upvote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not connected; a `Connect` timer is due.
    Waiting,
    /// Asked a node where to connect.
    Routing,
    Joining {
        node: NodeId,
        conn: u64,
    },
    In {
        node: NodeId,
        conn: u64,
    },
    Left,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub participant: ParticipantId,
    pub token: String,
}

pub(crate) struct Client {
    pub meeting: MeetingIx,
    pub identity: String,
    pub region: String,
    rng: SeededRng,
    pub state: State,
    pub session: Option<Session>,
    /// The last event it has.
    pub last: Seq,
    join_at: Duration,
    leave_at: Option<Duration>,
    chat_every: Option<Duration>,
    chats: u64,
    /// When it votes (answers the poll and upvotes the first question), if it does; and the
    /// ballots it was told count.
    vote_at: Option<Duration>,
    voted: BTreeSet<Ballot>,
    route_attempts: u64,
    /// It was in the meeting once (its chat and leave timers run).
    started: bool,
    leaving: bool,
}

impl Client {
    pub fn new(index: ClientId, config: &Config, mut rng: SeededRng) -> Self {
        let join_at = rng.duration_below(config.join_over);
        // Leaves and chats happen while faults do; the settling at the end is quiet.
        let active_until = config.fault_window.end;
        let leave_at = rng
            .chance(config.leave_share)
            .then(|| join_at + rng.duration_below(active_until.saturating_sub(join_at)));
        let chat_every = rng
            .chance(config.chatter_share)
            .then(|| Duration::from_secs(2) + rng.duration_below(Duration::from_secs(10)));
        // A stream of its own, so voting leaves the other draws (and old seeds) as they were.
        let mut votes = SeededRng::new(config.seed ^ (index as u64).wrapping_mul(VOTE_STREAM));
        let vote_at = votes.chance(config.voter_share).then(|| {
            join_at
                + votes.duration_below(
                    active_until
                        .saturating_sub(join_at)
                        .max(Duration::from_secs(1)),
                )
        });
        Self {
            meeting: index % config.meetings,
            identity: format!("p{index}"),
            region: config.region_of_client(index),
            rng,
            state: State::Waiting,
            session: None,
            last: Seq(0),
            join_at,
            leave_at,
            chat_every,
            chats: 0,
            vote_at,
            voted: BTreeSet::new(),
            route_attempts: 0,
            started: false,
            leaving: false,
        }
    }

    /// Whether it means to be in the meeting at the end.
    pub fn stays(&self) -> bool {
        self.state != State::Left
    }
}

impl World {
    pub fn start_clients(&mut self) {
        for c in 0..self.clients.len() {
            let at = self.clients[c].join_at;
            self.at(
                at,
                Event::Client {
                    client: c,
                    what: ClientTimer::Connect,
                },
            );
        }
    }

    fn client_after(&mut self, client: ClientId, delay: Duration, what: ClientTimer) {
        self.after(delay, Event::Client { client, what });
    }

    /// Tries again after a short, random backoff.
    fn retry(&mut self, client: ClientId) {
        let c = &mut self.clients[client];
        c.state = State::Waiting;
        let backoff = Duration::from_millis(100) + c.rng.duration_below(Duration::from_millis(500));
        self.client_after(client, backoff, ClientTimer::Connect);
    }

    pub fn client_timer(&mut self, client: ClientId, what: ClientTimer) {
        match what {
            ClientTimer::Connect => {
                if self.clients[client].state != State::Waiting || self.clients[client].leaving {
                    return;
                }
                // The page is served by some node; if that one is down, another is tried.
                let node = self.clients[client].rng.below(self.nodes.len() as u64) as NodeId;
                if !self.nodes[node].alive {
                    self.retry(client);
                    return;
                }
                let c = &mut self.clients[client];
                c.state = State::Routing;
                c.route_attempts += 1;
                let attempt = c.route_attempts;
                self.client_after(client, ROUTE_TIMEOUT, ClientTimer::RouteTimeout { attempt });
                self.node_route(node, client);
            }
            ClientTimer::Chat => {
                let quiet = self.now >= self.config.fault_window.end;
                let c = &mut self.clients[client];
                let Some(every) = c.chat_every.filter(|_| !c.leaving && !quiet) else {
                    return;
                };
                if let State::In { node, conn } = c.state {
                    c.chats += 1;
                    let text = format!("{} says {}", c.identity, c.chats);
                    self.node_chat(node, conn, text);
                }
                self.client_after(client, every, ClientTimer::Chat);
            }
            ClientTimer::Vote(ballot) => {
                let c = &mut self.clients[client];
                if c.voted.contains(&ballot) || c.leaving || c.state == State::Left {
                    return;
                }
                if let State::In { node, conn } = c.state {
                    self.node_vote(node, conn, ballot);
                } else {
                    self.vote_later(client, ballot);
                }
            }
            ClientTimer::Leave => {
                let c = &mut self.clients[client];
                c.leaving = true;
                match c.state {
                    State::In { node, conn } => self.node_leave(node, conn),
                    State::Joining { node, conn } => {
                        // The page goes: its connection closes.
                        c.state = State::Left;
                        self.node_close(node, conn);
                    }
                    _ => c.state = State::Left,
                }
            }
            ClientTimer::Lost { node, conn } => self.connection_closed(client, node, conn),
            ClientTimer::RouteTimeout { attempt } => {
                let c = &self.clients[client];
                if c.state == State::Routing && c.route_attempts == attempt {
                    self.retry(client);
                }
            }
        }
    }

    fn vote_later(&mut self, client: ClientId, ballot: Ballot) {
        let wait = Duration::from_millis(500)
            + self.clients[client]
                .rng
                .duration_below(Duration::from_secs(1));
        self.client_after(client, wait, ClientTimer::Vote(ballot));
    }

    /// The node the client is connected to died: the client notices a moment later.
    pub fn client_disconnected(&mut self, client: ClientId, node: NodeId, conn: u64) {
        let notice =
            Duration::from_millis(20) + self.rng.duration_below(Duration::from_millis(300));
        self.client_after(client, notice, ClientTimer::Lost { node, conn });
    }

    fn connection_closed(&mut self, client: ClientId, node: NodeId, conn: u64) {
        let c = &self.clients[client];
        let current = matches!(c.state, State::Joining { node: n, conn: k } | State::In { node: n, conn: k } if n == node && k == conn);
        if !current {
            return;
        }
        if c.leaving {
            self.clients[client].state = State::Left;
            return;
        }
        self.check.reconnects += 1;
        self.retry(client);
    }

    /// What a node tells the client, on connection `conn` (0: an HTTP answer).
    pub fn tell_client(&mut self, client: ClientId, node: NodeId, conn: u64, msg: ToClient<'_>) {
        if self.config.trace_client == Some(client) {
            let what = match &msg {
                ToClient::Events(e) => {
                    let seqs: Vec<u64> = e.iter().map(|e| e.seq.0).collect();
                    format!("events {seqs:?}")
                }
                m => format!("{m:?}"),
            };
            let state = self.clients[client].state;
            eprintln!(
                "{:.3} p{client} from n{node}/{conn} while {state:?}: {what}",
                self.now.as_secs_f64()
            );
        }
        let state = self.clients[client].state;
        let on_this = matches!(state, State::Joining { node: n, conn: k } | State::In { node: n, conn: k } if n == node && k == conn);
        match msg {
            ToClient::Route(nodes) => {
                if state != State::Routing {
                    return;
                }
                // The first node named that accepts a connection.
                let target = nodes
                    .iter()
                    .filter_map(|n| node_index(n))
                    .find(|n| self.nodes[*n].alive);
                let Some(target) = target else {
                    self.retry(client);
                    return;
                };
                let c = &self.clients[client];
                let resume = c
                    .session
                    .as_ref()
                    .map(|s| (s.participant, s.token.clone(), c.last));
                let conn = self.node_join(target, client, resume);
                self.clients[client].state = State::Joining { node: target, conn };
            }
            ToClient::Welcome {
                participant,
                session_token,
                snapshot,
            } => {
                if !matches!(state, State::Joining { node: n, conn: k } if n == node && k == conn) {
                    return;
                }
                let c = &mut self.clients[client];
                let resumed = c
                    .session
                    .as_ref()
                    .is_some_and(|s| s.participant == participant);
                c.state = State::In { node, conn };
                c.session = Some(Session {
                    participant,
                    token: session_token,
                });
                match snapshot {
                    Some(seq) => {
                        c.last = seq;
                        if resumed {
                            self.check.snapshot_resumes += 1;
                        } else {
                            self.check.joins += 1;
                        }
                    }
                    None => self.check.resumes += 1,
                }
                if !self.clients[client].started {
                    self.clients[client].started = true;
                    let c = &self.clients[client];
                    let (every, leave, vote) = (c.chat_every, c.leave_at, c.vote_at);
                    if let Some(every) = every {
                        self.client_after(client, every, ClientTimer::Chat);
                    }
                    if let Some(at) = vote {
                        let delay = at.saturating_sub(self.now);
                        self.client_after(client, delay, ClientTimer::Vote(Ballot::Poll));
                        self.client_after(client, delay, ClientTimer::Vote(Ballot::Upvote));
                    }
                    if let Some(at) = leave {
                        let delay = at.saturating_sub(self.now);
                        self.client_after(client, delay, ClientTimer::Leave);
                    }
                }
            }
            ToClient::Events(events) => {
                if !on_this {
                    return;
                }
                let c = &mut self.clients[client];
                for e in events {
                    if e.seq.0 != c.last.0 + 1 {
                        let what = if e.seq <= c.last {
                            "again"
                        } else {
                            "after a gap"
                        };
                        let msg = format!(
                            "{} got event {} {what} (its last was {}) on n{node}",
                            c.identity, e.seq, c.last
                        );
                        self.check.fail(msg);
                        return;
                    }
                    c.last = e.seq;
                    if matches!(e.event, MeetingEvent::Chat { .. }) {
                        self.check.chats_delivered += 1;
                    }
                }
                self.check.events_delivered += events.len() as u64;
            }
            ToClient::Refused(kind) => {
                if !on_this {
                    return;
                }
                if kind == RefusalKind::UnknownSession {
                    // Expired: a new session, from a snapshot.
                    self.clients[client].session = None;
                    self.check.expired += 1;
                }
                self.retry(client);
            }
            ToClient::Closed => {
                if on_this {
                    self.connection_closed(client, node, conn);
                }
            }
            ToClient::End(reason) => {
                if !on_this {
                    return;
                }
                match reason {
                    EndReason::Left | EndReason::Removed | EndReason::MeetingEnded => {
                        self.clients[client].state = State::Left;
                    }
                    EndReason::Expired => {
                        self.clients[client].session = None;
                        self.check.expired += 1;
                        self.retry(client);
                    }
                    EndReason::Replaced => self.retry(client),
                }
            }
            ToClient::ChatAcked(text) => {
                let meeting = self.clients[client].meeting;
                self.check.acked_chats.push((meeting, text));
            }
            ToClient::ChatFailed => self.check.chats_failed += 1,
            ToClient::VoteCounted(ballot) => {
                let c = &mut self.clients[client];
                c.voted.insert(ballot);
                let (meeting, identity) = (c.meeting, c.identity.clone());
                self.check
                    .acked_votes
                    .entry((meeting, ballot))
                    .or_default()
                    .insert(identity);
            }
            ToClient::VoteNotCounted(ballot) => self.vote_later(client, ballot),
        }
    }
}
