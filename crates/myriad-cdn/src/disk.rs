//! The disk tier: each object is a body file and a metadata file under one directory, bounded
//! in total size. The index (keys, response metadata, tags) is in memory and weighs each
//! entry by its body, so the same TinyLFU admission and size-bounded eviction as the memory
//! tier applies; an evicted or purged entry's files are deleted. At start the index is read
//! back from the metadata files, so a restarted edge keeps its disk cache; files that do not
//! read back whole are deleted. Each body's CRC-32 is in its metadata and checked on every
//! read: a body the disk changed or cut short is a miss (and deleted), never served as good.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use myriad_cache::StoredMeta;
use serde::{Deserialize, Serialize};

use super::tier::{count_eviction, invalidate_matching, usage_of, Stored, Tier, Usage};

struct DiskEntry {
    path: PathBuf,
    meta: StoredMeta,
    tags: Vec<String>,
    len: u64,
    crc32: u32,
}

pub struct DiskStore {
    dir: PathBuf,
    index: Cache<String, Arc<DiskEntry>>,
    capacity_bytes: u64,
    evicted: Arc<AtomicU64>,
    next_file: AtomicU64,
}

/// What a metadata file holds.
#[derive(Serialize, Deserialize)]
struct MetaFile {
    key: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    request_time_ms: u64,
    response_time_ms: u64,
    tags: Vec<String>,
    len: u64,
    /// Of the body (`crc32fast`): files from before it was kept do not read back.
    crc32: u32,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MetaFile {
    fn new(key: &str, stored: &Stored, crc32: u32) -> Self {
        Self {
            key: key.to_owned(),
            status: stored.meta.status().as_u16(),
            headers: stored
                .meta
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            request_time_ms: millis(stored.meta.request_time()),
            response_time_ms: millis(stored.meta.response_time()),
            tags: stored.tags.clone(),
            len: stored.body.len() as u64,
            crc32,
        }
    }

    fn entry(self, path: PathBuf) -> Option<(String, DiskEntry)> {
        let mut headers = HeaderMap::new();
        for (n, v) in self.headers {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_bytes(&v).ok()?,
            );
        }
        let meta = StoredMeta::new(
            StatusCode::from_u16(self.status).ok()?,
            headers,
            UNIX_EPOCH + Duration::from_millis(self.request_time_ms),
            UNIX_EPOCH + Duration::from_millis(self.response_time_ms),
        );
        let entry = DiskEntry {
            path,
            meta,
            tags: self.tags,
            len: self.len,
            crc32: self.crc32,
        };
        Some((self.key, entry))
    }
}

/// The body file's metadata file.
fn meta_path(body: &Path) -> PathBuf {
    body.with_extension("meta")
}

fn remove_files(body: &Path) {
    for p in [body.to_path_buf(), meta_path(body)] {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::debug!(path = %p.display(), "cache file not removed: {e}");
        }
    }
}

