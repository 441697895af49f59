//! HTTP/2 flow control lets a client stop a stream (or all of them) by withholding
//! WINDOW_UPDATE while it drains the socket and keeps the connection open: the socket's send
//! timeout never fires, and hyper stops polling the response body, so no timer of the edge's
//! runs and the stream holds its response for ever.
//!
//! So each response body on an HTTP/2 connection is watched: handed to hyper in pieces no
//! larger than a frame, so hyper asks for the next piece only once the client has given
//! credit for the last, and timed from each piece handed over until the next is asked for.
//! A connection with a stream kept waiting for longer than the send timeout is closed, like
//! an HTTP/1.1 connection whose socket stays full.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::body::{BoxError, ProxyBody};

/// Largest piece handed to HTTP/2 at once: the default frame size, a quarter of the default
/// stream window.
const PIECE: usize = 16 * 1024;

/// A stream's wait value while it is not waiting for the client.
const NOT_WAITING: u64 = 0;

/// The HTTP/2 streams of one connection, and how long each has waited for the client.
pub struct StreamWatch {
    epoch: Instant,
    limit: Duration,
    streams: Mutex<Streams>,
    /// Wakes [`StreamWatch::stalled`] when a stream arrives on an idle connection.
    arrived: Notify,
}

#[derive(Default)]
struct Streams {
    next_id: u64,
    /// Per stream: since when it has waited for the client to ask for a piece (milliseconds
    /// since `epoch`, plus one), or [`NOT_WAITING`].
    clocks: HashMap<u64, Arc<AtomicU64>>,
}

impl StreamWatch {
    pub fn new(limit: Duration) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            limit,
            streams: Mutex::new(Streams::default()),
            arrived: Notify::new(),
        })
    }

    /// The body, watched for as long as hyper holds it. It waits for the client from the
    /// start: hyper asks for the first piece only once the client has given credit.
    ///
    /// A body of one piece or less is left as it is: a stream that never takes it holds no
    /// more than a stream that never takes the last piece of a large one, and most responses
    /// are that small (watching cost 1 KiB responses ~4 % of HTTP/2 requests per second).
    pub fn watch(self: &Arc<Self>, body: ProxyBody) -> ProxyBody {
        if body.size_hint().upper().is_some_and(|n| n <= PIECE as u64) {
            return body;
        }
        let since = Arc::new(AtomicU64::new(self.now()));
        let mut s = self.streams();
        let id = s.next_id;
        s.next_id += 1;
        if s.clocks.is_empty() {
            self.arrived.notify_one();
        }
        s.clocks.insert(id, since.clone());
        drop(s);
        Watched {
            inner: body,
            rest: Bytes::new(),
            cut: false,
            since,
            id,
            watch: self.clone(),
        }
        .boxed_unsync()
    }

    /// The table stays whole even if a holder panicked: each change is one map operation.
    fn streams(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Resolves once a stream has waited longer than the limit for the client to take more.
    /// Sleeps while the connection has no stream.
    pub async fn stalled(&self) {
        let period = (self.limit / 4).max(Duration::from_millis(100));
        loop {
            // `None`: no stream; else the longest wait, in milliseconds.
            let longest = {
                let s = self.streams();
                let now = self.now();
                (!s.clocks.is_empty()).then(|| {
                    s.clocks
                        .values()
                        .map(|since| since.load(Ordering::Relaxed))
                        .filter(|&since| since != NOT_WAITING)
                        .map(|since| now.saturating_sub(since))
                        .max()
                        .unwrap_or(0)
                })
            };
            match longest {
                Some(ms) if Duration::from_millis(ms) > self.limit => return,
                Some(_) => tokio::time::sleep(period).await,
                None => self.arrived.notified().await,
            }
        }
    }
}

