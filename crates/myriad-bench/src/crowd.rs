//! A crowd: N signalling-only participants joined to one meeting, spread over the nodes of a
//! cluster started for the run (or of a server given by URL), each with a listener of its own
//! and a queue of what it sends; and the paced sending the scenarios share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use myriad_proto::{ClientMsg, MeetingEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, ClusterOpts};
use crate::server::cpu_seconds;
use crate::signal_client::{join_and_listen, Listener};
use crate::Report;

/// CPU seconds used so far by the deployment and by the bench.
pub struct CpuMark {
    server: Option<f64>,
    bench: Option<f64>,
}

/// CPU seconds used between two readings, if both were had.
fn used(after: Option<f64>, before: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

/// Joins per second while the room fills.
const JOIN_RATE_PER_S: f64 = 500.0;
/// How long the whole crowd may take to join, beyond its pace.
const JOIN_GRACE: Duration = Duration::from_secs(30);

/// The load of a crowd scenario (chat, reactions).
#[derive(Debug, Clone)]
pub struct CrowdArgs {
    pub participants: usize,
    /// Messages per second, all senders together.
    pub rate_per_s: f64,
    pub seconds: f64,
    /// A running deployment instead of one started for the run.
    pub url: Option<String>,
    /// Nodes of a cluster started for the run (0 or 1: one server alone).
    pub nodes: usize,
}

pub struct Crowd {
    pub cluster: Cluster,
    pub meeting: String,
    senders: Vec<mpsc::Sender<ClientMsg>>,
    tasks: Vec<JoinHandle<()>>,
    failed: Arc<AtomicU64>,
}

/// Counts the welcomes of the listener it wraps.
struct Joined<L> {
    inner: Arc<L>,
    joined: Arc<AtomicU64>,
}

impl<L: Listener> Listener for Joined<L> {
    fn welcomed(&self, join: Duration) {
        self.joined.fetch_add(1, Ordering::Relaxed);
        self.inner.welcomed(join);
    }

    fn event(&self, event: &MeetingEvent) {
        self.inner.event(event);
    }
}

impl Crowd {
    /// Starts the deployment (`nodes`, or the server at `url`), creates a meeting and joins
    /// one participant per listener, round-robin over the nodes, the first `talkers` as
    /// panelists and the rest as attendees; returns once all joined and the join events
    /// settled.
    pub async fn gather<L: Listener + 'static>(
        url: Option<&str>,
        nodes: usize,
        talkers: usize,
        listeners: Vec<Arc<L>>,
    ) -> anyhow::Result<Crowd> {
        let n = listeners.len();
        let cluster = match url {
            Some(url) => Cluster::external(url),
            None => {
                let per_node = n.div_ceil(nodes.max(1)) as u32 + 100;
                Cluster::start(&ClusterOpts {
                    nodes,
                    workers: Some(2),
                    partition_size: Some(per_node.div_ceil(2).max(500)),
                    capacity: Some(per_node.max(2000)),
                    ..ClusterOpts::default()
                })?
            }
        };
        let server = cluster.first();
        let meeting = server.create_meeting().await?;
        let joined = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let start = Instant::now();
        for (i, inner) in listeners.into_iter().enumerate() {
            let token = server
                .token(&meeting, &format!("p{i}"), i < talkers)
                .await?;
            let (tx, rx) = mpsc::channel(64);
            senders.push(tx);
            let listener = Joined {
                inner,
                joined: joined.clone(),
            };
            let (url, failed) = (cluster.node(i).ws_url(), failed.clone());
            tasks.push(tokio::spawn(async move {
                if join_and_listen(&url, token, &listener, Some(rx))
                    .await
                    .is_err()
                {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }));
            tokio::time::sleep_until(
                (start + Duration::from_secs_f64(i as f64 / JOIN_RATE_PER_S)).into(),
            )
            .await;
        }
        let deadline = Instant::now() + JOIN_GRACE;
        while joined.load(Ordering::Relaxed) < n as u64 {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} participants joined",
                    joined.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Join events and counts settle; only what the scenario sends is counted from here on.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Crowd {
            cluster,
            meeting,
            senders,
            tasks,
            failed,
        })
    }

    /// Participants whose connection failed.
    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Sends `rate_per_s` messages a second for `seconds`: `next(k)` gives the k-th (who sends
    /// it, and what; none: that was the last), called just before it goes. Returns how many
    /// went.
    pub async fn pace(
        &self,
        rate_per_s: f64,
        seconds: f64,
        mut next: impl FnMut(u64) -> Option<(usize, ClientMsg)>,
    ) -> u64 {
        let interval = Duration::from_secs_f64(1.0 / rate_per_s.clamp(0.1, 100_000.0));
        let begin = Instant::now();
        let end = begin + Duration::from_secs_f64(seconds.clamp(0.5, 600.0));
        let mut sent = 0u64;
        while Instant::now() < end {
            let Some((who, msg)) = next(sent) else {
                break;
            };
            let Some(sender) = self.senders.get(who) else {
                break;
            };
            if sender.send(msg).await.is_ok() {
                sent += 1;
            }
            tokio::time::sleep_until((begin + interval.mul_f64(sent as f64)).into()).await;
        }
        sent
    }

    /// Waits until `done` or for `grace` at most (stragglers).
    pub async fn settle(&self, grace: Duration, done: impl Fn() -> bool) {
        let until = Instant::now() + grace;
        while !done() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The CPU the deployment and the bench have used so far.
    pub fn cpu_mark(&self) -> CpuMark {
        CpuMark {
            server: self.cluster.cpu_seconds(),
            bench: cpu_seconds(std::process::id()),
        }
    }

    /// What every crowd scenario reports of its run: the deployment, the participants that
    /// failed, and the CPU used since `mark` (server seconds, returned too, and the bench's).
    pub fn report_run(&self, report: &mut Report, mark: &CpuMark) -> Option<f64> {
        let server = used(self.cluster.cpu_seconds(), mark.server);
        report
            .field("nodes", self.cluster.nodes.len() as u64)
            .field("failed_participants", self.failed())
            .field("server_cpu_s", server)
            .field(
                "bench_cpu_s",
                used(cpu_seconds(std::process::id()), mark.bench),
            );
        server
    }

    /// Disconnects everyone (the deployment stays up until dropped).
    pub fn disperse(&mut self) {
        self.senders.clear();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
