//! What both storage tiers share: the stored response, which tier holds it, what a tier
//! holds, and the bookkeeping of their `moka` indexes (evictions, usage, purges).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use myriad_cache::StoredMeta;
use prometheus_client::encoding::EncodeLabelValue;

use super::head::ResponseHead;

/// A complete stored response.
pub struct Stored {
    pub meta: StoredMeta,
    pub body: Bytes,
    /// Purge tags (`Surrogate-Key`, `Cache-Tag`).
    pub tags: Vec<String>,
    /// Its fields as this edge sends them, made at its first hit.
    pub head: OnceLock<ResponseHead>,
}

impl Stored {
    pub fn new(meta: StoredMeta, body: Bytes, tags: Vec<String>) -> Self {
        Self {
            meta,
            body,
            tags,
            head: OnceLock::new(),
        }
    }
}

#[cfg(test)]
impl Stored {
    /// An object of `len` bytes with `tags`, for tests.
    pub fn sample(len: usize, tags: &[&str]) -> Self {
        use std::time::SystemTime;
        let meta = StoredMeta::new(
            http::StatusCode::OK,
            http::HeaderMap::new(),
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH,
        );
        let tags = tags.iter().map(|t| t.to_string()).collect();
        Stored::new(meta, Bytes::from(vec![7; len]), tags)
    }
}

/// `fields` with their values copied into one buffer of their own. Values parsed from a
/// connection are slices of its read buffer (8 KiB and up, shared with the bodies read after
/// them): a stored response keeping them would keep that whole buffer allocated, unweighed,
/// for as long as it is stored — several times the weight of a small object.
pub fn owned_fields(fields: &HeaderMap) -> HeaderMap {
    let mut buffer = BytesMut::with_capacity(fields.values().map(HeaderValue::len).sum());
    for value in fields.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = buffer.freeze();
    let mut owned = HeaderMap::with_capacity(fields.len());
    let mut start = 0;
    for (name, value) in fields {
        let end = start + value.len();
        // Valid: the same bytes as `value`.
        let mut copy = HeaderValue::from_maybe_shared(buffer.slice(start..end))
            .unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        owned.append(name, copy);
        start = end;
    }
    owned
}

/// Where a stored object was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Tier {
    Memory,
    Disk,
}

/// What a tier holds, as of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub tier: Tier,
    /// As weighed against the capacity.
    pub bytes: u64,
    pub capacity_bytes: u64,
    pub objects: u64,
    /// Objects dropped (or not admitted) for want of room, since the start.
    pub evicted: u64,
}

/// Counts the removals that were for room, not purges or replacements.
pub(crate) fn count_eviction(evicted: &AtomicU64, cause: RemovalCause) {
    if cause == RemovalCause::Size {
        evicted.fetch_add(1, Ordering::Relaxed);
    }
}

/// A tier's [`Usage`], its pending bookkeeping applied first so the figures are current.
pub(crate) fn usage_of<V>(
    tier: Tier,
    cache: &Cache<String, V>,
    capacity_bytes: u64,
    evicted: &AtomicU64,
) -> Usage
where
    V: Clone + Send + Sync + 'static,
{
    cache.run_pending_tasks();
    Usage {
        tier,
        bytes: cache.weighted_size(),
        capacity_bytes,
        objects: cache.entry_count(),
        evicted: evicted.load(Ordering::Relaxed),
    }
}

/// Removes every entry `doomed` picks, each at once, and frees them. (moka's invalidation
/// closures skip entries whose insertion is still being recorded and may then retire the
/// closure: a purge right after a store could miss the object. And moka holds what
/// `invalidate` removed until its next maintenance, which an idle edge may not run for long.)
pub(crate) fn invalidate_matching<V>(cache: &Cache<String, V>, doomed: impl Fn(&str, &V) -> bool)
where
    V: Clone + Send + Sync + 'static,
{
    let keys: Vec<Arc<String>> = cache
        .iter()
        .filter(|(k, v)| doomed(k, v))
        .map(|(k, _)| k)
        .collect();
    for key in keys {
        cache.invalidate(key.as_str());
    }
    cache.run_pending_tasks();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_fields_keep_nothing_of_the_buffer_they_were_parsed_from() {
        let read = Bytes::from_static(b"text/plain\x00a=1\x00a=2\x00secret");
        let slice = |from: usize, to: usize| {
            HeaderValue::from_maybe_shared(read.slice(from..to)).expect("value")
        };
        let mut fields = HeaderMap::new();
        fields.insert(http::header::CONTENT_TYPE, slice(0, 10));
        fields.append(http::header::SET_COOKIE, slice(11, 14));
        fields.append(http::header::SET_COOKIE, slice(15, 18));
        let mut secret = slice(19, 25);
        secret.set_sensitive(true);
        fields.insert(http::header::AUTHORIZATION, secret);
        fields.insert("x-empty", HeaderValue::from_static(""));

        let owned = owned_fields(&fields);
        assert_eq!(owned, fields);
        let cookies: Vec<_> = owned.get_all(http::header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "a=2"]);
        assert!(owned[http::header::AUTHORIZATION].is_sensitive());
        assert!(!owned[http::header::CONTENT_TYPE].is_sensitive());
        let buffer = read.as_ptr_range();
        for value in owned.values() {
            let at = value.as_bytes().as_ptr();
            assert!(
                !buffer.contains(&at),
                "{value:?} still points into the read buffer"
            );
        }
    }
}
