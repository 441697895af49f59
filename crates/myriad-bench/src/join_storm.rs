//! `join-storm`: N signalling-only participants join one meeting at R per second; join
//! latency (connect to welcome), failures, and the server's memory per participant.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myriad_proto::MeetingEvent;

use crate::forward::percentile;
use crate::server::{rss_mb, Server};
use crate::signal_client::{join_and_listen, Listener};
use crate::Report;

#[derive(Debug, Clone)]
pub struct JoinStormArgs {
    pub participants: usize,
    pub rate_per_s: f64,
    pub url: Option<String>,
}

#[derive(Default)]
struct Tally {
    joined: AtomicU64,
    failed: AtomicU64,
    events: AtomicU64,
    join_ms: Mutex<Vec<f64>>,
    first_error: Mutex<Option<String>>,
    stop: AtomicBool,
}

pub async fn run(args: JoinStormArgs) -> anyhow::Result<Report> {
    let server = match &args.url {
        Some(url) => Server::external(url),
        None => Server::spawn(None)?,
    };
    let meeting = server.create_meeting().await?;
    // Tokens first, so the storm measures joins only.
    let mut tokens = Vec::with_capacity(args.participants);
    for i in 0..args.participants {
        tokens.push(server.token(&meeting, &format!("p{i}"), false).await?);
    }
    let pid = server.pid();
    let rss_before = pid.and_then(rss_mb);
    let tally = Arc::new(Tally::default());
    let interval = Duration::from_secs_f64(1.0 / args.rate_per_s.clamp(1.0, 100_000.0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.participants);
    for (i, token) in tokens.into_iter().enumerate() {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        tasks.push(tokio::spawn(participant(
            server.ws_url(),
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
    let rss_after = pid.and_then(rss_mb);
    tally.stop.store(true, Ordering::Relaxed);
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
        .field("server_rss_mb", rss_after)
        .field("rss_kb_per_participant", per_participant_kb)
        .field("events_received", tally.events.load(Ordering::Relaxed));
    Ok(report)
}

impl Listener for Tally {
    fn welcomed(&self, join: Duration) {
        if let Ok(mut v) = self.join_ms.lock() {
            v.push(join.as_secs_f64() * 1000.0);
        }
        self.joined.fetch_add(1, Ordering::Relaxed);
    }

    fn event(&self, _event: &MeetingEvent) {
        self.events.fetch_add(1, Ordering::Relaxed);
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
