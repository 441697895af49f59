//! The request path of the caching proxy: look up, decide with `myriad_cache`, serve from the
//! memory tier, or join (or start) the shared fetch from the next hop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::Either;
use futures_util::{StreamExt, TryStreamExt};
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_RANGE, DATE, HOST, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE, UPGRADE, VIA,
};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use myriad_cache::integrity::DigestCheck;
use myriad_cache::policy::{self, StoredMeta};
use myriad_cache::range::{self, RangeRequest};
use myriad_cache::signed::{SignError, UrlSigner};
use myriad_cache::{
    is_hop_by_hop, CacheControl, CacheStatus, Forward, NoCacheReason, Policy, Reuse,
};

use super::fill::{FetchError, Fill, FillBudget, Head, Pushed, Reader};
use myriad_proto::purge::Purge;

use super::access_log::{AccessLog, Arrival, LoggedBody};
use super::disk::DiskStore;
use super::guard::{BodyFault, FaultCell, GuardedBody};
use super::head::{ResponseHead, CACHE_STATUS};
use super::limits::{ConnectionCounter, ConnectionSlot, LimitsConfig, RequestLimiter};
use super::metrics::{BlockReason, Metrics, Outcome, Protocol, Unstored};
use super::refusal_log::RefusalLog;
use super::store::{owned_fields, Store, Stored, Tier, Variant};
use super::tunnel::{self, Ending};
use super::upstream::{Body as UpstreamBody, Upstream, UpstreamError};
use super::waf::{Inspected, Waf, WafConfig, WafError, BODY_INSPECTION_BYTES};
use super::TunnelLease;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// A request body from any of the listeners (HTTP/1.1, HTTP/2, HTTP/3).
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

#[derive(Debug, Clone)]
pub struct CdnConfig {
    /// This cache's name in `Cache-Status` and `Via`.
    pub name: String,
    /// The sites served, matched by host name in order.
    pub sites: Vec<SiteConfig>,
    pub memory_bytes: u64,
    /// Larger objects pass through without being stored.
    pub max_object_bytes: u64,
    /// What all fetches in flight may hold of bodies they mean to store.
    pub fill_memory_bytes: u64,
    /// For the response head, and between body chunks.
    pub upstream_timeout: Duration,
    pub policy: Policy,
    pub limits: LimitsConfig,
    pub disk: Option<DiskConfig>,
    /// Where to write a line per request (`access_log.rs`); none by default.
    pub access_log: Option<PathBuf>,
}

/// One site: the host names it answers for, where it fetches from, its own protections.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Host names (any port); empty: every host.
    pub hosts: Vec<String>,
    /// The next hop: the origin, or a parent edge (shield).
    pub upstream: String,
    /// Paths that need a signed URL.
    pub signing: Option<Signing>,
    pub waf: Option<WafConfig>,
    /// Known digests (`Content-Digest` syntax) of objects by path: their bodies must match.
    pub digests: HashMap<String, String>,
}

/// A site, running.
struct Site {
    hosts: Vec<String>,
    upstream: Upstream,
    signing: Option<Signing>,
    waf: Option<Waf>,
    digests: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub dir: PathBuf,
    pub capacity_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("cache directory {0}: {1}")]
    Disk(String, std::io::Error),
    #[error("access log {0}: {1}")]
    AccessLog(String, std::io::Error),
    #[error(transparent)]
    Waf(#[from] WafError),
}

#[derive(Clone)]
pub struct Signing {
    pub signer: Arc<UrlSigner>,
    /// Path prefixes that need a signature.
    pub prefixes: Vec<String>,
}

