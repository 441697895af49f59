//! The nodes of a cluster as they announce themselves: each writes its [`NodeInfo`] to the
//! registry bucket every half second; one not heard from for two seconds is out.

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bus::BusMessage;

/// A node's announcement: who it is, where, and how loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    pub name: String,
    pub region: String,
    /// Where clients reach its web client, signalling and API (`https://host:port`).
    pub url: String,
    /// Where other nodes send media to its workers and ask them for media (`host:port`,
    /// UDP; one per worker, in worker order; none outside a cluster).
    #[serde(default)]
    pub relays: Vec<String>,
    /// Whether it carries media (a control-only node does not take participants).
    pub media: bool,
    /// Its media workers (one per core, each with its own UDP socket).
    #[serde(default)]
    pub workers: u16,
    /// Participants it takes at most.
    pub capacity: u32,
    /// Participants connected to it now.
    pub participants: u32,
    /// Meetings it carries media for now.
    pub partitions: u32,
    /// Share of its CPU time used over the last interval (0–1 per core, summed).
    pub cpu: f32,
    /// Media it sends, bits per second.
    pub egress_bps: u64,
    /// It is stopping: nobody new goes there (those on it stay until it is gone).
    #[serde(default)]
    pub draining: bool,
    /// The addresses DNS names it by (its public IPs).
    #[serde(default)]
    pub addrs: Vec<IpAddr>,
    /// Where on Earth it is, for sending clients to the nearest node.
    #[serde(default)]
    pub location: Option<Location>,
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl Location {
    /// Great-circle distance (haversine, on a sphere of the Earth's mean radius).
    pub fn km_to(&self, other: &Location) -> f64 {
        const EARTH_KM: f64 = 6371.0;
        let (la1, la2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = la2 - la1;
        let dlon = (other.lon - self.lon).to_radians();
        let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
    }
}

/// `LAT,LON` in degrees, as operators write it (`--location 50.11,8.68`).
impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lat, lon) = s
            .split_once(',')
            .ok_or_else(|| format!("{s:?}: a location is LAT,LON in degrees"))?;
        let lat: f64 = lat
            .trim()
            .parse()
            .map_err(|_| format!("{lat:?}: not a latitude"))?;
        let lon: f64 = lon
            .trim()
            .parse()
            .map_err(|_| format!("{lon:?}: not a longitude"))?;
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(format!(
                "{s:?}: latitude is -90..90 and longitude -180..180"
            ));
        }
        Ok(Self { lat, lon })
    }
}

impl NodeInfo {
    /// How full it is, 0 (empty) to 1 (at capacity); control-only nodes are always full.
    pub fn load(&self) -> f64 {
        if !self.media || self.capacity == 0 {
            return 1.0;
        }
        (f64::from(self.participants) / f64::from(self.capacity)).min(1.0)
    }
}

impl BusMessage for NodeInfo {
    const KIND: &'static str = "cluster.node";
    const VERSION: u32 = 1;
}

/// Where nodes share the round trips their web clients reported.
pub const RTT_SUBJECT: &str = "myriad.route.rtt";

/// Round trips a client network measured to nodes, as the node that heard them passes them
/// on: every node then routes that network by them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RttShared {
    /// The node the client reported to.
    pub from: String,
    /// The client's network (`myriad_plan::Prefix` bits).
    pub prefix: u128,
    /// (node, round trip in ms).
    pub samples: Vec<(String, f64)>,
}

impl BusMessage for RttShared {
    const KIND: &'static str = "route.rtt";
    const VERSION: u32 = 1;
}

/// A partition of a meeting: the media worker, on one node, that carries some of its people
/// (at most the partition capacity) and pulls for them, once, the media they need. Written
/// `node/worker`: the name relay datagrams carry between partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartitionRef {
    pub node: String,
    pub worker: u16,
}

impl PartitionRef {
    pub fn new(node: &str, worker: u16) -> Self {
        Self {
            node: node.to_owned(),
            worker,
        }
    }
}

impl std::fmt::Display for PartitionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.node, self.worker)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a partition (node/worker): {0:?}")]
pub struct BadPartition(String);

impl std::str::FromStr for PartitionRef {
    type Err = BadPartition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPartition(s.chars().take(80).collect());
        let (node, worker) = s.rsplit_once('/').ok_or_else(bad)?;
        let worker = worker.parse().map_err(|_| bad())?;
        if node.is_empty() || node.len() > 64 || node.contains('/') {
            return Err(bad());
        }
        Ok(Self::new(node, worker))
    }
}

impl TryFrom<String> for PartitionRef {
    type Error = BadPartition;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PartitionRef> for String {
    fn from(p: PartitionRef) -> Self {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_written_node_slash_worker() {
        let p = PartitionRef::new("eu-1", 3);
        assert_eq!(p.to_string(), "eu-1/3");
        assert_eq!("eu-1/3".parse::<PartitionRef>(), Ok(p.clone()));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"eu-1/3\"");
        for bad in ["", "eu-1", "/3", "eu-1/", "eu-1/x", "a/b/1", "eu-1/70000"] {
            assert!(bad.parse::<PartitionRef>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<PartitionRef>("\"x\"").is_err());
    }

    #[test]
    fn locations_are_read_as_operators_write_them_and_measured_on_the_globe() {
        let frankfurt: Location = "50.11, 8.68".parse().unwrap();
        let new_york: Location = "40.71,-74.01".parse().unwrap();
        let km = frankfurt.km_to(&new_york);
        assert!((6150.0..6250.0).contains(&km), "{km}");
        assert_eq!(frankfurt.km_to(&frankfurt), 0.0);
        for bad in ["", "50", "50,x", "91,0", "0,181", "a,b", "1,2,3"] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }
}
