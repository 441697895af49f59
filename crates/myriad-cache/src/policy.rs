//! What a shared cache may store and reuse (RFC 9111 §3–4, RFC 5861), as pure functions of the
//! messages and the time passed in.

use std::time::{Duration, SystemTime};

use http::header::{
    HeaderMap, HeaderName, AUTHORIZATION, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, SET_COOKIE, VARY,
};
use http::{HeaderValue, Method, StatusCode};

use crate::cache_control::CacheControl;
use crate::NoCacheReason;

#[derive(Debug, Clone)]
pub struct Policy {
    /// Heuristic freshness: this fraction of the time since `Last-Modified` (RFC 9111 §4.2.2
    /// suggests 10 %)…
    pub heuristic_fraction: f64,
    /// …at most this long.
    pub heuristic_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(24 * 3600),
        }
    }
}

/// A stored response's metadata: what freshness and age are computed from. The fields that
/// decide reuse are parsed once, when it is made, not on every hit.
#[derive(Debug, Clone)]
pub struct StoredMeta {
    status: StatusCode,
    headers: HeaderMap,
    /// When the request that produced it was sent, and when the response arrived.
    request_time: SystemTime,
    response_time: SystemTime,
    fields: FreshnessFields,
    /// Its age when it arrived (RFC 9111 §4.2.3, `corrected_initial_age`).
    initial_age: Duration,
}

/// The `Age` a response arrived with (none: zero).
pub fn age_value(headers: &HeaderMap) -> Duration {
    headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        // RFC 9111 §1.2.2: a larger age counts as 2^31 seconds.
        .map(|s| Duration::from_secs(s.min(1 << 31)))
        .unwrap_or_default()
}

