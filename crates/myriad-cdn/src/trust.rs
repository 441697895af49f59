//! Who the client really is behind edges of the same deployment (and load balancers) this
//! edge trusts: `X-Forwarded-For` read from the right, past the trusted hops, so that every
//! tier limits, logs and inspects by the real client; the trusted hops themselves are not
//! limited per address (every child edge's misses come from one address).
//!
//! A hop is trusted by its address (`--trusted-peer`), or by a key the deployment's edges
//! share (`--tier-key`): an edge with the key signs the `X-Forwarded-For` it sends, with the
//! time, in `Myriad-Tier`; its parent believes a request whose signature holds.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use myriad_cache::signed::MessageSigner;

/// The field in which an edge vouches for the `X-Forwarded-For` it sends.
pub const TIER_HEADER: &str = "myriad-tier";

/// The key the deployment's edges share.
#[derive(Clone)]
pub struct TierKey(Arc<MessageSigner>);

impl std::fmt::Debug for TierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TierKey(..)")
    }
}

impl TierKey {
    pub fn new(secret: &str) -> Self {
        Self(Arc::new(MessageSigner::new(secret.as_bytes())))
    }

    /// The `Myriad-Tier` value vouching, at `now_unix`, for the `X-Forwarded-For` in
    /// `headers`.
    pub fn vouch(&self, headers: &HeaderMap, now_unix: u64) -> Option<HeaderValue> {
        let signed = self.0.sign(forwarded_for(headers).as_bytes(), now_unix);
        HeaderValue::from_str(&signed).ok()
    }

    /// Whether a request's `Myriad-Tier` vouches for its `X-Forwarded-For`, made with this
    /// key within the last minute or so.
    pub fn vouches(&self, headers: &HeaderMap, now_unix: u64) -> bool {
        let Some(field) = headers.get(TIER_HEADER).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        self.0
            .verify(forwarded_for(headers).as_bytes(), field, now_unix)
            .is_ok()
    }
}

/// A request's `X-Forwarded-For` fields as one list, as the signature covers them.
fn forwarded_for(headers: &HeaderMap) -> String {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The peer a request came from, as limits and logs count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The real client: the peer itself, or the address a trusted peer forwarded for.
    Address(IpAddr),
    /// A trusted peer that names no client (a health check, a prefetch): not limited.
    Trusted,
}

impl Client {
    /// The client's address; `peer`'s for a trusted peer naming none.
    pub fn ip_or(self, peer: IpAddr) -> IpAddr {
        match self {
            Client::Address(ip) => ip,
            Client::Trusted => peer,
        }
    }
}

/// Whether `ip` is one of `trusted`.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client of a request from `peer` with these header fields: if `peer` is trusted (by
/// its address, or `vouched` for with the tier key), the rightmost `X-Forwarded-For` address
/// that is not (a trusted hop's own word is believed, anything a client wrote to the left of
/// what they appended is not); else `peer`.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], vouched: bool) -> Client {
    if !vouched && !is_trusted(peer, trusted) {
        return Client::Address(peer);
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip, trusted) => continue,
            Ok(ip) => return Client::Address(ip),
            // Unreadable: whatever is left of it is no better; the nearest hop answers.
            Err(_) => return Client::Address(peer),
        }
    }
    Client::Trusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_tier_keys_signature_vouches_for_the_forwarded_client_for_a_minute() {
        let key = TierKey::new("deployment secret");
        let mut h = xff(&["198.51.100.7"]);
        let field = key.vouch(&h, 1000).unwrap();
        h.insert(TIER_HEADER, field.clone());
        assert!(key.vouches(&h, 1000));
        assert!(key.vouches(&h, 1060));
        assert!(!key.vouches(&h, 1061), "too old");
        assert!(
            !TierKey::new("other").vouches(&h, 1000),
            "another deployment's"
        );
        // A client cannot reuse the field for another address.
        let mut forged = xff(&["6.6.6.6"]);
        forged.insert(TIER_HEADER, field);
        assert!(!key.vouches(&forged, 1000));
        assert!(!key.vouches(&xff(&["198.51.100.7"]), 1000), "no field");
        let untrusted = ip("203.0.113.9");
        assert_eq!(
            client_of(untrusted, &h, &[], key.vouches(&h, 1000)),
            Client::Address(ip("198.51.100.7"))
        );
        assert_eq!(
            format!("{key:?}"),
            "TierKey(..)",
            "the secret stays out of logs"
        );
    }

    #[test]
    fn the_client_is_read_past_trusted_hops_only() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let edge = ip("10.1.2.3");
        // An untrusted peer is its own client, whatever it claims.
        assert_eq!(
            client_of(ip("203.0.113.9"), &xff(&["1.2.3.4"]), &trusted, false),
            Client::Address(ip("203.0.113.9"))
        );
        // A child edge forwarding for a client.
        assert_eq!(
            client_of(edge, &xff(&["198.51.100.7"]), &trusted, false),
            Client::Address(ip("198.51.100.7"))
        );
        // A forged address to the left of the real one is not believed; trusted hops are
        // skipped, also across several fields.
        assert_eq!(
            client_of(
                edge,
                &xff(&["6.6.6.6, 198.51.100.7", "10.9.9.9"]),
                &trusted,
                false
            ),
            Client::Address(ip("198.51.100.7"))
        );
        assert_eq!(
            client_of(edge, &HeaderMap::new(), &trusted, false),
            Client::Trusted
        );
        assert_eq!(
            client_of(edge, &xff(&["10.0.0.1"]), &trusted, false),
            Client::Trusted
        );
        assert_eq!(
            client_of(edge, &xff(&["not-an-ip"]), &trusted, false),
            Client::Address(edge)
        );
        assert_eq!(
            client_of(ip("::1"), &xff(&["2001:db8::1"]), &trusted, false),
            Client::Address(ip("2001:db8::1"))
        );
    }
}
