//! A request target's query as libmodsecurity 3.0.9 reads it (`Transaction::processURI`,
//! `extractArguments`), for targets it reads exactly as written.
//!
//! It splits the query at `&` (`getline`: no empty last piece), each piece at its first
//! `=`, and URL-decodes names and values leniently; `REQUEST_URI` is the decoded target
//! without its fragment (scheme and host cut from an absolute form), `REQUEST_URI_RAW` the
//! target, `QUERY_STRING` the raw query after the fragment is cut, `REQUEST_LINE` the method,
//! target and `HTTP/` version. A target in origin form without `%`, `+` or `#` makes all of
//! these its own text, so the edge can ask the rules about them exactly.

/// A target whose query libmodsecurity reads as written.
pub struct Query<'a> {
    pub path: &'a str,
    /// After the `?`.
    pub query: &'a str,
}

impl<'a> Query<'a> {
    /// `target` split at its first `?`, if it has one and libmodsecurity reads it as
    /// written: origin form, printable ASCII, nothing to decode, no fragment.
    pub fn of(target: &'a str) -> Option<Self> {
        let plain = target.starts_with('/')
            && target
                .bytes()
                .all(|b| (b'!'..=b'~').contains(&b) && !matches!(b, b'%' | b'+' | b'#'));
        let (path, query) = target.split_once('?')?;
        plain.then_some(Self { path, query })
    }

    /// The query's pieces between `&`s, as written (an empty last one included, which
    /// libmodsecurity skips: it holds no value).
    pub fn pieces(&self) -> impl Iterator<Item = &'a str> {
        self.query.split('&')
    }
}

/// A value whose text no decoding changes and that holds nothing a parser splits at:
/// RFC 3986's unreserved characters.
pub fn is_plain_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The strings libmodsecurity derives from a request line whose target is a `Query`'s.
pub struct Url<'a> {
    /// `REQUEST_LINE`.
    pub line: String,
    /// `REQUEST_URI` and `REQUEST_URI_RAW`.
    pub target: &'a str,
    /// `QUERY_STRING`.
    pub query: &'a str,
}

impl<'a> Url<'a> {
    pub fn new(method: &str, target: &'a str, version: &str, query: &Query<'a>) -> Self {
        Self {
            line: format!("{method} {target} HTTP/{version}"),
            target,
            query: query.query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_written() {
        let q = Query::of("/items?page=2&sort=price&&x").expect("plain");
        assert_eq!(q.path, "/items");
        assert_eq!(
            q.pieces().collect::<Vec<_>>(),
            ["page=2", "sort=price", "", "x"]
        );
        for other in [
            "/items",
            "/items?q=a%20b",
            "/items?q=a+b",
            "/items?q=a#top",
            "http://site.test/items?q=a",
            "/items?q=a b",
            "/items?q=caf\u{e9}",
        ] {
            assert!(Query::of(other).is_none(), "{other}");
        }
        assert!(is_plain_value("a-Z_0.9~"));
        for v in ["", "a=b", "a/b", "a'", "a;b", "a,b"] {
            assert!(!is_plain_value(v), "{v}");
        }
        let url = Url::new(
            "GET",
            "/items?page=2",
            "1.1",
            &Query::of("/items?page=2").unwrap(),
        );
        assert_eq!(url.line, "GET /items?page=2 HTTP/1.1");
        assert_eq!((url.target, url.query), ("/items?page=2", "page=2"));
    }
}
