//! `http`: the edge's cache against Apache Traffic Server, nginx (`proxy_cache`) and Varnish,
//! each in front of the same origin on loopback, measured one after the other in one run with
//! `wrk`: cached 1 KiB and 1 MiB objects (requests per second, p50/p99), and 2,000 concurrent
//! requests for one cold object (how many reach the origin: request coalescing).

mod origin;
mod peers;
mod wrk;

use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;

use crate::server::tree_cpu_seconds;
use crate::Report;
pub use peers::Kind;

#[derive(Debug, Clone)]
pub struct HttpArgs {
    pub seconds: f64,
    /// wrk threads and connections.
    pub threads: usize,
    pub connections: usize,
    /// Concurrent requests for one cold object.
    pub cold: usize,
    pub targets: Vec<Kind>,
    /// Compare myriad `--waf` with nginx + ModSecurity instead (same CRS rules).
    pub waf: bool,
}

const SMALL: &str = "/obj/1024";
const LARGE: &str = "/obj/1048576";

pub async fn run(args: HttpArgs) -> anyhow::Result<Report> {
    let origin = origin::Origin::start().await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let duration = Duration::from_secs_f64(args.seconds.clamp(1.0, 600.0));
    let mut report = Report::new(if args.waf { "http-waf" } else { "http" });
    report
        .field("seconds", duration.as_secs_f64())
        .field("wrk_threads", args.threads as u64)
        .field("connections", args.connections as u64)
        .field("cold_requests", args.cold as u64);
    let mut results = Vec::new();
    let mut distinct_results: Vec<(Kind, wrk::Load)> = Vec::new();
    for kind in &args.targets {
        let peer =
            tokio::task::block_in_place(|| peers::Peer::start(*kind, origin.port, args.waf))?;
        if args.waf {
            // Same detection: both refuse an attack and pass the clean request.
            let attack = format!("{}{SMALL}?id=1%27%20OR%20%271%27%3D%271", peer.url);
            let status = client.get(attack).send().await?.status();
            anyhow::ensure!(
                status == 403,
                "{}: an SQL injection got {status}",
                kind.name()
            );
        }
        let name = kind.name();
        // Fill the cache, then check that it is what answers.
        for path in [SMALL, LARGE] {
            let before = origin.counts.get(path);
            for _ in 0..3 {
                let res = client.get(format!("{}{path}", peer.url)).send().await?;
                anyhow::ensure!(
                    res.status().is_success(),
                    "{name}: {path} answered {}",
                    res.status()
                );
                res.bytes().await?;
            }
            let fetched = origin.counts.get(path) - before;
            anyhow::ensure!(
                fetched == 1,
                "{name} fetched {path} {fetched} times: not caching"
            );
        }
        let cpu_before = tree_cpu_seconds(peer.pid());
        let small = blocking_wrk(
            &peer.url,
            SMALL,
            (args.threads, args.connections),
            duration,
            None,
        )
        .await?;
        let large = blocking_wrk(
            &peer.url,
            LARGE,
            (args.threads, args.connections),
            duration,
            None,
        )
        .await?;
        if args.waf {
            // Every request with a head of its own (a header no cache key includes): what
            // the WAF costs when no verdict can be reused.
            let script = std::env::temp_dir()
                .join(format!("myriad-bench-distinct-{}.lua", std::process::id()));
            std::fs::write(&script, DISTINCT_HEADS)?;
            let distinct = blocking_wrk(
                &peer.url,
                SMALL,
                (args.threads, args.connections),
                duration,
                Some(script.clone()),
            )
            .await;
            let _ = std::fs::remove_file(&script);
            let distinct = distinct?;
            report
                .field(
                    format!("{name}_rps_1k_distinct_heads"),
                    distinct.requests_per_s,
                )
                .field(format!("{name}_p99_1k_distinct_heads_ms"), distinct.p99_ms);
            distinct_results.push((*kind, distinct));
        }
        let cpu = tree_cpu_seconds(peer.pid())
            .zip(cpu_before)
            .map(|(a, b)| a - b);
        let cold_path = format!("/cold/{name}");
        let before = origin.counts.get(&cold_path);
        let answers = join_all((0..args.cold).map(|_| {
            let (client, url) = (client.clone(), format!("{}{cold_path}", peer.url));
            async move {
                match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => {
                        r.bytes().await.is_ok_and(|b| b.len() == 1024)
                    }
                    _ => false,
                }
            }
        }))
        .await;
        let failed = answers.iter().filter(|ok| !**ok).count();
        let fetches = origin.counts.get(&cold_path) - before;
        report
            .field(format!("{name}_rps_1k"), small.requests_per_s)
            .field(format!("{name}_p50_1k_ms"), small.p50_ms)
            .field(format!("{name}_p99_1k_ms"), small.p99_ms)
            .field(format!("{name}_rps_1m"), large.requests_per_s)
            .field(format!("{name}_p50_1m_ms"), large.p50_ms)
            .field(format!("{name}_p99_1m_ms"), large.p99_ms)
            .field(format!("{name}_cpu_s"), cpu)
            .field(
                format!("{name}_requests_per_cpu_s"),
                cpu.filter(|c| *c > 0.0).map(|c| {
                    (small.requests_per_s + large.requests_per_s) * duration.as_secs_f64() / c
                }),
            )
            .field(format!("{name}_cold_origin_fetches"), fetches)
            .field(format!("{name}_cold_failed"), failed as u64);
        results.push((*kind, small, large));
        drop(peer);
    }
    if let Some((_, ours_small, ours_large)) = results.iter().find(|(k, ..)| *k == Kind::Myriad) {
        let peers: Vec<_> = results
            .iter()
            .filter(|(k, ..)| *k != Kind::Myriad)
            .collect();
        let best = |f: &dyn Fn(&wrk::Load) -> f64, small: bool| {
            peers
                .iter()
                .map(|(_, s, l)| f(if small { s } else { l }))
                .fold(None, |acc: Option<f64>, v| {
                    Some(acc.map_or(v, |a| a.max(v)))
                })
        };
        let lowest = |f: &dyn Fn(&wrk::Load) -> f64, small: bool| {
            peers
                .iter()
                .map(|(_, s, l)| f(if small { s } else { l }))
                .fold(None, |acc: Option<f64>, v| {
                    Some(acc.map_or(v, |a| a.min(v)))
                })
        };
        if let (Some(rps_1k), Some(rps_1m), Some(p99_1k), Some(p99_1m)) = (
            best(&|l| l.requests_per_s, true),
            best(&|l| l.requests_per_s, false),
            lowest(&|l| l.p99_ms, true),
            lowest(&|l| l.p99_ms, false),
        ) {
            report
                .field("rps_1k_vs_fastest_peer", ours_small.requests_per_s / rps_1k)
                .field("rps_1m_vs_fastest_peer", ours_large.requests_per_s / rps_1m)
                .field("p99_1k_vs_best_peer", ours_small.p99_ms / p99_1k)
                .field("p99_1m_vs_best_peer", ours_large.p99_ms / p99_1m);
        }
    }
    let ours = distinct_results.iter().find(|(k, _)| *k == Kind::Myriad);
    let nginx = distinct_results.iter().find(|(k, _)| *k == Kind::Nginx);
    if let (Some((_, ours)), Some((_, theirs))) = (ours, nginx) {
        report.field(
            "rps_1k_distinct_heads_vs_nginx",
            ours.requests_per_s / theirs.requests_per_s,
        );
    }
    Ok(report)
}

/// A wrk script giving each request a header value of its own.
const DISTINCT_HEADS: &str = r#"
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-Request-Id"] = tostring(n)
  return wrk.format(nil, nil, wrk.headers)
end
"#;

async fn blocking_wrk(
    base: &str,
    path: &str,
    (threads, connections): (usize, usize),
    duration: Duration,
    script: Option<std::path::PathBuf>,
) -> anyhow::Result<wrk::Load> {
    let url = format!("{base}{path}");
    tokio::task::spawn_blocking(move || {
        wrk::run(&url, threads, connections, duration, script.as_deref())
    })
    .await
    .context("wrk task")?
}
