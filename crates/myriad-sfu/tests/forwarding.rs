//! The SFU core against real `str0m` clients, in virtual time, with no sockets: ICE, DTLS and
//! SRTP all run; the test plays the network and the meeting's coordinator.

#![allow(clippy::disallowed_methods)] // the harness picks its start time

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myriad_proto::cluster::PartitionRef;
use myriad_proto::{
    ForwardingPlan, MeetingId, ParticipantId, TrackId, TrackInfo, TrackMid, TrackSource,
};
use myriad_seeded::SeededRng;
use myriad_sfu::core::{NewPeer, Output, PeerId, Sfu, SfuConfig, SfuEvent};
use myriad_sfu::relay::{RelayError, RelayMsg, RelayOpener, RelaySealer};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};

const SFU_ADDR: &str = "10.0.0.1:3478";
/// More partitions' SFUs (on other nodes), for relays.
const FAR_ADDR: &str = "10.0.1.1:3478";
const FARTHER_ADDR: &str = "10.0.2.1:3478";
const RELAY_KEY: &[u8] = b"the cluster's relay key";

struct Client {
    addr: SocketAddr,
    /// The node (index) it is connected to.
    node: usize,
    rtc: Rtc,
    timeout: Instant,
    /// (mid, is keyframe, size) of every frame received.
    frames: Vec<(Mid, bool, usize)>,
    keyframe_requests: usize,
    /// A key frame request arrived and the next frame should be one (as a browser does).
    keyframe_wanted: bool,
    /// Server offers answered.
    offers: usize,
    /// Datagrams delivered to it.
    datagrams_in: usize,
    connected: bool,
}

impl Client {
    fn new(addr: &str, now: Instant) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Self {
            addr,
            node: 0,
            rtc,
            timeout: now,
            frames: Vec::new(),
            keyframe_requests: 0,
            keyframe_wanted: false,
            offers: 0,
            datagrams_in: 0,
            connected: false,
        }
    }
}

/// One node's SFU, and how it seals and opens relay datagrams.
struct SimNode {
    name: String,
    addr: SocketAddr,
    sfu: Sfu,
    sealer: RelaySealer,
    opener: RelayOpener,
}

impl SimNode {
    fn new(name: &str, addr: &str, key: &[u8], now: Instant) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        Self {
            name: name.to_owned(),
            addr,
            sfu: Sfu::new(SfuConfig::new(addr), now),
            sealer: RelaySealer::new(name, key, 0),
            opener: RelayOpener::new(key),
        }
    }
}

