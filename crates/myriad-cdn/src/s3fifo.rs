//! The memory tier's cache: S3-FIFO (Yang et al., SOSP '23), weighted by size. New objects
//! enter a small FIFO (a tenth of the bytes); those requested again before they reach its
//! end move to the main FIFO, the others leave (their keys kept a while in a ghost FIFO: seen
//! again, they go straight to main). Main objects requested since they last came round get
//! another round. On meeting content it keeps far more than TinyLFU, which refuses a new
//! meeting's slides that everyone wants at once (`myriad bench cache-policy`), and a scan of
//! cold objects passes through the small FIFO without flushing main.
//!
//! Lookups take a shard's read lock and bump a counter; inserts, removals and evictions take
//! the queues' lock. A purged object is gone from lookups, and its value freed, at once.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

const SHARDS: usize = 16;
/// Requests counted per object, at most.
const MAX_FREQ: u8 = 3;

struct Entry<V> {
    value: V,
    weight: u32,
    /// Which insertion of the key this is: queue slots of an older one are stale.
    generation: u64,
    freq: AtomicU8,
    /// In main (else in small).
    in_main: AtomicBool,
}

#[derive(Default)]
struct Queues {
    /// Keys in the order they entered each queue, with the generation they entered as.
    small: VecDeque<(Arc<str>, u64)>,
    main: VecDeque<(Arc<str>, u64)>,
    small_bytes: u64,
    main_bytes: u64,
    ghost: VecDeque<u64>,
    ghosts: HashMap<u64, u32>,
    next_generation: u64,
    /// Slots of removed or replaced insertions still in the queues.
    stale: usize,
}

/// Stale slots tolerated before the queues are swept (they otherwise go only as eviction
/// reaches them, and a cache that never fills would keep every replaced one).
const STALE_SWEEP: usize = 1024;

/// A part of the key space, with its own lock.
type Shard<V> = RwLock<HashMap<Arc<str>, Arc<Entry<V>>>>;

pub struct S3Fifo<V> {
    shards: Vec<Shard<V>>,
    queues: Mutex<Queues>,
    capacity: u64,
    small_capacity: u64,
    hasher: RandomState,
    evicted: AtomicU64,
}

