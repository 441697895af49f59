//! A node's media: one worker per core ([`SfuHandle`]), each on its own thread with its own
//! UDP socket (and relay socket, in a cluster), each carrying its partition of the meetings
//! placed on it. Workers of one node relay to each other in-process.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use myriad_proto::cluster::PartitionRef;

use crate::relay_link::RelayConfig;
use crate::shell::{SfuHandle, WorkerConfig};

/// Where a node's workers listen.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The node's name: worker `i` is partition `node/i`.
    pub node: String,
    /// Worker `i` binds this port plus `i` (any free port each when it is 0).
    pub bind: SocketAddr,
    pub public_ip: Option<IpAddr>,
    pub workers: u16,
    /// The relay's first port (worker `i` binds it plus `i`) and the cluster's relay key.
    pub relay: Option<(SocketAddr, Vec<u8>)>,
    /// Whether workers also take media over ICE-TCP (each at its UDP port, when free).
    pub ice_tcp: bool,
}

/// The sums of the workers' counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub relay_sent: u64,
    pub relay_bytes_sent: u64,
    pub relay_received: u64,
    pub relay_refused: u64,
    pub relay_dropped: u64,
    pub relay_sibling_sent: u64,
    pub tcp_packets_sent: u64,
    pub tcp_packets_received: u64,
    pub tcp_dropped: u64,
}

/// The node's workers; cheap to clone.
#[derive(Clone)]
pub struct Media {
    node: String,
    workers: Arc<[SfuHandle]>,
}

impl Media {
    /// Starts the workers and introduces them to each other.
    pub async fn start(config: MediaConfig) -> std::io::Result<Self> {
        let count = config.workers.max(1);
        let mut workers = Vec::with_capacity(usize::from(count));
        for i in 0..count {
            let name = PartitionRef::new(&config.node, i).to_string();
            let relay = config.relay.as_ref().map(|(bind, key)| RelayConfig {
                bind: offset(*bind, i),
                node: name.clone(),
                key: key.clone(),
            });
            workers.push(
                SfuHandle::start(WorkerConfig {
                    name,
                    bind: offset(config.bind, i),
                    public_ip: config.public_ip,
                    relay,
                    ice_tcp: config.ice_tcp,
                })
                .await?,
            );
        }
        for w in &workers {
            w.set_siblings(&workers)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(Self {
            node: config.node,
            workers: workers.into(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn workers(&self) -> &[SfuHandle] {
        &self.workers
    }

    pub fn count(&self) -> u16 {
        self.workers.len() as u16
    }

    /// The worker carrying `partition`, if it is one of this node's.
    pub fn worker(&self, partition: &PartitionRef) -> Option<&SfuHandle> {
        (partition.node == self.node)
            .then(|| self.workers.get(usize::from(partition.worker)))
            .flatten()
    }

    /// Where each worker receives relay datagrams, in worker order (none outside a cluster).
    pub fn relay_addrs(&self) -> Vec<SocketAddr> {
        self.workers
            .iter()
            .filter_map(SfuHandle::relay_addr)
            .collect()
    }

    /// Tells every worker where the other nodes' workers are.
    pub async fn set_relay_peers(&self, peers: HashMap<String, SocketAddr>) -> bool {
        for w in self.workers.iter() {
            if w.set_relay_peers(peers.clone()).await.is_err() {
                return false;
            }
        }
        true
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for w in self.workers.iter() {
            let c = w.counters();
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            t.packets_sent += n(&c.packets_sent);
            t.bytes_sent += n(&c.bytes_sent);
            t.packets_received += n(&c.packets_received);
            t.bytes_received += n(&c.bytes_received);
            t.relay_sent += n(&c.relay_sent);
            t.relay_bytes_sent += n(&c.relay_bytes_sent);
            t.relay_received += n(&c.relay_received);
            t.relay_refused += n(&c.relay_refused);
            t.relay_dropped += n(&c.relay_dropped);
            t.relay_sibling_sent += n(&c.relay_sibling_sent);
            t.tcp_packets_sent += n(&c.tcp_packets_sent);
            t.tcp_packets_received += n(&c.tcp_packets_received);
            t.tcp_dropped += n(&c.tcp_dropped);
        }
        t
    }
}

/// `addr` with its port moved up by `by`, unless it is 0 (any port).
fn offset(addr: SocketAddr, by: u16) -> SocketAddr {
    match addr.port() {
        0 => addr,
        p => SocketAddr::new(addr.ip(), p.saturating_add(by)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_worker_has_its_own_sockets_and_name() {
        let media = Media::start(MediaConfig {
            node: "n1".into(),
            bind: "127.0.0.1:0".parse().unwrap(),
            public_ip: None,
            workers: 3,
            relay: Some(("127.0.0.1:0".parse().unwrap(), b"k".to_vec())),
            ice_tcp: true,
        })
        .await
        .unwrap();
        assert_eq!(media.count(), 3);
        let names: Vec<&str> = media.workers().iter().map(SfuHandle::name).collect();
        assert_eq!(names, ["n1/0", "n1/1", "n1/2"]);
        let ports: std::collections::BTreeSet<u16> = media
            .workers()
            .iter()
            .map(|w| w.local_addr().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert_eq!(media.relay_addrs().len(), 3);
        // Each has an ICE-TCP listener (at its UDP port when that was free for TCP too).
        for w in media.workers().iter() {
            let tcp = w.tcp_addr().expect("an ICE-TCP listener");
            tokio::net::TcpStream::connect(tcp)
                .await
                .expect("it listens");
        }
        assert!(media.worker(&PartitionRef::new("n1", 2)).is_some());
        assert!(media.worker(&PartitionRef::new("n1", 3)).is_none());
        assert!(media.worker(&PartitionRef::new("n2", 0)).is_none());
        assert_eq!(offset("10.0.0.1:5000".parse().unwrap(), 2).port(), 5002);
    }
}
