//! Request limits per client address, with memory and time bounded under address spraying:
//! token buckets that have refilled are forgotten (a new one would be identical), at most once
//! a second, and while the table is full unknown addresses share one overflow bucket. An IPv6
//! client is its /64: one subscriber line holds that many addresses and could spray them all.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::TokenBucket;

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Requests per second per client address, and the burst above it.
    pub rate_per_s: f64,
    pub burst: f64,
    /// Addresses tracked at most.
    pub max_keys: usize,
    /// Open connections per client address.
    pub max_connections_per_ip: usize,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: u64,
    /// A request body that stalls this long gets 408.
    pub body_timeout: Duration,
    /// A request head must arrive within this.
    pub header_timeout: Duration,
    /// A client that takes no response data for this long is disconnected.
    pub send_timeout: Duration,
    /// A connection where no bytes moved either way for this long is closed.
    pub idle_timeout: Duration,
    /// Tighter rates per client address for some paths (the longest matching prefix).
    pub path_rates: Vec<PathRate>,
    /// A rate per value of a request header (an API key, say); requests without it are not
    /// limited by key.
    pub key_rate: Option<KeyRate>,
    /// Peers of the same deployment (edges, load balancers): not limited per address, and
    /// believed about the client they forward for ([`crate::trust`]).
    pub trusted: Vec<ipnet::IpNet>,
    /// Load balancers that open every connection with a PROXY protocol header naming the
    /// client ([`crate::proxy_protocol`]); a connection from one without it is closed.
    pub proxy_protocol: Vec<ipnet::IpNet>,
    /// The key this deployment's edges share: requests signed with it are believed about
    /// their client, and this edge signs what it sends on ([`crate::trust::TierKey`]).
    pub tier_key: Option<crate::trust::TierKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathRate {
    pub prefix: String,
    pub rate_per_s: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRate {
    pub header: http::HeaderName,
    pub rate_per_s: f64,
    pub burst: f64,
}

/// Which rate a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Address,
    Path,
    Key,
}

/// All request rates of an edge: per address, per address on limited paths, per key.
pub struct RequestLimiter {
    per_address: KeyedLimiter<IpAddr>,
    per_path: Vec<(String, KeyedLimiter<IpAddr>)>,
    per_key: Option<KeyedLimiter<String>>,
}

/// What limits count as one client: an IPv4 address (also written IPv4-mapped), or the /64
/// network of an IPv6 address.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
        },
    }
}

/// Keys longer than this are cut (the limiter's memory is bounded by key count and size).
const KEY_MAX_BYTES: usize = 256;

impl RequestLimiter {
    pub fn new(config: &LimitsConfig, now: Instant) -> Self {
        let keyed = |rate, burst| KeyedLimiter::new(rate, burst, config.max_keys, now);
        Self {
            per_address: keyed(config.rate_per_s, config.burst),
            per_path: config
                .path_rates
                .iter()
                .map(|p| (p.prefix.clone(), keyed(p.rate_per_s, p.burst)))
                .collect(),
            per_key: config
                .key_rate
                .as_ref()
                .map(|k| KeyedLimiter::new(k.rate_per_s, k.burst, config.max_keys, now)),
        }
    }

    pub fn check(
        &mut self,
        ip: IpAddr,
        path: &str,
        key: Option<&str>,
        now: Instant,
    ) -> Result<(), Over> {
        let ip = client_of(ip);
        if !self.per_address.check(&ip, now) {
            return Err(Over::Address);
        }
        let rule = self
            .per_path
            .iter_mut()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((_, limiter)) = rule {
            if !limiter.check(&ip, now) {
                return Err(Over::Path);
            }
        }
        if let (Some(limiter), Some(key)) = (self.per_key.as_mut(), key) {
            let mut end = key.len().min(KEY_MAX_BYTES);
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            let key = &key[..end];
            if !limiter.check(&key.to_owned(), now) {
                return Err(Over::Key);
            }
        }
        Ok(())
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_per_s: 1000.0,
            burst: 2000.0,
            max_keys: 100_000,
            max_connections_per_ip: 512,
            max_body_bytes: 64 << 20,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            path_rates: Vec::new(),
            key_rate: None,
            trusted: Vec::new(),
            proxy_protocol: Vec::new(),
            tier_key: None,
        }
    }
}

