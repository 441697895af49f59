//! Breakout rooms. Each room is a meeting of its own (its id derived from this one's); this
//! meeting decides who goes where: moderators make the rooms, assign people by hand or
//! evenly, open them (people go to theirs, or pick one), speak to every room at once and call
//! everyone back, by hand or when the timer runs out. People stay in this meeting while they
//! are in a room (their connection here tells them when to come back); a way into a room is
//! given only to whom it belongs ([`Meeting::breakout_pass`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use myriad_proto::meeting::Actor;
use myriad_proto::{
    BreakoutOp, BreakoutRoom, Breakouts, MeetingEvent, MeetingId, ParticipantId, MAX_CHAT_BYTES,
};
use serde::{Deserialize, Serialize};

use super::{Change, Meeting};
use crate::RoomError;

/// Most rooms a meeting may have.
pub const MAX_ROOMS: u32 = 50;
/// Longest timer, in minutes.
const MAX_MINUTES: u32 = 24 * 60;

/// The rooms as they are kept (and committed whole on every change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakoutState {
    pub rooms: u32,
    pub assigned: BTreeMap<ParticipantId, u32>,
    pub open: bool,
    pub choose: bool,
    /// The timer the rooms were opened with (a coordinator taking over starts it anew).
    pub minutes: Option<u32>,
}

impl BreakoutState {
    /// Applies a moderator's operation (not the broadcast); `people` are those who do not
    /// moderate, in id order, for the even spread.
    pub fn apply(&mut self, op: &BreakoutOp, people: &[ParticipantId]) -> Result<(), RoomError> {
        match op {
            BreakoutOp::Create { count } => {
                if self.open {
                    return Err(RoomError::Forbidden("close the breakout rooms first"));
                }
                if !(1..=MAX_ROOMS).contains(count) {
                    return Err(RoomError::InvalidBreakout("1 to 50 rooms"));
                }
                *self = BreakoutState {
                    rooms: *count,
                    ..BreakoutState::default()
                };
            }
            BreakoutOp::Assign { participant, room } => match room {
                Some(r) => {
                    self.check_room(*r)?;
                    self.assigned.insert(*participant, *r);
                }
                None => {
                    self.assigned.remove(participant);
                }
            },
            BreakoutOp::AutoAssign => {
                if self.rooms == 0 {
                    return Err(RoomError::InvalidBreakout("rooms made first"));
                }
                self.assigned = people
                    .iter()
                    .zip((0..self.rooms).cycle())
                    .map(|(p, i)| (*p, i + 1))
                    .collect();
            }
            BreakoutOp::Open { minutes, choose } => {
                if self.rooms == 0 {
                    return Err(RoomError::InvalidBreakout("rooms made first"));
                }
                if minutes.is_some_and(|m| !(1..=MAX_MINUTES).contains(&m)) {
                    return Err(RoomError::InvalidBreakout("a timer of 1 minute to a day"));
                }
                self.open = true;
                self.choose = *choose;
                self.minutes = *minutes;
            }
            BreakoutOp::Close => {
                self.open = false;
                self.minutes = None;
            }
            BreakoutOp::Broadcast { .. } => {}
        }
        Ok(())
    }

    fn check_room(&self, room: u32) -> Result<(), RoomError> {
        if (1..=self.rooms).contains(&room) {
            Ok(())
        } else {
            Err(RoomError::InvalidBreakout("a room that exists"))
        }
    }

    /// The room `p` may go to: the one asked for if it moderates or people choose, else its
    /// own (asking for another is refused).
    pub fn pass(
        &self,
        p: ParticipantId,
        asked: Option<u32>,
        moderates: bool,
    ) -> Result<u32, RoomError> {
        if !self.open {
            return Err(RoomError::Forbidden("the breakout rooms are not open"));
        }
        let own = self.assigned.get(&p).copied();
        let room = match asked {
            Some(r) if moderates || self.choose || own == Some(r) => r,
            Some(_) => return Err(RoomError::Forbidden("that is not your room")),
            None => own.ok_or(RoomError::Forbidden("you have no room: pick one"))?,
        };
        self.check_room(room)?;
        Ok(room)
    }
}

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

