//! The edge as a caching reverse proxy (`myriad edge --origin …`): HTTP/1.1 and HTTP/2
//! (cleartext by prior knowledge, or TLS with ALPN) and HTTP/3 ([`h3`]) in front of origins
//! or a parent edge.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod access_log;
pub mod admin;
mod body;
mod client_stream;
mod config;
mod disk;
pub mod drain;
mod fetch;
mod fill;
mod guard;
pub mod h3;
mod head;
mod idle;
pub mod limits;
mod metrics;
mod pass;
mod prefetch;
mod proxy;
pub mod proxy_protocol;
mod rate;
mod refusal_log;
pub mod s3fifo;
mod sharded;
mod stalled_streams;
mod store;
mod tier;
pub mod tls;
pub mod trust;
mod tunnel;
mod upstream;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub use config::{CdnConfig, CdnError, DiskConfig, Signing, SiteConfig};
pub use drain::{drain, Drain, DrainSwitch};
use limits::ConnectionSlot;
pub use metrics::{BlockReason, Metrics, Outcome, Unstored};
pub use proxy::Cdn;
pub use rate::TokenBucket;
pub use upstream::UpstreamError;

use client_stream::{ClientStream, HttpReads, SendTimedOut};
use idle::Activity;
use stalled_streams::StreamWatch;

/// Largest request head accepted (HTTP/1.1 read buffer, HTTP/2 header list).
const MAX_HEAD_BYTES: usize = 64 * 1024;
const H2_MAX_STREAMS: u32 = 256;
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_ERROR_RESETS: Option<usize> = Some(1024);
/// How long an idle connection's close waits for the client (HTTP/2: the GOAWAY's ping).
const GOAWAY_GRACE: Duration = Duration::from_secs(5);

/// TLS on a TCP listener, and the `Alt-Svc` field that points clients to HTTP/3.
#[derive(Clone)]
pub struct TlsListener {
    pub acceptor: TlsAcceptor,
    pub alt_svc: Option<HeaderValue>,
}

/// Seconds since the Unix epoch: the time signatures between edges carry.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Accepts connections until `drain` starts; with `tls`, each is a TLS connection.
pub async fn serve(
    listener: TcpListener,
    cdn: Arc<Cdn>,
    tls: Option<TlsListener>,
    mut drain: Drain,
) -> std::io::Result<()> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = drain.stopped() => return Ok(()),
        };
        let (stream, remote) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (cdn, tls, drain) = (cdn.clone(), tls.clone(), drain.clone());
        if trust::is_trusted(remote.ip(), &cdn.limits().proxy_protocol) {
            // A load balancer: the client it names is the peer, once its header is read.
            tokio::spawn(async move {
                let mut stream = stream;
                let limit = cdn.limits().header_timeout;
                match proxy_protocol::read_header(&mut stream, limit).await {
                    Ok(client) => {
                        let client = client.unwrap_or(remote);
                        accepted_from(stream, client, cdn, tls, drain).await;
                    }
                    Err(e) => tracing::debug!(%remote, "connection closed: {e}"),
                }
            });
        } else {
            accepted_from(stream, remote, cdn, tls, drain).await;
        }
    }
}

