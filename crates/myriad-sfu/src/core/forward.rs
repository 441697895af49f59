//! Per-subscriber, per-track forwarding state: which layer is sent, when a switch may happen,
//! and the rewriting of each forwarded RTP packet so that the subscriber sees one continuous
//! stream (sequence numbers, RTP time, VP8 picture ids) whatever layer it comes from.

use std::time::Instant;

use str0m::media::Rid;

/// A simulcast layer by its rid; `None` is a track without simulcast.
pub type Layer = Option<Rid>;

/// Where a subscriber's outgoing timeline starts. Far from zero so that rebasing an incoming
/// timestamp never underflows.
const TIMELINE_START: u64 = 1 << 32;
/// The first outgoing sequence number: below 2^16, so the SRTP rollover counter starts at 0
/// as a receiver assumes.
const SEQ_START: u64 = 1;
/// VP8 picture ids are 15 bits (or 7, a subset that the same arithmetic serves).
const PICTURE_ID_MOD: u16 = 0x8000;

/// One incoming RTP packet, as far as forwarding cares.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    pub layer: Layer,
    /// Extended sequence number.
    pub seq: u64,
    /// Extended RTP time.
    pub time: u64,
    pub clock_hz: u32,
    /// The first packet of a key frame (always true for audio): a layer switch may start here.
    pub switch_point: bool,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

/// How to send a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub seq: u64,
    pub time: u64,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Forward(Rewrite),
    Drop,
    /// Drop it; a key frame on this layer is needed to switch to it.
    NeedKeyframe(Layer),
}

/// The last packet sent, where the next switch continues from.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    time: u64,
    at: Instant,
    picture_id: Option<u16>,
    tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Default, Clone)]
pub struct Forwarder {
    /// The layer being sent.
    current: Option<Layer>,
    /// The layer that should be sent; switching waits for its next key frame.
    target: Option<Layer>,
    /// Packets of the current layer before this sequence number predate the switch.
    first_seq: u64,
    /// Added (wrapping) to incoming values to get outgoing ones.
    seq_offset: u64,
    time_offset: u64,
    picture_id_offset: u16,
    tl0_offset: u8,
    last: Option<Sent>,
}

impl Forwarder {
    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// Sets the wanted layer (`None`: forward nothing). Returns true when a key frame on the
    /// new target is needed before it can be shown.
    pub fn set_target(&mut self, target: Option<Layer>) -> bool {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
        target.is_some() && self.current != target
    }

    /// Decides what to do with one packet of the track.
    pub fn on_packet(&mut self, p: &Incoming, now: Instant) -> Decision {
        let Some(target) = self.target else {
            return Decision::Drop;
        };
        if self.current == Some(p.layer) {
            if p.seq < self.first_seq {
                // Reordered from before the switch: its outgoing number is taken.
                return Decision::Drop;
            }
            return self.emit(p, now);
        }
        if p.layer != target {
            return Decision::Drop;
        }
        if !p.switch_point {
            return Decision::NeedKeyframe(p.layer);
        }
        self.switch(p, now);
        self.emit(p, now)
    }

    /// Continues the outgoing stream from its last packet with this packet's layer.
    fn switch(&mut self, p: &Incoming, now: Instant) {
        let (seq, time, picture_id, tl0) = match self.last {
            None => (SEQ_START, TIMELINE_START, None, None),
            Some(last) => {
                let elapsed_ticks = now.saturating_duration_since(last.at).as_micros() as u64
                    * p.clock_hz as u64
                    / 1_000_000;
                (
                    last.seq + 1,
                    last.time.wrapping_add(elapsed_ticks.max(1)),
                    last.picture_id.map(|id| (id + 1) % PICTURE_ID_MOD),
                    last.tl0_pic_idx.map(|i| i.wrapping_add(1)),
                )
            }
        };
        self.seq_offset = seq.wrapping_sub(p.seq);
        self.time_offset = time.wrapping_sub(p.time);
        self.picture_id_offset = match (picture_id, p.picture_id) {
            (Some(out), Some(inc)) => {
                (out + PICTURE_ID_MOD - inc % PICTURE_ID_MOD) % PICTURE_ID_MOD
            }
            _ => 0,
        };
        self.tl0_offset = match (tl0, p.tl0_pic_idx) {
            (Some(out), Some(inc)) => out.wrapping_sub(inc),
            _ => 0,
        };
        self.first_seq = p.seq;
        self.current = Some(p.layer);
    }

