//! Access tokens: JWTs (HS256) signed with an API secret, carrying deny-by-default grants.
//!
//! Verification takes the current time as an input, so it is a pure function of
//! (token, key, now) and unit-testable without a clock.

#![cfg_attr(test, allow(clippy::disallowed_methods))]

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use myriad_proto::{MeetingId, Role};
use serde::{Deserialize, Serialize};

/// What a token lets its bearer do. Every permission is off unless granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// The meeting this token admits to.
    pub meeting: MeetingId,
    /// Stable user identity from the operator's system.
    pub identity: String,
    /// Display name; defaults to the identity.
    #[serde(default)]
    pub name: Option<String>,
    pub role: Role,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub subscribe: bool,
    #[serde(default)]
    pub moderate: bool,
}

impl Grants {
    /// The permissions that go with a role unless the issuer narrows them.
    pub fn for_role(
        meeting: MeetingId,
        identity: String,
        name: Option<String>,
        role: Role,
    ) -> Self {
        Self {
            meeting,
            identity,
            name,
            role,
            publish: role.publishes(),
            subscribe: true,
            moderate: role.moderates(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    /// The API key that signed the token.
    iss: String,
    iat: u64,
    exp: u64,
    #[serde(flatten)]
    grants: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token signed by an unknown API key")]
    UnknownKey,
    #[error("token signature is invalid (signed with another secret?)")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token issued for another meeting")]
    WrongMeeting,
    #[error("identity must be 1-128 characters")]
    BadIdentity,
}

/// An API key and its secret: signs and verifies access tokens.
#[derive(Clone)]
pub struct ApiKey {
    pub key: String,
    secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Longest accepted identity or display name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

impl ApiKey {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether `secret` is this key's secret (constant time).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret of a meeting's host link: whoever holds it may join as host. Derived from
    /// the API secret, so every node of a cluster checks it and nothing is stored.
    pub fn host_key(&self, meeting: &MeetingId) -> String {
        self.derived_key(&host_key_message(meeting))
    }

    /// Whether `key` is `meeting`'s host key (constant time).
    pub fn is_host_key(&self, meeting: &MeetingId, key: &str) -> bool {
        self.is_derived_key(&host_key_message(meeting), key)
    }

    /// The secret in a host's calendar feed URL (calendar apps subscribe by URL alone):
    /// derived from the API secret like the host link's.
    pub fn feed_key(&self, host: &str) -> String {
        self.derived_key(&feed_key_message(host))
    }

    /// Whether `key` is `host`'s feed key (constant time).
    pub fn is_feed_key(&self, host: &str, key: &str) -> bool {
        self.is_derived_key(&feed_key_message(host), key)
    }

    /// A key for `message` (what it opens), derived from the API secret: URL-safe base64 of
    /// its HMAC-SHA256.
    fn derived_key(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.hmac_key(), message).as_ref())
    }

    fn is_derived_key(&self, message: &[u8], key: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(key) else {
            return false;
        };
        hmac::verify(&self.hmac_key(), message, &tag).is_ok()
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.secret.as_bytes())
    }

    pub fn create_token(
        &self,
        grants: &Grants,
        now_unix_s: u64,
        ttl_s: u64,
    ) -> Result<String, AuthError> {
        check_name(&grants.identity)?;
        if let Some(name) = &grants.name {
            check_name(name)?;
        }
        let claims = Claims {
            iss: self.key.clone(),
            iat: now_unix_s,
            exp: now_unix_s.saturating_add(ttl_s),
            grants: grants.clone(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .map_err(|e| AuthError::Malformed(e.to_string()))
    }

    /// Verifies signature, issuer and expiry; returns the grants.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Grants, AuthError> {
        if token.len() > 4096 {
            return Err(AuthError::Malformed("token too long".into()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the `now` we were given.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(self.secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
            _ => AuthError::Malformed(e.to_string()),
        })?;
        let claims = data.claims;
        if claims.iss != self.key {
            return Err(AuthError::UnknownKey);
        }
        if claims.exp <= now_unix_s {
            return Err(AuthError::Expired);
        }
        check_name(&claims.grants.identity)?;
        Ok(claims.grants)
    }
}

/// What a host key signs: the meeting, in a domain of its own (no token can be one).
fn feed_key_message(host: &str) -> Vec<u8> {
    [b"myriad feed key\0".as_slice(), host.as_bytes()].concat()
}

fn host_key_message(meeting: &MeetingId) -> Vec<u8> {
    [b"myriad host key\0".as_slice(), meeting.as_str().as_bytes()].concat()
}

fn check_name(s: &str) -> Result<(), AuthError> {
    if s.trim().is_empty() || s.len() > MAX_NAME_BYTES || s.chars().any(char::is_control) {
        return Err(AuthError::BadIdentity);
    }
    Ok(())
}

/// Parses durations like `90s`, `15m`, `1h`, `7d` into seconds.
pub fn parse_ttl(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// TURN credentials for `user` until `expires_unix_s`, as coturn checks them with
/// `use-auth-secret` and `static-auth-secret` (the "TURN REST API"): the username is
/// `EXPIRY:USER`, the password the base64 HMAC-SHA1 of the username under the shared secret.
/// Nothing is stored: any node holding the secret mints them, coturn checks them alone.
pub fn turn_credentials(secret: &str, user: &str, expires_unix_s: u64) -> (String, String) {
    use base64::engine::general_purpose::STANDARD;
    let username = format!("{expires_unix_s}:{user}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    (username, STANDARD.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_keys_open_one_hosts_feed_only() {
        let key = ApiKey::new("k", "secret");
        let ana = key.feed_key("ana@example.org");
        assert!(key.is_feed_key("ana@example.org", &ana));
        assert!(!key.is_feed_key("bo@example.org", &ana));
        assert!(!ApiKey::new("k", "other").is_feed_key("ana@example.org", &ana));
        assert!(!key.is_feed_key("ana@example.org", "not base64 !"));
        let meeting = MeetingId::parse("m").unwrap();
        assert_ne!(key.host_key(&meeting), key.feed_key("m"), "kept apart");
    }

    #[test]
    fn turn_credentials_are_coturns_rest_api_ones() {
        // The same HMAC-SHA1 computed by Python's hmac module.
        assert_eq!(
            turn_credentials("north", "p-42", 1_700_000_000),
            (
                "1700000000:p-42".to_owned(),
                "YETdx4og6v/kHC21NlGKjJZX5+I=".to_owned()
            )
        );
    }

    fn grants() -> Grants {
        Grants::for_role(
            MeetingId::parse("m1").unwrap(),
            "alice".into(),
            None,
            Role::Host,
        )
    }

    #[test]
    fn a_host_key_opens_its_meeting_only() {
        let key = ApiKey::new("k1", "s3cret");
        let (m1, m2) = (
            MeetingId::parse("m1").unwrap(),
            MeetingId::parse("m2").unwrap(),
        );
        let host = key.host_key(&m1);
        assert!(key.is_host_key(&m1, &host));
        assert!(!key.is_host_key(&m2, &host), "another meeting's");
        assert!(
            !ApiKey::new("k1", "other").is_host_key(&m1, &host),
            "another secret's"
        );
        let mut bent = host.clone().into_bytes();
        bent[0] ^= 1;
        assert!(!key.is_host_key(&m1, &String::from_utf8(bent).unwrap()));
        for junk in ["", "!!", &host[..10], &"A".repeat(5000)] {
            assert!(!key.is_host_key(&m1, junk), "{junk}");
        }
    }

    #[test]
    fn a_token_round_trips() {
        let key = ApiKey::new("k1", "s3cret");
        let token = key.create_token(&grants(), 1000, 3600).unwrap();
        assert_eq!(key.verify(&token, 1001).unwrap(), grants());
    }

    #[test]
    fn another_secret_is_rejected() {
        let token = ApiKey::new("k1", "s3cret")
            .create_token(&grants(), 1000, 60)
            .unwrap();
        assert_eq!(
            ApiKey::new("k1", "other").verify(&token, 1001),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            ApiKey::new("k2", "s3cret").verify(&token, 1001),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn expiry_uses_the_given_time() {
        let key = ApiKey::new("k1", "s");
        let token = key.create_token(&grants(), 1000, 60).unwrap();
        assert!(key.verify(&token, 1059).is_ok());
        assert_eq!(key.verify(&token, 1060), Err(AuthError::Expired));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let key = ApiKey::new("k1", "s");
        for bad in [
            "",
            "a.b.c",
            "....",
            "eyJhbGciOiJub25lIn0.e30.",
            &"x".repeat(10_000),
        ] {
            assert!(
                matches!(key.verify(bad, 0), Err(AuthError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn grants_are_deny_by_default() {
        let g: Grants =
            serde_json::from_str(r#"{"meeting":"m","identity":"x","role":"attendee"}"#).unwrap();
        assert!(!g.publish && !g.subscribe && !g.moderate);
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("1h"), Some(3600));
        assert_eq!(parse_ttl("15m"), Some(900));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("5y"), None);
        assert_eq!(parse_ttl("99999999999999999999d"), None);
    }
}
