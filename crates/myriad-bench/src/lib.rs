//! Benchmarks: load generators and scenarios that print their figures (a table, or one JSON
//! object with `--json`).

#![allow(clippy::disallowed_methods)] // measuring needs the clock

pub mod cache_policy;
pub mod chat;
mod cluster;
mod counting;
pub mod crowd;
pub mod dns;
mod edge_start;
pub mod failover;
pub mod forward;
pub mod hit_path;
pub mod http;
mod janus;
pub mod join_storm;
mod media;
mod mmsg;
mod netns;
mod participant;
pub mod poll;
pub mod prewarm;
pub mod reactions;
mod report;
mod server;
mod signal_client;
pub mod spam;
pub mod speaker_switch;
pub mod udp_ceiling;
pub mod waf_cost;
pub mod whiteboard;

pub use report::Report;