    fn emit(&mut self, p: &Incoming, now: Instant) -> Decision {
        let out = Rewrite {
            seq: p.seq.wrapping_add(self.seq_offset),
            time: p.time.wrapping_add(self.time_offset),
            picture_id: p
                .picture_id
                .map(|id| (id % PICTURE_ID_MOD + self.picture_id_offset) % PICTURE_ID_MOD),
            tl0_pic_idx: p.tl0_pic_idx.map(|i| i.wrapping_add(self.tl0_offset)),
        };
        // Retransmissions arrive late: only the newest packet is where a switch continues.
        if self.last.is_none_or(|l| out.seq > l.seq) {
            self.last = Some(Sent {
                seq: out.seq,
                time: out.time,
                at: now,
                picture_id: out.picture_id,
                tl0_pic_idx: out.tl0_pic_idx,
            });
        }
        Decision::Forward(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn l(s: &str) -> Layer {
        Some(Rid::from(s))
    }

    fn video(layer: &str, seq: u64, time: u64, key: bool, picture_id: u16) -> Incoming {
        Incoming {
            layer: l(layer),
            seq,
            time,
            clock_hz: 90_000,
            switch_point: key,
            picture_id: Some(picture_id),
            tl0_pic_idx: Some(picture_id as u8),
        }
    }

    fn forwarded(d: Decision) -> Rewrite {
        match d {
            Decision::Forward(r) => r,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    #[test]
    fn nothing_flows_without_a_target() {
        let mut f = Forwarder::default();
        assert_eq!(
            f.on_packet(&video("h", 1, 0, true, 0), Instant::now()),
            Decision::Drop
        );
    }

    #[test]
    fn switching_waits_for_a_keyframe_and_keeps_the_stream_continuous() {
        let t0 = Instant::now();
        let mut f = Forwarder::default();
        assert!(f.set_target(Some(l("l"))));
        assert_eq!(
            f.on_packet(&video("l", 500, 1000, false, 40), t0),
            Decision::NeedKeyframe(l("l"))
        );
        let first = forwarded(f.on_packet(&video("l", 501, 1000, true, 41), t0));
        assert_eq!((first.seq, first.time), (SEQ_START, TIMELINE_START));
        // The rest of the key frame and the next frame follow on.
        let r = forwarded(f.on_packet(&video("l", 502, 1000, false, 41), t0));
        assert_eq!(
            (r.seq, r.time, r.picture_id),
            (2, TIMELINE_START, first.picture_id)
        );
        let t1 = t0 + Duration::from_millis(33);
        let r = forwarded(f.on_packet(&video("l", 503, 3970, false, 42), t1));
        assert_eq!(r.seq, 3);
        assert_eq!(r.time, TIMELINE_START + 2970);
        let pid_l = r.picture_id.unwrap();
        let tl0_l = r.tl0_pic_idx.unwrap();

        // Upgrade to "h", whose numbers all have other bases.
        assert!(f.set_target(Some(l("h"))));
        let t2 = t1 + Duration::from_millis(33);
        // Still on "l" until "h" has a key frame.
        assert_eq!(
            forwarded(f.on_packet(&video("l", 504, 6940, false, 43), t2)).seq,
            4
        );
        assert_eq!(
            f.on_packet(&video("h", 9000, 777_000, false, 30_000), t2),
            Decision::NeedKeyframe(l("h"))
        );
        let t3 = t2 + Duration::from_millis(33);
        let r = forwarded(f.on_packet(&video("h", 9001, 777_000, true, 30_001), t3));
        assert_eq!(r.seq, 5, "sequence numbers continue");
        assert_eq!(
            r.time,
            TIMELINE_START + 5940 + 2970,
            "time advances by wall time"
        );
        assert_eq!(r.picture_id, Some(pid_l + 2), "picture ids continue");
        assert_eq!(r.tl0_pic_idx, Some(tl0_l.wrapping_add(2)));
        // "l" is no longer sent, nor "h" packets from before the key frame.
        assert_eq!(
            f.on_packet(&video("l", 505, 9910, true, 44), t3),
            Decision::Drop
        );
        assert_eq!(
            f.on_packet(&video("h", 8999, 774_030, false, 30_000), t3),
            Decision::Drop
        );
        // A retransmission of a lost "h" packet keeps its own number.
        let r = forwarded(f.on_packet(&video("h", 9003, 777_000, false, 30_001), t3));
        assert_eq!(r.seq, 7);
        let r = forwarded(f.on_packet(&video("h", 9002, 777_000, false, 30_001), t3));
        assert_eq!(r.seq, 6);
    }

    #[test]
    fn picture_ids_wrap() {
        let t0 = Instant::now();
        let mut f = Forwarder::default();
        f.set_target(Some(l("l")));
        forwarded(f.on_packet(&video("l", 1, 0, true, 0x7ffe), t0));
        f.set_target(Some(l("h")));
        let first = forwarded(f.on_packet(&video("h", 1, 0, true, 5), t0));
        let next = forwarded(f.on_packet(&video("h", 2, 3000, false, 6), t0));
        assert_eq!(
            next.picture_id,
            Some((first.picture_id.unwrap() + 1) % 0x8000)
        );
        let wrapped = forwarded(f.on_packet(&video("h", 3, 6000, false, 0x7fff), t0));
        let after = forwarded(f.on_packet(&video("h", 4, 9000, false, 0), t0));
        assert_eq!(
            after.picture_id,
            Some((wrapped.picture_id.unwrap() + 1) % 0x8000)
        );
    }

    #[test]
    fn deselecting_forgets_the_layer() {
        let t0 = Instant::now();
        let audio = |seq| Incoming {
            layer: None,
            seq,
            time: seq * 960,
            clock_hz: 48_000,
            switch_point: true,
            picture_id: None,
            tl0_pic_idx: None,
        };
        let mut f = Forwarder::default();
        f.set_target(Some(None));
        assert!(matches!(f.on_packet(&audio(5), t0), Decision::Forward(_)));
        assert!(
            !f.set_target(Some(None)),
            "same target, no key frame needed"
        );
        f.set_target(None);
        assert_eq!(f.current(), None);
        assert_eq!(f.on_packet(&audio(6), t0), Decision::Drop);
        // Back on: the numbers continue where they stopped.
        f.set_target(Some(None));
        let r = forwarded(f.on_packet(&audio(100), t0 + Duration::from_millis(20)));
        assert_eq!(r.seq, SEQ_START + 1);
    }
}
