//! Who everyone sees first: the person a moderator put in the spotlight, the people a host
//! @mentioned in chat (for `MeetingConfig::mention_for`), then the stage. The plan forwards
//! their cameras before anyone else's, in audience mode too.

use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{MeetingEvent, ParticipantId};

use super::{Change, Meeting};
use crate::RoomError;

/// How many people one message may feature.
pub const MAX_MENTIONS: usize = 5;

#[derive(Debug, Default)]
pub struct Featured {
    spotlight: Option<ParticipantId>,
    /// Mentioned, the latest first, and until when.
    mentioned: Vec<(ParticipantId, Instant)>,
}

impl Featured {
    pub fn set_spotlight(&mut self, p: Option<ParticipantId>) -> bool {
        std::mem::replace(&mut self.spotlight, p) != p
    }

    /// Features `p` until `until` (again, if it was).
    pub fn mention(&mut self, p: ParticipantId, until: Instant) {
        self.mentioned.retain(|(m, _)| *m != p);
        self.mentioned.insert(0, (p, until));
    }

    /// Drops mentions that ran out by `now`; true if any did.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.mentioned.len();
        self.mentioned.retain(|(_, until)| *until > now);
        self.mentioned.len() != before
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.mentioned.iter().map(|(_, t)| *t).min()
    }

    /// `p` left: it is featured no more; true if it was.
    pub fn forget(&mut self, p: ParticipantId) -> bool {
        let was = self.spotlight == Some(p) || self.mentioned.iter().any(|(m, _)| *m == p);
        if self.spotlight == Some(p) {
            self.spotlight = None;
        }
        self.mentioned.retain(|(m, _)| *m != p);
        was
    }

    pub fn spotlight(&self) -> Option<ParticipantId> {
        self.spotlight
    }

    pub fn mentioned(&self) -> Vec<ParticipantId> {
        self.mentioned.iter().map(|(p, _)| *p).collect()
    }

    /// Who comes first, in order: the spotlight, the mentioned, then `stage`; each once.
    pub fn first(&self, stage: &[ParticipantId]) -> Vec<ParticipantId> {
        let mut out: Vec<ParticipantId> =
            Vec::with_capacity(1 + self.mentioned.len() + stage.len());
        let all = self
            .spotlight
            .into_iter()
            .chain(self.mentioned.iter().map(|(p, _)| *p))
            .chain(stage.iter().copied());
        for p in all {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

impl Meeting {
    /// A moderator puts `target` in the spotlight, or nobody.
    pub fn handle_spotlight(
        &mut self,
        now: Instant,
        actor: Actor,
        target: Option<ParticipantId>,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        if target.is_some_and(|p| !self.participants.contains_key(&p)) {
            return Err(RoomError::UnknownParticipant);
        }
        if self.featured.set_spotlight(target) {
            self.changes.push(Change::Spotlight {
                participant: target,
            });
            self.featured_changed();
        }
        Ok(())
    }

    /// A host mentioned `people` (who are in the meeting): everyone sees them for a while.
    pub(super) fn feature_mentioned(&mut self, now: Instant, people: &[ParticipantId]) {
        let until = now + self.config.mention_for;
        for p in people.iter().take(MAX_MENTIONS) {
            self.featured.mention(*p, until);
        }
        self.featured_changed();
    }

    pub(super) fn expire_mentions(&mut self, now: Instant) {
        if self.featured.expire(now) {
            self.featured_changed();
        }
    }

    /// `p` left the meeting.
    pub(super) fn unfeature(&mut self, p: ParticipantId) {
        if self.featured.forget(p) {
            self.featured_changed();
        }
    }

    fn featured_changed(&mut self) {
        self.emit(MeetingEvent::Featured {
            spotlight: self.featured.spotlight(),
            mentioned: self.featured.mentioned(),
        });
        self.replan();
    }

    /// Whom everyone sees first: the spotlight, the mentioned, the stage.
    pub(super) fn seen_first(&self) -> Vec<ParticipantId> {
        self.featured.first(self.stage.on_stage())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);
    const C: ParticipantId = ParticipantId(3);

    #[test]
    fn the_spotlight_then_the_latest_mentions_then_the_stage_each_once() {
        let t = Instant::now();
        let mut f = Featured::default();
        assert_eq!(f.first(&[C]), [C]);
        assert!(f.set_spotlight(Some(A)));
        assert!(!f.set_spotlight(Some(A)));
        f.mention(B, t + Duration::from_secs(30));
        f.mention(C, t + Duration::from_secs(40));
        assert_eq!(f.first(&[C, A]), [A, C, B]);
        assert_eq!(f.next_expiry(), Some(t + Duration::from_secs(30)));
        assert!(!f.expire(t + Duration::from_secs(29)));
        assert!(f.expire(t + Duration::from_secs(30)));
        assert_eq!(f.mentioned(), [C]);
        assert!(f.forget(A));
        assert!(!f.forget(A));
        assert_eq!(f.first(&[]), [C]);
    }
}
