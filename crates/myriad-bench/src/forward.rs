//! `forward`: one publisher (Opus + 3-layer VP8 simulcast) to N subscribers through the
//! server; packets forwarded per second and per server CPU second, one-way delay, loss.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::cluster::{Cluster, ClusterOpts};
use crate::janus::{JanusHandle, JanusServer};
use crate::media::Clip;
use crate::netns::NetNs;
use crate::participant::{self, Counters, Role, Target};
use crate::server::{cpu_seconds, rss_mb, Server};
use crate::Report;

#[derive(Debug, Clone)]
pub struct ForwardArgs {
    pub subscribers: usize,
    pub seconds: f64,
    /// A running myriad deployment instead of a `myriad serve` started for the run.
    pub url: Option<String>,
    pub target: TargetKind,
    /// Run the server in a network namespace of the bench's own (always for Janus).
    pub netns: bool,
    /// 2 or more: a cluster; the subscribers on one node, the publisher on another, against
    /// all on one node, in the same run.
    pub nodes: usize,
    /// 2 or more: one node with this many media workers (the subscribers spread over their
    /// partitions), against one worker, in the same run.
    pub workers: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Myriad,
    Janus,
}

/// The system under test for one run, and how participants reach it. The namespace (if
/// any) is dropped after the server in it.
struct Deployment {
    server: Under,
    netns: Option<NetNs>,
}

enum Under {
    Myriad { cluster: Cluster },
    Janus { server: JanusServer, room: u64 },
}

/// Where one measurement happens: a myriad meeting, or Janus' room.
enum Room {
    Myriad(String),
    Janus,
}

impl Deployment {
    async fn start(args: &ForwardArgs, opts: ClusterOpts) -> anyhow::Result<Self> {
        let netns = (args.netns || args.target == TargetKind::Janus)
            .then(NetNs::create)
            .transpose()?;
        let server = match args.target {
            TargetKind::Myriad => {
                let cluster = match (&args.url, &netns) {
                    (Some(url), _) => Cluster::external(url),
                    (None, Some(ns)) => Cluster::single(Server::spawn(Some(ns))?),
                    (None, None) => Cluster::start(&opts)?,
                };
                Under::Myriad { cluster }
            }
            TargetKind::Janus => {
                let ns = netns.as_ref().context("janus runs in a namespace")?;
                let server = JanusServer::spawn(ns).await?;
                let room = 4242;
                let mut admin = JanusHandle::attach(&server.url).await?;
                // No bitrate cap (the packaged demo room has one), VP8 and Opus like ours.
                let create = json!({ "request": "create", "room": room, "publishers": 1, "bitrate": 0,
                    "videocodec": "vp8", "audiocodec": "opus", "audiolevel_ext": true });
                let res = admin.message(create, None).await?;
                if res["plugindata"]["data"]["videoroom"] != "created" {
                    bail!("janus did not create the room: {res}");
                }
                Under::Janus { server, room }
            }
        };
        Ok(Self { server, netns })
    }

    fn name(&self) -> &'static str {
        match self.server {
            Under::Myriad { .. } => "myriad",
            Under::Janus { .. } => "janus",
        }
    }

    /// A place to measure in: a new meeting (myriad), the room (Janus).
    async fn room(&self) -> anyhow::Result<Room> {
        match &self.server {
            Under::Myriad { cluster } => Ok(Room::Myriad(cluster.first().create_meeting().await?)),
            Under::Janus { .. } => Ok(Room::Janus),
        }
    }

    fn cpu_seconds(&self) -> Option<f64> {
        match &self.server {
            Under::Myriad { cluster } => cluster.cpu_seconds(),
            Under::Janus { server, .. } => cpu_seconds(server.pid()),
        }
    }

    fn rss_mb(&self) -> Option<f64> {
        match &self.server {
            Under::Myriad { cluster } => cluster.nodes_rss_mb(),
            Under::Janus { server, .. } => rss_mb(server.pid()),
        }
    }

    /// How participants reach node `node` (myriad) or the server.
    fn target(&self, node: usize) -> Target {
        let local_ip = self
            .netns
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ns| IpAddr::V4(ns.host_ip));
        match &self.server {
            Under::Myriad { cluster } => Target::Myriad {
                ws_url: cluster.node(node).ws_url(),
                local_ip,
            },
            Under::Janus { server, room } => Target::Janus {
                url: server.url.clone(),
                room: *room,
                local_ip,
            },
        }
    }

    /// An access token (myriad); Janus' rooms need none.
    async fn token(&self, room: &Room, name: &str, host: bool) -> anyhow::Result<String> {
        match (&self.server, room) {
            (Under::Myriad { cluster }, Room::Myriad(meeting)) => {
                cluster.first().token(meeting, name, host).await
            }
            _ => Ok(String::new()),
        }
    }
}

