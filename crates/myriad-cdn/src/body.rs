//! The bodies that cross the proxy: requests in from any listener, responses out, and the
//! pieces of stored and fetched bodies they are made of.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::Frame;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A request body from any of the listeners (HTTP/1.1, HTTP/2, HTTP/3).
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// A request body on its way to the next hop.
pub type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub(crate) type ChunkStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// An upstream stopped sending a body it had begun.
#[derive(Debug, thiserror::Error)]
#[error("no body data from upstream for {0:?}")]
pub(crate) struct UpstreamStalled(Duration);

/// An upstream body passed on as it comes, each frame due within `limit` of asking for it:
/// an upstream that stalls mid-body ends the response in an error instead of holding the
/// client (and both connections) for ever. The clock runs only while the client waits.
pub(crate) fn between_frames<B>(body: B, limit: Duration) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let frames = Box::pin(BodyStream::new(body.map_err(Into::into)));
    let limited = futures_util::stream::unfold(Some(frames), move |frames| async move {
        let mut frames = frames?;
        match tokio::time::timeout(limit, frames.next()).await {
            Ok(Some(frame)) => Some((frame, Some(frames))),
            Ok(None) => None,
            Err(_) => Some((Err(UpstreamStalled(limit).into()), None)),
        }
    });
    StreamBody::new(limited).boxed_unsync()
}

pub(crate) enum Source {
    Whole(Bytes),
    Stream(ChunkStream),
}

impl Source {
    pub(crate) fn into_body(self) -> ProxyBody {
        match self {
            Source::Whole(b) => Full::new(b)
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
            Source::Stream(s) => StreamBody::new(s.map_ok(Frame::data)).boxed_unsync(),
        }
    }

    /// Bytes `start..=end` of the body.
    pub(crate) fn slice(self, start: u64, end: u64) -> ProxyBody {
        match self {
            Source::Whole(b) => {
                let (s, e) = (start as usize, end as usize + 1);
                Full::new(b.slice(s.min(b.len())..e.min(b.len())))
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync()
            }
            Source::Stream(s) => {
                // Skip to `start` and end after `end`, cutting the chunks at the edges.
                let windowed = s
                    .scan(0u64, move |offset, chunk| {
                        if *offset > end {
                            return futures_util::future::ready(None);
                        }
                        let out = chunk.map(|c| {
                            let (from, to) = (*offset, *offset + c.len() as u64);
                            *offset = to;
                            let lo = start.clamp(from, to) - from;
                            let hi = (end + 1).clamp(from, to) - from;
                            c.slice(lo as usize..hi as usize)
                        });
                        futures_util::future::ready(Some(out))
                    })
                    .try_filter(|c| futures_util::future::ready(!c.is_empty()));
                StreamBody::new(windowed.map_ok(Frame::data)).boxed_unsync()
            }
        }
    }
}

pub(crate) fn build(code: StatusCode, headers: HeaderMap, body: ProxyBody) -> Response<ProxyBody> {
    let mut res = Response::new(body);
    *res.status_mut() = code;
    *res.headers_mut() = headers;
    res
}

pub(crate) fn empty_body() -> ProxyBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

pub(crate) fn empty_upstream() -> UpstreamBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// Whether a request says it has a body.
pub(crate) fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING) || content_length(headers).is_some_and(|l| l > 0)
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
