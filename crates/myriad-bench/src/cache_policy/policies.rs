//! Eviction policies replayed over a trace, each with a budget of bytes: the edge's own (moka's
//! TinyLFU admission with size-aware eviction), moka's LRU, and two the literature proposes
//! as simpler and as good: SIEVE (Zhang et al., NSDI '24) and S3-FIFO (Yang et al., SOSP '23),
//! written here from their papers' descriptions, size-aware (evict until the object fits).

use std::collections::{HashMap, VecDeque};

/// A cache under test: is `key` there (a hit)? If not, it is admitted as the policy decides.
pub trait Policy {
    fn name(&self) -> &'static str;
    fn request(&mut self, key: u64, bytes: u32) -> bool;
}

/// moka, as the edge's memory tier builds it (weighted by size), with TinyLFU or LRU.
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
            "moka TinyLFU (the edge's)",
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

/// S3-FIFO: a small FIFO (a tenth of the bytes) that new objects enter, a main FIFO for
/// those seen again, and a ghost FIFO of keys recently dropped from the small one (seen again,
/// they go straight to main). Each object counts its hits up to 3.
pub struct S3Fifo {
    small: Fifo,
    main: Fifo,
    ghost: VecDeque<u64>,
    ghosts: HashMap<u64, u32>,
    ghost_max: usize,
    /// Hits (at most 3) of the objects in either queue, and which queue.
    objects: HashMap<u64, (u8, bool)>,
}

#[derive(Default)]
struct Fifo {
    queue: VecDeque<(u64, u32)>,
    used: u64,
    capacity: u64,
}

impl S3Fifo {
    pub fn new(capacity: u64) -> Self {
        let small = capacity / 10;
        Self {
            small: Fifo {
                capacity: small,
                ..Fifo::default()
            },
            main: Fifo {
                capacity: capacity - small,
                ..Fifo::default()
            },
            ghost: VecDeque::new(),
            ghosts: HashMap::new(),
            ghost_max: 0,
            objects: HashMap::new(),
        }
    }

    fn insert_main(&mut self, key: u64, bytes: u32) {
        while self.main.used + u64::from(bytes) > self.main.capacity {
            let Some((k, b)) = self.main.queue.pop_front() else {
                break;
            };
            self.main.used -= u64::from(b);
            match self.objects.get_mut(&k) {
                Some((hits, _)) if *hits > 0 => {
                    *hits -= 1;
                    self.main.queue.push_back((k, b));
                    self.main.used += u64::from(b);
                }
                _ => {
                    self.objects.remove(&k);
                }
            }
        }
        self.main.queue.push_back((key, bytes));
        self.main.used += u64::from(bytes);
        self.objects.insert(key, (0, true));
        // The ghost remembers about as many keys as main holds objects.
        self.ghost_max = self.ghost_max.max(self.main.queue.len());
    }

    fn insert_small(&mut self, key: u64, bytes: u32) {
        while self.small.used + u64::from(bytes) > self.small.capacity {
            let Some((k, b)) = self.small.queue.pop_front() else {
                break;
            };
            self.small.used -= u64::from(b);
            let hits = self.objects.remove(&k).map_or(0, |(h, _)| h);
            if hits > 0 {
                self.insert_main(k, b);
            } else {
                self.remember(k);
            }
        }
        self.small.queue.push_back((key, bytes));
        self.small.used += u64::from(bytes);
        self.objects.insert(key, (0, false));
    }

    fn remember(&mut self, key: u64) {
        self.ghost.push_back(key);
        *self.ghosts.entry(key).or_default() += 1;
        while self.ghost.len() > self.ghost_max.max(1) {
            if let Some(old) = self.ghost.pop_front() {
                if let Some(n) = self.ghosts.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        self.ghosts.remove(&old);
                    }
                }
            }
        }
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "S3-FIFO"
    }

    fn request(&mut self, key: u64, bytes: u32) -> bool {
        if let Some((hits, _)) = self.objects.get_mut(&key) {
            *hits = (*hits + 1).min(3);
            return true;
        }
        if u64::from(bytes) > self.main.capacity {
            return false;
        }
        if self.ghosts.contains_key(&key) || u64::from(bytes) > self.small.capacity {
            self.insert_main(key, bytes);
        } else {
            self.insert_small(key, bytes);
        }
        false
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
            Box::new(S3Fifo::new(capacity)),
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
        let mut fifo = S3Fifo::new(1_000);
        for k in 0..500 {
            sieve.request(k, 90);
            fifo.request(k, 90);
            assert!(sieve.used <= 1_000);
            assert!(fifo.small.used + fifo.main.used <= 1_000);
        }
    }

    #[test]
    fn sieve_spares_what_was_visited_and_s3_fifo_what_was_seen_again() {
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
        let mut fifo = S3Fifo::new(1_000);
        fifo.request(0, 50);
        fifo.request(0, 50);
        for k in 10..40 {
            fifo.request(k, 50);
        }
        assert!(
            fifo.request(0, 50),
            "seen again: promoted to main, past the scan"
        );
    }
}
