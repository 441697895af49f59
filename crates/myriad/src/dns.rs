//! GeoDNS next to a node: the zone answered from this node's view of the registry, less the
//! nodes failing the active health checks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use myriad_control::{now_unix_s, ClusterView, Control};
use myriad_dns::{Dns, NodeSnapshot, RunningDns, Zone};
use myriad_geo::Geo;

use crate::config::DnsConfig;

/// How often the answers take a fresh look at the registry (which hears each node every half
/// second, and a drain or a withdrawal at once) and the health checks' verdicts.
const REFRESH: Duration = Duration::from_millis(100);

pub async fn start(
    settings: &DnsConfig,
    control: Arc<Control>,
    geo: Arc<Geo>,
) -> anyhow::Result<RunningDns> {
    let zone = Zone::new(
        settings.zone.clone(),
        settings.nameservers.clone(),
        settings.ttl,
        settings.answers,
        u32::try_from(now_unix_s()).unwrap_or(u32::MAX),
    );
    let nodes: NodeSnapshot = Arc::new(ArcSwap::from_pointee(control.cluster().routable()));
    tokio::spawn(keep_current(control, Arc::clone(&nodes)));
    Dns::new(zone, geo, nodes, settings.rrl)
        .serve(settings.addr)
        .await
        .with_context(|| format!("binding DNS (UDP and TCP) at {}", settings.addr))
}

/// Keeps the answers' view current: the registry's living nodes, less those failing their
/// active checks (`crate::health_checks`).
async fn keep_current(control: Arc<Control>, nodes: NodeSnapshot) {
    let mut refresh = tokio::time::interval(REFRESH);
    loop {
        refresh.tick().await;
        nodes.store(Arc::new(control.cluster().routable()));
    }
}

/// Keeps the server's failure in the log: the node goes on without DNS.
pub fn watch(running: RunningDns) {
    tokio::spawn(async move {
        if let Err(e) = running.wait().await {
            tracing::error!("{e}");
        }
    });
}
