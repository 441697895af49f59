//! A connection nobody uses must not stay open for ever: a client that went away without
//! closing (a dropped NAT mapping, a laptop put to sleep) would keep its socket and its
//! place in the per-client connection count. HTTP/1.1 ends an idle keep-alive connection
//! when the next head does not arrive within the header timeout; HTTP/2 has no such timer.
//! So every TCP connection notes that bytes moved, and one where none moved either way for
//! the idle timeout is closed (HTTP/2: GOAWAY), like nginx's `keepalive_timeout`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
            if self.moved.swap(false, Ordering::Relaxed) {
                quiet = 0;
            } else {
                quiet += 1;
                if quiet >= CHECKS {
                    return;
                }
            }
        }
    }

    fn note<T>(&self, poll: &Poll<io::Result<T>>) {
        if let Poll::Ready(Ok(_)) = poll {
            self.moved.store(true, Ordering::Relaxed);
        }
    }
}

/// A stream that notes its transfers in an [`Activity`].
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.activity.note(&poll);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.note(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.note(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    async fn bytes_either_way_keep_a_connection_in_use() {
        let (mut client, server) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let mut server = Tracked::new(server, activity.clone());
        let idle = activity.idle(LIMIT);
        tokio::pin!(idle);
        let mut buf = [0u8; 16];
        // A request every 0.9 limit, an answer every 0.9 limit: never silent for the limit.
        for turn in 0..10 {
            tokio::select! {
                () = &mut idle => panic!("idle at turn {turn}"),
                () = tokio::time::sleep(LIMIT * 9 / 10) => {}
            }
            if turn % 2 == 0 {
                client.write_all(b"ping").await.unwrap();
                server.read_exact(&mut buf[..4]).await.unwrap();
            } else {
                server.write_all(b"pong").await.unwrap();
                client.read_exact(&mut buf[..4]).await.unwrap();
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
