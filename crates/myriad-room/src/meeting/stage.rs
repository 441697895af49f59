//! Raised hands and the stage: who asked to speak, in the order they asked, and who was
//! invited to (the stage publishes, whatever the role, and is in everyone's forwarding plan).

use std::collections::HashSet;
use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{Hands, MeetingEvent, ParticipantId, ParticipantInfo};

use super::{Change, Meeting};
use crate::RoomError;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Raised hands, the earliest first.
    hands: Vec<ParticipantId>,
    raised: HashSet<ParticipantId>,
    /// On stage, in the order invited.
    on: Vec<ParticipantId>,
}

/// Why an invitation to the stage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageFull;

impl Stage {
    /// Raises `p`'s hand (at the end of the queue); false if it was up or `p` is on stage.
    pub fn raise(&mut self, p: ParticipantId) -> bool {
        if self.is_on(p) || !self.raised.insert(p) {
            return false;
        }
        self.hands.push(p);
        true
    }

    /// Lowers `p`'s hand; false if it was not up.
    pub fn lower(&mut self, p: ParticipantId) -> bool {
        if !self.raised.remove(&p) {
            return false;
        }
        self.hands.retain(|h| *h != p);
        true
    }

    /// Lowers every hand; the hands that were up.
    pub fn lower_all(&mut self) -> Vec<ParticipantId> {
        self.raised.clear();
        std::mem::take(&mut self.hands)
    }

    /// Puts `p` on the stage (its hand goes down); false if it was on already.
    pub fn invite(&mut self, p: ParticipantId, max: usize) -> Result<bool, StageFull> {
        if self.is_on(p) {
            return Ok(false);
        }
        if self.on.len() >= max {
            return Err(StageFull);
        }
        self.lower(p);
        self.on.push(p);
        Ok(true)
    }

    /// Takes `p` off the stage; false if it was not on.
    pub fn remove(&mut self, p: ParticipantId) -> bool {
        let before = self.on.len();
        self.on.retain(|s| *s != p);
        self.on.len() != before
    }

    /// `p` left the meeting: its hand and its place on stage go.
    pub fn forget(&mut self, p: ParticipantId) -> bool {
        let lowered = self.lower(p);
        self.remove(p) || lowered
    }

    pub fn is_on(&self, p: ParticipantId) -> bool {
        self.on.contains(&p)
    }

    pub fn hand_raised(&self, p: ParticipantId) -> bool {
        self.raised.contains(&p)
    }

    /// Raised hands, the earliest first.
    pub fn hands(&self) -> &[ParticipantId] {
        &self.hands
    }

    /// Who is on stage, in the order invited.
    pub fn on_stage(&self) -> &[ParticipantId] {
        &self.on
    }
}

impl Meeting {
    /// A participant raises or lowers its own hand. The queue reaches everyone coalesced,
    /// once per count interval, however many hands move.
    pub fn handle_hand(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        raised: bool,
    ) -> Result<(), RoomError> {
        self.at(now);
        if !self.participants.contains_key(&participant) {
            return Err(RoomError::UnknownParticipant);
        }
        if raised {
            self.check_may_raise_hands()?;
        }
        let changed = if raised {
            self.stage.raise(participant)
        } else {
            self.stage.lower(participant)
        };
        if changed {
            self.changes.push(Change::Hand {
                participant,
                raised,
            });
            self.hands_changed(now);
        }
        Ok(())
    }

    /// A moderator lowers one hand, or every hand.
    pub fn handle_lower_hands(
        &mut self,
        now: Instant,
        actor: Actor,
        target: Option<ParticipantId>,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let lowered = match target {
            Some(p) if !self.participants.contains_key(&p) => {
                return Err(RoomError::UnknownParticipant)
            }
            Some(p) => {
                if self.stage.lower(p) {
                    self.changes.push(Change::Hand {
                        participant: p,
                        raised: false,
                    });
                    vec![p]
                } else {
                    Vec::new()
                }
            }
            None => {
                let all = self.stage.lower_all();
                if !all.is_empty() {
                    self.changes.push(Change::HandsLowered);
                }
                all
            }
        };
        if !lowered.is_empty() {
            self.lowered.extend(lowered);
            self.hands_changed(now);
        }
        Ok(())
    }

