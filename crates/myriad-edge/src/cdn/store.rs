//! The cache's storage: a memory tier of whole objects keyed by primary key (host and target)
//! plus variant (the request's values of the response's `Vary` fields), and optionally a disk
//! tier behind it. `moka` admits by TinyLFU frequency and evicts by size, so one scan of cold
//! objects does not flush the hot ones as LRU would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use myriad_cache::{policy, StoredMeta};
use prometheus_client::encoding::EncodeLabelValue;

use super::disk::DiskStore;
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

/// The variant a request selects, and what the memory tier holds for it.
pub struct Variant {
    pub names: Arc<Vec<HeaderName>>,
    pub key: String,
    /// From the memory tier.
    pub stored: Option<Arc<Stored>>,
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
pub(super) fn count_eviction(evicted: &AtomicU64, cause: RemovalCause) {
    if cause == RemovalCause::Size {
        evicted.fetch_add(1, Ordering::Relaxed);
    }
}

/// A tier's [`Usage`], its pending bookkeeping applied first so the figures are current.
pub(super) fn usage_of<V>(
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

pub struct Store {
    objects: Cache<String, Arc<Stored>>,
    capacity_bytes: u64,
    evicted: Arc<AtomicU64>,
    disk: Option<Arc<DiskStore>>,
    /// Per primary key, the request fields its responses vary on.
    vary: Cache<String, Arc<Vec<HeaderName>>>,
}

/// Entry bookkeeping counted on top of the key, the body and the fields.
const ENTRY_OVERHEAD_BYTES: u64 = 512;
/// A field's bookkeeping in a `HeaderMap` on top of its name and value.
const FIELD_OVERHEAD_BYTES: usize = 64;

/// What an object weighs in the memory tier's budget: its key, its body, its fields three
/// times (as stored, in its response head's template and that head's last rendering) and
/// bookkeeping.
fn weight(key: &str, stored: &Stored) -> u32 {
    let fields: usize = stored
        .meta
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + FIELD_OVERHEAD_BYTES)
        .sum();
    let bytes = key.len() as u64 + stored.body.len() as u64 + 3 * fields as u64;
    u32::try_from(bytes + ENTRY_OVERHEAD_BYTES).unwrap_or(u32::MAX)
}

impl Store {
    pub fn new(capacity_bytes: u64, disk: Option<DiskStore>) -> Self {
        let evicted = Arc::new(AtomicU64::new(0));
        let counter = evicted.clone();
        Self {
            disk: disk.map(Arc::new),
            objects: Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|key: &String, s: &Arc<Stored>| weight(key, s))
                .eviction_listener(move |_, _, cause| count_eviction(&counter, cause))
                .build(),
            capacity_bytes,
            evicted,
            vary: Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// The full key of the variant `request_variant` of `primary`.
    pub fn key(primary: &str, variant: &str) -> String {
        let mut key = String::with_capacity(primary.len() + 1 + variant.len());
        key.push_str(primary);
        key.push('\n');
        key.push_str(variant);
        key
    }

    /// The key of the variant of `primary` that `request` selects, with the fields that
    /// select it (those its stored responses vary on); nothing looked up.
    pub fn variant(&self, primary: &str, request: &HeaderMap) -> Variant {
        let names = self.vary.get(primary).unwrap_or_default();
        let key = Self::key(primary, &policy::variant_key(&names, request));
        Variant {
            names,
            key,
            stored: None,
        }
    }

    /// What [`Store::variant`] gives, and the object stored in memory under that key. A
    /// response that varies on nothing — most of them — is found with one lookup.
    pub fn in_memory(&self, primary: &str, request: &HeaderMap) -> Variant {
        let plain = Self::key(primary, "");
        if let Some(stored) = self.objects.get(&plain) {
            return Variant {
                names: Arc::default(),
                key: plain,
                stored: Some(stored),
            };
        }
        let mut found = self.variant(primary, request);
        if found.key != plain {
            found.stored = self.objects.get(&found.key);
        }
        found
    }

    /// The object stored on disk under `key` (then kept in memory again).
    pub async fn on_disk(&self, key: &str) -> Option<Arc<Stored>> {
        let stored = Arc::new(self.disk.as_ref()?.get(key).await?);
        self.objects.insert(key.to_owned(), stored.clone());
        Some(stored)
    }

    pub fn insert(&self, primary: &str, names: Vec<HeaderName>, key: String, stored: Stored) {
        let previous = self.vary.get(primary).unwrap_or_default();
        if *previous != names {
            if previous.is_empty() {
                // `find` looks under the plain key first: a response that did not vary must
                // not answer for the ones that now do.
                self.objects.invalidate(&Self::key(primary, ""));
            }
            self.vary.insert(primary.to_owned(), Arc::new(names));
        }
        let stored = Arc::new(stored);
        if let Some(disk) = &self.disk {
            // Written behind the response: the memory copy serves meanwhile.
            let (disk, key, stored) = (disk.clone(), key.clone(), stored.clone());
            tokio::spawn(async move { disk.insert(key, stored).await });
        }
        self.objects.insert(key, stored);
        // Evict now rather than at moka's next maintenance: the memory tier's size is a
        // budget, and inserts happen on misses only.
        self.objects.run_pending_tasks();
    }

    /// Drops every variant of `primary`.
    pub fn invalidate(&self, primary: &str) {
        self.vary.invalidate(primary);
        let prefix = Self::key(primary, "");
        self.invalidate_if(|k, _| k.starts_with(&prefix));
    }

    /// Drops every object whose primary key starts with `prefix`.
    pub fn invalidate_prefix(&self, prefix: &str) {
        self.invalidate_if(|k, _| k.starts_with(prefix));
    }

    pub fn invalidate_tag(&self, tag: &str) {
        self.invalidate_if(|_, tags| tags.iter().any(|t| t == tag));
    }

    /// Matching objects are gone for lookups, in both tiers, once this returns.
    fn invalidate_if(&self, f: impl Fn(&str, &[String]) -> bool + Clone) {
        if let Some(disk) = &self.disk {
            disk.invalidate_if(f.clone());
        }
        invalidate_matching(&self.objects, |k, s| f(k, &s.tags));
    }

    /// Each tier's usage, memory first.
    pub fn usage(&self) -> Vec<Usage> {
        let memory = usage_of(
            Tier::Memory,
            &self.objects,
            self.capacity_bytes,
            &self.evicted,
        );
        std::iter::once(memory)
            .chain(self.disk.as_ref().map(|d| d.usage()))
            .collect()
    }
}

/// Removes every entry `doomed` picks, each at once, and frees them. (moka's invalidation
/// closures skip entries whose insertion is still being recorded and may then retire the
/// closure: a purge right after a store could miss the object. And moka holds what
/// `invalidate` removed until its next maintenance, which an idle edge may not run for long.)
pub(super) fn invalidate_matching<V>(cache: &Cache<String, V>, doomed: impl Fn(&str, &V) -> bool)
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

