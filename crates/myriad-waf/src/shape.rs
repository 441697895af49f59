//! What a bodiless request is made of: the bytes of each part the rules read it from.

use super::alphabet::Alphabet;
use super::Inspected;

/// Where a rule target's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request line and what ModSecurity derives from it whole: `REQUEST_LINE`,
    /// `REQUEST_URI`, `QUERY_STRING`, `REQUEST_FILENAME`, the method, the protocol.
    Line,
    /// The query's arguments, names and values, URL-decoded (and, without a body, the
    /// body's variables, which are empty).
    Args,
    /// The `Cookie` fields' text: `REQUEST_COOKIES` and their names.
    Cookies,
    /// Every field's name and value: `REQUEST_HEADERS`, `REQUEST_HEADERS_NAMES`.
    Fields,
}

const SOURCES: usize = 4;

impl Source {
    /// The source of a variable's values, if they are request text.
    pub fn of_variable(name: &str) -> Option<Self> {
        Some(match name {
            "REQUEST_LINE" | "REQUEST_URI" | "REQUEST_URI_RAW" | "QUERY_STRING"
            | "REQUEST_FILENAME" | "REQUEST_BASENAME" | "REQUEST_METHOD" | "REQUEST_PROTOCOL" => {
                Self::Line
            }
            "ARGS" | "ARGS_GET" | "ARGS_NAMES" | "ARGS_GET_NAMES" | "ARGS_POST"
            | "ARGS_POST_NAMES" | "REQUEST_BODY" | "XML" | "FILES" | "FILES_NAMES" => Self::Args,
            "REQUEST_COOKIES" | "REQUEST_COOKIES_NAMES" => Self::Cookies,
            "REQUEST_HEADERS" | "REQUEST_HEADERS_NAMES" => Self::Fields,
            _ => return None,
        })
    }
}

/// An alphabet per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape([Alphabet; SOURCES]);

impl Shape {
    pub const ANY: Self = Self([Alphabet::ALL; SOURCES]);

    pub const fn new(line: Alphabet, args: Alphabet, cookies: Alphabet, fields: Alphabet) -> Self {
        Self([line, args, cookies, fields])
    }

    pub fn get(&self, source: Source) -> Alphabet {
        self.0[source as usize]
    }

    /// Whether each of this shape's alphabets is within `other`'s.
    pub fn within(&self, other: &Self) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a.is_subset_of(b))
    }

    /// What the rules see of a bodiless request, by source. Parts with a `%` add their
    /// URL-decoded bytes (ModSecurity decodes arguments and the file name).
    pub fn of(request: &Inspected<'_>) -> Self {
        let mut line = Alphabet::of(b"HTTP/ ");
        for part in [request.method, request.target, request.version] {
            line.add(part.as_bytes());
        }
        let mut args = Alphabet::EMPTY;
        if let Some((path, query)) = request.target.split_once('?') {
            add_decoded(&mut line, path.as_bytes());
            // ModSecurity splits on `&` (the CRS sets no other separator; `classes` checks).
            for arg in query.split('&') {
                add_decoded(&mut args, arg.as_bytes());
            }
        } else {
            add_decoded(&mut line, request.target.as_bytes());
        }
        let mut cookies = Alphabet::EMPTY;
        let mut fields = Alphabet::EMPTY;
        for (name, value) in request.headers {
            fields.add(name.as_str().as_bytes());
            add_decoded(&mut fields, value.as_bytes());
            if name == http::header::COOKIE {
                add_decoded(&mut cookies, value.as_bytes());
            }
        }
        Self::new(line, args, cookies, fields)
    }
}

/// `text`'s bytes, and with a `%` in it also those of its URL-decoding (`+` as a space).
fn add_decoded(set: &mut Alphabet, text: &[u8]) {
    set.add(text);
    if text.contains(&b'+') {
        set.insert(b' ');
    }
    if text.contains(&b'%') {
        for b in percent_encoding::percent_decode(text) {
            set.insert(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn a_request_by_source() {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "Mozilla/5.0 (X11)".parse().unwrap());
        headers.insert("cookie", "a=1; b=x".parse().unwrap());
        let request = Inspected::get("/p%3Ca?q=a+b&r=%27", &headers);
        let shape = Shape::of(&request);
        let line = shape.get(Source::Line);
        assert!(line.covers(b"GET /p%3Ca?q=a+b&r=%27 HTTP/1.1") && line.contains(b'<'));
        let args = shape.get(Source::Args);
        assert!(args.covers(b"qa b=r'") && !args.contains(b'&') && !args.contains(b'<'));
        assert_eq!(shape.get(Source::Cookies), Alphabet::of(b"a=1; b=x"));
        let fields = shape.get(Source::Fields);
        assert!(fields.covers(b"user-agent cookie Mozilla/5.0 (X11)") && !fields.contains(b'<'));
        assert!(shape.within(&Shape::ANY) && !Shape::ANY.within(&shape));
        assert_eq!(Source::of_variable("ARGS_NAMES"), Some(Source::Args));
        assert_eq!(Source::of_variable("TX"), None);
    }
}