struct World {
    now: Instant,
    /// The nodes: the first is where clients join unless told otherwise.
    nodes: Vec<SimNode>,
    clients: Vec<Client>,
    net: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Relay datagrams in flight: (to node, sealed bytes).
    relays: VecDeque<(String, Vec<u8>)>,
    /// Every relay datagram sent, by kind, and the refusals of opening.
    relay_log: Vec<RelayMsg>,
    /// From and to whom each of `relay_log` went.
    relay_hops: Vec<(String, String)>,
    relay_refused: Vec<RelayError>,
    events: Vec<SfuEvent>,
    meeting: MeetingId,
    /// Drop every n-th media datagram sent to this address (deterministic loss).
    loss: Option<(SocketAddr, usize)>,
    /// Server offers are kept here, not answered (their signalling is lost).
    hold_offers: bool,
    /// The kinds of the m-lines of the last server offer each client answered.
    server_offered: std::collections::HashMap<usize, Vec<MediaKind>>,
    held_offers: Vec<(usize, PeerId, String)>,
    sent_to_lossy: usize,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            now,
            nodes: vec![SimNode::new("n1/0", SFU_ADDR, RELAY_KEY, now)],
            clients: Vec::new(),
            net: VecDeque::new(),
            relays: VecDeque::new(),
            relay_log: Vec::new(),
            relay_hops: Vec::new(),
            relay_refused: Vec::new(),
            events: Vec::new(),
            meeting: MeetingId::parse("m").unwrap(),
            loss: None,
            hold_offers: false,
            server_offered: std::collections::HashMap::new(),
            held_offers: Vec::new(),
            sent_to_lossy: 0,
        }
    }

    /// Two partitions on two nodes, n1/0 and n2/0, relaying to each other.
    fn two_nodes() -> Self {
        let mut w = World::new();
        w.nodes
            .push(SimNode::new("n2/0", FAR_ADDR, RELAY_KEY, w.now));
        w
    }

    /// Three: n1/0, n2/0 and n3/0.
    fn three_nodes() -> Self {
        let mut w = World::two_nodes();
        w.nodes
            .push(SimNode::new("n3/0", FARTHER_ADDR, RELAY_KEY, w.now));
        w
    }

    /// Acts as a node's link: tells partition `node` of a track published by client
    /// `publisher` in n1/0, to be pulled from `upstream`.
    fn remote_track(&mut self, node: usize, track: u64, publisher: usize, upstream: &str) {
        let source = if track % 2 == 1 {
            TrackSource::Microphone
        } else {
            TrackSource::Camera
        };
        let info = TrackInfo {
            id: TrackId(track),
            participant: ParticipantId(publisher as u64 + 1),
            source,
            muted: false,
            partition: Some(PartitionRef::new("n1", 0)),
        };
        let (now, meeting) = (self.now, self.meeting.clone());
        self.nodes[node]
            .sfu
            .add_remote_track(now, &meeting, &info, upstream);
    }

    /// Connects a client whose offer is built by `offer`; returns its index.
    fn join(
        &mut self,
        addr: &str,
        offer: impl FnOnce(&mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>),
    ) -> usize {
        self.join_on(0, addr, offer)
    }

    /// Connects a client to node `node`.
    fn join_on(
        &mut self,
        node: usize,
        addr: &str,
        offer: impl FnOnce(&mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>),
    ) -> usize {
        let mut c = Client::new(addr, self.now);
        c.node = node;
        let (sdp, pending, tracks) = offer(&mut c.rtc);
        let idx = self.clients.len();
        let new = NewPeer {
            id: PeerId(idx as u64),
            meeting: self.meeting.clone(),
            participant: ParticipantId(idx as u64 + 1),
            subscribe: true,
        };
        let answer = self.nodes[node]
            .sfu
            .add_peer(self.now, new, &sdp.to_sdp_string(), &tracks)
            .expect("offer accepted");
        c.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        self.clients.push(c);
        idx
    }

    /// Moves everything that is ready: outputs, packets, offers. Then advances time to the
    /// next deadline (at most `step`).
    fn step(&mut self, step: Duration) {
        for _ in 0..1000 {
            let mut progressed = false;
            for c in &mut self.clients {
                loop {
                    match c.rtc.poll_output().unwrap() {
                        RtcOutput::Timeout(t) => {
                            c.timeout = t;
                            break;
                        }
                        RtcOutput::Transmit(t) => {
                            self.net
                                .push_back((t.source, t.destination, t.contents.to_vec()));
                            progressed = true;
                        }
                        RtcOutput::Event(e) => match e {
                            Event::Connected => c.connected = true,
                            Event::MediaData(d) => {
                                c.frames.push((d.mid, d.is_keyframe(), d.data.len()))
                            }
                            Event::KeyframeRequest(_) => {
                                c.keyframe_requests += 1;
                                c.keyframe_wanted = true;
                            }
                            _ => {}
                        },
                    }
                }
            }
            for n in 0..self.nodes.len() {
                while let Some(out) = self.nodes[n].sfu.poll_output() {
                    progressed = true;
                    match out {
                        Output::Transmit(t) => {
                            self.net
                                .push_back((t.source, t.destination, t.contents.to_vec()))
                        }
                        Output::Event(SfuEvent::Offer { peer, sdp, .. }) => {
                            if self.hold_offers {
                                self.held_offers.push((n, peer, sdp));
                            } else {
                                self.answer(n, peer, &sdp);
                            }
                        }
                        Output::Event(e) => self.events.push(e),
                        Output::Relay { to, msg } => {
                            let sealed = self.nodes[n].sealer.seal(&msg);
                            self.relay_log.push(msg);
                            self.relay_hops
                                .push((self.nodes[n].name.clone(), to.clone()));
                            self.relays.push_back((to, sealed));
                        }
                    }
                }
            }
            while let Some((to, datagram)) = self.relays.pop_front() {
                progressed = true;
                let now = self.now;
                let Some(node) = self.nodes.iter_mut().find(|n| n.name == to) else {
                    continue;
                };
                match node.opener.open(&datagram) {
                    Ok((from, msg)) => node.sfu.handle_relay(now, &from, msg),
                    Err(e) => self.relay_refused.push(e),
                }
            }
            while let Some((src, dst, data)) = self.net.pop_front() {
                progressed = true;
                if let Some((lossy, n)) = self.loss {
                    // Only media-sized datagrams, so that every loss hits a video frame.
                    if dst == lossy && data.len() > 500 {
                        self.sent_to_lossy += 1;
                        if self.sent_to_lossy.is_multiple_of(n) {
                            continue;
                        }
                    }
                }
                if let Some(node) = self.nodes.iter_mut().find(|n| n.addr == dst) {
                    node.sfu.handle_receive(self.now, src, dst, &data);
                } else if let Some(c) = self.clients.iter_mut().find(|c| c.addr == dst) {
                    c.datagrams_in += 1;
                    let input = Input::Receive(
                        self.now,
                        Receive::new(Protocol::Udp, src, dst, &data).unwrap(),
                    );
                    c.rtc.handle_input(input).unwrap();
                }
            }
            if !progressed {
                break;
            }
        }
        let next = self
            .clients
            .iter()
            .map(|c| c.timeout)
            .chain(self.nodes.iter().filter_map(|n| n.sfu.poll_timeout()))
            .min()
            .unwrap_or(self.now + step)
            .clamp(self.now + Duration::from_micros(100), self.now + step);
        self.now = next;
        for c in &mut self.clients {
            c.rtc.handle_input(Input::Timeout(self.now)).unwrap();
        }
        for node in &mut self.nodes {
            node.sfu.handle_timeout(self.now);
        }
    }

    /// Joins and waits until ICE and DTLS are up.
    fn connected(
        &mut self,
        addr: &str,
        offer: impl FnOnce(&mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>),
    ) -> usize {
        let idx = self.join(addr, offer);
        self.run_until(Duration::from_secs(5), |w| w.clients[idx].connected);
        idx
    }

    /// Joins node `node` and waits until ICE and DTLS are up.
    fn connected_on(
        &mut self,
        node: usize,
        addr: &str,
        offer: impl FnOnce(&mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>),
    ) -> usize {
        let idx = self.join_on(node, addr, offer);
        self.run_until(Duration::from_secs(5), |w| w.clients[idx].connected);
        idx
    }

    /// The client of `peer` answers a server offer from node `node`.
    fn answer(&mut self, node: usize, peer: PeerId, sdp: &str) {
        let c = &mut self.clients[peer.0 as usize];
        c.offers += 1;
        let offer = SdpOffer::from_sdp_string(sdp).unwrap();
        let kinds = sdp
            .lines()
            .filter_map(|l| l.strip_prefix("m="))
            .filter_map(|m| match m.split(' ').next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                _ => None,
            })
            .collect();
        self.server_offered.insert(peer.0 as usize, kinds);
        let answer = c.rtc.sdp_api().accept_offer(offer).unwrap();
        self.nodes[node]
            .sfu
            .handle_answer(self.now, peer, &answer.to_sdp_string())
            .unwrap();
    }

    /// A publisher on the first node whose microphone and camera the meeting accepted as
    /// tracks 1 and 2: its index and their mids.
    fn publisher_with_tracks(&mut self) -> (usize, Mid, Mid) {
        let a = self.connected("10.0.0.2:5000", publisher_offer);
        let audio_mid = announced_mid(self, TrackSource::Microphone);
        let video_mid = announced_mid(self, TrackSource::Camera);
        self.bind(a, audio_mid, 1);
        self.bind(a, video_mid, 2);
        (a, audio_mid, video_mid)
    }

    /// Acts as the coordinator: accepts a published track under an id.
    fn bind(&mut self, publisher: usize, mid: Mid, track: u64) {
        let node = self.clients[publisher].node;
        self.nodes[node]
            .sfu
            .bind_track(self.now, PeerId(publisher as u64), &mid, TrackId(track));
    }

    /// Acts as the coordinator: sets the meeting's plan.
    fn plan(&mut self, audio: &[u64], video: &[u64]) {
        let plan = ForwardingPlan {
            audio: audio.iter().copied().map(TrackId).collect(),
            video: video.iter().copied().map(TrackId).collect(),
        };
        let meeting = self.meeting.clone();
        for node in &mut self.nodes {
            node.sfu.set_plan(self.now, &meeting, plan.clone());
        }
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(self.now < end, "condition not reached within {limit:?}");
            self.step(Duration::from_millis(5));
        }
    }
}

