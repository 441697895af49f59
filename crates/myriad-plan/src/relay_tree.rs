//! Which partition each partition pulls a track from, so that a track crosses to each node
//! once and no node sends it to more than `fanout` others: a tree over the nodes carrying the
//! meeting, rooted at the publisher's node. On each node one partition (its gateway for the
//! track, chosen by the track id so that the work spreads over its workers) pulls across the
//! network; the node's other partitions pull from it in-process. With no more than `fanout`
//! other nodes the tree is a star around the publisher's node.
//!
//! Every node computes the same tree from the same partition list, with no coordination.

use myriad_proto::cluster::PartitionRef;

/// The fan-out every node uses: a node sends a track to at most this many other nodes. The
/// same on every node of a cluster, or their trees would disagree.
pub const RELAY_FANOUT: usize = 8;

/// Where `me` pulls a track published in `origin` from. `partitions` are the meeting's open
/// partitions (any order); a partition missing from them pulls from `origin` directly.
pub fn upstream(
    origin: &PartitionRef,
    me: &PartitionRef,
    partitions: &[PartitionRef],
    fanout: usize,
    track: u64,
) -> PartitionRef {
    if me.node == origin.node || !partitions.contains(me) {
        return origin.clone();
    }
    let gateway = |node: &str| -> PartitionRef {
        if node == origin.node {
            return origin.clone();
        }
        let mut on_node: Vec<&PartitionRef> =
            partitions.iter().filter(|p| p.node == node).collect();
        on_node.sort();
        on_node[(track % on_node.len() as u64) as usize].clone()
    };
    let mine = gateway(&me.node);
    if &mine != me {
        return mine;
    }
    // Nodes in name order, turned to start at the origin's: node i pulls from node (i-1)/F.
    let mut nodes: Vec<&str> = partitions.iter().map(|p| p.node.as_str()).collect();
    nodes.push(&origin.node);
    nodes.sort_unstable();
    nodes.dedup();
    let start = nodes.iter().position(|n| *n == origin.node).unwrap_or(0);
    nodes.rotate_left(start);
    let i = nodes.iter().position(|n| *n == me.node).unwrap_or(0);
    let parent = nodes[(i.saturating_sub(1)) / fanout.max(1)];
    gateway(parent)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn part(node: &str, w: u16) -> PartitionRef {
        PartitionRef::new(node, w)
    }

    /// The partitions of `nodes` nodes with `workers` partitions each.
    fn cluster(nodes: usize, workers: u16) -> Vec<PartitionRef> {
        (0..nodes)
            .flat_map(|n| (0..workers).map(move |w| part(&format!("n{n:03}"), w)))
            .collect()
    }

    /// Follows upstreams to the origin: the hops, each checked to be another partition.
    fn path(origin: &PartitionRef, me: &PartitionRef, all: &[PartitionRef], f: usize) -> usize {
        let mut at = me.clone();
        let mut hops = 0;
        while &at != origin {
            let next = upstream(origin, &at, all, f, 7);
            assert_ne!(next, at, "{at} pulls from itself");
            at = next;
            hops += 1;
            assert!(hops <= all.len(), "a cycle through {at}");
        }
        hops
    }

    #[test]
    fn siblings_pull_in_process_and_few_nodes_form_a_star() {
        let all = cluster(3, 2);
        let origin = part("n000", 1);
        assert_eq!(upstream(&origin, &part("n000", 0), &all, 8, 7), origin);
        // Track 7 on two workers: worker 1 is each node's gateway.
        assert_eq!(upstream(&origin, &part("n001", 1), &all, 8, 7), origin);
        assert_eq!(
            upstream(&origin, &part("n001", 0), &all, 8, 7),
            part("n001", 1)
        );
        assert_eq!(upstream(&origin, &part("n002", 1), &all, 8, 7), origin);
    }

    #[test]
    fn many_nodes_form_a_tree_of_bounded_fan_out_and_depth() {
        let all = cluster(100, 2);
        for (origin, f) in [(part("n000", 0), 4), (part("n057", 1), 8)] {
            // Who pulls from whom across nodes.
            let mut children: BTreeMap<PartitionRef, BTreeSet<String>> = BTreeMap::new();
            let mut deepest = 0;
            for me in &all {
                let up = upstream(&origin, me, &all, f, 7);
                if up.node != me.node {
                    children.entry(up).or_default().insert(me.node.clone());
                }
                deepest = deepest.max(path(&origin, me, &all, f));
            }
            let widest = children.values().map(BTreeSet::len).max().unwrap();
            assert!(widest <= f, "fan-out {widest} > {f}");
            // Every node but the origin's is reached across the network exactly once.
            let reached: usize = children.values().map(BTreeSet::len).sum();
            assert_eq!(reached, 99);
            // log_f(100) levels of nodes, plus one in-process hop at each end.
            let levels = (100f64).log(f as f64).ceil() as usize;
            assert!(deepest <= levels + 1, "depth {deepest} for f={f}");
        }
    }

    #[test]
    fn tracks_spread_their_gateways_over_a_nodes_workers() {
        let all = cluster(2, 4);
        let origin = part("n000", 0);
        let gateways: BTreeSet<PartitionRef> = (0..8u64)
            .map(|t| {
                let me = part("n001", 0);
                let up = upstream(&origin, &me, &all, 8, t);
                if up.node == "n001" {
                    up
                } else {
                    me
                }
            })
            .collect();
        assert_eq!(gateways.len(), 4);
    }

    #[test]
    fn an_unknown_partition_or_origin_still_gets_the_track() {
        let all = cluster(2, 1);
        let stranger = part("n999", 0);
        let origin = part("n000", 0);
        assert_eq!(upstream(&origin, &stranger, &all, 2, 1), origin);
        // The publisher's partition closed meanwhile: its node still roots the tree.
        let gone = part("n777", 3);
        assert_eq!(upstream(&gone, &part("n001", 0), &all, 2, 1), gone);
        assert_eq!(upstream(&gone, &part("n000", 0), &all, 2, 1), gone);
    }
}