impl StoredMeta {
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let fields = FreshnessFields::parse(&headers);
        let age_value = age_value(&headers);
        let apparent_age = fields
            .date
            .and_then(|d| response_time.duration_since(d).ok())
            .unwrap_or_default();
        let response_delay = response_time
            .duration_since(request_time)
            .unwrap_or_default();
        Self {
            status,
            headers,
            request_time,
            response_time,
            fields,
            initial_age: apparent_age.max(age_value.saturating_add(response_delay)),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn request_time(&self) -> SystemTime {
        self.request_time
    }

    pub fn response_time(&self) -> SystemTime {
        self.response_time
    }

    /// This response updated by a 304 that validated it (RFC 9111 §3.2, §4.3.4), with the
    /// times of that exchange.
    pub fn freshened(
        &self,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let mut headers = self.headers.clone();
        for name in not_modified.keys() {
            if *name == http::header::CONTENT_LENGTH || crate::is_hop_by_hop(name) {
                continue;
            }
            headers.remove(name);
            for v in not_modified.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        Self::new(self.status, headers, request_time, response_time)
    }
}

/// The response fields freshness is computed from, parsed.
#[derive(Debug, Clone)]
struct FreshnessFields {
    cache_control: CacheControl,
    date: Option<SystemTime>,
    /// `Expires` when present; `None` inside when it does not parse (already expired).
    expires: Option<Option<SystemTime>>,
    last_modified: Option<SystemTime>,
}

impl FreshnessFields {
    fn parse(headers: &HeaderMap) -> Self {
        Self {
            cache_control: CacheControl::for_this_cache(headers),
            date: header_time(headers, DATE),
            expires: headers.get(EXPIRES).map(parse_time),
            last_modified: header_time(headers, LAST_MODIFIED),
        }
    }

    /// How long the response stays fresh in a shared cache (RFC 9111 §4.2.1–4.2.2).
    fn lifetime(&self, policy: &Policy, status: StatusCode) -> Duration {
        let cc = &self.cache_control;
        if let Some(s) = cc.s_maxage {
            return s;
        }
        if let Some(m) = cc.max_age {
            return m;
        }
        if let Some(expires) = self.expires {
            // An invalid Expires (e.g. "0") means already expired.
            return match (expires, self.date) {
                (Some(e), Some(d)) => e.duration_since(d).unwrap_or(Duration::ZERO),
                _ => Duration::ZERO,
            };
        }
        if !heuristically_cacheable(status) {
            return Duration::ZERO;
        }
        match (self.last_modified, self.date) {
            (Some(lm), Some(d)) => d
                .duration_since(lm)
                .map(|age| {
                    age.mul_f64(policy.heuristic_fraction)
                        .min(policy.heuristic_max)
                })
                .unwrap_or(Duration::ZERO),
            _ => Duration::ZERO,
        }
    }
}

/// Whether and how a stored response may be reused for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it; `ttl` is how much freshness is left.
    Fresh { ttl: Duration },
    /// Stale but the client accepts that (`max-stale`): serve it as is.
    StaleAccepted { stale_by: Duration },
    /// Validate with the origin first; while that happens, or when it fails, the stale copy may
    /// be served if these allow.
    Revalidate {
        stale_by: Duration,
        while_revalidating: bool,
        on_error: bool,
    },
}

/// Status codes a cache may give heuristic freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Requests a cache never answers from storage: only GET and HEAD are looked up; one with a
/// body (`has_body`) goes to the origin with it, as the body may mean something there (and a
/// proxy inspects what it forwards); an upgrade (WebSocket) is a tunnel, not a resource.
pub fn request_bypass(
    method: &Method,
    headers: &HeaderMap,
    has_body: bool,
) -> Option<NoCacheReason> {
    let looked_up = method == Method::GET || method == Method::HEAD;
    if has_body {
        return Some(if looked_up {
            NoCacheReason::RequestBody
        } else {
            NoCacheReason::Method
        });
    }
    if headers.contains_key(http::header::UPGRADE) {
        return Some(NoCacheReason::Upgrade);
    }
    (!looked_up).then_some(NoCacheReason::Method)
}

/// Whether a response to a GET may be stored by a shared cache (RFC 9111 §3).
pub fn storable(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
) -> Result<(), NoCacheReason> {
    if method != Method::GET {
        return Err(NoCacheReason::Method);
    }
    let req = CacheControl::from_headers(request);
    let res = CacheControl::for_this_cache(response);
    if req.no_store || res.no_store {
        return Err(NoCacheReason::NoStore);
    }
    if res.private {
        return Err(NoCacheReason::Private);
    }
    if request.contains_key(AUTHORIZATION)
        && !(res.public || res.s_maxage.is_some() || res.must_revalidate)
    {
        return Err(NoCacheReason::Authorization);
    }
    if response.contains_key(SET_COOKIE) {
        // Allowed by RFC 9111, but one user's cookie must not reach everyone.
        return Err(NoCacheReason::SetCookie);
    }
    if vary_names(response).is_none() {
        return Err(NoCacheReason::VaryStar);
    }
    // Partial content is never stored: misses fetch whole objects and serve ranges from them.
    if status == StatusCode::PARTIAL_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Err(NoCacheReason::Status);
    }
    let explicit =
        res.max_age.is_some() || res.s_maxage.is_some() || response.contains_key(EXPIRES);
    if status.is_informational() || !(explicit || res.public || heuristically_cacheable(status)) {
        return Err(NoCacheReason::Status);
    }
    Ok(())
}

/// How long a response stays fresh in a shared cache (RFC 9111 §4.2.1–4.2.2).
pub fn freshness_lifetime(policy: &Policy, status: StatusCode, headers: &HeaderMap) -> Duration {
    FreshnessFields::parse(headers).lifetime(policy, status)
}

/// The stored response's age now (RFC 9111 §4.2.3).
pub fn current_age(meta: &StoredMeta, now: SystemTime) -> Duration {
    let resident_time = now.duration_since(meta.response_time).unwrap_or_default();
    meta.initial_age.saturating_add(resident_time)
}

/// Decides whether a stored response can answer `request` now.
pub fn evaluate(policy: &Policy, meta: &StoredMeta, request: &HeaderMap, now: SystemTime) -> Reuse {
    evaluate_aged(policy, meta, request, current_age(meta, now))
}