/// The tracks the SFU announced so far, as (mid, source).
fn announced(w: &World) -> Vec<(Mid, TrackSource)> {
    w.events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::TrackAdded { mid, source, .. } => Some((Mid::from(mid.as_str()), *source)),
            _ => None,
        })
        .collect()
}

/// The mid of the announced track from `source`.
fn announced_mid(w: &World, source: TrackSource) -> Mid {
    announced(w)
        .into_iter()
        .find(|(_, s)| *s == source)
        .unwrap_or_else(|| panic!("no {source:?} track announced: {:?}", w.events))
        .0
}

fn publisher_offer(rtc: &mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>) {
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let tracks = vec![
        TrackMid {
            mid: audio.to_string(),
            source: Some(TrackSource::Microphone),
            track: None,
        },
        TrackMid {
            mid: video.to_string(),
            source: Some(TrackSource::Camera),
            track: None,
        },
    ];
    (offer, pending, tracks)
}

fn subscriber_offer(rtc: &mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>) {
    let mut api = rtc.sdp_api();
    api.add_channel("myriad".into());
    let (offer, pending) = api.apply().unwrap();
    (offer, pending, Vec::new())
}

/// A VP8 frame the depacketizer sees as key or delta frame.
fn vp8_frame(key: bool) -> Vec<u8> {
    let mut f = if key {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    f.resize(if key { 3000 } else { 800 }, 0x55);
    f
}

/// The publisher sends 20 ms Opus frames (with a loud audio level) and 30 fps VP8.
fn send_media(
    w: &mut World,
    publisher: usize,
    ms: u64,
    audio: Mid,
    video: Mid,
    keyframe_every: u64,
) {
    let now = w.now;
    let client = &mut w.clients[publisher];
    let rtc = &mut client.rtc;
    if ms.is_multiple_of(20) {
        let writer = rtc.writer(audio).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .unwrap()
            .pt();
        writer
            .audio_level(-20, true)
            .write(
                pt,
                now,
                MediaTime::new(ms * 48, Frequency::FORTY_EIGHT_KHZ),
                vec![0xfc; 80],
            )
            .unwrap();
    }
    if ms.is_multiple_of(33) {
        let key =
            (ms / 33).is_multiple_of(keyframe_every) || std::mem::take(&mut client.keyframe_wanted);
        let writer = rtc.writer(video).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .unwrap()
            .pt();
        writer
            .write(pt, now, MediaTime::from_90khz(ms * 90), vp8_frame(key))
            .unwrap();
    }
}

/// The publisher's media as `send_media` makes it, for `duration` of virtual time from clip
/// time `ms` (one call per clip millisecond, however the world steps), with `between` run
/// before every step. Returns the clip time to go on from.
#[allow(clippy::too_many_arguments)]
fn play(
    w: &mut World,
    publisher: usize,
    audio: Mid,
    video: Mid,
    mut ms: u64,
    duration: Duration,
    keyframe_every: u64,
    mut between: impl FnMut(&mut World),
) -> u64 {
    let start = w.now;
    let first = ms;
    while w.now < start + duration {
        between(w);
        let due = first + (w.now - start).as_millis() as u64;
        while ms <= due {
            send_media(w, publisher, ms, audio, video, keyframe_every);
            ms += 1;
        }
        w.step(Duration::from_millis(1));
    }
    ms
}

/// [`play`] with a key frame every 150 ms and nothing in between.
fn play_steady(
    w: &mut World,
    publisher: usize,
    audio: Mid,
    video: Mid,
    ms: u64,
    duration: Duration,
) -> u64 {
    play(w, publisher, audio, video, ms, duration, 150, |_| {})
}

#[test]
fn forwards_selected_media_and_coalesces_keyframe_requests() {
    let mut w = World::new();
    let a = w.connected("10.0.0.2:5000", publisher_offer);

    // The publisher's tracks are announced; the coordinator accepts them and plans.
    assert_eq!(announced(&w).len(), 2, "events: {:?}", w.events);
    let audio_mid = announced_mid(&w, TrackSource::Microphone);
    let video_mid = announced_mid(&w, TrackSource::Camera);
    w.bind(a, audio_mid, 1);
    w.bind(a, video_mid, 2);
    w.plan(&[1], &[2]);

    // Two subscribers join; each gets one server offer: its receiving slots.
    let b = w.join("10.0.0.3:5000", subscriber_offer);
    let c = w.join("10.0.0.4:5000", subscriber_offer);
    w.run_until(Duration::from_secs(5), |w| {
        w.clients[b].connected && w.clients[c].connected
    });

    // Two seconds of media with a key frame every 3 s: the first frames are deltas, so
    // subscribers need a key frame; the SFU asks the publisher, not once per subscriber.
    let ms = play(
        &mut w,
        a,
        audio_mid,
        video_mid,
        1,
        Duration::from_secs(2),
        90,
        |_| {},
    );

    for sub in [b, c] {
        let frames = &w.clients[sub].frames;
        let audio = frames
            .iter()
            .filter(|(m, _, _)| {
                w.clients[sub]
                    .rtc
                    .media(*m)
                    .is_some_and(|md| md.kind() == MediaKind::Audio)
            })
            .count();
        let video: Vec<bool> = frames
            .iter()
            .filter(|(m, _, _)| {
                w.clients[sub]
                    .rtc
                    .media(*m)
                    .is_some_and(|md| md.kind() == MediaKind::Video)
            })
            .map(|(_, k, _)| *k)
            .collect();
        assert!(audio > 50, "subscriber {sub} got {audio} audio frames");
        assert!(
            video.len() > 20,
            "subscriber {sub} got {} video frames",
            video.len()
        );
        assert!(video[0], "video starts with a key frame");
    }
    let requests = w.clients[a].keyframe_requests;
    assert!(
        (1..=3).contains(&requests),
        "key frame requests were coalesced: {requests}"
    );

    // Audio levels reach the coordinator.
    assert!(w.events.iter().any(|e| matches!(e, SfuEvent::AudioLevels { levels, .. } if levels.iter().any(|(_, l)| *l > -30.0))));

    // Deselect the video: no more video frames reach subscribers.
    let before = w.clients[b].frames.len();
    w.plan(&[], &[]);
    let ms = play(
        &mut w,
        a,
        audio_mid,
        video_mid,
        ms,
        Duration::from_millis(500),
        90,
        |_| {},
    );
    // Frames already in flight may still land; nothing new is forwarded after that.
    assert!(
        w.clients[b].frames.len() <= before + 5,
        "{} -> {}",
        before,
        w.clients[b].frames.len()
    );

    // Pinning the publisher brings its camera back for this subscriber only.
    let now = w.now;
    w.nodes[0].sfu.set_view(
        now,
        PeerId(b as u64),
        360,
        vec![ParticipantId(a as u64 + 1)],
    );
    let (b_before, c_before) = (w.clients[b].frames.len(), w.clients[c].frames.len());
    play(
        &mut w,
        a,
        audio_mid,
        video_mid,
        ms,
        Duration::from_millis(1500),
        90,
        |_| {},
    );
    assert!(
        w.clients[b].frames.len() > b_before + 20,
        "pinned camera forwarded"
    );
    assert!(
        w.clients[c].frames.len() <= c_before + 5,
        "not pinned by the other subscriber"
    );

    // The publisher leaves: no renegotiation; the slots that carried its tracks are empty.
    let offers_before = w.clients[b].offers;
    let events_before = w.events.len();
    let now = w.now;
    w.nodes[0].sfu.remove_peer(now, PeerId(a as u64));
    w.run_until(Duration::from_secs(2), |w| {
        w.events[events_before..].iter().any(|e| {
            matches!(e, SfuEvent::Slots { peer, slots, .. }
                if *peer == PeerId(b as u64) && slots.iter().all(|s| s.track.is_none()))
        })
    });
    w.step(Duration::from_millis(500));
    assert_eq!(
        w.clients[b].offers, offers_before,
        "no offer for an unpublish"
    );
}

#[test]
fn slots_are_offered_once_and_repointed_as_the_plan_changes() {
    let mut w = World::new();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    let b = w.connected("10.0.0.3:5000", subscriber_offer);
    let offers = w.clients[b].offers;
    assert_eq!(offers, 1, "one offer: the slots");
    let kinds: Vec<MediaKind> = w.server_offered[&b].clone();
    let audio = kinds.iter().filter(|k| **k == MediaKind::Audio).count();
    let video = kinds.iter().filter(|k| **k == MediaKind::Video).count();
    assert_eq!((audio, video), (3, 9), "3 audio slots, 9 video slots");
    // The plan selects the publisher's tracks: slots point at them, the client is told, media
    // flows, and no SDP changed.
    let events_before = w.events.len();
    w.plan(&[1], &[2]);
    w.step(Duration::from_millis(1));
    let mapped = w.events[events_before..]
        .iter()
        .rev()
        .find_map(|e| match e {
            SfuEvent::Slots { peer, slots, .. } if *peer == PeerId(b as u64) => Some(slots.clone()),
            _ => None,
        });
    let mapped = mapped.expect("the slots' mapping");
    let mut carried: Vec<u64> = mapped.iter().filter_map(|s| s.track.map(|t| t.0)).collect();
    carried.sort_unstable();
    assert_eq!(carried, [1, 2], "{mapped:?}");
    play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(2));
    assert!(frames_of(&w, b, MediaKind::Audio).len() > 50);
    assert!(frames_of(&w, b, MediaKind::Video).len() > 20);
    assert_eq!(w.clients[b].offers, offers, "no renegotiation");
}

