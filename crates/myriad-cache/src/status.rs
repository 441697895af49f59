//! The `Cache-Status` response field (RFC 9211): one member per cache the response went
//! through, the one nearest the user last.

use std::time::Duration;

use crate::NoCacheReason;

/// Why the cache went forward to the next hop (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    UriMiss,
    VaryMiss,
    /// A stored response was found but needed validation.
    Stale,
    /// The cache does not handle this kind of request.
    Bypass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from storage (possibly stale, see `ttl_s`).
    pub hit: bool,
    pub fwd: Option<Forward>,
    /// The status the next hop answered with.
    pub fwd_status: Option<u16>,
    /// Freshness left in seconds; negative when stale.
    pub ttl_s: Option<i64>,
    pub stored: bool,
    /// Waited for another request's fetch instead of making its own.
    pub collapsed: bool,
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    pub fn hit(ttl: Duration) -> Self {
        Self {
            hit: true,
            ttl_s: Some(ttl.as_secs() as i64),
            ..Self::empty()
        }
    }

    pub fn stale_hit(stale_by: Duration, detail: &'static str) -> Self {
        Self {
            hit: true,
            ttl_s: Some(-(stale_by.as_secs() as i64)),
            detail: Some(detail),
            ..Self::empty()
        }
    }

    pub fn forward(fwd: Forward) -> Self {
        Self {
            fwd: Some(fwd),
            ..Self::empty()
        }
    }

    pub fn bypass(reason: NoCacheReason) -> Self {
        Self {
            fwd: Some(Forward::Bypass),
            detail: Some(reason.as_str()),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        Self {
            hit: false,
            fwd: None,
            fwd_status: None,
            ttl_s: None,
            stored: false,
            collapsed: false,
            detail: None,
        }
    }

    /// Appends this cache's member, named `name` (a token), to `out`. Written on every
    /// response, so without the formatting machinery.
    pub fn write_member(&self, name: &str, out: &mut String) {
        let mut numbers = itoa::Buffer::new();
        out.push_str(name);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            out.push_str(match fwd {
                Forward::UriMiss => "; fwd=uri-miss",
                Forward::VaryMiss => "; fwd=vary-miss",
                Forward::Stale => "; fwd=stale",
                Forward::Bypass => "; fwd=bypass",
            });
        }
        if let Some(st) = self.fwd_status {
            out.push_str("; fwd-status=");
            out.push_str(numbers.format(st));
        }
        if let Some(ttl) = self.ttl_s {
            out.push_str("; ttl=");
            out.push_str(numbers.format(ttl));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            out.push_str("; detail=");
            out.push_str(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CacheStatus {
        fn member(&self, name: &str) -> String {
            let mut s = String::new();
            self.write_member(name, &mut s);
            s
        }
    }

    #[test]
    fn members() {
        assert_eq!(
            CacheStatus::hit(Duration::from_secs(30)).member("edge"),
            "edge; hit; ttl=30"
        );
        let mut miss = CacheStatus::forward(Forward::UriMiss);
        miss.fwd_status = Some(200);
        miss.stored = true;
        miss.collapsed = true;
        assert_eq!(
            miss.member("edge"),
            "edge; fwd=uri-miss; fwd-status=200; stored; collapsed"
        );
        assert_eq!(
            CacheStatus::stale_hit(Duration::from_secs(5), "stale-if-error").member("e"),
            "e; hit; ttl=-5; detail=stale-if-error"
        );
        assert_eq!(
            CacheStatus::bypass(NoCacheReason::Method).member("e"),
            "e; fwd=bypass; detail=method"
        );
    }
}