/// How often a full table may be swept for refilled buckets. A sweep walks the whole table
/// under the limiter's lock; sweeping for every new key of a spray would cost the table's size
/// per request.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Token buckets by key.
pub struct KeyedLimiter<K> {
    buckets: HashMap<K, TokenBucket>,
    overflow: TokenBucket,
    rate_per_s: f64,
    burst: f64,
    max_keys: usize,
    next_sweep: Instant,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate_per_s: f64, burst: f64, max_keys: usize, now: Instant) -> Self {
        Self {
            buckets: HashMap::new(),
            overflow: TokenBucket::new(rate_per_s, burst, now),
            rate_per_s,
            burst,
            max_keys: max_keys.max(1),
            next_sweep: now,
        }
    }

    /// Takes a token for `key`; false when it is over its rate.
    pub fn check(&mut self, key: &K, now: Instant) -> bool {
        if let Some(b) = self.buckets.get_mut(key) {
            return b.try_take(now);
        }
        if self.buckets.len() >= self.max_keys && now >= self.next_sweep {
            self.buckets.retain(|_, b| !b.is_full_at(now));
            self.next_sweep = now + SWEEP_INTERVAL;
        }
        if self.buckets.len() >= self.max_keys {
            return self.overflow.try_take(now);
        }
        let mut bucket = TokenBucket::new(self.rate_per_s, self.burst, now);
        let ok = bucket.try_take(now);
        self.buckets.insert(key.clone(), bucket);
        ok
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Open connections per address; a slot is given back when its guard drops.
#[derive(Clone, Default)]
pub struct ConnectionCounter {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

pub struct ConnectionSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ConnectionCounter {
    /// A slot for one more connection from `ip`'s client ([`client_of`]), if it has fewer
    /// than `max` open.
    pub fn try_open(&self, ip: IpAddr, max: usize) -> Option<ConnectionSlot> {
        let ip = client_of(ip);
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            open: self.open.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_rate() {
        let t0 = Instant::now();
        let mut l = KeyedLimiter::new(1.0, 2.0, 100, t0);
        assert!(l.check(&1, t0) && l.check(&1, t0));
        assert!(!l.check(&1, t0), "burst spent");
        assert!(l.check(&2, t0), "another key is not affected");
        assert!(
            l.check(&1, t0 + Duration::from_secs(1)),
            "refilled at the rate"
        );
    }

    #[test]
    fn memory_stays_bounded_under_address_spraying() {
        let t0 = Instant::now();
        let mut l = KeyedLimiter::new(10.0, 10.0, 1000, t0);
        // 200,000 one-off addresses within a second: the table never exceeds its bound,
        // and the overflow bucket limits what is not tracked.
        let mut allowed = 0;
        for i in 0..200_000u32 {
            allowed += l.check(&i, t0) as u32;
            assert!(l.tracked() <= 1000);
        }
        assert_eq!(allowed, 1000 + 10, "tracked keys, then the overflow burst");
        // Once idle buckets refill they are forgotten and new keys are tracked again.
        let later = t0 + Duration::from_secs(2);
        assert!(l.check(&5_000_000, later));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn a_full_table_is_swept_at_most_once_a_second() {
        let t0 = Instant::now();
        // Each bucket is full again 0.1 s after its key's one request.
        let mut l = KeyedLimiter::new(10.0, 10.0, 1000, t0);
        for i in 0..1000u32 {
            l.check(&i, t0);
        }
        // Nothing has refilled yet: the sweep frees nothing and the new key is not tracked.
        l.check(&1000, t0);
        assert_eq!(l.tracked(), 1000);
        // Everything has refilled, but the last sweep was under a second ago: a spray of
        // new keys does not walk the table for each of them.
        let soon = t0 + Duration::from_millis(500);
        for i in 2000..3000u32 {
            l.check(&i, soon);
        }
        assert_eq!(l.tracked(), 1000);
        // A second later the refilled buckets go, and new keys are tracked again.
        let later = t0 + Duration::from_secs(1);
        l.check(&3000, later);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let client = |s: &str| client_of(s.parse().unwrap()).to_string();
        assert_eq!(client("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(client("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::");
        assert_eq!(client("::ffff:10.0.0.7"), "10.0.0.7");
        assert_eq!(client("10.0.0.7"), "10.0.0.7");
        // Both limits count the network, not the address.
        let t0 = Instant::now();
        let config = LimitsConfig {
            rate_per_s: 1.0,
            burst: 2.0,
            ..LimitsConfig::default()
        };
        let mut l = RequestLimiter::new(&config, t0);
        for host in 1..=2 {
            let ip = format!("2001:db8::{host}").parse().unwrap();
            assert_eq!(l.check(ip, "/", None, t0), Ok(()));
        }
        let third = "2001:db8::3".parse().unwrap();
        assert_eq!(l.check(third, "/", None, t0), Err(Over::Address));
        let elsewhere = "2001:db8:0:1::3".parse().unwrap();
        assert_eq!(l.check(elsewhere, "/", None, t0), Ok(()));
        let c = ConnectionCounter::default();
        let _a = c.try_open("2001:db8::1".parse().unwrap(), 1).unwrap();
        assert!(c.try_open("2001:db8::2".parse().unwrap(), 1).is_none());
    }

    #[test]
    fn paths_and_keys_have_rates_of_their_own() {
        let t0 = Instant::now();
        let config = LimitsConfig {
            rate_per_s: 100.0,
            burst: 100.0,
            path_rates: vec![
                PathRate {
                    prefix: "/api/".into(),
                    rate_per_s: 1.0,
                    burst: 2.0,
                },
                PathRate {
                    prefix: "/api/search".into(),
                    rate_per_s: 1.0,
                    burst: 1.0,
                },
            ],
            key_rate: Some(KeyRate {
                header: http::HeaderName::from_static("x-api-key"),
                rate_per_s: 1.0,
                burst: 3.0,
            }),
            ..LimitsConfig::default()
        };
        let mut l = RequestLimiter::new(&config, t0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(l.check(ip, "/api/a", None, t0), Ok(()));
        assert_eq!(l.check(ip, "/api/b", None, t0), Ok(()));
        assert_eq!(l.check(ip, "/api/c", None, t0), Err(Over::Path));
        assert_eq!(l.check(other, "/api/c", None, t0), Ok(()), "per address");
        assert_eq!(l.check(ip, "/static/x", None, t0), Ok(()), "other paths");
        // The longest prefix decides.
        assert_eq!(l.check(other, "/api/search?q=1", None, t0), Ok(()));
        assert_eq!(l.check(other, "/api/search?q=2", None, t0), Err(Over::Path));
        // One key across addresses.
        for n in 0..3 {
            let addr: IpAddr = format!("10.0.1.{n}").parse().unwrap();
            assert_eq!(l.check(addr, "/x", Some("k1"), t0), Ok(()));
        }
        assert_eq!(
            l.check("10.0.1.9".parse().unwrap(), "/x", Some("k1"), t0),
            Err(Over::Key)
        );
        assert_eq!(l.check(ip, "/x", Some("k2"), t0), Ok(()));
        let long = "k".repeat(10_000);
        assert_eq!(l.check(ip, "/x", Some(&long), t0), Ok(()));
    }

    #[test]
    fn connection_slots_are_counted_per_address() {
        let c = ConnectionCounter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = c.try_open(ip, 2).unwrap();
        let _b = c.try_open(ip, 2).unwrap();
        assert!(c.try_open(ip, 2).is_none());
        assert!(c.try_open("10.0.0.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(c.try_open(ip, 2).is_some());
    }
}