/// Simulcast layers as a browser sends them: (rid, frame bytes, key frame width, height).
const LAYERS: [(&str, usize, u16, u16); 3] = [
    ("l", 400, 320, 180),
    ("m", 1200, 640, 360),
    ("h", 4500, 1280, 720),
];

fn simulcast_offer(rtc: &mut Rtc) -> (SdpOffer, SdpPendingOffer, Vec<TrackMid>) {
    let mut simulcast = Simulcast::new();
    for (rid, ..) in LAYERS {
        simulcast.add_send_layer(SimulcastLayer::new(rid));
    }
    let mut api = rtc.sdp_api();
    let video = api.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        Some(simulcast),
    );
    let (offer, pending) = api.apply().unwrap();
    (
        offer,
        pending,
        vec![TrackMid {
            mid: video.to_string(),
            source: Some(TrackSource::Camera),
            track: None,
        }],
    )
}

/// One 30 fps frame on every layer; key frames when asked for.
fn send_simulcast(w: &mut World, publisher: usize, frame: u64, video: Mid) {
    let now = w.now;
    let client = &mut w.clients[publisher];
    let key = frame == 0 || std::mem::take(&mut client.keyframe_wanted);
    for (rid, size, width, height) in LAYERS {
        let writer = client.rtc.writer(video).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .unwrap()
            .pt();
        let mut data = if key {
            let [w0, w1] = width.to_le_bytes();
            let [h0, h1] = height.to_le_bytes();
            vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]
        } else {
            vec![0x11, 0x02, 0x00]
        };
        data.resize(size, 0x55);
        writer
            .rid(Rid::from(rid))
            .write(pt, now, MediaTime::from_90khz(frame * 3000), data)
            .unwrap();
    }
}

