//! The connection pool to the next hop (the origin, or a parent edge acting as shield):
//! keep-alive connections reused across requests, HTTP/1.1.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{HeaderValue, VIA};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use crate::body::UpstreamBody as Body;
use crate::trust::{TierKey, TIER_HEADER};
use crate::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream URL must be http://host[:port]: {0}")]
    BadUrl(String),
}

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
    scheme: Scheme,
    authority: Authority,
    /// This edge's `Via` entry.
    via: HeaderValue,
    /// Signs the `X-Forwarded-For` sent, for a parent edge of the same deployment.
    tier_key: Option<TierKey>,
}

impl Upstream {
    pub fn new(url: &str, name: &str, tier_key: Option<TierKey>) -> Result<Self, UpstreamError> {
        let uri: Uri = url.parse().map_err(|_| UpstreamError::BadUrl(url.into()))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(UpstreamError::BadUrl(url.into()));
        };
        if scheme != Scheme::HTTP {
            return Err(UpstreamError::BadUrl(url.into()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        let via = HeaderValue::from_str(&format!("1.1 {name}"))
            .map_err(|_| UpstreamError::BadUrl(format!("bad edge name {name}")))?;
        Ok(Self {
            client,
            scheme,
            authority,
            via,
            tier_key,
        })
    }

    /// Sends a request for `path` with `headers` (already without hop-by-hop fields) on to the
    /// next hop, adding `Via` and `X-Forwarded-For` (signed with the tier key, if any; a
    /// signature that came in is never passed on).
    pub async fn send(
        &self,
        method: http::Method,
        path: &PathAndQuery,
        mut headers: HeaderMap,
        client: Option<SocketAddr>,
        body: Body,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path.clone())
            .build()
            .unwrap_or_default();
        headers.append(VIA, self.via.clone());
        if let Some(ip) = client.map(|c| c.ip().to_string()) {
            if let Ok(v) = HeaderValue::from_str(&ip) {
                headers.append("x-forwarded-for", v);
            }
        }
        headers.remove(TIER_HEADER);
        if let Some(vouched) = self
            .tier_key
            .as_ref()
            .and_then(|k| k.vouch(&headers, unix_now()))
        {
            headers.insert(TIER_HEADER, vouched);
        }
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        self.client.request(req).await
    }
}
