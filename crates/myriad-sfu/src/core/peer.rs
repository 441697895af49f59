//! One participant's WebRTC connection: its `Rtc`, what it publishes, the slots it receives
//! on, and the server side of SDP negotiation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use myriad_proto::{MeetingId, ParticipantId, TrackId, TrackMid, TrackSource};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::Rtc;

use super::forward::{Forwarder, Layer};
use super::SfuError;

/// A track this peer publishes.
#[derive(Debug)]
pub struct InTrack {
    pub kind: MediaKind,
    pub source: TrackSource,
    /// Set once the meeting accepted the publication.
    pub track: Option<TrackId>,
    pub layers: Vec<LayerStat>,
    /// Bytes per layer are turned into bitrates at each layer pass.
    pub stats_since: Instant,
}

#[derive(Debug, Clone)]
pub struct LayerStat {
    pub layer: Layer,
    pub bytes: u64,
    pub bitrate_bps: u64,
    pub height: u32,
    pub last_seen: Instant,
    /// Last upstream key frame request for this layer (coalescing).
    pub keyframe_requested: Option<Instant>,
}

impl LayerStat {
    pub fn new(layer: Layer, now: Instant) -> Self {
        Self {
            layer,
            bytes: 0,
            bitrate_bps: 0,
            height: 0,
            last_seen: now,
            keyframe_requested: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
}

impl OutState {
    /// The slot's mid, once offered.
    pub fn mid(self) -> Option<Mid> {
        match self {
            OutState::ToOpen => None,
            OutState::Negotiating(m) | OutState::Open(m) => Some(m),
        }
    }
}

/// A slot this peer receives on: an m-line of one kind that carries one meeting track at a
/// time, or none.
#[derive(Debug)]
pub struct OutSlot {
    pub kind: MediaKind,
    pub track: Option<TrackId>,
    pub state: OutState,
    pub fwd: Forwarder,
    /// The publisher's payload type and the one this subscriber negotiated for its codec.
    pt_map: Option<(Pt, Pt)>,
}

impl OutSlot {
    pub fn new(kind: MediaKind) -> Self {
        Self {
            kind,
            track: None,
            state: OutState::ToOpen,
            fwd: Forwarder::default(),
            pt_map: None,
        }
    }

    /// Points the slot at `track` (none: carries nothing); the forwarder waits for the new
    /// track's next switch point and continues the same outgoing stream.
    pub fn point(&mut self, track: Option<TrackId>) {
        if self.track != track {
            self.track = track;
            self.fwd.set_target(None);
        }
    }

    /// This subscriber's payload type for the publisher's `source` one, found by `find` once.
    pub fn payload_type(&mut self, source: Pt, find: impl FnOnce() -> Option<Pt>) -> Option<Pt> {
        match self.pt_map {
            Some((from, to)) if from == source => Some(to),
            _ => {
                let to = find()?;
                self.pt_map = Some((source, to));
                Some(to)
            }
        }
    }
}

/// What the subscriber shows.
#[derive(Debug, Clone)]
pub struct View {
    pub max_height: u32,
    pub pinned: Vec<ParticipantId>,
}

pub struct Peer {
    pub meeting: MeetingId,
    pub participant: ParticipantId,
    pub rtc: Rtc,
    pub ufrag: String,
    pub addrs: Vec<SocketAddr>,
    pub timeout: Instant,
    /// Sources the client declared per mid in its offers.
    pub declared: HashMap<String, TrackSource>,
    pub ins: HashMap<Mid, InTrack>,
    /// Audio slots first, then video ones.
    pub outs: Vec<OutSlot>,
    /// The server offer in flight, and what was sent (to send again to a client whose
    /// signalling connection changed before it answered).
    pending: Option<(SdpPendingOffer, String, Vec<TrackMid>)>,
    pub view: View,
    pub bwe_bps: u64,
    /// May receive the meeting's media.
    pub subscribe: bool,
    /// Loudest audio level (dBov) since the last report.
    pub level_dbov: Option<i8>,
    /// Queued to be polled.
    pub dirty: bool,
}

impl Peer {
    pub fn new(
        meeting: MeetingId,
        participant: ParticipantId,
        rtc: Rtc,
        ufrag: String,
        now: Instant,
        bwe_bps: u64,
    ) -> Self {
        Self {
            meeting,
            participant,
            rtc,
            ufrag,
            addrs: Vec::new(),
            timeout: now,
            declared: HashMap::new(),
            ins: HashMap::new(),
            outs: Vec::new(),
            pending: None,
            view: View {
                max_height: 360,
                pinned: Vec::new(),
            },
            bwe_bps,
            subscribe: false,
            level_dbov: None,
            dirty: false,
        }
    }

    pub fn declare(&mut self, tracks: &[TrackMid]) {
        for t in tracks {
            if let Some(source) = t.source {
                if self.declared.len() < MAX_DECLARED || self.declared.contains_key(&t.mid) {
                    self.declared.insert(t.mid.clone(), source);
                }
            }
        }
    }

    /// The client offers (it changed what it publishes). Any server offer in flight is
    /// abandoned (the server is the polite side) and redone after this answer.
    pub fn accept_offer(&mut self, offer: SdpOffer) -> Result<SdpAnswer, SfuError> {
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        if self.pending.take().is_some() {
            for out in &mut self.outs {
                if let OutState::Negotiating(_) = out.state {
                    out.state = OutState::ToOpen;
                }
            }
        }
        Ok(answer)
    }

    pub fn accept_answer(&mut self, answer: SdpAnswer) -> Result<(), SfuError> {
        let (pending, _, _) = self.pending.take().ok_or(SfuError::NoOfferPending)?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        for out in &mut self.outs {
            if let OutState::Negotiating(m) = out.state {
                out.state = OutState::Open(m);
                // Forwarded video goes out as it arrives, as audio does: the publisher paced
                // it already, and holding it back here only adds delay (and timer wakeups).
                if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(m, None) {
                    stream.set_unpaced(true);
                }
            }
        }
        Ok(())
    }

    /// The server offer waiting for the client's answer: its SDP and what its mids carry.
    pub fn pending_offer(&self) -> Option<(String, Vec<TrackMid>)> {
        self.pending
            .as_ref()
            .map(|(_, sdp, tracks)| (sdp.clone(), tracks.clone()))
    }

    /// Creates a server offer for the slots not offered yet (all of them, right after the
    /// peer connects; after a rollback, those that were in flight), unless one is in flight.
    pub fn negotiate(&mut self) -> Option<(String, Vec<TrackMid>)> {
        // Called after every drain of this peer: leave at once when nothing is to change.
        if self.pending.is_some() || !self.outs.iter().any(|o| o.state == OutState::ToOpen) {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        let mut mids = Vec::new();
        for (i, out) in self.outs.iter_mut().enumerate() {
            if out.state != OutState::ToOpen {
                continue;
            }
            let mid = change.add_media(
                out.kind,
                Direction::SendOnly,
                Some("myriad".to_owned()),
                Some(format!("slot{i}")),
                None,
            );
            out.state = OutState::Negotiating(mid);
            mids.push(TrackMid {
                mid: mid.to_string(),
                source: None,
                track: out.track,
            });
        }
        if !change.has_changes() {
            return None;
        }
        let (offer, pending) = change.apply()?;
        let sdp = offer.to_sdp_string();
        self.pending = Some((pending, sdp.clone(), mids.clone()));
        Some((sdp, mids))
    }

    /// Which track each offered slot carries now.
    pub fn slot_map(&self) -> Vec<TrackMid> {
        self.outs
            .iter()
            .filter_map(|o| {
                Some(TrackMid {
                    mid: o.state.mid()?.to_string(),
                    source: None,
                    track: o.track,
                })
            })
            .collect()
    }
}

/// A client may declare at most this many sources (a few per kind is all a client needs).
const MAX_DECLARED: usize = 16;
