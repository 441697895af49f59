//! `failover`: a cluster of N nodes (`nats-server -js` and N `myriad serve --nats`), M
//! signalling participants spread over them, chat flowing all along; one node is killed
//! (SIGKILL). Its participants ask the route API of a surviving node where to go, and
//! resume there from the last event they have. Measured: how many were affected, how many
//! came back and how long it took them (from the kill to their resumed welcome), and whether
//! any event was lost or came twice, for anyone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use myriad_proto::{
    ClientMsg, MeetingEvent, ParticipantId, Resume, Seq, ServerMsg, PROTOCOL_VERSION,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::{Cluster, ClusterOpts};
use crate::forward::percentile;
use crate::signal_client::connect;
use crate::Report;

#[derive(Debug, Clone)]
pub struct FailoverArgs {
    pub nodes: usize,
    pub participants: usize,
    /// How long the affected participants get to come back.
    pub recover_within: Duration,
    /// Kill the node coordinating the meeting (else another one).
    pub kill_coordinator: bool,
}

/// Chat messages per second while the node dies and its people come back.
const CHAT_EVERY: Duration = Duration::from_millis(100);
const LAST_WORD: &str = "failover: the last word";

/// What one participant went through.
#[derive(Debug, Default)]
struct Life {
    /// The node it is connected to (an index into the cluster).
    node: usize,
    participant: Option<ParticipantId>,
    session_token: String,
    /// The last event it has.
    last: u64,
    /// Events missing between two it got, and events it got twice.
    missing: u64,
    repeated: u64,
    /// From the kill to its resumed welcome.
    recovered_after: Option<Duration>,
    heard_last_word: bool,
    /// Its first connection closed and it could not come back (why).
    gave_up: Option<String>,
}

