//! The nodes of a cluster as they announce themselves: each writes its [`NodeInfo`] to the
//! registry bucket every half second; one not heard from for two seconds is out.

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
    /// Where other nodes send it media and ask it for media (`host:port`, UDP).
    #[serde(default)]
    pub relay: Option<String>,
    /// Whether it carries media (a control-only node does not take participants).
    pub media: bool,
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
