//! The shared fetch: one request to the next hop per variant in flight, whose body every
//! concurrent request for it streams from, stored when RFC 9111 allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{
    DATE, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use myriad_cache::integrity::DigestCheck;
use myriad_cache::policy::{self, StoredMeta};
use myriad_cache::{CacheStatus, Forward, NoCacheReason};

use super::fill::{FetchError, Fill, Head, Pushed, Reader};

use super::head::ResponseHead;
use super::metrics::{BlockReason, Unstored};
use super::store::Store;
use super::tier::{owned_fields, Stored};
use crate::body::content_length;
use crate::body::{empty_upstream, BoxError, Source};
use crate::config::Site;
use crate::pass::forwardable;
use crate::proxy::{http_date, Answered, Cdn, Fallback, Lookup};

#[derive(Clone)]
pub(crate) struct FetchJob {
    pub(crate) site: Arc<Site>,
    pub(crate) path: PathAndQuery,
    pub(crate) primary: String,
    pub(crate) key: String,
    /// The leader's request headers as forwarded (they select the stored variant).
    pub(crate) headers: HeaderMap,
    pub(crate) remote: SocketAddr,
    pub(crate) stale: Option<Arc<Stored>>,
}
impl Cdn {
    /// Joins the fetch of this variant in flight, or starts it; returns the fill, this
    /// request's reader and whether it joined another request's fetch.
    pub(crate) fn join_or_start(
        self: &Arc<Self>,
        lookup: &Lookup,
        stale: Option<Arc<Stored>>,
    ) -> (Arc<Fill>, Reader, bool) {
        let Ok(mut inflight) = self.inflight.lock() else {
            // Poisoned only if a holder panicked: fetch alone rather than fail.
            let fill = Fill::new(self.fill_budget.clone());
            let reader = fill.reader();
            self.spawn_fetch(fill.clone(), lookup, stale);
            return (fill, reader, false);
        };
        if let Some(fill) = inflight.get(&lookup.key) {
            let reader = fill.reader();
            return (fill.clone(), reader, true);
        }
        let fill = Fill::new(self.fill_budget.clone());
        let reader = fill.reader();
        inflight.insert(lookup.key.clone(), fill.clone());
        drop(inflight);
        self.spawn_fetch(fill.clone(), lookup, stale);
        (fill, reader, false)
    }

    pub(crate) fn spawn_fetch(
        self: &Arc<Self>,
        fill: Arc<Fill>,
        lookup: &Lookup,
        stale: Option<Arc<Stored>>,
    ) {
        let mut headers = forwardable(&lookup.parts.headers);
        // The cache fetches whole objects with its own validators, whatever the client asked.
        for h in [
            RANGE,
            IF_RANGE,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_MATCH,
            IF_UNMODIFIED_SINCE,
        ] {
            headers.remove(h);
        }
        let job = FetchJob {
            site: lookup.site.clone(),
            path: lookup.path.clone(),
            primary: lookup.primary.clone(),
            key: lookup.key.clone(),
            headers,
            remote: lookup.remote,
            stale,
        };
        let cdn = self.clone();
        tokio::spawn(async move {
            let key = job.key.clone();
            let result = cdn.run_fetch(&fill, job).await;
            if let Err(e) = &result {
                tracing::debug!(%key, "fetch failed: {e}");
            }
            fill.finish(result);
            cdn.forget(&key, &fill);
        });
    }

