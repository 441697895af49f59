//! Authoritative GeoDNS for a myriad cluster: the zone's apex names the open nodes nearest the
//! client (EDNS Client Subnet honoured, with its scope), least loaded first, from the live
//! registry, so a health change reaches the answers as soon as the registry hears of it.
//!
//! [`zone::answer`] decides (a pure function, unit-tested); `myriad-geo` places clients;
//! [`server`] is the thin shell on hickory-server.

#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests start the clock somewhere

pub mod rrl;
#[allow(clippy::disallowed_methods)] // the shell reads the clock for the rate limits
pub mod server;
pub mod zone;

/// The DNS types the settings use.
pub mod hickory {
    pub use hickory_server::proto::rr::Name;
}

pub use rrl::{Rrl, RrlConfig, Verdict};
pub use server::{Dns, DnsStopped, NodeSnapshot, RunningDns};
pub use zone::{answer, fqdn, NameServer, Question, Reply, Zone};