/// A connection from `remote` (the client): counted against its address (refused above the
/// limit), then served in a task of its own.
async fn accepted_from(
    stream: TcpStream,
    remote: SocketAddr,
    cdn: Arc<Cdn>,
    tls: Option<TlsListener>,
    drain: Drain,
) {
    let Some(slot) = cdn.open_connection(remote.ip()).map(Arc::new) else {
        let answered = tls.is_none().then_some(429);
        cdn.log_refused(remote.ip(), BlockReason::Connections, answered);
        if answered.is_some() {
            tokio::spawn(answer_and_close(stream, TOO_MANY_CONNECTIONS));
        }
        return;
    };
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let header_timeout = cdn.limits().header_timeout;
        let send_timeout = cdn.limits().send_timeout;
        let activity = Arc::new(Activity::default());
        match tls {
            Some(TlsListener { acceptor, alt_svc }) => {
                let stream = ClientStream::under_tls(stream, send_timeout, activity.clone());
                // The handshake counts against the head's time.
                match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let io = TokioIo::new(HttpReads::new(tls_stream, activity.clone()));
                        let conn = Conn {
                            remote,
                            spare: None,
                            alt_svc,
                            activity,
                            slot,
                        };
                        serve_connection(io, &cdn, conn, drain).await
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, "TLS handshake failed: {e}"),
                    Err(_) => {
                        cdn.metrics().blocked(BlockReason::SlowHead);
                        cdn.log_refused(remote.ip(), BlockReason::SlowHead, None);
                        tracing::debug!(%remote, "TLS handshake too slow");
                    }
                }
            }
            // hyper closes a connection whose head is too slow without a word; a second
            // handle on the socket lets the edge say 408 first.
            None => match with_spare(stream) {
                Ok((stream, spare)) => {
                    let stream = ClientStream::new(stream, send_timeout, activity.clone());
                    let io = TokioIo::new(stream);
                    let conn = Conn {
                        remote,
                        spare: Some(spare),
                        alt_svc: None,
                        activity,
                        slot,
                    };
                    serve_connection(io, &cdn, conn, drain).await
                }
                Err(e) => tracing::debug!(%remote, "connection lost at accept: {e}"),
            },
        }
    });
}

/// What the edge knows of a connection besides its stream.
struct Conn {
    remote: SocketAddr,
    /// A second handle on a cleartext socket, to say 408 where hyper would close silently.
    spare: Option<std::net::TcpStream>,
    alt_svc: Option<HeaderValue>,
    activity: Arc<Activity>,
    /// Its place in the client's connection count, held by a WebSocket tunnel too.
    slot: Arc<ConnectionSlot>,
}

/// What a WebSocket tunnel keeps of the connection it was upgraded from: its place in the
/// client's connection count until it closes, the transfers that tell when it is idle, and
/// a handle that tells it of a drain and keeps the drain waiting for it.
#[derive(Clone)]
pub(crate) struct TunnelLease {
    /// Held for its drop.
    _slot: Arc<ConnectionSlot>,
    pub activity: Arc<Activity>,
    pub drain: Drain,
}