    pub(crate) fn forget(&self, key: &str, fill: &Arc<Fill>) {
        if let Ok(mut inflight) = self.inflight.lock() {
            if inflight.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
                inflight.remove(key);
            }
        }
    }

    /// The shared fetch: runs to the end whoever still reads, and stores what may be stored.
    pub(crate) async fn run_fetch(
        &self,
        fill: &Arc<Fill>,
        job: FetchJob,
    ) -> Result<(), FetchError> {
        let mut headers = job.headers.clone();
        if let Some(stale) = &job.stale {
            headers.extend(policy::validators(&stale.meta));
        }
        let request_time = SystemTime::now();
        let timeout = self.config.upstream_timeout;
        self.metrics.upstream_fetch();
        let sent = job.site.upstream.send(
            Method::GET,
            &job.path,
            headers,
            Some(job.remote),
            empty_upstream(),
        );
        let response = match tokio::time::timeout(timeout, sent).await {
            Err(_) => return Err(FetchError::Timeout),
            Ok(Err(e)) => return Err(FetchError::Connect(e.to_string())),
            Ok(Ok(r)) => r,
        };
        let response_time = SystemTime::now();
        let (parts, mut body) = response.into_parts();
        let mut res_headers = forwardable(&parts.headers);
        res_headers
            .entry(DATE)
            .or_insert_with(|| http_date(response_time));

        if parts.status == StatusCode::NOT_MODIFIED {
            if let Some(stale) = &job.stale {
                let meta =
                    stale
                        .meta
                        .freshened(&owned_fields(&res_headers), request_time, response_time);
                fill.set_head(Ok(Head {
                    status: meta.status(),
                    headers: meta.headers().clone(),
                    revalidated: true,
                    storing: true,
                }));
                self.store_variant(&job, meta, stale.body.clone());
                self.push(fill, stale.body.clone()).await;
                return Ok(());
            }
        }

        let storable = policy::storable(&Method::GET, &job.headers, parts.status, &res_headers);
        let too_large =
            content_length(&res_headers).is_some_and(|l| l > self.config.max_object_bytes);
        if storable.is_ok() && too_large {
            self.metrics.fill_unstored(Unstored::TooLarge);
        }
        let mut keep = storable.is_ok() && !too_large;
        // A digest the site's configuration pins for this path wins over the origin's.
        let mut digest = job
            .site
            .digests
            .get(job.path.path())
            .and_then(|d| DigestCheck::from_field(d))
            .or_else(|| DigestCheck::from_headers(&res_headers));
        // The fields are needed again only to store the response.
        let head_fields = match keep {
            true => res_headers.clone(),
            false => std::mem::take(&mut res_headers),
        };
        fill.set_head(Ok(Head {
            status: parts.status,
            headers: head_fields,
            revalidated: false,
            storing: keep,
        }));
        if !keep {
            // Nobody else should join a response that will not be shared.
            self.forget(&job.key, fill);
            fill.pass_through();
        }
        let mut collected: Vec<Bytes> = Vec::new();
        let mut size = 0u64;
        // The last chunk is handed out only once the object is stored, so a client that has
        // the whole body finds it in the cache with its next request.
        let mut held: Option<Bytes> = None;
        loop {
            let frame = match tokio::time::timeout(timeout, body.frame()).await {
                Err(_) => return Err(FetchError::Timeout),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(FetchError::Body(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            size += data.len() as u64;
            if let Some(d) = digest.as_mut() {
                d.update(&data);
            }
            if keep {
                let unstored = if size > self.config.max_object_bytes {
                    Some(Unstored::TooLarge)
                } else if !fill.retain(data.len() as u64) {
                    Some(Unstored::Memory)
                } else {
                    None
                };
                if let Some(reason) = unstored {
                    keep = false;
                    collected.clear();
                    self.metrics.fill_unstored(reason);
                    // Out of the way before the start is let go: a request that comes now
                    // fetches for itself instead of joining a body it could not have whole.
                    self.forget(&job.key, fill);
                    fill.pass_through();
                }
            }
            if keep {
                collected.push(data.clone());
            }
            if let Some(previous) = held.replace(data) {
                if !self.push(fill, previous).await {
                    return Err(FetchError::Stopped("no readers left"));
                }
            }
        }
        if let Some(d) = digest {
            let algorithm = d.algorithm;
            if !d.matches() {
                // Withholding the last chunk means no client receives this body whole.
                self.metrics.integrity_failure();
                tracing::warn!(key = %job.primary, algorithm, "body does not match its Content-Digest");
                return Err(FetchError::Integrity);
            }
        }
        if keep {
            // Copied even when it came in one piece: a chunk is a slice of the connection's
            // read buffer, which it would keep allocated whole (see `owned_fields`).
            let body = Bytes::from(collected.concat());
            let fields = owned_fields(&res_headers);
            let meta = StoredMeta::new(parts.status, fields, request_time, response_time);
            self.store_variant(&job, meta, body);
        }
        if let Some(last) = held {
            self.push(fill, last).await;
        }
        Ok(())
    }

    /// Passes a chunk to the fill's readers, counting those it cut off for holding it back;
    /// false when nobody reads any more.
    pub(crate) async fn push(&self, fill: &Fill, chunk: Bytes) -> bool {
        match fill.push(chunk).await {
            Pushed::Kept { cut_off } => {
                for _ in 0..cut_off {
                    self.metrics.blocked(BlockReason::SlowRead);
                }
                true
            }
            Pushed::Unread => false,
        }
    }

    pub(crate) fn store_variant(&self, job: &FetchJob, meta: StoredMeta, body: Bytes) {
        // Checked before: a response that varies on everything is not stored.
        let Some(names) = policy::vary_names(meta.headers()) else {
            return;
        };
        let key = Store::key(&job.primary, &policy::variant_key(&names, &job.headers));
        let tags = myriad_cache::key::tags(meta.headers());
        let stored = Stored::new(meta, body, tags);
        self.store.insert(&job.primary, names, key, stored);
    }

    /// Answers from the shared fetch (a miss or a revalidation).
    pub(crate) async fn fetch(
        self: &Arc<Self>,
        lookup: Lookup,
        fallback: Option<Fallback>,
        fwd: Forward,
    ) -> Answered {
        let (fill, reader, collapsed) =
            self.join_or_start(&lookup, fallback.as_ref().map(|f| f.stored.clone()));
        let head = fill.head().await;
        let now = SystemTime::now();
        let failed = match &head {
            Err(_) => true,
            Ok(h) => h.status.is_server_error(),
        };
        if failed {
            if let Some(f) = fallback.as_ref().filter(|f| f.on_error) {
                let mut status = CacheStatus::stale_hit(f.stale_by, "stale-if-error");
                status.fwd = Some(Forward::Stale);
                status.fwd_status = head.as_ref().ok().map(|h| h.status.as_u16());
                let age = policy::current_age(&f.stored.meta, now);
                return self.serve_stored(&lookup.parts, &f.stored, status, age);
            }
        }
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                tracing::info!(key = %lookup.primary, "upstream failed: {e}");
                let code = match e {
                    FetchError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                return self.status_only(code, CacheStatus::forward(fwd));
            }
        };
        // A shared response must be one this request may have: storable, and the same
        // variant. Otherwise this request fetches for itself.
        if collapsed && !self.shareable(&head, &lookup) {
            drop(reader);
            return self.pass(lookup, None, NoCacheReason::Private).await;
        }
        let mut status = CacheStatus::forward(fwd);
        status.fwd_status = Some(if head.revalidated {
            304
        } else {
            head.status.as_u16()
        });
        status.collapsed = collapsed;
        status.stored = head.storing;
        let ranges = head.status == StatusCode::OK && content_length(&head.headers).is_some();
        // A response that is stored has an age; one passed through is as old as it says.
        let age = match head.storing || head.revalidated {
            true => {
                let meta = StoredMeta::new(head.status, head.headers.clone(), now, now);
                policy::current_age(&meta, now).as_secs()
            }
            false => policy::age_value(&head.headers).as_secs(),
        };
        let code = head.status;
        let headers = ResponseHead::from_fields(head.headers, &self.via, ranges).into_rendered(
            age,
            &self.config.name,
            &status,
        );
        let body = reader.body().map_err(|e| Box::new(e) as BoxError);
        self.respond(
            &lookup.parts,
            code,
            headers,
            Source::Stream(Box::pin(body)),
            status,
        )
    }

    pub(crate) fn shareable(&self, head: &Head, lookup: &Lookup) -> bool {
        if !head.storing {
            return false;
        }
        // The variant the fetch was for must be the one this request selects.
        policy::vary_names(&head.headers).is_some_and(|names| {
            Store::key(
                &lookup.primary,
                &policy::variant_key(&names, &lookup.parts.headers),
            ) == lookup.key
                || names.is_empty()
        })
    }
}
