//! The sans-IO SFU of one media worker: many `str0m` peers behind one UDP socket, grouped by
//! meeting (this worker's partition of each), forwarding what each meeting's plan and each
//! subscriber's view select — from local publishers, and from tracks published in other
//! partitions, pulled over relay links ([`crate::relay`]): a partition pulls each layer of a
//! remote track that its subscribers need once, from its upstream (the publisher's partition,
//! or a partition between them in the relay tree), fans it out here, and relays it on to the
//! partitions that pull it from here. Upstream announces each pulled track's layers (rid,
//! height, bitrate), so that a partition chooses layers it does not receive yet; a switch to
//! another layer pulls it, then asks for its key frame.
//!
//! Contract (as in `str0m`): after any input (`add_peer`, `handle_*`, commands), drain
//! [`Sfu::poll_output`] until `None`, then wait for a datagram, a command or
//! [`Sfu::poll_timeout`], whichever comes first. The core never reads the clock.

mod demux;
mod forward;
mod layers;
mod peer;
mod slots;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use myriad_proto::{
    ForwardingPlan, MeetingId, ParticipantId, TrackId, TrackInfo, TrackMid, TrackSource,
};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor, Vp8Patch};
use str0m::{
    Candidate, Event, IceConnectionState, IceCreds, Input, Output as RtcOutput, RtcConfig,
};

pub use demux::{stun_local_ufrag, Demux};
pub use forward::{Decision, Forwarder, Incoming, Layer, Rewrite};
pub use layers::{choose_layers, vp8_keyframe_size, LayerDemand, LayerInfo};
use peer::{InTrack, LayerStat, OutSlot, OutState, Peer, View};

use crate::relay::{RelayCodec, RelayLayer, RelayMedia, RelayMsg, MAX_LAYERS};

/// A peer connection handled by this SFU; allocated by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// Who a new peer is.
#[derive(Debug, Clone)]
pub struct NewPeer {
    pub id: PeerId,
    pub meeting: MeetingId,
    pub participant: ParticipantId,
    /// Whether the participant may receive the meeting's media (the `subscribe` grant).
    pub subscribe: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    #[error("invalid SDP: {0}")]
    Sdp(String),
    #[error("no such peer")]
    UnknownPeer,
    #[error("peer exists already")]
    PeerExists,
    #[error("no server offer is waiting for an answer")]
    NoOfferPending,
    #[error("this SFU is full ({0} peers)")]
    Full(usize),
}

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The address clients send media to (the UDP socket's public address).
    pub public_addr: SocketAddr,
    /// The public address of a passive ICE-TCP candidate, for clients that cannot use UDP.
    pub tcp_addr: Option<SocketAddr>,
    pub max_peers: usize,
    pub initial_bitrate_bps: u64,
    /// What downlink BWE probes towards.
    pub desired_bitrate_bps: u64,
    /// One upstream key frame request per (track, layer) per interval at most.
    pub keyframe_request_interval: Duration,
    pub level_report_interval: Duration,
    /// Participants whose levels a report carries at most (the loudest).
    pub speaker_candidates: usize,
    pub layer_interval: Duration,
    /// A layer not seen for this long counts as stopped by its publisher.
    pub layer_idle: Duration,
    /// RTP packets kept per outgoing video stream for retransmission.
    pub send_buffer_video_packets: usize,
    /// Receiving slots per subscriber: audio (the meeting's active speakers) and video (its
    /// pinned cameras, screen shares and last-N cameras).
    pub audio_slots: usize,
    pub video_slots: usize,
}

impl SfuConfig {
    pub fn new(public_addr: SocketAddr) -> Self {
        Self {
            public_addr,
            tcp_addr: None,
            max_peers: 2000,
            initial_bitrate_bps: 1_000_000,
            desired_bitrate_bps: 3_000_000,
            keyframe_request_interval: Duration::from_millis(300),
            level_report_interval: Duration::from_millis(50),
            speaker_candidates: 8,
            layer_interval: Duration::from_millis(500),
            layer_idle: Duration::from_millis(1500),
            send_buffer_video_packets: 300,
            audio_slots: 3,
            video_slots: 9,
        }
    }
}

#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Event(SfuEvent),
    /// A relay message for another partition (by name, `node/worker`).
    Relay {
        to: String,
        msg: RelayMsg,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SfuEvent {
    /// The peer's offer added a track it sends; the meeting decides whether to accept it.
    TrackAdded {
        peer: PeerId,
        meeting: MeetingId,
        participant: ParticipantId,
        mid: String,
        source: TrackSource,
    },
    /// A server offer to send to the client: its receiving slots (once, when it connects).
    Offer {
        peer: PeerId,
        meeting: MeetingId,
        sdp: String,
        tracks: Vec<TrackMid>,
    },
    /// The tracks the peer's slots carry changed: which each carries now (an offered mid,
    /// and its track or none).
    Slots {
        peer: PeerId,
        meeting: MeetingId,
        slots: Vec<TrackMid>,
    },
    /// Loudest audio level per participant over the last report interval, in dBov, of the
    /// loudest few ([`SfuConfig::speaker_candidates`]).
    AudioLevels {
        meeting: MeetingId,
        levels: Vec<(ParticipantId, f32)>,
    },
    /// The peer's media connection is gone (ICE consent lost or DTLS closed).
    PeerClosed {
        peer: PeerId,
        meeting: MeetingId,
        reason: String,
    },
}

/// Where a published track's media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A peer of this SFU, on one of its mids.
    Local { peer: PeerId, mid: Mid },
    /// Another partition, which relays it when pulled: the publisher's, or one between.
    Remote { upstream: String },
}

/// A track published in a meeting, here or on another node.
#[derive(Debug, Clone)]
struct Published {
    origin: Origin,
    participant: ParticipantId,
    source: TrackSource,
    kind: MediaKind,
}

impl Published {
    fn published_by(&self, peer: PeerId) -> bool {
        matches!(self.origin, Origin::Local { peer: p, .. } if p == peer)
    }
}

/// What this SFU knows of a remote track's layers, as upstream announced them, and which of
/// them it pulls.
#[derive(Debug, Default)]
struct RemoteIn {
    layers: Vec<LayerStat>,
    /// The layers last pulled (none: not pulled at all; empty: only the announcements).
    pulled: Option<Vec<Layer>>,
}

/// A partition that pulls a track from here: which layers, and until when (the pull is
/// repeated while wanted).
#[derive(Debug)]
struct Puller {
    layers: Vec<Layer>,
    until: Instant,
}