    /// A moderator invites `target` to the stage (it may publish at once, and is in every
    /// plan) or takes it off (a role that does not publish loses its tracks); anyone may step
    /// off the stage by themselves.
    pub fn handle_stage(
        &mut self,
        now: Instant,
        actor: Actor,
        target: ParticipantId,
        on: bool,
    ) -> Result<(), RoomError> {
        self.at(now);
        if on || actor != Actor::Participant(target) {
            self.check_moderator(actor)?;
        }
        let role = self
            .participants
            .get(&target)
            .ok_or(RoomError::UnknownParticipant)?
            .info
            .role;
        let had_hand = self.stage.hand_raised(target);
        let changed = if on {
            self.stage
                .invite(target, self.config.stage_max)
                .map_err(|_| RoomError::StageFull)?
        } else {
            self.stage.remove(target)
        };
        if !changed {
            return Ok(());
        }
        let permissions = self.participants.get_mut(&target).map(|p| {
            p.permissions.publish = on || role.publishes();
            p.permissions
        });
        if let Some(permissions) = permissions {
            self.changes.push(Change::Staged {
                participant: target,
                on,
                permissions,
            });
            if !permissions.publish {
                self.unpublish_all(target);
            }
        }
        if had_hand {
            self.hands_changed(now);
        }
        self.emit_stage();
        self.replan();
        Ok(())
    }

    /// The hand queue as clients see it: the count and the earliest few.
    pub(super) fn hands_summary(&self) -> Hands {
        Hands {
            raised: self.stage.hands().len() as u32,
            first: self.infos(self.stage.hands().iter().take(self.config.hands_shown)),
        }
    }

    pub(super) fn stage_infos(&self) -> Vec<ParticipantInfo> {
        self.infos(self.stage.on_stage().iter())
    }

    fn infos<'a>(&self, ids: impl Iterator<Item = &'a ParticipantId>) -> Vec<ParticipantInfo> {
        ids.filter_map(|p| self.participants.get(p).map(|p| p.info.clone()))
            .collect()
    }

    pub(super) fn emit_stage(&mut self) {
        let participants = self.stage_infos();
        self.emit(MeetingEvent::Stage { participants });
    }

    /// The queue goes out with the next count announcement.
    pub(super) fn hands_changed(&mut self, now: Instant) {
        self.hands_dirty = true;
        self.schedule_count(now);
    }

    /// The coalesced hand queue, if it changed since the last one.
    pub(super) fn emit_hands(&mut self) {
        if std::mem::take(&mut self.hands_dirty) {
            let hands = self.hands_summary();
            let lowered = std::mem::take(&mut self.lowered);
            self.emit(MeetingEvent::Hands { hands, lowered });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);
    const C: ParticipantId = ParticipantId(3);

    #[test]
    fn hands_queue_in_the_order_raised_once_each() {
        let mut s = Stage::default();
        assert!(s.raise(B));
        assert!(s.raise(A));
        assert!(!s.raise(B), "already up");
        assert_eq!(s.hands(), [B, A]);
        assert!(s.lower(B));
        assert!(!s.lower(B));
        assert!(s.raise(B), "raised again: at the end");
        assert_eq!(s.hands(), [A, B]);
        assert_eq!(s.lower_all(), [A, B]);
        assert!(s.hands().is_empty() && !s.hand_raised(A));
    }

    #[test]
    fn the_stage_takes_hands_down_and_holds_at_most_its_size() {
        let mut s = Stage::default();
        s.raise(A);
        s.raise(C);
        assert_eq!(s.invite(A, 2), Ok(true));
        assert!(!s.hand_raised(A), "invited: the hand is answered");
        assert_eq!(s.invite(A, 2), Ok(false));
        assert!(!s.raise(A), "on stage: no hand to raise");
        assert_eq!(s.invite(B, 2), Ok(true));
        assert_eq!(s.invite(C, 2), Err(StageFull));
        assert!(s.hand_raised(C), "a refused invitation leaves the hand up");
        assert_eq!(s.on_stage(), [A, B]);
        assert!(s.remove(A));
        assert!(!s.remove(A));
        assert_eq!(s.invite(C, 2), Ok(true));
        assert!(s.forget(C));
        assert!(!s.forget(C));
        assert_eq!(s.on_stage(), [B]);
    }
}
