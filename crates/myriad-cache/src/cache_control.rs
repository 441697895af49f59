//! `Cache-Control` directives (RFC 9111 §5.2) and the RFC 5861 extensions, parsed leniently:
//! unknown directives are ignored, a malformed delta-seconds counts as zero (stale), which is
//! the safe reading for a cache. Targeted fields (RFC 9213: `CDN-Cache-Control`, ours) are
//! Structured Field Dictionaries, parsed strictly: one that does not parse is ignored.

use std::time::Duration;

use http::header::{HeaderMap, CACHE_CONTROL, PRAGMA};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<Duration>,
    pub s_maxage: Option<Duration>,
    pub no_store: bool,
    /// `no-cache`, with or without field names (a cache may not honour the field-name form
    /// partially, so it is treated as the plain directive).
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub immutable: bool,
    pub stale_while_revalidate: Option<Duration>,
    pub stale_if_error: Option<Duration>,
    /// Request only: `max-stale` without a value accepts any staleness.
    pub max_stale: Option<Option<Duration>>,
    pub min_fresh: Option<Duration>,
    pub only_if_cached: bool,
}

/// The targeted cache-control fields this cache obeys, the most specific first.
pub const TARGETED: [&str; 2] = ["myriad-cache-control", "cdn-cache-control"];

/// Longer values are clamped (RFC 9111 §1.2.2: 2^31 seconds is "infinity").
const DELTA_SECONDS_MAX: u64 = 1 << 31;

impl CacheControl {
    /// A response's directives for this cache: the first targeted field present that parses
    /// (RFC 9213: `Myriad-Cache-Control` for myriad's edges alone, then `CDN-Cache-Control`
    /// for any CDN), which then replaces `Cache-Control` for this cache (clients still get it
    /// as sent); else `Cache-Control`.
    pub fn for_this_cache(response: &HeaderMap) -> Self {
        for field in TARGETED {
            let mut values = response.get_all(field).iter();
            let Some(first) = values.next() else {
                continue;
            };
            // Field lines combine into one value (RFC 9651 §4.2); most responses have one.
            let parsed = match values.next() {
                None => Self::targeted(first.as_bytes()),
                Some(second) => {
                    let mut joined = first.as_bytes().to_vec();
                    for more in std::iter::once(second).chain(values) {
                        joined.extend_from_slice(b", ");
                        joined.extend_from_slice(more.as_bytes());
                    }
                    Self::targeted(&joined)
                }
            };
            // A field that is not a valid Dictionary is ignored, as if it were absent.
            if let Some(cc) = parsed {
                return cc;
            }
        }
        CacheControl::from_headers(response)
    }

    /// A targeted field's directives (RFC 9213 §2.1): delta-seconds are Integers, field-name
    /// lists Strings, the rest Booleans; a directive of another type is ignored. `None` when
    /// the field is no Dictionary.
    fn targeted(value: &[u8]) -> Option<Self> {
        let mut cc = CacheControl::default();
        let mut parser = sfparse::Parser::new(value);
        while let Some((key, value)) = parser.parse_dict().ok()? {
            let seconds = match value {
                sfparse::Value::Integer(n) if n >= 0 => {
                    Some(Duration::from_secs((n as u64).min(DELTA_SECONDS_MAX)))
                }
                _ => None,
            };
            let flag = matches!(value, sfparse::Value::Bool(true));
            // `no-cache="field"` and `private="field"` name fields: this cache treats them as
            // the plain directive.
            let flag_or_fields = flag || matches!(value, sfparse::Value::String { .. });
            match key {
                "max-age" => set_if_some(&mut cc.max_age, seconds),
                "s-maxage" => set_if_some(&mut cc.s_maxage, seconds),
                "stale-while-revalidate" => set_if_some(&mut cc.stale_while_revalidate, seconds),
                "stale-if-error" => set_if_some(&mut cc.stale_if_error, seconds),
                "no-store" => cc.no_store |= flag,
                "no-cache" => cc.no_cache |= flag_or_fields,
                "private" => cc.private |= flag_or_fields,
                "public" => cc.public |= flag,
                "must-revalidate" => cc.must_revalidate |= flag,
                "proxy-revalidate" => cc.proxy_revalidate |= flag,
                "immutable" => cc.immutable |= flag,
                _ => {}
            }
        }
        Some(cc)
    }

