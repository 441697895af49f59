//! Synthetic participants that speak myriad's signalling and real WebRTC (`str0m` as the
//! client: ICE, DTLS-SRTP, RTCP with receiver reports and NACK), one UDP socket each.
//!
//! A publisher sends the encoded clip at its real rate (three VP8 simulcast layers, Opus with
//! an audio level) and jumps to the next key frame when asked for one. A subscriber counts
//! what it receives, measures one-way delay of video frames (the bench runs both ends, so the
//! send time of each frame is known) and asks for a key frame after a loss, as a browser does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use myriad_proto::{ClientMsg, ServerMsg, TrackId, TrackMid, TrackSource, PROTOCOL_VERSION};
use serde_json::json;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Rid, Simulcast,
    SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::janus::JanusHandle;
use crate::media::{Clip, FPS, LAYERS};
use crate::signal_client::{connect, Ws};

/// What every participant of one run adds to.
#[derive(Debug, Default)]
pub struct Counters {
    /// RTP packets in the frames subscribers received.
    pub packets: AtomicU64,
    pub video_frames: AtomicU64,
    pub keyframes: AtomicU64,
    pub audio_frames: AtomicU64,
    /// Within the measured window, per receiving m-line: packets of the frames that arrived
    /// (after repair), and those missing between the first and last sequence number seen.
    pub window_packets: AtomicU64,
    pub lost_packets: AtomicU64,
    /// The height of the last video key frame each subscriber received: which simulcast
    /// layer it was getting.
    pub video_heights: Mutex<Vec<u32>>,
    pub connected: AtomicU64,
    /// Subscribers that have decoded at least one video key frame.
    pub receiving_video: AtomicU64,
    /// While set, subscribers record delays.
    pub measuring: AtomicBool,
    pub delays: crate::counting::Delays,
    /// Send time of each video frame, by content hash, written by publishers.
    pub sent: Mutex<HashMap<u64, Instant>>,
    pub stop: AtomicBool,
    /// Participants whose run ended in an error, and the first such error.
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// Janus: the publisher's feed id, for subscribers to join.
    pub janus_feed: Mutex<Option<u64>>,
    /// (subscriber, when) of every video key frame that arrived on another m-line than the
    /// subscriber's previous video: the moments its view switched to another publisher.
    pub switches: Mutex<Vec<(usize, Instant)>>,
    /// Numbers subscribers, for `switches`.
    pub next_subscriber: AtomicU64,
}

impl Counters {
    pub fn record_failure(&self, error: &anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("{error:#}"));
        }
    }
}

#[derive(Debug, Clone)]
pub enum Role {
    /// Sends the clip; speaks (a loud audio level) always, or in its turns of a schedule.
    Publisher(Arc<Clip>, Option<Turn>),
    Subscriber,
}

/// Publishers taking turns: the one at `index` speaks while `schedule` says so.
#[derive(Debug, Clone)]
pub struct Turn {
    pub index: usize,
    pub schedule: Arc<Schedule>,
}

/// Who speaks when: turns of `turn` length in order, from `start` (set once all are in).
#[derive(Debug)]
pub struct Schedule {
    pub start: Mutex<Option<Instant>>,
    pub turn: Duration,
    pub speakers: usize,
}

impl Schedule {
    pub fn speaker_at(&self, now: Instant) -> Option<usize> {
        let start = (*self.start.lock().ok()?)?;
        let turns = now.checked_duration_since(start)?.as_nanos() / self.turn.as_nanos().max(1);
        Some((turns % self.speakers.max(1) as u128) as usize)
    }
}

/// RFC 6464 levels the publishers send: speech and near silence, in -dBov.
const SPEAKING_DBOV: i8 = -20;
const SILENT_DBOV: i8 = -110;

fn content_hash(data: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// Where participants connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// myriad's WebSocket signalling URL; each participant brings an access token.
    Myriad { ws_url: String, local_ip: IpAddr },
    /// Janus' HTTP API URL and the VideoRoom room.
    Janus {
        url: String,
        room: u64,
        local_ip: IpAddr,
    },
}

