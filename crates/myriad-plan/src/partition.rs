//! Where a meeting's people are carried. A partition (one media worker on one node) takes at
//! most `capacity` of them. Each joiner goes to a partition on the node it connected to: the
//! fullest one with a free seat, so that each track is pulled into as few partitions as
//! possible. Before a node's open partitions fill up, the next one opens on another of its
//! workers (`headroom` free seats are kept while it has a worker left), so a joiner never
//! waits for one. A partition left empty closes unless its seats are that headroom. When a
//! node leaves the cluster its partitions are no longer offered (nor fed), and their people
//! are handed back to be disconnected; they keep their seats until they are seated again
//! where they resume (or leave), so that if the node comes back with them (it was cut off,
//! not dead) nobody was seated over them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use myriad_proto::cluster::{NodeInfo, PartitionRef};
use myriad_proto::ParticipantId;

use crate::route::rank;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannerConfig {
    /// Participants one partition carries at most.
    pub capacity: u32,
    /// Free seats kept open on a node carrying the meeting, while it has workers left.
    pub headroom: u32,
}

impl PlannerConfig {
    /// `headroom` a fifth of the capacity.
    pub fn with_capacity(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            headroom: (capacity / 5).max(1),
        }
    }
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self::with_capacity(500)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("node {0} has no free seat in the meeting's partitions")]
    NodeFull(String),
}

/// The partitions of one meeting and who is in each.
#[derive(Debug, Clone)]
pub struct Planner {
    config: PlannerConfig,
    /// Where a node's first partition of this meeting goes: meetings start on different
    /// workers rather than all on worker 0.
    spread: u64,
    /// Open partitions, some of them empty (opened ahead).
    partitions: BTreeMap<PartitionRef, BTreeSet<ParticipantId>>,
    placed: HashMap<ParticipantId, PartitionRef>,
    /// Each node's worker count, as last told.
    workers: HashMap<String, u16>,
    /// Nodes gone from the cluster whose partitions still hold seats.
    lost: BTreeSet<String>,
    /// Seats kept open on a node for people forecast to come there (a warm-up ahead of a
    /// scheduled start), beyond the headroom; those seated there count against them.
    reserved: HashMap<String, u32>,
    changed: bool,
}

impl Planner {
    pub fn new(meeting: &str, config: PlannerConfig) -> Self {
        let config = PlannerConfig {
            capacity: config.capacity.max(1),
            headroom: config.headroom.min(config.capacity.max(1)),
        };
        Self {
            config,
            spread: fnv1a(meeting.as_bytes()),
            partitions: BTreeMap::new(),
            placed: HashMap::new(),
            workers: HashMap::new(),
            lost: BTreeSet::new(),
            reserved: HashMap::new(),
            changed: false,
        }
    }

    pub fn config(&self) -> PlannerConfig {
        self.config
    }

    /// Whether a newcomer would find a seat on this node.
    pub fn has_room(&self, node: &str, workers: u16) -> bool {
        self.seat_on(node, workers.max(1)).is_some()
    }

    /// Whether `place` on this node would find a seat.
    pub fn can_place(&self, participant: ParticipantId, node: &str, workers: u16) -> bool {
        self.placed
            .get(&participant)
            .is_some_and(|at| at.node == node && at.worker < workers.max(1))
            || self.seat_on(node, workers.max(1)).is_some()
    }

    /// Seats `participant` in a partition of `node` (which runs `workers` media workers): the
    /// one it is in if that is on this node, else the fullest with a free seat, else a new
    /// one. It leaves any partition it was in elsewhere.
    pub fn place(
        &mut self,
        participant: ParticipantId,
        node: &str,
        workers: u16,
    ) -> Result<PartitionRef, PlaceError> {
        let workers = workers.max(1);
        self.workers.insert(node.to_owned(), workers);
        self.found(node);
        if let Some(at) = self
            .placed
            .get(&participant)
            .filter(|at| at.node == node && at.worker < workers)
        {
            return Ok(at.clone());
        }
        let seat = self
            .seat_on(node, workers)
            .ok_or_else(|| PlaceError::NodeFull(node.to_owned()))?;
        self.seat(participant, seat.clone());
        self.keep_headroom(node);
        Ok(seat)
    }