impl Signing {
    fn check(
        &self,
        path: &PathAndQuery,
        client: IpAddr,
        now: SystemTime,
    ) -> Result<PathAndQuery, SignError> {
        let now_unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let stripped = self.signer.verify(path.as_str(), client, now_unix)?;
        stripped.parse().map_err(|_| SignError::Malformed)
    }
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl CdnConfig {
    pub fn new(sites: Vec<SiteConfig>) -> Self {
        Self {
            name: "myriad".into(),
            sites,
            memory_bytes: 256 << 20,
            max_object_bytes: 16 << 20,
            fill_memory_bytes: 256 << 20,
            upstream_timeout: Duration::from_secs(30),
            policy: Policy::default(),
            limits: LimitsConfig::default(),
            disk: None,
            access_log: None,
        }
    }
}

pub struct Cdn {
    config: CdnConfig,
    store: Arc<Store>,
    /// Replaced whole when the configuration is reloaded; requests under way keep theirs.
    sites: ArcSwap<Vec<Arc<Site>>>,
    /// This hop's `Via` entry.
    via: HeaderValue,
    /// Fetches in flight by variant key: concurrent misses share one.
    inflight: Mutex<HashMap<String, Arc<Fill>>>,
    fill_budget: Arc<FillBudget>,
    metrics: Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
    limiter: Mutex<RequestLimiter>,
    connections: ConnectionCounter,
    refusal_log: RefusalLog,
}

/// A request as the cache sees it.
struct Lookup {
    site: Arc<Site>,
    parts: Parts,
    path: PathAndQuery,
    primary: String,
    key: String,
    remote: SocketAddr,
}

/// Sites ready to serve: upstream pools made, WAF rules loaded.
fn build_sites(sites: &[SiteConfig], edge_name: &str) -> Result<Vec<Arc<Site>>, CdnError> {
    sites
        .iter()
        .map(|site| {
            Ok(Arc::new(Site {
                hosts: site.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                upstream: Upstream::new(&site.upstream, edge_name)?,
                signing: site.signing.clone(),
                waf: site.waf.as_ref().map(Waf::load).transpose()?,
                digests: site.digests.clone(),
            }))
        })
        .collect()
}

/// A stored response that may stand in if the fetch fails (stale-if-error).
struct Fallback {
    stored: Arc<Stored>,
    stale_by: Duration,
    on_error: bool,
}

/// What is left to do for a request that could not be answered at once.
enum Later {
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
struct Answered {
    response: Response<ProxyBody>,
    outcome: Outcome,
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
        let sites = ArcSwap::from_pointee(build_sites(&sites, &config.name)?);
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
        let arrival = self
            .access_log
            .as_ref()
            .map(|_| Arrival::of(&req, remote.ip(), started));
        match self.answer_now(req, remote, started) {
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
        let built = build_sites(sites, &self.config.name)?;
        self.sites.store(Arc::new(built));
        Ok(())
    }

    /// A connection slot for this address, if it has not reached its limit.
    pub fn open_connection(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let slot = self
            .connections
            .try_open(ip, self.config.limits.max_connections_per_ip);
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
        let verdict = self
            .limiter
            .lock()
            .map(|mut l| l.check(remote.ip(), req.uri().path(), api_key, now))
            .unwrap_or(Ok(()));
        if let Err(over) = verdict {
            tracing::debug!(%remote, ?over, "over its rate");
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
                match signing.check(&path, remote.ip(), SystemTime::now()) {
                    Ok(stripped) => {
                        primary.truncate(host.len());
                        primary.push_str(stripped.as_str());
                        path = stripped;
                    }
                    Err(e) => {
                        tracing::info!(%remote, path = %path.path(), "refused: {e}");
                        return Ok(self.blocked(StatusCode::FORBIDDEN, BlockReason::Signature));
                    }
                }
            }
        }
        // A request with a body is inspected where its body is read (`pass`).
        if !has_body(&parts.headers) && self.waf_refuses(&site, &parts, remote, None) {
            return Ok(self.blocked(StatusCode::FORBIDDEN, BlockReason::Waf));
        }
        let bypass = policy::request_bypass(&parts.method, &parts.headers);
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
    fn miss(&self, lookup: Lookup, names: &[HeaderName]) -> Result<Answered, Box<Later>> {
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
    fn reuse(
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

    /// Joins the fetch of this variant in flight, or starts it; returns the fill, this
    /// request's reader and whether it joined another request's fetch.
    fn join_or_start(
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

    fn spawn_fetch(self: &Arc<Self>, fill: Arc<Fill>, lookup: &Lookup, stale: Option<Arc<Stored>>) {
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
            let result = cdn.run_fetch(&fill, job.clone()).await;
            if let Err(e) = &result {
                tracing::debug!(key = %job.primary, "fetch failed: {e}");
            }
            fill.finish(result);
            cdn.forget(&job.key, &fill);
        });
    }

    fn forget(&self, key: &str, fill: &Arc<Fill>) {
        if let Ok(mut inflight) = self.inflight.lock() {
            if inflight.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
                inflight.remove(key);
            }
        }
    }

