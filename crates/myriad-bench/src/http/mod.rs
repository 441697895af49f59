//! `http`: the edge's cache against Apache Traffic Server, nginx (`proxy_cache`) and Varnish,
//! each in front of the same origin on loopback, all running through one bench and measured
//! in turns with `wrk` (`--rounds`, medians reported): cached 1 KiB and 1 MiB objects
//! (requests per second, p50/p99), 1 MiB again with a client whose kernel drops the bodies
//! (`discard`: wrk's own copying is the ceiling of its 1 MiB figures), requests that are not
//! cacheable (`pass`: a new URL each, answered `private, no-store`, as an API or a page with
//! cookies is: what a cache costs as a plain proxy, in CPU per request), and 2,000
//! concurrent requests for one cold object (how many reach the origin: request coalescing).

mod cpus;
mod discard;
pub(crate) mod origin;
mod peers;
mod wrk;

use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;

use crate::server::tree_cpu_seconds;
use crate::Report;
use cpus::Split;
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
    /// Measurements per cache, taken in turns; figures are medians.
    pub rounds: usize,
    /// wrk on one CPU, the caches on the others (`cpus`).
    pub pin: bool,
}

/// How wrk loads a cache.
#[derive(Clone, Copy)]
struct Generator {
    threads: usize,
    connections: usize,
    pin: Option<Split>,
}

const SMALL: &str = "/obj/1024";
const LARGE: &str = "/obj/1048576";
/// Between resuming a paused cache and loading it.
const SETTLE: Duration = Duration::from_millis(200);

/// What a load generator measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What one round measured of one cache.
struct Round {
    small: Load,
    large: Load,
    /// 1 MiB through the `discard` client (not with `--waf`, whose loads are 1 KiB).
    large_discarded: Option<Load>,
    /// With `--waf`: cached 1 KiB with a head of its own for every request, one load per
    /// `VARIED_HEADS` script.
    varied: Vec<Load>,
    /// Not cacheable, passed to the origin (not with `--waf`), and the cache's CPU seconds
    /// over that load.
    pass: Option<(Load, Option<f64>)>,
}

/// One load of a round.
#[derive(Clone, Copy)]
enum Step {
    Small,
    Large,
    LargeDiscarded,
    /// The `VARIED_HEADS` script of this index.
    Varied(usize),
    /// A new uncacheable URL every request (`PASS_SCRIPT`).
    Pass,
}

impl Step {
    async fn measure(
        self,
        peer: &peers::Peer,
        load: Generator,
        duration: Duration,
        scripts: &Scripts,
    ) -> anyhow::Result<Load> {
        match self {
            Step::Small => blocking_wrk(&peer.url(), SMALL, load, duration, None).await,
            Step::Large => blocking_wrk(&peer.url(), LARGE, load, duration, None).await,
            Step::LargeDiscarded => {
                let (port, connections) = (peer.port, load.connections);
                let discarded = tokio::task::spawn_blocking(move || {
                    discard::run(port, LARGE, connections, duration, load.pin)
                });
                discarded.await.context("load task")?
            }
            Step::Varied(v) => {
                let script = Some(scripts.varied[v].clone());
                blocking_wrk(&peer.url(), SMALL, load, duration, script).await
            }
            Step::Pass => {
                let script = Some(scripts.pass.clone());
                blocking_wrk(&peer.url(), "/pass/0", load, duration, script).await
            }
        }
    }
}

impl Round {
    /// A round from its loads, measured in the order of `steps` (which has the 1 KiB and
    /// 1 MiB loads).
    fn of(steps: &[Step], loads: Vec<(Load, Option<f64>)>) -> Option<Round> {
        let (mut small, mut large, mut large_discarded, mut pass) = (None, None, None, None);
        let mut varied = Vec::new();
        for (step, (load, cpu)) in steps.iter().zip(loads) {
            match step {
                Step::Small => small = Some(load),
                Step::Large => large = Some(load),
                Step::LargeDiscarded => large_discarded = Some(load),
                Step::Varied(_) => varied.push(load),
                Step::Pass => pass = Some((load, cpu)),
            }
        }
        Some(Round {
            small: small?,
            large: large?,
            large_discarded,
            varied,
            pass,
        })
    }

