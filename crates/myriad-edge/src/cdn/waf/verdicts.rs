//! Remembered verdicts of bodiless requests.
//!
//! With the rules the edge loads (no IP reputation or DoS counters enabled) a verdict is a
//! pure function of the request, so a request whose head is the same as one already judged
//! gets its verdict without a libmodsecurity transaction (~1 ms of CPU with browser
//! fields). "The same" is the exact head, except for field values no rule of the set that
//! judges the request can match on: a request id, a trace context or a timestamp of digits
//! and dashes cannot move a verdict (a rule that does not match has no effect), so such a
//! value is left out of the key and requests that differ only there share a verdict.
//! The key is the head itself, not a hash: no collision can borrow another request's
//! verdict.

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderName;
use moka::sync::Cache;

use super::alphabet::Alphabet;
use super::reach::Prepared;
use super::{Inspected, Verdict};

/// Heads longer than this are always evaluated.
const KEY_MAX_BYTES: usize = 4096;

/// Fields ModSecurity or the CRS read beyond their value's text (cookies, the body's type
/// and framing, the server name, credentials, the User-Agent hash): never left out.
const INTERPRETED: [&str; 7] = [
    "cookie",
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "authorization",
    "user-agent",
];

/// Stands for a left-out value (a byte no field value holds).
const LEFT_OUT: char = '\u{1}';

/// The rules of a set that read fields' values: those that read every field (or the whole
/// request), and those that read one field by name.
#[derive(Default)]
pub struct FieldReaders {
    every: Vec<Prepared>,
    by_name: HashMap<String, Vec<Prepared>>,
    /// The rules are not all known: any field's value may move a verdict.
    unknown: bool,
}

impl FieldReaders {
    pub fn anything() -> Self {
        Self {
            unknown: true,
            ..Self::default()
        }
    }

    #[cfg(test)]
    pub fn any_field_moves(&self) -> bool {
        self.unknown
    }

    pub fn add(&mut self, link: Prepared) {
        match link.only_field() {
            Some(name) => self.by_name.entry(name).or_default().push(link),
            None => self.every.push(link),
        }
    }
}

pub struct Verdicts {
    verdicts: Cache<String, Option<Verdict>>,
    /// Whether a field's value, by the bytes it is made of, can move the verdict of a rule
    /// set (by its index); the field by name only where some rule reads it by name. A few
    /// thousand answers cover what clients send.
    movable: Cache<(usize, Option<HeaderName>, Alphabet), bool>,
}

impl Verdicts {
    pub fn new(bytes: u64) -> Self {
        Self {
            verdicts: Cache::builder()
                .max_capacity(bytes)
                .weigher(|k: &String, _: &Option<Verdict>| {
                    u32::try_from(k.len() + 64).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(600))
                .build(),
            movable: Cache::new(10_000),
        }
    }

    pub fn get(&self, key: &str) -> Option<Option<Verdict>> {
        self.verdicts.get(key)
    }

    pub fn insert(&self, key: String, verdict: Option<Verdict>) {
        self.verdicts.insert(key, verdict);
    }

    /// The key of a bodiless request judged by rule set `set` (whose rules reading field
    /// values are `readers`), if its head is short enough.
    pub fn key(
        &self,
        set: usize,
        readers: &FieldReaders,
        request: &Inspected<'_>,
    ) -> Option<String> {
        let mut key = String::with_capacity(256);
        key.push_str(itoa::Buffer::new().format(set));
        for part in [
            " ",
            request.method,
            " ",
            request.target,
            " ",
            request.version,
        ] {
            key.push_str(part);
        }
        for (name, value) in request.headers {
            key.push('\n');
            key.push_str(name.as_str());
            key.push(':');
            let bytes = value.as_bytes();
            if INTERPRETED.contains(&name.as_str()) || self.can_move(set, readers, name, bytes) {
                key.push_str(&String::from_utf8_lossy(bytes));
            } else {
                key.push(LEFT_OUT);
            }
            if key.len() > KEY_MAX_BYTES {
                return None;
            }
        }
        Some(key)
    }

    fn can_move(
        &self,
        set: usize,
        readers: &FieldReaders,
        name: &HeaderName,
        value: &[u8],
    ) -> bool {
        if readers.unknown || !value.is_ascii() {
            return true; // the rules see it converted (U+FFFD for what is not UTF-8)
        }
        let alphabet = Alphabet::of(value);
        let named = readers.by_name.get(name.as_str());
        let question = (set, named.map(|_| name.clone()), alphabet);
        if let Some(answer) = self.movable.get(&question) {
            return answer;
        }
        let answer = readers
            .every
            .iter()
            .chain(named.into_iter().flatten())
            .any(|l| l.may_match_field(name.as_str(), alphabet));
        self.movable.insert(question, answer);
        answer
    }
}
