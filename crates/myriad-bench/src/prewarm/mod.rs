//! `prewarm`: a simulated day of scheduled meetings with join storms, run twice on fresh
//! processes — nodes warming up ahead of each start, and nodes that do not — and measured
//! side by side: join latency (from arriving to the welcome: the meeting's page, the web
//! client, its slides, then the WebSocket join) and cold misses (responses the edges had to
//! fetch from afar first).
//!
//! Each run: a real `nats-server -js`, two `myriad serve` nodes (regions `eu` and `us`), a
//! `myriad edge` next to each (the same port on 127.0.0.2 and 127.0.0.3, as one name would
//! resolve to the nearest edge; the meeting site `meet.test` from its node, the slides site
//! `content.test` from an origin 150 ms away), and the day's people, each going through
//! its region's edge and node.

mod day;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use myriad_proto::{ClientMsg, ServerMsg, PROTOCOL_VERSION};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::{Cluster, ClusterOpts};
use crate::forward::percentile;
use crate::server::TempDir;
use crate::signal_client::{connect, Ws};
use crate::Report;
use day::{Meeting, NO_SHOW, REGIONS, SLIDES};

#[derive(Debug, Clone)]
pub struct PrewarmArgs {
    pub meetings: usize,
    /// People each meeting expects, about.
    pub people: u32,
    pub seed: u64,
}

/// Meetings start this far apart.
const GAP_S: u64 = 5;
/// The warm-up starts this long before a meeting's first forecast joins.
const LEAD_S: u64 = 6;
/// A meeting nobody came to is undone this long after half its people were due.
const GRACE_S: u64 = 2;
/// The day starts this long after the meetings are scheduled (time to mint the tokens).
const SETUP_S: u64 = 15;
/// How far the slides' origin is.
const ORIGIN_DELAY: Duration = Duration::from_millis(150);
const SLIDE_BYTES: usize = 200 * 1024;
/// One person's joining may take this long at most.
const PERSON_TIMEOUT: Duration = Duration::from_secs(20);
const EDGE_TOKEN: &str = "bench-prewarm-edge-token";

pub async fn run(args: PrewarmArgs) -> anyhow::Result<Report> {
    let day = day::plan(args.seed, args.meetings.max(2), args.people.max(1), GAP_S);
    let origin = SlideOrigin::start().await?;
    let warm = one_run(&day, &origin, true)
        .await
        .context("the run with warm-up")?;
    let cold = one_run(&day, &origin, false)
        .await
        .context("the run without")?;
    let people: usize = day.iter().map(|m| m.arrivals.len()).sum();
    let mut report = Report::new("prewarm");
    report
        .field("meetings", day.len() as u64)
        .field("people", people as u64)
        .field("origin_delay_ms", ORIGIN_DELAY.as_millis() as u64)
        .field("join_p50_ms_warm", percentile(&warm.join_ms, 0.50))
        .field("join_p99_ms_warm", percentile(&warm.join_ms, 0.99))
        .field("join_p50_ms_cold", percentile(&cold.join_ms, 0.50))
        .field("join_p99_ms_cold", percentile(&cold.join_ms, 0.99))
        .field("cold_misses_warm", warm.cold_misses)
        .field("cold_misses_cold", cold.cold_misses)
        .field("requests_warm", warm.requests)
        .field("requests_cold", cold.requests)
        .field("failed_warm", warm.failed)
        .field("failed_cold", cold.failed)
        .field("no_show_undone", warm.no_show_undone)
        .field("forecast_meetings", warm.held_out["meetings"].as_u64())
        .field(
            "forecast_attendance_error",
            warm.held_out["attendance_error"].as_f64(),
        )
        .field(
            "forecast_expected_error",
            warm.held_out["expected_error"].as_f64(),
        );
    if let Some(e) = warm.first_error.or(cold.first_error) {
        eprintln!("first failure: {e}");
    }
    Ok(report)
}

struct RunResult {
    /// Sorted.
    join_ms: Vec<f64>,
    cold_misses: u64,
    requests: u64,
    failed: u64,
    first_error: Option<String>,
    /// Whether the no-show's slides left the edge after its warm-up lapsed.
    no_show_undone: Option<bool>,
    /// The forecaster's figures on the meetings held out (from the run's own turnout).
    held_out: Value,
}