#[derive(Debug, Default)]
struct Room {
    peers: Vec<PeerId>,
    plan: ForwardingPlan,
    tracks: HashMap<TrackId, Published>,
    remote: HashMap<TrackId, RemoteIn>,
    /// Tracks other partitions pull from here, by partition.
    pulls: HashMap<TrackId, HashMap<String, Puller>>,
    /// Opened ahead of its first subscribers: the plan's tracks are pulled already.
    warm: bool,
}

/// How long a pull of a track lasts; the puller repeats it every [`PULL_EVERY`].
const PULL_FOR: Duration = Duration::from_secs(3);
const PULL_EVERY: Duration = Duration::from_secs(1);

/// Audio needs no layer choice, but leaves less room for video.
const AUDIO_ALLOWANCE_BPS: u64 = 64_000;

pub struct Sfu {
    config: SfuConfig,
    peers: HashMap<PeerId, Peer>,
    rooms: HashMap<MeetingId, Room>,
    demux: Demux,
    outputs: VecDeque<Output>,
    /// Peers whose `Rtc` got input and must be polled (each once: see [`mark_dirty`]).
    dirty: Vec<PeerId>,
    /// The time of the latest input.
    now: Instant,
    next_level_report: Option<Instant>,
    next_layer_pass: Option<Instant>,
    next_pull_pass: Option<Instant>,
}

impl Sfu {
    pub fn new(config: SfuConfig, now: Instant) -> Self {
        Self {
            config,
            peers: HashMap::new(),
            rooms: HashMap::new(),
            demux: Demux::default(),
            outputs: VecDeque::new(),
            dirty: Vec::new(),
            now,
            next_level_report: None,
            next_layer_pass: None,
            next_pull_pass: None,
        }
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// A participant connects with its first offer; returns the answer.
    pub fn add_peer(
        &mut self,
        now: Instant,
        new: NewPeer,
        offer: &str,
        tracks: &[TrackMid],
    ) -> Result<String, SfuError> {
        let NewPeer {
            id,
            meeting,
            participant,
            subscribe,
        } = new;
        if self.peers.contains_key(&id) {
            return Err(SfuError::PeerExists);
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(SfuError::Full(self.config.max_peers));
        }
        let offer = parse_offer(offer)?;
        let creds = IceCreds::new();
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            // Packets are forwarded as they come, rewritten per subscriber, never reassembled.
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_bwe(Some(Bitrate::bps(self.config.initial_bitrate_bps)))
            // Enough history to answer NACKs and feed BWE probes for a few seconds of the
            // largest layer; str0m's default (1,000) cost ~1 MB per subscriber.
            .set_send_buffer_video(self.config.send_buffer_video_packets)
            .build(now);
        let candidate = Candidate::host(self.config.public_addr, "udp")
            .map_err(|e| SfuError::Sdp(format!("bad public address: {e}")))?;
        rtc.add_local_candidate(candidate);
        if let Some(tcp) = self.config.tcp_addr {
            let candidate = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| SfuError::Sdp(format!("bad ICE-TCP address: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        rtc.bwe().set_bitrate(
            Bitrate::bps(0),
            Bitrate::bps(self.config.desired_bitrate_bps),
        );
        let mut peer = Peer::new(
            meeting.clone(),
            participant,
            rtc,
            creds.ufrag.clone(),
            now,
            self.config.initial_bitrate_bps,
        );
        peer.subscribe = subscribe;
        peer.declare(tracks);
        let answer = peer.accept_offer(offer)?;

        // Its receiving slots, offered once: publishes and unpublishes change no SDP.
        if subscribe {
            let audio = (0..self.config.audio_slots).map(|_| OutSlot::new(MediaKind::Audio));
            let video = (0..self.config.video_slots).map(|_| OutSlot::new(MediaKind::Video));
            peer.outs.extend(audio.chain(video));
        }
        self.rooms.entry(meeting).or_default().peers.push(id);
        self.demux.add_peer(&creds.ufrag, id);
        mark_dirty(&mut self.dirty, id, &mut peer);
        self.peers.insert(id, peer);
        self.schedule_ticks(now);
        // Its slots point at the plan's tracks at once (its offer then carries the mapping),
        // and remote tracks newly needed are pulled now, not at the next pass.
        self.layer_pass(now);
        Ok(answer.to_sdp_string())
    }

    /// A later offer from the client (it publishes more or less).
    pub fn handle_offer(
        &mut self,
        now: Instant,
        id: PeerId,
        offer: &str,
        tracks: &[TrackMid],
    ) -> Result<String, SfuError> {
        let offer = parse_offer(offer)?;
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        peer.declare(tracks);
        let answer = peer.accept_offer(offer)?;
        mark_dirty(&mut self.dirty, id, peer);
        self.drain(now);
        Ok(answer.to_sdp_string())
    }

    pub fn handle_answer(
        &mut self,
        now: Instant,
        id: PeerId,
        answer: &str,
    ) -> Result<(), SfuError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| SfuError::Sdp(e.to_string()))?;
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        peer.accept_answer(answer)?;
        mark_dirty(&mut self.dirty, id, peer);
        self.layer_pass(now);
        self.drain(now);
        Ok(())
    }

    /// The meeting accepted a published track under this id: offer it to everyone else.
    pub fn bind_track(&mut self, now: Instant, id: PeerId, mid: &str, track: TrackId) {
        let mid = Mid::from(mid);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(input) = peer.ins.get_mut(&mid) else {
            return;
        };
        input.track = Some(track);
        let published = Published {
            origin: Origin::Local { peer: id, mid },
            participant: peer.participant,
            source: input.source,
            kind: input.kind,
        };
        let Some(room) = self.rooms.get_mut(&peer.meeting) else {
            return;
        };
        room.tracks.insert(track, published);
        // A camera someone pinned goes to their slot now.
        self.layer_pass(now);
        self.drain(now);
    }

    /// A track published in another partition: for the subscribers here, its media
    /// pulled from `upstream` while they (or partitions pulling from here) need it. Told
    /// again with another upstream (the relay tree changed), it pulls from there instead.
    pub fn add_remote_track(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        info: &TrackInfo,
        upstream: &str,
    ) {
        let kind = if info.source.is_audio() {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        let room = self.rooms.entry(meeting.clone()).or_default();
        if let Some(known) = room.tracks.get_mut(&info.id) {
            if let Origin::Remote { upstream: old } = &mut known.origin {
                if old != upstream {
                    *old = upstream.to_owned();
                    self.pull_pass(now, true);
                    self.drain(now);
                }
            }
            return;
        }
        room.tracks.insert(
            info.id,
            Published {
                origin: Origin::Remote {
                    upstream: upstream.to_owned(),
                },
                participant: info.participant,
                source: info.source,
                kind,
            },
        );
        room.remote.insert(info.id, RemoteIn::default());
        self.schedule_ticks(now);
        self.layer_pass(now);
        self.drain(now);
    }

    /// A track left the meeting: the slots carrying it are emptied (and refilled).
    pub fn unbind_track(&mut self, now: Instant, meeting: &MeetingId, track: TrackId) {
        let Some(room) = self.rooms.get_mut(meeting) else {
            return;
        };
        let Some(published) = room.tracks.remove(&track) else {
            return;
        };
        room.remote.remove(&track);
        room.pulls.remove(&track);
        if let Origin::Local { peer, mid } = published.origin {
            if let Some(input) = self.peers.get_mut(&peer).and_then(|p| p.ins.get_mut(&mid)) {
                input.track = None;
            }
        }
        self.layer_pass(now);
        self.drain(now);
    }

    pub fn set_plan(&mut self, now: Instant, meeting: &MeetingId, plan: ForwardingPlan) {
        let room = self.rooms.entry(meeting.clone()).or_default();
        room.plan = plan;
        self.layer_pass(now);
        self.drain(now);
    }

    /// Whether this partition of the meeting is open ahead of its first subscribers (it then
    /// pulls the plan's tracks already).
    pub fn set_warm(&mut self, now: Instant, meeting: &MeetingId, warm: bool) {
        let room = self.rooms.entry(meeting.clone()).or_default();
        if room.warm != warm {
            room.warm = warm;
            self.schedule_ticks(now);
            self.pull_pass(now, false);
            self.drain(now);
        }
    }

    pub fn set_view(
        &mut self,
        now: Instant,
        id: PeerId,
        max_height: u32,
        pinned: Vec<ParticipantId>,
    ) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.view = View {
                max_height: max_height.clamp(90, 2160),
                pinned: pinned.into_iter().take(16).collect(),
            };
            self.layer_pass(now);
            self.drain(now);
        }
    }

