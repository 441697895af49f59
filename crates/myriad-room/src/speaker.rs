//! Active-speaker detection from RFC 6464 audio levels.
//!
//! Levels arrive as the loudest level per participant over a short report interval (~50 ms),
//! in dBov (0 is the loudest, -127 silence). They are smoothed with an exponential moving
//! average that follows a rising level fast and a falling one slowly, and the active set changes
//! with hysteresis so that a cough or a short overlap does not flip the speaker view:
//! - a participant becomes active after its smoothed level stayed above `speak_dbov` for
//!   `onset`;
//! - an active participant stays active until it was below `speak_dbov` for `release`;
//! - when all K places are taken, a newcomer displaces the quietest active speaker only if it
//!   is louder by `switch_margin_db`;
//! - the dominant speaker (first in the list) changes only for a speaker louder by the margin.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use myriad_proto::ParticipantId;

#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// How many participants are active speakers at most.
    pub max_active: usize,
    /// Smoothed level above which someone counts as speaking, in dBov.
    pub speak_dbov: f32,
    /// Weight of a new report in the moving average when it is louder (0..1]: speech onsets
    /// show quickly.
    pub attack: f32,
    /// Weight of a new report when it is quieter (0..1]: a short dip does not end speech.
    pub decay: f32,
    pub onset: Duration,
    pub release: Duration,
    pub switch_margin_db: f32,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            max_active: 3,
            speak_dbov: -50.0,
            attack: 0.7,
            decay: 0.5,
            onset: Duration::from_millis(100),
            release: Duration::from_millis(1500),
            switch_margin_db: 6.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Level {
    smoothed_dbov: f32,
    /// Since when the smoothed level has been above the speaking threshold.
    loud_since: Option<Instant>,
    /// When the smoothed level was last above the speaking threshold.
    last_loud: Option<Instant>,
}

#[derive(Debug)]
pub struct SpeakerDetector {
    config: SpeakerConfig,
    levels: BTreeMap<ParticipantId, Level>,
    /// Active speakers, dominant first.
    active: Vec<ParticipantId>,
}

const SILENCE_DBOV: f32 = -127.0;

impl SpeakerDetector {
    pub fn new(config: SpeakerConfig) -> Self {
        Self {
            config,
            levels: BTreeMap::new(),
            active: Vec::new(),
        }
    }

    /// The active speakers, dominant first.
    pub fn active(&self) -> &[ParticipantId] {
        &self.active
    }

    /// Forget a participant (left, or muted its microphone). Returns whether the active set
    /// changed.
    pub fn remove(&mut self, participant: ParticipantId) -> bool {
        self.levels.remove(&participant);
        let before = self.active.len();
        self.active.retain(|p| *p != participant);
        before != self.active.len()
    }

    /// Feed one report interval: the loudest level per participant that sent audio. Anyone
    /// not in `reports` is taken as silent for this interval. Returns whether the active list
    /// (membership or dominant) changed.
    pub fn handle_levels(&mut self, now: Instant, reports: &[(ParticipantId, f32)]) -> bool {
        let attack = self.config.attack.clamp(0.01, 1.0);
        let decay = self.config.decay.clamp(0.01, 1.0);
        let mut reported: BTreeMap<ParticipantId, f32> = BTreeMap::new();
        for &(participant, dbov) in reports {
            let dbov = if dbov.is_finite() {
                dbov.clamp(SILENCE_DBOV, 0.0)
            } else {
                SILENCE_DBOV
            };
            let loudest = reported.entry(participant).or_insert(SILENCE_DBOV);
            *loudest = loudest.max(dbov);
            self.levels.entry(participant).or_insert(Level {
                smoothed_dbov: SILENCE_DBOV,
                loud_since: None,
                last_loud: None,
            });
        }
        for (participant, level) in self.levels.iter_mut() {
            let target = reported.get(participant).copied().unwrap_or(SILENCE_DBOV);
            let weight = if target > level.smoothed_dbov {
                attack
            } else {
                decay
            };
            level.smoothed_dbov += weight * (target - level.smoothed_dbov);
        }
        for level in self.levels.values_mut() {
            if level.smoothed_dbov >= self.config.speak_dbov {
                level.loud_since.get_or_insert(now);
                level.last_loud = Some(now);
            } else {
                level.loud_since = None;
            }
        }
        self.update_active(now)
    }

    fn smoothed(&self, p: ParticipantId) -> f32 {
        self.levels
            .get(&p)
            .map_or(SILENCE_DBOV, |l| l.smoothed_dbov)
    }

