//! What a scenario runs against: one `myriad serve` started for the run (or a running
//! deployment given by URL), or a cluster the bench starts itself — a real `nats-server -js`
//! and N `myriad serve --nats` nodes sharing one API key (one data dir made first and copied,
//! as an operator would), all on loopback.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::server::{api_key_of, cpu_seconds, rss_mb, Server, TempDir};

/// How the nodes are started.
#[derive(Debug, Clone, Default)]
pub struct ClusterOpts {
    /// Nodes; 0 or 1 is one `myriad serve` alone (no NATS).
    pub nodes: usize,
    /// Media workers per node (default: one per core).
    pub workers: Option<u16>,
    /// People per partition (default: the server's).
    pub partition_size: Option<u32>,
    /// People per node at most (default: the server's).
    pub capacity: Option<u32>,
    /// More flags for node i (its region, location, …), when there are some.
    pub per_node: Vec<Vec<String>>,
}

pub struct Cluster {
    pub nodes: Vec<Server>,
    nats: Option<Nats>,
}

impl Cluster {
    pub fn start(opts: &ClusterOpts) -> anyhow::Result<Self> {
        let mut flags = Vec::new();
        if let Some(w) = opts.workers {
            flags.extend(["--workers".to_owned(), w.to_string()]);
        }
        if let Some(p) = opts.partition_size {
            flags.extend(["--partition-size".to_owned(), p.to_string()]);
        }
        if let Some(c) = opts.capacity {
            flags.extend(["--capacity".to_owned(), c.to_string()]);
        }
        let own = |i: usize| opts.per_node.get(i).cloned().unwrap_or_default();
        if opts.nodes <= 1 {
            let flags = [flags, own(0)].concat();
            let server = Server::spawn_with(None, TempDir::new("serve")?, &flags)?;
            return Ok(Self {
                nodes: vec![server],
                nats: None,
            });
        }
        let nats = Nats::start()?;
        let first = TempDir::new("node1")?;
        let exe = std::env::current_exe().context("locating the myriad binary")?;
        api_key_of(&exe, &first.0)?;
        let mut dirs = vec![first];
        for i in 1..opts.nodes {
            let copy = TempDir::new(&format!("node{}", i + 1))?;
            for entry in std::fs::read_dir(&dirs[0].0)?.flatten() {
                std::fs::copy(entry.path(), copy.0.join(entry.file_name()))?;
            }
            dirs.push(copy);
        }
        let mut nodes = Vec::with_capacity(opts.nodes);
        for (i, dir) in dirs.into_iter().enumerate() {
            let mut node_flags = vec![
                "--nats".to_owned(),
                nats.url.clone(),
                "--node".to_owned(),
                format!("n{}", i + 1),
            ];
            node_flags.extend(flags.iter().cloned());
            node_flags.extend(own(i));
            nodes.push(
                Server::spawn_with(None, dir, &node_flags)
                    .with_context(|| format!("starting node n{}", i + 1))?,
            );
        }
        Ok(Self {
            nodes,
            nats: Some(nats),
        })
    }

    /// A running deployment: one entry point.
    pub fn external(url: &str) -> Self {
        Self::single(Server::external(url))
    }

    /// One server the caller started.
    pub fn single(server: Server) -> Self {
        Self {
            nodes: vec![server],
            nats: None,
        }
    }

    pub fn first(&self) -> &Server {
        &self.nodes[0]
    }

    /// Node `i`, round the cluster.
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i % self.nodes.len()]
    }

    /// The processes the bench started (nodes and NATS).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(Server::pid)
            .chain(self.nats.as_ref().map(|n| n.child.id()))
            .collect()
    }

    /// CPU seconds of every process the bench started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pids = self.pids();
        (!pids.is_empty()).then(|| pids.into_iter().filter_map(cpu_seconds).sum())
    }

    /// Resident memory of the nodes, in MB.
    pub fn nodes_rss_mb(&self) -> Option<f64> {
        let rss: Vec<f64> = self
            .nodes
            .iter()
            .filter_map(|n| n.pid().and_then(rss_mb))
            .collect();
        (!rss.is_empty()).then(|| rss.iter().sum())
    }
}

/// A `nats-server -js` on a free loopback port, its store in a directory of its own.
struct Nats {
    child: Child,
    url: String,
    _store: TempDir,
}

impl Nats {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("a free port for NATS")?
            .port();
        let store = TempDir::new("nats")?;
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server (`scripts/setup --test` installs it)")?;
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self {
                    child,
                    url: format!("nats://127.0.0.1:{port}"),
                    _store: store,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        bail!("nats-server did not listen on {port}")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
