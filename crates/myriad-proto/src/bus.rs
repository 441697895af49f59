//! Messages between nodes over the bus. Each travels as JSON
//! `{"v": VERSION, "kind": KIND, "body": {...}}`: a node refuses a kind it does not expect and
//! a version it does not speak with a clear error (logged by the receiver), never a guess.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A message type that travels on the bus.
pub trait BusMessage: Serialize + DeserializeOwned {
    /// What the message is (`cdn.purge`, …).
    const KIND: &'static str;
    /// The version of its body this build speaks.
    const VERSION: u32;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusDecodeError {
    #[error("malformed bus message: {0}")]
    Malformed(String),
    #[error("a {got} message where {expected} was expected")]
    WrongKind { expected: &'static str, got: String },
    #[error("{kind} version {got} is not spoken here (this node speaks {speaks})")]
    UnsupportedVersion {
        kind: &'static str,
        got: u32,
        speaks: u32,
    },
}

#[derive(Serialize)]
struct Out<'a, T> {
    v: u32,
    kind: &'static str,
    body: &'a T,
}

/// The envelope read first, to tell the version and kind before the body.
#[derive(Deserialize)]
struct Head {
    v: u32,
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct In<T> {
    #[allow(dead_code)] // read by `Head`
    v: u32,
    #[allow(dead_code)]
    kind: String,
    body: T,
}

/// The bytes of `msg` on the bus.
pub fn encode<T: BusMessage>(msg: &T) -> Vec<u8> {
    // Serializing our own types to JSON cannot fail: no maps with non-string keys.
    serde_json::to_vec(&Out {
        v: T::VERSION,
        kind: T::KIND,
        body: msg,
    })
    .unwrap_or_default()
}

/// A message of type `T` from the bus.
pub fn decode<T: BusMessage>(bytes: &[u8]) -> Result<T, BusDecodeError> {
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| BusDecodeError::Malformed(short(&e)))?;
    if head.kind != T::KIND {
        return Err(BusDecodeError::WrongKind {
            expected: T::KIND,
            got: head.kind.chars().take(64).collect(),
        });
    }
    if head.v != T::VERSION {
        return Err(BusDecodeError::UnsupportedVersion {
            kind: T::KIND,
            got: head.v,
            speaks: T::VERSION,
        });
    }
    let msg: In<T> =
        serde_json::from_slice(bytes).map_err(|e| BusDecodeError::Malformed(short(&e)))?;
    Ok(msg.body)
}

fn short(e: &serde_json::Error) -> String {
    let mut s = e.to_string();
    s.truncate(200);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ping {
        n: u32,
    }

    impl BusMessage for Ping {
        const KIND: &'static str = "test.ping";
        const VERSION: u32 = 2;
    }

    #[test]
    fn round_trips_in_an_envelope() {
        let bytes = encode(&Ping { n: 7 });
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"v":2,"kind":"test.ping","body":{"n":7}}"#
        );
        assert_eq!(decode::<Ping>(&bytes), Ok(Ping { n: 7 }));
    }

    #[test]
    fn old_unknown_and_broken_messages_are_clear_errors() {
        let old = br#"{"v":1,"kind":"test.ping","body":{"n":7}}"#;
        assert_eq!(
            decode::<Ping>(old),
            Err(BusDecodeError::UnsupportedVersion {
                kind: "test.ping",
                got: 1,
                speaks: 2
            })
        );
        let other = br#"{"v":2,"kind":"test.pong","body":{}}"#;
        assert!(matches!(
            decode::<Ping>(other),
            Err(BusDecodeError::WrongKind { .. })
        ));
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            br#"{"v":"2","kind":"test.ping","body":{"n":7}}"#,
            br#"{"v":2,"kind":"test.ping","body":{"n":7,"extra":1}}"#,
            br#"{"v":2,"kind":"test.ping","body":{"n":-1}}"#,
            br#"{"v":2,"kind":"test.ping","body":{"n":7},"more":0}"#,
        ] {
            assert!(
                matches!(decode::<Ping>(bad), Err(BusDecodeError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
