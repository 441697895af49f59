//! Which node a client of a meeting should connect to, from what the registry says.

use myriad_proto::cluster::NodeInfo;

/// The nodes a client should try, best first: nodes with media and room only; those in the
/// client's region first, then those already carrying the meeting (its people meet on fewer
/// nodes), then the least loaded; ties by name, so every node answers the same.
pub fn rank<'a>(
    nodes: &'a [NodeInfo],
    client_region: Option<&str>,
    carrying: &[&str],
) -> Vec<&'a NodeInfo> {
    let mut open: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| n.media && !n.draining && n.participants < n.capacity)
        .collect();
    open.sort_by(|a, b| {
        let far = |n: &NodeInfo| client_region.is_some_and(|r| r != n.region);
        let elsewhere = |n: &NodeInfo| !carrying.contains(&n.name.as_str());
        (far(a), elsewhere(a))
            .cmp(&(far(b), elsewhere(b)))
            .then(a.load().total_cmp(&b.load()))
            .then(a.name.cmp(&b.name))
    });
    open
}

/// A media node as the tests here need one.
#[cfg(test)]
pub(crate) fn test_node(name: &str, region: &str, participants: u32, capacity: u32) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        region: region.into(),
        url: format!("https://{name}.test"),
        relays: Vec::new(),
        media: true,
        workers: 2,
        capacity,
        participants,
        partitions: 0,
        cpu: 0.0,
        egress_bps: 0,
        draining: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draining_node_is_offered_to_nobody_new() {
        let mut leaving = test_node("a", "eu", 0, 100);
        leaving.draining = true;
        let nodes = [leaving, test_node("b", "eu", 50, 100)];
        let names: Vec<&str> = rank(&nodes, Some("eu"), &["a"])
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["b"],
            "emptier and carrying the meeting, but leaving"
        );
    }

    fn node(name: &str, region: &str, participants: u32, capacity: u32) -> NodeInfo {
        test_node(name, region, participants, capacity)
    }

    fn names(ranked: Vec<&NodeInfo>) -> Vec<&str> {
        ranked.into_iter().map(|n| n.name.as_str()).collect()
    }

    #[test]
    fn the_clients_region_first_then_the_least_loaded() {
        let nodes = [
            node("eu1", "eu", 50, 100),
            node("eu2", "eu", 10, 100),
            node("us1", "us", 0, 100),
        ];
        assert_eq!(names(rank(&nodes, Some("eu"), &[])), ["eu2", "eu1", "us1"]);
        assert_eq!(names(rank(&nodes, Some("us"), &[])), ["us1", "eu2", "eu1"]);
        assert_eq!(names(rank(&nodes, None, &[])), ["us1", "eu2", "eu1"]);
    }

    #[test]
    fn nodes_carrying_the_meeting_come_before_emptier_ones_in_the_region() {
        let nodes = [node("eu1", "eu", 50, 100), node("eu2", "eu", 10, 100)];
        assert_eq!(names(rank(&nodes, Some("eu"), &["eu1"])), ["eu1", "eu2"]);
    }

    #[test]
    fn full_and_control_only_nodes_are_never_offered() {
        let mut control = node("ctl", "eu", 0, 100);
        control.media = false;
        let nodes = [
            node("full", "eu", 100, 100),
            control,
            node("ok", "us", 99, 100),
        ];
        assert_eq!(names(rank(&nodes, Some("eu"), &[])), ["ok"]);
        assert!(rank(&[], Some("eu"), &[]).is_empty());
    }

    #[test]
    fn every_node_ranks_alike_whatever_the_order_it_heard_of_them() {
        let mut nodes = vec![
            node("b", "eu", 10, 100),
            node("a", "eu", 10, 100),
            node("c", "eu", 10, 100),
        ];
        let first = names(rank(&nodes, Some("eu"), &[]))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        nodes.reverse();
        assert_eq!(names(rank(&nodes, Some("eu"), &[])), first);
        assert_eq!(first, ["a", "b", "c"]);
    }
}
