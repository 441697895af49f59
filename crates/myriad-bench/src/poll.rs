//! `poll`: N participants in one meeting (over the nodes of a cluster with `--nodes`); a poll
//! is opened through the REST API (as an operator's backend would) and every participant
//! answers it once, spread over `--seconds`; then it is closed. Every vote must be counted
//! once, and everyone must see the results follow. The delay of a results update is taken
//! from the earliest vote it newly counts (votes are counted in about the order they are
//! cast), so it bounds that update's delays from above.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use myriad_proto::{Answer, ClientMsg, MeetingEvent};
use myriad_seeded::SeededRng;
use serde_json::json;

use crate::counting::{agreement, Counting};
use crate::crowd::{Crowd, CrowdArgs};
use crate::forward::percentile;
use crate::signal_client::Listener;
use crate::Report;

const OPTIONS: u32 = 3;

/// One participant: the most voters it has seen counted, and the final count.
struct Seen {
    shared: Arc<Counting>,
    voters: AtomicU64,
    closed_with: AtomicU64,
}

impl Listener for Seen {
    fn welcomed(&self, _join: Duration) {}

    fn event(&self, event: &MeetingEvent) {
        let (results, closed) = match event {
            MeetingEvent::PollResults { results } => (results, false),
            MeetingEvent::PollClosed { results } => (results, true),
            _ => return,
        };
        let now = u64::from(results.voters);
        if closed {
            self.closed_with.store(now, Ordering::Relaxed);
        }
        let before = self.voters.fetch_max(now, Ordering::Relaxed);
        if now > before {
            self.shared.grew(before);
        }
    }
}

pub async fn run(args: CrowdArgs) -> anyhow::Result<Report> {
    let n = args.participants.max(1);
    let shared = Arc::new(Counting::default());
    let seen: Vec<Arc<Seen>> = (0..n)
        .map(|_| {
            Arc::new(Seen {
                shared: shared.clone(),
                voters: AtomicU64::new(0),
                closed_with: AtomicU64::new(0),
            })
        })
        .collect();
    let mut crowd = Crowd::gather(args.url.as_deref(), args.nodes, 0, seen.clone()).await?;
    let server = crowd.cluster.first();
    let polls = format!("/api/v1/meetings/{}/polls", crowd.meeting);
    let options: Vec<String> = (0..OPTIONS).map(|i| format!("option {i}")).collect();
    let body = json!({ "question": "bench?", "kind": { "type": "single", "options": options } });
    let created = server
        .post(&polls, body)
        .await
        .context("opening the poll (needs the API key: a deployment the bench starts)")?;
    let poll = created["id"].as_u64().context("poll id")?;
    // The poll reaches everyone before the first vote.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mark = crowd.cpu_mark();
    let mut rng = SeededRng::new(0x5eed_b011);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    // All of them within the time, the last a little before its end.
    let rate = n as f64 / (args.seconds.max(0.5) * 0.95);
    let cast = crowd
        .pace(rate, args.seconds, |k| {
            // Everyone once.
            let who = *order.get(k as usize)?;
            shared.sent();
            let answer = Answer::Single {
                option: rng.below(u64::from(OPTIONS)) as u32,
            };
            Some((who, ClientMsg::Vote { poll, answer }))
        })
        .await;
    let voters = |s: &Arc<Seen>| s.voters.load(Ordering::Relaxed);
    crowd
        .settle(Duration::from_secs(5), || {
            seen.iter().all(|s| voters(s) >= cast)
        })
        .await;
    let mut report = Report::new("poll");
    crowd.report_run(&mut report, &mark);
    server
        .post(&format!("{polls}/{poll}/close"), json!({}))
        .await?;
    let final_count = |s: &Arc<Seen>| s.closed_with.load(Ordering::Relaxed);
    crowd
        .settle(Duration::from_secs(5), || {
            seen.iter().all(|s| final_count(s) > 0)
        })
        .await;
    crowd.disperse();
    let (counted, miscounted) = agreement(seen.iter().map(final_count), cast);
    let delays = shared.delays_ms();
    report
        .field("participants", n as u64)
        .field("seconds", args.seconds)
        .field("votes_cast", cast)
        .field("votes_counted", counted)
        .field("participants_miscounted", miscounted)
        .field("result_update_p50_ms", percentile(&delays, 0.50))
        .field("result_update_p99_ms", percentile(&delays, 0.99));
    Ok(report)
}
