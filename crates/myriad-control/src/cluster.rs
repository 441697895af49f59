//! The cluster's registry as this process sees it: every node announces itself every half
//! second in a KV bucket whose entries expire after two seconds; each process keeps what
//! they announce. A node not heard from for two seconds is out, whether or not its entry has
//! expired yet. Coordinators read it to place people and to notice a node that is gone;
//! nodes to route clients and to find each other's relays.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Kv, KvChange, KvConfig};
use myriad_proto::bus::{decode, encode};
use myriad_proto::cluster::NodeInfo;

use crate::core::ClusterView;

const BUCKET: &str = "myriad_nodes";
/// How often a node announces itself.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A node silent this long is out.
pub const SILENT_OUT: Duration = Duration::from_secs(2);

pub struct Cluster {
    kv: Arc<dyn Kv>,
    seen: RwLock<HashMap<String, (NodeInfo, Instant)>>,
    /// This node left: its heartbeats stop.
    withdrawn: AtomicBool,
    /// Nodes failing the active health checks this process runs.
    failing: RwLock<HashSet<String>>,
}

impl Cluster {
    /// Opens the registry on `bus` and hears every announcement from now on.
    pub async fn watch(bus: &dyn Bus) -> Result<Arc<Cluster>, BusError> {
        let kv = bus
            .kv(KvConfig {
                bucket: BUCKET.to_owned(),
                ttl: Some(SILENT_OUT),
            })
            .await?;
        let mut watch = kv.watch().await?;
        let cluster = Arc::new(Cluster {
            kv: Arc::clone(&kv),
            seen: RwLock::new(HashMap::new()),
            withdrawn: AtomicBool::new(false),
            failing: RwLock::new(HashSet::new()),
        });
        for key in kv.keys().await? {
            if let Ok(Some(entry)) = kv.get(&key).await {
                cluster.heard(&entry.value);
            }
        }
        let heard = Arc::downgrade(&cluster);
        tokio::spawn(async move {
            while let Some(change) = watch.next().await {
                let Some(cluster) = heard.upgrade() else {
                    return;
                };
                match change {
                    KvChange::Put(entry) => cluster.heard(&entry.value),
                    KvChange::Deleted { key } => cluster.forget(&key),
                }
            }
            tracing::warn!("registry watch ended");
        });
        Ok(cluster)
    }

    /// Announces this node: `me()` now and every [`HEARTBEAT`] from then on.
    pub async fn announce(
        self: &Arc<Self>,
        me: impl Fn() -> NodeInfo + Send + 'static,
    ) -> Result<(), BusError> {
        let first = me();
        self.put(&first).await?;
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if cluster.withdrawn.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = cluster.put(&me()).await {
                    tracing::warn!("registry heartbeat failed: {e}");
                }
            }
        });
        Ok(())
    }

    /// This node leaves the registry at once (it stops): the others drop it when they hear
    /// the deletion, not a silence later.
    pub async fn withdraw(&self, name: &str) -> Result<(), BusError> {
        self.withdrawn.store(true, Ordering::Relaxed);
        self.kv.delete(name).await
    }

    async fn put(&self, info: &NodeInfo) -> Result<(), BusError> {
        let bytes = encode(info);
        self.kv.put(&info.name, Bytes::from(bytes.clone())).await?;
        // Our own entry is fresh as long as we beat, whatever the bus echoes.
        self.heard(&bytes);
        Ok(())
    }

    fn heard(&self, value: &[u8]) {
        match decode::<NodeInfo>(value) {
            Ok(info) => {
                let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
                seen.insert(info.name.clone(), (info, Instant::now()));
            }
            Err(e) => tracing::warn!("registry entry ignored: {e}"),
        }
    }

    /// Its entry is gone: it counts as silent from now on (and as gone, to coordinators).
    fn forget(&self, name: &str) {
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, at)) = seen.get_mut(name) {
            if let Some(long_ago) = Instant::now().checked_sub(SILENT_OUT) {
                *at = long_ago;
            }
        }
    }
}

impl Cluster {
    /// The nodes that fail their active health checks now (routes leave them out).
    pub fn set_failing(&self, failing: HashSet<String>) {
        *self.failing.write().unwrap_or_else(|p| p.into_inner()) = failing;
    }
}

impl ClusterView for Cluster {
    fn routable(&self) -> Vec<NodeInfo> {
        let failing = self.failing.read().unwrap_or_else(|p| p.into_inner());
        let mut nodes = self.alive();
        nodes.retain(|n| !failing.contains(&n.name));
        nodes
    }

    /// The nodes heard from within [`SILENT_OUT`], by name.
    fn alive(&self) -> Vec<NodeInfo> {
        let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
        let mut alive: Vec<NodeInfo> = seen
            .values()
            .filter(|(_, at)| at.elapsed() < SILENT_OUT)
            .map(|(info, _)| info.clone())
            .collect();
        alive.sort_by(|a, b| a.name.cmp(&b.name));
        alive
    }

    /// What a living node announced last.
    fn node(&self, name: &str) -> Option<NodeInfo> {
        let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
        seen.get(name)
            .filter(|(_, at)| at.elapsed() < SILENT_OUT)
            .map(|(info, _)| info.clone())
    }

    /// Whether a node is known to be gone: heard from once, silent since, or its entry
    /// deleted. A node never heard of is not (it may announce itself any moment).
    fn is_gone(&self, name: &str) -> bool {
        let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
        match seen.get(name) {
            Some((_, at)) => at.elapsed() >= SILENT_OUT,
            None => false,
        }
    }
}
