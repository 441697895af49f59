//! The edge's admin port: Prometheus metrics and purges. Bind it to a private address.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use myriad_bus::{Bus, BusError};
use myriad_cache::signed::MessageSigner;
use myriad_proto::bus::{decode, encode};
use myriad_proto::purge::{Purge, PurgeMsg, MAX_PURGE_ITEMS, PURGE_SUBJECT};

use super::Cdn;
use crate::prefetch::{Prefetch, MAX_PREFETCH_URLS};
use crate::unix_now;

/// Carries purges to every edge: each edge applies what arrives on the subject, its own
/// purges included. With a signer, purges are signed with the edges' shared key and
/// unsigned, forged or stale ones are ignored, so access to the bus alone purges nothing.
#[derive(Clone)]
pub struct PurgeBus {
    bus: Arc<dyn Bus>,
    signer: Option<Arc<MessageSigner>>,
}

impl PurgeBus {
    /// Subscribes to purges on `bus` and applies them to `cdn`.
    pub async fn start(
        bus: Arc<dyn Bus>,
        cdn: Arc<Cdn>,
        signer: Option<Arc<MessageSigner>>,
    ) -> Result<Self, BusError> {
        let mut sub = bus.subscribe(PURGE_SUBJECT).await?;
        if signer.is_none() {
            tracing::warn!(
                "purges on the bus are not signed (--purge-key): anyone on it can purge"
            );
        }
        let checker = signer.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                match received(&msg.payload, checker.as_deref(), unix_now()) {
                    Ok(purge) => cdn.purge(&purge),
                    Err(why) => tracing::warn!("purge ignored: {why}"),
                }
            }
            tracing::warn!("purge subscription ended");
        });
        Ok(Self { bus, signer })
    }

    async fn publish(&self, purge: &Purge) -> Result<(), BusError> {
        let signature = self
            .signer
            .as_ref()
            .map(|s| s.sign(&purge.signed_bytes(), unix_now()));
        let msg = PurgeMsg {
            purge: purge.clone(),
            signature,
        };
        self.bus
            .publish(PURGE_SUBJECT, Bytes::from(encode(&msg)))
            .await?;
        self.bus.flush().await
    }
}

/// The purge a message from the bus asks for, or why it is ignored: not a purge of this
/// version, unsigned or badly signed where a key is set, or too large.
fn received(
    payload: &[u8],
    signer: Option<&MessageSigner>,
    now_unix: u64,
) -> Result<Purge, String> {
    let msg: PurgeMsg = decode(payload).map_err(|e| e.to_string())?;
    if let Some(signer) = signer {
        let field = msg.signature.as_deref().unwrap_or_default();
        signer
            .verify(&msg.purge.signed_bytes(), field, now_unix)
            .map_err(|e| e.to_string())?;
    }
    if msg.purge.is_empty() || msg.purge.len() > MAX_PURGE_ITEMS {
        return Err(format!(
            "{} items (a purge names 1 to {MAX_PURGE_ITEMS})",
            msg.purge.len()
        ));
    }
    Ok(msg.purge)
}

#[derive(Clone)]
struct Admin {
    cdn: Arc<Cdn>,
    bus: Option<PurgeBus>,
    /// When set, purges need `Authorization: Bearer <token>`.
    token: Option<Arc<str>>,
}

pub fn router(cdn: Arc<Cdn>, bus: Option<PurgeBus>, token: Option<String>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/purge", post(purge))
        .route("/prefetch", post(prefetch))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Admin {
            cdn,
            bus,
            token: token.map(Arc::from),
        })
}

/// Whether the request carries the admin token (compared in constant time).
fn authorized(admin: &Admin, headers: &HeaderMap) -> bool {
    let Some(token) = &admin.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        admin.cdn.metrics().encode(),
    )
}