impl DiskStore {
    pub fn open(dir: PathBuf, capacity_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let evicted = Arc::new(AtomicU64::new(0));
        let counter = evicted.clone();
        let index = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_: &String, e: &Arc<DiskEntry>| u32::try_from(e.len).unwrap_or(u32::MAX))
            .eviction_listener(move |_, e: Arc<DiskEntry>, cause: RemovalCause| {
                // A replaced entry's new files have other names: every removal frees its own.
                remove_files(&e.path);
                count_eviction(&counter, cause);
            })
            .build();
        let store = Self {
            dir,
            index,
            capacity_bytes,
            evicted,
            next_file: AtomicU64::new(0),
        };
        store.reload()?;
        Ok(store)
    }

    /// Indexes what a previous run left; deletes what does not read back whole.
    fn reload(&self) -> std::io::Result<()> {
        let mut highest = None;
        let mut kept = 0u64;
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".obj") else {
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            };
            let n = u64::from_str_radix(stem, 16).ok();
            let read = std::fs::read(meta_path(&path))
                .ok()
                .and_then(|b| serde_json::from_slice::<MetaFile>(&b).ok())
                .filter(|m| entry.metadata().is_ok_and(|md| md.len() == m.len))
                .and_then(|m| m.entry(path.clone()));
            match (n, read) {
                (Some(n), Some((key, e))) => {
                    highest = highest.max(Some(n));
                    self.index.insert(key, Arc::new(e));
                    kept += 1;
                }
                _ => remove_files(&path),
            }
        }
        // Metadata without a body.
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "meta") && !path.with_extension("obj").exists()
            {
                let _ = std::fs::remove_file(&path);
            }
        }
        self.index.run_pending_tasks();
        self.next_file
            .store(highest.map_or(0, |h| h + 1), Ordering::Relaxed);
        if kept > 0 {
            tracing::info!(objects = kept, dir = %self.dir.display(), "disk cache read back");
        }
        Ok(())
    }

    /// Writes an object's body to its own file and indexes it, evicting what no longer fits
    /// (off the async threads: files are written and deleted here).
    pub async fn insert(self: &Arc<Self>, key: String, stored: Arc<Stored>) {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n:016x}.obj"));
        let disk = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            // Hashed here, off the async threads, with the write.
            let crc32 = crc32fast::hash(&stored.body);
            let meta = serde_json::to_vec(&MetaFile::new(&key, &stored, crc32));
            let entry = DiskEntry {
                path,
                meta: stored.meta.clone(),
                tags: stored.tags.clone(),
                len: stored.body.len() as u64,
                crc32,
            };
            let tmp = entry.path.with_extension("tmp");
            // The body first, then its metadata: a crash in between leaves a body that the
            // next start deletes, never metadata pointing at a partial body.
            let written = meta.map_err(std::io::Error::other).and_then(|meta| {
                std::fs::write(&tmp, &stored.body)?;
                std::fs::rename(&tmp, &entry.path)?;
                std::fs::write(meta_path(&entry.path), meta)
            });
            if let Err(e) = written {
                tracing::warn!(dir = %disk.dir.display(), "cache file not written: {e}");
                let _ = std::fs::remove_file(&tmp);
                remove_files(&entry.path);
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

    /// Reads an object back (off the async threads: read and checked there); a file that
    /// has gone missing, or that is not what was written, is a miss and leaves the index.
    pub async fn get(&self, key: &str) -> Option<Stored> {
        let entry = self.index.get(key)?;
        let file = entry.clone();
        let read = tokio::task::spawn_blocking(move || {
            let body = std::fs::read(&file.path)?;
            if body.len() as u64 != file.len || crc32fast::hash(&body) != file.crc32 {
                return Err(std::io::Error::other("its length or CRC-32 differs"));
            }
            Ok(body)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok(body) => Some(Stored::new(
                entry.meta.clone(),
                Bytes::from(body),
                entry.tags.clone(),
            )),
            Err(e) => {
                tracing::warn!(path = %entry.path.display(), "cache file unreadable: {e}");
                self.index.invalidate(key);
                None
            }
        }
    }

    /// Drops objects whose full key matches (files go with them).
    pub fn invalidate_if(&self, f: impl Fn(&str, &[String]) -> bool) {
        invalidate_matching(&self.index, |k, e| f(k, &e.tags));
    }

    pub fn usage(&self) -> Usage {
        usage_of(Tier::Disk, &self.index, self.capacity_bytes, &self.evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn stays_within_its_size_and_deletes_what_it_drops() {
        let dir = std::env::temp_dir().join(format!("myriad-disk-test-{}", std::process::id()));
        let disk = Arc::new(DiskStore::open(dir.clone(), 1 << 20).unwrap());
        for i in 0..100 {
            disk.insert(format!("k{i}"), Arc::new(Stored::sample(100_000, &["t"])))
                .await;
        }
        let usage = disk.usage();
        assert!(usage.bytes <= 1 << 20, "{usage:?}");
        assert!(files(&dir) <= 22, "{} files left", files(&dir));
        assert_eq!(usage.objects as usize * 2, files(&dir), "{usage:?}");
        assert_eq!(usage.evicted + usage.objects, 100, "{usage:?}");
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
        assert_eq!(files(&dir), 0, "purged files are deleted");
        let usage = disk.usage();
        assert_eq!((usage.bytes, usage.objects), (0, 0), "{usage:?}");
        assert_eq!(
            usage.evicted + kept as u64,
            100,
            "a purge is not an eviction"
        );

        // A restart reads the cache back; broken leftovers are deleted.
        disk.insert("x".into(), Arc::new(Stored::sample(10, &["u"])))
            .await;
        drop(disk);
        std::fs::write(dir.join("00000000000000ff.obj"), b"no metadata").unwrap();
        std::fs::write(dir.join("0000000000000100.obj"), b"0123456789").unwrap();
        std::fs::write(dir.join("0000000000000100.meta"), b"{not json").unwrap();
        let reopened = Arc::new(DiskStore::open(dir.clone(), 1 << 20).unwrap());
        let back = reopened.get("x").await.expect("read back after a restart");
        assert_eq!(back.body.len(), 10);
        assert_eq!(back.tags, ["u"]);
        assert_eq!(files(&dir), 2, "one body and its metadata");
        // New files do not overwrite old ones.
        reopened
            .insert("y".into(), Arc::new(Stored::sample(10, &["v"])))
            .await;
        assert!(reopened.get("x").await.is_some() && reopened.get("y").await.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_body_the_disk_changed_or_cut_short_is_a_miss_and_deleted() {
        let dir = std::env::temp_dir().join(format!("myriad-disk-crc-{}", std::process::id()));
        let disk = Arc::new(DiskStore::open(dir.clone(), 1 << 20).unwrap());
        let body_file = |key: &str| disk.index.get(key).unwrap().path.clone();
        for key in ["flipped", "cut", "intact"] {
            disk.insert(key.into(), Arc::new(Stored::sample(1000, &[])))
                .await;
        }
        let flipped = body_file("flipped");
        let mut bytes = std::fs::read(&flipped).unwrap();
        bytes[500] ^= 0x01;
        std::fs::write(&flipped, bytes).unwrap();
        let cut = body_file("cut");
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..999]).unwrap();

        assert!(disk.get("flipped").await.is_none(), "one bit changed");
        assert!(disk.get("cut").await.is_none(), "one byte short");
        assert_eq!(disk.get("intact").await.unwrap().body.len(), 1000);
        disk.index.run_pending_tasks();
        assert!(
            !flipped.exists() && !cut.exists(),
            "the bad files are deleted"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
