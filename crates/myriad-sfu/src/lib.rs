//! Media for myriad: a selective forwarding unit built on `str0m`.
//!
//! [`core`] is sans-IO (one `Sfu` value owning every peer's `Rtc`, fed datagrams, commands and
//! time); [`shell`] is the tokio task that owns the UDP socket and drives the core.

pub mod core;
pub mod shell;

pub use crate::core::{PeerId, SfuConfig, SfuError, SfuEvent};
pub use shell::{RoomEvent, SfuHandle, ShellError};
