//! HTTP caching decisions for the edge, as pure functions: what may be stored (RFC 9111),
//! how fresh it is, whether it may be reused or served stale (RFC 5861), which variant a
//! request selects, which range it wants, and what the `Cache-Status` field says (RFC 9211);
//! which site or certificate a host name selects.
//! No I/O and no clock reads: the time is passed in.

pub mod cache_control;
pub mod host;
pub mod integrity;
pub mod key;
pub mod policy;
pub mod range;
pub mod signed;
pub mod status;

use http::header::HeaderName;

pub use cache_control::CacheControl;
pub use policy::{Policy, Reuse, StoredMeta};
pub use range::RangeRequest;
pub use status::{CacheStatus, Forward};

/// Why a request or response was not served from or put into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoCacheReason {
    #[error("method is not cacheable")]
    Method,
    #[error("protocol upgrade")]
    Upgrade,
    #[error("no-store")]
    NoStore,
    #[error("private")]
    Private,
    #[error("request carries Authorization")]
    Authorization,
    #[error("response sets a cookie")]
    SetCookie,
    #[error("Vary: *")]
    VaryStar,
    #[error("status is not cacheable without explicit freshness")]
    Status,
    #[error("no site for this host")]
    UnknownHost,
    #[error("request carries a body")]
    RequestBody,
}

impl NoCacheReason {
    /// A token for logs, metrics and `Cache-Status` details.
    pub fn as_str(self) -> &'static str {
        match self {
            NoCacheReason::Method => "method",
            NoCacheReason::Upgrade => "upgrade",
            NoCacheReason::NoStore => "no-store",
            NoCacheReason::Private => "private",
            NoCacheReason::Authorization => "authorization",
            NoCacheReason::SetCookie => "set-cookie",
            NoCacheReason::VaryStar => "vary-star",
            NoCacheReason::Status => "status",
            NoCacheReason::UnknownHost => "unknown-host",
            NoCacheReason::RequestBody => "request-body",
        }
    }
}

/// Connection-specific fields (RFC 9110 §7.6.1) that a proxy never forwards.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}