    /// The peer's signalling moved to another connection: a server offer it may not have got
    /// (or whose answer was lost) goes again — a client that had it answers it again — and
    /// so does the mapping of its slots.
    pub fn resync(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get(&id) {
            if let Some((sdp, tracks)) = peer.pending_offer() {
                self.outputs.push_back(Output::Event(SfuEvent::Offer {
                    peer: id,
                    meeting: peer.meeting.clone(),
                    sdp,
                    tracks,
                }));
            }
            let slots = peer.slot_map();
            if !slots.is_empty() {
                self.outputs.push_back(Output::Event(SfuEvent::Slots {
                    peer: id,
                    meeting: peer.meeting.clone(),
                    slots,
                }));
            }
        }
    }

    pub fn remove_peer(&mut self, now: Instant, id: PeerId) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        peer.rtc.disconnect();
        self.demux.remove_peer(&peer.ufrag, &peer.addrs);
        let meeting = peer.meeting.clone();
        let own: Vec<TrackId> = peer.ins.values().filter_map(|t| t.track).collect();
        if let Some(room) = self.rooms.get_mut(&meeting) {
            room.peers.retain(|p| *p != id);
        }
        for track in own {
            self.unbind_track(now, &meeting, track);
        }
        self.dirty.retain(|p| *p != id);
    }

    /// Forgets a meeting this node no longer carries (its peers gone first).
    pub fn close_room(&mut self, now: Instant, meeting: &MeetingId) {
        let peers: Vec<PeerId> = self
            .rooms
            .get(meeting)
            .map(|r| r.peers.clone())
            .unwrap_or_default();
        for peer in peers {
            self.remove_peer(now, peer);
        }
        self.rooms.remove(meeting);
    }

    /// One datagram from the socket (`destination`: the address clients are told).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        self.receive(now, Protocol::Udp, source, destination, buf);
    }

    /// One frame from an ICE-TCP connection (`destination`: the TCP candidate's address).
    pub fn handle_receive_tcp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        self.receive(now, Protocol::Tcp, source, destination, buf);
    }

    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        let Some((id, via_stun)) = self.demux.route(source, buf) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Ok(receive) = Receive::new(proto, source, destination, buf) else {
            return;
        };
        let input = Input::Receive(now, receive);
        if !peer.rtc.accepts(&input) {
            return;
        }
        if via_stun && !peer.addrs.contains(&source) && peer.addrs.len() < 8 {
            peer.addrs.push(source);
            self.demux.learn_addr(source, id);
        }
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!(peer = id.0, "input rejected: {e}");
        }
        mark_dirty(&mut self.dirty, id, peer);
        // Only the receiving peer now (str0m holds one received packet at a time); the
        // peers it forwarded to are polled once per batch of datagrams, in `poll_output`.
        self.drain_peer(now, id);
        self.now = now;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, peer) in self.peers.iter_mut() {
            if peer.timeout <= now {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = id.0, "timeout input failed: {e}");
                }
                mark_dirty(&mut self.dirty, *id, peer);
            }
        }
        if self.next_level_report.is_some_and(|t| t <= now) {
            self.report_levels();
            self.next_level_report = Some(now + self.config.level_report_interval);
        }
        if self.next_layer_pass.is_some_and(|t| t <= now) {
            self.update_layer_stats(now);
            self.announce_layers(now);
            self.layer_pass(now);
            self.next_layer_pass = Some(now + self.config.layer_interval);
        }
        if self.next_pull_pass.is_some_and(|t| t <= now) {
            self.pull_pass(now, true);
            self.next_pull_pass = Some(now + PULL_EVERY);
        }
        if self.peers.is_empty() {
            self.next_level_report = None;
            self.next_layer_pass = None;
            // A partition with nobody in it may still pull for partitions downstream, or
            // for the people to come.
            let relaying = self.rooms.values().any(|r| {
                r.warm
                    || r.pulls
                        .values()
                        .any(|pullers| pullers.values().any(|p| p.until > now))
            });
            if !relaying {
                self.next_pull_pass = None;
            }
        }
        self.drain(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.peers.values().map(|p| p.timeout).min();
        [
            peers,
            self.next_level_report,
            self.next_layer_pass,
            self.next_pull_pass,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next output; polls the peers that got input since the last call first.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.outputs.is_empty() {
            self.drain(self.now);
        }
        self.outputs.pop_front()
    }

    fn schedule_ticks(&mut self, now: Instant) {
        self.next_level_report
            .get_or_insert(now + self.config.level_report_interval);
        self.next_layer_pass
            .get_or_insert(now + self.config.layer_interval);
        self.next_pull_pass.get_or_insert(now + PULL_EVERY);
    }

    /// Polls every dirty peer to its timeout, handling the events that come out.
    fn drain(&mut self, now: Instant) {
        self.now = now;
        while let Some(id) = self.dirty.pop() {
            self.drain_peer(now, id);
        }
    }

    fn drain_peer(&mut self, now: Instant, id: PeerId) {
        let mut closed = None;
        let mut media = Vec::new();
        let mut keyframe_wanted = Vec::new();
        {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            peer.dirty = false;
            if let Some((sdp, tracks)) = peer.negotiate() {
                self.outputs.push_back(Output::Event(SfuEvent::Offer {
                    peer: id,
                    meeting: peer.meeting.clone(),
                    sdp,
                    tracks,
                }));
            }
            // Written packets wait for a timeout input to be released: give it now
            // rather than after a round through the shell's timer.
            let mut timed_out = false;
            loop {
                if !peer.rtc.is_alive() {
                    closed.get_or_insert_with(|| "connection closed".to_owned());
                    break;
                }
                let out = match peer.rtc.poll_output() {
                    Ok(o) => o,
                    Err(e) => {
                        closed = Some(format!("media error: {e}"));
                        break;
                    }
                };
                match out {
                    RtcOutput::Timeout(t) if t <= now && !timed_out => {
                        timed_out = true;
                        if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                            closed = Some(format!("media error: {e}"));
                            break;
                        }
                    }
                    RtcOutput::Timeout(t) => {
                        peer.timeout = t;
                        break;
                    }
                    RtcOutput::Transmit(t) => self.outputs.push_back(Output::Transmit(t)),
                    RtcOutput::Event(ev) => match ev {
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            closed = Some("ICE disconnected".to_owned());
                        }
                        Event::Closed => closed = Some("DTLS closed".to_owned()),
                        Event::MediaAdded(added) if added.direction == Direction::RecvOnly => {
                            let source = peer.declared.get(&*added.mid).copied().unwrap_or(
                                match added.kind {
                                    MediaKind::Audio => TrackSource::Microphone,
                                    MediaKind::Video => TrackSource::Camera,
                                },
                            );
                            peer.ins.insert(
                                added.mid,
                                InTrack {
                                    kind: added.kind,
                                    source,
                                    track: None,
                                    layers: Vec::new(),
                                    stats_since: now,
                                },
                            );
                            self.outputs.push_back(Output::Event(SfuEvent::TrackAdded {
                                peer: id,
                                meeting: peer.meeting.clone(),
                                participant: peer.participant,
                                mid: added.mid.to_string(),
                                source,
                            }));
                        }
                        Event::RtpPacket(packet) => media.push(packet),
                        Event::KeyframeRequest(req) => {
                            if let Some(out) = peer
                                .outs
                                .iter()
                                .find(|o| matches!(o.state, OutState::Open(m) if m == req.mid))
                            {
                                if let (Some(track), Some(layer)) = (out.track, out.fwd.current()) {
                                    keyframe_wanted.push((track, layer));
                                }
                            }
                        }
                        Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                            peer.bwe_bps = estimate.as_u64();
                        }
                        _ => {}
                    },
                }
            }
        }
        if let Some(reason) = closed {
            if let Some(meeting) = self.peers.get(&id).map(|p| p.meeting.clone()) {
                self.outputs.push_back(Output::Event(SfuEvent::PeerClosed {
                    peer: id,
                    meeting,
                    reason,
                }));
            }
            self.remove_peer(now, id);
            return;
        }
        // Drained for every datagram and batch: no meeting-id clone unless needed.
        if !keyframe_wanted.is_empty() {
            if let Some(meeting) = self.peers.get(&id).map(|p| p.meeting.clone()) {
                for (track, layer) in keyframe_wanted {
                    self.request_keyframe(now, &meeting, track, layer);
                }
            }
        }
        for packet in media {
            self.forward(now, id, packet);
        }
    }

    /// One RTP packet from a local publisher: its layer's statistics, then to the
    /// subscribers here that should get it and to the nodes that pull it.
    fn forward(&mut self, now: Instant, from: PeerId, packet: RtpPacket) {
        let Some(publisher) = self.peers.get_mut(&from) else {
            return;
        };
        let Some((mid, layer)) = publisher
            .rtc
            .direct_api()
            .stream_rx(&packet.header.ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(params) = publisher
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == packet.header.payload_type)
            .copied()
        else {
            return;
        };
        let codec = match params.spec().codec {
            Codec::Opus => RelayCodec::Opus,
            Codec::Vp8 => RelayCodec::Vp8,
            _ => return,
        };
        let Some(input) = publisher.ins.get_mut(&mid) else {
            return;
        };
        let Some(track) = input.track else {
            return;
        };
        let Some(media) = MediaIn::parse(
            codec,
            layer,
            *packet.seq_no,
            packet.time.numer(),
            packet.header.marker,
            &packet.header.ext_vals,
            packet.payload,
            packet.timestamp,
            Some(params),
        ) else {
            return;
        };
        let Some(new_layer) = note_layer(&mut input.layers, &media, now) else {
            return;
        };
        if let Some(level) = media.ext_vals.audio_level {
            publisher.level_dbov = Some(publisher.level_dbov.map_or(level, |l| l.max(level)));
        }
        let meeting = publisher.meeting.clone();
        if new_layer {
            // Subscribers waiting for this track, here and pulling it, can get it now rather
            // than at the next pass.
            self.announce(&meeting, track, None);
            self.layer_pass(now);
        }
        self.fan_out(now, &meeting, track, Some(from), &media);
        self.relay_out(now, &meeting, track, &media);
    }

    /// A relay message from another partition.
    pub fn handle_relay(&mut self, now: Instant, from: &str, msg: RelayMsg) {
        self.now = now;
        match msg {
            RelayMsg::Pull {
                meeting,
                track,
                layers,
            } => {
                let Some(room) = self.rooms.get_mut(&meeting) else {
                    return;
                };
                let Some(published) = room.tracks.get(&track) else {
                    return;
                };
                let between = matches!(published.origin, Origin::Remote { .. });
                let layers: Vec<Layer> =
                    layers.iter().map(|l| l.as_deref().map(Rid::from)).collect();
                let pullers = room.pulls.entry(track).or_default();
                pullers.retain(|_, p| p.until > now);
                let until = now + PULL_FOR;
                let new = match pullers.get_mut(from) {
                    Some(p) => {
                        *p = Puller { layers, until };
                        false
                    }
                    None => {
                        pullers.insert(from.to_owned(), Puller { layers, until });
                        true
                    }
                };
                self.next_pull_pass.get_or_insert(now + PULL_EVERY);
                if new {
                    // What it may choose from, at once rather than at the next announcement.
                    self.announce(&meeting, track, Some(from));
                }
                // A partition between pulls what it is pulled for from its own upstream at
                // once, not at its next pass, so that each hop adds a round trip, not a second.
                if between {
                    self.pull_pass(now, false);
                }
            }
            RelayMsg::Layers {
                meeting,
                track,
                layers,
            } => self.remote_layers(now, from, &meeting, track, layers),
            RelayMsg::Keyframe {
                meeting,
                track,
                layer,
            } => {
                // From the publisher here, or on upstream (coalesced either way).
                self.request_keyframe(now, &meeting, track, layer.map(|l| Rid::from(l.as_str())));
            }
            RelayMsg::Media(m) => self.relayed_media(now, from, m),
        }
        self.drain(now);
    }

    /// Upstream's announcement of a remote track's layers: what the layer choice here picks
    /// from, passed on to the partitions that pull the track from here.
    fn remote_layers(
        &mut self,
        now: Instant,
        from: &str,
        meeting: &MeetingId,
        track: TrackId,
        announced: Vec<RelayLayer>,
    ) {
        let Some(remote) = self
            .rooms
            .get_mut(meeting)
            .and_then(|room| room.remote_from(track, from))
        else {
            return;
        };
        let before: Vec<Layer> = remote.layers.iter().map(|l| l.layer).collect();
        let mut layers = Vec::with_capacity(announced.len());
        for a in announced.iter().take(MAX_LAYERS) {
            let layer = a.rid.as_deref().map(Rid::from);
            let mut stat = remote
                .layers
                .iter()
                .find(|l| l.layer == layer)
                .cloned()
                .unwrap_or_else(|| LayerStat::new(layer, now));
            stat.bitrate_bps = a.bitrate_bps;
            stat.height = a.height;
            stat.last_seen = now;
            layers.push(stat);
        }
        let changed = layers.iter().map(|l| l.layer).ne(before);
        remote.layers = layers;
        self.announce(meeting, track, None);
        // A new or stopped layer changes choices now; bitrates wait for the next pass.
        if changed {
            self.layer_pass(now);
        }
    }

    /// Tells the partitions that pull `track` from here (or only `to`) what layers it has.
    fn announce(&mut self, meeting: &MeetingId, track: TrackId, to: Option<&str>) {
        let Some(room) = self.rooms.get(meeting) else {
            return;
        };
        let Some(pullers) = room.pulls.get(&track).filter(|p| !p.is_empty()) else {
            return;
        };
        let Some(stats) = room.tracks.get(&track).and_then(|p| match &p.origin {
            Origin::Local { peer, mid } => Some(&self.peers.get(peer)?.ins.get(mid)?.layers),
            Origin::Remote { .. } => Some(&room.remote.get(&track)?.layers),
        }) else {
            return;
        };
        let idle = self.config.layer_idle;
        let layers: Vec<RelayLayer> = stats
            .iter()
            .filter(|l| self.now.saturating_duration_since(l.last_seen) < idle)
            .map(|l| RelayLayer {
                rid: l.layer.map(|r| r.to_string()),
                height: l.height,
                bitrate_bps: l.bitrate_bps,
            })
            .collect();
        for node in pullers.keys().filter(|n| to.is_none_or(|to| to == *n)) {
            self.outputs.push_back(Output::Relay {
                to: node.clone(),
                msg: RelayMsg::Layers {
                    meeting: meeting.clone(),
                    track,
                    layers: layers.clone(),
                },
            });
        }
    }

    /// Announces, to those who pull them, the layers of the tracks published here (those of
    /// remote tracks are passed on as they come from upstream).
    fn announce_layers(&mut self, now: Instant) {
        let local: Vec<(MeetingId, TrackId)> = self
            .rooms
            .iter()
            .flat_map(|(meeting, room)| {
                room.pulls
                    .iter()
                    .filter(|(track, pullers)| {
                        pullers.values().any(|p| p.until > now)
                            && room
                                .tracks
                                .get(track)
                                .is_some_and(|p| matches!(p.origin, Origin::Local { .. }))
                    })
                    .map(|(track, _)| (meeting.clone(), *track))
            })
            .collect();
        for (meeting, track) in local {
            self.announce(&meeting, track, None);
        }
    }

    /// A packet of a remote track, relayed from upstream: to the subscribers here and on to
    /// the partitions that pull it from here.
    fn relayed_media(&mut self, now: Instant, from: &str, m: RelayMedia) {
        if self
            .rooms
            .get_mut(&m.meeting)
            .and_then(|room| room.remote_from(m.track, from))
            .is_none()
        {
            return;
        }
        let ext_vals = ExtensionValues {
            audio_level: m.audio_level,
            voice_activity: m.voice_activity,
            ..Default::default()
        };
        let layer = m.layer.as_deref().map(Rid::from);
        let Some(media) = MediaIn::parse(
            m.codec,
            layer,
            m.seq,
            m.time,
            m.marker,
            &ext_vals,
            Arc::from(m.payload),
            now,
            None,
        ) else {
            return;
        };
        self.fan_out(now, &m.meeting, m.track, None, &media);
        self.relay_out(now, &m.meeting, m.track, &media);
    }

    /// Sends a packet of `track` to the subscribers here that should get it (`from`, its
    /// publisher, never gets its own).
    fn fan_out(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        track: TrackId,
        from: Option<PeerId>,
        media: &MediaIn,
    ) {
        let Some(room) = self.rooms.get(meeting) else {
            return;
        };
        let mut wanted = Vec::new();
        for sub_id in &room.peers {
            if Some(*sub_id) == from {
                continue;
            }
            let Some(sub) = self.peers.get_mut(sub_id) else {
                continue;
            };
            let Some(out) = sub.outs.iter_mut().find(|o| o.track == Some(track)) else {
                continue;
            };
            let OutState::Open(out_mid) = out.state else {
                continue;
            };
            let rewrite = match out.fwd.on_packet(&media.incoming, now) {
                Decision::Forward(r) => r,
                Decision::NeedKeyframe(l) => {
                    wanted.push(l);
                    continue;
                }
                Decision::Drop => continue,
            };
            let Some(pt) = out.payload_type(media.source_pt(), || {
                let config = sub.rtc.codec_config();
                match media.params {
                    // A local publisher's exact parameters.
                    Some(params) => config.match_params(params).map(|p| p.pt()),
                    // A relayed packet: this subscriber's parameters for the codec.
                    None => config
                        .params()
                        .iter()
                        .find(|p| p.spec().codec == media.codec())
                        .map(|p| p.pt()),
                }
            }) else {
                continue;
            };
            let mut write = RtpWrite::new(
                pt,
                rewrite.seq.into(),
                rewrite.time as u32,
                media.timestamp,
                media.payload.clone(),
            )
            .marker(media.marker)
            .ext_vals(media.ext_vals.clone())
            .nackable(!media.is_audio());
            if let Some(d) = &media.vp8 {
                match vp8_patch(d, &rewrite) {
                    Some(p) => write = write.vp8_patch(p),
                    None => continue,
                }
            }
            let mut api = sub.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            stream.write_rtp(write);
            mark_dirty(&mut self.dirty, *sub_id, sub);
        }
        wanted.dedup();
        for l in wanted {
            self.request_keyframe(now, meeting, track, l);
        }
    }

    /// Sends a packet to the partitions that pull its track from here.
    fn relay_out(&mut self, now: Instant, meeting: &MeetingId, track: TrackId, media: &MediaIn) {
        let Some(pullers) = self
            .rooms
            .get_mut(meeting)
            .and_then(|r| r.pulls.get_mut(&track))
        else {
            return;
        };
        pullers.retain(|_, p| p.until > now);
        let layer = media.incoming.layer;
        for (node, _) in pullers.iter().filter(|(_, p)| p.layers.contains(&layer)) {
            self.outputs.push_back(Output::Relay {
                to: node.clone(),
                msg: RelayMsg::Media(RelayMedia {
                    meeting: meeting.clone(),
                    track,
                    layer: media.incoming.layer.map(|r| r.to_string()),
                    codec: media.relay_codec,
                    seq: media.incoming.seq,
                    time: media.incoming.time,
                    marker: media.marker,
                    audio_level: media.ext_vals.audio_level,
                    voice_activity: media.ext_vals.voice_activity,
                    payload: media.payload.to_vec(),
                }),
            });
        }
    }

    /// Pulls from upstream the layers of each remote track needed here: those the
    /// subscribers' slots carry or switch to, the lowest of each of the plan's tracks in a
    /// partition opened ahead of its subscribers, and those pulled from here. A track needed
    /// with no layer chosen yet is pulled for its announcements only; one no longer needed at
    /// all stops its media now (the pull then expires). Sends the pulls whose layers changed,
    /// or with `refresh` every pull (they expire unless repeated).
    fn pull_pass(&mut self, now: Instant, refresh: bool) {
        let idle = self.config.layer_idle;
        let mut pulling = false;
        for (meeting, room) in self.rooms.iter_mut() {
            let mut wanted: HashMap<TrackId, Vec<Layer>> = HashMap::new();
            let subscribers = room.peers.iter().filter_map(|p| self.peers.get(p));
            for out in subscribers.flat_map(|s| &s.outs) {
                if let Some(track) = out.track {
                    let layers = wanted.entry(track).or_default();
                    add_layers(
                        layers,
                        [out.fwd.target(), out.fwd.current()].into_iter().flatten(),
                    );
                }
            }
            for (track, p) in &room.tracks {
                let Origin::Remote { upstream } = &p.origin else {
                    continue;
                };
                let Some(remote) = room.remote.get_mut(track) else {
                    continue;
                };
                let mut layers = wanted.remove(track);
                let planned = room.plan.audio.contains(track) || room.plan.video.contains(track);
                if room.warm && planned {
                    let lowest = remote
                        .layers
                        .iter()
                        .filter(|l| now.saturating_duration_since(l.last_seen) < idle)
                        .min_by_key(|l| (l.bitrate_bps, l.height))
                        .map(|l| l.layer);
                    add_layers(layers.get_or_insert_with(Vec::new), lowest);
                }
                let pullers = room.pulls.get(track).into_iter().flat_map(|p| p.values());
                for puller in pullers.filter(|p| p.until > now) {
                    add_layers(
                        layers.get_or_insert_with(Vec::new),
                        puller.layers.iter().copied(),
                    );
                }
                let send = match (&layers, &remote.pulled) {
                    (Some(_), _) if refresh => true,
                    (Some(new), Some(old)) => !same_layers(new, old),
                    (Some(_), None) => true,
                    (None, Some(old)) => !old.is_empty(),
                    (None, None) => false,
                };
                if send {
                    self.outputs.push_back(Output::Relay {
                        to: upstream.clone(),
                        msg: RelayMsg::Pull {
                            meeting: meeting.clone(),
                            track: *track,
                            layers: layers
                                .iter()
                                .flatten()
                                .map(|l| l.map(|r| r.to_string()))
                                .collect(),
                        },
                    });
                }
                pulling |= layers.is_some();
                remote.pulled = layers;
            }
        }
        if pulling {
            self.next_pull_pass.get_or_insert(now + PULL_EVERY);
        }
    }

    /// Asks the publisher for a key frame on one layer, at most once per interval whatever
    /// the number of subscribers asking — itself when it is here, through upstream when not.
    fn request_keyframe(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        track: TrackId,
        layer: Layer,
    ) {
        let interval = self.config.keyframe_request_interval;
        let due = |requested: &mut Option<Instant>| {
            if requested.is_some_and(|t| now.saturating_duration_since(t) < interval) {
                return false;
            }
            *requested = Some(now);
            true
        };
        let Some(room) = self.rooms.get_mut(meeting) else {
            return;
        };
        let Some(published) = room.tracks.get(&track) else {
            return;
        };
        if published.kind != MediaKind::Video {
            return;
        }
        match published.origin.clone() {
            Origin::Local { peer: peer_id, mid } => {
                let Some(peer) = self.peers.get_mut(&peer_id) else {
                    return;
                };
                let Some(stat) = peer
                    .ins
                    .get_mut(&mid)
                    .and_then(|i| i.layers.iter_mut().find(|l| l.layer == layer))
                else {
                    return;
                };
                if !due(&mut stat.keyframe_requested) {
                    return;
                }
                if let Some(stream) = peer.rtc.direct_api().stream_rx_by_mid(mid, layer) {
                    stream.request_keyframe(KeyframeRequestKind::Pli);
                    mark_dirty(&mut self.dirty, peer_id, peer);
                }
            }
            Origin::Remote { upstream } => {
                let Some(stat) = room
                    .remote
                    .get_mut(&track)
                    .and_then(|r| r.layers.iter_mut().find(|l| l.layer == layer))
                else {
                    return;
                };
                if due(&mut stat.keyframe_requested) {
                    self.outputs.push_back(Output::Relay {
                        to: upstream,
                        msg: RelayMsg::Keyframe {
                            meeting: meeting.clone(),
                            track,
                            layer: layer.map(|l| l.to_string()),
                        },
                    });
                }
            }
        }
    }

    fn report_levels(&mut self) {
        for (meeting, room) in &self.rooms {
            let mut levels = Vec::new();
            for id in &room.peers {
                if let Some(peer) = self.peers.get_mut(id) {
                    if let Some(level) = peer.level_dbov.take() {
                        levels.push((peer.participant, level as f32));
                    }
                }
            }
            // Speaker candidates: the loudest few; the meeting needs no more to choose.
            levels.sort_by(|a, b| b.1.total_cmp(&a.1));
            levels.truncate(self.config.speaker_candidates);
            if !levels.is_empty() {
                self.outputs.push_back(Output::Event(SfuEvent::AudioLevels {
                    meeting: meeting.clone(),
                    levels,
                }));
            }
        }
    }

    fn update_layer_stats(&mut self, now: Instant) {
        // Remote tracks' bitrates come with their announcements.
        let local = self
            .peers
            .values_mut()
            .flat_map(|p| p.ins.values_mut())
            .map(|i| (&mut i.layers, &mut i.stats_since));
        for (layers, since) in local {
            let elapsed = now.saturating_duration_since(*since).as_secs_f64();
            if elapsed <= 0.0 {
                continue;
            }
            for l in layers.iter_mut() {
                let bps = (l.bytes as f64 * 8.0 / elapsed) as u64;
                // Smooth, so one large key frame does not swing the choice.
                l.bitrate_bps = if l.bitrate_bps == 0 {
                    bps
                } else {
                    (l.bitrate_bps + bps) / 2
                };
                l.bytes = 0;
            }
            *since = now;
        }
    }

    /// Re-decides, for every subscriber, which tracks it gets and at which layer.
    fn layer_pass(&mut self, now: Instant) {
        let idle = self.config.layer_idle;
        let mut keyframes = Vec::new();
        for (meeting, room) in &self.rooms {
            // Active layers per published track, lowest bitrate first.
            let layers: HashMap<TrackId, Vec<(Layer, LayerInfo)>> = room
                .tracks
                .iter()
                .filter_map(|(track, p)| {
                    let stats = match &p.origin {
                        Origin::Local { peer, mid } => &self.peers.get(peer)?.ins.get(mid)?.layers,
                        Origin::Remote { .. } => &room.remote.get(track)?.layers,
                    };
                    let mut ls: Vec<(Layer, LayerInfo)> = stats
                        .iter()
                        .filter(|l| now.saturating_duration_since(l.last_seen) < idle)
                        .map(|l| {
                            (
                                l.layer,
                                LayerInfo {
                                    bitrate_bps: l.bitrate_bps,
                                    height: l.height,
                                },
                            )
                        })
                        .collect();
                    ls.sort_by_key(|(_, info)| (info.bitrate_bps, info.height));
                    Some((*track, ls))
                })
                .collect();
            for sub_id in &room.peers {
                let Some(sub) = self.peers.get_mut(sub_id).filter(|p| !p.outs.is_empty()) else {
                    continue;
                };
                let others =
                    |t: &TrackId| room.tracks.get(t).is_some_and(|p| !p.published_by(*sub_id));
                // Video: the cameras it pinned, then the plan's; as many as it has slots.
                let pinned_cameras = room.tracks.iter().filter(|(_, p)| {
                    p.source == TrackSource::Camera && sub.view.pinned.contains(&p.participant)
                });
                let mut video: Vec<TrackId> = pinned_cameras.map(|(t, _)| *t).collect();
                video.sort();
                for t in &room.plan.video {
                    if !video.contains(t) {
                        video.push(*t);
                    }
                }
                video.retain(others);
                let audio: Vec<TrackId> = room.plan.audio.iter().copied().filter(others).collect();
                let mut remapped = false;
                for (kind, wanted) in [(MediaKind::Audio, &audio), (MediaKind::Video, &video)] {
                    let current: Vec<Option<TrackId>> = sub
                        .outs
                        .iter()
                        .filter(|o| o.kind == kind)
                        .map(|o| o.track)
                        .collect();
                    let next = slots::assign(&current, wanted);
                    let outs = sub.outs.iter_mut().filter(|o| o.kind == kind);
                    for (out, track) in outs.zip(next) {
                        remapped |= out.track != track;
                        out.point(track);
                    }
                }
                let video_slots = sub
                    .outs
                    .iter()
                    .filter(|o| o.kind == MediaKind::Video)
                    .count();
                video.truncate(video_slots);
                let empty = Vec::new();
                let tracks_layers: Vec<&Vec<(Layer, LayerInfo)>> = video
                    .iter()
                    .map(|t| layers.get(t).unwrap_or(&empty))
                    .collect();
                let infos: Vec<Vec<LayerInfo>> = tracks_layers
                    .iter()
                    .map(|ls| ls.iter().map(|(_, i)| *i).collect())
                    .collect();
                let demands: Vec<LayerDemand<'_>> = infos
                    .iter()
                    .map(|ls| LayerDemand {
                        layers: ls,
                        max_height: sub.view.max_height,
                    })
                    .collect();
                let budget = sub
                    .bwe_bps
                    .saturating_sub(audio.len() as u64 * AUDIO_ALLOWANCE_BPS);
                let choice = choose_layers(&demands, budget);

                for out in sub.outs.iter_mut() {
                    let Some(track) = out.track else {
                        continue;
                    };
                    let target = if out.kind == MediaKind::Audio {
                        Some(None)
                    } else {
                        video
                            .iter()
                            .position(|t| *t == track)
                            .and_then(|i| choice[i].map(|c| tracks_layers[i][c].0))
                    };
                    let before = out.fwd.target();
                    if before != target && out.fwd.set_target(target) {
                        if let Some(layer) = target {
                            keyframes.push((meeting.clone(), track, layer));
                        }
                    }
                    if before.is_some() != target.is_some() {
                        // Congestion control at work, or a stall to explain.
                        tracing::debug!(
                            peer = sub_id.0,
                            track = track.0,
                            bwe_bps = sub.bwe_bps,
                            "video {} for the downlink estimate",
                            if target.is_some() { "on" } else { "paused" }
                        );
                    }
                }
                let slots = sub.slot_map();
                if remapped && !slots.is_empty() {
                    self.outputs.push_back(Output::Event(SfuEvent::Slots {
                        peer: *sub_id,
                        meeting: meeting.clone(),
                        slots,
                    }));
                }
            }
        }
        // A remote layer switched to is pulled before its key frame is asked for.
        self.pull_pass(now, false);
        for (meeting, track, layer) in keyframes {
            self.request_keyframe(now, &meeting, track, layer);
        }
    }
}

