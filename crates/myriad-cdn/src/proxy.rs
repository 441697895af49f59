//! The request path of the caching proxy: look up, decide with `myriad_cache`, serve from the
//! memory tier, or join (or start) the shared fetch from the next hop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::Either;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, DATE, HOST, VIA};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use myriad_cache::policy;
use myriad_cache::range::{self, RangeRequest};
use myriad_cache::{CacheControl, CacheStatus, Forward, NoCacheReason, Reuse};

use super::fill::{Fill, FillBudget};
use myriad_proto::purge::Purge;

use super::access_log::{AccessLog, Arrival, LoggedBody};
use super::disk::DiskStore;
use super::head::{ResponseHead, CACHE_STATUS};
use super::limits::{ConnectionCounter, ConnectionSlot, LimitsConfig, RequestLimiter};
use super::metrics::{BlockReason, Metrics, Outcome, Protocol};
use super::refusal_log::RefusalLog;
use super::store::{Store, Variant};
use super::tier::{Stored, Tier};
use super::upstream::UpstreamError;
use crate::body::{build, empty_body, BoxError, ProxyBody, RequestBody, Source};
use crate::body::{content_length, has_body};
use crate::config::{build_sites, CdnConfig, CdnError, Site, SiteConfig};
use crate::trust::Client;
use crate::unix_now;
use myriad_waf::Inspected;

pub struct Cdn {
    pub(crate) config: CdnConfig,
    pub(crate) store: Arc<Store>,
    /// Replaced whole when the configuration is reloaded; requests under way keep theirs.
    pub(crate) sites: ArcSwap<Vec<Arc<Site>>>,
    /// This hop's `Via` entry.
    pub(crate) via: HeaderValue,
    /// Fetches in flight by variant key: concurrent misses share one.
    pub(crate) inflight: Mutex<HashMap<String, Arc<Fill>>>,
    pub(crate) fill_budget: Arc<FillBudget>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) access_log: Option<Arc<AccessLog>>,
    pub(crate) limiter: Mutex<RequestLimiter>,
    pub(crate) connections: ConnectionCounter,
    pub(crate) refusal_log: RefusalLog,
}

/// A request as the cache sees it.
pub(crate) struct Lookup {
    pub(crate) site: Arc<Site>,
    pub(crate) parts: Parts,
    pub(crate) path: PathAndQuery,
    pub(crate) primary: String,
    pub(crate) key: String,
    /// The peer the request came from (the next hop is told it in `X-Forwarded-For`).
    pub(crate) remote: SocketAddr,
    /// The client it is for: the peer, or behind a trusted peer the one it forwards for
    /// (with the peer's port); the WAF, signatures and logs go by it.
    pub(crate) client: SocketAddr,
}

/// A stored response that may stand in if the fetch fails (stale-if-error).
pub(crate) struct Fallback {
    pub(crate) stored: Arc<Stored>,
    pub(crate) stale_by: Duration,
    pub(crate) on_error: bool,
}

/// What is left to do for a request that could not be answered at once.
pub(crate) enum Later {
    /// A protocol upgrade (WebSocket) to the next hop.
    Tunnel(Lookup),
    /// Forwarded without the cache.
    Pass(Lookup, Option<RequestBody>, NoCacheReason),
    /// Not in memory: the disk tier, then the next hop. With the fields it varies on.
    Disk(Lookup, Arc<Vec<HeaderName>>),
    /// From the next hop (a miss, or a revalidation with the stored response to fall back on).
    Fetch(Lookup, Option<Fallback>, Forward),
}

/// A response and what the cache did to produce it (for the metrics).
pub(crate) struct Answered {
    pub(crate) response: Response<ProxyBody>,
    pub(crate) outcome: Outcome,
}

/// A response now, or the future of one.
pub type Answer = Either<
    std::future::Ready<Response<ProxyBody>>,
    std::pin::Pin<Box<dyn std::future::Future<Output = Response<ProxyBody>> + Send>>,
>;