/// 30 fps simulcast from `publisher` for `secs` seconds from frame `frame`; returns the
/// frame to go on from.
fn play_simulcast(w: &mut World, publisher: usize, video: Mid, mut frame: u64, secs: u64) -> u64 {
    let end = w.now + Duration::from_secs(secs);
    while w.now < end {
        send_simulcast(w, publisher, frame, video);
        frame += 1;
        let next = w.now + Duration::from_millis(33);
        while w.now < next {
            w.step(Duration::from_millis(1));
        }
    }
    frame
}

/// The sizes of the last ten frames a client received.
fn recent_sizes(w: &World, client: usize) -> Vec<usize> {
    w.clients[client]
        .frames
        .iter()
        .rev()
        .take(10)
        .map(|(_, _, size)| *size)
        .collect()
}

/// Asserts that the client switched to frames of `size`, on a key frame.
fn switched_on_a_keyframe(w: &World, client: usize, size: usize) {
    let frames = &w.clients[client].frames;
    let switch = frames
        .iter()
        .position(|(_, _, s)| *s == size)
        .expect("frames of the new layer");
    assert!(
        frames[switch].1,
        "the switch to {size}-byte frames happens on a key frame"
    );
}

fn set_view(w: &mut World, client: usize, max_height: u32) {
    let (now, node) = (w.now, w.clients[client].node);
    w.nodes[node]
        .sfu
        .set_view(now, PeerId(client as u64), max_height, vec![]);
}

#[test]
fn simulcast_layer_follows_the_subscribers_tile() {
    let mut w = World::new();
    let a = w.connected("10.0.0.2:5000", simulcast_offer);
    let mid = announced_mid(&w, TrackSource::Camera);
    w.bind(a, mid, 1);
    w.plan(&[], &[1]);
    let b = w.connected("10.0.0.3:5000", subscriber_offer);

    // Default tile (360 px): the middle layer, whose key frames say 640x360.
    let frame = play_simulcast(&mut w, a, mid, 0, 3);
    assert_eq!(recent_sizes(&w, b), [1200; 10], "expected layer m");

    // A thumbnail: down to the lowest layer, switching on a key frame.
    set_view(&mut w, b, 120);
    play_simulcast(&mut w, a, mid, frame, 2);
    assert_eq!(recent_sizes(&w, b), [400; 10], "expected layer l");
    switched_on_a_keyframe(&w, b, 400);
}

/// The layers of `track` relayed from `from` to `to` since the `since`-th relay datagram.
fn layers_relayed(w: &World, from: &str, to: &str, track: u64, since: usize) -> Vec<String> {
    let mut layers: Vec<String> = w.relay_log[since..]
        .iter()
        .zip(&w.relay_hops[since..])
        .filter_map(|(m, (f, t))| match m {
            RelayMsg::Media(r) if f == from && t == to && r.track == TrackId(track) => {
                Some(r.layer.clone().unwrap_or_default())
            }
            _ => None,
        })
        .collect();
    layers.sort();
    layers.dedup();
    layers
}

#[test]
fn only_the_layers_chosen_downstream_cross_each_relay_hop() {
    let mut w = World::three_nodes();
    let a = w.connected("10.0.0.2:5000", simulcast_offer);
    let mid = announced_mid(&w, TrackSource::Camera);
    w.bind(a, mid, 2);
    // The relay tree: n1/0 → n2/0 → n3/0; a thumbnail in n2/0, a 360 px tile in n3/0.
    w.remote_track(1, 2, a, "n1/0");
    w.remote_track(2, 2, a, "n2/0");
    w.plan(&[], &[2]);
    let b = w.connected_on(1, "10.0.1.2:5000", subscriber_offer);
    set_view(&mut w, b, 120);
    let c = w.connected_on(2, "10.0.2.2:5000", subscriber_offer);

    let frame = play_simulcast(&mut w, a, mid, 0, 3);
    assert_eq!(recent_sizes(&w, b), [400; 10], "b gets layer l");
    assert_eq!(recent_sizes(&w, c), [1200; 10], "c gets layer m");
    // The partition between pulls the union of its own needs and what is pulled from it;
    // the top layer, which nobody shows, crosses no hop.
    let since = w.relay_log.len();
    let frame = play_simulcast(&mut w, a, mid, frame, 1);
    assert_eq!(layers_relayed(&w, "n1/0", "n2/0", 2, since), ["l", "m"]);
    assert_eq!(layers_relayed(&w, "n2/0", "n3/0", 2, since), ["m"]);
    assert_eq!(layers_relayed(&w, "n1/0", "n3/0", 2, 0), [""; 0]);
    assert!(w.relay_log.iter().all(|m| match m {
        RelayMsg::Media(r) => r.layer.as_deref() != Some("h"),
        _ => true,
    }));
    // Downstream chose from the layers upstream announced, heights included.
    assert!(w.relay_log.iter().any(|m| matches!(
        m,
        RelayMsg::Layers { layers, .. }
            if layers.len() == 3 && layers.iter().any(|l| l.height == 720)
    )));

    // c's tile shrinks: n3/0 pulls l, asks for its key frame, switches on it, and m stops
    // crossing both hops.
    let asked = w.clients[a].keyframe_requests;
    set_view(&mut w, c, 120);
    let frame = play_simulcast(&mut w, a, mid, frame, 2);
    assert_eq!(recent_sizes(&w, c), [400; 10], "c now gets layer l");
    switched_on_a_keyframe(&w, c, 400);
    assert!(
        w.clients[a].keyframe_requests > asked,
        "the publisher was asked"
    );
    let since = w.relay_log.len();
    play_simulcast(&mut w, a, mid, frame, 1);
    assert_eq!(layers_relayed(&w, "n1/0", "n2/0", 2, since), ["l"]);
    assert_eq!(layers_relayed(&w, "n2/0", "n3/0", 2, since), ["l"]);
    assert_eq!(recent_sizes(&w, b), [400; 10], "b undisturbed");
}

