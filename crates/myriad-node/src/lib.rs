//! A meeting node (`myriad serve`): the embedded web client, WebSocket signalling sessions,
//! this node's media workers, its links to the meetings it has people in, and the REST API,
//! on one port. Everything about a meeting's state is asked of its coordinator over the bus;
//! the node announces itself in the cluster's registry.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod api;
mod asks;
mod calendar;
mod health;
mod https;
mod link;
mod load;
mod metrics;
mod poll_export;
mod schedule_api;
mod session;
mod web;
pub use web::client_paths;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use axum::Router;
use myriad_control::{ClusterView, Control, MeetingClient, HEARTBEAT};
use myriad_proto::cluster::{NodeInfo, PartitionRef, RttShared, RTT_SUBJECT};
use myriad_proto::meeting::ConnRef;
use myriad_sfu::{Media, PeerId};
use tokio::sync::mpsc;

pub use health::Health;
pub use https::TlsListener;
use link::{LinkHandle, Links, SessionMsg};
use load::Load;

/// Network prefixes whose round-trip times a node remembers.
const RTT_PREFIXES: usize = 100_000;

/// Who a node is in its cluster.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique in the cluster: connection references and leases carry it.
    pub name: String,
    pub region: String,
    /// Where clients reach it (`http://host:port`).
    pub url: String,
    /// Participants it takes at most.
    pub capacity: u32,
    /// The IP other nodes reach its workers' relay sockets at (each at its own port).
    pub relay_ip: Option<std::net::IpAddr>,
    /// Its public IPs, which DNS names it by.
    pub addrs: Vec<std::net::IpAddr>,
    /// Where it is, for sending clients to the nearest node.
    pub location: Option<myriad_proto::cluster::Location>,
    /// Where clients are, from their addresses (routes for clients that do not say).
    pub geo: Arc<myriad_geo::Geo>,
    /// TURN servers its clients may relay their media through.
    pub turn: Option<Turn>,
    /// Proxies in front of the node (edges, load balancers) believed about the client they
    /// forward for in `X-Forwarded-For`: routes and round-trip reports go by that client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// TURN servers (e.g. coturn with `use-auth-secret`) and the secret they share with the
/// node: each participant gets credentials of its own, valid for `ttl`.
#[derive(Debug, Clone)]
pub struct Turn {
    /// `turn:host:port?transport=tcp`, `turns:…`, `stun:…` as browsers take them.
    pub urls: Vec<String>,
    pub secret: String,
    pub ttl: std::time::Duration,
}

/// One node: its name on the bus, the control layer, its media workers (none on a
/// control-only node) and its meeting links.
pub struct Node {
    pub control: Arc<Control>,
    pub media: Option<Media>,
    pub config: NodeConfig,
    /// How this node is named in connection references (unique in a cluster).
    pub name: String,
    load: Arc<Load>,
    metrics: metrics::NodeMetrics,
    links: Links,
    next_conn: AtomicU64,
    next_peer: AtomicU64,
    /// What `/healthz` said last (an overload clears with a margin).
    health: std::sync::Mutex<Health>,
    /// Round-trip times clients measured, per network prefix and node: routes go by them.
    rtt: Arc<std::sync::Mutex<myriad_plan::RttBook>>,
}

impl Node {
    /// Starts the node: it announces itself in the cluster's registry from now on.
    pub async fn start(
        control: Arc<Control>,
        media: Option<Media>,
        config: NodeConfig,
    ) -> Result<Arc<Self>, myriad_bus::BusError> {
        let load = Arc::new(Load::default());
        let announce = {
            let (config, load, media) = (config.clone(), Arc::clone(&load), media.clone());
            move || load.announcement(&config, media.as_ref())
        };
        control.cluster().announce(announce).await?;
        if let Some(media) = media.clone() {
            tokio::spawn(keep_relay_peers(Arc::clone(&control), media));
        }
        let metrics =
            metrics::NodeMetrics::new(Arc::clone(&load), media.clone(), Arc::clone(&control));
        let rtt = Arc::new(std::sync::Mutex::new(myriad_plan::RttBook::new(
            RTT_PREFIXES,
        )));
        let shared = control.bus().subscribe(RTT_SUBJECT).await?;
        tokio::spawn(hear_rtt(
            shared,
            Arc::clone(&control),
            config.name.clone(),
            Arc::clone(&rtt),
        ));
        Ok(Arc::new(Self {
            metrics,
            control,
            media,
            name: config.name.clone(),
            config,
            load,
            links: Links::default(),
            next_conn: AtomicU64::new(1),
            next_peer: AtomicU64::new(1),
            health: std::sync::Mutex::new(Health::Ready),
            rtt,
        }))
    }

