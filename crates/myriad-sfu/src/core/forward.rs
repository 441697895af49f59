//! Per-subscriber, per-track forwarding state: which layer is sent, when a switch may happen,
//! and an RTP timeline that stays continuous across layer switches.

use std::time::Instant;

use str0m::media::Rid;

/// A simulcast layer by its rid; `None` is a track without simulcast.
pub type Layer = Option<Rid>;

/// Where a subscriber's outgoing timeline starts. Far from zero so that rebasing an incoming
/// timestamp never underflows.
const TIMELINE_START: u64 = 1 << 32;

#[derive(Debug, Default, Clone)]
pub struct Forwarder {
    /// The layer being sent.
    current: Option<Layer>,
    /// The layer that should be sent; switching waits for its next key frame.
    target: Option<Layer>,
    /// Added (wrapping) to incoming media time to get outgoing media time.
    offset: u64,
    /// Last outgoing media time and when it was sent.
    last_out: Option<(u64, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it with this outgoing media time.
    Forward(u64),
    Drop,
    /// Drop it; a key frame on this layer is needed to switch to it.
    NeedKeyframe(Layer),
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

    /// Decides what to do with one frame of the track. `can_switch` is true on a key frame
    /// (and always for audio). `time` is the incoming media time in `clock_hz` units.
    pub fn on_media(
        &mut self,
        layer: Layer,
        can_switch: bool,
        time: u64,
        clock_hz: u32,
        now: Instant,
    ) -> Decision {
        let Some(target) = self.target else {
            return Decision::Drop;
        };
        if self.current == Some(layer) {
            return self.emit(time, now);
        }
        if layer != target {
            return Decision::Drop;
        }
        if !can_switch {
            return Decision::NeedKeyframe(layer);
        }
        let next_out = match self.last_out {
            None => TIMELINE_START,
            Some((last, at)) => {
                let elapsed_ticks = now.saturating_duration_since(at).as_micros() as u64
                    * clock_hz as u64
                    / 1_000_000;
                last.wrapping_add(elapsed_ticks.max(1))
            }
        };
        self.offset = next_out.wrapping_sub(time);
        self.current = Some(layer);
        self.emit(time, now)
    }

    fn emit(&mut self, time: u64, now: Instant) -> Decision {
        let out = time.wrapping_add(self.offset);
        self.last_out = Some((out, now));
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

    #[test]
    fn nothing_flows_without_a_target() {
        let mut f = Forwarder::default();
        assert_eq!(
            f.on_media(l("h"), true, 0, 90_000, Instant::now()),
            Decision::Drop
        );
    }

    #[test]
    fn switching_waits_for_a_keyframe_and_keeps_time_continuous() {
        let t0 = Instant::now();
        let mut f = Forwarder::default();
        assert!(f.set_target(Some(l("l"))));
        assert_eq!(
            f.on_media(l("l"), false, 1000, 90_000, t0),
            Decision::NeedKeyframe(l("l"))
        );
        assert_eq!(
            f.on_media(l("l"), true, 1000, 90_000, t0),
            Decision::Forward(TIMELINE_START)
        );
        let t1 = t0 + Duration::from_millis(33);
        assert_eq!(
            f.on_media(l("l"), false, 1000 + 2970, 90_000, t1),
            Decision::Forward(TIMELINE_START + 2970)
        );

        // Upgrade to "h" whose timestamps have another base.
        assert!(f.set_target(Some(l("h"))));
        let t2 = t1 + Duration::from_millis(33);
        // Still on "l" until "h" has a key frame.
        assert_eq!(
            f.on_media(l("l"), false, 1000 + 5940, 90_000, t2),
            Decision::Forward(TIMELINE_START + 5940)
        );
        assert_eq!(
            f.on_media(l("h"), false, 777_000, 90_000, t2),
            Decision::NeedKeyframe(l("h"))
        );
        let t3 = t2 + Duration::from_millis(33);
        assert_eq!(
            f.on_media(l("h"), true, 777_000, 90_000, t3),
            Decision::Forward(TIMELINE_START + 5940 + 2970)
        );
        assert_eq!(
            f.on_media(l("l"), true, 1000 + 8910, 90_000, t3),
            Decision::Drop
        );
    }

    #[test]
    fn deselecting_forgets_the_layer() {
        let t0 = Instant::now();
        let mut f = Forwarder::default();
        f.set_target(Some(None));
        assert!(matches!(
            f.on_media(None, true, 5, 48_000, t0),
            Decision::Forward(_)
        ));
        assert!(
            !f.set_target(Some(None)),
            "same target, no key frame needed"
        );
        f.set_target(None);
        assert_eq!(f.current(), None);
        assert_eq!(f.on_media(None, true, 6, 48_000, t0), Decision::Drop);
    }
}