    fn found(store: &Store, primary: &str) -> bool {
        store.in_memory(primary, &HeaderMap::new()).stored.is_some()
    }

    #[tokio::test]
    async fn inserted_objects_are_found_at_once_and_invalidated_by_primary() {
        let store = Store::new(1 << 20, None);
        for i in 0..100 {
            let primary = format!("host/{i}");
            store.insert(
                &primary,
                Vec::new(),
                Store::key(&primary, ""),
                Stored::sample(10, &["t"]),
            );
            assert!(found(&store, &primary), "{i}");
        }
        store.invalidate("host/7");
        assert!(!found(&store, "host/7"));
        assert!(found(&store, "host/8"));
        store.invalidate_prefix("host/1");
        assert!(!found(&store, "host/1"));
        assert!(!found(&store, "host/10"));
        assert!(found(&store, "host/20"));
        store.invalidate_tag("t");
        assert!(!found(&store, "host/20"));
    }

    #[test]
    fn a_purged_body_is_freed_at_once_and_usage_says_what_is_held() {
        let store = Store::new(1 << 20, None);
        for i in 0..10 {
            let primary = format!("h/{i}");
            let key = Store::key(&primary, "");
            store.insert(&primary, Vec::new(), key, Stored::sample(300_000, &["big"]));
        }
        let [memory] = store.usage()[..] else {
            panic!("one tier")
        };
        assert_eq!(memory.tier, Tier::Memory);
        assert_eq!(memory.capacity_bytes, 1 << 20);
        assert!(memory.bytes <= 1 << 20, "{memory:?}");
        assert!((1..=3).contains(&memory.objects), "{memory:?}");
        assert_eq!(memory.evicted + memory.objects, 10, "{memory:?}");

        let evicted = memory.evicted;
        let held = (0..10)
            .find_map(|i| store.in_memory(&format!("h/{i}"), &HeaderMap::new()).stored)
            .expect("one object in memory");
        store.invalidate_tag("big");
        // Done by the purge itself, not left to the next maintenance.
        assert_eq!(store.objects.weighted_size(), 0);
        assert_eq!(store.objects.entry_count(), 0);
        // The cache's last reference goes when its epoch-based reclamation next runs,
        // which any lookup on any thread may do.
        for _ in 0..1_000 {
            if Arc::strong_count(&held) == 1 {
                break;
            }
            store.in_memory("h/none", &HeaderMap::new());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the cache still holds the body"
        );
        let memory = store.usage()[0];
        assert_eq!((memory.bytes, memory.objects), (0, 0), "{memory:?}");
        assert_eq!(memory.evicted, evicted, "a purge is not an eviction");
    }