    /// Records where a node says `participant` is (a coordinator restoring a meeting, or
    /// learning who a node carries), opening that partition if it is not. Refused (false)
    /// when that partition is full of others: the report is older than what was decided
    /// since.
    pub fn place_at(&mut self, participant: ParticipantId, partition: PartitionRef) -> bool {
        self.found(&partition.node);
        if self.placed.get(&participant) == Some(&partition) {
            return true;
        }
        if !self
            .partitions
            .get(&partition)
            .is_none_or(|m| self.has_seat(m))
        {
            return false;
        }
        let entry = self.workers.entry(partition.node.clone()).or_insert(1);
        *entry = (*entry).max(partition.worker + 1);
        self.seat(participant, partition);
        true
    }

    /// Keeps `seats` open on `node` (running `workers` media workers) for people forecast to
    /// come there, opening partitions ahead as far as its workers allow; until
    /// [`Self::release`], they do not close for being empty.
    pub fn reserve(&mut self, node: &str, seats: u32, workers: u16) {
        self.found(node);
        let known = self.workers.entry(node.to_owned()).or_insert(1);
        *known = (*known).max(workers);
        self.reserved.insert(node.to_owned(), seats);
        self.keep_headroom(node);
    }

    /// The seats kept for a forecast lapse: the empty partitions not needed close.
    pub fn release(&mut self, node: &str) {
        if self.reserved.remove(node).is_some() {
            self.close_idle(node);
        }
    }

    /// The participant left the meeting: its seat is free; its partition closes if no longer
    /// needed.
    pub fn remove(&mut self, participant: ParticipantId) -> Option<PartitionRef> {
        let at = self.unseat(participant)?;
        self.close_idle(&at.node);
        Some(at)
    }

    /// Nodes that are `gone` are lost: their partitions are offered and fed no more; returns
    /// who was in them (newly lost only). They keep their seats until seated elsewhere.
    pub fn mark_lost(&mut self, gone: impl Fn(&str) -> bool) -> Vec<(ParticipantId, PartitionRef)> {
        let newly: BTreeSet<String> = self
            .nodes()
            .filter(|n| !self.lost.contains(*n) && gone(n))
            .map(str::to_owned)
            .collect();
        let mut displaced = Vec::new();
        for node in newly {
            self.changed = true;
            self.reserved.remove(&node);
            self.close_idle(&node);
            for (partition, members) in self.partitions.iter().filter(|(p, _)| p.node == node) {
                displaced.extend(members.iter().map(|p| (*p, partition.clone())));
            }
            if self.partitions.keys().any(|p| p.node == node) {
                self.lost.insert(node);
            }
        }
        displaced
    }

    /// A node thought lost is heard from (a join or a report through it): it is back.
    fn found(&mut self, node: &str) {
        if self.lost.remove(node) {
            self.changed = true;
        }
    }

