//! Single byte ranges served from a stored object (RFC 9110 §14). Several ranges in one request
//! are answered with the whole object, which RFC 9110 allows.

use http::header::{HeaderMap, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: the whole object, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// What to send for `request` given an object of `len` bytes with `response` headers.
pub fn select(request: &HeaderMap, response: &HeaderMap, len: u64) -> RangeRequest {
    let Some(range) = request.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Full;
    };
    if let Some(if_range) = request.get(IF_RANGE) {
        // The range applies only to the representation the client already has.
        let matches = [ETAG, LAST_MODIFIED].iter().any(|h| {
            response
                .get(h)
                .is_some_and(|v| v == if_range && !v.as_bytes().starts_with(b"W/"))
        });
        if !matches {
            return RangeRequest::Full;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                // Syntactically invalid (last < first): ignore the header.
                return RangeRequest::Full;
            }
            RangeRequest::Partial { start, end }
        }
        _ => RangeRequest::Full,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn req(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(range).unwrap());
        h
    }

    #[test]
    fn byte_ranges() {
        let none = HeaderMap::new();
        let p = |start, end| RangeRequest::Partial { start, end };
        assert_eq!(select(&req("bytes=0-99"), &none, 1000), p(0, 99));
        assert_eq!(select(&req("bytes=900-"), &none, 1000), p(900, 999));
        assert_eq!(select(&req("bytes=900-5000"), &none, 1000), p(900, 999));
        assert_eq!(select(&req("bytes=-100"), &none, 1000), p(900, 999));
        assert_eq!(select(&req("bytes=-5000"), &none, 1000), p(0, 999));
        assert_eq!(
            select(&req("bytes=1000-"), &none, 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            select(&req("bytes=-0"), &none, 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(select(&req("bytes=5-1"), &none, 1000), RangeRequest::Full);
        assert_eq!(
            select(&req("bytes=0-1,5-9"), &none, 1000),
            RangeRequest::Full
        );
        assert_eq!(select(&req("items=0-1"), &none, 1000), RangeRequest::Full);
        assert_eq!(select(&req("bytes=x-y"), &none, 1000), RangeRequest::Full);
        assert_eq!(select(&none, &none, 1000), RangeRequest::Full);
    }

    #[test]
    fn if_range_needs_a_matching_strong_validator() {
        let mut res = HeaderMap::new();
        res.insert(ETAG, HeaderValue::from_static("\"v2\""));
        let mut r = req("bytes=0-9");
        r.insert(IF_RANGE, HeaderValue::from_static("\"v1\""));
        assert_eq!(select(&r, &res, 100), RangeRequest::Full);
        r.insert(IF_RANGE, HeaderValue::from_static("\"v2\""));
        assert_eq!(
            select(&r, &res, 100),
            RangeRequest::Partial { start: 0, end: 9 }
        );
    }
}
