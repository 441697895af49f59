//! The caches measured side by side, each started on loopback with a config of the bench's
//! own in a private directory, in front of the same origin, and stopped afterwards.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use super::cpus::Split;

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
    /// Where it listens, on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Each peer runs in a process group of its own: nginx workers, Varnish's child and
        // ATS' helpers go with it. TERM first, so they shut down cleanly. (A group that is
        // gone already makes these fail, which is what they were for.)
        // A paused group handles TERM only once continued.
        let _ = self.resume();
        let _ = self.signal(libc::SIGTERM);
        let stopped = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        let _ = self.signal(libc::SIGKILL);
        if !stopped {
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command in a new process group, so the whole group can be stopped; with `pin`, on the
/// caches' CPUs.
fn command(program: impl AsRef<std::ffi::OsStr>, pin: Option<&Split>) -> Command {
    let mut cmd = Command::new(program);
    cmd.process_group(0);
    if let Some(split) = pin {
        split.for_cache(&mut cmd);
    }
    cmd
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
    /// Starts a cache; with `waf`, behind libmodsecurity and the OWASP CRS (myriad's `--waf`,
    /// nginx's ModSecurity module with the same rules).
    pub fn start(
        kind: Kind,
        origin_port: u16,
        waf: bool,
        pin: Option<&Split>,
    ) -> anyhow::Result<Peer> {
        if waf && !matches!(kind, Kind::Myriad | Kind::Nginx) {
            bail!("the WAF comparison is between myriad and nginx + ModSecurity");
        }
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
                let mut child = command(exe, pin)
                    .args(["edge", "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
                    .arg("--origin")
                    .arg(format!("http://127.0.0.1:{origin_port}"))
                    .args(crate::edge_start::NO_ADDRESS_LIMITS)
                    .args(["--cache-mem-mb", "1024", "--max-object-mb", "16"])
                    .args(if waf { &["--waf"][..] } else { &[] })
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(out()?)
                    .spawn()
                    .context("starting myriad edge")?;
                let port = crate::edge_start::http_port(&mut child)?;
                (child, port)
            }
            Kind::Nginx => {
                let port = free_port()?;
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&dir, port, origin_port, waf)?)?;
                let child = command("nginx", pin)
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
                let child = command("varnishd", pin)
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
                let child = command("/usr/bin/traffic_server", pin)
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
        let peer = Peer { port, child, dir };
        wait_listening(port, kind.name(), &log)?;
        Ok(peer)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the whole process group (`SIGSTOP`), so that a cache not being measured
    /// takes no CPU time from the one that is: ATS, for one, goes on working after a load
    /// ends, which used to cost whichever cache was measured next.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)
    }

    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) with a process group id has no memory-safety preconditions.
        if unsafe { libc::kill(group, signal) } != 0 {
            bail!(
                "signalling process group {}: {}",
                self.child.id(),
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
}

/// nginx tuned as a cache: keep-alive upstream, cache lock (coalescing), no access log; with
/// `waf`, Debian's ModSecurity module with the rules myriad's `--waf` loads.
fn nginx_conf(dir: &Path, port: u16, origin_port: u16, waf: bool) -> anyhow::Result<String> {
    let d = dir.display();
    let (load, modsec) = if waf {
        let rules = dir.join("modsecurity.conf");
        std::fs::write(
            &rules,
            "SecRuleEngine On\nSecRequestBodyAccess On\nSecRequestBodyLimit 131072\n\
             SecRequestBodyLimitAction ProcessPartial\nSecResponseBodyAccess Off\nSecAuditEngine Off\n\
             SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1\"\n\
             Include /etc/modsecurity/crs/crs-setup.conf\n\
             Include /usr/share/modsecurity-crs/rules/*.conf\n",
        )?;
        (
            "load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;".to_owned(),
            format!(
                "modsecurity on; modsecurity_rules_file {};",
                rules.display()
            ),
        )
    } else {
        (String::new(), String::new())
    };
    Ok(format!(
        r#"{load}
worker_processes auto;
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
        {modsec}
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
    ))
}