    /// It stops soon: it says so (`/healthz`, the registry) and nobody new is routed here;
    /// those on it stay until the process ends.
    pub fn drain(&self) {
        self.load.draining.store(true, Ordering::Relaxed);
        tracing::info!(node = %self.name, "draining: nobody new is sent here");
    }

    /// It stops now: it leaves the cluster's registry at once, so routes and placements
    /// drop it when the others hear so (not after its heartbeats fall silent).
    pub async fn withdraw(&self) {
        if let Err(e) = self.control.cluster().withdraw(&self.name).await {
            tracing::warn!(node = %self.name, "registry entry not withdrawn: {e}");
        }
    }

    /// Whether this node should be sent people now, and if not, why.
    pub fn health(&self) -> Health {
        let readings = health::Readings {
            draining: self.load.draining.load(Ordering::Relaxed),
            registered: self
                .control
                .cluster()
                .alive()
                .iter()
                .any(|n| n.name == self.name),
            participants: self.load.participants.load(Ordering::Relaxed).max(0) as u32,
            capacity: self.config.capacity,
            cpu: self.load.cpu(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        };
        let mut last = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let now = health::assess(&readings, &last);
        if now != *last {
            tracing::info!(node = %self.name, health = ?now, "health changed");
        }
        *last = now.clone();
        now
    }

    /// The client of a request from `peer`: behind a trusted proxy, the address it forwards
    /// for (the rightmost one not itself a trusted proxy); else the peer.
    pub fn client_ip(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        myriad_cdn::trust::client_of(peer.ip(), headers, &self.config.trusted_proxies, false)
            .ip_or(peer.ip())
    }

    /// What this node would announce now.
    pub fn info(&self) -> NodeInfo {
        self.load.announcement(&self.config, self.media.as_ref())
    }

    /// A new signalling connection's reference.
    fn connection(&self) -> ConnRef {
        ConnRef {
            node: self.name.clone(),
            conn: self.next_conn.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A new media connection's id (unique on this node).
    fn peer_id(&self) -> PeerId {
        PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a connection with this node's link to the meeting (a node with media).
    async fn register(
        &self,
        media: &Media,
        client: &MeetingClient,
        conn: u64,
        tx: mpsc::Sender<SessionMsg>,
    ) -> Result<LinkHandle, myriad_bus::BusError> {
        let load = Arc::clone(&self.load);
        link::register(&self.links, client, media, load, conn, tx).await
    }
}

/// Records the round trips other nodes' clients reported (`RttShared`), so that routes here
/// use them too. Malformed or implausible ones are ignored.
async fn hear_rtt(
    mut shared: myriad_bus::Subscription,
    control: Arc<Control>,
    me: String,
    book: Arc<std::sync::Mutex<myriad_plan::RttBook>>,
) {
    while let Some(msg) = shared.next().await {
        let report = match myriad_proto::bus::decode::<RttShared>(&msg.payload) {
            Ok(r) if r.from != me && r.samples.len() <= api::MAX_RTT_SAMPLES => r,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("round trips from the bus ignored: {e}");
                continue;
            }
        };
        let alive = control.cluster().alive();
        let prefix = myriad_plan::Prefix::from_bits(report.prefix);
        let now = std::time::Instant::now();
        let mut book = book.lock().unwrap_or_else(|p| p.into_inner());
        for (node, rtt_ms) in report.samples {
            if api::plausible_rtt(rtt_ms) && alive.iter().any(|n| n.name == node) {
                book.record(prefix, &node, rtt_ms, now);
            }
        }
    }
}

/// Keeps the workers' list of the other nodes' workers' relay addresses as the registry has
/// them.
async fn keep_relay_peers(control: Arc<Control>, media: Media) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut last = std::collections::HashMap::new();
    loop {
        tick.tick().await;
        let peers: std::collections::HashMap<String, SocketAddr> = control
            .cluster()
            .alive()
            .into_iter()
            .filter(|n| n.name != media.node())
            .flat_map(|n| {
                let name = n.name;
                n.relays
                    .into_iter()
                    .enumerate()
                    .filter_map(move |(i, addr)| {
                        let partition = PartitionRef::new(&name, u16::try_from(i).ok()?);
                        Some((partition.to_string(), addr.parse().ok()?))
                    })
            })
            .collect();
        if peers != last {
            if !media.set_relay_peers(peers.clone()).await {
                return;
            }
            last = peers;
        }
    }
}

/// Everything `myriad serve` answers on its HTTP port.
pub fn router(node: Arc<Node>) -> Router {
    api::router()
        .route("/ws", axum::routing::get(session::upgrade))
        .merge(web::router())
        .with_state(node)
}

/// The address a request's connection came from, over HTTP or HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .await
}

/// Serves HTTPS (the same app) until the listener fails.
pub async fn serve_https(listener: TlsListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .await
}