#[test]
fn nack_and_rtx_repair_a_lossy_downlink() {
    let mut w = World::new();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    w.plan(&[], &[2]);
    let b = w.connected("10.0.0.3:5000", subscriber_offer);

    // One video packet in 15 towards the subscriber is lost (about 7%).
    w.loss = Some(("10.0.0.3:5000".parse().unwrap(), 15));
    let ms = play(
        &mut w,
        a,
        audio_mid,
        video_mid,
        1,
        Duration::from_secs(3),
        1000,
        |_| {},
    );
    w.loss = None;
    let settle = w.now + Duration::from_millis(500);
    while w.now < settle {
        w.step(Duration::from_millis(1));
    }
    let sent = (ms - 1) / 33;
    let got = w.clients[b].frames.len() as u64;
    let keyframes = w.clients[b].frames.iter().filter(|(_, k, _)| *k).count();
    eprintln!(
        "frames {got}/{sent}, key frames {keyframes}, datagrams to the subscriber {}",
        w.sent_to_lossy
    );
    // At least five frames lost on the wire: without repair at most sent - 5 would arrive.
    assert!(w.sent_to_lossy / 15 >= 5, "loss was exercised");
    // Frames before the first key frame are not forwarded; after it, retransmissions must
    // fill every hole without new key frames.
    assert!(
        got + 5 >= sent,
        "only {got} of {sent} frames arrived despite NACK/RTX"
    );
    assert!(
        keyframes <= 2,
        "loss was repaired by retransmission, not by {keyframes} key frames"
    );
}

#[test]
fn mangled_offers_are_refused_without_panics() {
    let now = Instant::now();
    let mut client = Client::new("10.0.0.2:5000", now);
    let (offer, _, tracks) = publisher_offer(&mut client.rtc);
    let sdp = offer.to_sdp_string();
    let lines: Vec<&str> = sdp.split("\r\n").collect();
    let mut sfu = Sfu::new(SfuConfig::new(SFU_ADDR.parse().unwrap()), now);
    let mut rng = SeededRng::new(0x5eed);
    let mut id = 0;
    let mut try_offer = |sfu: &mut Sfu, text: &str| {
        id += 1;
        let new = NewPeer {
            id: PeerId(id),
            meeting: MeetingId::parse("m").unwrap(),
            participant: ParticipantId(id),
            subscribe: true,
        };
        // Accepted or refused, both are fine; a panic is not.
        if sfu.add_peer(now, new, text, &tracks).is_ok() {
            sfu.remove_peer(now, PeerId(id));
        }
    };
    // Every line dropped in turn, and the offer cut after every line.
    for skip in 0..lines.len() {
        let without: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        try_offer(&mut sfu, &without.join("\r\n"));
        try_offer(&mut sfu, &lines[..skip].join("\r\n"));
    }
    // Random bytes flipped, and garbage values in attribute lines.
    for _ in 0..200 {
        let mut bytes = sdp.clone().into_bytes();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = b" :=/0123456789abcxyz-\r\n"[rng.below(23) as usize];
        }
        try_offer(&mut sfu, &String::from_utf8_lossy(&bytes));
    }
    for line in 0..lines.len() {
        let mut mangled: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        if let Some((key, _)) = mangled[line].split_once(':') {
            mangled[line] = format!("{key}:{}", "9".repeat(40));
        }
        try_offer(&mut sfu, &mangled.join("\r\n"));
    }
    assert_eq!(sfu.peer_count(), 0);
}

#[test]
fn garbage_datagrams_do_not_disturb_a_session() {
    let mut w = World::new();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    w.plan(&[1], &[2]);
    let b = w.connected("10.0.0.3:5000", subscriber_offer);

    let mut rng = SeededRng::new(42);
    let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
    // From a known address, from strangers, STUN-looking and DTLS/RTP-looking noise.
    play(
        &mut w,
        a,
        audio_mid,
        video_mid,
        1,
        Duration::from_secs(2),
        90,
        |w| {
            for _ in 0..3 {
                let len = rng.below(1400) as usize;
                let mut junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if let Some(first) = junk.first_mut() {
                    *first = [0x00, 0x01, 0x16, 0x17, 0x80, 0x90][rng.below(6) as usize];
                }
                let from: SocketAddr = if rng.chance(0.5) {
                    "10.0.0.2:5000"
                } else {
                    "10.9.9.9:666"
                }
                .parse()
                .unwrap();
                w.nodes[0].sfu.handle_receive(w.now, from, sfu_addr, &junk);
            }
        },
    );
    let video = w.clients[b]
        .frames
        .iter()
        .filter(|(_, _, size)| *size >= 800)
        .count();
    assert!(
        video > 40,
        "media kept flowing through the noise: {video} video frames"
    );
    assert_eq!(w.nodes[0].sfu.peer_count(), 2, "no session was dropped");
}

/// The frames of `kind` a client received.
fn frames_of(w: &World, client: usize, kind: MediaKind) -> Vec<bool> {
    let c = &w.clients[client];
    c.frames
        .iter()
        .filter(|(m, _, _)| c.rtc.media(*m).is_some_and(|md| md.kind() == kind))
        .map(|(_, k, _)| *k)
        .collect()
}

fn relayed_media(w: &World, track: u64) -> usize {
    w.relay_log
        .iter()
        .filter(|m| matches!(m, RelayMsg::Media(r) if r.track == TrackId(track)))
        .count()
}

/// Relay messages from `from` to `to` that `is` selects.
fn relayed_on(w: &World, from: &str, to: &str, is: impl Fn(&RelayMsg) -> bool) -> usize {
    w.relay_log
        .iter()
        .zip(&w.relay_hops)
        .filter(|(m, (f, t))| f == from && t == to && is(m))
        .count()
}

fn media_of(track: u64) -> impl Fn(&RelayMsg) -> bool {
    move |m| matches!(m, RelayMsg::Media(r) if r.track == TrackId(track))
}

fn keyframe_request(m: &RelayMsg) -> bool {
    matches!(m, RelayMsg::Keyframe { .. })
}

