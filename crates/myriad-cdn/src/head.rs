//! The header fields of a response as this edge sends it: the stored fields with this hop's
//! `Via`, `Accept-Ranges` where ranges can be served, and the two fields that change with
//! the response's age, `Age` and `Cache-Status`. A stored response keeps one
//! [`ResponseHead`]: a hit clones the fields rendered for the same second (a hot object's
//! usual case), else fills the two slots of a template in place.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT_RANGES, AGE, VIA};
use myriad_cache::CacheStatus;

pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

pub struct ResponseHead {
    /// With every field this hop sends; `Age` and `Cache-Status` hold placeholders.
    fields: HeaderMap,
    /// The `Cache-Status` members of the caches nearer the origin.
    upstream_status: Option<HeaderValue>,
    last: ArcSwapOption<Rendered>,
}

/// Fields rendered for an age and a cache status.
struct Rendered {
    age: u64,
    status: CacheStatus,
    fields: HeaderMap,
}

impl ResponseHead {
    /// `stored`: the response's fields as stored; `ranges`: whether its body can be served
    /// in ranges (a 200 of known length).
    pub fn new(stored: &HeaderMap, via: &HeaderValue, ranges: bool) -> Self {
        Self::from_fields(stored.clone(), via, ranges)
    }

    /// [`ResponseHead::new`] from fields of its own.
    pub fn from_fields(mut fields: HeaderMap, via: &HeaderValue, ranges: bool) -> Self {
        let upstream_status = fields.get(CACHE_STATUS).cloned();
        fields.append(VIA, via.clone());
        if ranges {
            fields.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        fields.insert(AGE, HeaderValue::from_static("0"));
        fields.insert(CACHE_STATUS, HeaderValue::from_static(""));
        // Filling a slot must not grow the map (`HeaderMap` grows when full even to replace).
        fields.reserve(1);
        Self {
            fields,
            upstream_status,
            last: ArcSwapOption::empty(),
        }
    }

    /// The fields of one response: `age` seconds old, with this cache's member `name` (the
    /// same for every call).
    pub fn render(&self, age: u64, name: &str, status: &CacheStatus) -> HeaderMap {
        if let Some(last) = &*self.last.load() {
            if last.age == age && last.status == *status {
                return last.fields.clone();
            }
        }
        let mut fields = self.fields.clone();
        self.fill_slots(&mut fields, age, name, status);
        self.last.store(Some(Arc::new(Rendered {
            age,
            status: status.clone(),
            fields: fields.clone(),
        })));
        fields
    }

    /// [`ResponseHead::render`] for a head used once (a response streamed from a fetch):
    /// its fields themselves, nothing kept for reuse.
    pub fn into_rendered(mut self, age: u64, name: &str, status: &CacheStatus) -> HeaderMap {
        let mut fields = std::mem::take(&mut self.fields);
        self.fill_slots(&mut fields, age, name, status);
        fields
    }

    /// Puts `Age` and this cache's `Cache-Status` member in their slots.
    fn fill_slots(&self, fields: &mut HeaderMap, age: u64, name: &str, status: &CacheStatus) {
        let age = HeaderValue::from_str(itoa::Buffer::new().format(age));
        fields.insert(AGE, age.unwrap_or_else(|_| HeaderValue::from_static("0")));
        // The members of caches nearer the origin come first (RFC 9211 §2).
        let mut value = String::with_capacity(64);
        if let Some(previous) = self.upstream_status.as_ref().and_then(|v| v.to_str().ok()) {
            value.push_str(previous);
            value.push_str(", ");
        }
        status.write_member(name, &mut value);
        let value = HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""));
        fields.insert(CACHE_STATUS, value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stored(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn renders_the_stored_fields_with_this_hops_fields() {
        let head = ResponseHead::new(
            &stored(&[
                ("content-type", "text/plain"),
                ("via", "1.1 shield"),
                ("cache-status", "shield; hit"),
                ("set-later", "a"),
                ("set-later", "b"),
            ]),
            &HeaderValue::from_static("1.1 edge"),
            true,
        );
        let fields = head.render(42, "edge", &CacheStatus::hit(Duration::from_secs(8)));
        assert_eq!(fields["content-type"], "text/plain");
        let via: Vec<_> = fields.get_all(VIA).iter().collect();
        assert_eq!(via, ["1.1 shield", "1.1 edge"]);
        assert_eq!(fields[AGE], "42");
        assert_eq!(fields[CACHE_STATUS], "shield; hit, edge; hit; ttl=8");
        assert_eq!(fields[ACCEPT_RANGES], "bytes");
        assert_eq!(fields.get_all("set-later").iter().count(), 2);
        assert_eq!(fields.len(), 8);
    }

    #[test]
    fn fields_follow_the_age_and_the_status() {
        let head = ResponseHead::new(&HeaderMap::new(), &HeaderValue::from_static("1.1 e"), true);
        let fresh = |ttl| CacheStatus::hit(Duration::from_secs(ttl));
        let render = |age, status: &CacheStatus| head.render(age, "e", status);
        assert_eq!(render(1, &fresh(9))[AGE], "1");
        assert_eq!(render(1, &fresh(9))[CACHE_STATUS], "e; hit; ttl=9");
        assert_eq!(render(2, &fresh(8))[AGE], "2");
        assert_eq!(render(2, &fresh(8))[CACHE_STATUS], "e; hit; ttl=8");
        let stale = CacheStatus::stale_hit(Duration::from_secs(1), "max-stale");
        assert_eq!(
            render(2, &stale)[CACHE_STATUS],
            "e; hit; ttl=-1; detail=max-stale"
        );
        assert_eq!(render(2, &fresh(8))[CACHE_STATUS], "e; hit; ttl=8");
    }

    #[test]
    fn no_ranges_no_upstream_members() {
        let head = ResponseHead::new(&HeaderMap::new(), &HeaderValue::from_static("1.1 e"), false);
        let fields = head.render(0, "e", &CacheStatus::hit(Duration::from_secs(1)));
        assert!(!fields.contains_key(ACCEPT_RANGES));
        assert_eq!(fields[AGE], "0");
        assert_eq!(fields[CACHE_STATUS], "e; hit; ttl=1");
    }

    #[test]
    fn filling_the_slots_never_grows_the_map() {
        // Whatever the number of stored fields, the rendered map keeps the template's size.
        for n in 0..40 {
            let pairs: Vec<(String, String)> =
                (0..n).map(|i| (format!("x-f{i}"), i.to_string())).collect();
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let head = ResponseHead::new(&stored(&refs), &HeaderValue::from_static("v"), true);
            let fields = head.render(7, "e", &CacheStatus::hit(Duration::from_secs(1)));
            assert_eq!(fields.capacity(), head.fields.capacity(), "{n} fields");
        }
    }
}
