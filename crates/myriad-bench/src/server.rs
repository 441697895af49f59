//! The server under test: a `myriad serve` child process on loopback (or a running
//! deployment given by URL), and what the bench needs from it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::netns::NetNs;

pub struct Server {
    /// `http://host:port`
    pub url: String,
    child: Option<Child>,
    _data: Option<TempDir>,
    /// The API key and secret, when known.
    api_key: Option<(String, String)>,
}

/// A directory removed on drop.
pub(crate) struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh directory named after this process and `what`.
    pub(crate) fn new(what: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("myriad-bench-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

/// Where a server's log goes: nowhere, or with `MYRIAD_BENCH_LOGS=DIR` a file in DIR named
/// after its data dir (its level from `RUST_LOG`, warnings by default), to see what a
/// server did during a run.
fn log_file(data: &TempDir) -> anyhow::Result<Stdio> {
    let Some(dir) = std::env::var_os("MYRIAD_BENCH_LOGS") else {
        return Ok(Stdio::null());
    };
    let name = data.0.file_name().unwrap_or_default().to_string_lossy();
    let path = std::path::Path::new(&dir).join(format!("{name}.log"));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("creating the server log {}", path.display()))?;
    Ok(file.into())
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// Starts this very binary as `myriad serve` on ephemeral ports: on loopback, or on the
    /// namespace's address inside it.
    pub fn spawn(netns: Option<&NetNs>) -> anyhow::Result<Self> {
        let data = TempDir::new("serve")?;
        Self::spawn_with(netns, data, &[])
    }

    /// As [`Server::spawn`], on the data dir `data` (which gets an API key if it has none),
    /// with more flags.
    pub(crate) fn spawn_with(
        netns: Option<&NetNs>,
        data: TempDir,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the myriad binary")?;
        let api_key = Some(api_key_of(&exe, &data.0)?);
        let (mut cmd, ip) = match netns {
            Some(ns) => (ns.command(&exe.to_string_lossy()), ns.ns_ip),
            None => (Command::new(&exe), std::net::Ipv4Addr::LOCALHOST),
        };
        let addr = format!("{ip}:0");
        let mut child = cmd
            .args([
                "serve", "--http", &addr, "--udp", &addr, "--dev", "true", "--data",
            ])
            .arg(&data.0)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log_file(&data)?)
            .spawn()
            .context("starting myriad serve")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("myriad is running at ") {
                    let _ = tx.send(rest.trim_end_matches('/').to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                bail!("myriad serve did not start");
            }
        };
        Ok(Self {
            url,
            child: Some(child),
            _data: Some(data),
            api_key,
        })
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn external(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            child: None,
            _data: None,
            api_key: std::env::var("MYRIAD_API_KEY")
                .ok()
                .and_then(|k| parse_key(&k).ok()),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A figure from the node's `/metrics` (the bench runs on the node's machine).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
    }

    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.url.replacen("http", "ws", 1))
    }

    /// POSTs to the server: with the API key when the bench knows it (a server it started,
    /// or `MYRIAD_API_KEY=KEY:SECRET` for a running deployment), else to its dev endpoints.
    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Calls the server's API (with its key, when known); the JSON answer.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = reqwest::Client::new().request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some((key, secret)) = &self.api_key {
            req = req.basic_auth(key, Some(secret));
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status} {body}");
        }
        Ok(body)
    }

    pub async fn create_meeting(&self) -> anyhow::Result<String> {
        self.create_meeting_with(json!({})).await
    }

    /// A meeting with settings (e.g. `{"last_n_video": 1}`).
    pub async fn create_meeting_with(&self, settings: Value) -> anyhow::Result<String> {
        let body = json!({ "title": "bench", "settings": settings });
        let path = match self.api_key {
            Some(_) => "/api/v1/meetings",
            None => "/api/dev/meetings",
        };
        let m = self.post(path, body).await?;
        m["id"].as_str().map(str::to_owned).context("meeting id")
    }

    /// A token for a panelist (who publishes) or an attendee (receive-only, as in a town
    /// hall).
    pub async fn token(
        &self,
        meeting: &str,
        name: &str,
        publishes: bool,
    ) -> anyhow::Result<String> {
        let role = if publishes { "panelist" } else { "attendee" };
        let t = match self.api_key {
            Some(_) => {
                let body =
                    json!({ "meeting": meeting, "identity": name, "name": name, "role": role });
                self.post("/api/v1/tokens", body).await?
            }
            None => {
                let body = json!({ "meeting": meeting, "name": name, "role": role });
                self.post("/api/dev/token", body).await?
            }
        };
        t["token"].as_str().map(str::to_owned).context("token")
    }
}

/// The API key and secret of a data dir, from `myriad apikey` (which makes them if needed).
pub(crate) fn api_key_of(
    exe: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<(String, String)> {
    let out = Command::new(exe)
        .args(["apikey", "--data"])
        .arg(data)
        .output()
        .context("myriad apikey")?;
    if !out.status.success() {
        bail!(
            "myriad apikey failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_key(&String::from_utf8_lossy(&out.stdout))
}

fn parse_key(text: &str) -> anyhow::Result<(String, String)> {
    let (key, secret) = text.trim().split_once(':').context("KEY:SECRET")?;
    Ok((key.to_owned(), secret.to_owned()))
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every process's id and `/proc/<pid>/stat` line; one that exits during the walk is left out.
pub fn process_stats() -> std::io::Result<impl Iterator<Item = (u32, String)>> {
    Ok(std::fs::read_dir("/proc")?.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        Some((pid, stat))
    }))
}

/// The fields of a `/proc/<pid>/stat` line after the command, which may itself hold spaces
/// and parentheses: state, ppid, pgrp, …
pub fn stat_fields(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    let (_, after_command) = stat.rsplit_once(')')?;
    Some(after_command.split_whitespace())
}

/// CPU seconds (user + system) a process has used, read from its CPU-time clock: nanoseconds,
/// where `/proc/<pid>/stat` counts 10 ms ticks and a light load can read as none at all.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid out-pointer; an unknown pid returns an error code.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer; a clock of a process that has exited fails.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
}

/// CPU seconds of a process and all its descendants (nginx workers, Varnish's child).
pub fn tree_cpu_seconds(root: u32) -> Option<f64> {
    let mut parent_of = Vec::new();
    for (pid, stat) in process_stats().ok()? {
        if let Some(ppid) = stat_fields(&stat).and_then(|mut f| f.nth(1)?.parse::<u32>().ok()) {
            parent_of.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    Some(tree.iter().filter_map(|p| cpu_seconds(*p)).sum())
}

/// Resident set size in MB, from `/proc/<pid>/status`.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_rss() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some_and(|s| s >= 0.0));
        assert!(rss_mb(me).is_some_and(|m| m > 0.0));
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn reads_another_process_cpu_below_a_clock_tick() {
        let mut child = Command::new("sh")
            .args(["-c", "echo ready; sleep 5"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("ready");
        // A process that has barely run: well under the 10 ms of a `/proc` tick, yet not zero.
        let used = cpu_seconds(child.id()).expect("a live child's clock");
        child.kill().ok();
        child.wait().ok();
        assert!(used > 0.0 && used < 0.5, "{used}");
    }
}
