//! `chat`: N participants in one meeting (spread over the nodes of a cluster with
//! `--nodes`), M chat messages per second from random senders; every participant must
//! receive every message. Delivery, loss, delay (the bench sends and receives, so it knows
//! each message's send time) and the CPU the servers spent per message delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myriad_proto::{ClientMsg, MeetingEvent};
use myriad_seeded::SeededRng;

use crate::counting::Delays;
use crate::crowd::{Crowd, CrowdArgs};
use crate::forward::percentile;
use crate::signal_client::Listener;
use crate::Report;

const MARK: &str = "bench-chat:";

#[derive(Default)]
struct Tally {
    delivered: AtomicU64,
    sent_at: Mutex<HashMap<u64, Instant>>,
    delays: Delays,
}

impl Listener for Tally {
    fn welcomed(&self, _join: Duration) {}

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
        if let Some(sent) = sent {
            self.delays.since(sent);
        }
    }
}

pub async fn run(args: CrowdArgs) -> anyhow::Result<Report> {
    let n = args.participants.max(1);
    let tally = Arc::new(Tally::default());
    let mut crowd =
        Crowd::gather(args.url.as_deref(), args.nodes, 0, vec![tally.clone(); n]).await?;

    let mark = crowd.cpu_mark();
    let mut rng = SeededRng::new(0x5eed_c4a7);
    let sent = crowd
        .pace(args.rate_per_s, args.seconds, |k| {
            if let Ok(mut m) = tally.sent_at.lock() {
                m.insert(k, Instant::now());
            }
            let text = format!("{MARK}{k}");
            Some((rng.below(n as u64) as usize, ClientMsg::chat(text)))
        })
        .await;
    let expected = sent * n as u64;
    crowd
        .settle(Duration::from_secs(2), || {
            tally.delivered.load(Ordering::Relaxed) >= expected
        })
        .await;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let mut report = Report::new("chat");
    let server_cpu = crowd.report_run(&mut report, &mark);
    crowd.disperse();
    let delays = tally.delays.sorted();
    report
        .field("participants", n as u64)
        .field("rate_per_s", args.rate_per_s)
        .field("sent", sent)
        .field("delivered", delivered)
        .field("expected", expected)
        .field("lost", expected.saturating_sub(delivered))
        .field("delay_p50_ms", percentile(&delays, 0.50))
        .field("delay_p99_ms", percentile(&delays, 0.99))
        .field(
            "cpu_us_per_delivered",
            server_cpu
                .filter(|_| delivered > 0)
                .map(|c| c * 1e6 / delivered as f64),
        );
    Ok(report)
}