impl Cdn {
    pub fn new(mut config: CdnConfig) -> Result<Arc<Self>, CdnError> {
        // The running sites live in `sites` alone (a reload replaces them), not in `config`.
        let sites = std::mem::take(&mut config.sites);
        let sites =
            ArcSwap::from_pointee(build_sites(&sites, &config.name, &config.limits.tier_key)?);
        let via = HeaderValue::from_str(&format!("1.1 {}", config.name))
            .map_err(|_| UpstreamError::BadUrl(format!("bad edge name {}", config.name)))?;
        let disk = match &config.disk {
            Some(d) => Some(
                DiskStore::open(d.dir.clone(), d.capacity_bytes)
                    .map_err(|e| CdnError::Disk(d.dir.display().to_string(), e))?,
            ),
            None => None,
        };
        let store = Arc::new(Store::new(config.memory_bytes, disk));
        let metrics = Arc::new(Metrics::new(store.clone()));
        let access_log = match &config.access_log {
            Some(path) => Some(Arc::new(
                AccessLog::open(path.clone(), metrics.access_log_dropped())
                    .map_err(|e| CdnError::AccessLog(path.display().to_string(), e))?,
            )),
            None => None,
        };
        Ok(Arc::new(Self {
            metrics,
            access_log,
            store,
            sites,
            via,
            inflight: Mutex::new(HashMap::new()),
            fill_budget: Arc::new(FillBudget::new(config.fill_memory_bytes)),
            limiter: Mutex::new(RequestLimiter::new(&config.limits, Instant::now())),
            connections: ConnectionCounter::default(),
            refusal_log: RefusalLog::default(),
            config,
        }))
    }

