//! A value every request updates, kept in one copy per thread: a single shared copy would
//! move between cores with each update, which on two busy workers costs more than the update
//! itself. Each thread writes its own copy; readers (a scrape) go through all of them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Copies per value. Threads past this many share copies, so the values must be updated
/// atomically all the same; an edge's hot threads are its few async workers.
const COPIES: usize = 16;

/// Two cache lines: the adjacent-line prefetcher moves lines in pairs.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

pub struct Sharded<T> {
    copies: Box<[Padded<T>]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            copies: (0..COPIES).map(|_| Padded::default()).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// The calling thread's copy.
    pub fn local(&self) -> &T {
        &self.copies[thread_number() % self.copies.len()].0
    }

    /// Every copy, for summing.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.copies.iter().map(|c| &c.0)
    }
}

/// This thread's number, in the order threads first ask.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn total(counts: &Sharded<AtomicU64>) -> u64 {
        counts.all().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    #[test]
    fn threads_count_in_their_own_copies_and_the_sum_is_whole() {
        let counts = Sharded::<AtomicU64>::default();
        // More threads than copies: some share one, and nothing is lost.
        std::thread::scope(|s| {
            for _ in 0..COPIES + 4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        counts.local().fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(total(&counts), (COPIES as u64 + 4) * 10_000);
        let used = counts
            .all()
            .filter(|c| c.load(Ordering::Relaxed) > 0)
            .count();
        assert!(used > 1, "every thread wrote the same copy");
    }

    #[test]
    fn a_thread_keeps_its_copy() {
        let counts = Sharded::<AtomicU64>::default();
        let first: *const AtomicU64 = counts.local();
        assert!(std::ptr::eq(first, counts.local()));
        let copies: Vec<*const AtomicU64> = counts.all().map(|c| c as *const _).collect();
        for pair in copies.windows(2) {
            // Copies never share a cache line.
            assert!(pair[1] as usize - pair[0] as usize >= 128);
        }
    }
}
