//! Logging refusals without a line for each: a flood of refused requests (rate limit,
//! connections per address, malformed heads) would otherwise cost the edge a formatted,
//! written log line per request and fill the operator's disk. Per reason, at most one line
//! a second, carrying how many refusals went unlogged before it; `/metrics` counts every
//! one. (What the WAF flags is logged apart, each time, with its rule ids.)

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::metrics::BlockReason;

const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct RefusalLog(Mutex<HashMap<BlockReason, Window>>);

struct Window {
    logged_at: Instant,
    unlogged: u64,
}

impl RefusalLog {
    /// Whether a refusal for `reason` at `now` is logged: then the number of refusals for
    /// it left unlogged since its last line; `None` leaves this one unlogged.
    pub fn admit(&self, reason: BlockReason, now: Instant) -> Option<u64> {
        let mut windows = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get_mut(&reason) {
            Some(w) if now.saturating_duration_since(w.logged_at) < INTERVAL => {
                w.unlogged += 1;
                None
            }
            Some(w) => {
                w.logged_at = now;
                Some(std::mem::take(&mut w.unlogged))
            }
            None => {
                windows.insert(
                    reason,
                    Window {
                        logged_at: now,
                        unlogged: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_per_reason_with_what_it_left_out() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(log.admit(BlockReason::RateLimit, at(0)), Some(0));
        for ms in 1..=500 {
            assert_eq!(log.admit(BlockReason::RateLimit, at(ms)), None);
        }
        assert_eq!(
            log.admit(BlockReason::Malformed, at(10)),
            Some(0),
            "reasons apart"
        );
        assert_eq!(log.admit(BlockReason::RateLimit, at(999)), None);
        assert_eq!(log.admit(BlockReason::RateLimit, at(1000)), Some(501));
        assert_eq!(log.admit(BlockReason::RateLimit, at(1500)), None);
        assert_eq!(log.admit(BlockReason::RateLimit, at(5000)), Some(1));
    }
}
