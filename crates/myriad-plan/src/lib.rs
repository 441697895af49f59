//! Sans-IO cluster decisions, pure functions of what they are given: which node a client
//! connects to ([`rank`]), which partition carries each participant ([`Planner`]), and which
//! partition each one pulls a track from ([`upstream`]); and what to ready ahead of a
//! scheduled meeting ([`prewarm`]).

#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests start the clock somewhere

mod health;
mod partition;
pub mod prewarm;
mod relay_tree;
mod route;
mod rtt;

pub use health::{HealthBook, HealthPolicy};
pub use partition::{PlaceError, Planner, PlannerConfig};
pub use relay_tree::{upstream, RELAY_FANOUT};
pub use route::{nearest, nearest_region, rank, Place};
pub use rtt::{Prefix, RttBook};
