//! Who the client really is behind edges of the same deployment (and load balancers) this
//! edge trusts: `X-Forwarded-For` read from the right, past the trusted hops, so that every
//! tier limits, logs and inspects by the real client; the trusted hops themselves are not
//! limited per address (every child edge's misses come from one address).

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

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

/// The client of a request from `peer` with these header fields: if `peer` is trusted, the
/// rightmost `X-Forwarded-For` address that is not (a trusted hop's own word is believed,
/// anything a client wrote to the left of what they appended is not); else `peer`.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
    if !is_trusted(peer, trusted) {
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
    fn the_client_is_read_past_trusted_hops_only() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let edge = ip("10.1.2.3");
        // An untrusted peer is its own client, whatever it claims.
        assert_eq!(
            client_of(ip("203.0.113.9"), &xff(&["1.2.3.4"]), &trusted),
            Client::Address(ip("203.0.113.9"))
        );
        // A child edge forwarding for a client.
        assert_eq!(
            client_of(edge, &xff(&["198.51.100.7"]), &trusted),
            Client::Address(ip("198.51.100.7"))
        );
        // A forged address to the left of the real one is not believed; trusted hops are
        // skipped, also across several fields.
        assert_eq!(
            client_of(edge, &xff(&["6.6.6.6, 198.51.100.7", "10.9.9.9"]), &trusted),
            Client::Address(ip("198.51.100.7"))
        );
        assert_eq!(
            client_of(edge, &HeaderMap::new(), &trusted),
            Client::Trusted
        );
        assert_eq!(
            client_of(edge, &xff(&["10.0.0.1"]), &trusted),
            Client::Trusted
        );
        assert_eq!(
            client_of(edge, &xff(&["not-an-ip"]), &trusted),
            Client::Address(edge)
        );
        assert_eq!(
            client_of(ip("::1"), &xff(&["2001:db8::1"]), &trusted),
            Client::Address(ip("2001:db8::1"))
        );
    }
}
