//! GeoDNS next to a node: the zone answered from this node's view of the registry.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use myriad_control::{now_unix_s, ClusterView, Control};
use myriad_dns::{Dns, Geo, NodeSnapshot, RunningDns, Zone};

use crate::config::DnsConfig;

/// How often the answers take a fresh look at the registry (which hears each node every half
/// second, and a drain or a withdrawal at once).
const REFRESH: Duration = Duration::from_millis(100);

pub async fn start(settings: &DnsConfig, control: Arc<Control>) -> anyhow::Result<RunningDns> {
    let geo = Geo::new(settings.geoip.as_deref(), settings.prefixes.clone())?;
    let zone = Zone::new(
        settings.zone.clone(),
        settings.nameservers.clone(),
        settings.ttl,
        settings.answers,
        u32::try_from(now_unix_s()).unwrap_or(u32::MAX),
    );
    let nodes: NodeSnapshot = Arc::new(ArcSwap::from_pointee(control.cluster().alive()));
    let view = Arc::clone(&nodes);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tick.tick().await;
            view.store(Arc::new(control.cluster().alive()));
        }
    });
    Dns::new(zone, geo, nodes)
        .serve(settings.addr)
        .await
        .with_context(|| format!("binding DNS (UDP and TCP) at {}", settings.addr))
}

/// Keeps the server's failure in the log: the node goes on without DNS.
pub fn watch(running: RunningDns) {
    tokio::spawn(async move {
        if let Err(e) = running.wait().await {
            tracing::error!("{e}");
        }
    });
}
