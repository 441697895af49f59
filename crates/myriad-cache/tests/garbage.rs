//! Every parser of the cache core against random and hostile input: answers, never panics.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use myriad_cache::integrity::DigestCheck;
use myriad_cache::policy::{self, Policy, StoredMeta};
use myriad_cache::signed::UrlSigner;
use myriad_cache::{key, range, CacheControl};
use myriad_seeded::SeededRng;

/// A field value: mostly the characters these grammars care about.
fn value(rng: &mut SeededRng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789=,;:\"' -*/?&abcdefghimnoprstuvwxyzABCDEFW\t\x80\xff";
    let len = rng.below(40) as usize;
    rng.text(ALPHABET, len)
}

const FIELDS: [&str; 12] = [
    "cache-control",
    "pragma",
    "expires",
    "date",
    "last-modified",
    "age",
    "vary",
    "etag",
    "range",
    "if-range",
    "if-none-match",
    "content-digest",
];

fn headers(rng: &mut SeededRng) -> HeaderMap {
    let mut h = HeaderMap::new();
    for _ in 0..rng.below(8) {
        let name = FIELDS[rng.below(FIELDS.len() as u64) as usize];
        if let Ok(v) = HeaderValue::from_bytes(&value(rng)) {
            h.append(HeaderName::from_static(name), v);
        }
    }
    h
}

#[test]
fn random_fields_never_panic() {
    let mut rng = SeededRng::new(0x5eed_cafe);
    let policy = Policy::default();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for _ in 0..20_000 {
        let req = headers(&mut rng);
        let res = headers(&mut rng);
        let status = StatusCode::from_u16(100 + rng.below(500) as u16).unwrap_or(StatusCode::OK);
        let _ = CacheControl::from_headers(&res);
        let _ = policy::storable(&Method::GET, &req, status, &res);
        let _ = policy::freshness_lifetime(&policy, status, &res);
        let meta = StoredMeta::new(
            status,
            res.clone(),
            now,
            now + Duration::from_secs(rng.below(10)),
        );
        let _ = policy::current_age(&meta, now);
        let later = now + Duration::from_secs(rng.below(100_000));
        let _ = policy::evaluate(&policy, &meta, &req, later);
        if let Some(names) = policy::vary_names(&res) {
            let _ = policy::variant_key(&names, &req);
        }
        let _ = policy::not_modified(&req, &res);
        let _ = range::select(&req, &res, rng.below(1_000_000));
        let _ = range::select(&req, &res, 0);
        let _ = key::tags(&res);
        if let Some(mut d) = DigestCheck::from_headers(&res) {
            d.update(b"body");
            let _ = d.matches();
        }
    }
}

#[test]
fn extreme_numbers_saturate() {
    let policy = Policy::default();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut res = HeaderMap::new();
    res.insert("age", HeaderValue::from_static("18446744073709551615"));
    res.insert(
        "cache-control",
        HeaderValue::from_static("max-age=18446744073709551615"),
    );
    res.insert(
        "date",
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    let mut req = HeaderMap::new();
    req.insert(
        "cache-control",
        HeaderValue::from_static("min-fresh=18446744073709551615, max-stale=18446744073709551615"),
    );
    let meta = StoredMeta::new(StatusCode::OK, res, now, now);
    let _ = policy::current_age(&meta, UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 4));
    let _ = policy::evaluate(&policy, &meta, &req, now);
}

#[test]
fn hostile_urls_never_panic() {
    let mut rng = SeededRng::new(0x0bad_0dd0);
    let signer = UrlSigner::new(b"k");
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let now = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    for _ in 0..20_000 {
        let raw = String::from_utf8_lossy(&value(&mut rng)).into_owned();
        for candidate in [
            raw.clone(),
            format!("/p?{raw}"),
            format!("/p?expires={raw}&sig={raw}"),
            format!("/p?x=1&sig={raw}"),
            format!("http://{raw}/x"),
        ] {
            let _ = signer.verify(&candidate, ip, now);
            let _ = key::purge_target(&candidate);
        }
    }
}
