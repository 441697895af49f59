//! The edge's own cost of a cache hit, without sockets: `Cdn::handle` called in a loop for a
//! stored 1 KiB object (after one miss against the bench origin), the response body read each
//! time, on as many threads as asked (what they share — counters, the limiter, the cache —
//! costs more when two cores touch it). What the kernel, hyper and the load generator add is
//! left out, so changes to the hit path show up here above this machine's noise.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use myriad_cdn::limits::LimitsConfig;
use myriad_cdn::{Cdn, CdnConfig, SiteConfig};

use crate::http::origin::Origin;
use crate::Report;

pub struct HitPathArgs {
    /// Hits per thread.
    pub requests: usize,
    /// Threads hitting the cache at once (the runtime has as many workers).
    pub threads: usize,
}

const OBJECT: &str = "/obj/1024";

pub async fn run(args: HitPathArgs) -> anyhow::Result<Report> {
    let origin = Origin::start().await?;
    let mut config = CdnConfig::new(vec![SiteConfig {
        hosts: Vec::new(),
        upstream: format!("http://127.0.0.1:{}", origin.port),
        signing: None,
        waf: None,
        digests: Default::default(),
    }]);
    // One client address sends everything: per-address limits would be the measurement.
    config.limits = LimitsConfig {
        rate_per_s: 1e12,
        burst: 1e12,
        ..LimitsConfig::default()
    };
    let cdn = Cdn::new(config).context("edge")?;
    let client: SocketAddr = ([192, 0, 2, 1], 50_000).into();
    let hit = move |cdn: &std::sync::Arc<Cdn>| {
        let request = http::Request::get(format!("http://bench.test{OBJECT}"))
            .header("host", "bench.test")
            .header("user-agent", "myriad-bench")
            .header("accept", "*/*")
            .body(Empty::<Bytes>::new());
        let cdn = cdn.clone();
        async move {
            let response = cdn.handle(request?, client).await;
            let status = response.headers().get("cache-status").cloned();
            let body = response.into_body().collect().await;
            let len = body.map(|b| b.to_bytes().len()).unwrap_or(0);
            anyhow::Ok((status, len))
        }
    };
    // The miss that stores it, then a check that what follows are hits.
    hit(&cdn).await?;
    let (status, len) = hit(&cdn).await?;
    let status = status.and_then(|s| s.to_str().ok().map(str::to_owned));
    anyhow::ensure!(
        len == 1024 && status.as_deref().is_some_and(|s| s.contains("hit")),
        "not a hit: {status:?}, {len} bytes"
    );
    for _ in 0..args.requests / 10 {
        hit(&cdn).await?;
    }
    let threads = args.threads.max(1);
    let started = Instant::now();
    let loops = (0..threads).map(|_| {
        let cdn = cdn.clone();
        tokio::spawn(async move {
            for _ in 0..args.requests {
                hit(&cdn).await?;
            }
            anyhow::Ok(())
        })
    });
    for done in futures_util::future::join_all(loops).await {
        done??;
    }
    let elapsed = started.elapsed();
    let total = (args.requests * threads).max(1);
    let mut report = Report::new("hit-path");
    report
        .field("requests_per_thread", args.requests as u64)
        .field("threads", threads as u64)
        // Time per hit on each thread: what one core spends on one hit.
        .field(
            "us_per_hit_per_thread",
            elapsed.as_secs_f64() * 1e6 * threads as f64 / total as f64,
        )
        .field(
            "hits_per_s",
            total as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64(),
        );
    Ok(report)
}
