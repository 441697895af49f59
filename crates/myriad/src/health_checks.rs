//! Active health checks, run by every node: each node of the registry has its `/healthz`
//! asked every 250 ms (400 ms to answer); the verdicts ([`HealthBook`]: two failures out, two
//! passes back, damped when a node flaps) go to the cluster view, whose routable nodes —
//! what routes and DNS answers name — leave out those failing. A node that crashes or hangs
//! so leaves them within a second, before the registry's 2 s of silence would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use myriad_control::{ClusterView, Control};
use myriad_plan::{HealthBook, HealthPolicy};
use tokio::sync::mpsc;

/// How often each node is checked, and how long a check may take (checks of a node that
/// hangs overlap).
const CHECK_EVERY: Duration = Duration::from_millis(250);
const CHECK_TIMEOUT: Duration = Duration::from_millis(400);

pub fn start(control: Arc<Control>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        // A check reads a status, nothing secret: nodes' development certificates pass.
        .danger_accept_invalid_certs(true)
        .build()
        .context("the health checks' HTTP client")?;
    tokio::spawn(run(control, client));
    Ok(())
}

async fn run(control: Arc<Control>, client: reqwest::Client) {
    let mut book = HealthBook::new(HealthPolicy::default());
    let (done_tx, mut done) = mpsc::unbounded_channel::<(String, bool)>();
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
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
        let failing = alive
            .into_iter()
            .filter(|n| !book.is_up(&n.name))
            .map(|n| n.name)
            .collect();
        control.cluster().set_failing(failing);
    }
}
