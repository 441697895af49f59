//! `join-storm`: N signalling-only participants join one meeting at R per second, spread
//! over the nodes of a cluster (`--nodes`); join latency (connect to welcome), failures,
//! whether everyone then receives the meeting's events (a last chat must reach all), and the
//! nodes' memory per participant.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myriad_proto::{ClientMsg, MeetingEvent};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, ClusterOpts};
use crate::forward::percentile;
use crate::signal_client::{join_and_listen, Listener};
use crate::Report;

#[derive(Debug, Clone)]
pub struct JoinStormArgs {
    pub participants: usize,
    pub rate_per_s: f64,
    pub url: Option<String>,
    /// Nodes of a cluster started for the run (0 or 1: one server alone).
    pub nodes: usize,
}

/// The chat that ends the storm: everyone must get it.
const LAST_WORD: &str = "join-storm: the last word";

#[derive(Default)]
struct Tally {
    joined: AtomicU64,
    failed: AtomicU64,
    events: AtomicU64,
    join_ms: Mutex<Vec<f64>>,
    first_error: Mutex<Option<String>>,
    stop: AtomicBool,
    /// Participants that got the last word.
    heard_last: AtomicU64,
}

pub async fn run(args: JoinStormArgs) -> anyhow::Result<Report> {
    let cluster = match &args.url {
        Some(url) => Cluster::external(url),
        None => Cluster::start(&storm_cluster(&args))?,
    };
    let server = cluster.first();
    // Room for everyone and the speaker of the last word.
    let meeting = server
        .create_meeting_with(serde_json::json!({ "max_participants": args.participants + 1 }))
        .await?;
    // Tokens first, so the storm measures joins only.
    let mut tokens = Vec::with_capacity(args.participants);
    for i in 0..args.participants {
        tokens.push(server.token(&meeting, &format!("p{i}"), false).await?);
    }
    let speaker_token = server.token(&meeting, "speaker", true).await?;
    let rss_before = cluster.nodes_rss_mb();
    let tally = Arc::new(Tally::default());
    let interval = Duration::from_secs_f64(1.0 / args.rate_per_s.clamp(1.0, 100_000.0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.participants);
    for (i, token) in tokens.into_iter().enumerate() {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        // Spread over the nodes, as a load balancer in front of them would.
        tasks.push(tokio::spawn(participant(
            cluster.node(i).ws_url(),
            token,
            tally.clone(),
        )));
    }
    let n = args.participants as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.joined.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < n
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    // Let the server settle its counts and event batches before measuring memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = cluster.nodes_rss_mb();
    // One more person says a last word: everyone in must get it.
    let (say, said) = mpsc::channel(1);
    let speaker = {
        let url = cluster.first().ws_url();
        tokio::spawn(async move {
            if let Err(e) = join_and_listen(&url, speaker_token, &Quiet, Some(said)).await {
                eprintln!("the speaker of the last word failed: {e:#}");
            }
        })
    };
    let _ = say.send(ClientMsg::chat(LAST_WORD.into())).await;
    let joined_now = tally.joined.load(Ordering::Relaxed);
    let heard_by = Instant::now() + Duration::from_secs(15);
    while tally.heard_last.load(Ordering::Relaxed) < joined_now && Instant::now() < heard_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tally.stop.store(true, Ordering::Relaxed);
    speaker.abort();
    for t in tasks {
        t.abort();
    }

    let joined = tally.joined.load(Ordering::Relaxed);
    let failed = n - joined;
    if let Some(e) = tally.first_error.lock().ok().and_then(|e| e.clone()) {
        eprintln!("first failure: {e}");
    }
    let mut join_ms = tally.join_ms.lock().map(|v| v.clone()).unwrap_or_default();
    join_ms.sort_by(f64::total_cmp);
    let per_participant_kb = match (rss_before, rss_after) {
        (Some(b), Some(a)) if joined > 0 => Some((a - b) * 1024.0 / joined as f64),
        _ => None,
    };
    let mut report = Report::new("join-storm");
    report
        .field("participants", n)
        .field("rate_per_s", args.rate_per_s)
        .field("joined", joined)
        .field("failed", failed)
        .field("wall_s", wall)
        .field("join_p50_ms", percentile(&join_ms, 0.50))
        .field("join_p99_ms", percentile(&join_ms, 0.99))
        .field("nodes", cluster.nodes.len() as u64)
        .field("nodes_rss_mb", rss_after)
        .field("rss_kb_per_participant", per_participant_kb)
        .field("events_received", tally.events.load(Ordering::Relaxed))
        .field(
            "received_last_chat",
            tally.heard_last.load(Ordering::Relaxed),
        );
    Ok(report)
}

/// The cluster for a storm: partitions big enough to seat everyone on the nodes' workers
/// (these participants carry no media).
fn storm_cluster(args: &JoinStormArgs) -> ClusterOpts {
    let nodes = args.nodes.max(1);
    let per_node = args.participants.div_ceil(nodes) as u32 + 100;
    ClusterOpts {
        nodes: args.nodes,
        workers: Some(2),
        partition_size: Some(per_node.div_ceil(2).max(500)),
        capacity: Some(per_node.max(2000)),
        ..ClusterOpts::default()
    }
}

/// The speaker's own listener: what it receives does not count.
struct Quiet;

impl Listener for Quiet {
    fn welcomed(&self, _join: Duration) {}

    fn event(&self, _event: &MeetingEvent) {}
}

impl Listener for Tally {
    fn welcomed(&self, join: Duration) {
        if let Ok(mut v) = self.join_ms.lock() {
            v.push(join.as_secs_f64() * 1000.0);
        }
        self.joined.fetch_add(1, Ordering::Relaxed);
    }

    fn event(&self, event: &MeetingEvent) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if matches!(event, MeetingEvent::Chat { text, .. } if text == LAST_WORD) {
            self.heard_last.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Joins and then reads every meeting event until stopped.
async fn participant(ws_url: String, token: String, tally: Arc<Tally>) {
    if let Err(e) = join_and_listen(&ws_url, token, tally.as_ref(), None).await {
        if !tally.stop.load(Ordering::Relaxed) {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = tally.first_error.lock() {
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}