    /// All `Cache-Control` fields of a message, merged; `Pragma: no-cache` counts as
    /// `no-cache` when there is no `Cache-Control` (RFC 9111 §5.4).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        let mut any = false;
        for value in headers.get_all(CACHE_CONTROL) {
            any = true;
            if let Ok(text) = value.to_str() {
                cc.parse_into(text);
            } else {
                // Unreadable directives: the safe reading is "do not reuse".
                cc.no_cache = true;
            }
        }
        if !any
            && headers.get_all(PRAGMA).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|t| t.to_ascii_lowercase().contains("no-cache"))
            })
        {
            cc.no_cache = true;
        }
        cc
    }

    pub fn parse(text: &str) -> Self {
        let mut cc = CacheControl::default();
        cc.parse_into(text);
        cc
    }

    fn parse_into(&mut self, text: &str) {
        for item in split_directives(text) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (item.trim(), None),
            };
            let seconds = || value.map(delta_seconds);
            // Parsed on every cache hit: the name is lower-cased on the stack. Longer names
            // are no directive this cache knows.
            let mut lower = [0u8; 24];
            let Some(slot) = lower.get_mut(..name.len()) else {
                continue;
            };
            slot.copy_from_slice(name.as_bytes());
            slot.make_ascii_lowercase();
            match &*slot {
                b"max-age" => self.max_age = Some(seconds().unwrap_or(Duration::ZERO)),
                b"s-maxage" => self.s_maxage = Some(seconds().unwrap_or(Duration::ZERO)),
                b"no-store" => self.no_store = true,
                b"no-cache" => self.no_cache = true,
                b"private" => self.private = true,
                b"public" => self.public = true,
                b"must-revalidate" => self.must_revalidate = true,
                b"proxy-revalidate" => self.proxy_revalidate = true,
                b"immutable" => self.immutable = true,
                b"stale-while-revalidate" => self.stale_while_revalidate = seconds(),
                b"stale-if-error" => self.stale_if_error = seconds(),
                b"max-stale" => self.max_stale = Some(seconds()),
                b"min-fresh" => self.min_fresh = seconds(),
                b"only-if-cached" => self.only_if_cached = true,
                _ => {}
            }
        }
    }
}

/// A directive of the right type replaces what an earlier one of the same name said.
fn set_if_some(slot: &mut Option<Duration>, value: Option<Duration>) {
    if value.is_some() {
        *slot = value;
    }
}

/// Splits on commas outside quoted strings (`no-cache="a, b"` is one directive).
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        let mut quoted = false;
        for (i, b) in t.bytes().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&t[i + 1..]);
                    return Some(&t[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(t)
    })
    .filter(|p| !p.trim().is_empty())
}

