//! A connection nobody uses must not stay open for ever: a client that went away without
//! closing (a dropped NAT mapping, a laptop put to sleep) would keep its socket and its
//! place in the per-client connection count. HTTP/1.1 ends an idle keep-alive connection
//! when the next head does not arrive within the header timeout; HTTP/2 has no such timer.
//! So every TCP connection notes that bytes moved, and one where none moved either way for
//! the idle timeout is closed (HTTP/2: GOAWAY), like nginx's `keepalive_timeout`.
//!
//! Which side moved bytes last tells an HTTP/1.1 header timeout apart: a client that sent
//! part of a head is slow (408, counted); one that sent nothing since its last answer, or
//! nothing at all (a browser's spare connection, closed at the header timeout too, and under
//! TLS once nothing followed the handshake), was only idle, and is closed quietly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Checks per idle timeout: a connection is closed after between one and 1⅓ timeouts of
/// silence. A flag set on every transfer costs the I/O path no clock read.
const CHECKS: u32 = 3;

/// Whether bytes moved on a connection since the last look, and which way last.
#[derive(Default)]
pub struct Activity {
    moved: AtomicBool,
    /// The client has sent bytes since the edge last wrote.
    client_last: AtomicBool,
    /// The client has sent anything at all.
    spoke: AtomicBool,
}

impl Activity {
    /// Resolves if the client has sent nothing within `limit` of now (the connection's
    /// start): hyper's header timeout starts only with the first byte.
    pub async fn unused(&self, limit: Duration) {
        tokio::time::sleep(limit).await;
        if self.spoke.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

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

    /// Bytes came from the client ([`super::client_stream`] calls this on every read).
    pub fn note_read(&self) {
        self.moved.store(true, Ordering::Relaxed);
        self.client_last.store(true, Ordering::Relaxed);
    }

    /// The client sent HTTP, so the connection is in use ([`Activity::unused`]); under TLS,
    /// only bytes through the finished handshake count.
    pub fn note_http(&self) {
        self.spoke.store(true, Ordering::Relaxed);
    }

    /// Bytes went to the client.
    pub fn note_write(&self) {
        self.moved.store(true, Ordering::Relaxed);
        self.client_last.store(false, Ordering::Relaxed);
    }

    /// Whether the client has sent anything since the edge last wrote to it.
    pub fn client_spoke_last(&self) -> bool {
        self.client_last.load(Ordering::Relaxed)
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
    async fn a_connection_is_unused_until_the_client_sends_something() {
        let activity = Activity::default();
        let started = Instant::now();
        activity.unused(LIMIT).await;
        assert_eq!(started.elapsed(), LIMIT);
        activity.note_read();
        activity.note_http();
        tokio::select! {
            () = activity.unused(LIMIT) => panic!("the client spoke"),
            () = tokio::time::sleep(10 * LIMIT) => {}
        }
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
            if turn % 2 == 0 {
                activity.note_read();
            } else {
                activity.note_write();
            }
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