async fn one_run(day: &[Meeting], origin: &SlideOrigin, warm: bool) -> anyhow::Result<RunResult> {
    let port = shared_free_port()?;
    let admin: Vec<u16> = (0..REGIONS.len())
        .map(|_| free_port(Ipv4Addr::LOCALHOST))
        .collect::<Result<_, _>>()?;
    let site = format!("http://meet.test:{port}");
    let per_node = (0..REGIONS.len())
        .map(|i| {
            let mut flags = vec!["--region".to_owned(), REGIONS[i].to_owned()];
            if warm {
                flags.extend([
                    "--prewarm-edge".to_owned(),
                    format!("http://127.0.0.1:{}", admin[i]),
                    "--prewarm-edge-token".to_owned(),
                    EDGE_TOKEN.to_owned(),
                    "--prewarm-site".to_owned(),
                    site.clone(),
                    "--prewarm-lead-s".to_owned(),
                    LEAD_S.to_string(),
                    "--prewarm-grace-s".to_owned(),
                    GRACE_S.to_string(),
                ]);
            } else {
                flags.extend(["--prewarm".to_owned(), "false".to_owned()]);
            }
            flags
        })
        .collect();
    let cluster = Cluster::start(&ClusterOpts {
        nodes: REGIONS.len(),
        workers: Some(1),
        per_node,
        ..ClusterOpts::default()
    })?;
    let edges: Vec<Edge> = (0..REGIONS.len())
        .map(|i| {
            Edge::start(
                edge_ip(i),
                port,
                admin[i],
                &cluster.nodes[i].url,
                origin.port,
            )
        })
        .collect::<Result<_, _>>()?;
    let api = cluster.first();
    let t0 = now_unix_ms() / 1000 + SETUP_S;
    for m in day {
        schedule(api, m, t0, port).await?;
    }
    let mut tokens = Vec::new();
    for m in day {
        for (i, _) in m.arrivals.iter().enumerate() {
            tokens.push(api.token(&m.id, &format!("{}-p{i}", m.id), false).await?);
        }
    }
    let clients: Vec<reqwest::Client> = (0..REGIONS.len())
        .map(|i| {
            let at = SocketAddr::new(IpAddr::V4(edge_ip(i)), port);
            reqwest::Client::builder()
                .resolve("meet.test", at)
                .resolve("content.test", at)
                .timeout(PERSON_TIMEOUT)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let day_start = instant_of(t0);
    let mut people = Vec::new();
    let mut token = tokens.into_iter();
    for m in day {
        for a in &m.arrivals {
            let offset = m.starts_after_s as i64 * 1000 + a.at_ms;
            let at = day_start + Duration::from_millis(offset.max(0) as u64)
                - Duration::from_millis((-offset).max(0) as u64);
            let person = Person {
                http: clients[a.region].clone(),
                ws_url: cluster.nodes[a.region].ws_url(),
                site: site.clone(),
                meeting: m.id.clone(),
                slides: slides(&m.id, port),
                token: token.next().context("a token per person")?,
            };
            people.push(tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                tokio::time::timeout(PERSON_TIMEOUT, person.join())
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("not joined in {PERSON_TIMEOUT:?}")))
            }));
        }
    }
    let mut result = RunResult {
        join_ms: Vec::new(),
        cold_misses: 0,
        requests: 0,
        failed: 0,
        first_error: None,
        no_show_undone: None,
        held_out: Value::Null,
    };
    // Everyone stays in until the day is over.
    let mut connections = Vec::new();
    for p in people {
        match p.await? {
            Ok(joined) => {
                result.join_ms.push(joined.ms);
                result.cold_misses += joined.cold_misses;
                result.requests += joined.requests;
                connections.push(joined.ws);
            }
            Err(e) => {
                result.failed += 1;
                result.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    result.join_ms.sort_by(f64::total_cmp);
    // The meetings end: their turnout is kept, and forecasts learn from it.
    for m in day.iter().filter(|m| !m.arrivals.is_empty()) {
        let path = format!("/api/v1/meetings/{}", m.id);
        api.call(reqwest::Method::DELETE, &path, None).await?;
    }
    drop(connections);
    if warm {
        // The no-show's seats and content are held until half its people were due (a
        // minute's bin after the start, nothing being learned yet) and a grace after.
        let no_show = &day[NO_SHOW];
        let lapsed = t0 + no_show.starts_after_s + 60 + GRACE_S + 2;
        tokio::time::sleep_until(instant_of(lapsed).into()).await;
        let slide = &slides(&no_show.id, port)[0];
        let status = cache_status(&clients[0], slide).await?;
        result.no_show_undone = Some(!status.contains("hit"));
    }
    result.held_out = held_out(api).await?;
    drop(edges);
    Ok(result)
}

/// Schedules meeting `m` at `t0` plus its offset, with its slides as content.
async fn schedule(
    api: &crate::server::Server,
    m: &Meeting,
    t0: u64,
    port: u16,
) -> anyhow::Result<()> {
    let audience: serde_json::Map<String, Value> = REGIONS
        .iter()
        .zip(m.expected)
        .map(|(r, n)| ((*r).to_owned(), json!(n)))
        .collect();
    let body = json!({
        "id": m.id,
        "title": format!("Briefing {}", m.id),
        "settings": {
            "schedule": {
                "starts_unix_s": t0 + m.starts_after_s,
                "duration_s": 600,
                "host": "briefings@example.org",
                "audience": audience,
                "content": slides(&m.id, port),
            }
        }
    });
    api.post("/api/v1/meetings", body).await?;
    Ok(())
}

/// The forecaster's figures on the meetings of the run (once their turnout is kept).
async fn held_out(api: &crate::server::Server) -> anyhow::Result<Value> {
    for _ in 0..50 {
        let answer = api
            .call(reqwest::Method::GET, "/api/v1/forecast/accuracy", None)
            .await?;
        if answer["held_out"]["meetings"].as_u64() > Some(0) {
            return Ok(answer["held_out"].clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Value::Null)
}

fn slides(meeting: &str, port: u16) -> Vec<String> {
    (1..=SLIDES)
        .map(|n| format!("http://content.test:{port}/deck/{meeting}/{n}.jpg"))
        .collect()
}

struct Person {
    http: reqwest::Client,
    ws_url: String,
    site: String,
    meeting: String,
    slides: Vec<String>,
    token: String,
}

struct Joined {
    ms: f64,
    cold_misses: u64,
    requests: u64,
    /// Kept open: the person stays in the meeting.
    ws: Ws,
}

#[derive(Default)]
struct Loaded {
    cold_misses: u64,
    requests: u64,
}

impl Person {
    /// What a browser does: the page, then what it links and the slides at once, then the
    /// modules the client imports; then it joins over the WebSocket.
    async fn join(self) -> anyhow::Result<Joined> {
        let started = Instant::now();
        let mut loaded = Loaded::default();
        let page = fetch(
            &self.http,
            &format!("{}/m/{}", self.site, self.meeting),
            &mut loaded,
        )
        .await?;
        let mut seen = HashSet::new();
        let mut wave: Vec<String> = linked(&page, "\"/static/", '"')
            .into_iter()
            .map(|p| format!("{}/static/{p}", self.site))
            .chain(self.slides.iter().cloned())
            .collect();
        while !wave.is_empty() {
            seen.extend(wave.iter().cloned());
            let bodies = futures_util::future::join_all(wave.iter().map(|url| {
                let http = self.http.clone();
                let url = url.clone();
                async move {
                    let mut one = Loaded::default();
                    let body = fetch(&http, &url, &mut one).await?;
                    anyhow::Ok((url, body, one))
                }
            }))
            .await;
            let mut next = Vec::new();
            for fetched in bodies {
                let (url, body, one) = fetched?;
                loaded.cold_misses += one.cold_misses;
                loaded.requests += one.requests;
                if url.ends_with(".js") {
                    next.extend(
                        linked(&body, "'./", '\'')
                            .into_iter()
                            .map(|m| format!("{}/static/{m}", self.site))
                            .filter(|u| !seen.contains(u)),
                    );
                }
            }
            next.sort();
            next.dedup();
            wave = next;
        }
        let (mut ws, _) = connect(&self.ws_url).await?;
        let join = ClientMsg::Join {
            v: PROTOCOL_VERSION,
            token: self.token,
            resume: None,
        };
        ws.send(Message::Text(serde_json::to_string(&join)?.into()))
            .await?;
        while let Some(msg) = ws.next().await {
            let Message::Text(text) = msg? else { continue };
            match serde_json::from_str::<ServerMsg>(&text)? {
                ServerMsg::Welcome { .. } => {
                    return Ok(Joined {
                        ms: started.elapsed().as_secs_f64() * 1000.0,
                        cold_misses: loaded.cold_misses,
                        requests: loaded.requests,
                        ws,
                    })
                }
                ServerMsg::Error { code, message } => bail!("{code:?}: {message}"),
                _ => {}
            }
        }
        bail!("the connection closed before the welcome")
    }
}

/// GETs `url` whole; counts it, and whether the edge had to go to the origin for it.
async fn fetch(http: &reqwest::Client, url: &str, loaded: &mut Loaded) -> anyhow::Result<String> {
    let res = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !res.status().is_success() {
        bail!("GET {url}: {}", res.status());
    }
    loaded.requests += 1;
    if is_cold_miss(res.headers()) {
        loaded.cold_misses += 1;
    }
    let body = res
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The edge had no copy and fetched it (RFC 9211 `fwd=uri-miss`; waiting for another
/// request's fetch counts too: it waited as long).
fn is_cold_miss(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("fwd=uri-miss") || v.contains("fwd=vary-miss"))
}

async fn cache_status(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let res = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = res.headers().get("cache-status").cloned();
    let _ = res.bytes().await;
    Ok(status
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .unwrap_or_default())
}

/// What `text` names after each `start` up to `end` (links in a page, imports in a module).
fn linked(text: &str, start: &str, end: char) -> Vec<String> {
    text.match_indices(start)
        .filter_map(|(i, _)| {
            let rest = &text[i + start.len()..];
            rest.find(end).map(|j| rest[..j].to_owned())
        })
        .filter(|name| !name.is_empty() && !name.contains(['/', ' ']))
        .collect()
}

/// The edge of region `i` listens on its own loopback address.
fn edge_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + i as u8)
}

fn free_port(ip: Ipv4Addr) -> std::io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// A port free on every edge's address.
fn shared_free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let port = free_port(edge_ip(0))?;
        if (1..REGIONS.len()).all(|i| TcpListener::bind((edge_ip(i), port)).is_ok()) {
            return Ok(port);
        }
    }
    bail!("no port free on every edge address")
}

fn now_unix_ms() -> u64 {
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `Instant` at unix second `s`.
fn instant_of(s: u64) -> Instant {
    let now_ms = now_unix_ms();
    let at_ms = s * 1000;
    match at_ms.checked_sub(now_ms) {
        Some(ahead) => Instant::now() + Duration::from_millis(ahead),
        None => Instant::now() - Duration::from_millis(now_ms - at_ms),
    }
}

/// A `myriad edge` in front of a node (the meeting site) and the slides' origin.
struct Edge {
    child: Child,
    _dir: TempDir,
}

impl Edge {
    fn start(
        ip: Ipv4Addr,
        port: u16,
        admin: u16,
        node_url: &str,
        origin: u16,
    ) -> anyhow::Result<Self> {
        let dir = TempDir::new(&format!("edge-{ip}"))?;
        let config = dir.0.join("sites.toml");
        std::fs::write(
            &config,
            format!(
                "[[site]]\nhosts = [\"content.test\"]\norigin = \"http://127.0.0.1:{origin}\"\n"
            ),
        )?;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["edge", "--http", &format!("{ip}:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--admin-token", EDGE_TOKEN, "--origin", node_url])
            .arg("--config")
            .arg(&config)
            .args(crate::edge_start::NO_ADDRESS_LIMITS)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting myriad edge")?;
        crate::edge_start::http_port(&mut child)?;
        Ok(Self { child, _dir: dir })
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The slides' origin: `/deck/{meeting}/{n}.jpg`, answered after [`ORIGIN_DELAY`] (it is
/// far away), cacheable for an hour.
struct SlideOrigin {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SlideOrigin {
    async fn start() -> anyhow::Result<Self> {
        let app = axum::Router::new().route("/deck/{meeting}/{slide}", get(slide));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { port, task })
    }
}

impl Drop for SlideOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn slide(Path((_meeting, _slide)): Path<(String, String)>) -> impl IntoResponse {
    tokio::time::sleep(ORIGIN_DELAY).await;
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        vec![0u8; SLIDE_BYTES],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_links_and_a_module_imports_are_read() {
        let page = r#"<link href="/static/style.css"><script src="/static/app.js"></script>"#;
        assert_eq!(linked(page, "\"/static/", '"'), ["style.css", "app.js"]);
        let module = "import { a } from './signal.js';\nimport { b } from './media.js';";
        assert_eq!(linked(module, "'./", '\''), ["signal.js", "media.js"]);
    }

    #[test]
    fn only_a_fetch_from_the_origin_is_a_cold_miss() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("cache-status", "myriad; hit; ttl=59".parse().unwrap());
        assert!(!is_cold_miss(&h));
        h.insert(
            "cache-status",
            "myriad; fwd=uri-miss; stored".parse().unwrap(),
        );
        assert!(is_cold_miss(&h));
    }
}
