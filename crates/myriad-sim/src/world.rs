//! The simulated world: virtual time, one queue of events, one seeded generator, the bus's
//! delivery rules (latency, jitter that reorders, loss, nodes cut off or frozen), the store,
//! and the faults of a run. Everything a run does follows from its seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use myriad_proto::meeting::{MeetingBroadcast, MeetingReply, MeetingRequest};
use myriad_proto::MeetingId;
use myriad_seeded::SeededRng;

use crate::check::Checker;
use crate::client::{Client, ClientTimer};
use crate::node::{Node, NodeTimer};
use crate::store::Store;
use crate::{Config, Violation};

pub(crate) type NodeId = usize;
pub(crate) type ClientId = usize;
pub(crate) type MeetingIx = usize;

/// Where an answer goes: an ask of one incarnation of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AskRef {
    pub node: NodeId,
    pub incarnation: u64,
    pub ask: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Reply(MeetingReply),
    /// Nobody coordinates the meeting (no subscriber on its subject).
    NoResponders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorTimer {
    Renew,
    /// The meeting asked to be woken (ticks, counts, resume windows).
    Wake,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    Crash(NodeId),
    Restart(NodeId),
    Cut(NodeId),
    Heal(NodeId),
    Freeze(NodeId, Duration),
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A request reaches the bus: the meeting's coordinators get it, or the asker hears
    /// that nobody listens.
    Rpc {
        from: AskRef,
        meeting: MeetingIx,
        req: MeetingRequest,
    },
    /// A request reaches one coordinator.
    Request {
        node: NodeId,
        incarnation: u64,
        meeting: MeetingIx,
        from: AskRef,
        req: MeetingRequest,
    },
    /// An answer reaches the node that asked.
    Reply {
        to: AskRef,
        answer: Answer,
    },
    /// A broadcast reaches one node.
    Broadcast {
        node: NodeId,
        incarnation: u64,
        meeting: MeetingIx,
        b: Rc<MeetingBroadcast>,
    },
    Node {
        node: NodeId,
        incarnation: u64,
        what: NodeTimer,
    },
    Coordinator {
        node: NodeId,
        incarnation: u64,
        meeting: MeetingIx,
        instance: u64,
        what: CoordinatorTimer,
    },
    Client {
        client: ClientId,
        what: ClientTimer,
    },
    Fault(Fault),
}

impl Event {
    /// The node this event happens on, if it is one node's (frozen nodes hold them).
    fn node(&self) -> Option<NodeId> {
        match self {
            Event::Request { node, .. }
            | Event::Broadcast { node, .. }
            | Event::Node { node, .. }
            | Event::Coordinator { node, .. } => Some(*node),
            Event::Reply { to, .. } => Some(to.node),
            Event::Rpc { .. } | Event::Client { .. } | Event::Fault(_) => None,
        }
    }
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

pub(crate) struct World {
    pub config: Config,
    pub now: Duration,
    origin: Instant,
    queue: BinaryHeap<Reverse<Scheduled>>,
    order: u64,
    pub rng: SeededRng,
    pub store: Store,
    pub nodes: Vec<Node>,
    pub clients: Vec<Client>,
    pub meetings: Vec<MeetingId>,
    pub check: Checker,
    /// Whether faults may still happen (they stop for the settling at the end).
    pub faults_on: bool,
    /// Coordinator instances started, for fencing checks and counts.
    pub next_instance: u64,
}

impl World {
    pub fn new(config: Config, origin: Instant) -> Self {
        let mut rng = SeededRng::new(config.seed);
        let meetings = (0..config.meetings)
            .map(|m| MeetingId::parse(&format!("sim-{m}")).expect("valid id"))
            .collect();
        let nodes = (0..config.nodes).map(|n| Node::new(n, &config)).collect();
        let clients = (0..config.participants)
            .map(|c| Client::new(c, &config, rng.fork()))
            .collect();
        Self {
            config,
            now: Duration::ZERO,
            origin,
            queue: BinaryHeap::new(),
            order: 0,
            rng,
            store: Store::default(),
            nodes,
            clients,
            meetings,
            check: Checker::default(),
            faults_on: true,
            next_instance: 1,
        }
    }

    /// The instant the sans-IO cores see.
    pub fn instant(&self) -> Instant {
        self.origin + self.now
    }