/// Fetches URLs into the cache now (ahead of a meeting's start, say): `{"urls": [..]}`,
/// answered with what became of each. Needs the admin token, like purges.
async fn prefetch(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Json(asked): Json<Prefetch>,
) -> axum::response::Response {
    if !authorized(&admin, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "prefetches need the admin token\n",
        )
            .into_response();
    }
    if asked.urls.is_empty() || asked.urls.len() > MAX_PREFETCH_URLS {
        let message = format!("a prefetch names 1 to {MAX_PREFETCH_URLS} urls\n");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let fetched = crate::prefetch::run(&admin.cdn, asked.urls).await;
    Json(serde_json::json!({ "fetched": fetched })).into_response()
}

async fn purge(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Json(purge): Json<Purge>,
) -> impl IntoResponse {
    if !authorized(&admin, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "purges need the admin token\n".to_owned(),
        );
    }
    if purge.is_empty() || purge.len() > MAX_PURGE_ITEMS {
        let message = format!("a purge names 1 to {MAX_PURGE_ITEMS} urls, prefixes and tags");
        return (StatusCode::BAD_REQUEST, message);
    }
    admin.cdn.purge(&purge);
    match &admin.bus {
        None => (StatusCode::OK, "purged on this edge\n".to_owned()),
        Some(bus) => match bus.publish(&purge).await {
            Ok(()) => (
                StatusCode::OK,
                "purged here and sent to every edge\n".to_owned(),
            ),
            Err(e) => {
                tracing::error!("purge not broadcast: {e}");
                (
                    StatusCode::BAD_GATEWAY,
                    format!("purged on this edge only; the bus failed: {e}\n"),
                )
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(tag: &str) -> Purge {
        Purge {
            tags: vec![tag.to_owned()],
            ..Purge::default()
        }
    }

    fn message(purge: Purge, signature: Option<String>) -> Vec<u8> {
        encode(&PurgeMsg { purge, signature })
    }

    #[test]
    fn signed_purges_are_applied_and_others_refused_with_a_reason() {
        let key = MessageSigner::new(b"shared");
        let now = 1_800_000_000;
        let sig = key.sign(&tagged("t1").signed_bytes(), now);
        let good = message(tagged("t1"), Some(sig.clone()));
        assert_eq!(received(&good, Some(&key), now), Ok(tagged("t1")));
        assert_eq!(
            received(&good, None, now),
            Ok(tagged("t1")),
            "no key: trusted"
        );

        let unsigned = message(tagged("t1"), None);
        assert!(received(&unsigned, Some(&key), now).is_err());
        // The signature of another purge does not carry over.
        let moved = message(tagged("t2"), Some(sig));
        assert!(received(&moved, Some(&key), now).is_err());
        let other_key = MessageSigner::new(b"other");
        let foreign = message(
            tagged("t1"),
            Some(other_key.sign(&tagged("t1").signed_bytes(), now)),
        );
        assert!(received(&foreign, Some(&key), now).is_err());
        let stale = message(
            tagged("t1"),
            Some(key.sign(&tagged("t1").signed_bytes(), now - 3600)),
        );
        assert!(received(&stale, Some(&key), now).is_err());
    }

    #[test]
    fn old_versions_garbage_and_oversized_purges_are_refused() {
        let old = br#"{"v":0,"kind":"cdn.purge","body":{"purge":{"tags":["t1"]}}}"#;
        let why = received(old, None, 0).unwrap_err();
        assert!(why.contains("version 0"), "{why}");
        let bare = br#"{"tags":["t1"]}"#;
        assert!(
            received(bare, None, 0).is_err(),
            "the unversioned form of old edges"
        );
        assert!(received(b"\xff\x00", None, 0).is_err());
        assert!(
            received(&message(Purge::default(), None), None, 0).is_err(),
            "empty"
        );
        let huge = Purge {
            urls: vec!["x/".into(); MAX_PURGE_ITEMS + 1],
            ..Purge::default()
        };
        assert!(received(&message(huge, None), None, 0).is_err());
    }
}
