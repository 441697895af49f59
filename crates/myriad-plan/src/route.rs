//! Which node a client of a meeting should connect to, from what the registry says.

use myriad_proto::cluster::{Location, NodeInfo};

/// The nodes a client should try, best first: nodes with media and room only; those in the
/// client's region first, then those already carrying the meeting (its people meet on fewer
/// nodes), then the least loaded; ties by name, so every node answers the same.
pub fn rank<'a>(
    nodes: &'a [NodeInfo],
    client_region: Option<&str>,
    carrying: &[&str],
) -> Vec<&'a NodeInfo> {
    let mut open: Vec<&NodeInfo> = nodes.iter().filter(|n| takes_newcomers(n)).collect();
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

/// Whether a node may be offered to someone new: it carries media, has room, and is not
/// stopping.
pub(crate) fn takes_newcomers(n: &NodeInfo) -> bool {
    n.media && !n.draining && n.participants < n.capacity
}

/// Where a client is, as far as its address tells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place<'a> {
    /// A network the operator placed in a region.
    Region(&'a str),
    /// A point, from IP geolocation.
    At(Location),
    Unknown,
}

/// The nodes to name to a client (DNS answers): those that take newcomers in the region
/// nearest to it, least loaded first. A region is as near as its nearest such node; nodes
/// that did not say where they are count as farthest. When nothing tells where the client
/// is (or no node is placed), every open node, least loaded first.
pub fn nearest<'a>(nodes: &'a [NodeInfo], client: Place<'_>) -> Vec<&'a NodeInfo> {
    let region = nearest_region(nodes, client);
    let mut chosen: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| takes_newcomers(n) && region.is_none_or(|r| n.region == r))
        .collect();
    chosen.sort_by(|a, b| a.load().total_cmp(&b.load()).then(a.name.cmp(&b.name)));
    chosen
}

/// The region whose open nodes are nearest the client, if anything tells: its own region
/// when the operator placed its network and a node there is open, else the region of the
/// nearest open node that says where it is.
pub fn nearest_region<'a>(nodes: &'a [NodeInfo], client: Place<'a>) -> Option<&'a str> {
    let mut open = nodes.iter().filter(|n| takes_newcomers(n));
    match client {
        Place::Region(r) => open.any(|n| n.region == r).then_some(r),
        Place::At(at) => open
            .filter_map(|n| Some((n.location?.km_to(&at), n)))
            .min_by(|(a, na), (b, nb)| a.total_cmp(b).then(na.name.cmp(&nb.name)))
            .map(|(_, n)| n.region.as_str()),
        Place::Unknown => None,
    }
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
        addrs: Vec::new(),
        location: None,
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
    fn dns_names_the_open_nodes_of_the_nearest_region_least_loaded_first() {
        let at = |s: &str| s.parse::<Location>().unwrap();
        let placed = |name, region, participants, location: &str| NodeInfo {
            location: Some(at(location)),
            ..node(name, region, participants, 100)
        };
        let mut nodes = vec![
            placed("fra1", "eu", 60, "50.11,8.68"),
            placed("fra2", "eu", 20, "50.11,8.68"),
            placed("nyc1", "us", 0, "40.71,-74.01"),
            placed("tyo1", "ap", 0, "35.68,139.69"),
        ];
        let paris = Place::At(at("48.86,2.35"));
        assert_eq!(names(nearest(&nodes, paris)), ["fra2", "fra1"]);
        assert_eq!(
            names(nearest(&nodes, Place::At(at("37.77,-122.42")))),
            ["nyc1"]
        );
        assert_eq!(names(nearest(&nodes, Place::Region("ap"))), ["tyo1"]);
        // Nothing known: every open node, least loaded first.
        assert_eq!(
            names(nearest(&nodes, Place::Unknown)),
            ["nyc1", "tyo1", "fra2", "fra1"]
        );
        assert_eq!(
            names(nearest(&nodes, Place::Region("nowhere"))),
            ["nyc1", "tyo1", "fra2", "fra1"]
        );
        // A region whose nodes are all full or leaving is passed over for the next nearest.
        nodes[0].draining = true;
        nodes[1].participants = 100;
        assert_eq!(names(nearest(&nodes, paris)), ["nyc1"]);
        assert_eq!(
            names(nearest(&nodes, Place::Region("eu"))),
            ["nyc1", "tyo1"]
        );
        // Unplaced nodes are farthest but still named when nothing placed is open.
        let unplaced = [node("x", "eu", 0, 100)];
        assert_eq!(names(nearest(&unplaced, paris)), ["x"]);
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
