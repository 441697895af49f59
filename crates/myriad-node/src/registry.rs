//! The cluster's registry as this node sees it: it announces itself every half second in a KV
//! bucket whose entries expire after two seconds, and keeps what the others announce. A node
//! not heard from for two seconds is out, whether or not its entry has expired yet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Kv, KvChange, KvConfig};
use myriad_proto::bus::{decode, encode};
use myriad_proto::cluster::NodeInfo;

const BUCKET: &str = "myriad_nodes";
/// How often a node announces itself.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A node silent this long is out.
pub const SILENT_OUT: Duration = Duration::from_secs(2);

pub struct Registry {
    seen: RwLock<HashMap<String, (NodeInfo, Instant)>>,
}

impl Registry {
    /// Joins the registry on `bus`: announces `me()` now and every [`HEARTBEAT`], and hears
    /// the others.
    pub async fn start(
        bus: &dyn Bus,
        me: impl Fn() -> NodeInfo + Send + 'static,
    ) -> Result<Arc<Registry>, BusError> {
        let kv = bus
            .kv(KvConfig {
                bucket: BUCKET.to_owned(),
                ttl: Some(SILENT_OUT),
            })
            .await?;
        let registry = Arc::new(Registry {
            seen: RwLock::new(HashMap::new()),
        });
        let mut watch = kv.watch().await?;
        for key in kv.keys().await? {
            if let Ok(Some(entry)) = kv.get(&key).await {
                registry.heard(&entry.value);
            }
        }
        let first = me();
        announce(kv.as_ref(), &first).await?;
        registry.heard(&encode(&first));
        let heard = Arc::clone(&registry);
        tokio::spawn(async move {
            while let Some(change) = watch.next().await {
                match change {
                    KvChange::Put(entry) => heard.heard(&entry.value),
                    KvChange::Deleted { key } => heard.forget(&key),
                }
            }
            tracing::warn!("registry watch ended");
        });
        let beating = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let info = me();
                if let Err(e) = announce(kv.as_ref(), &info).await {
                    tracing::warn!("registry heartbeat failed: {e}");
                }
                // Our own entry is fresh as long as we beat, whatever the bus echoes.
                beating.heard(&encode(&info));
            }
        });
        Ok(registry)
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

    fn forget(&self, name: &str) {
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        seen.remove(name);
    }

    /// The nodes heard from within [`SILENT_OUT`], by name.
    pub fn alive(&self) -> Vec<NodeInfo> {
        let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
        let mut alive: Vec<NodeInfo> = seen
            .values()
            .filter(|(_, at)| at.elapsed() < SILENT_OUT)
            .map(|(info, _)| info.clone())
            .collect();
        alive.sort_by(|a, b| a.name.cmp(&b.name));
        alive
    }
}

async fn announce(kv: &dyn Kv, info: &NodeInfo) -> Result<(), BusError> {
    kv.put(&info.name, Bytes::from(encode(info))).await?;
    Ok(())
}