    /// Answers a request: at once when it can (a fresh hit in memory, a refusal), else with
    /// a future that goes to the disk tier or the next hop. Hits thus never build the state
    /// machine of a fetch.
    pub fn handle<B>(self: &Arc<Self>, req: Request<B>, remote: SocketAddr) -> Answer
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        self.metrics.request_in(Protocol::of(req.version()));
        let limits = &self.config.limits;
        let vouched = limits
            .tier_key
            .as_ref()
            .is_some_and(|k| k.vouches(req.headers(), unix_now()));
        let client = crate::trust::client_of(remote.ip(), req.headers(), &limits.trusted, vouched);
        let arrival = self
            .access_log
            .as_ref()
            .map(|_| Arrival::of(&req, client.ip_or(remote.ip()), started));
        match self.answer_now(req, remote, client, started) {
            Ok(answered) => {
                Either::Left(std::future::ready(self.account(answered, started, arrival)))
            }
            Err(later) => {
                let cdn = self.clone();
                Either::Right(Box::pin(async move {
                    let answered = cdn.clone().answer_later(later).await;
                    cdn.account(answered, started, arrival)
                }))
            }
        }
    }

    fn account(
        &self,
        answered: Answered,
        started: Instant,
        arrival: Option<Arrival>,
    ) -> Response<ProxyBody> {
        self.metrics
            .answered(answered.outcome, started.elapsed().as_secs_f64());
        match (&self.access_log, arrival) {
            (Some(log), Some(arrival)) => {
                LoggedBody::wrap(answered.response, log.clone(), arrival, answered.outcome)
            }
            _ => answered.response,
        }
    }

    /// Writes an access log line for what was refused before it became a request
    /// ([`AccessLog::refused`]).
    pub fn log_refused(&self, client: IpAddr, reason: BlockReason, status: Option<u16>) {
        if let Some(log) = &self.access_log {
            log.refused(client, reason, status);
        }
    }

    /// Opens the access log file again by its name (after a rotation).
    pub fn reopen_access_log(&self) {
        if let Some(log) = &self.access_log {
            log.reopen();
        }
    }

    /// Counts a refusal; whether to log it, with the number of refusals for the same
    /// reason left unlogged since the last line (`refusal_log`).
    pub fn count_refusal(&self, reason: BlockReason) -> Option<u64> {
        self.metrics.blocked(reason);
        self.refusal_log.admit(reason, Instant::now())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.config.limits
    }

    /// The site for a request's host (port ignored): the one that names it most exactly
    /// (`example.com`, then the longest `*.` wildcard; the first of equals), else the first
    /// that takes every host.
    fn site_for(&self, host: &str) -> Option<Arc<Site>> {
        let name = match host.rsplit_once(':') {
            Some((name, port))
                if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                name
            }
            _ => host,
        };
        let sites = self.sites.load();
        let named = sites.iter().map(|s| (s.hosts.as_slice(), s));
        myriad_cache::host::best(name, named)
            .or_else(|| sites.iter().find(|s| s.hosts.is_empty()))
            .cloned()
    }

    /// Serves these sites from now on (a reloaded configuration); the cache is kept. Nothing
    /// changes if any site fails to build.
    pub fn replace_sites(&self, sites: &[SiteConfig]) -> Result<(), CdnError> {
        let built = build_sites(sites, &self.config.name, &self.config.limits.tier_key)?;
        self.sites.store(Arc::new(built));
        Ok(())
    }

    /// A connection slot for this address, if it has not reached its limit (trusted peers
    /// have none: a child edge carries many clients).
    pub fn open_connection(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let limits = &self.config.limits;
        let max = if crate::trust::is_trusted(ip, &limits.trusted) {
            usize::MAX
        } else {
            limits.max_connections_per_ip
        };
        let slot = self.connections.try_open(ip, max);
        if slot.is_none() {
            if let Some(unlogged) = self.count_refusal(BlockReason::Connections) {
                tracing::info!(%ip, unlogged, "connection refused: too many from its address");
            }
        }
        slot
    }

    /// Everything that needs neither the disk nor the network: limits, site, signature, WAF,
    /// and the memory tier.
    fn answer_now<B>(
        self: &Arc<Self>,
        req: Request<B>,
        remote: SocketAddr,
        client: Client,
        now: Instant,
    ) -> Result<Answered, Box<Later>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let api_key = self
            .config
            .limits
            .key_rate
            .as_ref()
            .and_then(|k| req.headers().get(&k.header))
            .and_then(|v| v.to_str().ok());
        // Limited by the real client (behind a trusted edge, the one it forwards for).
        let verdict = match client {
            Client::Address(ip) => self
                .limiter
                .lock()
                .map(|mut l| l.check(ip, req.uri().path(), api_key, now))
                .unwrap_or(Ok(())),
            Client::Trusted => Ok(()),
        };
        let client = SocketAddr::new(client.ip_or(remote.ip()), remote.port());
        if let Err(over) = verdict {
            tracing::debug!(%client, ?over, "over its rate");
            return Ok(self.blocked(StatusCode::TOO_MANY_REQUESTS, BlockReason::RateLimit));
        }
        let (parts, body) = req.into_parts();
        let mut path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or(parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        // The primary key starts with the host in lower case.
        let mut primary = myriad_cache::key::primary(host, path.as_str());
        let Some(site) = self.site_for(&primary[..host.len()]) else {
            return Ok(self.status_only(
                StatusCode::MISDIRECTED_REQUEST,
                CacheStatus::bypass(NoCacheReason::UnknownHost),
            ));
        };
        if let Some(signing) = &site.signing {
            if signing.prefixes.iter().any(|p| path.path().starts_with(p)) {
                match signing.check(&path, client.ip(), SystemTime::now()) {
                    Ok(stripped) => {
                        primary.truncate(host.len());
                        primary.push_str(stripped.as_str());
                        path = stripped;
                    }
                    Err(e) => {
                        tracing::info!(%client, path = %path.path(), "refused: {e}");
                        return Ok(self.blocked(StatusCode::FORBIDDEN, BlockReason::Signature));
                    }
                }
            }
        }
        // A request with a body, whatever its method, is passed and inspected where its body
        // is read (`pass`).
        let with_body = has_body(&parts.headers);
        if !with_body && self.waf_refuses(&site, &parts, client, None) {
            return Ok(self.blocked(StatusCode::FORBIDDEN, BlockReason::Waf));
        }
        let bypass = policy::request_bypass(&parts.method, &parts.headers, with_body);
        let Variant { names, key, stored } = match bypass {
            // Not looked up, but its key names what it invalidates.
            Some(_) => self.store.variant(&primary, &parts.headers),
            None => self.store.in_memory(&primary, &parts.headers),
        };
        let lookup = Lookup {
            site,
            parts,
            path,
            primary,
            key,
            remote,
            client,
        };
        let later = match (bypass, stored) {
            (None, Some(stored)) => return self.reuse(lookup, stored, Tier::Memory),
            (None, None) => Later::Disk(lookup, names),
            (Some(NoCacheReason::Upgrade), _) => Later::Tunnel(lookup),
            (Some(reason), _) => Later::Pass(
                lookup,
                Some(body.map_err(Into::into).boxed_unsync()),
                reason,
            ),
        };
        Err(Box::new(later))
    }

    /// The rest of a request [`Cdn::answer_now`] could not answer.
    async fn answer_later(self: Arc<Self>, mut later: Box<Later>) -> Answered {
        loop {
            later = match *later {
                Later::Tunnel(lookup) => return self.tunnel(lookup).await,
                Later::Pass(lookup, body, reason) => return self.pass(lookup, body, reason).await,
                Later::Fetch(lookup, fallback, fwd) => {
                    return self.fetch(lookup, fallback, fwd).await
                }
                Later::Disk(lookup, names) => {
                    let next = match self.store.on_disk(&lookup.key).await {
                        Some(stored) => self.reuse(lookup, stored, Tier::Disk),
                        None => self.miss(lookup, &names),
                    };
                    match next {
                        Ok(res) => return res,
                        Err(later) => later,
                    }
                }
            }
        }
    }

    /// Nothing stored for this request: to the next hop.
    pub(crate) fn miss(
        &self,
        lookup: Lookup,
        names: &[HeaderName],
    ) -> Result<Answered, Box<Later>> {
        if CacheControl::from_headers(&lookup.parts.headers).only_if_cached {
            return Ok(self.status_only(
                StatusCode::GATEWAY_TIMEOUT,
                CacheStatus::forward(Forward::UriMiss),
            ));
        }
        if lookup.parts.method == Method::HEAD {
            return Err(Box::new(Later::Pass(lookup, None, NoCacheReason::Method)));
        }
        let fwd = if names.is_empty() {
            Forward::UriMiss
        } else {
            Forward::VaryMiss
        };
        Err(Box::new(Later::Fetch(lookup, None, fwd)))
    }

    /// A stored response for this request: served if fresh enough (or stale where that is
    /// allowed), else validated with the next hop first.
    pub(crate) fn reuse(
        self: &Arc<Self>,
        lookup: Lookup,
        stored: Arc<Stored>,
        tier: Tier,
    ) -> Result<Answered, Box<Later>> {
        let age = policy::current_age(&stored.meta, SystemTime::now());
        match policy::evaluate_aged(
            &self.config.policy,
            &stored.meta,
            &lookup.parts.headers,
            age,
        ) {
            Reuse::Fresh { ttl } => Ok(self.serve_stored(
                &lookup.parts,
                &stored,
                on_tier(CacheStatus::hit(ttl), tier),
                age,
            )),
            Reuse::StaleAccepted { stale_by } => Ok(self.serve_stored(
                &lookup.parts,
                &stored,
                on_tier(CacheStatus::stale_hit(stale_by, "max-stale"), tier),
                age,
            )),
            Reuse::Revalidate {
                stale_by,
                while_revalidating: true,
                ..
            } => {
                // Answer now; one background fetch brings the copy up to date.
                let (_fill, _reader, _) = self.join_or_start(&lookup, Some(stored.clone()));
                Ok(self.serve_stored(
                    &lookup.parts,
                    &stored,
                    CacheStatus::stale_hit(stale_by, "stale-while-revalidate"),
                    age,
                ))
            }
            Reuse::Revalidate {
                stale_by, on_error, ..
            } => {
                let fallback = Fallback {
                    stored,
                    stale_by,
                    on_error,
                };
                Err(Box::new(Later::Fetch(
                    lookup,
                    Some(fallback),
                    Forward::Stale,
                )))
            }
        }
    }

    /// Applies a purge to this edge's cache.
    pub fn purge(&self, purge: &Purge) {
        for url in &purge.urls {
            if let Some(primary) = myriad_cache::key::purge_target(url) {
                self.store.invalidate(&primary);
            }
        }
        for prefix in &purge.prefixes {
            if let Some(prefix) = myriad_cache::key::purge_target(prefix) {
                self.store.invalidate_prefix(&prefix);
            }
        }
        for tag in &purge.tags {
            self.store.invalidate_tag(tag);
        }
        tracing::info!(items = purge.len(), "purged");
    }

    pub(crate) fn serve_stored(
        &self,
        parts: &Parts,
        stored: &Stored,
        status: CacheStatus,
        age: Duration,
    ) -> Answered {
        let code = stored.meta.status();
        // A stored body is whole: a 200 can be served in ranges.
        let head = stored.head.get_or_init(|| {
            ResponseHead::new(stored.meta.headers(), &self.via, code == StatusCode::OK)
        });
        let headers = head.render(age.as_secs(), &self.config.name, &status);
        self.respond(
            parts,
            code,
            headers,
            Source::Whole(stored.body.clone()),
            status,
        )
    }

    /// Builds the response from its rendered fields (`Age` and `Cache-Status` filled in): the
    /// client's conditional and range.
    pub(crate) fn respond(
        &self,
        parts: &Parts,
        code: StatusCode,
        mut headers: HeaderMap,
        body: Source,
        status: CacheStatus,
    ) -> Answered {
        let cacheable_status = code == StatusCode::OK;
        if cacheable_status && policy::not_modified(&parts.headers, &headers) {
            headers.remove(CONTENT_LENGTH);
            return self.finish(
                build(StatusCode::NOT_MODIFIED, headers, empty_body()),
                &status,
            );
        }
        let len = match &body {
            Source::Whole(b) => Some(b.len() as u64),
            Source::Stream(_) => content_length(&headers),
        };
        let (code, body) = match (cacheable_status, len) {
            (true, Some(len)) => match range::select(&parts.headers, &headers, len) {
                RangeRequest::Full => (code, body.into_body()),
                RangeRequest::Partial { start, end } => {
                    headers.insert(CONTENT_RANGE, header(&format!("bytes {start}-{end}/{len}")));
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start + 1));
                    (StatusCode::PARTIAL_CONTENT, body.slice(start, end))
                }
                RangeRequest::Unsatisfiable => {
                    headers.insert(CONTENT_RANGE, header(&format!("bytes */{len}")));
                    headers.remove(CONTENT_LENGTH);
                    (StatusCode::RANGE_NOT_SATISFIABLE, empty_body())
                }
            },
            _ => (code, body.into_body()),
        };
        let body = if parts.method == Method::HEAD {
            empty_body()
        } else {
            body
        };
        self.finish(build(code, headers, body), &status)
    }

    /// Whether the WAF blocks this request; what it flags is logged with the rule ids
    /// (blocking or not).
    pub(crate) fn waf_refuses(
        &self,
        site: &Site,
        parts: &Parts,
        client: SocketAddr,
        body: Option<&[u8]>,
    ) -> bool {
        let Some(waf) = &site.waf else {
            return false;
        };
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        // HTTP/2 and HTTP/3 name the host in the request's URI (`:authority`); the rules
        // look for a Host field, which nginx gives them too.
        let with_host;
        let headers = match parts.uri.authority() {
            Some(a) if !parts.headers.contains_key(HOST) => {
                let mut h = parts.headers.clone();
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    h.insert(HOST, v);
                }
                with_host = h;
                &with_host
            }
            _ => &parts.headers,
        };
        let request = Inspected {
            client,
            method: parts.method.as_str(),
            target,
            version: match parts.version {
                Version::HTTP_10 => "1.0",
                Version::HTTP_09 | Version::HTTP_11 => "1.1",
                // CRS 3.3 predates HTTP/3 and would refuse it as a protocol it does not
                // allow; its semantics for the rules (no Content-Length needed, the host
                // in `:authority`) are HTTP/2's.
                _ => "2.0",
            },
            headers,
        };
        let Some(verdict) = waf.check(&request, body) else {
            return false;
        };
        tracing::warn!(
            %client,
            method = %parts.method,
            target,
            rules = ?verdict.rule_ids,
            blocked = waf.blocking(),
            "WAF flagged a request"
        );
        waf.blocking()
    }

    /// A request refused by a limit.
    pub(crate) fn blocked(&self, code: StatusCode, reason: BlockReason) -> Answered {
        if let Some(unlogged) = self.count_refusal(reason) {
            tracing::info!(?reason, %code, unlogged, "request refused");
        }
        let mut headers = HeaderMap::new();
        headers.insert(DATE, http_date(SystemTime::now()));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
        if code == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(1));
        }
        if code == StatusCode::REQUEST_TIMEOUT || code == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot be reused.
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        Answered {
            response: build(code, headers, empty_body()),
            outcome: Outcome::Blocked,
        }
    }

    /// `Via` and `Cache-Status` of this hop on a response.
    pub(crate) fn append_status(&self, headers: &mut HeaderMap, status: &CacheStatus) {
        headers.append(VIA, self.via.clone());
        // The members of caches nearer the origin come first (RFC 9211 §2).
        let mut value = String::with_capacity(64);
        if let Some(previous) = headers.get(CACHE_STATUS).and_then(|v| v.to_str().ok()) {
            value.push_str(previous);
            value.push_str(", ");
        }
        status.write_member(&self.config.name, &mut value);
        let value = HeaderValue::from_maybe_shared(Bytes::from(value))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        headers.insert(CACHE_STATUS, value);
    }

    pub(crate) fn status_only(&self, code: StatusCode, status: CacheStatus) -> Answered {
        let mut headers = HeaderMap::new();
        self.append_status(&mut headers, &status);
        headers.insert(DATE, http_date(SystemTime::now()));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
        let mut answered = self.finish(build(code, headers, empty_body()), &status);
        if code.is_server_error() {
            answered.outcome = Outcome::Error;
        }
        answered
    }

    /// The response with its outcome for the metrics, its body bytes counted.
    pub(crate) fn finish(&self, res: Response<ProxyBody>, status: &CacheStatus) -> Answered {
        let outcome = if status.hit {
            if status.ttl_s.is_some_and(|t| t < 0) {
                Outcome::Stale
            } else {
                Outcome::Hit
            }
        } else {
            match status.fwd {
                Some(Forward::Bypass) => Outcome::Bypass,
                Some(Forward::Stale) => Outcome::Revalidated,
                Some(_) => Outcome::Miss,
                None => Outcome::Error,
            }
        };
        if status.collapsed {
            self.metrics.coalesced();
        }
        // A hit of known size is whole in memory and goes out as one frame: counted now.
        // Other bodies (the origin's among them, which may be cut off) are counted as their
        // frames go, through a second box.
        let whole = status
            .hit
            .then(|| http_body::Body::size_hint(res.body()).exact());
        if let Some(size) = whole.flatten() {
            self.metrics.served_bytes(size);
            return Answered {
                response: res,
                outcome,
            };
        }
        let metrics = self.metrics.clone();
        let (parts, body) = res.into_parts();
        let body = body
            .map_frame(move |f| {
                if let Some(d) = f.data_ref() {
                    metrics.served_bytes(d.len() as u64);
                }
                f
            })
            .boxed_unsync();
        Answered {
            response: Response::from_parts(parts, body),
            outcome,
        }
    }
}

/// A hit from the disk tier says so.
pub(crate) fn on_tier(mut status: CacheStatus, tier: Tier) -> CacheStatus {
    if tier == Tier::Disk && status.detail.is_none() {
        status.detail = Some("disk");
    }
    status
}

pub(crate) fn http_date(t: SystemTime) -> HeaderValue {
    header(&httpdate::fmt_http_date(t))
}

pub(crate) fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
