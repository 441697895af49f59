//! A request target's query as libmodsecurity 3.0.9 reads it (`Transaction::processURI`,
//! `extractArguments`, `utils/decode.cc`), for targets whose reading is certain.
//!
//! It splits the query at `&` (`getline`: no empty last piece), each piece at its first
//! `=`, and decodes names and values with `urldecode_nonstrict` (`%HH` and `+`); an
//! invalid escape is kept as written and sets `URLENCODED_ERROR`. `REQUEST_URI` is the
//! target without its fragment, `%HH` decoded (`uri_decode`: `+` kept; scheme and host cut
//! from an absolute form), `REQUEST_URI_RAW` the target, `QUERY_STRING` the raw query after
//! the fragment is cut, `REQUEST_LINE` the method, target and `HTTP/` version. A target in
//! origin form, of printable ASCII, without `#` and whose every `%` starts a valid escape
//! makes all of these certain here.

/// A target whose query libmodsecurity's reading is certain.
pub struct Query<'a> {
    pub path: &'a str,
    /// After the `?`.
    pub query: &'a str,
}

impl<'a> Query<'a> {
    /// `target` split at its first `?`, if it has one and libmodsecurity's reading of it
    /// is certain: origin form, printable ASCII, no fragment, no invalid escape.
    pub fn of(target: &'a str) -> Option<Self> {
        // Most targets (a page's assets) have no query: nothing to read.
        let (path, query) = target.split_once('?')?;
        let b = target.as_bytes();
        let escapes_valid = b.iter().enumerate().all(|(i, &c)| {
            c != b'%'
                || b.get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        });
        let certain = target.starts_with('/')
            && b.iter().all(|&c| (b'!'..=b'~').contains(&c) && c != b'#')
            && escapes_valid;
        certain.then_some(Self { path, query })
    }

    /// The query's pieces between `&`s, as written (an empty last one included, which
    /// libmodsecurity skips: it holds no argument).
    pub fn pieces(&self) -> impl Iterator<Item = &'a str> {
        self.query.split('&')
    }
}

/// An argument's name or value as libmodsecurity decodes it (`urldecode_nonstrict`; the
/// escapes are valid in a `Query`).
pub fn arg_decoded(text: &str) -> Vec<u8> {
    decoded(text.as_bytes(), true)
}

/// `%HH` decoded, and `+` made a space if `plus`.
fn decoded(text: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        // Two hex digits (`from_str_radix` alone would take a sign).
        let hex = text
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (text[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) if plus => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `REQUEST_LINE`: method, target and `HTTP/` version.
pub fn request_line(method: &str, target: &str, version: &str) -> String {
    format!("{method} {target} HTTP/{version}")
}

/// The strings libmodsecurity derives from a request line whose target is a `Query`'s.
pub struct Url<'a> {
    /// `REQUEST_LINE`.
    pub line: String,
    /// `REQUEST_URI`.
    pub uri: Vec<u8>,
    /// `REQUEST_URI_RAW`.
    pub raw: &'a str,
    /// `QUERY_STRING`.
    pub query: &'a str,
}

impl<'a> Url<'a> {
    pub fn new(method: &str, target: &'a str, version: &str, query: &Query<'a>) -> Self {
        Self {
            line: request_line(method, target, version),
            uri: decoded(target.as_bytes(), false),
            raw: target,
            query: query.query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_with_certainty() {
        let q = Query::of("/items?page=2&sort=price&&x").expect("certain");
        assert_eq!(q.path, "/items");
        assert_eq!(
            q.pieces().collect::<Vec<_>>(),
            ["page=2", "sort=price", "", "x"]
        );
        assert!(Query::of("/search?q=caf%C3%A9+au+lait&x=%3c").is_some());
        for other in [
            "/items",
            "/items?q=100%",
            "/items?q=%zz",
            "/items?q=a#top",
            "http://site.test/items?q=a",
            "/items?q=a b",
            "/items?q=caf\u{e9}",
        ] {
            assert!(Query::of(other).is_none(), "{other}");
        }
        assert_eq!(
            arg_decoded("caf%C3%A9+au%2Blait"),
            "café au+lait".as_bytes()
        );
        assert_eq!(
            arg_decoded("%+1%4"),
            b"% 1%4",
            "invalid escapes kept, as libmodsecurity keeps them"
        );
        let target = "/a%2Fb?q=x+y%21";
        let url = Url::new("GET", target, "1.1", &Query::of(target).unwrap());
        assert_eq!(url.line, "GET /a%2Fb?q=x+y%21 HTTP/1.1");
        assert_eq!(url.uri, b"/a/b?q=x+y!", "`+` kept in REQUEST_URI");
        assert_eq!((url.raw, url.query), (target, "q=x+y%21"));
    }
}