    pub fn at(&mut self, at: Duration, event: Event) {
        self.order += 1;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            order: self.order,
            event,
        }));
    }

    pub fn after(&mut self, delay: Duration, event: Event) {
        self.at(self.now + delay, event);
    }

    /// How long a bus message takes: the latency and up to the jitter more (so later
    /// messages may overtake earlier ones).
    pub fn bus_delay(&mut self) -> Duration {
        let f = self.config.faults;
        let jitter = if self.faults_on {
            self.rng.duration_below(f.jitter)
        } else {
            Duration::ZERO
        };
        f.latency + jitter
    }

    /// Whether a bus message is lost on its way.
    pub fn bus_drops(&mut self) -> bool {
        self.faults_on && self.rng.chance(self.config.faults.drop_rate)
    }

    /// Whether a node reaches the bus now.
    pub fn on_bus(&self, node: NodeId) -> bool {
        let n = &self.nodes[node];
        n.alive && !n.cut
    }

    /// Sends a message from `node` over the bus: lost if the node is off it, or by chance.
    pub fn send_bus(&mut self, from: NodeId, event: Event) {
        if !self.on_bus(from) || self.bus_drops() {
            return;
        }
        let delay = self.bus_delay();
        self.after(delay, event);
    }

    /// Runs until the queue is empty or `until`; stops at the first violation.
    pub fn run_until(&mut self, until: Duration) -> Result<(), Violation> {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until {
                break;
            }
            let Some(Reverse(Scheduled { at, order, event })) = self.queue.pop() else {
                break;
            };
            self.now = at;
            if let Some(node) = event.node() {
                if let Some(until) = self.nodes[node].frozen_until.filter(|u| *u > at) {
                    // A frozen node does nothing; what reaches it waits, in order, and its
                    // timers fire late: a coordinator waking from a pause handles the
                    // requests that came meanwhile before it learns its lease is gone.
                    let late = match event {
                        Event::Node { .. } | Event::Coordinator { .. } => Duration::from_millis(1),
                        _ => Duration::ZERO,
                    };
                    self.queue.push(Reverse(Scheduled {
                        at: until + late,
                        order,
                        event,
                    }));
                    continue;
                }
            }
            self.handle(event);
            if let Some(v) = self.check.violation.take() {
                return Err(Violation {
                    seed: self.config.seed,
                    at: self.now,
                    what: v,
                });
            }
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Rpc { from, meeting, req } => self.rpc(from, meeting, req),
            Event::Request {
                node,
                incarnation,
                meeting,
                from,
                req,
            } => {
                if self.nodes[node].incarnation == incarnation {
                    self.coordinator_request(node, meeting, from, req);
                }
            }
            Event::Reply { to, answer } => {
                if self.nodes[to.node].alive && self.nodes[to.node].incarnation == to.incarnation {
                    self.node_answer(to.node, to.ask, answer);
                }
            }
            Event::Broadcast {
                node,
                incarnation,
                meeting,
                b,
            } => {
                if self.nodes[node].alive && self.nodes[node].incarnation == incarnation {
                    self.node_broadcast(node, meeting, b);
                }
            }
            Event::Node {
                node,
                incarnation,
                what,
            } => {
                if self.nodes[node].alive && self.nodes[node].incarnation == incarnation {
                    self.node_timer(node, what);
                }
            }
            Event::Coordinator {
                node,
                incarnation,
                meeting,
                instance,
                what,
            } => {
                if self.nodes[node].alive && self.nodes[node].incarnation == incarnation {
                    self.coordinator_timer(node, meeting, instance, what);
                }
            }
            Event::Client { client, what } => self.client_timer(client, what),
            Event::Fault(f) => self.fault(f),
        }
    }

    /// A request on the bus reaches whoever coordinates the meeting now.
    fn rpc(&mut self, from: AskRef, meeting: MeetingIx, req: MeetingRequest) {
        let responders: Vec<NodeId> = (0..self.nodes.len())
            .filter(|n| self.on_bus(*n) && self.nodes[*n].coordinates(meeting))
            .collect();
        if responders.is_empty() {
            let delay = self.bus_delay();
            self.after(
                delay,
                Event::Reply {
                    to: from,
                    answer: Answer::NoResponders,
                },
            );
            return;
        }
        for node in responders {
            let incarnation = self.nodes[node].incarnation;
            self.after(
                Duration::ZERO,
                Event::Request {
                    node,
                    incarnation,
                    meeting,
                    from,
                    req: req.clone(),
                },
            );
        }
    }

    /// Draws the run's faults: crashes (and restarts), cuts off the bus (and heals), and
    /// freezes, spread over the fault window.
    pub fn plan_faults(&mut self) {
        let f = self.config.faults;
        let window = self.config.fault_window.clone();
        let span = window.end.saturating_sub(window.start);
        let nodes = self.nodes.len() as u64;
        let draw = |rng: &mut SeededRng| {
            (
                window.start + rng.duration_below(span),
                rng.below(nodes) as NodeId,
            )
        };
        for _ in 0..f.crashes {
            let (at, node) = draw(&mut self.rng);
            let down = Duration::from_secs(2) + self.rng.duration_below(Duration::from_secs(8));
            self.at(at, Event::Fault(Fault::Crash(node)));
            self.at(at + down, Event::Fault(Fault::Restart(node)));
        }
        for _ in 0..f.cuts {
            let (at, node) = draw(&mut self.rng);
            let cut = Duration::from_millis(500) + self.rng.duration_below(Duration::from_secs(6));
            self.at(at, Event::Fault(Fault::Cut(node)));
            self.at(at + cut, Event::Fault(Fault::Heal(node)));
        }
        for _ in 0..f.freezes {
            let (at, node) = draw(&mut self.rng);
            let frozen =
                Duration::from_millis(500) + self.rng.duration_below(Duration::from_secs(5));
            self.at(at, Event::Fault(Fault::Freeze(node, frozen)));
        }
    }

    fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::Crash(n) => self.crash(n),
            Fault::Restart(n) => self.restart(n),
            Fault::Cut(n) => {
                self.check.cuts += 1;
                self.nodes[n].cut = true;
            }
            Fault::Heal(n) => self.nodes[n].cut = false,
            Fault::Freeze(n, d) => {
                if self.nodes[n].alive {
                    self.check.freezes += 1;
                    self.nodes[n].frozen_until = Some(self.now + d);
                }
            }
        }
    }
}