impl Room {
    /// A remote track's state, if `from` is its upstream of the moment: while the relay tree
    /// changes, the old one may still send for a while, and nothing must arrive twice.
    fn remote_from(&mut self, track: TrackId, from: &str) -> Option<&mut RemoteIn> {
        let from_upstream = self
            .tracks
            .get(&track)
            .is_some_and(|p| matches!(&p.origin, Origin::Remote { upstream } if upstream == from));
        self.remote.get_mut(&track).filter(|_| from_upstream)
    }
}

fn add_layers(to: &mut Vec<Layer>, layers: impl IntoIterator<Item = Layer>) {
    for layer in layers {
        if !to.contains(&layer) {
            to.push(layer);
        }
    }
}

/// Whether two sets of layers (no repeats in either) are the same.
fn same_layers(a: &[Layer], b: &[Layer]) -> bool {
    a.len() == b.len() && a.iter().all(|l| b.contains(l))
}

/// A packet as forwarding sees it, from a local publisher or relayed from another node.
struct MediaIn {
    incoming: Incoming,
    relay_codec: RelayCodec,
    /// A local publisher's payload parameters (none for a relayed packet).
    params: Option<str0m::format::PayloadParams>,
    marker: bool,
    ext_vals: ExtensionValues,
    /// Shared by every subscriber it goes to.
    payload: Arc<[u8]>,
    /// When it arrived.
    timestamp: Instant,
    vp8: Option<Vp8Descriptor>,
    /// The frame height, for the first packet of a VP8 key frame.
    keyframe_height: Option<u32>,
}

