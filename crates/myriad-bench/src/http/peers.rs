//! The caches measured side by side, each started on loopback with a config of the bench's
//! own in a private directory, in front of the same origin, and stopped afterwards.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Myriad,
    Nginx,
    Varnish,
    TrafficServer,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Myriad,
        Kind::TrafficServer,
        Kind::Nginx,
        Kind::Varnish,
    ];

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Myriad => "myriad",
            Kind::Nginx => "nginx",
            Kind::Varnish => "varnish",
            Kind::TrafficServer => "ats",
        }
    }
}

pub struct Peer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Varnish and ATS leave helper processes behind; they hold the private directory.
        let _ = Command::new("pkill").arg("-f").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(port: u16, what: &str, log: &Path) -> anyhow::Result<()> {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    bail!("{what} did not listen on {port}; its log:\n{log}")
}

impl Peer {
    pub fn start(kind: Kind, origin_port: u16) -> anyhow::Result<Peer> {
        let dir = std::env::temp_dir().join(format!(
            "myriad-bench-http-{}-{}",
            kind.name(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("out.log");
        let out = || -> anyhow::Result<Stdio> { Ok(Stdio::from(std::fs::File::create(&log)?)) };
        let (child, port) = match kind {
            Kind::Myriad => {
                let exe = std::env::current_exe()?;
                let mut child = Command::new(exe)
                    .args(["edge", "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
                    .arg("--origin")
                    .arg(format!("http://127.0.0.1:{origin_port}"))
                    // All load comes from one address: per-address limits would be the test.
                    .args([
                        "--max-conns-per-ip",
                        "100000",
                        "--rate-per-s",
                        "1e12",
                        "--burst",
                        "1e12",
                    ])
                    .args(["--cache-mem-mb", "1024", "--max-object-mb", "16"])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(out()?)
                    .spawn()
                    .context("starting myriad edge")?;
                let stdout = child.stdout.take().context("stdout")?;
                let line = BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .find(|l| l.starts_with("myriad edge is running at "))
                    .context("myriad edge did not start")?;
                let port = line
                    .split("127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|p| p.parse().ok())
                    .context("port in the start line")?;
                (child, port)
            }
            Kind::Nginx => {
                let port = free_port()?;
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&dir, port, origin_port))?;
                let child = Command::new("nginx")
                    .arg("-c")
                    .arg(&conf)
                    .arg("-p")
                    .arg(&dir)
                    .args(["-g", "daemon off;"])
                    .stdout(Stdio::null())
                    .stderr(out()?)
                    .spawn()
                    .context("starting nginx (scripts/peers/http installs it)")?;
                (child, port)
            }
            Kind::Varnish => {
                let port = free_port()?;
                let child = Command::new("varnishd")
                    .args(["-F", "-a", &format!("127.0.0.1:{port}")])
                    .args(["-b", &format!("127.0.0.1:{origin_port}")])
                    .args(["-s", "malloc,1024m", "-n"])
                    .arg(dir.join("work"))
                    .args(["-p", "thread_pool_min=50", "-p", "thread_pools=2"])
                    .stdout(Stdio::null())
                    .stderr(out()?)
                    .spawn()
                    .context("starting varnishd (scripts/peers/http installs it)")?;
                (child, port)
            }
            Kind::TrafficServer => {
                let port = free_port()?;
                let etc = dir.join("etc");
                let copied = Command::new("cp")
                    .arg("-r")
                    .arg("/etc/trafficserver")
                    .arg(&etc)
                    .status()?;
                if !copied.success() {
                    bail!("copying /etc/trafficserver (scripts/peers/http installs it)");
                }
                for sub in ["run", "log", "cache"] {
                    std::fs::create_dir_all(dir.join(sub))?;
                }
                std::fs::write(
                    etc.join("remap.config"),
                    format!("map / http://127.0.0.1:{origin_port}/\n"),
                )?;
                std::fs::write(
                    etc.join("storage.config"),
                    format!("{} 1024M\n", dir.join("cache").display()),
                )?;
                // Settings by environment (ATS reads PROXY_CONFIG_* over records.config).
                let child = Command::new("/usr/bin/traffic_server")
                    .env("PROXY_CONFIG_CONFIG_DIR", &etc)
                    .env("PROXY_CONFIG_LOCAL_STATE_DIR", dir.join("run"))
                    .env("PROXY_CONFIG_LOG_LOGFILE_DIR", dir.join("log"))
                    .env("PROXY_CONFIG_HTTP_SERVER_PORTS", port.to_string())
                    // It refuses to run as root otherwise.
                    .env("PROXY_CONFIG_ADMIN_USER_ID", "#-1")
                    .env("PROXY_CONFIG_CRASH_LOG_HELPER", "/bin/true")
                    // Request coalescing: readers of an object being written wait for it.
                    .env("PROXY_CONFIG_CACHE_ENABLE_READ_WHILE_WRITER", "1")
                    .env("PROXY_CONFIG_HTTP_CACHE_MAX_OPEN_READ_RETRIES", "100")
                    .env("PROXY_CONFIG_HTTP_CACHE_OPEN_READ_RETRY_TIME", "10")
                    .env("PROXY_CONFIG_HTTP_CACHE_MAX_OPEN_WRITE_RETRIES", "100")
                    .stdout(Stdio::null())
                    .stderr(out()?)
                    .spawn()
                    .context("starting traffic_server (scripts/peers/http installs it)")?;
                (child, port)
            }
        };
        let peer = Peer {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        wait_listening(port, kind.name(), &log)?;
        Ok(peer)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// nginx tuned as a cache: keep-alive upstream, cache lock (coalescing), no access log.
fn nginx_conf(dir: &Path, port: u16, origin_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=bench:64m max_size=2g inactive=1h use_temp_path=off;
    open_file_cache max=10000 inactive=60s;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
            proxy_cache_lock_age 30s;
            proxy_cache_use_stale updating;
        }}
    }}
}}
"#
    )
}