/// [`evaluate`] with the stored response's [`current_age`] already known (the caller needs it
/// for the `Age` field too).
pub fn evaluate_aged(
    policy: &Policy,
    meta: &StoredMeta,
    request: &HeaderMap,
    age: Duration,
) -> Reuse {
    let req = CacheControl::from_headers(request);
    let res = &meta.fields.cache_control;
    let lifetime = meta.fields.lifetime(policy, meta.status);
    // RFC 8246: a fresh immutable response does not change; a reload's no-cache or max-age=0
    // does not send it back to the origin.
    if res.immutable && !res.no_cache && lifetime > age {
        return Reuse::Fresh {
            ttl: lifetime - age,
        };
    }
    // Validation is required outright, whatever the age.
    let must_validate = res.no_cache || req.no_cache;
    let mut usable = lifetime;
    if let Some(max_age) = req.max_age {
        usable = usable.min(max_age);
    }
    let needed = age.saturating_add(req.min_fresh.unwrap_or_default());
    if !must_validate && usable > needed {
        return Reuse::Fresh {
            ttl: lifetime.saturating_sub(age),
        };
    }
    let stale_by = age.saturating_sub(lifetime);
    // Shared caches must not serve stale when told so (s-maxage implies proxy-revalidate).
    let no_stale = res.must_revalidate
        || res.proxy_revalidate
        || res.s_maxage.is_some()
        || res.no_cache
        || req.no_cache;
    if !no_stale && age > lifetime {
        if let Some(max_stale) = req.max_stale {
            if max_stale.is_none_or(|m| stale_by <= m) {
                return Reuse::StaleAccepted { stale_by };
            }
        }
    }
    let within = |window: Option<Duration>| !no_stale && window.is_some_and(|w| stale_by <= w);
    Reuse::Revalidate {
        stale_by,
        while_revalidating: age > lifetime && within(res.stale_while_revalidate),
        on_error: within(res.stale_if_error.max(req.stale_if_error)),
    }
}