/// Runs one participant until `counters.stop`; failures are counted, not returned.
pub async fn run(target: Target, token: String, role: Role, counters: Arc<Counters>) {
    let res = match target {
        Target::Myriad { ws_url, local_ip } => {
            participate(ws_url, local_ip, token, role, counters.clone()).await
        }
        Target::Janus {
            url,
            room,
            local_ip,
        } => participate_janus(url, room, local_ip, role, counters.clone()).await,
    };
    if let Err(e) = res {
        counters.record_failure(&e);
    }
}

/// A client `Rtc` with one host candidate on a fresh socket.
async fn new_rtc(local_ip: IpAddr) -> anyhow::Result<(Rtc, UdpSocket, SocketAddr)> {
    let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(sdp_err)?);
    Ok((rtc, socket, local))
}

type PublisherOffer = (SdpOffer, SdpPendingOffer, Vec<TrackMid>, Mid, Mid);

/// The publisher's offer: Opus and three-layer VP8 simulcast, both send-only.
fn publisher_offer(rtc: &mut Rtc) -> anyhow::Result<PublisherOffer> {
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let mut simulcast = Simulcast::new();
    for (rid, ..) in LAYERS {
        simulcast.add_send_layer(SimulcastLayer::new(rid));
    }
    let video = api.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        Some(simulcast),
    );
    let mids = vec![
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
    let (offer, pending) = api.apply().ok_or_else(|| anyhow!("nothing to offer"))?;
    Ok((offer, pending, mids, audio, video))
}

fn sdp_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

async fn participate(
    ws_url: String,
    local_ip: IpAddr,
    token: String,
    role: Role,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let (mut ws, _) = connect(&ws_url).await?;
    let (mut rtc, socket, local) = new_rtc(local_ip).await?;
    send(
        &mut ws,
        &ClientMsg::Join {
            v: PROTOCOL_VERSION,
            token,
            resume: None,
        },
    )
    .await?;
    loop {
        match recv(&mut ws).await? {
            ServerMsg::Welcome { .. } => break,
            ServerMsg::Error { code, message } => bail!("join refused: {code:?}: {message}"),
            _ => {}
        }
    }
    let (offer, pending, mids, audio_mid, video_mid) = match &role {
        Role::Publisher(..) => {
            let (offer, pending, mids, audio, video) = publisher_offer(&mut rtc)?;
            (offer, pending, mids, Some(audio), Some(video))
        }
        Role::Subscriber => {
            let mut api = rtc.sdp_api();
            api.add_channel("myriad".into());
            let (offer, pending) = api.apply().ok_or_else(|| anyhow!("nothing to offer"))?;
            (offer, pending, Vec::new(), None, None)
        }
    };
    send(
        &mut ws,
        &ClientMsg::Offer {
            sdp: offer.to_sdp_string(),
            tracks: mids,
            restart: false,
        },
    )
    .await?;
    let answer = loop {
        match recv(&mut ws).await? {
            ServerMsg::Answer { sdp } => break sdp,
            ServerMsg::Error { code, message } => bail!("offer refused: {code:?}: {message}"),
            _ => {}
        }
    };
    rtc.sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&answer).map_err(sdp_err)?,
        )
        .map_err(sdp_err)?;
    if matches!(role, Role::Subscriber) {
        // Tiles as tall as the layer every subscriber of every target asks for.
        let max_height = LAYERS[SUBSCRIBER_LAYER].2;
        send(
            &mut ws,
            &ClientMsg::View {
                max_height,
                pinned: Vec::new(),
            },
        )
        .await?;
    }
    Peer::new(rtc, socket, local, role, counters, audio_mid, video_mid)
        .drive(Some(&mut ws))
        .await
}

/// The simulcast layer subscribers ask for (an index into [`LAYERS`], lowest first), the same
/// for myriad (by tile height) and Janus (by `substream`), so both do the same work.
pub const SUBSCRIBER_LAYER: usize = 1;

