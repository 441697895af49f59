//! Response rate limiting (RRL, as authoritative servers do it): an answer sent over UDP may
//! go to a forged source, so each client network (IPv4 /24, IPv6 /56) gets at most
//! `per_second` identical answers (same name, same kind of answer) a second, with a second's
//! worth of burst. Beyond, most answers are dropped, and every `slip`-th is sent truncated
//! (TC set, no records) so that a real client retries over TCP, which cannot be forged.
//! Pure: the shell feeds the time in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated: the client asks again over TCP.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlConfig {
    /// Identical answers per client network a second (0: no limit).
    pub per_second: u32,
    /// Every this many limited answers, one is sent truncated (0: none).
    pub slip: u32,
    /// Client networks × answers tracked at most; the idle ones go first.
    pub max_entries: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            per_second: 20,
            slip: 2,
            max_entries: 100_000,
        }
    }
}

/// Which answers count as the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    network: u128,
    /// The name asked (lower-cased) and the answer's kind, folded into one value.
    answer: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    limited: u32,
}

#[derive(Debug)]
pub struct Rrl {
    config: RrlConfig,
    buckets: HashMap<Key, Bucket>,
}

impl Rrl {
    pub fn new(config: RrlConfig) -> Self {
        Self {
            config,
            buckets: HashMap::new(),
        }
    }

    /// The verdict for an answer to `client` about `name` of kind `kind` (e.g. the response
    /// code and query type), at `now`.
    pub fn check(&mut self, client: IpAddr, name: &str, kind: u32, now: Instant) -> Verdict {
        let rate = f64::from(self.config.per_second);
        if rate == 0.0 {
            return Verdict::Send;
        }
        if self.buckets.len() >= self.config.max_entries {
            self.forget_idle(now);
        }
        let key = Key {
            network: network(client),
            answer: fnv1a(name.bytes().map(|b| b.to_ascii_lowercase()), kind),
        };
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: rate,
            at: now,
            limited: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        match self.config.slip {
            s if s > 0 && bucket.limited.is_multiple_of(s) => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }

    /// Drops the entries idle for a second or more (their buckets are full again); if that
    /// frees nothing, all of them.
    fn forget_idle(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(1));
        if self.buckets.len() >= self.config.max_entries {
            self.buckets.clear();
        }
    }

    pub fn entries(&self) -> usize {
        self.buckets.len()
    }
}

/// The client's network: IPv4 /24, IPv6 /56.
fn network(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => (u128::from(v6) & !((1u128 << 72) - 1)) | 1,
    }
}

fn fnv1a(bytes: impl Iterator<Item = u8>, kind: u32) -> u64 {
    bytes
        .chain(kind.to_be_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_gets_its_rate_then_slips_and_drops_and_recovers() {
        let mut rrl = Rrl::new(RrlConfig {
            per_second: 5,
            slip: 2,
            max_entries: 100,
        });
        let t = Instant::now();
        let verdicts: Vec<Verdict> = (0..9)
            .map(|_| rrl.check(ip("192.0.2.7"), "meet.example", 1, t))
            .collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Send, Send, Send, Send, Send, Drop, Slip, Drop, Slip]
        );
        // Another address of the same /24 shares the limit; another network, another name
        // or kind of answer do not.
        assert_eq!(rrl.check(ip("192.0.2.99"), "MEET.example", 1, t), Drop);
        assert_eq!(rrl.check(ip("192.0.3.7"), "meet.example", 1, t), Send);
        assert_eq!(rrl.check(ip("192.0.2.7"), "other.example", 1, t), Send);
        assert_eq!(rrl.check(ip("192.0.2.7"), "meet.example", 3, t), Send);
        // A fifth of a second later, one more answer is due.
        let later = t + Duration::from_millis(200);
        assert_eq!(rrl.check(ip("192.0.2.7"), "meet.example", 1, later), Send);
        assert_ne!(rrl.check(ip("192.0.2.7"), "meet.example", 1, later), Send);
    }

    #[test]
    fn no_limit_and_bounded_memory() {
        let t = Instant::now();
        let mut off = Rrl::new(RrlConfig {
            per_second: 0,
            ..RrlConfig::default()
        });
        assert!((0..1000).all(|_| off.check(ip("::1"), "a", 1, t) == Verdict::Send));
        let mut rrl = Rrl::new(RrlConfig {
            per_second: 5,
            slip: 0,
            max_entries: 10,
        });
        for i in 0..100u32 {
            let client = IpAddr::from([10, 0, (i / 256) as u8, 0]);
            rrl.check(client, &format!("n{i}"), 1, t);
            assert!(rrl.entries() <= 10);
        }
        // IPv6 networks are /56: these two share one.
        let a = ip("2001:db8:0:1::1");
        let b = ip("2001:db8:0:ff::2");
        for _ in 0..5 {
            rrl.check(a, "x", 1, t);
        }
        assert_eq!(rrl.check(b, "x", 1, t), Verdict::Drop);
    }
}
