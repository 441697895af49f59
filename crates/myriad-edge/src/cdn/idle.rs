//! A connection nobody uses must not stay open for ever: a client that went away without
//! closing (a dropped NAT mapping, a laptop put to sleep) would keep its socket and its
//! place in the per-client connection count. HTTP/1.1 ends an idle keep-alive connection
//! when the next head does not arrive within the header timeout; HTTP/2 has no such timer.
//! So every TCP connection notes that bytes moved, and one where none moved either way for
//! the idle timeout is closed (HTTP/2: GOAWAY), like nginx's `keepalive_timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Checks per idle timeout: a connection is closed after between one and 1⅓ timeouts of
/// silence. A flag set on every transfer costs the I/O path no clock read.
const CHECKS: u32 = 3;

/// Whether bytes moved on a connection since the last look.
#[derive(Default)]
pub struct Activity {
    moved: AtomicBool,
}

impl Activity {
    /// Resolves once nothing has moved for `limit`.
    pub async fn idle(&self, limit: Duration) {
        let mut quiet = 0;
        loop {
            tokio::time::sleep(limit / CHECKS).await;
            if self.take_noted() {
                quiet = 0;
            } else {
                quiet += 1;
                if quiet >= CHECKS {
                    return;
                }
            }
        }
    }

    /// Bytes moved ([`super::client_stream`] calls this on every transfer).
    pub fn note(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    /// Whether bytes moved since the last look; forgets it.
    pub(super) fn take_noted(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(75);

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_idle_after_the_limit() {
        let activity = Arc::new(Activity::default());
        let started = Instant::now();
        activity.idle(LIMIT).await;
        assert_eq!(started.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn transfers_keep_a_connection_in_use() {
        let activity = Arc::new(Activity::default());
        let idle = activity.idle(LIMIT);
        tokio::pin!(idle);
        // A transfer every 0.9 limit: never silent for the limit.
        for turn in 0..10 {
            tokio::select! {
                () = &mut idle => panic!("idle at turn {turn}"),
                () = tokio::time::sleep(LIMIT * 9 / 10) => {}
            }
            activity.note();
        }
        // Then silence.
        let silent = Instant::now();
        idle.await;
        let waited = silent.elapsed();
        assert!(
            waited >= LIMIT && waited <= LIMIT + LIMIT / CHECKS,
            "{waited:?}"
        );
    }
}