    /// The cache's CPU microseconds per passed request.
    fn pass_cpu_us(&self, duration: Duration) -> Option<f64> {
        let (load, cpu) = self.pass?;
        let requests = load.requests_per_s * duration.as_secs_f64();
        cpu.filter(|_| requests > 0.0).map(|c| c * 1e6 / requests)
    }
}

pub async fn run(args: HttpArgs) -> anyhow::Result<Report> {
    let origin = origin::Origin::start().await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let duration = Duration::from_secs_f64(args.seconds.clamp(1.0, 600.0));
    let rounds = args.rounds.max(1);
    let mut report = Report::new(if args.waf { "http-waf" } else { "http" });
    report
        .field("seconds", duration.as_secs_f64())
        .field("rounds", rounds as u64)
        .field("wrk_threads", args.threads as u64)
        .field("connections", args.connections as u64)
        .field("cold_requests", args.cold as u64);
    let pin = args.pin.then(Split::of_this_process).transpose()?;
    report.field(
        "cache_cpus",
        pin.map_or("all (shared with wrk)".to_owned(), |p| {
            format!("{} (wrk on another)", p.cache_cpus)
        }),
    );
    // Every cache runs for the whole bench; rounds take turns, so a slow spell of the
    // machine hits all of them alike.
    let mut peers = Vec::new();
    for kind in &args.targets {
        let peer = tokio::task::block_in_place(|| {
            peers::Peer::start(*kind, origin.port, args.waf, pin.as_ref())
        })?;
        prepare(&client, &origin, &peer, *kind, args.waf).await?;
        peers.push((*kind, peer));
    }
    let script = |name: &str, text: String| -> anyhow::Result<std::path::PathBuf> {
        let path =
            std::env::temp_dir().join(format!("myriad-bench-{name}-{}.lua", std::process::id()));
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let mut scripts = Scripts {
        varied: Vec::new(),
        pass: script("pass", PASS_SCRIPT.to_owned())?,
    };
    if args.waf {
        for (name, request) in VARIED_HEADS {
            scripts
                .varied
                .push(script(name, format!("{CHROMIUM_FIELDS}{request}"))?);
        }
    }
    let cpu_before: Vec<Option<f64>> = peers
        .iter()
        .map(|(_, p)| tree_cpu_seconds(p.pid()))
        .collect();
    let load = Generator {
        threads: args.threads,
        connections: args.connections,
        pin,
    };
    let mut steps = vec![Step::Small, Step::Large];
    if !args.waf {
        steps.extend([Step::LargeDiscarded, Step::Pass]);
    }
    steps.extend((0..scripts.varied.len()).map(Step::Varied));
    let mut measured: Vec<Vec<Round>> = peers.iter().map(|_| Vec::new()).collect();
    // Only the cache under load runs; the others are paused (`Peer::pause`).
    for (_, peer) in &peers {
        peer.pause()?;
    }
    // Threads of a pinned cache found on other CPUs before its loads (and put back).
    let mut repinned = vec![0; peers.len()];
    for round in 0..rounds {
        // The caches take turns load by load, so that a round's ratios compare figures taken
        // seconds apart; every other round in reverse, so that no cache always goes first.
        let mut order: Vec<usize> = (0..peers.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut loads: Vec<Vec<(Load, Option<f64>)>> = peers.iter().map(|_| Vec::new()).collect();
        for step in &steps {
            for &i in &order {
                let peer = &peers[i].1;
                if let Some(split) = &pin {
                    repinned[i] += split.confine_group_to_caches(peer.pid())?;
                }
                peer.resume()?;
                // What its timers deferred while it was paused runs before the load.
                tokio::time::sleep(SETTLE).await;
                let cpu_before = tree_cpu_seconds(peer.pid());
                let measured = step.measure(peer, load, duration, &scripts).await?;
                let cpu = tree_cpu_seconds(peer.pid())
                    .zip(cpu_before)
                    .map(|(a, b)| a - b);
                loads[i].push((measured, cpu));
                peer.pause()?;
            }
        }
        for (loads, rounds) in loads.into_iter().zip(&mut measured) {
            rounds.push(Round::of(&steps, loads).context("a round without its main loads")?);
        }
    }
    for (_, peer) in &peers {
        peer.resume()?;
    }
    for script in scripts.varied.iter().chain([&scripts.pass]) {
        let _ = std::fs::remove_file(script);
    }
    for (i, (kind, peer)) in peers.iter().enumerate() {
        let name = kind.name();
        let cpu = tree_cpu_seconds(peer.pid())
            .zip(cpu_before[i])
            .map(|(a, b)| a - b);
        let (fetches, failed) = cold_stampede(&client, &origin, peer, name, args.cold).await;
        let rs = &measured[i];
        let med = |f: &dyn Fn(&Round) -> Option<f64>| median(rs.iter().filter_map(f));
        // Every request of every load, for the requests per CPU-second.
        let requests: f64 = rs
            .iter()
            .flat_map(|r| {
                [r.small, r.large]
                    .into_iter()
                    .chain(r.large_discarded)
                    .chain(r.pass.map(|(l, _)| l))
                    .chain(r.varied.iter().copied())
            })
            .map(|l| l.requests_per_s * duration.as_secs_f64())
            .sum();
        for (v, (varied, _)) in VARIED_HEADS.iter().enumerate().take(scripts.varied.len()) {
            report
                .field(
                    format!("{name}_rps_1k_{varied}"),
                    med(&|r| r.varied.get(v).map(|d| d.requests_per_s)),
                )
                .field(
                    format!("{name}_p99_1k_{varied}_ms"),
                    med(&|r| r.varied.get(v).map(|d| d.p99_ms)),
                );
        }
        report
            .field(
                format!("{name}_rps_1k"),
                med(&|r| Some(r.small.requests_per_s)),
            )
            .field(format!("{name}_p50_1k_ms"), med(&|r| Some(r.small.p50_ms)))
            .field(format!("{name}_p99_1k_ms"), med(&|r| Some(r.small.p99_ms)))
            .field(
                format!("{name}_rps_1m"),
                med(&|r| Some(r.large.requests_per_s)),
            )
            .field(format!("{name}_p50_1m_ms"), med(&|r| Some(r.large.p50_ms)))
            .field(format!("{name}_p99_1m_ms"), med(&|r| Some(r.large.p99_ms)))
            .field(
                format!("{name}_rps_1m_discarded"),
                med(&|r| r.large_discarded.map(|l| l.requests_per_s)),
            )
            .field(
                format!("{name}_p50_1m_discarded_ms"),
                med(&|r| r.large_discarded.map(|l| l.p50_ms)),
            )
            .field(
                format!("{name}_p99_1m_discarded_ms"),
                med(&|r| r.large_discarded.map(|l| l.p99_ms)),
            )
            .field(
                format!("{name}_rps_pass"),
                med(&|r| r.pass.map(|(l, _)| l.requests_per_s)),
            )
            .field(
                format!("{name}_p99_pass_ms"),
                med(&|r| r.pass.map(|(l, _)| l.p99_ms)),
            )
            .field(
                format!("{name}_pass_cpu_us_per_request"),
                med(&|r| r.pass_cpu_us(duration)),
            )
            .field(format!("{name}_cpu_s"), cpu)
            .field(
                format!("{name}_requests_per_cpu_s"),
                cpu.filter(|c| *c > 0.0).map(|c| requests / c),
            )
            .field(
                format!("{name}_threads_repinned"),
                pin.map(|_| repinned[i] as u64),
            )
            .field(format!("{name}_cold_origin_fetches"), fetches)
            .field(format!("{name}_cold_failed"), failed as u64)
            // The raw figures behind the ratios, to tell a slow round of ours from a fast
            // one of a peer's.
            .field(
                format!("{name}_rps_1m_by_round"),
                rs.iter()
                    .map(|r| r.large.requests_per_s.round())
                    .collect::<Vec<_>>(),
            );
    }
    // Ratios round by round (each against peers measured next to it): their median, and
    // each round's, to show how many rounds were on either side of a target.
    if let Some(ours) = peers.iter().position(|(k, _)| *k == Kind::Myriad) {
        let others: Vec<usize> = (0..peers.len()).filter(|&i| i != ours).collect();
        let compare = |value: &dyn Fn(&Round) -> Option<f64>, higher_is_better: bool| {
            let series = |i: usize| measured[i].iter().map(value).collect::<Vec<_>>();
            let theirs: Vec<(&'static str, Vec<Option<f64>>)> = others
                .iter()
                .map(|&i| (peers[i].0.name(), series(i)))
                .collect();
            Compared::of(&series(ours), &theirs, higher_is_better)
        };
        let compared: [(&str, &str, Compared); 6] = [
            (
                "rps_1k",
                "fastest",
                compare(&|r| Some(r.small.requests_per_s), true),
            ),
            (
                "rps_1m",
                "fastest",
                compare(&|r| Some(r.large.requests_per_s), true),
            ),
            ("p99_1k", "best", compare(&|r| Some(r.small.p99_ms), false)),
            ("p99_1m", "best", compare(&|r| Some(r.large.p99_ms), false)),
            (
                "rps_1m_discarded",
                "fastest",
                compare(&|r| r.large_discarded.map(|l| l.requests_per_s), true),
            ),
            (
                "p99_1m_discarded",
                "best",
                compare(&|r| r.large_discarded.map(|l| l.p99_ms), false),
            ),
        ];
        for (figure, best, c) in &compared {
            report
                .field(format!("{figure}_{best}_peer"), c.peer)
                .field(
                    format!("{figure}_vs_{best}_peer"),
                    median(c.paired.iter().copied()),
                )
                .field(
                    format!("{figure}_vs_{best}_of_each_round"),
                    median(c.each_round.iter().copied()),
                );
        }
        for (figure, best, c) in &compared {
            report.field(
                format!("{figure}_vs_{best}_peer_by_round"),
                rounded(&c.paired),
            );
        }
        if let Some(nginx) = peers.iter().position(|(k, _)| *k == Kind::Nginx) {
            // Passed requests per CPU-second, ours over nginx's, round by round.
            let pass = (0..rounds)
                .filter_map(|r| {
                    let mine = measured[ours][r].pass_cpu_us(duration)?;
                    let theirs = measured[nginx][r].pass_cpu_us(duration)?;
                    (mine > 0.0).then(|| theirs / mine)
                })
                .collect::<Vec<_>>();
            report
                .field(
                    "pass_requests_per_cpu_s_vs_nginx",
                    median(pass.iter().copied()),
                )
                .field("pass_requests_per_cpu_s_vs_nginx_by_round", rounded(&pass));
            for (v, (varied, _)) in VARIED_HEADS.iter().enumerate().take(scripts.varied.len()) {
                let ratio = median((0..rounds).filter_map(|r| {
                    let mine = measured[ours][r].varied.get(v)?.requests_per_s;
                    let theirs = measured[nginx][r].varied.get(v)?.requests_per_s;
                    (theirs > 0.0).then(|| mine / theirs)
                }));
                report.field(format!("rps_1k_{varied}_vs_nginx"), ratio);
            }
        }
    }
    Ok(report)
}

/// Checks the same detection (with `waf`), fills the cache and checks that it answers.
async fn prepare(
    client: &reqwest::Client,
    origin: &origin::Origin,
    peer: &peers::Peer,
    kind: Kind,
    waf: bool,
) -> anyhow::Result<()> {
    let name = kind.name();
    if waf {
        // Same detection: both refuse an attack and pass the clean request.
        let attack = format!("{}{SMALL}?id=1%27%20OR%20%271%27%3D%271", peer.url());
        let status = client.get(attack).send().await?.status();
        anyhow::ensure!(status == 403, "{name}: an SQL injection got {status}");
    }
    for path in [SMALL, LARGE] {
        let before = origin.counts.get(path);
        for _ in 0..3 {
            let res = client.get(format!("{}{path}", peer.url())).send().await?;
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
    Ok(())
}

/// `n` concurrent requests for one cold object: how many reached the origin, how many failed.
async fn cold_stampede(
    client: &reqwest::Client,
    origin: &origin::Origin,
    peer: &peers::Peer,
    name: &str,
    n: usize,
) -> (u64, usize) {
    let cold_path = format!("/cold/{name}");
    let before = origin.counts.get(&cold_path);
    let answers = join_all((0..n).map(|_| {
        let (client, url) = (client.clone(), format!("{}{cold_path}", peer.url()));
        async move {
            let res = client.get(url).send().await.map_err(|e| e.to_string())?;
            let status = res.status();
            let body = res.bytes().await.map_err(|e| e.to_string())?;
            match (status.is_success(), body.len()) {
                (true, 1024) => Ok(()),
                (_, len) => Err(format!("{status}, {len} bytes")),
            }
        }
    }))
    .await;
    let failures: Vec<String> = answers.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failures.first() {
        eprintln!(
            "{name}: {} of {n} cold requests failed, the first with: {first}",
            failures.len()
        );
    }
    (origin.counts.get(&cold_path) - before, failures.len())
}

/// One figure of ours against the peers', round by round.
#[derive(Debug, PartialEq)]
struct Compared {
    /// The peer whose median is best (the highest, or the lowest where lower is better).
    peer: Option<&'static str>,
    /// Each round's ratio to that peer's figure in the same round.
    paired: Vec<f64>,
    /// Each round's ratio to the best peer of that round: stricter, since the best of
    /// several noisy figures is above each one's typical value.
    each_round: Vec<f64>,
}

impl Compared {
    /// `mine` and each peer's figures by round (`None` where a round has none).
    fn of(
        mine: &[Option<f64>],
        theirs: &[(&'static str, Vec<Option<f64>>)],
        higher_is_better: bool,
    ) -> Self {
        let better = |a: f64, b: f64| if higher_is_better { a.max(b) } else { a.min(b) };
        let ratio = |ours: Option<f64>, other: Option<f64>| {
            ours.zip(other.filter(|o| *o > 0.0)).map(|(m, o)| m / o)
        };
        let best = theirs
            .iter()
            .filter_map(|(name, figures)| Some((*name, median(figures.iter().flatten().copied())?)))
            .reduce(|a, b| if better(a.1, b.1) == a.1 { a } else { b });
        let paired = best
            .and_then(|(name, _)| theirs.iter().find(|(n, _)| *n == name))
            .map(|(_, figures)| {
                mine.iter()
                    .zip(figures)
                    .filter_map(|(m, o)| ratio(*m, *o))
                    .collect()
            })
            .unwrap_or_default();
        let each_round = mine
            .iter()
            .enumerate()
            .filter_map(|(r, m)| {
                let of_round = theirs
                    .iter()
                    .filter_map(|(_, f)| f.get(r).copied().flatten());
                ratio(*m, of_round.reduce(better))
            })
            .collect();
        Compared {
            peer: best.map(|(name, _)| name),
            paired,
            each_round,
        }
    }
}

/// Ratios to two decimals, as a list (`[1.07, 1.21, 0.98]`).
fn rounded(ratios: &[f64]) -> Vec<f64> {
    ratios.iter().map(|r| (r * 100.0).round() / 100.0).collect()
}

/// The median (the mean of the middle two for an even count).
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The wrk scripts of a run.
struct Scripts {
    varied: Vec<std::path::PathBuf>,
    pass: std::path::PathBuf,
}

/// A new URL every request, which the origin answers `private, no-store`.
const PASS_SCRIPT: &str = r#"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/pass/" .. n)
end
"#;

/// The start of a wrk script: the fields Chromium sends for a page (Client Hints with
/// their quotes included).
const CHROMIUM_FIELDS: &str = r#"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
wrk.headers["Accept-Language"] = "en-US,en;q=0.9"
wrk.headers["sec-ch-ua"] = '"Not_A Brand";v="8", "Chromium";v="120"'
wrk.headers["sec-ch-ua-mobile"] = "?0"
wrk.headers["sec-ch-ua-platform"] = '"Linux"'
wrk.headers["Sec-Fetch-Site"] = "none"
wrk.headers["Sec-Fetch-Mode"] = "navigate"
wrk.headers["Sec-Fetch-Dest"] = "document"
wrk.headers["Upgrade-Insecure-Requests"] = "1"
local n = 0
"#;

/// With `--waf`, heads that differ in every request (in a field no cache key includes), by
/// what differs: a request id (the rules cannot match on its digits, so a verdict may be
/// reused), and the Referer of a page (which rules inspect: its bytes could spell attacks,
/// so the value itself is checked against the rules that read it before a verdict is
/// reused), a session cookie (its value checked against the rules that read cookies), and
/// a query value (checked against the rules that read arguments and the request line),
/// a page number or a search form's words.
const VARIED_HEADS: [(&str, &str); 5] = [
    (
        "distinct_ids",
        r#"
request = function()
  n = n + 1
  wrk.headers["X-Request-Id"] = tostring(n)
  return wrk.format(nil, nil, wrk.headers)
end
"#,
    ),
    (
        "distinct_referers",
        r#"
request = function()
  n = n + 1
  wrk.headers["Referer"] = "https://site.test/articles/page-" .. n .. "?from=home"
  return wrk.format(nil, nil, wrk.headers)
end
"#,
    ),
    (
        "distinct_cookies",
        r#"
request = function()
  n = n + 1
  wrk.headers["Cookie"] = "theme=dark; sid=" .. string.format("%08x%08x", n, (n * 40503) % 65536)
  return wrk.format(nil, nil, wrk.headers)
end
"#,
    ),
    // A new URL every request: a cache miss (one origin fetch) for both caches — what a
    // site with many distinct query strings costs.
    (
        "distinct_queries",
        r#"
request = function()
  n = n + 1
  return wrk.format(nil, "/obj/1024?page=" .. n, wrk.headers)
end
"#,
    ),
    (
        "distinct_searches",
        r#"
request = function()
  n = n + 1
  return wrk.format(nil, "/obj/1024?q=blue+shoes+size+" .. n .. "&sort=price", wrk.headers)
end
"#,
    ),
];

async fn blocking_wrk(
    base: &str,
    path: &str,
    load: Generator,
    duration: Duration,
    script: Option<std::path::PathBuf>,
) -> anyhow::Result<Load> {
    let url = format!("{base}{path}");
    tokio::task::spawn_blocking(move || {
        wrk::run(
            &url,
            load.threads,
            load.connections,
            duration,
            script.as_deref(),
            load.pin.as_ref(),
        )
    })
    .await
    .context("wrk task")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_the_peer_with_the_best_median_and_to_each_rounds_best() {
        // Two peers alike but for noise: each round's best is the luckier one.
        let theirs = [
            ("a", vec![Some(100.0), Some(80.0), Some(95.0)]),
            ("b", vec![Some(85.0), Some(100.0), Some(90.0)]),
        ];
        let mine = [Some(90.0), Some(90.0), None];
        let faster = Compared::of(&mine, &theirs, true);
        assert_eq!(faster.peer, Some("a"), "median 95 against 90");
        assert_eq!(faster.paired, vec![0.9, 90.0 / 80.0]);
        assert_eq!(faster.each_round, vec![0.9, 0.9]);
        // Lower is better: b's median (90) is the best; a round without a figure is skipped.
        let lower = Compared::of(&mine, &theirs, false);
        assert_eq!(lower.peer, Some("b"));
        assert_eq!(lower.paired, vec![90.0 / 85.0, 0.9]);
        assert_eq!(lower.each_round, vec![90.0 / 85.0, 90.0 / 80.0]);
        // No peer, or a peer's zero: nothing to divide by.
        let none = Compared::of(&mine, &[], true);
        assert_eq!(
            (none.peer, none.paired.len(), none.each_round.len()),
            (None, 0, 0)
        );
        let zero = Compared::of(&mine, &[("z", vec![Some(0.0); 3])], true);
        assert_eq!((zero.peer, zero.paired.len()), (Some("z"), 0));
    }

    #[test]
    fn medians_and_rounded_ratios() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
        assert_eq!(median([f64::NAN, 1.0].into_iter()), Some(1.0));
        assert_eq!(median(std::iter::empty()), None);
        assert_eq!(rounded(&[1.0749, 0.996]), vec![1.07, 1.0]);
    }
}
