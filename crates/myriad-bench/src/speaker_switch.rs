//! `speaker-switch`: K publishers take turns speaking (their audio level rises in their turn)
//! in a meeting that forwards one camera (last-N = 1). For every turn and every subscriber:
//! the time from the new speaker's onset to the subscriber receiving the first key frame on
//! the slot the server re-pointed to the new speaker's camera.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::forward::percentile;
use crate::media::Clip;
use crate::participant::{self, Counters, Role, Schedule, Target, Turn};
use crate::server::Server;
use crate::Report;

#[derive(Debug, Clone)]
pub struct SpeakerSwitchArgs {
    pub publishers: usize,
    pub subscribers: usize,
    pub switches: usize,
    pub turn: Duration,
}

pub async fn run(args: SpeakerSwitchArgs) -> anyhow::Result<Report> {
    let clip = Arc::new(Clip::load_or_encode(&Clip::default_dir())?);
    let server = Server::spawn(None)?;
    let meeting = server
        .create_meeting_with(json!({ "last_n_video": 1 }))
        .await?;
    let target = Target::Myriad {
        ws_url: server.ws_url(),
        local_ip: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let k = args.publishers.max(2);
    let schedule = Arc::new(Schedule {
        start: Mutex::new(None),
        turn: args.turn,
        speakers: k,
    });
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for index in 0..k {
        let token = server
            .token(&meeting, &format!("speaker{index}"), true)
            .await?;
        let role = Role::Publisher(
            clip.clone(),
            Some(Turn {
                index,
                schedule: schedule.clone(),
            }),
        );
        tasks.push(tokio::spawn(participant::run(
            target.clone(),
            token,
            role,
            counters.clone(),
        )));
    }
    for i in 0..args.subscribers.max(1) {
        let token = server.token(&meeting, &format!("viewer{i}"), false).await?;
        tasks.push(tokio::spawn(participant::run(
            target.clone(),
            token,
            Role::Subscriber,
            counters.clone(),
        )));
    }
    let n = args.subscribers.max(1) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while counters.receiving_video.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            counters.stop.store(true, Ordering::Relaxed);
            bail!(
                "only {} of {n} subscribers received video",
                counters.receiving_video.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everyone silent for a moment, then the turns start.
    let start = Instant::now() + Duration::from_secs(2);
    if let Ok(mut s) = schedule.start.lock() {
        *s = Some(start);
    }
    let turns = args.switches + 1;
    tokio::time::sleep_until((start + args.turn * turns as u32).into()).await;
    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }

    let switches = counters
        .switches
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let subscribers: Vec<usize> = {
        let mut ids: Vec<usize> = switches.iter().map(|(s, _)| *s).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut samples = Vec::new();
    // Turn 0 is the first speaker; every later turn is a switch.
    for turn in 1..turns {
        let onset = start + args.turn * turn as u32;
        let until = onset + args.turn;
        for sub in &subscribers {
            let first = switches
                .iter()
                .filter(|(s, at)| s == sub && *at >= onset && *at < until)
                .map(|(_, at)| *at)
                .min();
            if let Some(at) = first {
                samples.push((at - onset).as_secs_f64() * 1000.0);
            }
        }
    }
    samples.sort_by(f64::total_cmp);
    // Every subscriber should see every switch; one that saw none is missing from `subscribers`.
    let missed = (args.switches as u64 * n).saturating_sub(samples.len() as u64);
    let mut report = Report::new("speaker-switch");
    report
        .field("publishers", k as u64)
        .field("subscribers", n)
        .field("switches", samples.len() as u64)
        .field("missed", missed)
        .field("switch_p50_ms", percentile(&samples, 0.50))
        .field("switch_p99_ms", percentile(&samples, 0.99))
        .field(
            "participants_failed",
            counters.failed.load(Ordering::Relaxed),
        );
    Ok(report)
}
