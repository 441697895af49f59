//! `reactions`: N participants in one meeting (over the nodes of a cluster with `--nodes`)
//! send R reactions a second in all, from random senders; the meeting counts them and every
//! participant must see every one counted. The delay of a counted batch is taken from the
//! earliest reaction it newly counts (reactions are counted in about the order they are sent;
//! a node gathers its own for 50 ms), so it bounds the batch's delays from above.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use myriad_proto::{ClientMsg, MeetingEvent, REACTIONS};
use myriad_seeded::SeededRng;

use crate::counting::{agreement, Counting};
use crate::crowd::{Crowd, CrowdArgs};
use crate::forward::percentile;
use crate::signal_client::Listener;
use crate::Report;

/// How long the counts may take to catch up once sending stops: a count still short then
/// is reported short (and its lateness shows in the delays).
const SETTLE: Duration = Duration::from_secs(10);

/// One participant: how many reactions it has seen counted.
struct Seen {
    shared: Arc<Counting>,
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
        self.shared.grew(before);
    }
}

pub async fn run(args: CrowdArgs) -> anyhow::Result<Report> {
    let n = args.participants.max(1);
    let shared = Arc::new(Counting::default());
    let seen: Vec<Arc<Seen>> = (0..n)
        .map(|_| {
            Arc::new(Seen {
                shared: shared.clone(),
                counted: AtomicU64::new(0),
            })
        })
        .collect();
    let mut crowd = Crowd::gather(args.url.as_deref(), args.nodes, 0, seen.clone()).await?;

    let mark = crowd.cpu_mark();
    let mut rng = SeededRng::new(0x5eed_ee01);
    let sent = crowd
        .pace(args.rate_per_s, args.seconds, |_| {
            shared.sent();
            let emoji = REACTIONS[rng.below(REACTIONS.len() as u64) as usize].to_owned();
            Some((rng.below(n as u64) as usize, ClientMsg::React { emoji }))
        })
        .await;
    let total = |s: &Arc<Seen>| s.counted.load(Ordering::Relaxed);
    crowd
        .settle(SETTLE, || seen.iter().all(|s| total(s) >= sent))
        .await;
    let mut report = Report::new("reactions");
    crowd.report_run(&mut report, &mark);
    crowd.disperse();
    let (counted, miscounted) = agreement(seen.iter().map(total), sent);
    let delays = shared.delays_ms();
    report
        .field("participants", n as u64)
        .field("rate_per_s", args.rate_per_s)
        .field("reactions_sent", sent)
        .field("reactions_counted", counted)
        .field("participants_miscounted", miscounted)
        .field("delay_p50_ms", percentile(&delays, 0.50))
        .field("delay_p99_ms", percentile(&delays, 0.99));
    Ok(report)
}
