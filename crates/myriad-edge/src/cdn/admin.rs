//! The edge's admin port: Prometheus metrics and purges. Bind it to a private address.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use myriad_cache::signed::MessageSigner;
use myriad_proto::purge::{Purge, MAX_PURGE_ITEMS, PURGE_SUBJECT};

use super::Cdn;

/// The NATS header that carries a purge's signature.
const SIGNATURE_HEADER: &str = "Myriad-Signature";

/// Carries purges to every edge: each edge applies what arrives on the subject, its own
/// purges included. With a signer, purges are signed with the edges' shared key and
/// unsigned, forged or stale ones are ignored, so access to the bus alone purges nothing.
#[derive(Clone)]
pub struct PurgeBus {
    client: async_nats::Client,
    signer: Option<Arc<MessageSigner>>,
}

impl PurgeBus {
    pub async fn connect(
        url: &str,
        cdn: Arc<Cdn>,
        signer: Option<Arc<MessageSigner>>,
    ) -> Result<Self, async_nats::Error> {
        let client = async_nats::connect(url).await?;
        let mut sub = client.subscribe(PURGE_SUBJECT).await?;
        if signer.is_none() {
            tracing::warn!(
                "purges on the bus are not signed (--purge-key): anyone on it can purge"
            );
        }
        let checker = signer.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if let Some(signer) = &checker {
                    let field = msg
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(SIGNATURE_HEADER))
                        .map(|v| v.as_str())
                        .unwrap_or_default();
                    if let Err(e) = signer.verify(&msg.payload, field, unix_now()) {
                        tracing::warn!("purge ignored: {e}");
                        continue;
                    }
                }
                match serde_json::from_slice::<Purge>(&msg.payload) {
                    Ok(p) if p.len() <= MAX_PURGE_ITEMS => cdn.purge(&p),
                    Ok(p) => tracing::warn!(items = p.len(), "oversized purge ignored"),
                    Err(e) => tracing::warn!("malformed purge ignored: {e}"),
                }
            }
            tracing::warn!("purge subscription ended");
        });
        Ok(Self { client, signer })
    }

    async fn publish(&self, purge: &Purge) -> Result<(), async_nats::Error> {
        let payload = serde_json::to_vec(purge)?;
        match &self.signer {
            Some(signer) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(SIGNATURE_HEADER, signer.sign(&payload, unix_now()).as_str());
                self.client
                    .publish_with_headers(PURGE_SUBJECT, headers, payload.into())
                    .await?;
            }
            None => self.client.publish(PURGE_SUBJECT, payload.into()).await?,
        }
        self.client.flush().await?;
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
