//! `chat`: N participants in one meeting (spread over the nodes of a cluster with
//! `--nodes`), M chat messages per second from random senders; every participant must
//! receive every message. Delivery, loss, delay (the bench sends and receives, so it knows
//! each message's send time) and the CPU the servers spent per message delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use myriad_proto::{ClientMsg, MeetingEvent};
use myriad_seeded::SeededRng;
use tokio::sync::mpsc;

use crate::cluster::{Cluster, ClusterOpts};
use crate::forward::percentile;
use crate::server::cpu_seconds;
use crate::signal_client::{join_and_listen, Listener};
use crate::Report;

#[derive(Debug, Clone)]
pub struct ChatArgs {
    pub participants: usize,
    pub rate_per_s: f64,
    pub seconds: f64,
    pub url: Option<String>,
    /// Nodes of a cluster started for the run (0 or 1: one server alone).
    pub nodes: usize,
}

const MARK: &str = "bench-chat:";
/// Joins per second while the room fills.
const JOIN_RATE_PER_S: f64 = 500.0;

#[derive(Default)]
struct Tally {
    joined: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    sent_at: Mutex<HashMap<u64, Instant>>,
    delays_ms: Mutex<Vec<f64>>,
}

impl Listener for Tally {
    fn welcomed(&self, _join: Duration) {
        self.joined.fetch_add(1, Ordering::Relaxed);
    }

    fn event(&self, event: &MeetingEvent) {
        let MeetingEvent::Chat { text, .. } = event else {
            return;
        };
        let Some(id) = text
            .strip_prefix(MARK)
            .and_then(|id| id.parse::<u64>().ok())
        else {
            return;
        };
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let sent = self.sent_at.lock().ok().and_then(|m| m.get(&id).copied());
        if let (Some(sent), Ok(mut delays)) = (sent, self.delays_ms.lock()) {
            delays.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

pub async fn run(args: ChatArgs) -> anyhow::Result<Report> {
    let cluster = match &args.url {
        Some(url) => Cluster::external(url),
        None => {
            let per_node = args.participants.div_ceil(args.nodes.max(1)) as u32 + 100;
            Cluster::start(&ClusterOpts {
                nodes: args.nodes,
                workers: Some(2),
                partition_size: Some(per_node.div_ceil(2).max(500)),
                capacity: Some(per_node.max(2000)),
            })?
        }
    };
    let server = cluster.first();
    let meeting = server.create_meeting().await?;
    let n = args.participants.max(1);
    let tally = Arc::new(Tally::default());
    let mut senders = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let token = server.token(&meeting, &format!("p{i}"), false).await?;
        let (tx, rx) = mpsc::channel(64);
        senders.push(tx);
        let (url, tally) = (cluster.node(i).ws_url(), tally.clone());
        tasks.push(tokio::spawn(async move {
            if join_and_listen(&url, token, tally.as_ref(), Some(rx))
                .await
                .is_err()
            {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
        tokio::time::sleep_until(
            (start + Duration::from_secs_f64(i as f64 / JOIN_RATE_PER_S)).into(),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.joined.load(Ordering::Relaxed) < n as u64 {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} participants joined",
                tally.joined.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Join events and counts have settled; only chat is counted from here on.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let server_cpu_before = cluster.cpu_seconds();
    let bench_cpu_before = cpu_seconds(std::process::id());
    let mut rng = SeededRng::new(0x5eed_c4a7);
    let interval = Duration::from_secs_f64(1.0 / args.rate_per_s.clamp(0.1, 10_000.0));
    let begin = Instant::now();
    let end = begin + Duration::from_secs_f64(args.seconds.clamp(0.5, 600.0));
    let mut sent = 0u64;
    while Instant::now() < end {
        let sender = &senders[rng.below(n as u64) as usize];
        if let Ok(mut m) = tally.sent_at.lock() {
            m.insert(sent, Instant::now());
        }
        let msg = ClientMsg::Chat {
            text: format!("{MARK}{sent}"),
        };
        if sender.send(msg).await.is_ok() {
            sent += 1;
        }
        tokio::time::sleep_until((begin + interval * (sent as u32)).into()).await;
    }
    let expected = sent * n as u64;
    // Stragglers get two seconds.
    let grace = Instant::now() + Duration::from_secs(2);
    while tally.delivered.load(Ordering::Relaxed) < expected && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let used = |after: Option<f64>, before: Option<f64>| match (after, before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let server_cpu = used(cluster.cpu_seconds(), server_cpu_before);
    let bench_cpu = used(cpu_seconds(std::process::id()), bench_cpu_before);
    drop(senders);
    for t in tasks {
        t.abort();
    }
    let mut delays = tally
        .delays_ms
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    delays.sort_by(f64::total_cmp);
    let mut report = Report::new("chat");
    report
        .field("participants", n as u64)
        .field("rate_per_s", args.rate_per_s)
        .field("sent", sent)
        .field("delivered", delivered)
        .field("expected", expected)
        .field("lost", expected.saturating_sub(delivered))
        .field("failed_participants", tally.failed.load(Ordering::Relaxed))
        .field("delay_p50_ms", percentile(&delays, 0.50))
        .field("delay_p99_ms", percentile(&delays, 0.99))
        .field("nodes", cluster.nodes.len() as u64)
        .field("server_cpu_s", server_cpu)
        .field(
            "cpu_us_per_delivered",
            server_cpu
                .filter(|_| delivered > 0)
                .map(|c| c * 1e6 / delivered as f64),
        )
        .field("bench_cpu_s", bench_cpu);
    Ok(report)
}
