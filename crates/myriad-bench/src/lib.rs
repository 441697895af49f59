//! Benchmarks: load generators and scenarios that print their figures (a table, or one JSON
//! object with `--json`).

#![allow(clippy::disallowed_methods)] // measuring needs the clock

mod mmsg;
mod report;
pub mod udp_ceiling;

pub use report::Report;
