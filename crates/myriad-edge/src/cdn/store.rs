//! The cache's storage: a memory tier of whole objects keyed by primary key (host and target)
//! plus variant (the request's values of the response's `Vary` fields), and optionally a disk
//! tier behind it. `moka` admits by TinyLFU frequency and evicts by size, so one scan of cold
//! objects does not flush the hot ones as LRU would.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use moka::sync::Cache;
use myriad_cache::StoredMeta;

use super::disk::DiskStore;

/// A complete stored response.
#[derive(Debug)]
pub struct Stored {
    pub meta: StoredMeta,
    pub body: Bytes,
    /// Purge tags (`Surrogate-Key`, `Cache-Tag`).
    pub tags: Vec<String>,
}

#[cfg(test)]
impl Stored {
    /// An object of `len` bytes with `tags`, for tests.
    pub fn sample(len: usize, tags: &[&str]) -> Self {
        use std::time::SystemTime;
        Stored {
            meta: StoredMeta {
                status: http::StatusCode::OK,
                headers: http::HeaderMap::new(),
                request_time: SystemTime::UNIX_EPOCH,
                response_time: SystemTime::UNIX_EPOCH,
            },
            body: Bytes::from(vec![7; len]),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// Where a stored object was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Disk,
}

pub struct Store {
    objects: Cache<String, Arc<Stored>>,
    disk: Option<Arc<DiskStore>>,
    /// Per primary key, the request fields its responses vary on.
    vary: Cache<String, Arc<Vec<HeaderName>>>,
}

/// Entry overhead counted on top of the body (headers, key, bookkeeping).
const ENTRY_OVERHEAD_BYTES: u64 = 512;

impl Store {
    pub fn new(capacity_bytes: u64, disk: Option<DiskStore>) -> Self {
        Self {
            disk: disk.map(Arc::new),
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

    /// From memory, else from disk (and then kept in memory again).
    pub async fn get(&self, key: &str) -> Option<(Arc<Stored>, Tier)> {
        if let Some(s) = self.objects.get(key) {
            return Some((s, Tier::Memory));
        }
        let stored = Arc::new(self.disk.as_ref()?.get(key).await?);
        self.objects.insert(key.to_owned(), stored.clone());
        Some((stored, Tier::Disk))
    }

    pub fn insert(&self, primary: &str, names: Vec<HeaderName>, key: String, stored: Stored) {
        if *self.vary_names(primary) != names {
            self.vary.insert(primary.to_owned(), Arc::new(names));
        }
        let stored = Arc::new(stored);
        if let Some(disk) = &self.disk {
            // Written behind the response: the memory copy serves meanwhile.
            let (disk, key, stored) = (disk.clone(), key.clone(), stored.clone());
            tokio::spawn(async move { disk.insert(key, &stored).await });
        }
        self.objects.insert(key, stored);
        // Evict now rather than at moka's next maintenance: the memory tier's size is a
        // budget, and inserts happen on misses only.
        self.objects.run_pending_tasks();
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
        self.invalidate_if(move |_, tags| tags.contains(&tag));
    }

    /// Matching objects are gone for lookups, in both tiers, once this returns (moka removes
    /// them lazily).
    fn invalidate_if(&self, f: impl Fn(&str, &[String]) -> bool + Clone + Send + Sync + 'static) {
        if let Some(disk) = &self.disk {
            disk.invalidate_if(f.clone());
        }
        // Only fails when invalidation closures are not enabled, which `new` does.
        if let Err(e) = self
            .objects
            .invalidate_entries_if(move |k, s| f(k, &s.tags))
        {
            tracing::error!("cache invalidation failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn found(store: &Store, primary: &str) -> bool {
        store.get(&Store::key(primary, "")).await.is_some()
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
            assert!(found(&store, &primary).await, "{i}");
        }
        store.invalidate("host/7");
        assert!(!found(&store, "host/7").await);
        assert!(found(&store, "host/8").await);
        store.invalidate_prefix("host/1");
        assert!(!found(&store, "host/1").await);
        assert!(!found(&store, "host/10").await);
        assert!(found(&store, "host/20").await);
        store.invalidate_tag("t");
        assert!(!found(&store, "host/20").await);
    }
}
