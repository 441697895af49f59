//! Audience mode (lectures, town halls, briefings), switchable live: attendees receive only
//! the stage and whoever speaks, and may chat, react and raise hands as the moderators allow.

use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{Audience, MeetingEvent, ParticipantId};

use super::{Change, Meeting};
use crate::RoomError;

impl Meeting {
    /// A moderator changes audience mode or what attendees may do.
    pub fn handle_set_audience(
        &mut self,
        now: Instant,
        actor: Actor,
        audience: Audience,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        if audience != self.audience {
            self.audience = audience;
            self.changes.push(Change::Audience { audience });
            self.emit(MeetingEvent::Audience { audience });
            self.replan();
        }
        Ok(())
    }

    /// Whether `p` may chat now: attendees only while chat is on.
    pub(super) fn check_may_chat(&self, p: ParticipantId) -> Result<(), RoomError> {
        let role = self.participants.get(&p).map(|p| p.info.role);
        if self.audience.chat || role.is_some_and(|r| r.publishes()) || self.stage.is_on(p) {
            Ok(())
        } else {
            Err(RoomError::Forbidden("the hosts turned chat off"))
        }
    }

    /// Whether `p` may write to the hosts now: attendees while chat, or chat to the hosts,
    /// is on.
    pub(super) fn check_may_chat_hosts(&self, p: ParticipantId) -> Result<(), RoomError> {
        if self.audience.chat_hosts {
            Ok(())
        } else {
            self.check_may_chat(p)
        }
    }

    pub(super) fn check_may_raise_hands(&self) -> Result<(), RoomError> {
        if self.audience.hands {
            Ok(())
        } else {
            Err(RoomError::Forbidden("the hosts turned raised hands off"))
        }
    }

    pub fn audience(&self) -> Audience {
        self.audience
    }
}
