//! A client connection's stream as the edge watches it, below TLS and hyper:
//! - a client that stops reading must not hold its connection, and what the response holds,
//!   for ever: like nginx's `send_timeout`, a write to the client that cannot go on for the
//!   limit fails, and hyper closes the connection. The clock runs only while a write waits;
//! - every transfer is noted, with its direction, for the idle timeout ([`Activity`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::idle::Activity;

/// The error a stalled write ends with, to be told apart from the network's own.
#[derive(Debug, thiserror::Error)]
#[error("the client took no data for {0:?}")]
pub struct SendTimedOut(pub Duration);

pub struct ClientStream<S> {
    inner: S,
    activity: Arc<Activity>,
    limit: Duration,
    /// Armed while a write waits; created on the first wait only (most connections never
    /// wait to write).
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    /// What it reads is HTTP (no TLS above it).
    http: bool,
}

impl<S> ClientStream<S> {
    /// A cleartext connection; `limit`: the send timeout.
    pub fn new(inner: S, limit: Duration, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            limit,
            timer: None,
            waiting: false,
            http: true,
        }
    }

    /// The socket under TLS: [`HttpReads`] above TLS notes the HTTP.
    pub fn under_tls(inner: S, limit: Duration, activity: Arc<Activity>) -> Self {
        Self {
            http: false,
            ..Self::new(inner, limit, activity)
        }
    }

    /// After a write returned `poll`: bytes taken are activity; then [`Self::watch`].
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = poll {
            if n > 0 {
                self.activity.note_write();
            }
        }
        self.watch(cx, poll)
    }

    /// After a write (or flush) returned `poll`: progress disarms the timer; waiting arms it
    /// (if it is not armed yet) and fails once it has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting = false;
            return poll;
        }
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(timer) = &mut self.timer {
            ready!(timer.as_mut().poll(cx));
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            SendTimedOut(self.limit),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        read_noting(&mut this.inner, cx, buf, || {
            this.activity.note_read();
            if this.http {
                this.activity.note_http();
            }
        })
    }
}

/// Reads from `inner`; `noted` runs if bytes came.
fn read_noting<S: AsyncRead + Unpin>(
    inner: &mut S,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    noted: impl FnOnce(),
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    let poll = Pin::new(inner).poll_read(cx, buf);
    if buf.filled().len() > before {
        noted();
    }
    poll
}

/// Above TLS: notes that the client sent HTTP, not only a handshake.
pub struct HttpReads<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> HttpReads<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HttpReads<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        read_noting(&mut this.inner, cx, buf, || this.activity.note_http())
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HttpReads<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_takes_fails_after_the_limit() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = ClientStream::new(server, Duration::from_secs(5), Arc::default());
        let started = Instant::now();
        let e = server
            .write_all(&[0u8; 4096])
            .await
            .expect_err("the client reads nothing");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.get_ref().is_some_and(|e| e.is::<SendTimedOut>()));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(client);
    }

    #[tokio::test]
    async fn bytes_read_or_written_are_noted_and_flushes_are_not() {
        let (mut client, server) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let mut server = ClientStream::new(server, Duration::from_secs(5), activity.clone());
        server.flush().await.unwrap();
        assert!(!activity.take_noted());
        client.write_all(b"in").await.unwrap();
        let mut buf = [0u8; 2];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut buf)
            .await
            .unwrap();
        assert!(activity.take_noted());
        assert!(activity.client_spoke_last());
        server.write_all(b"out").await.unwrap();
        assert!(activity.take_noted());
        assert!(!activity.client_spoke_last());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_data_is_not_cut_off() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = ClientStream::new(server, Duration::from_secs(5), Arc::default());
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 512];
            while got < 64 << 10 {
                // Each wait shorter than the limit, all of them far longer.
                tokio::time::sleep(Duration::from_secs(3)).await;
                got += tokio::io::AsyncReadExt::read(&mut client, &mut buf)
                    .await
                    .unwrap();
            }
            got
        });
        server.write_all(&vec![0u8; 64 << 10]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 64 << 10);
    }
}