    /// The shared fetch: runs to the end whoever still reads, and stores what may be stored.
    async fn run_fetch(&self, fill: &Arc<Fill>, job: FetchJob) -> Result<(), FetchError> {
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
        fill.set_head(Ok(Head {
            status: parts.status,
            headers: res_headers.clone(),
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
        // A digest the site's configuration pins for this path wins over the origin's.
        let mut digest = job
            .site
            .digests
            .get(job.path.path())
            .and_then(|d| DigestCheck::from_field(d))
            .or_else(|| DigestCheck::from_headers(&res_headers));
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
    async fn push(&self, fill: &Fill, chunk: Bytes) -> bool {
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

    fn store_variant(&self, job: &FetchJob, meta: StoredMeta, body: Bytes) {
        // Checked before: a response that varies on everything is not stored.
        let Some(names) = policy::vary_names(meta.headers()) else {
            return;
        };
        let key = Store::key(&job.primary, &policy::variant_key(&names, &job.headers));
        let tags = myriad_cache::key::tags(meta.headers());
        let stored = Stored::new(meta, body, tags);
        self.store.insert(&job.primary, names, key, stored);
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

    /// Answers from the shared fetch (a miss or a revalidation).
    async fn fetch(
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
        let response_head = ResponseHead::new(&head.headers, &self.via, ranges);
        let meta = StoredMeta::new(head.status, head.headers, now, now);
        let age = policy::current_age(&meta, now).as_secs();
        let headers = response_head.render_once(age, &self.config.name, &status);
        let body = reader.body().map_err(|e| Box::new(e) as BoxError);
        self.respond(
            &lookup.parts,
            meta.status(),
            headers,
            Source::Stream(Box::pin(body)),
            status,
        )
    }

    fn shareable(&self, head: &Head, lookup: &Lookup) -> bool {
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

    fn serve_stored(
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
    fn respond(
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

    /// Forwards a request the cache does not handle, streaming both ways; a successful unsafe
    /// method invalidates what is stored for its target.
    async fn pass(
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
                    if self.waf_refuses(&site, &parts, remote, Some(&prefix.concat())) {
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
    async fn tunnel(&self, lookup: Lookup) -> Answered {
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
    fn body_refused(
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

    /// Whether the WAF blocks this request; what it flags is logged with the rule ids
    /// (blocking or not).
    fn waf_refuses(
        &self,
        site: &Site,
        parts: &Parts,
        remote: SocketAddr,
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
            client: remote,
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
            %remote,
            method = %parts.method,
            target,
            rules = ?verdict.rule_ids,
            blocked = waf.blocking(),
            "WAF flagged a request"
        );
        waf.blocking()
    }

    /// A request refused by a limit.
    fn blocked(&self, code: StatusCode, reason: BlockReason) -> Answered {
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
    fn append_status(&self, headers: &mut HeaderMap, status: &CacheStatus) {
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

    fn status_only(&self, code: StatusCode, status: CacheStatus) -> Answered {
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
    fn finish(&self, res: Response<ProxyBody>, status: &CacheStatus) -> Answered {
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

#[derive(Clone)]
struct FetchJob {
    site: Arc<Site>,
    path: PathAndQuery,
    primary: String,
    key: String,
    /// The leader's request headers as forwarded (they select the stored variant).
    headers: HeaderMap,
    remote: SocketAddr,
    stale: Option<Arc<Stored>>,
}

type ChunkStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// An upstream stopped sending a body it had begun.
#[derive(Debug, thiserror::Error)]
#[error("no body data from upstream for {0:?}")]
struct UpstreamStalled(Duration);

/// An upstream body passed on as it comes, each frame due within `limit` of asking for it:
/// an upstream that stalls mid-body ends the response in an error instead of holding the
/// client (and both connections) for ever. The clock runs only while the client waits.
fn between_frames<B>(body: B, limit: Duration) -> ProxyBody
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

enum Source {
    Whole(Bytes),
    Stream(ChunkStream),
}

impl Source {
    fn into_body(self) -> ProxyBody {
        match self {
            Source::Whole(b) => Full::new(b)
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
            Source::Stream(s) => StreamBody::new(s.map_ok(Frame::data)).boxed_unsync(),
        }
    }

    /// Bytes `start..=end` of the body.
    fn slice(self, start: u64, end: u64) -> ProxyBody {
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

/// A hit from the disk tier says so.
fn on_tier(mut status: CacheStatus, tier: Tier) -> CacheStatus {
    if tier == Tier::Disk && status.detail.is_none() {
        status.detail = Some("disk");
    }
    status
}

fn build(code: StatusCode, headers: HeaderMap, body: ProxyBody) -> Response<ProxyBody> {
    let mut res = Response::new(body);
    *res.status_mut() = code;
    *res.headers_mut() = headers;
    res
}

fn empty_body() -> ProxyBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn empty_upstream() -> UpstreamBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// Whether an upgrade is to WebSocket, whose frames the edge can read.
fn protocol_is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Headers to pass on: without connection-specific fields, nor those `Connection` names.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
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

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || content_length(headers).is_some_and(|l| l > 0)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn http_date(t: SystemTime) -> HeaderValue {
    header(&httpdate::fmt_http_date(t))
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