/// New subscribers per second while the audience builds up.
const JOIN_RATE_PER_S: u64 = 100;

pub async fn run(args: ForwardArgs) -> anyhow::Result<Report> {
    if args.nodes >= 2 && args.target == TargetKind::Myriad {
        return across_nodes(args).await;
    }
    if let Some(workers) = args.workers.filter(|w| *w >= 2) {
        return across_workers(args, workers).await;
    }
    let deployment = Deployment::start(&args, ClusterOpts::default()).await?;
    let room = deployment.room().await?;
    measure(&deployment, &room, &args, 0, 0).await
}

/// The publisher on node 1, the subscribers on node 1 and then on node 2 (their media
/// relayed between the nodes): what the relay adds.
async fn across_nodes(args: ForwardArgs) -> anyhow::Result<Report> {
    let opts = ClusterOpts {
        nodes: args.nodes,
        ..ClusterOpts::default()
    };
    let deployment = Deployment::start(&args, opts).await?;
    let room = deployment.room().await?;
    let near = measure(&deployment, &room, &args, 0, 0).await?;
    let room = deployment.room().await?;
    // What the publisher's node receives from it (three layers) and relays to the far node
    // (only the layer the subscribers there watch, and the audio).
    let Under::Myriad { cluster } = &deployment.server else {
        bail!("the relay is myriad's");
    };
    let publisher_node = cluster.node(0);
    let bits = || async {
        let received = publisher_node.metric("myriad_node_media_bits_received_total");
        let relayed = publisher_node.metric("myriad_node_relay_bits_sent_total");
        (received.await, relayed.await)
    };
    let (received_before, relayed_before) = bits().await;
    let far = measure(&deployment, &room, &args, 0, 1).await?;
    let (received_after, relayed_after) = bits().await;
    let relay_ratio = match (
        received_before,
        relayed_before,
        received_after,
        relayed_after,
    ) {
        (Some(r0), Some(s0), Some(r1), Some(s1)) if r1 > r0 => Some((s1 - s0) / (r1 - r0)),
        _ => None,
    };
    let mut report = Report::new("forward-relay");
    report.field("subscribers", args.subscribers as u64);
    // Relay bits out of the publisher's node per bit it received from the publisher.
    report.field("relayed_per_received_bit", relay_ratio);
    side_by_side(&mut report, &[("same_node", &near), ("far_node", &far)]);
    report.field(
        "relay_added_p99_ms",
        difference(&far, &near, "delay_p99_ms"),
    );
    report.field(
        "relay_added_p50_ms",
        difference(&far, &near, "delay_p50_ms"),
    );
    Ok(report)
}

/// One node with one media worker, then one with `workers` (the subscribers spread over
/// their partitions): what more cores give.
async fn across_workers(args: ForwardArgs, workers: u16) -> anyhow::Result<Report> {
    let people = args.subscribers as u32 + 1;
    let mut reports = Vec::new();
    for w in [1, workers] {
        let opts = ClusterOpts {
            nodes: 1,
            workers: Some(w),
            partition_size: Some(people.div_ceil(u32::from(w)) + 1),
            ..ClusterOpts::default()
        };
        let deployment = Deployment::start(&args, opts).await?;
        let room = deployment.room().await?;
        reports.push(measure(&deployment, &room, &args, 0, 0).await?);
    }
    let mut report = Report::new("forward-workers");
    report
        .field("subscribers", args.subscribers as u64)
        .field("workers", u64::from(workers));
    side_by_side(
        &mut report,
        &[("one_worker", &reports[0]), ("workers", &reports[1])],
    );
    let ratio = |name: &str| {
        let f = |r: &Report| r.get(name).and_then(serde_json::Value::as_f64);
        match (f(&reports[1]), f(&reports[0])) {
            (Some(n), Some(one)) if one > 0.0 => Some(n / one),
            _ => None,
        }
    };
    report
        .field("delay_p99_ratio", ratio("delay_p99_ms"))
        .field("delay_p50_ratio", ratio("delay_p50_ms"));
    Ok(report)
}

/// The figures of several runs, each prefixed with its name.
fn side_by_side(report: &mut Report, runs: &[(&str, &Report)]) {
    for name in [
        "subscribers_receiving",
        "packets_forwarded_per_s",
        "server_cpu_s",
        "delay_p50_ms",
        "delay_p99_ms",
        "loss_pct",
        "video_height_min",
        "video_height_max",
    ] {
        for (prefix, r) in runs {
            report.field(format!("{prefix}_{name}"), r.get(name).cloned());
        }
    }
}

