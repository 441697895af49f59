//! What clients measured: the round-trip time from a network prefix to each node, reported
//! by web clients after they are routed. A later client of the same prefix is routed to the
//! region of the node its neighbours reached fastest, which geolocation can only guess.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use myriad_proto::cluster::NodeInfo;

use crate::route::takes_newcomers;

/// A client's network: its IPv4 /24 or IPv6 /48 (what one site or provider edge tends to
/// share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix(u128);

impl Prefix {
    /// The prefix as one number (to send it to other nodes), and back.
    pub fn bits(self) -> u128 {
        self.0
    }

    pub fn from_bits(bits: u128) -> Self {
        Prefix(bits)
    }

    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Prefix(u128::from(u32::from(v4) & 0xffff_ff00)),
            IpAddr::V6(v6) => Prefix((u128::from(v6) & !((1u128 << 80) - 1)) | 1),
        }
    }
}

/// How much a new sample moves the estimate.
const WEIGHT: f64 = 0.3;
/// Estimates older than this are not trusted (routes and nodes change).
const FRESH: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Copy)]
struct Estimate {
    rtt_ms: f64,
    at: Instant,
}

/// Estimates per prefix and node, for at most `max_prefixes` prefixes (the least recently
/// reported are forgotten first).
#[derive(Debug)]
pub struct RttBook {
    max_prefixes: usize,
    estimates: HashMap<Prefix, HashMap<String, Estimate>>,
    /// Prefixes in the order they were last reported (may hold stale repeats).
    order: VecDeque<(Prefix, Instant)>,
}

impl RttBook {
    pub fn new(max_prefixes: usize) -> Self {
        Self {
            max_prefixes: max_prefixes.max(1),
            estimates: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// A sample: from `prefix`, `node` answered in `rtt_ms`.
    pub fn record(&mut self, prefix: Prefix, node: &str, rtt_ms: f64, now: Instant) {
        let nodes = self.estimates.entry(prefix).or_default();
        let estimate = nodes
            .entry(node.to_owned())
            .or_insert(Estimate { rtt_ms, at: now });
        estimate.rtt_ms += WEIGHT * (rtt_ms - estimate.rtt_ms);
        estimate.at = now;
        self.order.push_back((prefix, now));
        while self.estimates.len() > self.max_prefixes || self.order.len() > 4 * self.max_prefixes {
            let Some((oldest, at)) = self.order.pop_front() else {
                break;
            };
            // A repeat reported later keeps the prefix.
            let last = self
                .estimates
                .get(&oldest)
                .and_then(|n| n.values().map(|e| e.at).max());
            if last.is_some_and(|last| last <= at) {
                self.estimates.remove(&oldest);
            }
        }
    }

    /// The region of the open node this prefix reaches fastest, by fresh estimates.
    pub fn fastest_region<'a>(
        &self,
        prefix: Prefix,
        nodes: &'a [NodeInfo],
        now: Instant,
    ) -> Option<&'a str> {
        let measured = self.estimates.get(&prefix)?;
        nodes
            .iter()
            .filter(|n| takes_newcomers(n))
            .filter_map(|n| {
                let e = measured.get(&n.name)?;
                (now.saturating_duration_since(e.at) < FRESH).then_some((e.rtt_ms, n))
            })
            .min_by(|(a, na), (b, nb)| a.total_cmp(b).then(na.name.cmp(&nb.name)))
            .map(|(_, n)| n.region.as_str())
    }

    pub fn prefixes(&self) -> usize {
        self.estimates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::test_node;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn neighbours_share_a_prefix_and_strangers_do_not() {
        assert_eq!(
            Prefix::of(ip("198.51.100.7")),
            Prefix::of(ip("198.51.100.200"))
        );
        assert_ne!(
            Prefix::of(ip("198.51.100.7")),
            Prefix::of(ip("198.51.101.7"))
        );
        assert_eq!(
            Prefix::of(ip("::ffff:198.51.100.7")),
            Prefix::of(ip("198.51.100.9"))
        );
        assert_eq!(
            Prefix::of(ip("2001:db8:1:2::1")),
            Prefix::of(ip("2001:db8:1:ff::1"))
        );
        assert_ne!(
            Prefix::of(ip("2001:db8:1::1")),
            Prefix::of(ip("2001:db8:2::1"))
        );
        assert_ne!(
            Prefix::of(ip("0.0.0.1")),
            Prefix::of(ip("::1")),
            "families apart"
        );
    }

    #[test]
    fn the_fastest_open_node_decides_while_its_estimate_is_fresh() {
        let t0 = Instant::now();
        let nodes = [
            test_node("eu1", "eu", 0, 100),
            test_node("us1", "us", 0, 100),
        ];
        let mut book = RttBook::new(10);
        let p = Prefix::of(ip("198.51.100.7"));
        assert_eq!(book.fastest_region(p, &nodes, t0), None, "nothing measured");
        book.record(p, "eu1", 80.0, t0);
        book.record(p, "us1", 20.0, t0);
        assert_eq!(book.fastest_region(p, &nodes, t0), Some("us"));
        // Slower lately: the estimate moves, not jumps.
        book.record(p, "us1", 200.0, t0);
        assert_eq!(
            book.fastest_region(p, &nodes, t0),
            Some("us"),
            "74 ms still beats 80"
        );
        book.record(p, "us1", 200.0, t0);
        assert_eq!(book.fastest_region(p, &nodes, t0), Some("eu"));
        // A node that takes nobody new, or unknown to the registry, does not count.
        let full = [
            test_node("eu1", "eu", 100, 100),
            test_node("us1", "us", 0, 100),
        ];
        assert_eq!(book.fastest_region(p, &full, t0), Some("us"));
        assert_eq!(book.fastest_region(p, &nodes[1..], t0), Some("us"));
        // Stale estimates are not trusted.
        assert_eq!(book.fastest_region(p, &nodes, t0 + FRESH), None);
    }

    #[test]
    fn the_book_forgets_the_least_recently_reported_prefixes() {
        let t0 = Instant::now();
        let mut book = RttBook::new(2);
        let nodes = [test_node("eu1", "eu", 0, 100)];
        let (a, b, c) = (
            Prefix::of(ip("10.0.1.1")),
            Prefix::of(ip("10.0.2.1")),
            Prefix::of(ip("10.0.3.1")),
        );
        book.record(a, "eu1", 10.0, t0);
        book.record(b, "eu1", 10.0, t0 + Duration::from_secs(1));
        book.record(a, "eu1", 10.0, t0 + Duration::from_secs(2));
        book.record(c, "eu1", 10.0, t0 + Duration::from_secs(3));
        assert_eq!(book.prefixes(), 2);
        let now = t0 + Duration::from_secs(4);
        assert!(
            book.fastest_region(a, &nodes, now).is_some(),
            "reported again: kept"
        );
        assert!(
            book.fastest_region(b, &nodes, now).is_none(),
            "the oldest: forgotten"
        );
        for i in 0..100 {
            book.record(c, "eu1", 10.0, now + Duration::from_secs(i));
        }
        assert!(book.order.len() <= 8, "repeats do not pile up");
    }
}
