//! `whiteboard`: N participants in one meeting watch a whiteboard that a few of them (the
//! drawers, who may talk) draw on, R pen strokes a second in all; the meeting orders the
//! strokes and every participant must get every one. A stroke's delay is from its sending to
//! each participant's getting it drawn; its first point carries its number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myriad_proto::board::{BoardOp, Shape, ShapeKind, BOARD_SIZE};
use myriad_proto::{ClientMsg, MeetingEvent};

use crate::counting::{agreement, Delays};
use crate::crowd::{Crowd, CrowdArgs};
use crate::forward::percentile;
use crate::signal_client::Listener;
use crate::Report;

/// Participants who draw (the first ones to join).
const DRAWERS: usize = 5;
/// Points in each stroke: a short free-hand line.
const STROKE_POINTS: u16 = 32;
/// Strokes a run draws at most: the board holds 40,000 points.
const MAX_STROKES: u64 = 40_000 / STROKE_POINTS as u64;
/// How long the last strokes may take to arrive once drawing stops.
const SETTLE: Duration = Duration::from_secs(10);

/// When each stroke was sent, by its number, and every delay seen.
#[derive(Default)]
struct Strokes {
    sent_at: Mutex<Vec<Instant>>,
    delays: Delays,
}

/// One participant: how many strokes it got.
struct Watcher {
    strokes: Arc<Strokes>,
    got: AtomicU64,
}

impl Listener for Watcher {
    fn welcomed(&self, _join: Duration) {}

    fn event(&self, event: &MeetingEvent) {
        let MeetingEvent::Drawn { shape } = event else {
            return;
        };
        let Some([x, y]) = shape.shape.points.first() else {
            return;
        };
        let k = usize::from(*x) + usize::from(*y) * usize::from(BOARD_SIZE);
        let sent = self
            .strokes
            .sent_at
            .lock()
            .ok()
            .and_then(|s| s.get(k).copied());
        if let Some(sent) = sent {
            self.strokes.delays.since(sent);
        }
        self.got.fetch_add(1, Ordering::Relaxed);
    }
}

/// Stroke `k`: its number in its first point, then a line across the board.
fn stroke(k: u64) -> ClientMsg {
    let size = u64::from(BOARD_SIZE);
    let first = [(k % size) as u16, ((k / size) % size) as u16];
    let points = std::iter::once(first)
        .chain((1..STROKE_POINTS).map(|i| [i * 300, (k % 100) as u16 * 90 + i]))
        .collect();
    ClientMsg::Board {
        op: BoardOp::Draw {
            shape: Shape {
                kind: ShapeKind::Pen,
                color: "#4c8dff".into(),
                width: 3,
                points,
                text: None,
            },
        },
    }
}

pub async fn run(args: CrowdArgs) -> anyhow::Result<Report> {
    let n = args.participants.max(1);
    let strokes = Arc::new(Strokes::default());
    let watchers: Vec<Arc<Watcher>> = (0..n)
        .map(|_| {
            Arc::new(Watcher {
                strokes: strokes.clone(),
                got: AtomicU64::new(0),
            })
        })
        .collect();
    let drawers = DRAWERS.min(n);
    let mut crowd =
        Crowd::gather(args.url.as_deref(), args.nodes, drawers, watchers.clone()).await?;

    let mark = crowd.cpu_mark();
    let sent = crowd
        .pace(args.rate_per_s, args.seconds, |k| {
            if k >= MAX_STROKES {
                return None;
            }
            if let Ok(mut s) = strokes.sent_at.lock() {
                s.push(Instant::now());
            }
            Some(((k as usize) % drawers, stroke(k)))
        })
        .await;
    let got = |w: &Arc<Watcher>| w.got.load(Ordering::Relaxed);
    crowd
        .settle(SETTLE, || watchers.iter().all(|w| got(w) >= sent))
        .await;
    let mut report = Report::new("whiteboard");
    crowd.report_run(&mut report, &mark);
    crowd.disperse();
    let (delivered, short) = agreement(watchers.iter().map(got), sent);
    let delays = strokes.delays.sorted();
    report
        .field("participants", n as u64)
        .field("drawers", drawers as u64)
        .field("rate_per_s", args.rate_per_s)
        .field("strokes_sent", sent)
        .field("strokes_delivered", delivered)
        .field("participants_short", short)
        .field("delay_p50_ms", percentile(&delays, 0.50))
        .field("delay_p99_ms", percentile(&delays, 0.99));
    Ok(report)
}