impl MediaIn {
    /// `None` for video that is not readable VP8: nothing a subscriber could decode.
    #[allow(clippy::too_many_arguments)]
    fn parse(
        codec: RelayCodec,
        layer: Layer,
        seq: u64,
        time: u64,
        marker: bool,
        ext: &ExtensionValues,
        payload: Arc<[u8]>,
        timestamp: Instant,
        params: Option<str0m::format::PayloadParams>,
    ) -> Option<Self> {
        let audio = codec == RelayCodec::Opus;
        let vp8 = if audio {
            None
        } else {
            Some(Vp8Descriptor::parse(&payload).ok()?)
        };
        let keyframe = vp8.is_some_and(|d| d.starts_keyframe(&payload));
        let keyframe_height = keyframe
            .then(|| vp8_keyframe_size(&payload))
            .flatten()
            .map(|(_, h)| u32::from(h));
        Some(Self {
            incoming: Incoming {
                layer,
                seq,
                time,
                clock_hz: if audio { 48_000 } else { 90_000 },
                switch_point: audio || keyframe,
                picture_id: vp8.and_then(|d| d.picture_id()),
                tl0_pic_idx: vp8.and_then(|d| d.tl0_pic_idx()),
            },
            relay_codec: codec,
            params,
            marker,
            ext_vals: ExtensionValues {
                audio_level: ext.audio_level,
                voice_activity: ext.voice_activity,
                ..Default::default()
            },
            payload,
            timestamp,
            vp8,
            keyframe_height,
        })
    }

