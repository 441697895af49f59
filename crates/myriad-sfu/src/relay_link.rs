//! The relay's side of the media task: one UDP socket to the other nodes, their addresses
//! (from the cluster's registry), datagrams sealed on the way out and opened on the way in.
//! What fails to open is counted and logged (at most once a second), never passed on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use crate::relay::{RelayMsg, RelayOpener, RelaySealer};
use crate::shell::Counters;

/// Where this node relays from, and how it proves it is of the cluster.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub bind: SocketAddr,
    /// This node's name (receivers know the sender by it).
    pub node: String,
    /// The cluster's relay key ([`crate::relay::relay_key`]).
    pub key: Vec<u8>,
}

pub(crate) struct RelayLink {
    socket: UdpSocket,
    sealer: RelaySealer,
    opener: RelayOpener,
    peers: HashMap<String, SocketAddr>,
    last_refusal_log: Option<Instant>,
    unlogged: u64,
}

impl RelayLink {
    pub(crate) async fn bind(config: &RelayConfig) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(config.bind).await?;
        // A counter past anything an earlier run of this node sent.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(Self {
            socket,
            sealer: RelaySealer::new(&config.node, &config.key, start),
            opener: RelayOpener::new(&config.key),
            peers: HashMap::new(),
            last_refusal_log: None,
            unlogged: 0,
        })
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub(crate) fn set_peers(&mut self, peers: HashMap<String, SocketAddr>) {
        self.peers = peers;
    }

    /// Sends `msg` to node `to` at once; dropped (and counted) if the socket is full or the
    /// node unknown.
    pub(crate) fn send(&mut self, to: &str, msg: &RelayMsg, counters: &Counters) {
        let Some(addr) = self.peers.get(to) else {
            counters.relay_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let datagram = self.sealer.seal(msg);
        match self.socket.try_send_to(&datagram, *addr) {
            Ok(n) => {
                counters.relay_sent.fetch_add(1, Ordering::Relaxed);
                counters
                    .relay_bytes_sent
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                counters.relay_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The next datagram's sender and message; what does not open is counted and skipped.
    pub(crate) async fn recv(&mut self, buf: &mut [u8], counters: &Counters) -> (String, RelayMsg) {
        loop {
            let (n, from) = match self.socket.recv_from(buf).await {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!("relay recv failed: {e}");
                    continue;
                }
            };
            match self.opener.open(&buf[..n]) {
                Ok(opened) => {
                    counters.relay_received.fetch_add(1, Ordering::Relaxed);
                    return opened;
                }
                Err(e) => {
                    counters.relay_refused.fetch_add(1, Ordering::Relaxed);
                    self.log_refusal(from, &e);
                }
            }
        }
    }

    fn log_refusal(&mut self, from: SocketAddr, e: &crate::relay::RelayError) {
        let now = Instant::now();
        if self
            .last_refusal_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(%from, unlogged = self.unlogged, "relay datagram refused: {e}");
        self.last_refusal_log = Some(now);
        self.unlogged = 0;
    }
}
