//! `forward`: one publisher (Opus + 3-layer VP8 simulcast) to N subscribers through the
//! server; packets forwarded per second and per server CPU second, one-way delay, loss.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::media::Clip;
use crate::participant::{self, Counters, Role};
use crate::server::{cpu_seconds, rss_mb, Server};
use crate::Report;

#[derive(Debug, Clone)]
pub struct ForwardArgs {
    pub subscribers: usize,
    pub seconds: f64,
    /// A running deployment instead of a `myriad serve` started for the run.
    pub url: Option<String>,
}

/// New subscribers per second while the audience builds up.
const JOIN_RATE_PER_S: u64 = 100;

pub async fn run(args: ForwardArgs) -> anyhow::Result<Report> {
    let clip = Arc::new(Clip::load_or_encode(&Clip::default_dir())?);
    let server = match &args.url {
        Some(url) => Server::external(url),
        None => Server::spawn()?,
    };
    let meeting = server.create_meeting().await?;
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();

    let token = server.token(&meeting, "publisher", true).await?;
    tasks.push(tokio::spawn(participant::run(
        server.ws_url(),
        token,
        Role::Publisher(clip),
        counters.clone(),
    )));
    wait_for(Duration::from_secs(15), || {
        counters.connected.load(Ordering::Relaxed) >= 1
    })
    .await
    .context("the publisher did not connect")?;

    for i in 0..args.subscribers {
        let token = server.token(&meeting, &format!("sub{i}"), false).await?;
        tasks.push(tokio::spawn(participant::run(
            server.ws_url(),
            token,
            Role::Subscriber,
            counters.clone(),
        )));
        tokio::time::sleep(Duration::from_micros(1_000_000 / JOIN_RATE_PER_S)).await;
    }
    let n = args.subscribers as u64;
    let limit = Duration::from_secs(20 + n / 10);
    let all_in = wait_for(limit, || {
        counters.receiving_video.load(Ordering::Relaxed) >= n
    })
    .await;
    let receiving = counters.receiving_video.load(Ordering::Relaxed);
    if all_in.is_err() {
        // Measured anyway, and reported: the figures then cover fewer subscribers.
        let error = counters.first_error.lock().ok().and_then(|e| e.clone());
        eprintln!(
            "warning: {receiving} of {n} subscribers received video within {limit:?}; {} failed{}",
            counters.failed.load(Ordering::Relaxed),
            error
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
    if receiving == 0 {
        counters.stop.store(true, Ordering::Relaxed);
        bail!("no subscriber received video");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pid = server.pid();
    let cpu_before = pid.and_then(cpu_seconds);
    let bench_before = cpu_seconds(std::process::id());
    let packets_before = counters.packets.load(Ordering::Relaxed);
    let start = Instant::now();
    counters.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds.clamp(0.5, 600.0))).await;
    counters.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let packets = counters.packets.load(Ordering::Relaxed) - packets_before;
    let server_cpu = match (pid.and_then(cpu_seconds), cpu_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let bench_cpu = match (cpu_seconds(std::process::id()), bench_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let rss = pid.and_then(rss_mb);

    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let mut delays = counters
        .delays_ms
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    delays.sort_by(f64::total_cmp);
    let lost = counters.lost_packets.load(Ordering::Relaxed);
    let total = counters.packets.load(Ordering::Relaxed) + lost;

    let pps = packets as f64 / elapsed;
    let mut report = Report::new("forward");
    report
        .field("target", if args.url.is_some() { "url" } else { "myriad" })
        .field("subscribers", n)
        .field("subscribers_receiving", receiving)
        .field(
            "participants_failed",
            counters.failed.load(Ordering::Relaxed),
        )
        .field("seconds", elapsed)
        .field("packets_forwarded_per_s", pps.round())
        .field("server_cpu_s", server_cpu)
        .field(
            "packets_per_cpu_s",
            server_cpu
                .filter(|c| *c > 0.0)
                .map(|c| (packets as f64 / c).round()),
        )
        .field("delay_p50_ms", percentile(&delays, 0.50))
        .field("delay_p99_ms", percentile(&delays, 0.99))
        .field(
            "loss_pct",
            if total > 0 {
                lost as f64 * 100.0 / total as f64
            } else {
                0.0
            },
        )
        .field("server_rss_mb", rss)
        .field("bench_cpu_s", bench_cpu)
        .field("delay_samples", delays.len() as u64);
    Ok(report)
}

pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(idx).copied()
}

async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let end = Instant::now() + limit;
    while !done() {
        if Instant::now() > end {
            bail!("timed out after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