async fn serve_connection<I>(io: I, cdn: &Arc<Cdn>, conn: Conn, mut drain: Drain)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Conn {
        remote,
        spare,
        alt_svc,
        activity,
        slot,
    } = conn;
    let handler = cdn.clone();
    let streams = StreamWatch::new(cdn.limits().send_timeout);
    let watch = streams.clone();
    let lease = TunnelLease {
        _slot: slot,
        activity: activity.clone(),
        drain: drain.clone(),
    };
    let service = service_fn(move |mut req: Request<Incoming>| {
        // A tunnel outlives the connection's serving: it takes the connection's place.
        if req.headers().contains_key(http::header::UPGRADE) {
            req.extensions_mut().insert(lease.clone());
        }
        let watch = (req.version() == http::Version::HTTP_2).then(|| watch.clone());
        let answer = handler.handle(req, remote);
        let alt_svc = alt_svc.clone();
        async move {
            let mut res = answer.await;
            if let Some(v) = alt_svc {
                res.headers_mut().insert(http::header::ALT_SVC, v);
            }
            if let Some(watch) = watch {
                res = res.map(|body| watch.watch(body));
            }
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cdn.limits().header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    // HTTP/2 abuse: bounded streams, and rapid-reset floods end the connection.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_ERROR_RESETS)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // An HTTP/2 stream the client gives no credit ends the connection, as a full socket does.
    let stalled = streams.stalled();
    tokio::pin!(stalled);
    let idle_timeout = cdn.limits().idle_timeout;
    let closing = async {
        tokio::select! {
            () = drain.stopped() => None,
            // Nothing is under way; a client that vanished would never answer the GOAWAY's
            // ping, so the close waits only so long for it.
            () = activity.idle(idle_timeout) => Some(idle_timeout.min(GOAWAY_GRACE)),
        }
    };
    let served = tokio::select! {
        served = conn.as_mut() => Some(served),
        () = stalled.as_mut() => None,
        // Not a slow head: nothing was sent at all.
        () = activity.unused(cdn.limits().header_timeout) => return,
        grace = closing => {
            // Answer what is under way, then close (HTTP/2: GOAWAY).
            conn.as_mut().graceful_shutdown();
            let closed = async {
                tokio::select! {
                    served = conn.as_mut() => Some(served),
                    () = stalled.as_mut() => None,
                }
            };
            match grace {
                None => closed.await,
                Some(grace) => match tokio::time::timeout(grace, closed).await {
                    Ok(closed) => closed,
                    Err(_) => return,
                },
            }
        }
    };
    let Some(served) = served else {
        if let Some(unlogged) = cdn.count_refusal(BlockReason::SlowRead) {
            tracing::info!(
                %remote,
                unlogged,
                "connection closed: an HTTP/2 stream got no credit for the send timeout"
            );
        }
        return;
    };
    if let Err(e) = served {
        // hyper answers what it cannot parse itself (400, 431); the edge counts and logs it,
        // with what the client was answered (HTTP/2 refusals are a GOAWAY).
        let refused = e.downcast_ref::<hyper::Error>().and_then(|e| {
            if e.is_timeout() && !activity.client_spoke_last() {
                None // Idle between requests, or never used: not a slow head.
            } else if e.is_timeout() {
                Some((BlockReason::SlowHead, spare.is_some().then_some(408)))
            } else if stopped_reading(e) {
                Some((BlockReason::SlowRead, None))
            } else if let Some(reason) = http2_refusal(e) {
                Some((reason, None))
            } else if e.is_parse_too_large() {
                Some((BlockReason::HeadTooLarge, Some(431)))
            } else if e.is_parse() {
                Some((BlockReason::Malformed, Some(400)))
            } else {
                None
            }
        });
        match refused {
            Some((reason, answered)) => {
                if let Some(unlogged) = cdn.count_refusal(reason) {
                    tracing::info!(%remote, ?reason, unlogged, "request refused: {e}");
                }
                // A reader too slow is in the lines of the requests it cut short.
                if reason != BlockReason::SlowRead {
                    cdn.log_refused(remote.ip(), reason, answered);
                }
                if let (BlockReason::SlowHead, Some(spare)) = (reason, spare) {
                    if let Ok(spare) = TcpStream::from_std(spare) {
                        answer_and_close(spare, REQUEST_TIMEOUT).await;
                    }
                }
            }
            None => tracing::debug!(%remote, "connection ended: {e}"),
        }
    }
}

/// The error and each of its causes, outermost first.
fn causes(e: &hyper::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
}

/// Whether the connection ended because the client took no response data for the send
/// timeout.
fn stopped_reading(e: &hyper::Error) -> bool {
    causes(e)
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.get_ref().is_some_and(|inner| inner.is::<SendTimedOut>()))
}

/// Why the edge's HTTP/2 ended the connection (GOAWAY), if the client gave it cause: stream
/// abuse past the limits set on the builder above, or frames that break the protocol. `None`
/// when the client or the network ended it, or the edge was stopping.
fn http2_refusal(e: &hyper::Error) -> Option<BlockReason> {
    let ended = causes(e)
        .filter_map(|e| e.downcast_ref::<h2::Error>())
        .find(|e| e.is_library() && e.is_go_away())?;
    match ended.reason()? {
        h2::Reason::NO_ERROR => None,
        h2::Reason::ENHANCE_YOUR_CALM => Some(BlockReason::Http2Abuse),
        _ => Some(BlockReason::Malformed),
    }
}

const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Writes a canned answer and closes the connection.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer)).await;
    let _ = stream.shutdown().await;
}

/// The stream and a second handle on the same socket. The spare is registered with the
/// runtime only if it is used: a second registration would double the readiness events of
/// every connection.
fn with_spare(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std()?;
    let spare = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, spare))
}
