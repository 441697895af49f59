//! Media for myriad: a selective forwarding unit built on `str0m`.
//!
//! [`core`] is sans-IO (one `Sfu` value owning every peer's `Rtc`, fed datagrams, commands and
//! time); [`shell`] is one media worker, the thread and task that own a UDP socket and drive
//! a core; [`workers`] is a node's set of them, one per core.

#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod core;
mod ice_tcp;
pub mod relay;
#[allow(clippy::disallowed_methods)] // the relay's socket: its counter starts at the time
mod relay_link;
#[allow(clippy::disallowed_methods)] // the I/O shell reads the clock
pub mod shell;
mod workers;

pub use crate::core::{NewPeer, PeerId, SfuConfig, SfuError, SfuEvent};
pub use relay_link::RelayConfig;
pub use shell::{Counters, RoomEvent, SfuHandle, ShellError, WorkerConfig};
pub use workers::{Media, MediaConfig, Totals};
