//! What the cache does not handle: requests passed to the next hop as they are (unsafe
//! methods invalidate what they touch), and protocol upgrades tunnelled.

use std::net::SocketAddr;

use futures_util::StreamExt;
use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use myriad_cache::policy;
use myriad_cache::{is_hop_by_hop, CacheStatus, NoCacheReason};

use super::guard::{BodyFault, FaultCell, GuardedBody};
use super::metrics::BlockReason;
use super::tunnel::{self, Ending};
use super::upstream::Body as UpstreamBody;
use super::TunnelLease;
use crate::body::{between_frames, build, content_length, empty_upstream, BoxError, RequestBody};
use crate::proxy::{Answered, Cdn, Lookup};
use myriad_waf::BODY_INSPECTION_BYTES;

/// Whether an upgrade is to WebSocket, whose frames the edge can read.
pub(crate) fn protocol_is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Headers to pass on: without connection-specific fields, nor those `Connection` names.
pub(crate) fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_hop_by_hop(name) && !named.iter().any(|n| n == name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

impl Cdn {
    /// Forwards a request the cache does not handle, streaming both ways; a successful unsafe
    /// method invalidates what is stored for its target.
    pub(crate) async fn pass(
        &self,
        lookup: Lookup,
        body: Option<RequestBody>,
        reason: NoCacheReason,
    ) -> Answered {
        let Lookup {
            site,
            parts,
            path,
            primary,
            remote,
            client,
            ..
        } = lookup;
        let limits = &self.config.limits;
        if content_length(&parts.headers).is_some_and(|l| l > limits.max_body_bytes) {
            return self.blocked(StatusCode::PAYLOAD_TOO_LARGE, BlockReason::BodyTooLarge);
        }
        let headers = forwardable(&parts.headers);
        // A request body that is too large, stalls or is malformed is the client's fault,
        // not the upstream's.
        let (body, fault): (UpstreamBody, FaultCell) = match body {
            Some(b) => {
                let (mut guarded, fault) =
                    GuardedBody::new(b, limits.max_body_bytes, limits.body_timeout);
                if site.waf.is_none() {
                    (guarded.boxed_unsync(), fault)
                } else {
                    // The start of the body is read for the WAF, then sent on before the rest.
                    let mut prefix = Vec::new();
                    let mut size = 0;
                    let mut ended = false;
                    while size < BODY_INSPECTION_BYTES {
                        match guarded.frame().await {
                            None => {
                                ended = true;
                                break;
                            }
                            Some(Ok(frame)) => {
                                if let Ok(data) = frame.into_data() {
                                    size += data.len();
                                    prefix.push(data);
                                }
                            }
                            Some(Err(_)) => {
                                let fault = fault.lock().ok().and_then(|f| *f);
                                return self.body_refused(fault, remote, reason);
                            }
                        }
                    }
                    if self.waf_refuses(&site, &parts, client, Some(&prefix.concat())) {
                        return self.blocked(StatusCode::FORBIDDEN, BlockReason::Waf);
                    }
                    let head =
                        futures_util::stream::iter(prefix.into_iter().map(|b| Ok(Frame::data(b))));
                    let body: UpstreamBody = if ended {
                        StreamBody::new(head).boxed_unsync()
                    } else {
                        StreamBody::new(head.chain(BodyStream::new(guarded))).boxed_unsync()
                    };
                    (body, fault)
                }
            }
            None => (empty_upstream(), FaultCell::default()),
        };
        self.metrics.upstream_fetch();
        let sent = site
            .upstream
            .send(parts.method.clone(), &path, headers, Some(remote), body);
        let response = match tokio::time::timeout(self.config.upstream_timeout, sent).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let fault = fault.lock().ok().and_then(|f| *f);
                if fault.is_some() {
                    return self.body_refused(fault, remote, reason);
                }
                tracing::info!(key = %primary, "upstream failed: {e}");
                return self.status_only(StatusCode::BAD_GATEWAY, CacheStatus::bypass(reason));
            }
            Err(_) => {
                return self.status_only(StatusCode::GATEWAY_TIMEOUT, CacheStatus::bypass(reason))
            }
        };
        if policy::invalidates(&parts.method, response.status()) {
            self.store.invalidate(&primary);
        }
        let (res_parts, body) = response.into_parts();
        let mut headers = forwardable(&res_parts.headers);
        let mut status = CacheStatus::bypass(reason);
        status.fwd_status = Some(res_parts.status.as_u16());
        self.append_status(&mut headers, &status);
        let body = between_frames(body, self.config.upstream_timeout);
        let res = build(res_parts.status, headers, body);
        self.finish(res, &status)
    }

    /// A protocol upgrade (WebSocket): forwarded with its upgrade fields; once the upstream
    /// switches protocols, bytes are copied both ways until either side closes or nothing
    /// moved for the idle timeout (like any connection; WebSocket pings keep it open).
    pub(crate) async fn tunnel(&self, lookup: Lookup) -> Answered {
        let Lookup {
            site,
            mut parts,
            path,
            remote,
            ..
        } = lookup;
        let reason = NoCacheReason::Upgrade;
        let (Some(client_side), Some(protocol), Some(lease)) = (
            parts.extensions.remove::<OnUpgrade>(),
            parts.headers.get(UPGRADE).cloned(),
            parts.extensions.remove::<TunnelLease>(),
        ) else {
            return self.status_only(StatusCode::BAD_REQUEST, CacheStatus::bypass(reason));
        };
        let mut headers = forwardable(&parts.headers);
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        self.metrics.upstream_fetch();
        let sent = site.upstream.send(
            parts.method.clone(),
            &path,
            headers,
            Some(remote),
            empty_upstream(),
        );
        let mut response = match tokio::time::timeout(self.config.upstream_timeout, sent).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::info!(%remote, "upgrade failed upstream: {e}");
                return self.status_only(StatusCode::BAD_GATEWAY, CacheStatus::bypass(reason));
            }
            Err(_) => {
                return self.status_only(StatusCode::GATEWAY_TIMEOUT, CacheStatus::bypass(reason))
            }
        };
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upstream_side = switching.then(|| hyper::upgrade::on(&mut response));
        let (res_parts, body) = response.into_parts();
        // A 101 keeps its Upgrade and Connection fields; anything else is an ordinary answer.
        let mut headers = if switching {
            res_parts.headers.clone()
        } else {
            forwardable(&res_parts.headers)
        };
        let mut status = CacheStatus::bypass(reason);
        status.fwd_status = Some(res_parts.status.as_u16());
        self.append_status(&mut headers, &status);
        if let Some(upstream_side) = upstream_side {
            let idle_timeout = self.config.limits.idle_timeout;
            let metrics = self.metrics.clone();
            let websocket = protocol_is_websocket(&res_parts.headers);
            tokio::spawn(async move {
                let (client, upstream) = match tokio::try_join!(client_side, upstream_side) {
                    Ok(sides) => sides,
                    Err(e) => {
                        tracing::debug!(%remote, "upgrade not completed: {e}");
                        return;
                    }
                };
                metrics.tunnel_opened();
                let TunnelLease {
                    _slot: slot,
                    activity,
                    mut drain,
                } = lease;
                let end = async {
                    tokio::select! {
                        () = activity.idle(idle_timeout) => Ending::Idle,
                        () = drain.stopped() => Ending::Draining,
                    }
                };
                let why =
                    tunnel::relay(TokioIo::new(client), TokioIo::new(upstream), websocket, end)
                        .await;
                if let Some(why) = why {
                    tracing::debug!(%remote, ?why, "tunnel closed by the edge");
                }
                metrics.tunnel_closed(why == Some(Ending::Idle));
                // The client's connection stays counted, and a drain waits, until it closes.
                drop((slot, drain));
            });
        }
        let res = build(
            res_parts.status,
            headers,
            body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
        );
        self.finish(res, &status)
    }

    /// The answer to a request whose body broke a limit or was malformed.
    pub(crate) fn body_refused(
        &self,
        fault: Option<BodyFault>,
        remote: SocketAddr,
        reason: NoCacheReason,
    ) -> Answered {
        match fault {
            Some(BodyFault::TooLarge) => {
                self.blocked(StatusCode::PAYLOAD_TOO_LARGE, BlockReason::BodyTooLarge)
            }
            Some(BodyFault::Slow) => {
                self.blocked(StatusCode::REQUEST_TIMEOUT, BlockReason::SlowBody)
            }
            Some(BodyFault::Broken) | None => {
                if let Some(unlogged) = self.count_refusal(BlockReason::Malformed) {
                    tracing::info!(%remote, unlogged, "bad request body");
                }
                self.status_only(StatusCode::BAD_REQUEST, CacheStatus::bypass(reason))
            }
        }
    }
}