    fn update_active(&mut self, now: Instant) -> bool {
        let before = self.active.clone();
        let release = self.config.release;
        let levels = &self.levels;
        self.active.retain(|p| {
            levels
                .get(p)
                .and_then(|l| l.last_loud)
                .is_some_and(|t| now.saturating_duration_since(t) < release)
        });

        // Candidates: speaking long enough, not active yet; loudest first.
        let mut candidates: Vec<(ParticipantId, f32)> = self
            .levels
            .iter()
            .filter(|(p, l)| {
                !self.active.contains(p)
                    && l.loud_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.config.onset)
            })
            .map(|(p, l)| (*p, l.smoothed_dbov))
            .collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        for (candidate, level) in candidates {
            if self.active.len() < self.config.max_active {
                self.active.push(candidate);
                continue;
            }
            let Some((weakest_idx, weakest_level)) = self
                .active
                .iter()
                .enumerate()
                .map(|(i, p)| (i, self.smoothed(*p)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
            else {
                break;
            };
            if level > weakest_level + self.config.switch_margin_db {
                self.active.remove(weakest_idx);
                self.active.push(candidate);
            }
        }

        // Dominant speaker with hysteresis: the current one keeps first place unless another
        // active speaker is louder by the margin.
        if let Some(&dominant) = self.active.first() {
            let dominant_level = self.smoothed(dominant);
            let challenger = self
                .active
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, p)| (i, self.smoothed(*p)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((idx, level)) = challenger {
                if level > dominant_level + self.config.switch_margin_db {
                    let p = self.active.remove(idx);
                    self.active.insert(0, p);
                }
            }
        }
        self.active != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    fn p(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    /// Feeds `ticks` report intervals with the same levels, returns the time after.
    fn feed(
        d: &mut SpeakerDetector,
        mut now: Instant,
        ticks: u32,
        r: &[(ParticipantId, f32)],
    ) -> Instant {
        for _ in 0..ticks {
            now += TICK;
            d.handle_levels(now, r);
        }
        now
    }

    #[test]
    fn a_steady_speaker_becomes_active_after_onset() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let t0 = Instant::now();
        d.handle_levels(t0, &[(p(1), -20.0)]);
        assert!(d.active().is_empty(), "one loud report is not yet speech");
        feed(&mut d, t0, 3, &[(p(1), -20.0)]);
        assert_eq!(d.active(), &[p(1)]);
    }

    #[test]
    fn a_short_click_does_not_make_a_speaker() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let t0 = Instant::now();
        let t = feed(&mut d, t0, 1, &[(p(1), -5.0)]);
        feed(&mut d, t, 10, &[(p(1), -100.0)]);
        assert!(d.active().is_empty());
    }

    #[test]
    fn a_cough_of_100_ms_does_not_make_a_speaker_at_50_ms_reports() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let mut t = Instant::now();
        for level in [-10.0, -10.0, -110.0, -110.0, -110.0, -110.0] {
            t += Duration::from_millis(50);
            d.handle_levels(t, &[(p(1), level)]);
            assert!(d.active().is_empty());
        }
        // Real speech at the same pace is picked up within about 150 ms.
        for _ in 0..3 {
            t += Duration::from_millis(50);
            d.handle_levels(t, &[(p(1), -20.0)]);
        }
        assert_eq!(d.active(), &[p(1)]);
    }

    #[test]
    fn pauses_shorter_than_release_keep_the_speaker() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let t0 = Instant::now();
        let t = feed(&mut d, t0, 5, &[(p(1), -20.0)]);
        let t = feed(&mut d, t, 8, &[]); // 800 ms pause between sentences
        assert_eq!(d.active(), &[p(1)]);
        feed(&mut d, t, 20, &[]);
        assert!(d.active().is_empty(), "released after a long silence");
    }

    #[test]
    fn a_full_set_is_displaced_only_by_a_clearly_louder_speaker() {
        let cfg = SpeakerConfig {
            max_active: 2,
            ..SpeakerConfig::default()
        };
        let mut d = SpeakerDetector::new(cfg);
        let t0 = Instant::now();
        let t = feed(&mut d, t0, 5, &[(p(1), -20.0), (p(2), -30.0)]);
        assert_eq!(d.active().len(), 2);
        // Slightly louder than the weakest: no switch.
        let t = feed(&mut d, t, 5, &[(p(1), -20.0), (p(2), -30.0), (p(3), -27.0)]);
        assert!(!d.active().contains(&p(3)));
        // Clearly louder: replaces the weakest (p2), not the dominant.
        feed(&mut d, t, 5, &[(p(1), -20.0), (p(2), -30.0), (p(3), -10.0)]);
        assert!(d.active().contains(&p(3)));
        assert!(d.active().contains(&p(1)));
        assert!(!d.active().contains(&p(2)));
    }

    #[test]
    fn dominant_switches_with_margin_only() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let t0 = Instant::now();
        let t = feed(&mut d, t0, 5, &[(p(1), -20.0)]);
        let t = feed(&mut d, t, 5, &[(p(1), -20.0), (p(2), -18.0)]);
        assert_eq!(d.active()[0], p(1), "2 dB louder is within the margin");
        feed(&mut d, t, 5, &[(p(1), -40.0), (p(2), -10.0)]);
        assert_eq!(d.active()[0], p(2));
    }

    #[test]
    fn garbage_levels_are_clamped() {
        let mut d = SpeakerDetector::new(SpeakerConfig::default());
        let t0 = Instant::now();
        feed(
            &mut d,
            t0,
            5,
            &[(p(1), f32::NAN), (p(2), 500.0), (p(3), f32::NEG_INFINITY)],
        );
        assert_eq!(d.active(), &[p(2)]);
    }
}
