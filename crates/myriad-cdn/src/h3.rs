//! HTTP/3 (QUIC through `quinn`, HTTP/3 framing through `h3`) in front of the same proxy as the
//! TCP listeners: each request stream becomes an `http::Request` for [`Cdn::handle`], and the
//! answer streams back on it. Limits: connections per client address (as for TCP), the
//! handshake and the request head within the head timeout, concurrent streams per connection,
//! the head size; rates and everything else apply in `handle`. No 0-RTT (replayable). A
//! connection counts against its address once the handshake has proven the address; when
//! many handshakes are under way, new clients must first prove it (a Retry), so forged
//! Initial packets cost one stateless answer each.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::server::{RequestResolver, RequestStream};
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use quinn::crypto::rustls::QuicServerConfig;
use tokio_rustls::rustls::ServerConfig;

use super::body::BoxError;
use super::drain::Drain;
use super::proxy::Cdn;
use super::{BlockReason, MAX_HEAD_BYTES};

/// Requests a client may have open on one connection at once.
const MAX_STREAMS: u32 = 256;
/// HTTP/3's H3_EXCESSIVE_LOAD error code (RFC 9114 §8.1).
const H3_EXCESSIVE_LOAD: u32 = 0x0107;
/// A connection without traffic for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    #[error("QUIC TLS settings: {0}")]
    Tls(String),
    #[error("bind udp/{0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A QUIC endpoint on `addr` (UDP) with the edge's certificates.
pub fn endpoint(addr: SocketAddr, tls: Arc<ServerConfig>) -> Result<quinn::Endpoint, H3Error> {
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| H3Error::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_STREAMS.into())
        // Control, QPACK encoder and decoder streams (and one spare).
        .max_concurrent_uni_streams(4u32.into())
        .max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    quinn::Endpoint::server(config, addr).map_err(|e| H3Error::Bind(addr, e))
}

/// Accepts connections until `drain` starts; with `retry_above` handshakes under way (0:
/// always), a new client must prove its address before its handshake starts.
pub async fn serve(endpoint: quinn::Endpoint, cdn: Arc<Cdn>, retry_above: usize, mut drain: Drain) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = drain.stopped() => None,
        };
        let Some(incoming) = incoming else {
            return;
        };
        let remote = incoming.remote_address();
        if !incoming.remote_address_validated() && handshakes.load(Ordering::Relaxed) >= retry_above
        {
            cdn.metrics().quic_retry();
            if let Err(e) = incoming.retry() {
                e.into_incoming().ignore();
            }
            continue;
        }
        let cdn = cdn.clone();
        let handshakes = handshakes.clone();
        let drain = drain.clone();
        handshakes.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let head_timeout = cdn.limits().header_timeout;
            let handshake = tokio::time::timeout(head_timeout, incoming).await;
            handshakes.fetch_sub(1, Ordering::Relaxed);
            match handshake {
                // Counted against the address once the handshake has proven it: forged
                // Initial packets take no one's connection slots.
                Ok(Ok(conn)) => match cdn.open_connection(remote.ip()) {
                    Some(slot) => {
                        serve_connection(conn, &cdn, remote, drain).await;
                        drop(slot);
                    }
                    None => {
                        cdn.log_refused(remote.ip(), BlockReason::Connections, None);
                        conn.close(H3_EXCESSIVE_LOAD.into(), b"too many connections");
                    }
                },
                Ok(Err(e)) => tracing::debug!(%remote, "QUIC handshake failed: {e}"),
                Err(_) => {
                    cdn.metrics().blocked(BlockReason::SlowHead);
                    cdn.log_refused(remote.ip(), BlockReason::SlowHead, None);
                    tracing::debug!(%remote, "QUIC handshake too slow");
                }
            }
        });
    }
}

async fn serve_connection(
    conn: quinn::Connection,
    cdn: &Arc<Cdn>,
    remote: SocketAddr,
    mut drain: Drain,
) {
    let built = h3::server::builder()
        .max_field_section_size(MAX_HEAD_BYTES as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await;
    let mut h3 = match built {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, "HTTP/3 setup failed: {e}");
            return;
        }
    };
    let mut draining = false;
    loop {
        let accepted = tokio::select! {
            accepted = h3.accept() => accepted,
            () = drain.stopped(), if !draining => {
                // GOAWAY: no new requests; those under way are answered.
                draining = true;
                if let Err(e) = h3.shutdown(0).await {
                    tracing::debug!(%remote, "HTTP/3 GOAWAY failed: {e}");
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                let cdn = cdn.clone();
                let drain = drain.clone();
                tokio::spawn(async move {
                    let _drain = drain;
                    if let Err(e) = answer(resolver, cdn, remote).await {
                        tracing::debug!(%remote, "HTTP/3 request ended: {e}");
                    }
                });
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%remote, "HTTP/3 connection ended: {e}");
                return;
            }
        }
    }
}

async fn answer(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    cdn: Arc<Cdn>,
    remote: SocketAddr,
) -> Result<(), h3::error::StreamError> {
    let head_timeout = cdn.limits().header_timeout;
    let Ok(resolved) = tokio::time::timeout(head_timeout, resolver.resolve_request()).await else {
        cdn.metrics().blocked(BlockReason::SlowHead);
        cdn.log_refused(remote.ip(), BlockReason::SlowHead, None);
        return Ok(());
    };
    let (req, stream) = resolved?;
    let (mut send, recv) = stream.split();
    let req = req.map(|()| request_body(recv));
    let (parts, mut body) = cdn.handle(req, remote).await.into_parts();
    send.send_response(Response::from_parts(parts, ())).await?;
    let send_timeout = cdn.limits().send_timeout;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                // A client that keeps its connection alive but gives the stream no credit
                // would hold it (and the response) for ever: the send timeout, as over TCP.
                Ok(data) => match tokio::time::timeout(send_timeout, send.send_data(data)).await {
                    Ok(sent) => sent?,
                    Err(_) => {
                        cdn.metrics().blocked(BlockReason::SlowRead);
                        tracing::debug!(%remote, "HTTP/3 response stalled: the client reads nothing");
                        send.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
                        return Ok(());
                    }
                },
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        send.send_trailers(trailers).await?;
                        return Ok(());
                    }
                }
            },
            Err(e) => {
                // The body broke off upstream: the client must not take it as whole.
                tracing::debug!(%remote, "response body failed: {e}");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Ok(());
            }
        }
    }
    send.finish().await
}

/// The request body as it arrives on the stream.
fn request_body(
    recv: RequestStream<h3_quinn::RecvStream, Bytes>,
) -> impl http_body::Body<Data = Bytes, Error = BoxError> {
    let frames = futures_util::stream::unfold(Some(recv), |recv| async move {
        let mut recv = recv?;
        match recv.recv_data().await {
            Ok(Some(mut chunk)) => {
                let data = chunk.copy_to_bytes(chunk.remaining());
                Some((Ok(Frame::data(data)), Some(recv)))
            }
            Ok(None) => None,
            Err(e) => Some((Err(Box::new(e) as BoxError), None)),
        }
    });
    StreamBody::new(frames)
}
