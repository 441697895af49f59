//! Eviction policies replayed over a trace, each with a budget of bytes: moka's TinyLFU (the
//! edge's memory tier until this comparison) and LRU, SIEVE (Zhang et al., NSDI '24; written
//! here from the paper, size-aware: evict until the object fits), and S3-FIFO (Yang et al.,
//! SOSP '23) as the edge now runs it.

use std::collections::HashMap;

/// A cache under test: is `key` there (a hit)? If not, it is admitted as the policy decides.
pub trait Policy {
    fn name(&self) -> &'static str;
    fn request(&mut self, key: u64, bytes: u32) -> bool;
}

/// moka (weighted by size, as the edge's memory tier had it until S3-FIFO won here), with
/// TinyLFU or LRU.
pub struct Moka {
    name: &'static str,
    capacity: u64,
    cache: moka::sync::Cache<u64, u32>,
    since_maintenance: u32,
}

impl Moka {
    pub fn tiny_lfu(capacity: u64) -> Self {
        Self::with(
            capacity,
            moka::policy::EvictionPolicy::tiny_lfu(),
            "moka TinyLFU",
        )
    }

    pub fn lru(capacity: u64) -> Self {
        Self::with(capacity, moka::policy::EvictionPolicy::lru(), "LRU (moka)")
    }

    fn with(capacity: u64, policy: moka::policy::EvictionPolicy, name: &'static str) -> Self {
        Self {
            name,
            capacity,
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(policy)
                .weigher(|_: &u64, bytes: &u32| *bytes)
                .build(),
            since_maintenance: 0,
        }
    }
}

impl Policy for Moka {
    fn name(&self) -> &'static str {
        self.name
    }

    fn request(&mut self, key: u64, bytes: u32) -> bool {
        let hit = self.cache.get(&key).is_some();
        // Larger than the whole budget: passed through, as the edge does.
        if !hit && u64::from(bytes) <= self.capacity {
            self.cache.insert(key, bytes);
        }
        // moka applies its bookkeeping in batches; replaying as fast as this would otherwise
        // outrun it (the edge is never this fast).
        self.since_maintenance += 1;
        if self.since_maintenance >= 32 {
            self.cache.run_pending_tasks();
            self.since_maintenance = 0;
        }
        hit
    }
}

/// SIEVE: one FIFO queue with a visited bit per object; a hand walks from the oldest towards
/// the newest, sparing (and clearing) visited objects and evicting the first unvisited one.
pub struct Sieve {
    capacity: u64,
    used: u64,
    nodes: Vec<SieveNode>,
    free: Vec<usize>,
    index: HashMap<u64, usize>,
    newest: Option<usize>,
    oldest: Option<usize>,
    hand: Option<usize>,
}

struct SieveNode {
    key: u64,
    bytes: u32,
    visited: bool,
    newer: Option<usize>,
    older: Option<usize>,
}

impl Sieve {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            used: 0,
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            newest: None,
            oldest: None,
            hand: None,
        }
    }

    fn evict(&mut self) {
        let Some(mut at) = self.hand.or(self.oldest) else {
            return;
        };
        while self.nodes[at].visited {
            self.nodes[at].visited = false;
            at = self.nodes[at].newer.or(self.oldest).unwrap_or(at);
        }
        self.hand = self.nodes[at].newer;
        self.unlink(at);
    }

    fn unlink(&mut self, at: usize) {
        let (newer, older) = (self.nodes[at].newer, self.nodes[at].older);
        match newer {
            Some(n) => self.nodes[n].older = older,
            None => self.newest = older,
        }
        match older {
            Some(o) => self.nodes[o].newer = newer,
            None => self.oldest = newer,
        }
        self.used -= u64::from(self.nodes[at].bytes);
        self.index.remove(&self.nodes[at].key);
        self.free.push(at);
    }
}

impl Policy for Sieve {
    fn name(&self) -> &'static str {
        "SIEVE"
    }

    fn request(&mut self, key: u64, bytes: u32) -> bool {
        if let Some(&at) = self.index.get(&key) {
            self.nodes[at].visited = true;
            return true;
        }
        if u64::from(bytes) > self.capacity {
            return false;
        }
        while self.used + u64::from(bytes) > self.capacity {
            self.evict();
        }
        let node = SieveNode {
            key,
            bytes,
            visited: false,
            newer: None,
            older: self.newest,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.nodes[at] = node;
                at
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if let Some(n) = self.newest {
            self.nodes[n].newer = Some(at);
        }
        self.newest = Some(at);
        self.oldest.get_or_insert(at);
        self.index.insert(key, at);
        self.used += u64::from(bytes);
        false
    }
}

/// S3-FIFO as the edge's memory tier runs it (`myriad_cdn::s3fifo`).
pub struct EdgeS3Fifo(myriad_cdn::s3fifo::S3Fifo<()>);

impl EdgeS3Fifo {
    pub fn new(capacity: u64) -> Self {
        Self(myriad_cdn::s3fifo::S3Fifo::new(capacity))
    }
}

impl Policy for EdgeS3Fifo {
    fn name(&self) -> &'static str {
        "S3-FIFO (the edge's)"
    }

    fn request(&mut self, key: u64, bytes: u32) -> bool {
        let key = key.to_string();
        let hit = self.0.get(&key).is_some();
        if !hit {
            self.0.insert(&key, (), bytes);
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(capacity: u64) -> Vec<Box<dyn Policy>> {
        vec![
            Box::new(Moka::tiny_lfu(capacity)),
            Box::new(Moka::lru(capacity)),
            Box::new(Sieve::new(capacity)),
            Box::new(EdgeS3Fifo::new(capacity)),
        ]
    }

    #[test]
    fn every_policy_hits_what_fits_and_keeps_to_its_budget() {
        for mut p in policies(1_000) {
            assert!(!p.request(1, 100), "{}", p.name());
            assert!(p.request(1, 100), "{}: a second request hits", p.name());
            assert!(!p.request(2, 5_000), "{}: too large to keep", p.name());
            assert!(!p.request(2, 5_000), "{}: still not kept", p.name());
        }
        let mut sieve = Sieve::new(1_000);
        for k in 0..500 {
            sieve.request(k, 90);
            assert!(sieve.used <= 1_000);
        }
    }

    #[test]
    fn sieve_spares_what_was_visited() {
        // Room for 4; 0 is requested again before a scan of cold objects passes.
        let mut sieve = Sieve::new(400);
        for k in 0..4 {
            sieve.request(k, 100);
        }
        sieve.request(0, 100);
        for k in 10..13 {
            sieve.request(k, 100);
        }
        assert!(
            sieve.request(0, 100),
            "the visited object survived the scan"
        );
    }
}
