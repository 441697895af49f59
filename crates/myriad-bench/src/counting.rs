//! Counts that every participant sees grow (reactions counted, a poll's voters): when each
//! counted thing was sent, and the delay of each update, taken from the earliest thing it
//! newly counts (things are counted in about the order they are sent), so it bounds the
//! update's delays from above.

use std::sync::Mutex;
use std::time::Instant;

/// Delays seen by many tasks, in milliseconds.
#[derive(Debug, Default)]
pub struct Delays(Mutex<Vec<f64>>);

impl Delays {
    /// One more: from `sent` to now.
    pub fn since(&self, sent: Instant) {
        if let Ok(mut d) = self.0.lock() {
            d.push(Instant::now().saturating_duration_since(sent).as_secs_f64() * 1000.0);
        }
    }

    /// All seen so far, smallest first (for [`crate::forward::percentile`]).
    pub fn sorted(&self) -> Vec<f64> {
        let mut d = self.0.lock().map(|d| d.clone()).unwrap_or_default();
        d.sort_by(f64::total_cmp);
        d
    }
}

#[derive(Default)]
pub struct Counting {
    sent_at: Mutex<Vec<Instant>>,
    delays: Delays,
}

impl Counting {
    /// One more thing sent, now.
    pub fn sent(&self) {
        if let Ok(mut s) = self.sent_at.lock() {
            s.push(Instant::now());
        }
    }

    /// A participant's count grew past `before`: the update's delay.
    pub fn grew(&self, before: u64) {
        let earliest = self
            .sent_at
            .lock()
            .ok()
            .and_then(|s| s.get(before as usize).copied());
        if let Some(sent) = earliest {
            self.delays.since(sent);
        }
    }

    /// The delays seen, in order.
    pub fn delays_ms(&self) -> Vec<f64> {
        self.delays.sorted()
    }
}

/// What the meeting counted, as the participant who saw least of it saw it; and how many
/// participants saw another total than `sent`.
pub fn agreement(totals: impl IntoIterator<Item = u64>, sent: u64) -> (u64, u64) {
    let mut least = None::<u64>;
    let mut off = 0;
    for t in totals {
        least = Some(least.map_or(t, |l| l.min(t)));
        off += u64::from(t != sent);
    }
    (least.unwrap_or(0), off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_total_counts_and_others_are_told_apart() {
        assert_eq!(agreement([5, 5, 5], 5), (5, 0));
        assert_eq!(agreement([5, 4, 6], 5), (4, 2));
        assert_eq!(agreement([], 5), (0, 0));
    }

    #[test]
    fn an_update_is_as_late_as_the_earliest_thing_it_counts() {
        let c = Counting::default();
        c.sent();
        c.sent();
        c.grew(0);
        c.grew(5);
        assert_eq!(c.delays_ms().len(), 1, "nothing sent that late");
    }
}
