//! Prefetching: URLs fetched through the cache ahead of the people who will want them (a
//! meeting's web client and slides before it starts), by the same path a client's miss
//! takes, so that they are stored as any response would be — or not, if not storable.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use futures_util::StreamExt;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Empty};
use serde::{Deserialize, Serialize};

use crate::Cdn;

/// URLs one prefetch names at most.
pub const MAX_PREFETCH_URLS: usize = 1000;
/// Fetches in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefetch {
    /// Absolute `http://host/path` URLs, as clients would ask the edge for them.
    pub urls: Vec<String>,
}

/// What became of one URL.
#[derive(Debug, Serialize, PartialEq)]
pub struct Fetched {
    pub url: String,
    /// The status the edge answered, or none if the URL was not one it could ask.
    pub status: Option<u16>,
    /// Its `Cache-Status` field: whether it was stored, or was there already.
    pub cache: Option<String>,
    pub error: Option<String>,
}

/// Fetches every URL through `cdn` (a few at a time), reading each body whole so that it is
/// stored.
pub async fn run(cdn: &Arc<Cdn>, urls: Vec<String>) -> Vec<Fetched> {
    futures_util::stream::iter(urls)
        .map(|url| fetch(cdn, url))
        .buffered(CONCURRENCY)
        .collect()
        .await
}

async fn fetch(cdn: &Arc<Cdn>, url: String) -> Fetched {
    let failed = |url: String, error: String| Fetched {
        url,
        status: None,
        cache: None,
        error: Some(error),
    };
    let Ok(uri) = url.parse::<Uri>() else {
        return failed(url, "not a URL".into());
    };
    let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query()) else {
        return failed(url, "an absolute http://host/path URL is needed".into());
    };
    if uri.scheme_str() != Some("http") {
        return failed(
            url,
            "an http:// URL is needed (as the edge is asked)".into(),
        );
    }
    let Ok(req) = Request::get(path.as_str())
        .header(header::HOST, authority.as_str())
        .body(Empty::<bytes::Bytes>::new())
    else {
        return failed(url, "not a request the edge can make".into());
    };
    let response = cdn
        .handle(req, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read whole: a fill is stored once its body is complete.
    let error = response
        .into_body()
        .collect()
        .await
        .err()
        .map(|e| format!("body cut short: {e}"));
    Fetched {
        url,
        status: Some(status),
        cache,
        error,
    }
}