fn difference(a: &Report, b: &Report, name: &str) -> Option<f64> {
    let f = |r: &Report| r.get(name).and_then(serde_json::Value::as_f64);
    Some(f(a)? - f(b)?)
}

/// One publisher on node `publisher_on`, the subscribers on node `subscribers_on`; the
/// figures once every subscriber receives video.
async fn measure(
    deployment: &Deployment,
    room: &Room,
    args: &ForwardArgs,
    publisher_on: usize,
    subscribers_on: usize,
) -> anyhow::Result<Report> {
    let clip = Arc::new(Clip::load_or_encode(&Clip::default_dir())?);
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();

    let token = deployment.token(room, "publisher", true).await?;
    tasks.push(tokio::spawn(participant::run(
        deployment.target(publisher_on),
        token,
        Role::Publisher(clip, None),
        counters.clone(),
    )));
    if wait_for(Duration::from_secs(15), || {
        counters.connected.load(Ordering::Relaxed) >= 1
    })
    .await
    .is_err()
    {
        let error = counters.first_error.lock().ok().and_then(|e| e.clone());
        bail!(
            "the publisher did not connect: {}",
            error.unwrap_or_else(|| "no error reported".into())
        );
    }

    for i in 0..args.subscribers {
        let token = deployment.token(room, &format!("sub{i}"), false).await?;
        tasks.push(tokio::spawn(participant::run(
            deployment.target(subscribers_on),
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

    let cpu_before = deployment.cpu_seconds();
    let bench_before = cpu_seconds(std::process::id());
    let packets_before = counters.packets.load(Ordering::Relaxed);
    let start = Instant::now();
    counters.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds.clamp(0.5, 600.0))).await;
    counters.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let packets = counters.packets.load(Ordering::Relaxed) - packets_before;
    let server_cpu = match (deployment.cpu_seconds(), cpu_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let bench_cpu = match (cpu_seconds(std::process::id()), bench_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let rss = deployment.rss_mb();

    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let delays = counters.delays.sorted();
    // Loss within the measured window, from the subscribers' RTP sequence numbers.
    let lost = counters.lost_packets.load(Ordering::Relaxed);
    let total = counters.window_packets.load(Ordering::Relaxed) + lost;
    let heights = counters
        .video_heights
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();

    let pps = packets as f64 / elapsed;
    let mut report = Report::new("forward");
    report
        .field(
            "target",
            if args.url.is_some() {
                "url"
            } else {
                deployment.name()
            },
        )
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
            (total > 0).then(|| lost as f64 * 100.0 / total as f64),
        )
        .field("packets_lost", lost)
        .field("server_rss_mb", rss)
        .field("bench_cpu_s", bench_cpu)
        .field("delay_samples", delays.len() as u64)
        // Which layer the subscribers got: the same for every target, or the figures compare
        // different work.
        .field(
            "video_height_asked",
            crate::media::LAYERS[participant::SUBSCRIBER_LAYER].2,
        )
        .field("video_height_min", heights.iter().min().copied())
        .field("video_height_max", heights.iter().max().copied());
    Ok(report)
}

/// myriad and Janus one after the other, both in the bench's namespace, with the same media
/// and subscriber count; the figures of each and their ratios.
pub async fn compare(args: ForwardArgs) -> anyhow::Result<Report> {
    let janus = run(ForwardArgs {
        target: TargetKind::Janus,
        netns: true,
        url: None,
        ..args.clone()
    })
    .await?;
    let myriad = run(ForwardArgs {
        target: TargetKind::Myriad,
        netns: true,
        url: None,
        ..args
    })
    .await?;
    let mut report = Report::new("forward-compare");
    let figure = |r: &Report, name: &str| r.get(name).and_then(serde_json::Value::as_f64);
    for name in [
        "packets_forwarded_per_s",
        "server_cpu_s",
        "packets_per_cpu_s",
        "delay_p50_ms",
        "delay_p99_ms",
        "loss_pct",
        "server_rss_mb",
        "video_height_min",
        "video_height_max",
    ] {
        for (target, r) in [("myriad", &myriad), ("janus", &janus)] {
            report.field(format!("{target}_{name}"), figure(r, name));
        }
    }
    let ratio = |name: &str| match (figure(&myriad, name), figure(&janus, name)) {
        (Some(m), Some(j)) if j > 0.0 => Some(m / j),
        _ => None,
    };
    report
        .field("subscribers", figure(&myriad, "subscribers"))
        .field("packets_per_cpu_s_ratio", ratio("packets_per_cpu_s"))
        .field("delay_p99_ratio", ratio("delay_p99_ms"));
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