    /// Nodes a client (from `region`) should connect to, best first: in the client's region
    /// before elsewhere; there, those with a free seat in an open partition before those that
    /// would open one (fewer partitions to feed), then [`rank`]'s order (nodes carrying the
    /// meeting, the least loaded). Only nodes in `nodes` (the living) with media and room are
    /// named.
    pub fn route(&self, nodes: &[NodeInfo], region: Option<&str>) -> Vec<String> {
        let carrying: Vec<&str> = self.nodes().collect();
        let far = |n: &NodeInfo| region.is_some_and(|r| r != n.region);
        let mut open: Vec<(bool, bool, usize, &NodeInfo)> = rank(nodes, region, &carrying)
            .into_iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let seated = self.free_seats(&n.name) > 0;
                let can_open = self.free_worker(&n.name, n.workers.max(1)).is_some();
                (seated || can_open).then_some((far(n), !seated, i, n))
            })
            .collect();
        open.sort_by_key(|(far, unseated, i, _)| (*far, *unseated, *i));
        open.into_iter().map(|(.., n)| n.name.clone()).collect()
    }

    /// The open partitions of living nodes, in one order every node computes alike.
    pub fn partitions(&self) -> Vec<PartitionRef> {
        self.partitions
            .keys()
            .filter(|p| !self.lost.contains(&p.node))
            .cloned()
            .collect()
    }

    pub fn partition_of(&self, participant: ParticipantId) -> Option<&PartitionRef> {
        self.placed.get(&participant)
    }

    pub fn members(&self, partition: &PartitionRef) -> usize {
        self.partitions.get(partition).map_or(0, BTreeSet::len)
    }

    /// How many participants are seated.
    pub fn seated(&self) -> usize {
        self.placed.len()
    }

    /// Whether the open partitions changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// What must always hold: everyone seated is in exactly the partition it is recorded in,
    /// and no partition is over capacity.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = 0;
        for (partition, members) in &self.partitions {
            if members.len() > self.config.capacity as usize {
                return Err(format!(
                    "{partition} carries {} over its capacity {}",
                    members.len(),
                    self.config.capacity
                ));
            }
            for p in members {
                if self.placed.get(p) != Some(partition) {
                    return Err(format!("{p} is in {partition} but recorded elsewhere"));
                }
            }
            seen += members.len();
        }
        if seen != self.placed.len() {
            return Err(format!(
                "{} seated but {seen} in partitions",
                self.placed.len()
            ));
        }
        Ok(())
    }

    fn nodes(&self) -> impl Iterator<Item = &str> {
        let mut last = None;
        self.partitions.keys().filter_map(move |p| {
            let node = p.node.as_str();
            (last.replace(node) != Some(node)).then_some(node)
        })
    }

    /// The fullest open partition of `node` with a free seat, else one on a free worker.
    fn seat_on(&self, node: &str, workers: u16) -> Option<PartitionRef> {
        let open = self
            .partitions
            .iter()
            .filter(|(p, m)| p.node == node && p.worker < workers && self.has_seat(m))
            .max_by_key(|(p, m)| (m.len(), std::cmp::Reverse(p.worker)))
            .map(|(p, _)| p.clone());
        open.or_else(|| {
            self.free_worker(node, workers)
                .map(|w| PartitionRef::new(node, w))
        })
    }

    fn has_seat(&self, members: &BTreeSet<ParticipantId>) -> bool {
        (members.len() as u32) < self.config.capacity
    }

    /// A worker of `node` without a partition of this meeting, starting from the meeting's
    /// own first worker.
    fn free_worker(&self, node: &str, workers: u16) -> Option<u16> {
        (0..workers)
            .map(|i| ((self.spread + u64::from(i)) % u64::from(workers)) as u16)
            .find(|w| !self.partitions.contains_key(&PartitionRef::new(node, *w)))
    }

    fn free_seats(&self, node: &str) -> u32 {
        self.partitions
            .iter()
            .filter(|(p, _)| p.node == node)
            .map(|(_, m)| self.config.capacity.saturating_sub(m.len() as u32))
            .sum()
    }

    fn seat(&mut self, participant: ParticipantId, partition: PartitionRef) {
        if let Some(old) = self.unseat(participant) {
            if old.node != partition.node {
                self.close_idle(&old.node);
            }
        }
        let members = self.partitions.entry(partition.clone()).or_insert_with(|| {
            self.changed = true;
            BTreeSet::new()
        });
        members.insert(participant);
        self.placed.insert(participant, partition);
    }

    fn unseat(&mut self, participant: ParticipantId) -> Option<PartitionRef> {
        let at = self.placed.remove(&participant)?;
        if let Some(members) = self.partitions.get_mut(&at) {
            members.remove(&participant);
        }
        Some(at)
    }

    /// Opens partitions ahead on `node` while its free seats fall below what it keeps open.
    fn keep_headroom(&mut self, node: &str) {
        let workers = self.workers.get(node).copied().unwrap_or(1);
        while self.free_seats(node) < self.kept_open(node) {
            let Some(w) = self.free_worker(node, workers) else {
                break;
            };
            self.partitions
                .insert(PartitionRef::new(node, w), BTreeSet::new());
            self.changed = true;
        }
    }

    /// Free seats `node` keeps open: the headroom, or what is left of its reservation.
    fn kept_open(&self, node: &str) -> u32 {
        let seated: u32 = self
            .partitions
            .iter()
            .filter(|(p, _)| p.node == node)
            .map(|(_, m)| m.len() as u32)
            .sum();
        let reserved = self
            .reserved
            .get(node)
            .map_or(0, |r| r.saturating_sub(seated));
        self.config.headroom.max(reserved)
    }

    /// Closes the empty partitions of `node` whose seats are not needed for the headroom;
    /// all of them once nobody on the node is in the meeting (or the node is lost).
    fn close_idle(&mut self, node: &str) {
        let on_node: Vec<(PartitionRef, usize)> = self
            .partitions
            .iter()
            .filter(|(p, _)| p.node == node)
            .map(|(p, m)| (p.clone(), m.len()))
            .collect();
        let nobody = on_node.iter().all(|(_, n)| *n == 0) && !self.reserved.contains_key(node);
        let lost = self.lost.contains(node);
        let kept = self.kept_open(node);
        for (partition, members) in on_node.into_iter().rev() {
            if members > 0 {
                continue;
            }
            let spare = self.free_seats(node) - self.config.capacity;
            if nobody || lost || spare >= kept {
                self.partitions.remove(&partition);
                self.changed = true;
            }
        }
        if nobody {
            self.workers.remove(node);
            self.lost.remove(node);
        }
    }
}

