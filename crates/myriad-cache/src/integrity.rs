//! Body integrity (RFC 9530): when a response carries `Content-Digest`, the body is hashed as
//! it passes and must match before it is stored or completed.

use aws_lc_rs::digest;
use base64::Engine;
use http::header::HeaderMap;

/// Checks a body against the strongest digest its response declares that we support.
pub struct DigestCheck {
    context: digest::Context,
    expected: Vec<u8>,
    pub algorithm: &'static str,
}

impl DigestCheck {
    /// `None` when the response declares no supported digest.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Self::from_fields(
            headers
                .get_all("content-digest")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }

    /// From a `Content-Digest` value written elsewhere (an operator's configuration).
    pub fn from_field(value: &str) -> Option<Self> {
        Self::from_fields(std::iter::once(value))
    }

    fn from_fields<'a>(values: impl Iterator<Item = &'a str>) -> Option<Self> {
        let mut found: Option<(&'static str, Vec<u8>)> = None;
        for value in values {
            for member in value.split(',') {
                let Some((name, bytes)) = member.trim().split_once('=') else {
                    continue;
                };
                let name = match name.trim().to_ascii_lowercase().as_str() {
                    "sha-512" => "sha-512",
                    "sha-256" => "sha-256",
                    _ => continue,
                };
                // A byte sequence: `:base64:`.
                let Some(b64) = bytes
                    .trim()
                    .strip_prefix(':')
                    .and_then(|b| b.strip_suffix(':'))
                else {
                    continue;
                };
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                    continue;
                };
                if found
                    .as_ref()
                    .is_none_or(|(n, _)| *n == "sha-256" && name == "sha-512")
                {
                    found = Some((name, decoded));
                }
            }
        }
        let (algorithm, expected) = found?;
        let alg = if algorithm == "sha-512" {
            &digest::SHA512
        } else {
            &digest::SHA256
        };
        Some(Self {
            context: digest::Context::new(alg),
            expected,
            algorithm,
        })
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.context.update(chunk);
    }

    pub fn matches(self) -> bool {
        self.context.finish().as_ref() == self.expected.as_slice()
    }
}

/// The `Content-Digest` value of `body` with SHA-256.
pub fn sha256_field(body: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn check(field: &str, body: &[u8]) -> Option<bool> {
        let mut h = HeaderMap::new();
        h.insert("content-digest", HeaderValue::from_str(field).unwrap());
        let mut c = DigestCheck::from_headers(&h)?;
        for part in body.chunks(3) {
            c.update(part);
        }
        Some(c.matches())
    }

    #[test]
    fn verifies_sha256_in_pieces() {
        let body = b"hello, integrity";
        assert_eq!(check(&sha256_field(body), body), Some(true));
        assert_eq!(check(&sha256_field(body), b"hello, integritY"), Some(false));
        // The RFC 9530 example: {"hello": "world"}\n
        assert_eq!(
            check(
                "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
                b"{\"hello\": \"world\"}"
            ),
            Some(true)
        );
    }

    #[test]
    fn unknown_or_malformed_digests_are_not_checked() {
        assert_eq!(check("md5=:AAAA:", b"x"), None);
        assert_eq!(check("sha-256=notbase64", b"x"), None);
        assert_eq!(check("sha-256=:!!:", b"x"), None);
    }
}
