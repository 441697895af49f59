//! Counts that every participant sees grow (reactions counted, a poll's voters): when each
//! counted thing was sent, and the delay of each update, taken from the earliest thing it
//! newly counts (things are counted in about the order they are sent), so it bounds the
//! update's delays from above.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct Counting {
    sent_at: Mutex<Vec<Instant>>,
    delays_ms: Mutex<Vec<f64>>,
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
        if let (Some(sent), Ok(mut delays)) = (earliest, self.delays_ms.lock()) {
            delays.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// The delays seen, in order.
    pub fn delays_ms(&self) -> Vec<f64> {
        let mut d = self.delays_ms.lock().map(|d| d.clone()).unwrap_or_default();
        d.sort_by(f64::total_cmp);
        d
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
