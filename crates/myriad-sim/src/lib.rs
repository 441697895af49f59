//! A deterministic simulation of a myriad cluster: many nodes, many meetings, many people
//! joining, chatting, leaving and resuming, while nodes crash, are cut off the bus or freeze,
//! and bus messages are delayed, reordered and lost. The meetings' coordinators are the real
//! sans-IO cores ([`myriad_control::CoordinatorCore`]: the meeting, its partition planner),
//! nodes pass batches through the real [`myriad_room::SeqGate`]; the bus, the store (leases,
//! journals, registry), the node shells and the clients are simulated after the real ones.
//!
//! A run is a pure function of its [`Config`] (seed included): `--seed S` replays a failure
//! exactly. The invariants are in [`check`].

mod check;
mod client;
mod coordinator;
mod node;
mod store;
mod world;

use std::ops::Range;
use std::time::{Duration, Instant};

use client::Ballot;
use world::World;

/// What the simulated network does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Every bus message takes at least this long…
    pub latency: Duration,
    /// …and up to this much longer, at random (later ones overtake earlier ones).
    pub jitter: Duration,
    /// The share of bus messages (requests, answers, broadcasts) lost.
    pub drop_rate: f64,
    /// Nodes killed (each restarts 2–10 s later), cut off the bus (0.5–6.5 s), frozen
    /// (0.5–5.5 s), at random times in the fault window.
    pub crashes: usize,
    pub cuts: usize,
    pub freezes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub seed: u64,
    pub nodes: usize,
    pub meetings: usize,
    pub participants: usize,
    pub regions: usize,
    /// Media workers per node, and people per partition.
    pub workers: u16,
    pub partition_size: u32,
    pub node_capacity: u32,
    /// People join at random times in this long a start.
    pub join_over: Duration,
    /// Shares of people who leave at some point, and who chat every few seconds.
    pub leave_share: f64,
    pub chatter_share: f64,
    /// Share of people who answer the meeting's poll, once, at a random time in the faults.
    pub voter_share: f64,
    pub faults: Faults,
    /// When faults happen.
    pub fault_window: Range<Duration>,
    /// After the fault window: no more faults, time to settle (sessions lost in the faults
    /// expire after 30 s), then the final checks.
    pub settle: Duration,
    /// Print what this client is told (to follow one through a failing seed).
    pub trace_client: Option<usize>,
}

impl Config {
    /// A run CI can afford many of: 20 nodes, 5,000 people in 10 meetings, heavy faults.
    pub fn ci(seed: u64) -> Self {
        Self {
            seed,
            nodes: 20,
            meetings: 10,
            participants: 5_000,
            regions: 3,
            workers: 4,
            partition_size: 60,
            node_capacity: 100_000,
            join_over: Duration::from_secs(10),
            leave_share: 0.1,
            chatter_share: 0.02,
            voter_share: 0.3,
            faults: Faults {
                latency: Duration::from_millis(2),
                jitter: Duration::from_millis(30),
                drop_rate: 0.01,
                crashes: 5,
                cuts: 5,
                freezes: 5,
            },
            fault_window: Duration::from_secs(3)..Duration::from_secs(40),
            settle: Duration::from_secs(40),
            trace_client: None,
        }
    }

    /// The scale of the issue: 100 nodes, 100,000 people in 50 meetings.
    pub fn full(seed: u64) -> Self {
        Self {
            nodes: 100,
            meetings: 50,
            participants: 100_000,
            partition_size: 500,
            join_over: Duration::from_secs(20),
            chatter_share: 0.002,
            faults: Faults {
                crashes: 10,
                cuts: 10,
                freezes: 10,
                ..Self::ci(seed).faults
            },
            ..Self::ci(seed)
        }
    }

    pub(crate) fn region_of_node(&self, node: usize) -> String {
        format!("r{}", node % self.regions.max(1))
    }

    pub(crate) fn region_of_client(&self, client: usize) -> String {
        format!("r{}", (client / 7) % self.regions.max(1))
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub simulated_s: u64,
    pub joins: u64,
    pub resumes: u64,
    pub snapshot_resumes: u64,
    pub expired_sessions: u64,
    pub reconnects: u64,
    pub crashes: u64,
    pub cuts: u64,
    pub freezes: u64,
    pub takeovers: u64,
    pub fenced_appends: u64,
    pub events_delivered: u64,
    pub chats_accepted: u64,
    pub chats_delivered: u64,
    pub chats_failed: u64,
    pub votes_counted: u64,
    pub upvotes_counted: u64,
    pub partitions_open: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} s simulated; joins {}, resumes {} (+{} from snapshots), sessions expired {}, reconnects {}; \
             faults: crashes {}, cuts {}, freezes {}; takeovers {}, fenced appends {}; \
             events delivered {}, chats accepted {}, chat deliveries {}, chats refused or unanswered {}; votes counted {}, upvotes counted {}; partitions open at the end {}",
            self.seed,
            self.simulated_s,
            self.joins,
            self.resumes,
            self.snapshot_resumes,
            self.expired_sessions,
            self.reconnects,
            self.crashes,
            self.cuts,
            self.freezes,
            self.takeovers,
            self.fenced_appends,
            self.events_delivered,
            self.chats_accepted,
            self.chats_delivered,
            self.chats_failed,
            self.votes_counted,
            self.upvotes_counted,
            self.partitions_open,
        )
    }
}

/// A broken invariant: when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub at: Duration,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} at {:.3} s: {} (replay: cargo run -p myriad-sim --release -- --seed {})",
            self.seed,
            self.at.as_secs_f64(),
            self.what,
            self.seed
        )
    }
}

impl std::error::Error for Violation {}

/// Runs the simulation `config` describes.
pub fn run(config: Config) -> Result<Report, Violation> {
    #[allow(clippy::disallowed_methods)] // the one real instant virtual time starts from
    let origin = Instant::now();
    let end = config.fault_window.end;
    let settle = config.settle;
    let seed = config.seed;
    let mut world = World::new(config, origin);
    world.start_nodes();
    world.plan_faults();
    world.start_clients();
    world.run_until(end)?;
    world.faults_on = false;
    for n in 0..world.nodes.len() {
        world.restart(n);
        world.nodes[n].cut = false;
        world.nodes[n].frozen_until = None;
    }
    world.run_until(end + settle)?;
    world.check_settled().map_err(|what| Violation {
        seed,
        at: world.now,
        what,
    })?;
    Ok(world.report())
}

impl World {
    fn report(&self) -> Report {
        let c = &self.check;
        let partitions_open = self
            .nodes
            .iter()
            .flat_map(|n| n.coordinators.values())
            .map(|c| c.core.planner().partitions().len() as u64)
            .sum();
        let counted = |ballot: Ballot| {
            c.acked_votes
                .iter()
                .filter(|((_, b), _)| *b == ballot)
                .map(|(_, who)| who.len() as u64)
                .sum()
        };
        Report {
            seed: self.config.seed,
            simulated_s: self.now.as_secs(),
            joins: c.joins,
            resumes: c.resumes,
            snapshot_resumes: c.snapshot_resumes,
            expired_sessions: c.expired,
            reconnects: c.reconnects,
            crashes: c.crashes,
            cuts: c.cuts,
            freezes: c.freezes,
            takeovers: c.takeovers,
            fenced_appends: c.fenced,
            events_delivered: c.events_delivered,
            chats_accepted: c.acked_chats.len() as u64,
            chats_delivered: c.chats_delivered,
            chats_failed: c.chats_failed,
            votes_counted: counted(Ballot::Poll),
            upvotes_counted: counted(Ballot::Upvote),
            partitions_open,
        }
    }
}