fn delta_seconds(value: &str) -> Duration {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    // All digits: only overflow can fail, and that is "infinity".
    let secs = value.parse::<u64>().unwrap_or(DELTA_SECONDS_MAX);
    Duration::from_secs(secs.min(DELTA_SECONDS_MAX))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_targeted_field_replaces_cache_control_for_this_cache() {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert!(
            CacheControl::for_this_cache(&h).no_store,
            "no targeted field"
        );
        h.insert("cdn-cache-control", HeaderValue::from_static("max-age=60"));
        let cdn = CacheControl::for_this_cache(&h);
        assert!(!cdn.no_store);
        assert_eq!(cdn.max_age, Some(Duration::from_secs(60)));
        h.insert(
            "myriad-cache-control",
            HeaderValue::from_static("max-age=5, stale-while-revalidate=10"),
        );
        let ours = CacheControl::for_this_cache(&h);
        assert_eq!(ours.max_age, Some(Duration::from_secs(5)), "ours first");
        assert_eq!(ours.stale_while_revalidate, Some(Duration::from_secs(10)));
        assert!(
            CacheControl::from_headers(&h).no_store,
            "clients still read Cache-Control"
        );
    }

    #[test]
    fn a_targeted_field_is_a_structured_dictionary_or_ignored() {
        let with = |cdn: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("cdn-cache-control", HeaderValue::from_static(cdn));
            CacheControl::for_this_cache(&h)
        };
        // Not a Dictionary (RFC 9651): ignored, Cache-Control rules.
        for bad in [
            "max-age =100",
            "max-age= 100",
            "max-age=10000, &&&&&",
            "MaX-aGe=3600",
        ] {
            assert!(with(bad).no_store, "{bad:?} is ignored");
        }
        // A directive of the wrong type is ignored, the field still replaces Cache-Control.
        let wrong = with("max-age=\"10000\"");
        assert!(!wrong.no_store);
        assert_eq!(wrong.max_age, None);
        let ok = with("foobar, max-age=3600;x=1, s-maxage=-5, no-cache=\"set-cookie\"");
        assert_eq!(
            ok.max_age,
            Some(Duration::from_secs(3600)),
            "extensions skipped"
        );
        assert_eq!(ok.s_maxage, None, "a negative delta is no delta");
        assert!(ok.no_cache && !ok.no_store);
        let huge = with("max-age=999999999999");
        assert_eq!(huge.max_age, Some(Duration::from_secs(DELTA_SECONDS_MAX)));
        // Two field lines are one Dictionary.
        let mut h = HeaderMap::new();
        h.append("cdn-cache-control", HeaderValue::from_static("max-age=60"));
        h.append("cdn-cache-control", HeaderValue::from_static("private"));
        let both = CacheControl::for_this_cache(&h);
        assert!(both.private && both.max_age == Some(Duration::from_secs(60)));
    }

    #[test]
    fn parses_response_directives() {
        let cc = CacheControl::parse(
            "public, max-age=60, S-MAXAGE=\"120\", must-revalidate, stale-while-revalidate=30, stale-if-error=600, immutable",
        );
        assert!(cc.public && cc.must_revalidate && cc.immutable);
        assert_eq!(cc.max_age, Some(Duration::from_secs(60)));
        assert_eq!(cc.s_maxage, Some(Duration::from_secs(120)));
        assert_eq!(cc.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(cc.stale_if_error, Some(Duration::from_secs(600)));
    }

    #[test]
    fn quoted_commas_do_not_split_and_field_name_forms_count() {
        let cc = CacheControl::parse("no-cache=\"set-cookie, x-a\", private=\"x\", max-age=5");
        assert!(cc.no_cache && cc.private);
        assert_eq!(cc.max_age, Some(Duration::from_secs(5)));
    }

    #[test]
    fn malformed_and_huge_values_are_safe() {
        assert_eq!(
            CacheControl::parse("max-age=abc").max_age,
            Some(Duration::ZERO)
        );
        assert_eq!(
            CacheControl::parse("max-age=-5").max_age,
            Some(Duration::ZERO)
        );
        assert_eq!(CacheControl::parse("max-age").max_age, Some(Duration::ZERO));
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999").max_age,
            Some(Duration::from_secs(DELTA_SECONDS_MAX))
        );
        assert_eq!(CacheControl::parse(",,, ,"), CacheControl::default());
    }

    #[test]
    fn request_directives() {
        let cc = CacheControl::parse("max-stale, min-fresh=10, only-if-cached");
        assert_eq!(cc.max_stale, Some(None));
        assert_eq!(cc.min_fresh, Some(Duration::from_secs(10)));
        assert!(cc.only_if_cached);
        assert_eq!(
            CacheControl::parse("max-stale=7").max_stale,
            Some(Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn merges_fields_and_honours_pragma_only_alone() {
        let mut h = HeaderMap::new();
        h.append(CACHE_CONTROL, HeaderValue::from_static("max-age=10"));
        h.append(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let cc = CacheControl::from_headers(&h);
        assert!(cc.no_store);
        assert_eq!(cc.max_age, Some(Duration::from_secs(10)));

        let mut p = HeaderMap::new();
        p.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(CacheControl::from_headers(&p).no_cache);
        p.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::from_headers(&p).no_cache);
    }
}