struct Shared {
    lives: Vec<Mutex<Life>>,
    killed_at: Mutex<Option<Instant>>,
    /// Nodes still alive (the route is asked of them).
    alive: Mutex<Vec<String>>,
    joined: AtomicU64,
    stop: AtomicBool,
    meeting: String,
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<Report> {
    let nodes = args.nodes.max(2);
    let per_node = args.participants.div_ceil(nodes) as u32 + 100;
    let mut cluster = Cluster::start(&ClusterOpts {
        nodes,
        workers: Some(2),
        partition_size: Some(args.participants as u32 + 100),
        capacity: Some(per_node.max(2000) * 2),
        ..ClusterOpts::default()
    })?;
    let meeting = cluster.first().create_meeting().await?;
    let mut tokens = Vec::with_capacity(args.participants);
    for i in 0..args.participants {
        tokens.push(
            cluster
                .first()
                .token(&meeting, &format!("p{i}"), false)
                .await?,
        );
    }
    let chatter_token = cluster.first().token(&meeting, "chatter", true).await?;
    let shared = Arc::new(Shared {
        lives: (0..args.participants).map(|_| Mutex::default()).collect(),
        killed_at: Mutex::new(None),
        alive: Mutex::new(cluster.nodes.iter().map(|n| n.url.clone()).collect()),
        joined: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        meeting: meeting.clone(),
    });
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let node = i % nodes;
        if let Ok(mut life) = shared.lives[i].lock() {
            life.node = node;
        }
        let url = cluster.node(node).url.clone();
        tasks.push(tokio::spawn(participant(i, url, token, shared.clone())));
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let n = args.participants as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.joined.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} joined",
                shared.joined.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The node to kill: the meeting's coordinator's, or the last of the others.
    let mut victim = None;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let coordinates = node
            .metric("myriad_node_leases")
            .await
            .is_some_and(|l| l > 0.0);
        if coordinates == args.kill_coordinator {
            victim = Some(i);
        }
    }
    let victim = victim.context("no node to kill as asked (nobody coordinates?)")?;
    let leases = cluster.node(victim).metric("myriad_node_leases").await;
    let safe = cluster.node(victim + 1).url.clone();

    // Someone on a node that survives chats all along.
    let (say, said) = mpsc::channel(16);
    let chatter = {
        let (url, shared) = (safe.clone(), shared.clone());
        tokio::spawn(async move {
            let _ = chat_along(url, chatter_token, said, shared).await;
        })
    };
    let talk = tokio::spawn(async move {
        for n in 1u64.. {
            let text = format!("failover chat {n}");
            if say.send(ClientMsg::chat(text)).await.is_err() {
                return;
            }
            tokio::time::sleep(CHAT_EVERY).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    let affected = (0..args.participants)
        .filter(|i| shared.lives[*i].lock().is_ok_and(|l| l.node == victim))
        .count() as u64;
    if let Ok(mut alive) = shared.alive.lock() {
        let url = cluster.node(victim).url.clone();
        alive.retain(|u| *u != url);
    }
    if let Ok(mut at) = shared.killed_at.lock() {
        *at = Some(Instant::now());
    }
    cluster.nodes[victim].kill();
    let killed = Instant::now();
    let recovered = || {
        shared
            .lives
            .iter()
            .filter(|l| l.lock().is_ok_and(|l| l.recovered_after.is_some()))
            .count() as u64
    };
    while recovered() < affected && killed.elapsed() < args.recover_within {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Chat goes on a little, then the last word: everyone must have every event.
    tokio::time::sleep(Duration::from_secs(1)).await;
    talk.abort();
    let (last_say, last_said) = mpsc::channel(1);
    let speaker = {
        let url = safe.clone();
        let token = cluster
            .node(victim + 1)
            .token(&meeting, "closer", true)
            .await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = chat_along(url, token, last_said, shared).await;
        })
    };
    let _ = last_say.send(ClientMsg::chat(LAST_WORD.into())).await;
    let heard = || {
        shared
            .lives
            .iter()
            .filter(|l| l.lock().is_ok_and(|l| l.heard_last_word))
            .count() as u64
    };
    let until = Instant::now() + Duration::from_secs(10);
    while heard() < n && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    chatter.abort();
    speaker.abort();
    for t in tasks {
        t.abort();
    }

    let mut times: Vec<f64> = Vec::new();
    let (mut missing, mut repeated, mut gave_up) = (0, 0, BTreeMap::new());
    for life in &shared.lives {
        let Ok(life) = life.lock() else { continue };
        if let Some(d) = life.recovered_after {
            times.push(d.as_secs_f64() * 1000.0);
        }
        missing += life.missing;
        repeated += life.repeated;
        if let Some(why) = &life.gave_up {
            *gave_up.entry(why.clone()).or_insert(0u64) += 1;
        }
    }
    if let Some((why, count)) = gave_up.iter().next() {
        eprintln!("{count} participants gave up: {why}");
    }
    times.sort_by(f64::total_cmp);
    let mut report = Report::new("failover");
    report
        .field("nodes", nodes as u64)
        .field("participants", n)
        .field("killed_node", format!("n{}", victim + 1))
        .field("killed_coordinator", leases.is_some_and(|l| l > 0.0))
        .field("affected", affected)
        .field("recovered", times.len() as u64)
        .field("recover_p50_ms", percentile(&times, 0.50))
        .field("recover_p95_ms", percentile(&times, 0.95))
        .field("recover_max_ms", times.last().copied())
        .field("events_lost", missing)
        .field("events_repeated", repeated)
        .field("heard_last_word", heard());
    Ok(report)
}

/// A chatting participant: says what comes on `say`, ignores what it hears.
async fn chat_along(
    url: String,
    token: String,
    mut say: mpsc::Receiver<ClientMsg>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (mut ws, _) = connect(&ws_url(&url)).await?;
    send(&mut ws, &join(token, None)).await?;
    loop {
        tokio::select! {
            msg = ws.next() => if msg.is_none() || shared.stop.load(Ordering::Relaxed) { return Ok(()) },
            out = say.recv() => match out {
                Some(msg) => send(&mut ws, &msg).await?,
                None => return Ok(()),
            },
        }
    }
}

/// One participant: joins through `url`; when its connection closes (its node died), asks a
/// surviving node's route where to go and resumes there.
async fn participant(i: usize, mut url: String, token: String, shared: Arc<Shared>) {
    let mut resume = None;
    loop {
        match session(i, &url, &token, resume.take(), &shared).await {
            Ok(()) => return,
            Err(e) if shared.stop.load(Ordering::Relaxed) => {
                let _ = e;
                return;
            }
            Err(_) => {}
        }
        // Resume where the route says, from the last event this participant has.
        let next = match route(&shared).await {
            Ok(next) => next,
            Err(e) => {
                if let Ok(mut life) = shared.lives[i].lock() {
                    life.gave_up = Some(format!("{e:#}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(life) = shared.lives[i].lock() else {
            return;
        };
        if let Some(participant) = life.participant {
            resume = Some(Resume {
                participant,
                session_token: life.session_token.clone(),
                last_seq: Seq(life.last),
            });
        }
        url = next;
    }
}

/// One connection's life; returns when told to stop (`Ok`) or when the connection ends.
async fn session(
    i: usize,
    url: &str,
    token: &str,
    resume: Option<Resume>,
    shared: &Shared,
) -> anyhow::Result<()> {
    let resuming = resume.is_some();
    let (mut ws, _) = connect(&ws_url(url)).await?;
    send(&mut ws, &join(token.to_owned(), resume)).await?;
    while let Some(msg) = ws.next().await {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Message::Text(text) = msg? else { continue };
        let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
            continue;
        };
        let Ok(mut life) = shared.lives[i].lock() else {
            return Ok(());
        };
        match msg {
            ServerMsg::Welcome {
                you,
                session_token,
                snapshot,
                ..
            } => {
                if life.participant.is_none() {
                    shared.joined.fetch_add(1, Ordering::Relaxed);
                }
                life.participant = Some(you.id);
                life.session_token = session_token;
                if let Some(s) = snapshot {
                    // A fresh start: what came before is covered by the snapshot.
                    life.last = s.seq.0;
                }
                if resuming {
                    let killed = shared.killed_at.lock().ok().and_then(|k| *k);
                    life.recovered_after = killed.map(|k| k.elapsed());
                    life.node = usize::MAX;
                }
            }
            ServerMsg::Events { events } => {
                for e in events {
                    if e.seq.0 <= life.last {
                        life.repeated += 1;
                        continue;
                    }
                    life.missing += e.seq.0 - life.last - 1;
                    life.last = e.seq.0;
                    if matches!(&e.event, MeetingEvent::Chat { text, .. } if text == LAST_WORD) {
                        life.heard_last_word = true;
                    }
                }
            }
            ServerMsg::Error { code, message } => bail!("{code:?}: {message}"),
            _ => {}
        }
    }
    bail!("connection closed")
}

/// Where to connect now, from the first surviving node that answers the route API.
async fn route(shared: &Shared) -> anyhow::Result<String> {
    let alive = shared.alive.lock().map(|a| a.clone()).unwrap_or_default();
    let http = reqwest::Client::new();
    let mut last = None;
    for node in alive {
        let asked = http
            .get(format!("{node}/api/v1/route?meeting={}", shared.meeting))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match asked {
            Ok(res) if res.status().is_success() => {
                let answer: Value = res.json().await.context("route JSON")?;
                return answer["url"]
                    .as_str()
                    .map(str::to_owned)
                    .context("route without url");
            }
            Ok(res) => last = Some(format!("route: {}", res.status())),
            Err(e) => last = Some(format!("route: {e}")),
        }
    }
    bail!(last.unwrap_or_else(|| "no node left".into()))
}

fn join(token: String, resume: Option<Resume>) -> ClientMsg {
    ClientMsg::Join {
        v: PROTOCOL_VERSION,
        token,
        resume,
    }
}

fn ws_url(url: &str) -> String {
    format!("{}/ws", url.replacen("http", "ws", 1))
}

async fn send(ws: &mut crate::signal_client::Ws, msg: &ClientMsg) -> anyhow::Result<()> {
    ws.send(Message::Text(serde_json::to_string(msg)?.into()))
        .await
        .context("send")
}
