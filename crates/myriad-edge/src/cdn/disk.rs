//! The disk tier: object bodies in files under one directory, bounded in total size. The index
//! (keys, response metadata, tags) is in memory and weighs each entry by its file, so the
//! same TinyLFU admission and size-bounded eviction as the memory tier applies; an evicted or
//! purged entry's file is deleted. The directory is emptied at start (the index does not
//! survive a restart).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use myriad_cache::StoredMeta;

use super::store::Stored;

struct DiskEntry {
    path: PathBuf,
    meta: StoredMeta,
    tags: Vec<String>,
    len: u64,
}

pub struct DiskStore {
    dir: PathBuf,
    index: Cache<String, Arc<DiskEntry>>,
    next_file: AtomicU64,
}

impl DiskStore {
    pub fn open(dir: PathBuf, capacity_bytes: u64) -> std::io::Result<Self> {
        if dir.exists() {
            for entry in std::fs::read_dir(&dir)?.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".obj") {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        std::fs::create_dir_all(&dir)?;
        let index = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_: &String, e: &Arc<DiskEntry>| u32::try_from(e.len).unwrap_or(u32::MAX))
            .eviction_listener(|_, e: Arc<DiskEntry>, cause: RemovalCause| {
                // A replaced entry's new file has another name: every removal frees its file.
                if let Err(err) = std::fs::remove_file(&e.path) {
                    tracing::debug!(path = %e.path.display(), ?cause, "cache file not removed: {err}");
                }
            })
            .support_invalidation_closures()
            .build();
        Ok(Self {
            dir,
            index,
            next_file: AtomicU64::new(0),
        })
    }

    /// Writes an object's body to its own file and indexes it, evicting what no longer fits
    /// (off the async threads: files are written and deleted here).
    pub async fn insert(self: &Arc<Self>, key: String, stored: &Stored) {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let entry = DiskEntry {
            path: self.dir.join(format!("{n:016x}.obj")),
            meta: stored.meta.clone(),
            tags: stored.tags.clone(),
            len: stored.body.len() as u64,
        };
        let (disk, body) = (self.clone(), stored.body.clone());
        let done = tokio::task::spawn_blocking(move || {
            let tmp = entry.path.with_extension("tmp");
            let written =
                std::fs::write(&tmp, &body).and_then(|()| std::fs::rename(&tmp, &entry.path));
            if let Err(e) = written {
                tracing::warn!(dir = %disk.dir.display(), "cache file not written: {e}");
                let _ = std::fs::remove_file(&tmp);
                return;
            }
            disk.index.insert(key, Arc::new(entry));
            // Eviction (and its file deletions) happens now, not at moka's leisure.
            disk.index.run_pending_tasks();
        })
        .await;
        if let Err(e) = done {
            tracing::warn!("cache write task failed: {e}");
        }
    }

    /// Reads an object back; a file that has gone missing is a miss.
    pub async fn get(&self, key: &str) -> Option<Stored> {
        let entry = self.index.get(key)?;
        match tokio::fs::read(&entry.path).await {
            Ok(body) => Some(Stored {
                meta: entry.meta.clone(),
                body: Bytes::from(body),
                tags: entry.tags.clone(),
            }),
            Err(e) => {
                tracing::warn!(path = %entry.path.display(), "cache file unreadable: {e}");
                self.index.invalidate(key);
                None
            }
        }
    }

    /// Drops objects whose full key matches (files go with them).
    pub fn invalidate_if(&self, f: impl Fn(&str, &[String]) -> bool + Send + Sync + 'static) {
        if let Err(e) = self.index.invalidate_entries_if(move |k, e| f(k, &e.tags)) {
            tracing::error!("disk cache invalidation failed: {e}");
        }
    }

    /// Bytes indexed (after pending maintenance).
    #[cfg(test)]
    pub fn weighted_size(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http::{HeaderMap, StatusCode};

    use super::*;

    fn stored(len: usize, tag: &str) -> Stored {
        Stored {
            meta: StoredMeta {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                request_time: SystemTime::UNIX_EPOCH,
                response_time: SystemTime::UNIX_EPOCH,
            },
            body: Bytes::from(vec![7; len]),
            tags: vec![tag.to_owned()],
        }
    }

    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn stays_within_its_size_and_deletes_what_it_drops() {
        let dir = std::env::temp_dir().join(format!("myriad-disk-test-{}", std::process::id()));
        let disk = Arc::new(DiskStore::open(dir.clone(), 1 << 20).unwrap());
        for i in 0..100 {
            disk.insert(format!("k{i}"), &stored(100_000, "t")).await;
        }
        assert!(disk.weighted_size() <= 1 << 20, "{}", disk.weighted_size());
        assert!(files(&dir) <= 11, "{} files left", files(&dir));
        let kept = (0..100)
            .filter(|i| disk.index.contains_key(&format!("k{i}")))
            .count();
        assert!(kept >= 5, "{kept} kept");
        let any = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| disk.index.contains_key(k))
            .unwrap();
        let back = disk.get(&any).await.unwrap();
        assert_eq!(back.body.len(), 100_000);

        disk.invalidate_if(|_, tags| tags.iter().any(|t| t == "t"));
        assert!(disk.get(&any).await.is_none());
        disk.index.run_pending_tasks();
        assert_eq!(files(&dir), 0, "purged files are deleted");

        // A restart starts empty.
        disk.insert("x".into(), &stored(10, "u")).await;
        drop(disk);
        let reopened = DiskStore::open(dir.clone(), 1 << 20).unwrap();
        assert!(reopened.get("x").await.is_none());
        assert_eq!(files(&dir), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