/// The request header names a response varies on; `None` for `Vary: *` (never reusable).
pub fn vary_names(response: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in response.get_all(VARY) {
        let text = value.to_str().ok()?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// The part of the cache key that selects a variant: the request's values of the `Vary`
/// headers, normalized (RFC 9111 §4.1: whitespace and case of the list do not matter).
pub fn variant_key(names: &[HeaderName], request: &HeaderMap) -> String {
    let mut key = String::new();
    for name in names {
        key.push_str(name.as_str());
        key.push(':');
        let values: Vec<String> = request
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect();
        key.push_str(&values.join(","));
        key.push('\n');
    }
    key
}

/// Headers that turn a request into a conditional one validating the stored response.
pub fn validators(meta: &StoredMeta) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(etag) = meta.headers.get(ETAG) {
        h.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = meta.headers.get(LAST_MODIFIED) {
        h.insert(IF_MODIFIED_SINCE, lm.clone());
    }
    h
}

/// Whether the client's own conditional request is satisfied by the response it would get
/// (RFC 9110 §13.1.2–13.1.3): then it gets a 304.
pub fn not_modified(request: &HeaderMap, response: &HeaderMap) -> bool {
    if let Some(inm) = request.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let Some(etag) = response.get(ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return inm.trim() == "*" || inm.split(',').any(|t| weak(t) == weak(etag));
    }
    let Some(since) = header_time(request, IF_MODIFIED_SINCE) else {
        return false;
    };
    header_time(response, LAST_MODIFIED).is_some_and(|lm| lm <= since)
}

/// Whether a response to this request invalidates stored responses for its target
/// (RFC 9111 §4.4): an unsafe method that succeeded.
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe && (status.is_success() || status.is_redirection())
}

fn header_time(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    parse_time(headers.get(name)?)
}

fn parse_time(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_bodiless_gets_and_heads_are_looked_up() {
        let none = HeaderMap::new();
        assert_eq!(request_bypass(&Method::GET, &none, false), None);
        assert_eq!(request_bypass(&Method::HEAD, &none, false), None);
        for has_body in [false, true] {
            assert_eq!(
                request_bypass(&Method::POST, &none, has_body),
                Some(NoCacheReason::Method)
            );
        }
        assert_eq!(
            request_bypass(&Method::GET, &none, true),
            Some(NoCacheReason::RequestBody),
            "a GET with a body goes on, to be inspected"
        );
        let upgrade = headers(&[("upgrade", "websocket")]);
        assert_eq!(
            request_bypass(&Method::GET, &upgrade, false),
            Some(NoCacheReason::Upgrade)
        );
    }

    fn date(at: SystemTime) -> String {
        httpdate::fmt_http_date(at)
    }

    fn meta(pairs: &[(&str, &str)], at: SystemTime) -> StoredMeta {
        let mut h = headers(pairs);
        h.insert(DATE, HeaderValue::from_str(&date(at)).unwrap());
        StoredMeta::new(StatusCode::OK, h, at, at)
    }

    fn get() -> Method {
        Method::GET
    }

    #[test]
    fn storability_follows_the_directives() {
        let ok = |req: &[(&str, &str)], res: &[(&str, &str)], status: u16| {
            storable(
                &get(),
                &headers(req),
                StatusCode::from_u16(status).unwrap(),
                &headers(res),
            )
        };
        assert_eq!(ok(&[], &[("cache-control", "max-age=60")], 200), Ok(()));
        assert_eq!(ok(&[], &[], 200), Ok(()), "heuristically cacheable");
        assert_eq!(ok(&[], &[], 404), Ok(()));
        assert_eq!(ok(&[], &[], 500), Err(NoCacheReason::Status));
        assert_eq!(ok(&[], &[("cache-control", "max-age=5")], 500), Ok(()));
        assert_eq!(
            ok(&[], &[("cache-control", "no-store")], 200),
            Err(NoCacheReason::NoStore)
        );
        assert_eq!(
            ok(&[("cache-control", "no-store")], &[], 200),
            Err(NoCacheReason::NoStore)
        );
        assert_eq!(
            ok(&[], &[("cache-control", "private, max-age=9")], 200),
            Err(NoCacheReason::Private)
        );
        assert_eq!(
            ok(
                &[("authorization", "Bearer x")],
                &[("cache-control", "max-age=9")],
                200
            ),
            Err(NoCacheReason::Authorization)
        );
        assert_eq!(
            ok(
                &[("authorization", "Bearer x")],
                &[("cache-control", "public, max-age=9")],
                200
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                &[("authorization", "Bearer x")],
                &[("cache-control", "s-maxage=9")],
                200
            ),
            Ok(())
        );
        assert_eq!(
            ok(&[], &[("vary", "Accept-Encoding, *")], 200),
            Err(NoCacheReason::VaryStar)
        );
        assert_eq!(
            ok(&[], &[("set-cookie", "a=b")], 200),
            Err(NoCacheReason::SetCookie)
        );
        assert_eq!(
            ok(&[], &[("cache-control", "max-age=9")], 206),
            Err(NoCacheReason::Status)
        );
        assert_eq!(
            storable(
                &Method::HEAD,
                &HeaderMap::new(),
                StatusCode::OK,
                &headers(&[("cache-control", "max-age=9")])
            ),
            Err(NoCacheReason::Method)
        );
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires_then_heuristic() {
        let p = Policy::default();
        let ok = StatusCode::OK;
        let lt = |pairs: &[(&str, &str)]| freshness_lifetime(&p, ok, &headers(pairs));
        let d = date(t(0));
        assert_eq!(
            lt(&[("cache-control", "max-age=10, s-maxage=20")]),
            Duration::from_secs(20)
        );
        assert_eq!(
            lt(&[("cache-control", "max-age=10"), ("expires", &date(t(99)))]),
            Duration::from_secs(10)
        );
        assert_eq!(
            lt(&[("date", &d), ("expires", &date(t(30)))]),
            Duration::from_secs(30)
        );
        assert_eq!(
            lt(&[("date", &d), ("expires", "0")]),
            Duration::ZERO,
            "invalid Expires is expired"
        );
        assert_eq!(
            lt(&[
                ("date", &d),
                ("expires", &date(t(0) - Duration::from_secs(5)))
            ]),
            Duration::ZERO
        );
        // Heuristic: 10 % of the time since Last-Modified, capped at a day.
        assert_eq!(
            lt(&[
                ("date", &d),
                ("last-modified", &date(t(0) - Duration::from_secs(1000)))
            ]),
            Duration::from_secs(100)
        );
        assert_eq!(
            lt(&[
                ("date", &d),
                (
                    "last-modified",
                    &date(t(0) - Duration::from_secs(100 * 24 * 3600))
                )
            ]),
            p.heuristic_max
        );
        assert_eq!(lt(&[("date", &d)]), Duration::ZERO);
        assert_eq!(
            freshness_lifetime(
                &p,
                StatusCode::INTERNAL_SERVER_ERROR,
                &headers(&[
                    ("date", &d),
                    ("last-modified", &date(t(0) - Duration::from_secs(1000)))
                ])
            ),
            Duration::ZERO,
            "no heuristic for a 500"
        );
    }

    #[test]
    fn age_counts_upstream_age_transit_and_residence() {
        let m = meta(&[("age", "30")], t(0));
        let m = StoredMeta::new(m.status, m.headers, t(0), t(2));
        // corrected initial age = max(apparent 2, 30 + 2) = 32; resident 10.
        assert_eq!(current_age(&m, t(12)), Duration::from_secs(42));
        // A clock behind the origin's Date gives no negative age.
        let m = meta(&[], t(100));
        let m = StoredMeta::new(m.status, m.headers, t(90), t(90));
        assert_eq!(current_age(&m, t(95)), Duration::from_secs(5));
    }

    #[test]
    fn fresh_then_stale_with_rfc5861_windows() {
        let p = Policy::default();
        let m = meta(
            &[(
                "cache-control",
                "max-age=10, stale-while-revalidate=20, stale-if-error=100",
            )],
            t(0),
        );
        let none = HeaderMap::new();
        assert_eq!(
            evaluate(&p, &m, &none, t(4)),
            Reuse::Fresh {
                ttl: Duration::from_secs(6)
            }
        );
        assert_eq!(
            evaluate(&p, &m, &none, t(25)),
            Reuse::Revalidate {
                stale_by: Duration::from_secs(15),
                while_revalidating: true,
                on_error: true
            }
        );
        assert_eq!(
            evaluate(&p, &m, &none, t(50)),
            Reuse::Revalidate {
                stale_by: Duration::from_secs(40),
                while_revalidating: false,
                on_error: true
            }
        );
        assert_eq!(
            evaluate(&p, &m, &none, t(200)),
            Reuse::Revalidate {
                stale_by: Duration::from_secs(190),
                while_revalidating: false,
                on_error: false
            }
        );
    }

    #[test]
    fn revalidate_directives_forbid_stale() {
        let p = Policy::default();
        let none = HeaderMap::new();
        for cc in [
            "max-age=1, must-revalidate, stale-if-error=100, stale-while-revalidate=100",
            "max-age=1, proxy-revalidate, stale-if-error=100, stale-while-revalidate=100",
            "s-maxage=1, stale-if-error=100, stale-while-revalidate=100",
        ] {
            let m = meta(&[("cache-control", cc)], t(0));
            assert_eq!(
                evaluate(&p, &m, &none, t(5)),
                Reuse::Revalidate {
                    stale_by: Duration::from_secs(4),
                    while_revalidating: false,
                    on_error: false
                },
                "{cc}"
            );
        }
    }

    #[test]
    fn no_cache_validates_every_time_and_requests_can_ask_for_more() {
        let p = Policy::default();
        let none = HeaderMap::new();
        let m = meta(&[("cache-control", "max-age=100, no-cache")], t(0));
        assert!(matches!(
            evaluate(&p, &m, &none, t(1)),
            Reuse::Revalidate { .. }
        ));
        let m = meta(&[("cache-control", "max-age=100")], t(0));
        let req = |cc: &str| headers(&[("cache-control", cc)]);
        assert!(matches!(
            evaluate(&p, &m, &req("no-cache"), t(1)),
            Reuse::Revalidate { .. }
        ));
        assert!(matches!(
            evaluate(&p, &m, &req("max-age=5"), t(10)),
            Reuse::Revalidate { .. }
        ));
        assert!(matches!(
            evaluate(&p, &m, &req("max-age=50"), t(10)),
            Reuse::Fresh { .. }
        ));
        assert!(matches!(
            evaluate(&p, &m, &req("min-fresh=95"), t(10)),
            Reuse::Revalidate { .. }
        ));
        assert_eq!(
            evaluate(&p, &m, &req("max-stale=60"), t(130)),
            Reuse::StaleAccepted {
                stale_by: Duration::from_secs(30)
            }
        );
        assert!(matches!(
            evaluate(&p, &m, &req("max-stale=10"), t(130)),
            Reuse::Revalidate { .. }
        ));
    }

    #[test]
    fn immutable_responses_survive_a_reload() {
        let p = Policy::default();
        let reload = headers(&[("cache-control", "no-cache"), ("pragma", "no-cache")]);
        let m = meta(&[("cache-control", "max-age=3600, immutable")], t(0));
        assert!(matches!(
            evaluate(&p, &m, &reload, t(10)),
            Reuse::Fresh { .. }
        ));
        let m = meta(&[("cache-control", "max-age=3600")], t(0));
        assert!(matches!(
            evaluate(&p, &m, &reload, t(10)),
            Reuse::Revalidate { .. }
        ));
        let m = meta(&[("cache-control", "max-age=5, immutable")], t(0));
        assert!(
            matches!(evaluate(&p, &m, &reload, t(10)), Reuse::Revalidate { .. }),
            "stale is stale"
        );
    }

    #[test]
    fn variants_are_keyed_by_normalized_vary_values() {
        let res = headers(&[
            ("vary", "Accept-Encoding"),
            ("vary", "accept-language, accept-encoding"),
        ]);
        let names = vary_names(&res).unwrap();
        assert_eq!(names.len(), 2);
        let a = variant_key(
            &names,
            &headers(&[("accept-encoding", "gzip, br"), ("accept-language", "en")]),
        );
        let b = variant_key(
            &names,
            &headers(&[("Accept-Encoding", "GZIP,br"), ("accept-language", "en")]),
        );
        let c = variant_key(
            &names,
            &headers(&[("accept-encoding", "identity"), ("accept-language", "en")]),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(variant_key(&[], &HeaderMap::new()), "");
    }

    #[test]
    fn conditionals() {
        let m = meta(&[("etag", "\"v1\""), ("last-modified", &date(t(0)))], t(10));
        let v = validators(&m);
        assert_eq!(v.get(IF_NONE_MATCH).unwrap(), "\"v1\"");
        assert!(v.contains_key(IF_MODIFIED_SINCE));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", W/\"v1\"")]),
            &m.headers
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"v2\"")]),
            &m.headers
        ));
        assert!(not_modified(
            &headers(&[("if-modified-since", &date(t(5)))]),
            &m.headers
        ));
        assert!(!not_modified(
            &headers(&[("if-modified-since", &date(t(0) - Duration::from_secs(5)))]),
            &m.headers
        ));

        let freshened = m.freshened(
            &headers(&[
                ("cache-control", "max-age=99"),
                ("etag", "\"v1\""),
                ("connection", "close"),
                ("date", &date(t(20))),
            ]),
            t(20),
            t(21),
        );
        let stored = freshened.headers();
        assert_eq!(stored.get("cache-control").unwrap(), "max-age=99");
        assert!(!stored.contains_key("connection"));
        // Its freshness is the 304's: 99 s from the validation, whose transit counts too.
        assert_eq!(
            evaluate(&Policy::default(), &freshened, &HeaderMap::new(), t(21)),
            Reuse::Fresh {
                ttl: Duration::from_secs(98)
            }
        );
    }

    #[test]
    fn unsafe_methods_invalidate_on_success() {
        assert!(invalidates(&Method::POST, StatusCode::OK));
        assert!(invalidates(&Method::DELETE, StatusCode::NO_CONTENT));
        assert!(!invalidates(
            &Method::POST,
            StatusCode::INTERNAL_SERVER_ERROR
        ));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
    }
}