    fn is_audio(&self) -> bool {
        self.relay_codec == RelayCodec::Opus
    }

    fn codec(&self) -> Codec {
        match self.relay_codec {
            RelayCodec::Opus => Codec::Opus,
            RelayCodec::Vp8 => Codec::Vp8,
        }
    }

    /// The payload type it came with (for a relayed packet, one standing for its codec).
    fn source_pt(&self) -> Pt {
        match self.params {
            Some(p) => p.pt(),
            None => Pt::from(match self.relay_codec {
                RelayCodec::Opus => 111,
                RelayCodec::Vp8 => 96,
            }),
        }
    }
}

/// Counts a packet in its layer's statistics; `Some(true)` when the layer is new, `None`
/// when a track sends more layers than a client we serve would.
fn note_layer(layers: &mut Vec<LayerStat>, media: &MediaIn, now: Instant) -> Option<bool> {
    let layer = media.incoming.layer;
    let (idx, new) = match layers.iter().position(|l| l.layer == layer) {
        Some(i) => (i, false),
        None if layers.len() < MAX_LAYERS => {
            layers.push(LayerStat::new(layer, now));
            (layers.len() - 1, true)
        }
        None => return None,
    };
    let stat = &mut layers[idx];
    stat.bytes += media.payload.len() as u64;
    stat.last_seen = now;
    if let Some(h) = media.keyframe_height {
        stat.height = h;
    }
    Some(new)
}

