//! Request limits per client address, with memory bounded under address spraying: token
//! buckets that have refilled are forgotten (a new one would be identical), and when the table
//! is full anyway, unknown addresses share one overflow bucket.

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
        }
    }
}

/// Token buckets by key.
pub struct KeyedLimiter<K> {
    buckets: HashMap<K, TokenBucket>,
    overflow: TokenBucket,
    rate_per_s: f64,
    burst: f64,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate_per_s: f64, burst: f64, max_keys: usize, now: Instant) -> Self {
        Self {
            buckets: HashMap::new(),
            overflow: TokenBucket::new(rate_per_s, burst, now),
            rate_per_s,
            burst,
            max_keys: max_keys.max(1),
        }
    }

    /// Takes a token for `key`; false when it is over its rate.
    pub fn check(&mut self, key: &K, now: Instant) -> bool {
        if let Some(b) = self.buckets.get_mut(key) {
            return b.try_take(now);
        }
        if self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, b| !b.is_full_at(now));
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
    pub fn try_open(&self, ip: IpAddr, max: usize) -> Option<ConnectionSlot> {
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
        // A million one-off addresses within a second: the table never exceeds its bound,
        // and the overflow bucket limits what is not tracked.
        let mut allowed = 0;
        for i in 0..1_000_000u32 {
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