#[test]
fn a_partition_between_relays_what_it_is_pulled_for_and_upstreams_can_change() {
    let mut w = World::three_nodes();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    // The relay tree: n1/0 → n2/0 → n3/0. Nobody subscribes in n2/0.
    for track in [1, 2] {
        w.remote_track(1, track, a, "n1/0");
        w.remote_track(2, track, a, "n2/0");
    }
    w.plan(&[1], &[2]);
    let c = w.connected_on(2, "10.0.2.2:5000", subscriber_offer);
    let ms = play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(3));
    let audio = frames_of(&w, c, MediaKind::Audio).len();
    let video = frames_of(&w, c, MediaKind::Video);
    assert!(audio > 80, "{audio} audio frames through two hops");
    assert!(video.len() > 30, "{} video frames", video.len());
    assert!(video[0], "video starts with a key frame");
    // Each hop carries each packet once; nothing skips the partition between.
    for (from, to) in [("n1/0", "n2/0"), ("n2/0", "n3/0")] {
        let n = relayed_on(&w, from, to, media_of(1));
        assert!((120..=170).contains(&n), "{n} audio packets {from} → {to}");
    }
    assert_eq!(relayed_on(&w, "n1/0", "n3/0", media_of(1)), 0);
    // Key frame requests went up hop by hop, coalesced.
    for (from, to) in [("n3/0", "n2/0"), ("n2/0", "n1/0")] {
        let n = relayed_on(&w, from, to, keyframe_request);
        assert!((1..=3).contains(&n), "{n} key frame requests {from} → {to}");
    }
    assert!(w.clients[a].keyframe_requests >= 1);

    // The tree changes: n3/0 pulls from n1/0 itself. No packet is sent twice meanwhile (n2/0
    // still relays for a while), and n2/0, pulled by nobody, stops relaying.
    let steady = w.clients[c].datagrams_in;
    let ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(2));
    let steady = w.clients[c].datagrams_in - steady;
    for track in [1, 2] {
        w.remote_track(2, track, a, "n1/0");
    }
    let (before, datagrams) = (
        frames_of(&w, c, MediaKind::Audio).len(),
        w.clients[c].datagrams_in,
    );
    let ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(2));
    let changing = w.clients[c].datagrams_in - datagrams;
    assert!(
        changing * 10 < steady * 13,
        "{changing} datagrams while the tree changed, {steady} before"
    );
    let ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(2));
    let got = frames_of(&w, c, MediaKind::Audio).len() - before;
    assert!((170..=215).contains(&got), "{got} audio frames in 4 s");
    assert!(relayed_on(&w, "n1/0", "n3/0", media_of(1)) > 100);
    let between = relayed_on(&w, "n2/0", "n3/0", media_of(1));
    play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(1));
    assert_eq!(relayed_on(&w, "n2/0", "n3/0", media_of(1)), between);
}

#[test]
fn a_video_slot_moves_to_the_next_speaker_without_renegotiation() {
    let mut w = World::new();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    // A second publisher: its microphone and camera are tracks 3 and 4.
    let c = w.connected("10.0.0.5:5000", publisher_offer);
    let mid_of = |w: &World, source: TrackSource| {
        w.events
            .iter()
            .find_map(|e| match e {
                SfuEvent::TrackAdded {
                    peer,
                    mid,
                    source: s,
                    ..
                } if *peer == PeerId(c as u64) && *s == source => Some(Mid::from(mid.as_str())),
                _ => None,
            })
            .expect("announced")
    };
    let (c_audio, c_video) = (
        mid_of(&w, TrackSource::Microphone),
        mid_of(&w, TrackSource::Camera),
    );
    w.bind(c, c_audio, 3);
    w.bind(c, c_video, 4);
    let b = w.connected("10.0.0.3:5000", subscriber_offer);
    w.plan(&[1], &[2]);
    let ms = play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(2));
    let video = |w: &World| -> Vec<(Mid, bool)> {
        let client = &w.clients[b];
        client
            .frames
            .iter()
            .filter(|(m, _, _)| {
                client
                    .rtc
                    .media(*m)
                    .is_some_and(|md| md.kind() == MediaKind::Video)
            })
            .map(|(m, k, _)| (*m, *k))
            .collect()
    };
    let before = video(&w);
    let slot = before.last().expect("a's video").0;
    let offers = w.clients[b].offers;
    // The other one speaks: the plan names its camera; the slot that showed a's shows it.
    w.plan(&[3], &[4]);
    play_steady(&mut w, c, c_audio, c_video, ms, Duration::from_secs(2));
    let after = &video(&w)[before.len()..];
    assert!(after.len() > 20, "{} frames after the switch", after.len());
    assert!(after.iter().all(|(m, _)| *m == slot), "on the same slot");
    assert!(after[0].1, "the switch starts with a key frame");
    assert_eq!(w.clients[b].offers, offers, "no renegotiation");
}

#[test]
fn an_offer_lost_with_its_signalling_connection_is_sent_again() {
    let mut w = World::new();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    w.plan(&[1], &[2]);
    // The subscriber's slots are offered on a connection that drops.
    w.hold_offers = true;
    let b = w.connected("10.0.0.3:5000", subscriber_offer);
    assert_eq!(w.held_offers.len(), 1, "one offer to the subscriber");
    let lost = w.held_offers.remove(0);
    w.step(Duration::from_millis(5));
    assert!(
        w.held_offers.is_empty(),
        "no new offer while one is in flight"
    );
    // Its client comes back on another connection: the same offer again, which it answers.
    w.nodes[0].sfu.resync(PeerId(b as u64));
    w.step(Duration::from_millis(5));
    assert_eq!(w.held_offers.len(), 1);
    let (node, peer, sdp) = w.held_offers.remove(0);
    assert_eq!((peer, &sdp), (lost.1, &lost.2), "the very offer");
    w.hold_offers = false;
    w.answer(node, peer, &sdp);
    play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(2));
    assert!(frames_of(&w, b, MediaKind::Audio).len() > 50);
    assert!(frames_of(&w, b, MediaKind::Video).len() > 20);
    // Nothing pending any more: nothing to send again.
    w.nodes[0].sfu.resync(PeerId(b as u64));
    w.step(Duration::from_millis(5));
    assert!(w.held_offers.is_empty());
}