/// FNV-1a: a hash every node computes alike (std's hasher is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner(capacity: u32, headroom: u32) -> Planner {
        // A meeting whose first partition lands on worker 0 of two, to read the tests simply.
        let meeting = (0..)
            .map(|i| format!("m{i}"))
            .find(|m| fnv1a(m.as_bytes()).is_multiple_of(2))
            .unwrap();
        Planner::new(&meeting, PlannerConfig { capacity, headroom })
    }

    fn p(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    fn part(node: &str, w: u16) -> PartitionRef {
        PartitionRef::new(node, w)
    }

    fn node(name: &str, region: &str, workers: u16) -> NodeInfo {
        NodeInfo {
            workers,
            ..crate::route::test_node(name, region, 0, 1000)
        }
    }

    #[test]
    fn joiners_fill_one_partition_and_the_next_opens_ahead() {
        let mut pl = planner(4, 2);
        assert_eq!(pl.place(p(1), "n1", 2), Ok(part("n1", 0)));
        assert_eq!(pl.place(p(2), "n1", 2), Ok(part("n1", 0)));
        assert_eq!(pl.partitions(), [part("n1", 0)]);
        assert!(pl.take_changed());
        // Two free seats left is not below the headroom; one is: worker 1 opens, empty.
        assert_eq!(pl.place(p(3), "n1", 2), Ok(part("n1", 0)));
        assert_eq!(pl.partitions(), [part("n1", 0), part("n1", 1)]);
        assert!(pl.take_changed());
        assert_eq!(pl.members(&part("n1", 1)), 0);
        assert_eq!(pl.place(p(4), "n1", 2), Ok(part("n1", 0)));
        assert_eq!(pl.place(p(5), "n1", 2), Ok(part("n1", 1)));
        pl.check().unwrap();
    }

    #[test]
    fn a_full_node_refuses_and_route_names_another() {
        let mut pl = planner(2, 1);
        for i in 1..=4 {
            pl.place(p(i), "n1", 2).unwrap();
        }
        assert!(!pl.can_place(p(5), "n1", 2));
        assert_eq!(
            pl.place(p(5), "n1", 2),
            Err(PlaceError::NodeFull("n1".into()))
        );
        // Someone already seated there is still placed there.
        assert!(pl.can_place(p(1), "n1", 2));
        let nodes = [node("n1", "eu", 2), node("n2", "eu", 2)];
        assert_eq!(pl.route(&nodes, Some("eu")), ["n2"]);
        pl.check().unwrap();
    }

    #[test]
    fn route_prefers_the_clients_region_then_open_seats() {
        let mut pl = planner(10, 2);
        pl.place(p(1), "us1", 1).unwrap();
        pl.place(p(2), "eu2", 1).unwrap();
        let nodes = [
            node("eu1", "eu", 1),
            node("eu2", "eu", 1),
            node("us1", "us", 1),
        ];
        assert_eq!(pl.route(&nodes, Some("eu")), ["eu2", "eu1", "us1"]);
        assert_eq!(pl.route(&nodes, Some("us")), ["us1", "eu2", "eu1"]);
        // A node gone from the registry is not named.
        assert_eq!(pl.route(&nodes[..2], Some("us")), ["eu2", "eu1"]);
    }

    #[test]
    fn empty_partitions_close_unless_they_are_the_headroom() {
        let mut pl = planner(4, 2);
        for i in 1..=5 {
            pl.place(p(i), "n1", 2).unwrap();
        }
        assert_eq!(pl.partitions().len(), 2);
        pl.take_changed();
        // n1/1 empties, but n1/0 is full: its seats are the headroom, it stays.
        pl.remove(p(5));
        assert_eq!(pl.partitions().len(), 2);
        assert!(!pl.take_changed());
        // With n1/0 half empty, n1/1 is not needed.
        pl.remove(p(4));
        pl.remove(p(3));
        assert_eq!(pl.partitions(), [part("n1", 0)]);
        // Nobody left on the node: none stays open.
        pl.remove(p(2));
        pl.remove(p(1));
        assert!(pl.partitions().is_empty());
        assert!(pl.take_changed());
        pl.check().unwrap();
    }

    #[test]
    fn moving_frees_the_seat_and_a_lost_node_holds_its_seats_until_they_move() {
        let mut pl = planner(4, 1);
        pl.place(p(1), "n1", 2).unwrap();
        pl.place(p(2), "n1", 2).unwrap();
        pl.place(p(3), "n2", 2).unwrap();
        assert_eq!(pl.place(p(2), "n2", 2), Ok(part("n2", 0)));
        assert_eq!(pl.members(&part("n1", 0)), 1);
        let mut displaced = pl.mark_lost(|n| n == "n2");
        displaced.sort();
        assert_eq!(displaced, [(p(2), part("n2", 0)), (p(3), part("n2", 0))]);
        assert!(pl.mark_lost(|n| n == "n2").is_empty(), "lost once");
        // No longer offered, but the seats are held: the node may come back with them.
        assert_eq!(pl.partitions(), [part("n1", 0)]);
        assert_eq!(pl.partition_of(p(2)), Some(&part("n2", 0)));
        assert!(pl.place_at(p(3), part("n2", 0)));
        assert_eq!(pl.partitions(), [part("n1", 0), part("n2", 0)]);
        // Or they resume elsewhere, and the lost node's partition closes once empty.
        pl.mark_lost(|n| n == "n2");
        pl.place(p(2), "n1", 2).unwrap();
        pl.place(p(3), "n1", 2).unwrap();
        assert_eq!(pl.partitions(), [part("n1", 0)]);
        assert_eq!(pl.seated(), 3);
        pl.check().unwrap();
    }

    #[test]
    fn a_coordinator_taking_over_learns_placements_from_the_nodes() {
        let mut pl = planner(4, 1);
        assert!(pl.place_at(p(7), part("n3", 1)));
        assert!(pl.place_at(p(8), part("n3", 1)));
        assert_eq!(pl.partitions(), [part("n3", 1)]);
        // A later joiner on the node fills that partition first.
        assert_eq!(pl.place(p(9), "n3", 2), Ok(part("n3", 1)));
        assert_eq!(pl.place(p(10), "n3", 2), Ok(part("n3", 1)));
        // A stale report cannot seat someone in a full partition.
        assert!(!pl.place_at(p(11), part("n3", 1)));
        assert_eq!(pl.partition_of(p(11)), None);
        pl.check().unwrap();
    }

    #[test]
    fn reserved_seats_open_partitions_ahead_until_released() {
        let mut pl = planner(4, 1);
        pl.reserve("n1", 10, 4);
        assert_eq!(
            pl.partitions().len(),
            3,
            "ten seats need three partitions of four"
        );
        assert!(pl.take_changed());
        // Route prefers a node with open seats.
        let nodes = [node("n1", "eu", 4), node("n2", "eu", 4)];
        assert_eq!(pl.route(&nodes, Some("eu")), ["n1", "n2"]);
        // People seated count against the reservation; nothing closes while it holds.
        for i in 1..=5 {
            pl.place(p(i), "n1", 4).unwrap();
        }
        assert_eq!(pl.partitions().len(), 3);
        pl.remove(p(5));
        pl.remove(p(4));
        assert_eq!(pl.partitions().len(), 3);
        // Released: only the headroom stays.
        pl.release("n1");
        assert_eq!(pl.partitions().len(), 1);
        // A reservation on a node nobody came to closes everything when released.
        pl.reserve("n2", 3, 4);
        assert_eq!(pl.partitions().len(), 2);
        pl.release("n2");
        assert_eq!(pl.partitions().len(), 1);
        // More seats than the workers hold: as many as they do.
        pl.reserve("n3", 100, 2);
        assert_eq!(pl.partitions().iter().filter(|p| p.node == "n3").count(), 2);
        pl.check().unwrap();
    }

    #[test]
    fn meetings_start_on_different_workers() {
        let firsts: BTreeSet<u16> = (0..32)
            .map(|i| {
                let mut pl = Planner::new(&format!("meeting-{i}"), PlannerConfig::default());
                pl.place(p(1), "n1", 4).unwrap().worker
            })
            .collect();
        assert_eq!(firsts.len(), 4, "{firsts:?}");
    }

    #[test]
    fn the_invariants_hold_under_a_seeded_churn() {
        let mut pl = planner(5, 2);
        let mut rng = myriad_seeded::SeededRng::new(21);
        let mut next = |n: u64| rng.below(n);
        for _ in 0..5_000 {
            let who = p(next(60));
            match next(10) {
                0..=5 => {
                    let node = ["n1", "n2", "n3"][next(3) as usize];
                    let _ = pl.place(who, node, 3);
                }
                6..=8 => {
                    pl.remove(who);
                }
                _ => {
                    let lost = ["n1", "n2", "n3"][next(3) as usize];
                    pl.mark_lost(|n| n == lost);
                }
            }
            pl.check().unwrap();
        }
    }
}
