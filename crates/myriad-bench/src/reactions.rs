//! `reactions`: N participants in one meeting (over the nodes of a cluster with `--nodes`)
//! send R reactions a second in all, from random senders; the meeting counts them and every
//! participant must see every one counted. The delay of a counted batch is taken from the
//! earliest reaction it newly counts (reactions are counted in about the order they are sent;
//! a node gathers its own for 50 ms), so it bounds the batch's delays from above.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myriad_proto::{ClientMsg, MeetingEvent, REACTIONS};
use myriad_seeded::SeededRng;

use crate::chat::used;
use crate::crowd::{Crowd, CrowdArgs};
use crate::forward::percentile;
use crate::server::cpu_seconds;
use crate::signal_client::Listener;
use crate::Report;

/// What all participants share: when each reaction was sent, and the delays seen.
#[derive(Default)]
struct Shared {
    sent_at: Mutex<Vec<Instant>>,
    delays_ms: Mutex<Vec<f64>>,
}

/// One participant: how many reactions it has seen counted.
struct Seen {
    shared: Arc<Shared>,
    counted: AtomicU64,
}

impl Listener for Seen {
    fn welcomed(&self, _join: Duration) {}

    fn event(&self, event: &MeetingEvent) {
        let MeetingEvent::Reactions { counts } = event else {
            return;
        };
        let batch: u64 = counts.iter().map(|c| u64::from(c.count)).sum();
        let before = self.counted.fetch_add(batch, Ordering::Relaxed);
        let earliest = self
            .shared
            .sent_at
            .lock()
            .ok()
            .and_then(|s| s.get(before as usize).copied());
        if let (Some(sent), Ok(mut delays)) = (earliest, self.shared.delays_ms.lock()) {
            delays.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

pub async fn run(args: CrowdArgs) -> anyhow::Result<Report> {
    let n = args.participants.max(1);
    let shared = Arc::new(Shared::default());
    let seen: Vec<Arc<Seen>> = (0..n)
        .map(|_| {
            Arc::new(Seen {
                shared: shared.clone(),
                counted: AtomicU64::new(0),
            })
        })
        .collect();
    let mut crowd = Crowd::gather(args.url.as_deref(), args.nodes, seen.clone()).await?;

    let server_cpu_before = crowd.cluster.cpu_seconds();
    let bench_cpu_before = cpu_seconds(std::process::id());
    let mut rng = SeededRng::new(0x5eed_ee01);
    let sent = crowd
        .pace(args.rate_per_s, args.seconds, |_| {
            if let Ok(mut s) = shared.sent_at.lock() {
                s.push(Instant::now());
            }
            let emoji = REACTIONS[rng.below(REACTIONS.len() as u64) as usize].to_owned();
            (rng.below(n as u64) as usize, ClientMsg::React { emoji })
        })
        .await;
    let all_counted = || {
        seen.iter()
            .all(|s| s.counted.load(Ordering::Relaxed) >= sent)
    };
    crowd.settle(Duration::from_secs(3), all_counted).await;
    let server_cpu = used(crowd.cluster.cpu_seconds(), server_cpu_before);
    let bench_cpu = used(cpu_seconds(std::process::id()), bench_cpu_before);
    crowd.disperse();
    let totals: Vec<u64> = seen
        .iter()
        .map(|s| s.counted.load(Ordering::Relaxed))
        .collect();
    // What the meeting counted, as the participant who saw least of it saw it.
    let counted = totals.iter().copied().min().unwrap_or(0);
    let short = totals.iter().filter(|t| **t != sent).count() as u64;
    let mut delays = shared
        .delays_ms
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    delays.sort_by(f64::total_cmp);
    let mut report = Report::new("reactions");
    report
        .field("participants", n as u64)
        .field("rate_per_s", args.rate_per_s)
        .field("reactions_sent", sent)
        .field("reactions_counted", counted)
        .field("participants_miscounted", short)
        .field("failed_participants", crowd.failed())
        .field("delay_p50_ms", percentile(&delays, 0.50))
        .field("delay_p99_ms", percentile(&delays, 0.99))
        .field("nodes", crowd.cluster.nodes.len() as u64)
        .field("server_cpu_s", server_cpu)
        .field("bench_cpu_s", bench_cpu);
    Ok(report)
}
