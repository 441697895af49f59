//! A real `myriad serve` process on loopback for end-to-end tests.

#![allow(dead_code)] // each test binary uses a part of this

pub mod raw_h2;
pub mod ws;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test: this build's, or `MYRIAD_BIN` (e.g. a release build, to measure).
pub fn bin() -> String {
    std::env::var("MYRIAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_myriad").to_owned())
}

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `https://127.0.0.1:PORT`, when started with `--https`.
    pub https: Option<String>,
    pub data: tempfile::TempDir,
}

/// A node's metrics in Prometheus' text format.
pub struct Scrape(pub String);

impl Scrape {
    /// The value of the sample named exactly `name` (no labels).
    pub fn figure(&self, name: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {}", self.0))
    }
}

impl Server {
    /// Starts `myriad serve` on ephemeral ports with a fresh data dir; waits until it listens.
    pub fn start() -> Server {
        Server::start_in(tempfile::tempdir().expect("temp dir"), &[])
    }

    /// Starts `myriad serve` on ephemeral ports on the data dir `data`, with `extra` flags.
    pub fn start_in(data: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::start_in_env(data, extra, &[])
    }

    /// As [`Server::start_in`], with environment variables set for the process.
    pub fn start_in_env(data: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = data.path().to_str().expect("utf-8 temp dir").to_owned();
        let mut args = vec!["serve", "--http", "127.0.0.1:0", "--data", &dir];
        // Media on loopback, unless the test says where.
        if !extra.contains(&"--udp") {
            args.extend(["--udp", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let (child, line) = spawn(&args, "myriad is running at ", data.path(), env);
        let (url, https) = match line.split_once("/ and ") {
            Some((http, https)) => (http.to_owned(), Some(https.to_owned())),
            None => (line, None),
        };
        Server {
            child,
            url,
            https,
            data,
        }
    }

    /// Nodes of one cluster on `nats`, named n1, n2, …, each in its region; they share the
    /// API key (one data dir made first, copied for the others, as an operator would).
    pub fn cluster(nats: &Nats, regions: &[&str]) -> Vec<Server> {
        Server::cluster_with(nats, regions, &[])
    }

    /// As [`Server::cluster`], each node started with `extra` flags too.
    pub fn cluster_with(nats: &Nats, regions: &[&str], extra: &[&str]) -> Vec<Server> {
        let nodes: Vec<(&str, Vec<&str>)> = regions.iter().map(|r| (*r, extra.to_vec())).collect();
        Server::cluster_each(nats, &nodes)
    }

    /// As [`Server::cluster`], each node in its region with flags of its own.
    pub fn cluster_each(nats: &Nats, nodes: &[(&str, Vec<&str>)]) -> Vec<Server> {
        let first = tempfile::tempdir().expect("temp dir");
        let made = Command::new(bin())
            .args(["apikey", "--data"])
            .arg(first.path())
            .output()
            .expect("myriad apikey runs");
        assert!(made.status.success(), "myriad apikey failed");
        let mut dirs = vec![first];
        for _ in 1..nodes.len() {
            let copy = tempfile::tempdir().expect("temp dir");
            for entry in std::fs::read_dir(dirs[0].path()).expect("data dir") {
                let entry = entry.expect("entry");
                std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
            }
            dirs.push(copy);
        }
        dirs.into_iter()
            .zip(nodes)
            .enumerate()
            .map(|(i, (dir, (region, extra)))| {
                let name = format!("n{}", i + 1);
                let own = ["--nats", &nats.url, "--node", &name, "--region", region];
                Server::start_in(dir, &[&own[..], extra].concat())
            })
            .collect()
    }

    /// Its `/metrics`, as a scraper on this machine reads them.
    pub async fn scrape(&self) -> Scrape {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text");
        Scrape(text)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, limit)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.url.replace("http://", "ws://"))
    }

    pub fn log(&self) -> String {
        read_log(self.data.path())
    }

    /// `key:secret` for the REST API.
    pub fn api_credentials(&self) -> (String, String) {
        let out = self.cli(&["apikey"]);
        let (k, s) = out.trim().split_once(':').expect("key:secret");
        (k.to_owned(), s.to_owned())
    }

    /// Runs a `myriad` subcommand against this server's data dir; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(bin());
        cmd.args(args).arg("--data").arg(self.data.path());
        let out = cmd.output().expect("myriad runs");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn token(&self, meeting: &str, identity: &str, role: &str) -> String {
        self.token_with(meeting, identity, &["--role", role])
    }

    pub fn token_with_ttl(&self, meeting: &str, identity: &str, ttl: &str) -> String {
        self.token_with(meeting, identity, &["--ttl", ttl])
    }

    fn token_with(&self, meeting: &str, identity: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "token",
            "create",
            "--meeting",
            meeting,
            "--identity",
            identity,
        ];
        args.extend_from_slice(extra);
        self.cli(&args).trim().to_owned()
    }

    /// Creates a meeting through the REST API.
    pub async fn create_meeting(&self, id: &str) {
        let (key, secret) = self.api_credentials();
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/meetings", self.url))
            .basic_auth(key, Some(secret))
            .json(&serde_json::json!({ "id": id, "title": "test" }))
            .send()
            .await
            .expect("REST reachable");
        assert_eq!(
            res.status(),
            201,
            "create meeting: {}",
            res.text().await.unwrap_or_default()
        );
    }

