//! The PROXY protocol (HAProxy's, v1 text and v2 binary) from load balancers in front of the
//! edge: a connection from one of them starts with the client's real address, which then
//! stands for the connection's peer in limits, logs, the WAF and `X-Forwarded-For`.
//! Parsing is the `ppp` crate's; reading takes exactly the header's bytes, so the HTTP after
//! it is left for the server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::net::TcpStream;

/// A v2 header with TLVs may be long; one longer than this is refused.
const MAX_HEADER_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header: {0}")]
    Invalid(String),
    #[error("PROXY header longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("no complete PROXY header in time")]
    Slow,
    #[error("the connection closed before its PROXY header was complete")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A header of `len` bytes; `client` is the address it names (none for a balancer's own
    /// health check, `LOCAL` or `UNKNOWN`).
    Header {
        len: usize,
        client: Option<SocketAddr>,
    },
}

/// Reads a header from the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        return if buf.len() >= MAX_HEADER_BYTES {
            Err(ProxyHeaderError::TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    }
    match result {
        HeaderResult::V1(Ok(h)) => Ok(Parsed::Header {
            len: h.header.len(),
            client: match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                v1::Addresses::Unknown => None,
            },
        }),
        HeaderResult::V2(Ok(h)) => Ok(Parsed::Header {
            len: h.len(),
            client: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (_, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                _ => None,
            },
        }),
        HeaderResult::V1(Err(e)) => Err(ProxyHeaderError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyHeaderError::Invalid(e.to_string())),
    }
}

/// Reads the header a balancer sends first, within `limit`: the client it names, if any.
pub async fn read_header(
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    tokio::time::timeout(limit, read(stream))
        .await
        .map_err(|_| ProxyHeaderError::Slow)?
}

async fn read(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| ProxyHeaderError::Io(e.to_string());
    let mut buf = vec![0u8; MAX_HEADER_BYTES];
    let mut seen = 0;
    loop {
        // Peek, so that nothing after the header is taken from the server.
        let n = stream.peek(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        match parse(&buf[..n])? {
            Parsed::Header { len, client } => {
                stream.read_exact(&mut buf[..len]).await.map_err(io)?;
                return Ok(client);
            }
            Parsed::Incomplete if n == seen => {
                // Nothing new since the last look: wait for more before peeking again.
                stream.readable().await.map_err(io)?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Parsed::Incomplete => seen = n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_the_client_and_their_length() {
        let v1 = b"PROXY TCP4 198.51.100.7 192.0.2.1 5555 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(v1),
            Ok(Parsed::Header {
                len: 44,
                client: Some("198.51.100.7:5555".parse().unwrap())
            })
        );
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n";
        assert!(
            matches!(parse(v6), Ok(Parsed::Header { client: Some(a), .. }) if a.ip().is_ipv6())
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Parsed::Header {
                len: 15,
                client: None
            })
        );
        let v2: Vec<u8> = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "198.51.100.8:6000".parse::<SocketAddr>().unwrap(),
                "192.0.2.1:443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        assert_eq!(
            parse(&[&v2[..], b"GET /"].concat()),
            Ok(Parsed::Header {
                len: v2.len(),
                client: Some("198.51.100.8:6000".parse().unwrap())
            })
        );
    }

    #[test]
    fn partial_headers_wait_and_bad_ones_are_refused() {
        assert_eq!(parse(b"PROXY TCP4 198.5"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIT\n"), Ok(Parsed::Incomplete));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ProxyHeaderError::Invalid(_))
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 not-an-ip 192.0.2.1 1 2\r\n"),
            Err(ProxyHeaderError::Invalid(_))
        ));
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; MAX_HEADER_BYTES]].concat();
        assert!(parse(&endless).is_err());
    }
}
