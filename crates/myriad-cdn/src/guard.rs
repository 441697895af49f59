//! A request body with limits: at most so many bytes, no stall longer than the timeout. The
//! fault is recorded so the proxy answers 413 / 408 / 400 instead of blaming the upstream.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::body::{BoxError, RequestBody};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    TooLarge,
    Slow,
    /// Malformed (bad chunking) or cut short.
    Broken,
}

#[derive(Debug, thiserror::Error)]
#[error("request body: {0:?}")]
struct FaultError(BodyFault);

pub type FaultCell = Arc<Mutex<Option<BodyFault>>>;

pub struct GuardedBody {
    inner: RequestBody,
    seen: u64,
    max_bytes: u64,
    timeout: Duration,
    stall: Pin<Box<Sleep>>,
    fault: FaultCell,
}

impl GuardedBody {
    pub fn new(inner: RequestBody, max_bytes: u64, timeout: Duration) -> (Self, FaultCell) {
        let fault = FaultCell::default();
        let body = Self {
            inner,
            seen: 0,
            max_bytes,
            timeout,
            stall: Box::pin(tokio::time::sleep(timeout)),
            fault: fault.clone(),
        };
        (body, fault)
    }

    fn fail(&self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Ok(mut f) = self.fault.lock() {
            f.get_or_insert(fault);
        }
        Poll::Ready(Some(Err(Box::new(FaultError(fault)))))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.max_bytes {
                        return this.fail(BodyFault::TooLarge);
                    }
                }
                let deadline = tokio::time::Instant::now() + this.timeout;
                this.stall.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => this.fail(BodyFault::Broken),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.stall.as_mut().poll(cx) {
                Poll::Ready(()) => this.fail(BodyFault::Slow),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