    pub fn rss_kb(&self) -> u64 {
        proc_status_kb(self.child.id(), "VmRSS")
    }
}

/// Runs `myriad ARGS` with its log in `dir/serve.log` and waits for the stdout line starting
/// with `ready` that gives its URL.
fn spawn(args: &[&str], ready: &'static str, dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info,str0m=warn,myriad_sfu::core=debug")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("myriad starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(ready) {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{args:?} did not start; log:\n{}", read_log(dir)));
    (child, url)
}

/// A `myriad edge` caching proxy process.
pub struct Edge {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The admin port (`/metrics`, `/purge`).
    pub admin: String,
    /// `https://127.0.0.1:PORT` when started with `--https`.
    pub https: Option<String>,
    dir: tempfile::TempDir,
}

impl Edge {
    /// `myriad edge --http 127.0.0.1:0 --admin 127.0.0.1:0 --origin ORIGIN` plus `extra`.
    pub fn start(origin: &str, extra: &[&str]) -> Edge {
        let mut args = vec!["--origin", origin];
        args.extend_from_slice(extra);
        Edge::start_with(&args)
    }

    /// `myriad edge --http 127.0.0.1:0 --admin 127.0.0.1:0` plus `extra`.
    pub fn start_with(extra: &[&str]) -> Edge {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["edge", "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, line) = spawn(&args, "myriad edge is running at ", dir.path(), &[]);
        let (url, rest) = line
            .trim_end_matches(')')
            .split_once(" (admin ")
            .expect("URL (admin URL[, https URL])");
        let (admin, https) = match rest.split_once(", ") {
            Some((a, h)) => (a, Some(h.to_owned())),
            None => (rest, None),
        };
        Edge {
            child,
            url: url.to_owned(),
            admin: admin.to_owned(),
            https,
            dir,
        }
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, limit)
    }

    /// The HTTPS (and HTTP/3) address, when the edge was started with `--https`.
    pub fn https_addr(&self) -> std::net::SocketAddr {
        self.https
            .as_deref()
            .and_then(|u| u.strip_prefix("https://"))
            .and_then(|a| a.parse().ok())
            .expect("the edge runs HTTPS")
    }
}

/// A self-signed certificate for `names`, its PEM files written into `dir` as
/// `<stem>.pem` and `<stem>.key`.
pub struct TestCert {
    pub pem: String,
    pub der: Vec<u8>,
    /// The SubjectPublicKeyInfo (DER), what browsers pin.
    pub spki: Vec<u8>,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TestCert {
    pub fn new(dir: &Path, stem: &str, names: &[&str]) -> TestCert {
        use rcgen::PublicKeyData;
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let c = rcgen::generate_simple_self_signed(names).expect("a certificate");
        let (cert, key) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert, c.cert.pem()).expect("write the certificate");
        std::fs::write(&key, c.signing_key.serialize_pem()).expect("write the key");
        TestCert {
            pem: c.cert.pem(),
            der: c.cert.der().to_vec(),
            spki: c.signing_key.subject_public_key_info(),
            cert,
            key,
        }
    }

    /// `--tls-cert FILE --tls-key FILE`
    pub fn flags(&self) -> [&str; 4] {
        [
            "--tls-cert",
            self.cert.to_str().expect("a UTF-8 path"),
            "--tls-key",
            self.key.to_str().expect("a UTF-8 path"),
        ]
    }

    /// An HTTPS client that trusts only this certificate and reaches `name` at `addr`.
    pub fn client(&self, name: &str, addr: std::net::SocketAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem.as_bytes()).expect("a PEM certificate"),
            )
            .tls_built_in_root_certs(false)
            .resolve(name, addr)
            .build()
            .expect("an HTTPS client")
    }
}

/// A real `nats-server` on a free loopback port (`scripts/setup --test` installs it).
pub struct Nats {
    child: Child,
    pub url: String,
    port: u16,
    /// JetStream's store, when it runs with JetStream.
    store: Option<tempfile::TempDir>,
}

impl Nats {
    pub fn start() -> Nats {
        Nats::launch(free_port(), None)
    }

    /// With JetStream (KV and streams), its store in a directory of its own.
    pub fn start_js() -> Nats {
        Nats::launch(free_port(), Some(tempfile::tempdir().expect("temp dir")))
    }

    fn launch(port: u16, store: Option<tempfile::TempDir>) -> Nats {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(dir) = &store {
            cmd.arg("-js").arg("-sd").arg(dir.path());
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup --test installs it)");
        // Up to 10 s for it to listen.
        let listening = (0..500).any(|_| {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(20));
            }
            up
        });
        assert!(listening, "nats-server did not listen");
        Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
        }
    }

    /// Stops the server and starts it again on the same port and store.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let store = self.store.take();
        *self = Nats::launch(self.port, store);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/proc/PID/status` figure in kB (`VmRSS`, `VmHWM`…).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- myriad serve log ---\n{}", self.log());
        }
    }
}

/// Waits up to `limit` for `child` to exit by itself.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let step = Duration::from_millis(20);
    for _ in 0..=limit.as_millis() / step.as_millis() {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(step);
    }
    None
}