impl<V: Clone> S3Fifo<V> {
    pub fn new(capacity: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            queues: Mutex::default(),
            capacity,
            small_capacity: capacity / 10,
            hasher: RandomState::new(),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &str) -> &Shard<V> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        // Each change is applied whole before anything can panic: a poisoned lock is usable.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?;
        let freq = entry.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            entry.freq.store(freq + 1, Ordering::Relaxed);
        }
        Some(entry.value.clone())
    }

    /// Stores `value` (replacing what `key` held), evicting for room; one heavier than the
    /// whole budget is not kept (and counts as evicted).
    pub fn insert(&self, key: &str, value: V, weight: u32) {
        let weight64 = u64::from(weight);
        let mut q = self.queues();
        self.remove_locked(&mut q, key);
        if weight64 > self.capacity {
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        while q.small_bytes + q.main_bytes + weight64 > self.capacity {
            if !self.evict_one(&mut q) {
                break;
            }
        }
        let key: Arc<str> = Arc::from(key);
        let seen = self.hasher.hash_one(&*key);
        let to_main = q.ghosts.contains_key(&seen) || weight64 > self.small_capacity;
        q.next_generation += 1;
        let generation = q.next_generation;
        let entry = Arc::new(Entry {
            value,
            weight,
            generation,
            freq: AtomicU8::new(0),
            in_main: AtomicBool::new(to_main),
        });
        if to_main {
            q.main.push_back((key.clone(), generation));
            q.main_bytes += weight64;
        } else {
            q.small.push_back((key.clone(), generation));
            q.small_bytes += weight64;
        }
        self.shard(&key)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, entry);
    }

    /// Drops `key` at once.
    pub fn invalidate(&self, key: &str) {
        let mut q = self.queues();
        self.remove_locked(&mut q, key);
    }

    fn remove_locked(&self, q: &mut Queues, key: &str) -> Option<Arc<Entry<V>>> {
        let entry = self
            .shard(key)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)?;
        let w = u64::from(entry.weight);
        if entry.in_main.load(Ordering::Relaxed) {
            q.main_bytes -= w;
        } else {
            q.small_bytes -= w;
        }
        // Its queue slot stays, stale, until it comes round or the queues are swept.
        q.stale += 1;
        if q.stale > STALE_SWEEP && 2 * q.stale > q.small.len() + q.main.len() {
            let live = |(key, generation): &(Arc<str>, u64)| self.live(key, *generation).is_some();
            q.small.retain(live);
            q.main.retain(live);
            q.stale = 0;
        }
        Some(entry)
    }

    /// The live entry a queue slot stands for, if it is still that insertion.
    fn live(&self, key: &str, generation: u64) -> Option<Arc<Entry<V>>> {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        shard
            .get(key)
            .filter(|e| e.generation == generation)
            .cloned()
    }

    /// Evicts (or moves) one object; false if there is nothing left to evict.
    fn evict_one(&self, q: &mut Queues) -> bool {
        loop {
            let from_small = q.small_bytes > self.small_capacity || q.main.is_empty();
            let slot = if from_small {
                q.small.pop_front()
            } else {
                q.main.pop_front()
            };
            let Some((key, generation)) = slot else {
                // Only stale slots were left in that queue.
                if q.small.is_empty() && q.main.is_empty() {
                    return false;
                }
                continue;
            };
            let Some(entry) = self.live(&key, generation) else {
                q.stale = q.stale.saturating_sub(1);
                continue;
            };
            let w = u64::from(entry.weight);
            let freq = entry.freq.load(Ordering::Relaxed);
            if from_small && freq > 0 {
                // Wanted again while new: into main, counted afresh.
                entry.freq.store(0, Ordering::Relaxed);
                entry.in_main.store(true, Ordering::Relaxed);
                q.small_bytes -= w;
                q.main_bytes += w;
                q.main.push_back((key, generation));
                continue;
            }
            if !from_small && freq > 0 {
                entry.freq.store(freq - 1, Ordering::Relaxed);
                q.main.push_back((key, generation));
                continue;
            }
            if from_small {
                self.remember(q, self.hasher.hash_one(&*key));
            }
            self.remove_locked(q, &key);
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return true;
        }
    }

    /// A key dropped from small: remembered about as long as main's objects stay.
    fn remember(&self, q: &mut Queues, hash: u64) {
        q.ghost.push_back(hash);
        *q.ghosts.entry(hash).or_default() += 1;
        let keep = q.main.len().max(64);
        while q.ghost.len() > keep {
            let Some(old) = q.ghost.pop_front() else {
                break;
            };
            if let Some(n) = q.ghosts.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    q.ghosts.remove(&old);
                }
            }
        }
    }

    /// Drops every object `doomed` picks.
    pub fn invalidate_if(&self, doomed: impl Fn(&str, &V) -> bool) {
        let keys: Vec<Arc<str>> = self
            .shards
            .iter()
            .flat_map(|s| {
                let shard = s.read().unwrap_or_else(|p| p.into_inner());
                shard
                    .iter()
                    .filter(|(k, e)| doomed(k, &e.value))
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut q = self.queues();
        for key in keys {
            self.remove_locked(&mut q, &key);
        }
    }

    /// Bytes held, as weighed.
    pub fn weighted_size(&self) -> u64 {
        let q = self.queues();
        q.small_bytes + q.main_bytes
    }

    pub fn entry_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len() as u64)
            .sum()
    }

    /// Objects dropped for room (or too heavy to keep), since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_replaced_and_purged_within_the_budget() {
        let cache = S3Fifo::new(1_000);
        cache.insert("a", 1, 100);
        assert_eq!(cache.get("a"), Some(1));
        cache.insert("a", 2, 200);
        assert_eq!(cache.get("a"), Some(2));
        assert_eq!(cache.weighted_size(), 200);
        cache.invalidate("a");
        assert_eq!(cache.get("a"), None);
        assert_eq!((cache.weighted_size(), cache.entry_count()), (0, 0));
        cache.insert("huge", 3, 5_000);
        assert_eq!(cache.get("huge"), None);
        assert_eq!(cache.evicted(), 1);
        for k in 0..500 {
            cache.insert(&format!("k{k}"), k, 90);
            assert!(cache.weighted_size() <= 1_000);
        }
        assert!(cache.get("k499").is_some(), "the newest is there");
        cache.invalidate_if(|k, _| k.starts_with("k49"));
        assert!(cache.get("k499").is_none());
        assert_eq!(
            cache.weighted_size(),
            90 * cache.entry_count(),
            "bytes follow what is held"
        );
    }

    #[test]
    fn what_is_wanted_again_outlives_a_scan_and_the_ghost_brings_it_back() {
        let cache = S3Fifo::new(1_000);
        cache.insert("hot", 0, 50);
        cache.get("hot");
        for k in 0..100 {
            cache.insert(&format!("scan{k}"), k, 50);
        }
        assert!(
            cache.get("hot").is_some(),
            "promoted to main, past the scan"
        );
        // A key the scan dropped lately (small holds the newest 19), seen again, goes
        // straight to main and stays through the next scan.
        assert!(cache.get("scan70").is_none());
        cache.insert("scan70", 0, 50);
        for k in 100..150 {
            cache.insert(&format!("scan{k}"), k, 50);
        }
        assert!(
            cache.get("scan70").is_some(),
            "back through the ghost, into main"
        );
        // One the ghost forgot (it remembers about as many keys as main holds, 64 at least)
        // is new again, and the next scan takes it.
        assert!(cache.get("scan0").is_none());
        cache.insert("scan0", 0, 50);
        for k in 150..200 {
            cache.insert(&format!("scan{k}"), k, 50);
        }
        assert!(cache.get("scan0").is_none());
    }

    #[test]
    fn replaced_and_purged_objects_leave_no_trail_in_a_cache_that_never_fills() {
        let cache = S3Fifo::new(1 << 30);
        for i in 0..20_000u32 {
            cache.insert("revalidated", i, 100);
            if i % 2 == 0 {
                cache.invalidate("revalidated");
            }
        }
        let q = cache.queues();
        assert!(
            q.small.len() + q.main.len() <= 2 * STALE_SWEEP + 2,
            "{}",
            q.small.len()
        );
        drop(q);
        assert_eq!(cache.get("revalidated"), Some(19_999));
        assert_eq!(cache.weighted_size(), 100);
    }

    #[test]
    fn lookups_and_stores_from_many_threads_keep_the_books_straight() {
        let cache = Arc::new(S3Fifo::new(100_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        let key = format!("k{}", (i * 7 + t) % 700);
                        if cache.get(&key).is_none() {
                            cache.insert(&key, i, 200 + (i % 5) as u32 * 100);
                        }
                        if i % 97 == 0 {
                            cache.invalidate(&key);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        assert!(cache.weighted_size() <= 100_000);
        let held: u64 = cache
            .shards
            .iter()
            .flat_map(|s| {
                s.read()
                    .unwrap()
                    .values()
                    .map(|e| u64::from(e.weight))
                    .collect::<Vec<_>>()
            })
            .sum();
        assert_eq!(held, cache.weighted_size());
    }
}