struct Watched {
    inner: ProxyBody,
    /// What is left of the frame being handed over in pieces.
    rest: Bytes,
    /// `rest` was cut from a larger frame.
    cut: bool,
    since: Arc<AtomicU64>,
    id: u64,
    watch: Arc<StreamWatch>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watch.streams().clocks.remove(&self.id);
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Asked for more: the client has taken what it was given.
        this.since.store(NOT_WAITING, Ordering::Relaxed);
        if this.rest.is_empty() {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.cut = data.len() > PIECE;
                        this.rest = data;
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                ended => return Poll::Ready(ended),
            }
        }
        let piece = if this.rest.len() > PIECE {
            this.rest.split_to(PIECE)
        } else if this.cut {
            // The last piece may wait in HTTP/2's buffers after the body is gone: a copy,
            // so it does not hold a large (perhaps evicted) object.
            let last = Bytes::copy_from_slice(&this.rest);
            this.rest = Bytes::new();
            last
        } else {
            std::mem::take(&mut this.rest)
        };
        this.since.store(this.watch.now(), Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use std::convert::Infallible;

    const LIMIT: Duration = Duration::from_secs(60);

    fn full(data: Bytes) -> ProxyBody {
        Full::new(data)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync()
    }

    async fn next(body: &mut ProxyBody) -> Option<Bytes> {
        body.frame().await.and_then(|f| f.ok()?.into_data().ok())
    }

    #[tokio::test]
    async fn a_frame_is_handed_over_in_pieces_the_last_one_a_copy() {
        let watch = StreamWatch::new(LIMIT);
        let data = Bytes::from(vec![7u8; 2 * PIECE + 100]);
        let mut body = watch.watch(full(data.clone()));
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let mut pieces = Vec::new();
        while let Some(piece) = next(&mut body).await {
            pieces.push(piece);
            if !body.is_end_stream() {
                assert_eq!(
                    body.size_hint().exact(),
                    Some((data.len() - pieces.iter().map(Bytes::len).sum::<usize>()) as u64)
                );
            }
        }
        assert_eq!(
            pieces.iter().map(Bytes::len).collect::<Vec<_>>(),
            [PIECE, PIECE, 100]
        );
        let within = |b: &Bytes| data.as_ptr_range().contains(&b.as_ptr());
        assert!(within(&pieces[0]) && within(&pieces[1]), "no copies before");
        assert!(!within(&pieces[2]), "the last piece is a copy");
        assert_eq!(pieces.concat(), data.to_vec());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_of_one_piece_is_left_alone() {
        let watch = StreamWatch::new(LIMIT);
        let data = Bytes::from(vec![1u8; PIECE]);
        let mut body = watch.watch(full(data.clone()));
        tokio::select! {
            () = watch.stalled() => panic!("not watched"),
            () = tokio::time::sleep(2 * LIMIT) => {}
        }
        let piece = next(&mut body).await.unwrap();
        assert_eq!(piece.as_ptr(), data.as_ptr());
        assert!(body.is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_not_asked_for_its_first_or_next_piece_within_the_limit_is_stalled() {
        let watch = StreamWatch::new(LIMIT);
        let body = || full(Bytes::from(vec![0u8; 4 * PIECE]));
        for pieces_taken in [0, 1] {
            let mut body = watch.watch(body());
            for _ in 0..pieces_taken {
                next(&mut body).await.unwrap();
            }
            let started = Instant::now();
            watch.stalled().await;
            let waited = started.elapsed();
            assert!(waited > LIMIT && waited <= LIMIT + LIMIT / 4, "{waited:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn streams_that_move_or_wait_for_their_source_are_not_stalled() {
        let watch = StreamWatch::new(LIMIT);
        // Taken a piece every half limit.
        let mut moving = watch.watch(full(Bytes::from(vec![0u8; 8 * PIECE])));
        // Its source has nothing yet: the client is not to blame.
        let (_tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let source = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut waiting = watch.watch(StreamBody::new(source).boxed_unsync());
        let stalled = watch.stalled();
        tokio::pin!(stalled);
        for _ in 0..8 {
            next(&mut moving).await.unwrap();
            let polled = tokio::time::timeout(Duration::from_millis(1), waiting.frame()).await;
            assert!(polled.is_err(), "the source has nothing");
            tokio::select! {
                () = &mut stalled => panic!("no stream waits for the client beyond the limit"),
                () = tokio::time::sleep(LIMIT / 2) => {}
            }
        }
        // Once both are gone the watch sleeps until a stream arrives.
        drop((moving, waiting));
        tokio::select! {
            () = &mut stalled => panic!("no stream, no stall"),
            () = tokio::time::sleep(10 * LIMIT) => {}
        }
    }
}
