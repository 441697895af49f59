//! The shell of one media worker around [`crate::core::Sfu`]: a thread of its own (one core)
//! whose single task owns the worker's UDP socket, its relay socket and the core; the rest of
//! the process talks to it through [`SfuHandle`] commands and receives events on the channel
//! it registered per meeting (forgotten once its receiver is gone). Relay messages for a
//! sibling worker of the same node go to it in-process, never through a socket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use myriad_proto::{
    ForwardingPlan, MeetingId, ParticipantId, TrackId, TrackInfo, TrackMid, TrackSource,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use str0m::net::Protocol;

use crate::core::{NewPeer, Output, PeerId, Sfu, SfuConfig, SfuError, SfuEvent};
use crate::ice_tcp::IceTcp;
use crate::relay::RelayMsg;
use crate::relay_link::{RelayConfig, RelayLink};

/// Media events of one meeting, for the node's link to that meeting, which relays the
/// per-peer ones to the participant's current signalling connection (that connection may
/// change when a client resumes) and asks the coordinator about tracks.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    TrackAdded {
        peer: PeerId,
        participant: ParticipantId,
        mid: String,
        source: TrackSource,
    },
    AudioLevels(Vec<(ParticipantId, f32)>),
    Offer {
        peer: PeerId,
        sdp: String,
        tracks: Vec<TrackMid>,
    },
    /// The tracks the peer's slots carry changed.
    Slots {
        peer: PeerId,
        slots: Vec<TrackMid>,
    },
    PeerClosed {
        peer: PeerId,
        reason: String,
    },
}

type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

enum Command {
    OpenRoom {
        meeting: MeetingId,
        events: mpsc::Sender<RoomEvent>,
    },
    CloseRoom {
        meeting: MeetingId,
    },
    AddPeer {
        new: NewPeer,
        offer: String,
        tracks: Vec<TrackMid>,
        reply: Reply<String>,
    },
    Offer {
        id: PeerId,
        sdp: String,
        tracks: Vec<TrackMid>,
        reply: Reply<String>,
    },
    Answer {
        id: PeerId,
        sdp: String,
        reply: Reply<()>,
    },
    BindTrack {
        id: PeerId,
        mid: String,
        track: TrackId,
    },
    UnbindTrack {
        meeting: MeetingId,
        track: TrackId,
    },
    Plan {
        meeting: MeetingId,
        plan: ForwardingPlan,
    },
    View {
        id: PeerId,
        max_height: u32,
        pinned: Vec<ParticipantId>,
    },
    RemovePeer {
        id: PeerId,
    },
    Resync {
        id: PeerId,
    },
    RelayPeers {
        peers: HashMap<String, SocketAddr>,
    },
    AddRemoteTrack {
        meeting: MeetingId,
        track: TrackInfo,
        upstream: String,
    },
    Warm {
        meeting: MeetingId,
        warm: bool,
    },
    Siblings {
        siblings: HashMap<String, mpsc::Sender<Relayed>>,
    },
}

/// A relay message from a sibling worker: its name and the message.
pub(crate) type Relayed = (String, RelayMsg);

/// In-process relay messages waiting for one worker at most; beyond, they are dropped as a
/// full socket would drop them.
const SIBLING_QUEUE: usize = 4096;

/// What one worker binds and how it is named.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its partition name (`node/worker`): relay messages carry it.
    pub name: String,
    /// Where clients send it media.
    pub bind: SocketAddr,
    /// The address clients are told (default: the bound IP).
    pub public_ip: Option<IpAddr>,
    /// Its relay socket, in a cluster.
    pub relay: Option<RelayConfig>,
    /// Whether it also takes media over ICE-TCP (a passive candidate at the same port, or
    /// any free one), for clients that cannot use UDP.
    pub ice_tcp: bool,
}

/// One media worker. Cheap to clone; every method is a message to its task; the worker stops
/// once every handle is gone.
#[derive(Clone)]
pub struct SfuHandle {
    name: String,
    commands: mpsc::Sender<Command>,
    /// Where sibling workers put relay messages for it.
    relay_in: mpsc::Sender<Relayed>,
    local_addr: SocketAddr,
    relay_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    counters: Arc<Counters>,
}