/// The same participant against Janus' VideoRoom: the publisher joins and configures with
/// its offer; a subscriber joins the publisher's feed, answers Janus' offer and starts.
async fn participate_janus(
    url: String,
    room: u64,
    local_ip: IpAddr,
    role: Role,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let mut janus = JanusHandle::attach(&url).await?;
    let _keepalive = AbortOnDrop(janus.keepalive());
    let (mut rtc, socket, local) = new_rtc(local_ip).await?;
    match &role {
        Role::Publisher(..) => {
            let join = json!({ "request": "join", "ptype": "publisher", "room": room, "display": "publisher" });
            janus.message(join, None).await?;
            let feed = loop {
                let ev = janus.next_event().await?;
                let data = &ev["plugindata"]["data"];
                if data["videoroom"] == "joined" {
                    break data["id"].as_u64().context("publisher id")?;
                }
                if data["error"].is_string() {
                    bail!("janus join: {}", data["error"]);
                }
            };
            let (offer, pending, _, audio, video) = publisher_offer(&mut rtc)?;
            let jsep = json!({ "type": "offer", "sdp": offer.to_sdp_string() });
            janus
                .message(
                    json!({ "request": "configure", "audio": true, "video": true }),
                    Some(jsep),
                )
                .await?;
            janus.candidates_done().await?;
            let (_, answer) = janus.wait_jsep().await?;
            let sdp = answer["sdp"].as_str().context("answer sdp")?;
            rtc.sdp_api()
                .accept_answer(pending, SdpAnswer::from_sdp_string(sdp).map_err(sdp_err)?)
                .map_err(sdp_err)?;
            if let Ok(mut f) = counters.janus_feed.lock() {
                *f = Some(feed);
            }
            Peer::new(rtc, socket, local, role, counters, Some(audio), Some(video))
                .drive(None)
                .await
        }
        Role::Subscriber => {
            let feed = counters
                .janus_feed
                .lock()
                .ok()
                .and_then(|f| *f)
                .context("no publisher feed yet")?;
            // Janus numbers substreams from the lowest quality up, as `LAYERS` does.
            let stream = json!({ "feed": feed, "substream": SUBSCRIBER_LAYER });
            let join = json!({ "request": "join", "ptype": "subscriber", "room": room, "streams": [stream] });
            janus.message(join, None).await?;
            let (_, offer) = janus.wait_jsep().await?;
            let sdp = offer["sdp"].as_str().context("offer sdp")?;
            let offer = SdpOffer::from_sdp_string(sdp).map_err(sdp_err)?;
            let answer = rtc.sdp_api().accept_offer(offer).map_err(sdp_err)?;
            let jsep = json!({ "type": "answer", "sdp": answer.to_sdp_string() });
            janus
                .message(json!({ "request": "start" }), Some(jsep))
                .await?;
            janus.candidates_done().await?;
            Peer::new(rtc, socket, local, role, counters, None, None)
                .drive(None)
                .await
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> anyhow::Result<()> {
    ws.send(Message::Text(serde_json::to_string(msg)?.into()))
        .await?;
    Ok(())
}

/// The next signalling message, or never when there is no signalling connection to watch.
async fn next_ws(
    ws: &mut Option<&mut Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn recv(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(_))) | None => bail!("signalling closed"),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(_)) => {}
        }
    }
}

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    role: Role,
    counters: Arc<Counters>,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    /// Position in the clip.
    frame: usize,
    /// Frames sent so far (the RTP timeline).
    sent_frames: u64,
    audio_packet: u64,
    next_video: Instant,
    next_audio: Instant,
    connected: bool,
    got_keyframe: bool,
    /// Per receiving mid, within the measured window: the first and last sequence numbers
    /// seen and the packets received.
    window: HashMap<Mid, SeqWindow>,
    /// Height of the last video key frame received.
    video_height: Option<u32>,
    /// This subscriber's number.
    subscriber: usize,
    /// Which meeting track each receiving slot carries, and the slots re-pointed since their
    /// last key frame (a key frame there is the new speaker's first picture).
    slot_tracks: HashMap<Mid, Option<TrackId>>,
    switching: HashSet<Mid>,
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        rtc: Rtc,
        socket: UdpSocket,
        local: SocketAddr,
        role: Role,
        counters: Arc<Counters>,
        audio_mid: Option<Mid>,
        video_mid: Option<Mid>,
    ) -> Self {
        let now = Instant::now();
        let subscriber = counters.next_subscriber.fetch_add(1, Ordering::Relaxed) as usize;
        Self {
            rtc,
            socket,
            local,
            role,
            counters,
            audio_mid,
            video_mid,
            frame: 0,
            sent_frames: 0,
            audio_packet: 0,
            next_video: now,
            next_audio: now,
            connected: false,
            got_keyframe: false,
            window: HashMap::new(),
            video_height: None,
            subscriber,
            slot_tracks: HashMap::new(),
            switching: HashSet::new(),
        }
    }

    /// Runs the media until `counters.stop`; with myriad, also answers server offers.
    async fn drive(mut self, mut ws: Option<&mut Ws>) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        while !self.counters.stop.load(Ordering::Relaxed) {
            let timeout = self.poll()?;
            let now = Instant::now();
            let mut deadline = timeout.min(now + Duration::from_millis(100));
            if self.connected && matches!(self.role, Role::Publisher(..)) {
                deadline = deadline.min(self.next_video).min(self.next_audio);
            }
            tokio::select! {
                res = self.socket.recv_from(&mut buf) => {
                    let (n, source) = res?;
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        self.rtc.handle_input(Input::Receive(Instant::now(), receive))?;
                    }
                }
                msg = next_ws(&mut ws) => match msg {
                    Some(Ok(Message::Text(t))) => {
                        match (serde_json::from_str(&t), ws.as_mut()) {
                            (Ok(ServerMsg::Offer { sdp, tracks }), Some(ws)) => {
                                self.slots(&tracks, false);
                                let offer = SdpOffer::from_sdp_string(&sdp).map_err(sdp_err)?;
                                let answer = self.rtc.sdp_api().accept_offer(offer).map_err(sdp_err)?;
                                send(ws, &ClientMsg::Answer { sdp: answer.to_sdp_string() }).await?;
                            }
                            (Ok(ServerMsg::Slots { slots }), _) => self.slots(&slots, true),
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => bail!("signalling closed"),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.rtc.handle_input(Input::Timeout(now))?;
                    if self.connected {
                        self.send_media(now)?;
                    }
                }
            }
        }
        if let Some(ws) = ws {
            let _ = send(ws, &ClientMsg::Leave).await;
        }
        Ok(())
    }

    /// The server says which track each slot carries (`changes`: after the first time).
    fn slots(&mut self, slots: &[TrackMid], changes: bool) {
        for s in slots {
            let mid = Mid::from(s.mid.as_str());
            let before = self.slot_tracks.insert(mid, s.track);
            if changes && s.track.is_some() && before != Some(s.track) {
                self.switching.insert(mid);
            }
        }
    }

    /// Drains the Rtc to its next timeout.
    fn poll(&mut self) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => self.handle_event(e),
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.counters.connected.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                self.next_audio = now;
                self.next_video = now;
            }
            Event::KeyframeRequest(_) => {
                if let Role::Publisher(clip, _) = &self.role {
                    // Jump to the clip's next key frame, as an encoder would make one now.
                    let frames = clip.video[0].len();
                    let next = (1..=frames)
                        .map(|i| (self.frame + i) % frames)
                        .find(|i| clip.video.iter().all(|layer| layer[*i].keyframe));
                    if let Some(i) = next {
                        self.frame = i;
                    }
                }
            }
            Event::MediaData(data) => {
                let c = &self.counters;
                let first: u64 = **data.seq_range.start();
                let last: u64 = **data.seq_range.end();
                let packets = last.saturating_sub(first) + 1;
                c.packets.fetch_add(packets, Ordering::Relaxed);
                if c.measuring.load(Ordering::Relaxed) {
                    self.window
                        .entry(data.mid)
                        .or_insert_with(|| SeqWindow::new(first))
                        .add(first, last);
                }
                let video = self
                    .rtc
                    .media(data.mid)
                    .is_some_and(|m| m.kind() == MediaKind::Video);
                if !video {
                    c.audio_frames.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                c.video_frames.fetch_add(1, Ordering::Relaxed);
                let viewer = matches!(self.role, Role::Subscriber);
                if viewer && data.is_keyframe() && self.switching.remove(&data.mid) {
                    if let Ok(mut s) = c.switches.lock() {
                        s.push((self.subscriber, Instant::now()));
                    }
                }
                if data.is_keyframe() {
                    if let Some(height) = vp8_keyframe_height(&data.data) {
                        self.video_height = Some(height);
                    }
                    c.keyframes.fetch_add(1, Ordering::Relaxed);
                    if !self.got_keyframe {
                        self.got_keyframe = true;
                        c.receiving_video.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !data.contiguous {
                    if let Some(mut w) = self.rtc.writer(data.mid) {
                        let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
                    }
                }
                if c.measuring.load(Ordering::Relaxed) {
                    let sent = c
                        .sent
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&content_hash(&data.data)).copied());
                    if let Some(sent) = sent {
                        c.delays.since(sent);
                    }
                }
            }
            _ => {}
        }
    }

    fn send_media(&mut self, now: Instant) -> anyhow::Result<()> {
        let Role::Publisher(clip, turn) = &self.role else {
            return Ok(());
        };
        let clip = clip.clone();
        let level = match turn {
            Some(t) if t.schedule.speaker_at(now) != Some(t.index) => SILENT_DBOV,
            _ => SPEAKING_DBOV,
        };
        if now >= self.next_audio {
            if let Some(mid) = self.audio_mid {
                let packet = &clip.audio[self.audio_packet as usize % clip.audio.len()];
                let writer = self.rtc.writer(mid).context("audio writer")?;
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
                    .context("opus negotiated")?;
                let time = MediaTime::new(self.audio_packet * 960, Frequency::FORTY_EIGHT_KHZ);
                writer.audio_level(level, level == SPEAKING_DBOV).write(
                    pt,
                    now,
                    time,
                    packet.clone(),
                )?;
            }
            self.audio_packet += 1;
            self.next_audio += Duration::from_millis(20);
        }
        if now >= self.next_video {
            if let Some(mid) = self.video_mid {
                let time = MediaTime::from_90khz(self.sent_frames * (90_000 / FPS as u64));
                let mut sent = self.counters.sent.lock().map_err(|_| anyhow!("poisoned"))?;
                for (layer, (rid, ..)) in LAYERS.iter().enumerate() {
                    let frame = &clip.video[layer][self.frame];
                    let writer = self.rtc.writer(mid).context("video writer")?;
                    let pt = writer
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::Vp8)
                        .map(|p| p.pt())
                        .context("vp8 negotiated")?;
                    sent.insert(content_hash(&frame.data), now);
                    writer
                        .rid(Rid::from(*rid))
                        .write(pt, now, time, frame.data.clone())?;
                }
            }
            self.frame = (self.frame + 1) % clip.video[0].len();
            self.sent_frames += 1;
            self.next_video += Duration::from_micros(1_000_000 / FPS as u64);
        }
        Ok(())
    }
}