/// The subscriber's picture id and TL0PICIDX written into this packet's descriptor.
fn vp8_patch(d: &Vp8Descriptor, r: &Rewrite) -> Option<Vp8Patch> {
    let build = |picture_id: Option<u16>| {
        let mut patch = d.patch();
        if let Some(id) = picture_id {
            patch = patch.picture_id(id);
        }
        if let Some(i) = r.tl0_pic_idx {
            patch = patch.tl0_pic_idx(i);
        }
        patch.build()
    };
    // A 7-bit picture id takes the same id modulo 128.
    build(r.picture_id)
        .or_else(|_| build(r.picture_id.map(|id| id & 0x7f)))
        .ok()
}

fn mark_dirty(dirty: &mut Vec<PeerId>, id: PeerId, peer: &mut Peer) {
    if !peer.dirty {
        peer.dirty = true;
        dirty.push(id);
    }
}

fn parse_offer(sdp: &str) -> Result<SdpOffer, SfuError> {
    if sdp.len() > myriad_proto::MAX_MESSAGE_BYTES {
        return Err(SfuError::Sdp("offer too large".into()));
    }
    SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::Sdp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_offers_are_errors() {
        let mut sfu = Sfu::new(
            SfuConfig::new("127.0.0.1:9".parse().unwrap()),
            Instant::now(),
        );
        let m = MeetingId::parse("m").unwrap();
        for bad in [
            "",
            "v=0",
            "hello\r\nworld",
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        ] {
            let new = NewPeer {
                id: PeerId(1),
                meeting: m.clone(),
                participant: ParticipantId(1),
                subscribe: true,
            };
            assert!(sfu.add_peer(Instant::now(), new, bad, &[]).is_err());
        }
        assert_eq!(sfu.peer_count(), 0);
    }
}