/// What the media task has done, counted as it goes (read for load reports and metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Relay datagrams sent to other nodes, received from them (opened), refused (forged,
    /// malformed, replayed), and dropped on the way out (unknown partition, full socket or
    /// sibling queue). Relay messages to sibling workers are counted apart.
    pub relay_sent: AtomicU64,
    pub relay_bytes_sent: AtomicU64,
    pub relay_received: AtomicU64,
    pub relay_refused: AtomicU64,
    pub relay_dropped: AtomicU64,
    pub relay_sibling_sent: AtomicU64,
    /// Of the packets sent and received, those over ICE-TCP; and those dropped because a
    /// TCP client did not read them fast enough (or its connection was gone).
    pub tcp_packets_sent: AtomicU64,
    pub tcp_packets_received: AtomicU64,
    pub tcp_dropped: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("the media task has stopped")]
    Stopped,
    #[error(transparent)]
    Sfu(#[from] SfuError),
}

impl SfuHandle {
    /// Starts a worker on a thread of its own: binds its UDP socket (and its relay's, in a
    /// cluster) and runs its task there. Clients are told to send to the public IP at the
    /// bound port.
    pub async fn start(config: WorkerConfig) -> std::io::Result<Self> {
        let (ready_tx, ready) = oneshot::channel();
        let thread = format!("media {}", config.name);
        std::thread::Builder::new().name(thread).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match Worker::bind(config).await {
                    Ok((worker, handle)) => {
                        if ready_tx.send(Ok(handle)).is_ok() {
                            worker.run().await;
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        ready
            .await
            .map_err(|_| std::io::Error::other("the media worker's thread ended at start"))?
    }

    /// Its partition name (`node/worker`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where other nodes send this one relay datagrams.
    /// Where its ICE-TCP listener is bound, if it has one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay_addr
    }

    /// The relay addresses of the other nodes' workers, by partition name.
    pub async fn set_relay_peers(
        &self,
        peers: HashMap<String, SocketAddr>,
    ) -> Result<(), ShellError> {
        self.send(Command::RelayPeers { peers }).await
    }

    /// A track published in another partition: offered to the subscribers here, pulled from
    /// `upstream` (told again when that changes).
    pub async fn add_remote_track(
        &self,
        meeting: MeetingId,
        track: TrackInfo,
        upstream: String,
    ) -> Result<(), ShellError> {
        self.send(Command::AddRemoteTrack {
            meeting,
            track,
            upstream,
        })
        .await
    }

    /// Opens this worker's partition of the meeting ahead of its first subscribers, or stops
    /// doing so.
    pub async fn set_warm(&self, meeting: MeetingId, warm: bool) -> Result<(), ShellError> {
        self.send(Command::Warm { meeting, warm }).await
    }

    /// The other workers of this node, which it relays to in-process.
    pub(crate) async fn set_siblings(&self, siblings: &[SfuHandle]) -> Result<(), ShellError> {
        let siblings = siblings
            .iter()
            .filter(|s| s.name != self.name)
            .map(|s| (s.name.clone(), s.relay_in.clone()))
            .collect();
        self.send(Command::Siblings { siblings }).await
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    async fn send(&self, cmd: Command) -> Result<(), ShellError> {
        self.commands
            .send(cmd)
            .await
            .map_err(|_| ShellError::Stopped)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ShellError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        Ok(rx.await.map_err(|_| ShellError::Stopped)??)
    }

    pub async fn open_room(
        &self,
        meeting: MeetingId,
        events: mpsc::Sender<RoomEvent>,
    ) -> Result<(), ShellError> {
        self.send(Command::OpenRoom { meeting, events }).await
    }

    pub async fn close_room(&self, meeting: MeetingId) -> Result<(), ShellError> {
        self.send(Command::CloseRoom { meeting }).await
    }

    pub async fn add_peer(
        &self,
        new: NewPeer,
        offer: String,
        tracks: Vec<TrackMid>,
    ) -> Result<String, ShellError> {
        self.ask(|reply| Command::AddPeer {
            new,
            offer,
            tracks,
            reply,
        })
        .await
    }

    pub async fn offer(
        &self,
        id: PeerId,
        sdp: String,
        tracks: Vec<TrackMid>,
    ) -> Result<String, ShellError> {
        self.ask(|reply| Command::Offer {
            id,
            sdp,
            tracks,
            reply,
        })
        .await
    }

    pub async fn answer(&self, id: PeerId, sdp: String) -> Result<(), ShellError> {
        self.ask(|reply| Command::Answer { id, sdp, reply }).await
    }

    pub async fn bind_track(
        &self,
        id: PeerId,
        mid: String,
        track: TrackId,
    ) -> Result<(), ShellError> {
        self.send(Command::BindTrack { id, mid, track }).await
    }

    pub async fn unbind_track(&self, meeting: MeetingId, track: TrackId) -> Result<(), ShellError> {
        self.send(Command::UnbindTrack { meeting, track }).await
    }

    pub async fn set_plan(
        &self,
        meeting: MeetingId,
        plan: ForwardingPlan,
    ) -> Result<(), ShellError> {
        self.send(Command::Plan { meeting, plan }).await
    }

    pub async fn set_view(
        &self,
        id: PeerId,
        max_height: u32,
        pinned: Vec<ParticipantId>,
    ) -> Result<(), ShellError> {
        self.send(Command::View {
            id,
            max_height,
            pinned,
        })
        .await
    }

    pub async fn remove_peer(&self, id: PeerId) -> Result<(), ShellError> {
        self.send(Command::RemovePeer { id }).await
    }

    /// The peer's client is on a new signalling connection: an unanswered server offer and
    /// the mapping of its slots go again.
    pub async fn resync(&self, id: PeerId) -> Result<(), ShellError> {
        self.send(Command::Resync { id }).await
    }
}

struct Routes {
    rooms: HashMap<MeetingId, mpsc::Sender<RoomEvent>>,
}

impl Routes {
    fn route(&mut self, event: SfuEvent) {
        let (meeting, event) = match event {
            SfuEvent::TrackAdded {
                peer,
                meeting,
                participant,
                mid,
                source,
            } => (
                meeting,
                RoomEvent::TrackAdded {
                    peer,
                    participant,
                    mid,
                    source,
                },
            ),
            SfuEvent::AudioLevels { meeting, levels } => {
                if let Some(tx) = self.rooms.get(&meeting) {
                    // Levels are periodic: dropping one report under load is harmless.
                    let _ = tx.try_send(RoomEvent::AudioLevels(levels));
                }
                return;
            }
            SfuEvent::Offer {
                peer,
                meeting,
                sdp,
                tracks,
            } => (meeting, RoomEvent::Offer { peer, sdp, tracks }),
            SfuEvent::Slots {
                peer,
                meeting,
                slots,
            } => (meeting, RoomEvent::Slots { peer, slots }),
            SfuEvent::PeerClosed {
                peer,
                meeting,
                reason,
            } => (meeting, RoomEvent::PeerClosed { peer, reason }),
        };
        if let Some(tx) = self.rooms.get(&meeting) {
            match tx.try_send(event) {
                Ok(()) => {}
                // Whoever listened for this meeting is gone: forget it.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.rooms.remove(&meeting);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%meeting, "meeting queue full: media event lost");
                }
            }
        }
    }
}

/// How many datagrams are read in one wake before outputs are flushed and commands served.
const RECV_BUDGET: usize = 64;

/// One worker's task and everything it owns.
struct Worker {
    name: String,
    socket: UdpSocket,
    /// The address clients are told (the core's UDP candidate).
    public: SocketAddr,
    /// The ICE-TCP listener and its candidate's address.
    ice_tcp: Option<(IceTcp, SocketAddr)>,
    relay: Option<RelayLink>,
    siblings: HashMap<String, mpsc::Sender<Relayed>>,
    sfu: Sfu,
    commands: mpsc::Receiver<Command>,
    relay_in: mpsc::Receiver<Relayed>,
    counters: Arc<Counters>,
    routes: Routes,
}

impl Worker {
    async fn bind(config: WorkerConfig) -> std::io::Result<(Self, SfuHandle)> {
        let socket = UdpSocket::bind(config.bind).await?;
        let local_addr = socket.local_addr()?;
        let public = SocketAddr::new(
            config.public_ip.unwrap_or(local_addr.ip()),
            local_addr.port(),
        );
        let relay = match &config.relay {
            Some(relay) => Some(RelayLink::bind(relay).await?),
            None => None,
        };
        let ice_tcp = match config.ice_tcp {
            true => {
                let tcp = IceTcp::bind(local_addr).await?;
                let public = SocketAddr::new(public.ip(), tcp.local_addr().port());
                Some((tcp, public))
            }
            false => None,
        };
        let mut sfu_config = SfuConfig::new(public);
        sfu_config.tcp_addr = ice_tcp.as_ref().map(|(_, public)| *public);
        let relay_addr = relay.as_ref().map(RelayLink::local_addr).transpose()?;
        let (commands_tx, commands) = mpsc::channel(1024);
        let (relay_in_tx, relay_in) = mpsc::channel(SIBLING_QUEUE);
        let counters = Arc::new(Counters::default());
        let tcp_addr = ice_tcp.as_ref().map(|(tcp, _)| tcp.local_addr());
        tracing::info!(worker = %config.name, %local_addr, %public, relay = ?relay_addr, ice_tcp = ?tcp_addr, "media worker bound");
        let handle = SfuHandle {
            name: config.name.clone(),
            commands: commands_tx,
            relay_in: relay_in_tx,
            local_addr,
            relay_addr,
            tcp_addr,
            counters: Arc::clone(&counters),
        };
        let worker = Self {
            name: config.name,
            socket,
            public,
            ice_tcp,
            relay,
            siblings: HashMap::new(),
            sfu: Sfu::new(sfu_config, Instant::now()),
            commands,
            relay_in,
            counters,
            routes: Routes {
                rooms: HashMap::new(),
            },
        };
        Ok((worker, handle))
    }

    async fn run(mut self) {
        // Packets arrive at the address clients were told, as the core knows it (the socket
        // may be bound to every address behind it).
        let local = self.public;
        let mut buf = vec![0u8; 2048];
        let mut relay_buf = vec![0u8; 2048];
        loop {
            self.flush().await;
            let deadline = self
                .sfu
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                res = self.socket.recv_from(&mut buf) => {
                    match res {
                        Ok((n, source)) => {
                            let mut received = (1u64, n as u64);
                            self.sfu.handle_receive(Instant::now(), source, local, &buf[..n]);
                            for _ in 1..RECV_BUDGET {
                                match self.socket.try_recv_from(&mut buf) {
                                    Ok((n, source)) => {
                                        received = (received.0 + 1, received.1 + n as u64);
                                        self.sfu.handle_receive(Instant::now(), source, local, &buf[..n]);
                                    }
                                    Err(_) => break,
                                }
                            }
                            self.counters.packets_received.fetch_add(received.0, Ordering::Relaxed);
                            self.counters.bytes_received.fetch_add(received.1, Ordering::Relaxed);
                        }
                        // ICMP port unreachable from a client that went away shows up here.
                        Err(e) => tracing::debug!("recv failed: {e}"),
                    }
                }
                (from, to, packet) = ice_tcp_frame(self.ice_tcp.as_mut()) => {
                    self.counters.tcp_packets_received.fetch_add(1, Ordering::Relaxed);
                    self.counters.packets_received.fetch_add(1, Ordering::Relaxed);
                    self.counters.bytes_received.fetch_add(packet.len() as u64, Ordering::Relaxed);
                    self.sfu.handle_receive_tcp(Instant::now(), from, to, &packet);
                }
                (from, msg) = relayed(self.relay.as_mut(), &mut relay_buf, &self.counters) => {
                    self.sfu.handle_relay(Instant::now(), &from, msg);
                }
                Some((from, msg)) = self.relay_in.recv() => {
                    self.sfu.handle_relay(Instant::now(), &from, msg);
                    for _ in 1..RECV_BUDGET {
                        match self.relay_in.try_recv() {
                            Ok((from, msg)) => self.sfu.handle_relay(Instant::now(), &from, msg),
                            Err(_) => break,
                        }
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    match cmd {
                        Command::RelayPeers { peers } => {
                            if let Some(link) = self.relay.as_mut() {
                                link.set_peers(peers);
                            }
                        }
                        Command::Siblings { siblings } => self.siblings = siblings,
                        cmd => apply(&mut self.sfu, &mut self.routes, cmd),
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.sfu.handle_timeout(Instant::now());
                }
            }
        }
        tracing::info!(worker = %self.name, "media worker stopped");
    }

    /// Sends what the core produced: datagrams to clients, events to their meetings, relay
    /// messages to siblings in-process and to other nodes' workers over the relay socket.
    async fn flush(&mut self) {
        let counters = &self.counters;
        while let Some(out) = self.sfu.poll_output() {
            match out {
                Output::Transmit(t) if t.proto == Protocol::Tcp => {
                    let sent = self
                        .ice_tcp
                        .as_ref()
                        .is_some_and(|(tcp, _)| tcp.send(t.destination, &t.contents));
                    if sent {
                        counters.tcp_packets_sent.fetch_add(1, Ordering::Relaxed);
                        counters.packets_sent.fetch_add(1, Ordering::Relaxed);
                        counters
                            .bytes_sent
                            .fetch_add(t.contents.len() as u64, Ordering::Relaxed);
                    } else {
                        counters.tcp_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Output::Transmit(t) => {
                    match self.socket.send_to(&t.contents, t.destination).await {
                        Ok(n) => {
                            counters.packets_sent.fetch_add(1, Ordering::Relaxed);
                            counters.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e) => tracing::debug!(dest = %t.destination, "send failed: {e}"),
                    }
                }
                Output::Event(ev) => self.routes.route(ev),
                Output::Relay { to, msg } => {
                    if let Some(sibling) = self.siblings.get(&to) {
                        let sent = sibling.try_send((self.name.clone(), msg)).is_ok();
                        let counter = if sent {
                            &counters.relay_sibling_sent
                        } else {
                            &counters.relay_dropped
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(link) = self.relay.as_mut() {
                        link.send(&to, &msg, counters);
                    } else {
                        counters.relay_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The next ICE-TCP frame (from, to: the candidate's address, packet), or never without
/// ICE-TCP.
async fn ice_tcp_frame(
    ice_tcp: Option<&mut (IceTcp, SocketAddr)>,
) -> (SocketAddr, SocketAddr, Vec<u8>) {
    match ice_tcp {
        Some((tcp, public)) => {
            let (from, packet) = tcp.next().await;
            (from, *public, packet)
        }
        None => std::future::pending().await,
    }
}

/// The next relay datagram that opens, or never without a relay.
async fn relayed(
    relay: Option<&mut RelayLink>,
    buf: &mut [u8],
    counters: &Counters,
) -> (String, RelayMsg) {
    match relay {
        Some(link) => link.recv(buf, counters).await,
        None => std::future::pending().await,
    }
}

fn apply(sfu: &mut Sfu, routes: &mut Routes, cmd: Command) {
    let now = Instant::now();
    match cmd {
        Command::OpenRoom { meeting, events } => {
            routes.rooms.insert(meeting, events);
        }
        Command::CloseRoom { meeting } => {
            routes.rooms.remove(&meeting);
            sfu.close_room(now, &meeting);
        }
        Command::AddPeer {
            new,
            offer,
            tracks,
            reply,
        } => {
            let _ = reply.send(sfu.add_peer(now, new, &offer, &tracks));
            sfu.handle_timeout(now);
        }
        Command::Offer {
            id,
            sdp,
            tracks,
            reply,
        } => {
            let _ = reply.send(sfu.handle_offer(now, id, &sdp, &tracks));
        }
        Command::Answer { id, sdp, reply } => {
            let _ = reply.send(sfu.handle_answer(now, id, &sdp));
        }
        Command::BindTrack { id, mid, track } => sfu.bind_track(now, id, &mid, track),
        Command::UnbindTrack { meeting, track } => sfu.unbind_track(now, &meeting, track),
        Command::Plan { meeting, plan } => sfu.set_plan(now, &meeting, plan),
        Command::View {
            id,
            max_height,
            pinned,
        } => sfu.set_view(now, id, max_height, pinned),
        Command::RemovePeer { id } => sfu.remove_peer(now, id),
        Command::Resync { id } => sfu.resync(id),
        Command::AddRemoteTrack {
            meeting,
            track,
            upstream,
        } => sfu.add_remote_track(now, &meeting, &track, &upstream),
        Command::Warm { meeting, warm } => sfu.set_warm(now, &meeting, warm),
        // Handled by the worker, which owns the relay link and the sibling list.
        Command::RelayPeers { .. } | Command::Siblings { .. } => {}
    }
}
