//! The cache's storage: a memory tier of whole objects keyed by primary key (host and target)
//! plus variant (the request's values of the response's `Vary` fields), and optionally a disk
//! tier behind it. The memory tier evicts by S3-FIFO, weighted by size ([`S3Fifo`]).

use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use moka::sync::Cache;
use myriad_cache::policy;

use super::disk::DiskStore;
use super::s3fifo::S3Fifo;
use super::tier::{Stored, Tier, Usage};

/// The variant a request selects, and what the memory tier holds for it.
pub struct Variant {
    pub names: Arc<Vec<HeaderName>>,
    pub key: String,
    /// From the memory tier.
    pub stored: Option<Arc<Stored>>,
}

pub struct Store {
    objects: S3Fifo<Arc<Stored>>,
    capacity_bytes: u64,
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
        Self {
            disk: disk.map(Arc::new),
            objects: S3Fifo::new(capacity_bytes),
            capacity_bytes,
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
        self.objects
            .insert(key, stored.clone(), weight(key, &stored));
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
        self.objects
            .insert(&key, stored.clone(), weight(&key, &stored));
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
        self.objects.invalidate_if(|k, s| f(k, &s.tags));
    }

    /// Each tier's usage, memory first.
    pub fn usage(&self) -> Vec<Usage> {
        let memory = Usage {
            tier: Tier::Memory,
            bytes: self.objects.weighted_size(),
            capacity_bytes: self.capacity_bytes,
            objects: self.objects.entry_count(),
            evicted: self.objects.evicted(),
        };
        std::iter::once(memory)
            .chain(self.disk.as_ref().map(|d| d.usage()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use myriad_cache::StoredMeta;

    use super::*;
    use crate::tier::Stored;

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
            // Half through `insert`, half straight into the memory tier.
            if i % 2 == 0 {
                store.insert(&primary, Vec::new(), key, Stored::sample(1, &["t"]));
            } else {
                store
                    .objects
                    .insert(&key, Arc::new(Stored::sample(1, &["t"])), 1);
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
