//! What moderators do to the meeting as a whole: mute everyone, lock it against newcomers,
//! end it for all. (Muting, removing and re-roling one person are in the meeting itself.)

use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{MeetingEvent, ParticipantId, Role, TrackSource};

use super::{Change, Meeting};
use crate::RoomError;

impl Meeting {
    /// Mutes every microphone but the moderator's own (each owner may unmute).
    pub fn handle_mute_all(&mut self, now: Instant, actor: Actor) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let owners: Vec<ParticipantId> = self
            .tracks
            .values()
            .filter(|t| t.info.source == TrackSource::Microphone && !t.info.muted)
            .map(|t| t.info.participant)
            .filter(|p| actor != Actor::Participant(*p))
            .collect();
        for owner in owners {
            self.handle_mute(now, actor, owner, TrackSource::Microphone, true)?;
        }
        Ok(())
    }

    /// Locks the meeting (nobody new joins; those in it may come back) or opens it again.
    pub fn handle_lock(
        &mut self,
        now: Instant,
        actor: Actor,
        locked: bool,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        if self.locked != locked {
            self.locked = locked;
            self.changes.push(Change::Locked { locked });
            self.emit(MeetingEvent::Locked { locked });
        }
        Ok(())
    }

    /// A moderator ends the meeting for everyone.
    pub fn handle_end(&mut self, now: Instant, actor: Actor) -> Result<(), RoomError> {
        self.check_moderator(actor)?;
        self.end(now);
        Ok(())
    }

    /// A host sets the role of people who join without one of their own; co-hosts may not.
    pub fn handle_set_default_role(
        &mut self,
        now: Instant,
        actor: Actor,
        role: Role,
    ) -> Result<(), RoomError> {
        self.at(now);
        if let Actor::Participant(p) = actor {
            if self.participants.get(&p).map(|p| p.info.role) != Some(Role::Host) {
                return Err(RoomError::Forbidden("only a host sets the default role"));
            }
        }
        if matches!(role, Role::Host | Role::CoHost) {
            return Err(RoomError::Forbidden(
                "the default role is panelist or attendee: hosts are made by hand",
            ));
        }
        if self.default_role != role {
            self.default_role = role;
            self.changes.push(Change::DefaultRole { role });
            self.emit(MeetingEvent::DefaultRole { role });
        }
        Ok(())
    }

    pub fn is_locked(&self) -> bool {
        self.locked
    }
}
