//! Signed URLs for protected content: `…?expires=UNIX[&ip=1]&sig=HEX`, where `sig` is the
//! HMAC-SHA256 of the path and the query before it (and, with `ip=1`, the client's address).
//! The authentication parameters are stripped before the cache key and the upstream request,
//! so every signed variant of an object shares one cached copy.
//!
//! Signed messages between edges (purges on the bus): a field `t=UNIX,sig=HEX` beside the
//! payload, `sig` the HMAC-SHA256 of the time and the payload.

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

/// Messages older or newer than this (clocks of edges differ a little) are refused: a
/// captured message cannot be replayed later.
pub const MESSAGE_MAX_SKEW_S: u64 = 60;

/// Signs and checks messages between edges with a shared secret.
pub struct MessageSigner {
    key: hmac::Key,
}

impl MessageSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The signature field for `payload` sent at `now_unix`.
    pub fn sign(&self, payload: &[u8], now_unix: u64) -> String {
        let tag = hmac::sign(&self.key, &timed(now_unix, payload));
        format!("t={now_unix},sig={}", hex(tag.as_ref()))
    }

    /// Checks a signature field against `payload`.
    pub fn verify(&self, payload: &[u8], field: &str, now_unix: u64) -> Result<(), SignError> {
        let (t, sig) = field
            .split_once(",sig=")
            .and_then(|(t, sig)| Some((t.strip_prefix("t=")?.parse::<u64>().ok()?, sig)))
            .ok_or(SignError::Malformed)?;
        let tag = unhex(sig).ok_or(SignError::Malformed)?;
        hmac::verify(&self.key, &timed(t, payload), &tag).map_err(|_| SignError::BadSignature)?;
        if t.abs_diff(now_unix) > MESSAGE_MAX_SKEW_S {
            return Err(SignError::Expired);
        }
        Ok(())
    }
}

fn timed(unix: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = format!("{unix}.").into_bytes();
    m.extend_from_slice(payload);
    m
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
    fn messages_verify_within_the_skew_and_only_as_signed() {
        let s = MessageSigner::new(b"secret");
        let field = s.sign(b"{\"tags\":[\"a\"]}", 1000);
        assert_eq!(s.verify(b"{\"tags\":[\"a\"]}", &field, 1000), Ok(()));
        assert_eq!(s.verify(b"{\"tags\":[\"a\"]}", &field, 1059), Ok(()));
        assert_eq!(s.verify(b"{\"tags\":[\"a\"]}", &field, 941), Ok(()));
        assert_eq!(
            s.verify(b"{\"tags\":[\"a\"]}", &field, 1061),
            Err(SignError::Expired)
        );
        assert_eq!(
            s.verify(b"{\"tags\":[\"b\"]}", &field, 1000),
            Err(SignError::BadSignature)
        );
        let moved = field.replace("t=1000", "t=1050");
        assert_eq!(
            s.verify(b"{\"tags\":[\"a\"]}", &moved, 1050),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            MessageSigner::new(b"other").verify(b"{\"tags\":[\"a\"]}", &field, 1000),
            Err(SignError::BadSignature)
        );
        for bad in [
            "",
            "t=1000",
            "sig=00",
            "t=x,sig=00",
            "t=1000,sig=zz",
            "t=1000,sig=0",
        ] {
            assert_eq!(
                s.verify(b"x", bad, 1000),
                Err(SignError::Malformed),
                "{bad}"
            );
        }
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
