//! Signed URLs for protected content: `…?expires=UNIX[&ip=1]&sig=HEX`, where `sig` is the
//! HMAC-SHA256 of the path and the query before it (and, with `ip=1`, the client's address).
//! The authentication parameters are stripped before the cache key and the upstream request,
//! so every signed variant of an object shares one cached copy.

use std::net::IpAddr;

use aws_lc_rs::hmac;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the URL is not signed")]
    Missing,
    #[error("the signed URL has expired")]
    Expired,
    #[error("the signature does not match")]
    BadSignature,
    #[error("malformed signature parameters")]
    Malformed,
}

pub struct UrlSigner {
    key: hmac::Key,
}

impl UrlSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Signs `path_and_query` (without authentication parameters) until `expires_unix`,
    /// optionally for one client address.
    pub fn sign(&self, path_and_query: &str, expires_unix: u64, ip: Option<IpAddr>) -> String {
        let sep = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut url = format!("{path_and_query}{sep}expires={expires_unix}");
        if ip.is_some() {
            url.push_str("&ip=1");
        }
        let tag = hmac::sign(&self.key, message(&url, ip).as_bytes());
        url.push_str("&sig=");
        url.push_str(&hex(tag.as_ref()));
        url
    }

    /// Checks a request target; returns it without the authentication parameters.
    pub fn verify(
        &self,
        path_and_query: &str,
        client: IpAddr,
        now_unix: u64,
    ) -> Result<String, SignError> {
        let (signed, sig) = path_and_query
            .rsplit_once("&sig=")
            .ok_or(SignError::Missing)?;
        let (path, query) = signed.split_once('?').ok_or(SignError::Malformed)?;
        let mut expires = None;
        let mut bound = false;
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => {
                    expires = Some(v.parse::<u64>().map_err(|_| SignError::Malformed)?)
                }
                Some(("ip", "1")) => bound = true,
                _ => kept.push(pair),
            }
        }
        let expires = expires.ok_or(SignError::Malformed)?;
        let tag = unhex(sig).ok_or(SignError::Malformed)?;
        let ip = bound.then_some(client);
        hmac::verify(&self.key, message(signed, ip).as_bytes(), &tag)
            .map_err(|_| SignError::BadSignature)?;
        if now_unix > expires {
            return Err(SignError::Expired);
        }
        Ok(if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        })
    }
}

fn message(signed_part: &str, ip: Option<IpAddr>) -> String {
    match ip {
        Some(ip) => format!("{signed_part}|{ip}"),
        None => signed_part.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let s = UrlSigner::new(b"secret");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let url = s.sign("/private/a.mp4?q=1", 1000, None);
        assert_eq!(s.verify(&url, ip, 999), Ok("/private/a.mp4?q=1".into()));
        assert_eq!(s.verify(&url, ip, 1001), Err(SignError::Expired));
        let bare = s.sign("/private/b", 1000, None);
        assert_eq!(s.verify(&bare, ip, 5), Ok("/private/b".into()));
    }

    #[test]
    fn tampering_and_other_keys_fail() {
        let s = UrlSigner::new(b"secret");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let url = s.sign("/private/a", 1000, None);
        assert_eq!(
            s.verify(&url.replace("/a", "/b"), ip, 1),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            s.verify(&url.replace("expires=1000", "expires=9999"), ip, 1),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            UrlSigner::new(b"other").verify(&url, ip, 1),
            Err(SignError::BadSignature)
        );
        assert_eq!(s.verify("/private/a", ip, 1), Err(SignError::Missing));
        assert_eq!(
            s.verify("/private/a?expires=x&sig=00", ip, 1),
            Err(SignError::Malformed)
        );
        assert_eq!(
            s.verify("/private/a?expires=5&sig=zz", ip, 1),
            Err(SignError::Malformed)
        );
    }

    #[test]
    fn address_binding() {
        let s = UrlSigner::new(b"secret");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let url = s.sign("/private/a", 1000, Some(a));
        assert!(s.verify(&url, a, 1).is_ok());
        assert_eq!(s.verify(&url, b, 1), Err(SignError::BadSignature));
        // Dropping the binding parameter breaks the signature.
        assert_eq!(
            s.verify(&url.replace("&ip=1", ""), b, 1),
            Err(SignError::BadSignature)
        );
    }
}
