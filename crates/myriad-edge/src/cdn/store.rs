//! The memory tier: whole objects keyed by primary key (host and target) plus variant (the
//! request's values of the response's `Vary` fields). `moka` admits by TinyLFU frequency and
//! evicts by size, so one scan of cold objects does not flush the hot ones as LRU would.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use moka::sync::Cache;
use myriad_cache::StoredMeta;

/// A complete stored response.
#[derive(Debug)]
pub struct Stored {
    pub meta: StoredMeta,
    pub body: Bytes,
    /// Purge tags (`Surrogate-Key`, `Cache-Tag`).
    pub tags: Vec<String>,
}

pub struct MemoryStore {
    objects: Cache<String, Arc<Stored>>,
    /// Per primary key, the request fields its responses vary on.
    vary: Cache<String, Arc<Vec<HeaderName>>>,
}

/// Entry overhead counted on top of the body (headers, key, bookkeeping).
const ENTRY_OVERHEAD_BYTES: u64 = 512;

impl MemoryStore {
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            objects: Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|key: &String, s: &Arc<Stored>| {
                    let bytes = key.len() as u64 + s.body.len() as u64 + ENTRY_OVERHEAD_BYTES;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .support_invalidation_closures()
                .build(),
            vary: Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// The full key of the variant `request_variant` of `primary`.
    pub fn key(primary: &str, variant: &str) -> String {
        format!("{primary}\n{variant}")
    }

    pub fn vary_names(&self, primary: &str) -> Arc<Vec<HeaderName>> {
        self.vary.get(primary).unwrap_or_default()
    }

    pub fn get(&self, key: &str) -> Option<Arc<Stored>> {
        self.objects.get(key)
    }

    pub fn insert(&self, primary: &str, names: Vec<HeaderName>, key: String, stored: Stored) {
        if *self.vary_names(primary) != names {
            self.vary.insert(primary.to_owned(), Arc::new(names));
        }
        self.objects.insert(key, Arc::new(stored));
    }

    /// Drops every variant of `primary`.
    pub fn invalidate(&self, primary: &str) {
        self.vary.invalidate(primary);
        let prefix = format!("{primary}\n");
        self.invalidate_if(move |k, _| k.starts_with(&prefix));
    }

    /// Drops every object whose primary key starts with `prefix`.
    pub fn invalidate_prefix(&self, prefix: &str) {
        let prefix = prefix.to_owned();
        self.invalidate_if(move |k, _| k.starts_with(&prefix));
    }

    pub fn invalidate_tag(&self, tag: &str) {
        let tag = tag.to_owned();
        self.invalidate_if(move |_, s| s.tags.contains(&tag));
    }

    /// Matching objects are gone for lookups once this returns (moka removes them lazily).
    fn invalidate_if(&self, f: impl Fn(&String, &Arc<Stored>) -> bool + Send + Sync + 'static) {
        // Only fails when invalidation closures are not enabled, which `new` does.
        if let Err(e) = self.objects.invalidate_entries_if(f) {
            tracing::error!("cache invalidation failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http::{HeaderMap, StatusCode};

    use super::*;

    fn stored(len: usize) -> Stored {
        Stored {
            meta: StoredMeta {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                request_time: SystemTime::UNIX_EPOCH,
                response_time: SystemTime::UNIX_EPOCH,
            },
            body: Bytes::from(vec![0; len]),
            tags: vec!["t".into()],
        }
    }

    #[test]
    fn inserted_objects_are_found_at_once_and_invalidated_by_primary() {
        let store = MemoryStore::new(1 << 20);
        for i in 0..100 {
            let primary = format!("host/{i}");
            store.insert(
                &primary,
                Vec::new(),
                MemoryStore::key(&primary, ""),
                stored(10),
            );
            assert!(store.get(&MemoryStore::key(&primary, "")).is_some(), "{i}");
        }
        store.invalidate("host/7");
        assert!(store.get(&MemoryStore::key("host/7", "")).is_none());
        assert!(store.get(&MemoryStore::key("host/8", "")).is_some());
        store.invalidate_prefix("host/1");
        assert!(store.get(&MemoryStore::key("host/1", "")).is_none());
        assert!(store.get(&MemoryStore::key("host/10", "")).is_none());
        assert!(store.get(&MemoryStore::key("host/20", "")).is_some());
        store.invalidate_tag("t");
        assert!(store.get(&MemoryStore::key("host/20", "")).is_none());
    }
}