/// The meeting id of room `room` of `parent`: the parent's (cut to fit) and the room's
/// number, so every node derives the same.
pub fn room_meeting(parent: &MeetingId, room: u32) -> MeetingId {
    let suffix = format!("_br{room}");
    let keep = MeetingId::MAX_LEN - suffix.len();
    let base: String = parent.as_str().chars().take(keep).collect();
    MeetingId::parse(&format!("{base}{suffix}")).unwrap_or_else(|_| parent.clone())
}

impl Meeting {
    /// A moderator's breakout operation. Changes reach everyone with the next count
    /// announcement (a host assigning people one by one sends one update per interval); a
    /// broadcast goes at once.
    pub fn handle_breakouts(
        &mut self,
        now: Instant,
        actor: Actor,
        op: BreakoutOp,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        if let BreakoutOp::Broadcast { text } = &op {
            let text = text.trim();
            if text.is_empty() || text.len() > MAX_CHAT_BYTES {
                return Err(RoomError::InvalidBreakout("a message of 1 to 2000 bytes"));
            }
            let from = match actor {
                Actor::Api => "The hosts".to_owned(),
                Actor::Participant(p) => self
                    .participants
                    .get(&p)
                    .map_or_else(String::new, |p| p.info.name.clone()),
            };
            self.emit(MeetingEvent::Broadcast {
                from,
                text: text.to_owned(),
            });
            return Ok(());
        }
        if let BreakoutOp::Assign { participant, .. } = &op {
            if !self.participants.contains_key(participant) {
                return Err(RoomError::UnknownParticipant);
            }
        }
        let people: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| !p.permissions.moderate)
            .map(|(id, _)| *id)
            .collect();
        let mut next = self.breakouts.clone();
        next.apply(&op, &people)?;
        let opening = matches!(op, BreakoutOp::Open { .. });
        if opening {
            self.breakouts_closing = next.minutes.map(|m| now + minutes(m));
        } else if !next.open {
            self.breakouts_closing = None;
        }
        if next != self.breakouts || opening {
            let moves = opening || next.open != self.breakouts.open;
            self.set_breakouts(now, next);
            if moves {
                // Opening and closing move people: they go out at once.
                self.emit_breakouts();
            }
        }
        Ok(())
    }

    /// The way into a breakout room for `p`: the room and its meeting, and whether `p`
    /// moderates (it does there too).
    pub fn breakout_pass(
        &self,
        p: ParticipantId,
        room: Option<u32>,
    ) -> Result<(u32, MeetingId, bool), RoomError> {
        let moderates = self
            .participants
            .get(&p)
            .ok_or(RoomError::UnknownParticipant)?
            .permissions
            .moderate;
        let room = self.breakouts.pass(p, room, moderates)?;
        Ok((room, room_meeting(&self.id, room), moderates))
    }

    fn set_breakouts(&mut self, now: Instant, state: BreakoutState) {
        self.breakouts = state.clone();
        self.changes.push(Change::Breakouts { state });
        self.breakouts_dirty = true;
        self.schedule_count(now);
    }

    /// `p` left the meeting: its assignment goes.
    pub(super) fn forget_breakout(&mut self, now: Instant, p: ParticipantId) {
        if self.breakouts.assigned.contains_key(&p) {
            let mut next = self.breakouts.clone();
            next.assigned.remove(&p);
            self.set_breakouts(now, next);
        }
    }

    /// The timer ran out: everyone is called back.
    pub(super) fn close_breakouts_when_due(&mut self, now: Instant) {
        if self.breakouts_closing.is_some_and(|t| now >= t) {
            self.breakouts_closing = None;
            let mut next = self.breakouts.clone();
            next.open = false;
            next.minutes = None;
            self.set_breakouts(now, next);
            self.emit_breakouts();
        }
    }

    pub(super) fn breakouts_closing(&self) -> Option<Instant> {
        self.breakouts_closing
    }

    /// After a takeover: the rooms as committed, an open one's timer started anew (when it
    /// was started is not kept; the rooms stay open longer rather than close early).
    pub(super) fn restore_breakouts(&mut self, state: BreakoutState) {
        self.breakouts_closing = state
            .minutes
            .filter(|_| state.open)
            .map(|m| self.now + minutes(m));
        self.breakouts = state;
    }

    /// The rooms as clients see them.
    pub(super) fn breakouts_summary(&self) -> Breakouts {
        let b = &self.breakouts;
        let mut rooms: Vec<BreakoutRoom> = (1..=b.rooms)
            .map(|room| BreakoutRoom {
                room,
                meeting: room_meeting(&self.id, room),
                assigned: Vec::new(),
            })
            .collect();
        for (p, r) in &b.assigned {
            if let Some(room) = rooms.get_mut(*r as usize - 1) {
                room.assigned.push(*p);
            }
        }
        Breakouts {
            open: b.open,
            choose: b.choose,
            remaining_s: self
                .breakouts_closing
                .map(|t| t.saturating_duration_since(self.now).as_secs() as u32),
            rooms,
        }
    }

    fn emit_breakouts(&mut self) {
        self.breakouts_dirty = false;
        let breakouts = self.breakouts_summary();
        self.emit(MeetingEvent::Breakouts { breakouts });
    }

    /// The coalesced rooms, if they changed since the last update.
    pub(super) fn emit_breakouts_if_changed(&mut self) {
        if self.breakouts_dirty {
            self.emit_breakouts();
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
    fn rooms_are_made_filled_evenly_and_opened() {
        let mut s = BreakoutState::default();
        assert!(matches!(
            s.apply(&BreakoutOp::AutoAssign, &[A]),
            Err(RoomError::InvalidBreakout(_))
        ));
        for count in [0, 51] {
            assert!(s.apply(&BreakoutOp::Create { count }, &[]).is_err());
        }
        s.apply(&BreakoutOp::Create { count: 2 }, &[]).unwrap();
        s.apply(&BreakoutOp::AutoAssign, &[A, B, C]).unwrap();
        assert_eq!(
            s.assigned
                .iter()
                .map(|(p, r)| (p.0, *r))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 2), (3, 1)]
        );
        let to_three = BreakoutOp::Assign {
            participant: A,
            room: Some(3),
        };
        assert!(s.apply(&to_three, &[]).is_err(), "no room 3");
        let to_none = BreakoutOp::Assign {
            participant: C,
            room: None,
        };
        s.apply(&to_none, &[]).unwrap();
        assert!(!s.assigned.contains_key(&C));
        let bad_timer = BreakoutOp::Open {
            minutes: Some(0),
            choose: false,
        };
        assert!(s.apply(&bad_timer, &[]).is_err());
        let open = BreakoutOp::Open {
            minutes: Some(10),
            choose: false,
        };
        s.apply(&open, &[]).unwrap();
        assert!(
            s.apply(&BreakoutOp::Create { count: 4 }, &[]).is_err(),
            "not while open"
        );
        s.apply(&BreakoutOp::Close, &[]).unwrap();
        assert!(!s.open && s.minutes.is_none());
        assert_eq!(s.assigned.len(), 2, "assignments stay for another round");
    }

    #[test]
    fn a_pass_is_for_ones_own_room_unless_choosing_or_moderating() {
        let mut s = BreakoutState::default();
        s.apply(&BreakoutOp::Create { count: 3 }, &[]).unwrap();
        s.apply(&BreakoutOp::AutoAssign, &[A, B]).unwrap();
        assert!(s.pass(A, None, false).is_err(), "not open");
        let open = |choose| BreakoutOp::Open {
            minutes: None,
            choose,
        };
        s.apply(&open(false), &[]).unwrap();
        assert_eq!(s.pass(A, None, false), Ok(1));
        assert_eq!(s.pass(B, Some(2), false), Ok(2));
        assert!(s.pass(B, Some(1), false).is_err(), "another's room");
        assert!(s.pass(C, None, false).is_err(), "no room");
        assert_eq!(s.pass(C, Some(3), true), Ok(3), "moderators go anywhere");
        assert!(s.pass(C, Some(4), true).is_err(), "no room 4");
        s.apply(&open(true), &[]).unwrap();
        assert_eq!(s.pass(C, Some(2), false), Ok(2), "people choose");
    }

    #[test]
    fn room_meetings_are_derived_and_always_valid() {
        let m = MeetingId::parse("town-hall").unwrap();
        assert_eq!(room_meeting(&m, 7).as_str(), "town-hall_br7");
        let long = MeetingId::parse(&"x".repeat(64)).unwrap();
        let r = room_meeting(&long, 50);
        assert_eq!(r.as_str().len(), 64);
        assert!(r.as_str().ends_with("_br50"));
    }
}