    #[test]
    fn a_purge_right_after_a_store_removes_the_object() {
        let store = Store::new(1 << 24, None);
        for i in 0..1_000 {
            let primary = format!("h/{i}/x");
            let key = Store::key(&primary, "");
            // Half through `insert`, half with moka's bookkeeping of the insertion pending.
            if i % 2 == 0 {
                store.insert(&primary, Vec::new(), key, Stored::sample(1, &["t"]));
            } else {
                store
                    .objects
                    .insert(key, Arc::new(Stored::sample(1, &["t"])));
            }
            match i % 3 {
                0 => store.invalidate(&primary),
                1 => store.invalidate_prefix(&format!("h/{i}/")),
                _ => store.invalidate_tag("t"),
            }
            assert!(!found(&store, &primary), "object {i} survived its purge");
        }
    }

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

    #[test]
    fn fields_weigh_in_the_memory_budget() {
        let bare = Stored::sample(1000, &[]);
        let mut fields = HeaderMap::new();
        fields.insert("x-long", "v".repeat(900).parse().expect("value"));
        let with_fields = Stored::new(
            StoredMeta::new(
                http::StatusCode::OK,
                fields,
                std::time::SystemTime::UNIX_EPOCH,
                std::time::SystemTime::UNIX_EPOCH,
            ),
            Bytes::from(vec![7; 1000]),
            Vec::new(),
        );
        assert_eq!(weight("k", &bare), 1 + 1000 + 512);
        assert_eq!(
            weight("k", &with_fields),
            1 + 1000 + 3 * (6 + 900 + 64) + 512
        );
    }

    #[tokio::test]
    async fn a_response_that_starts_to_vary_replaces_the_one_that_did_not() {
        let store = Store::new(1 << 20, None);
        let names = vec![http::header::ACCEPT_ENCODING];
        let request = |encoding: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::ACCEPT_ENCODING,
                encoding.parse().expect("value"),
            );
            h
        };
        store.insert(
            "h/a",
            Vec::new(),
            Store::key("h/a", ""),
            Stored::sample(1, &[]),
        );
        let plain = store.in_memory("h/a", &request("gzip"));
        assert_eq!(plain.key, Store::key("h/a", ""));
        assert!(plain.stored.is_some());

        let gzip_key = Store::key("h/a", &policy::variant_key(&names, &request("gzip")));
        store.insert("h/a", names, gzip_key.clone(), Stored::sample(2, &[]));
        let gzip = store.in_memory("h/a", &request("gzip"));
        assert_eq!(gzip.key, gzip_key);
        assert_eq!(gzip.stored.map(|s| s.body.len()), Some(2));
        let other = store.in_memory("h/a", &request("br"));
        assert_ne!(other.key, gzip_key);
        assert!(other.stored.is_none(), "the old response must not answer");
    }
}