#[test]
fn a_partition_opened_ahead_pulls_the_plan_before_its_first_subscriber() {
    let mut w = World::two_nodes();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    w.remote_track(1, 1, a, "n1/0");
    w.remote_track(1, 2, a, "n1/0");
    w.plan(&[1], &[2]);
    let mut ms = play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(2));
    assert_eq!(relayed_media(&w, 1), 0, "nobody in n2/0: nothing pulled");
    let (now, meeting) = (w.now, w.meeting.clone());
    w.nodes[1].sfu.set_warm(now, &meeting, true);
    ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(1));
    assert!(
        relayed_media(&w, 1) > 40,
        "opened ahead: the plan's audio comes"
    );
    assert!(relayed_media(&w, 2) > 20, "and its video");
    // And keeps coming, pulled again and again though nobody is in the partition yet.
    ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(4));
    let before = relayed_media(&w, 1);
    ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(1));
    assert!(relayed_media(&w, 1) - before > 40, "still pulled after 5 s");
    let (now, meeting) = (w.now, w.meeting.clone());
    w.nodes[1].sfu.set_warm(now, &meeting, false);
    ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(4));
    let stopped = relayed_media(&w, 1);
    play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(1));
    assert_eq!(relayed_media(&w, 1), stopped, "closed: no longer pulled");
}

#[test]
fn a_track_published_on_one_node_reaches_subscribers_on_another_once_pulled() {
    let mut w = World::two_nodes();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    // n2 learns of the tracks as its link does from the coordinator: published on n1.
    w.remote_track(1, 1, a, "n1/0");
    w.remote_track(1, 2, a, "n1/0");
    w.plan(&[1], &[2]);
    let b = w.join_on(1, "10.0.1.2:5000", subscriber_offer);
    let c = w.join_on(1, "10.0.1.3:5000", subscriber_offer);
    w.run_until(Duration::from_secs(5), |w| {
        w.clients[b].connected && w.clients[c].connected
    });

    // Key frames are rare: the subscribers on n2 must ask for one, through n1.
    let ms = play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(3));
    for sub in [b, c] {
        let audio = frames_of(&w, sub, MediaKind::Audio).len();
        let video = frames_of(&w, sub, MediaKind::Video);
        assert!(
            audio > 80,
            "subscriber {sub} on n2 got {audio} audio frames"
        );
        assert!(
            video.len() > 30,
            "subscriber {sub} on n2 got {} video frames",
            video.len()
        );
        assert!(video[0], "video starts with a key frame");
    }
    let asked = w
        .relay_log
        .iter()
        .filter(|m| matches!(m, RelayMsg::Keyframe { .. }))
        .count();
    assert!(
        (1..=3).contains(&asked),
        "n2 asked n1 for key frames, coalesced: {asked}"
    );
    assert!(
        w.clients[a].keyframe_requests >= 1,
        "the publisher was asked"
    );
    // Pulled once for the node, not once per subscriber: about one relay datagram per
    // packet the publisher sent (50 audio packets a second).
    let audio_relayed = relayed_media(&w, 1);
    assert!(
        (120..=170).contains(&audio_relayed),
        "{audio_relayed} audio packets relayed in 3 s"
    );
    assert!(w.relay_refused.is_empty(), "{:?}", w.relay_refused);

    // Nobody on n2 needs the video any more: n2 stops pulling it and n1 stops sending.
    w.plan(&[1], &[]);
    let ms = play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(4));
    let before = relayed_media(&w, 2);
    play_steady(&mut w, a, audio_mid, video_mid, ms, Duration::from_secs(1));
    assert_eq!(
        relayed_media(&w, 2),
        before,
        "no video relayed once unpulled"
    );
    assert!(relayed_media(&w, 1) > audio_relayed, "the audio goes on");
}

#[test]
fn relay_datagrams_from_outside_altered_or_played_again_are_refused() {
    let mut w = World::two_nodes();
    let (a, audio_mid, video_mid) = w.publisher_with_tracks();
    w.remote_track(1, 1, a, "n1/0");
    w.plan(&[1], &[]);
    let b = w.connected_on(1, "10.0.1.2:5000", subscriber_offer);
    play_steady(&mut w, a, audio_mid, video_mid, 1, Duration::from_secs(1));
    let got = frames_of(&w, b, MediaKind::Audio).len();
    assert!(got > 20, "{got}");

    // A stranger with another key, the same datagram altered, and one sent twice.
    let media = w
        .relay_log
        .iter()
        .find(|m| matches!(m, RelayMsg::Media(_)))
        .cloned()
        .expect("media relayed");
    let mut stranger = RelaySealer::new("n1/0", b"not the cluster's key", u64::MAX / 2);
    let forged = stranger.seal(&media);
    let mut altered = w.nodes[0].sealer.seal(&media);
    let at = altered.len() - 20;
    altered[at] ^= 1;
    let replayed = w.nodes[0].sealer.seal(&media);
    for datagram in [forged, altered, replayed.clone(), replayed] {
        w.relays.push_back(("n2/0".into(), datagram));
    }
    w.step(Duration::from_millis(1));
    assert_eq!(w.relay_refused.len(), 3, "{:?}", w.relay_refused);
    assert!(matches!(w.relay_refused[0], RelayError::Forged));
    assert!(matches!(w.relay_refused[1], RelayError::Forged));
    assert!(matches!(w.relay_refused[2], RelayError::Replayed { .. }));
    // Only the upstream relays a track: n2 does not take n1's track from n3.
    let mut n3 = RelaySealer::new("n3/0", RELAY_KEY, 0);
    let before = frames_of(&w, b, MediaKind::Audio).len();
    for _ in 0..50 {
        w.relays.push_back(("n2/0".into(), n3.seal(&media)));
    }
    w.step(Duration::from_millis(1));
    assert_eq!(frames_of(&w, b, MediaKind::Audio).len(), before);
    // The session goes on.
    play_steady(
        &mut w,
        a,
        audio_mid,
        video_mid,
        2000,
        Duration::from_secs(1),
    );
    assert!(frames_of(&w, b, MediaKind::Audio).len() > got + 20);
}
