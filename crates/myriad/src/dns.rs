//! GeoDNS next to a node: the zone answered from this node's view of the registry, and the
//! active health checks that take failing nodes out of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use myriad_control::{now_unix_s, ClusterView, Control};
use myriad_dns::{Dns, HealthBook, NodeSnapshot, Policy, RunningDns, Zone};
use myriad_geo::Geo;
use tokio::sync::mpsc;

use crate::config::DnsConfig;

/// How often the answers take a fresh look at the registry (which hears each node every half
/// second, and a drain or a withdrawal at once).
const REFRESH: Duration = Duration::from_millis(100);
/// How often each listed node's `/healthz` is checked, and how long a check may take (checks
/// of a node that hangs overlap): a node that crashed or hangs leaves the answers after two
/// failed checks, within a second, well before the registry's 2 s of silence.
const CHECK_EVERY: Duration = Duration::from_millis(250);
const CHECK_TIMEOUT: Duration = Duration::from_millis(400);

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
    let nodes: NodeSnapshot = Arc::new(ArcSwap::from_pointee(control.cluster().alive()));
    tokio::spawn(keep_current(control, Arc::clone(&nodes))?);
    Dns::new(zone, geo, nodes)
        .serve(settings.addr)
        .await
        .with_context(|| format!("binding DNS (UDP and TCP) at {}", settings.addr))
}

/// Keeps the answers' view current: the registry's living nodes, less those failing their
/// active checks.
fn keep_current(
    control: Arc<Control>,
    nodes: NodeSnapshot,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let client = reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        // A check reads a status, nothing secret: nodes' development certificates pass.
        .danger_accept_invalid_certs(true)
        .build()
        .context("the health checks' HTTP client")?;
    Ok(async move {
        let mut book = HealthBook::new(Policy::default());
        let (done_tx, mut done) = mpsc::unbounded_channel::<(String, bool)>();
        let mut refresh = tokio::time::interval(REFRESH);
        let mut check = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = refresh.tick() => {}
                _ = check.tick() => {
                    for node in control.cluster().alive() {
                        let (client, done_tx) = (client.clone(), done_tx.clone());
                        tokio::spawn(async move {
                            let url = format!("{}/healthz", node.url.trim_end_matches('/'));
                            let passed = client.get(&url).send().await.is_ok_and(|r| r.status().is_success());
                            let _ = done_tx.send((node.name, passed));
                        });
                    }
                    continue;
                }
                Some((name, passed)) = done.recv() => {
                    if !book.record(&name, passed, Instant::now()) {
                        continue;
                    }
                    tracing::warn!(node = %name, up = passed, "health checks changed a node's verdict");
                }
            }
            let alive = control.cluster().alive();
            book.retain(|name| alive.iter().any(|n| n.name == name));
            nodes.store(Arc::new(
                alive.into_iter().filter(|n| book.is_up(&n.name)).collect(),
            ));
        }
    })
}

/// Keeps the server's failure in the log: the node goes on without DNS.
pub fn watch(running: RunningDns) {
    tokio::spawn(async move {
        if let Err(e) = running.wait().await {
            tracing::error!("{e}");
        }
    });
}