/// The RTP sequence numbers one m-line delivered within the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeqWindow {
    first: u64,
    last: u64,
    received: u64,
}

impl SeqWindow {
    fn new(first: u64) -> Self {
        Self {
            first,
            last: first,
            received: 0,
        }
    }

    /// A frame made of the packets `first..=last` arrived whole.
    fn add(&mut self, first: u64, last: u64) {
        self.first = self.first.min(first);
        self.last = self.last.max(last);
        self.received += last.saturating_sub(first) + 1;
    }

    /// Packets between the first and the last seen that never made it into a frame.
    fn lost(&self) -> u64 {
        (self.last - self.first + 1).saturating_sub(self.received)
    }
}

/// The height of a VP8 key frame (RFC 6386 §9.1: a 3-byte frame tag whose lowest bit is 0 for
/// a key frame, the start code, then 14-bit width and height).
fn vp8_keyframe_height(frame: &[u8]) -> Option<u32> {
    match frame {
        [tag, _, _, 0x9d, 0x01, 0x2a, _, _, h0, h1, ..] if tag & 1 == 0 => {
            Some(u32::from(u16::from_le_bytes([*h0, *h1]) & 0x3fff))
        }
        _ => None,
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let c = &self.counters;
        for w in self.window.values() {
            c.window_packets.fetch_add(w.received, Ordering::Relaxed);
            c.lost_packets.fetch_add(w.lost(), Ordering::Relaxed);
        }
        if let (Some(height), Ok(mut heights)) = (self.video_height, c.video_heights.lock()) {
            heights.push(height);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_what_the_window_skipped() {
        let mut w = SeqWindow::new(100);
        w.add(100, 102);
        w.add(106, 106); // 103..=105 never arrived
        w.add(103, 103); // late, after repair
        assert_eq!((w.first, w.last, w.received, w.lost()), (100, 106, 5, 2));
    }

    #[test]
    fn key_frame_heights() {
        let key = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
        assert_eq!(vp8_keyframe_height(&key), Some(360));
        let inter = [0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
        assert_eq!(vp8_keyframe_height(&inter), None);
        assert_eq!(vp8_keyframe_height(&[0x10]), None);
    }
}
