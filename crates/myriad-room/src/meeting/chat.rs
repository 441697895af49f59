//! Chat: messages to everyone, sequenced like every event and kept as the meeting's history
//! (the latest in the snapshot, older ones paged); moderators delete messages and stop
//! someone's chat (by identity: joining again does not lift it).

use std::collections::VecDeque;
use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{ChatMessage, MeetingEvent, ParticipantId, MAX_CHAT_BYTES};

use super::{Change, Meeting};
use crate::RoomError;

/// Messages a meeting keeps for late joiners and paging.
pub const CHAT_KEPT: usize = 500;
/// Messages a snapshot carries (the latest).
pub const CHAT_IN_SNAPSHOT: usize = 50;
/// Messages one history page carries at most.
pub const CHAT_PAGE_MAX: usize = 100;

pub(super) type History = VecDeque<ChatMessage>;

impl Meeting {
    /// A chat message to everyone; it is sequenced like every event, so resuming clients get
    /// what they missed, and kept for those who join later.
    pub fn handle_chat(
        &mut self,
        now: Instant,
        from: ParticipantId,
        text: &str,
    ) -> Result<(), RoomError> {
        self.at(now);
        let p = self
            .participants
            .get(&from)
            .ok_or(RoomError::UnknownParticipant)?;
        if self.chat_banned.contains(&p.info.identity) {
            return Err(RoomError::Forbidden("a moderator stopped your chat"));
        }
        self.check_may_chat(from)?;
        let name = p.info.name.clone();
        let text = text.trim();
        if text.is_empty() {
            return Err(RoomError::InvalidChat("empty"));
        }
        if text.len() > MAX_CHAT_BYTES {
            return Err(RoomError::InvalidChat("longer than 2000 bytes"));
        }
        let message = ChatMessage {
            id: self.next_chat,
            from,
            name,
            text: text.to_owned(),
        };
        self.apply_chat(message.clone());
        self.changes.push(Change::Chatted {
            message: message.clone(),
        });
        self.emit(MeetingEvent::Chat {
            id: message.id,
            from: message.from,
            name: message.name,
            text: message.text,
        });
        Ok(())
    }

    /// A moderator deletes a message for everyone (from the history too).
    pub fn handle_delete_chat(
        &mut self,
        now: Instant,
        actor: Actor,
        id: u64,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        if !self.chat.iter().any(|m| m.id == id) {
            return Err(RoomError::UnknownChat);
        }
        self.chat.retain(|m| m.id != id);
        self.changes.push(Change::ChatDeleted { id });
        self.emit(MeetingEvent::ChatDeleted { id });
        Ok(())
    }

    /// A moderator stops someone's chat, or lets it again.
    pub fn handle_ban_chat(
        &mut self,
        now: Instant,
        actor: Actor,
        target: ParticipantId,
        banned: bool,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let identity = self
            .participants
            .get(&target)
            .map(|p| p.info.identity.clone())
            .ok_or(RoomError::UnknownParticipant)?;
        let changed = if banned {
            self.chat_banned.insert(identity.clone())
        } else {
            self.chat_banned.remove(&identity)
        };
        if changed {
            self.changes.push(Change::ChatBanned { identity, banned });
            self.emit(MeetingEvent::ChatBanned {
                participant: target,
                banned,
            });
        }
        Ok(())
    }

    /// Up to `limit` messages before message `before`, oldest first.
    pub fn chat_history(&self, before: u64, limit: usize) -> Vec<ChatMessage> {
        let older: Vec<&ChatMessage> = self.chat.iter().filter(|m| m.id < before).collect();
        let skip = older.len().saturating_sub(limit.min(CHAT_PAGE_MAX));
        older.into_iter().skip(skip).cloned().collect()
    }

    pub(super) fn apply_chat(&mut self, message: ChatMessage) {
        self.next_chat = self.next_chat.max(message.id + 1);
        if self.chat.len() >= CHAT_KEPT {
            self.chat.pop_front();
        }
        self.chat.push_back(message);
    }

    /// The latest messages, for a snapshot.
    pub(super) fn latest_chat(&self) -> Vec<ChatMessage> {
        let skip = self.chat.len().saturating_sub(CHAT_IN_SNAPSHOT);
        self.chat.iter().skip(skip).cloned().collect()
    }
}
