//! Chat: messages to everyone or to the hosts only, sequenced like every event and kept as
//! the meeting's history (the latest in the snapshot, older ones paged; a message to the hosts
//! only for them and its sender); moderators delete messages and stop someone's chat (by
//! identity: joining again does not lift it). A host's @mention features the people it names
//! ([`super::spotlight`]).

use std::collections::VecDeque;
use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{ChatLikes, ChatMessage, MeetingEvent, ParticipantId, MAX_CHAT_BYTES};

use super::{Change, Meeting};
use crate::RoomError;

/// Messages a meeting keeps for late joiners and paging.
pub const CHAT_KEPT: usize = 500;
/// Messages a snapshot carries (the latest).
pub const CHAT_IN_SNAPSHOT: usize = 50;
/// Messages one history page carries at most.
pub const CHAT_PAGE_MAX: usize = 100;

pub(super) type History = VecDeque<ChatMessage>;

/// A held message, released: for whom it was written (everyone, or the hosts).
fn release(m: &mut ChatMessage) {
    m.flagged = None;
    if !m.to_hosts {
        m.only.clear();
    }
}

/// How a chat message is addressed: to the hosts only, and whom it @mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addressing {
    pub to_hosts: bool,
    pub mentions: Vec<ParticipantId>,
}

impl Meeting {
    /// A chat message to everyone (or to the hosts); it is sequenced like every event, so
    /// resuming clients get what they missed, and kept for those who join later.
    pub fn handle_chat(
        &mut self,
        now: Instant,
        from: ParticipantId,
        text: &str,
        to: Addressing,
    ) -> Result<(), RoomError> {
        self.at(now);
        let p = self
            .participants
            .get(&from)
            .ok_or(RoomError::UnknownParticipant)?;
        if self.chat_banned.contains(&p.info.identity) {
            return Err(RoomError::Forbidden("a moderator stopped your chat"));
        }
        let sender_moderates = p.permissions.moderate;
        if to.to_hosts {
            self.check_may_chat_hosts(from)?;
        } else {
            self.check_may_chat(from)?;
        }
        let name = p.info.name.clone();
        let text = text.trim();
        if text.is_empty() {
            return Err(RoomError::InvalidChat("empty"));
        }
        if text.len() > MAX_CHAT_BYTES {
            return Err(RoomError::InvalidChat("longer than 2000 bytes"));
        }
        let flagged = if sender_moderates {
            None
        } else {
            self.spam.check(now, from, text)
        };
        // Held by the filter, or to the hosts: for the hosts and the sender only.
        let only = if to.to_hosts || flagged.is_some() {
            self.hosts_and(from)
        } else {
            Vec::new()
        };
        let mut mentions: Vec<ParticipantId> = Vec::new();
        for m in to.mentions {
            if self.participants.contains_key(&m) && !mentions.contains(&m) {
                mentions.push(m);
            }
        }
        mentions.truncate(super::spotlight::MAX_MENTIONS);
        let message = ChatMessage {
            id: self.next_chat,
            from,
            name,
            text: text.to_owned(),
            only,
            mentions,
            to_hosts: to.to_hosts,
            flagged,
            likes: 0,
        };
        self.apply_chat(message.clone());
        self.changes.push(Change::Chatted {
            message: message.clone(),
        });
        if sender_moderates && message.only.is_empty() && !message.mentions.is_empty() {
            self.feature_mentioned(now, &message.mentions);
        }
        self.emit_chat(message);
        Ok(())
    }

    fn emit_chat(&mut self, m: ChatMessage) {
        self.emit(MeetingEvent::Chat {
            id: m.id,
            from: m.from,
            name: m.name,
            text: m.text,
            only: m.only,
            mentions: m.mentions,
            to_hosts: m.to_hosts,
            flagged: m.flagged,
        });
    }

    /// A moderator releases a message the spam filter held: it goes to everyone it was for
    /// (again, with its number: clients show it where it was).
    pub fn handle_release_chat(
        &mut self,
        now: Instant,
        actor: Actor,
        id: u64,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let released = {
            let m = self
                .chat
                .iter_mut()
                .find(|m| m.id == id && m.flagged.is_some())
                .ok_or(RoomError::UnknownChat)?;
            release(m);
            m.clone()
        };
        self.changes.push(Change::ChatReleased { id });
        self.emit_chat(released);
        Ok(())
    }

    /// Someone likes a message to everyone, once per identity; the counts go out coalesced.
    pub fn handle_like_chat(
        &mut self,
        now: Instant,
        p: ParticipantId,
        id: u64,
    ) -> Result<(), RoomError> {
        self.at(now);
        let identity = self
            .participants
            .get(&p)
            .ok_or(RoomError::UnknownParticipant)?
            .info
            .identity
            .clone();
        if !self.chat.iter().any(|m| m.id == id && m.only.is_empty()) {
            return Err(RoomError::UnknownChat);
        }
        if !self.apply_like(id, identity.clone()) {
            return Err(RoomError::AlreadyVoted);
        }
        self.changes.push(Change::ChatLiked { id, identity });
        self.liked.insert(id);
        self.schedule_count(now);
        Ok(())
    }

    /// Counts `identity`'s like of message `id`; false if it liked it already.
    pub(super) fn apply_like(&mut self, id: u64, identity: String) -> bool {
        if !self.chat_likes.entry(id).or_default().insert(identity) {
            return false;
        }
        if let Some(m) = self.chat.iter_mut().find(|m| m.id == id) {
            m.likes += 1;
        }
        true
    }

    /// The messages whose likes changed since they were last sent.
    pub(super) fn emit_chat_likes(&mut self) {
        if self.liked.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.liked);
        let likes = self
            .chat
            .iter()
            .filter(|m| ids.contains(&m.id))
            .map(|m| ChatLikes {
                id: m.id,
                likes: m.likes,
            })
            .collect();
        self.emit(MeetingEvent::ChatLiked { likes });
    }

    /// A committed release, applied again.
    pub(super) fn apply_release(&mut self, id: u64) {
        if let Some(m) = self.chat.iter_mut().find(|m| m.id == id) {
            release(m);
        }
    }

    /// The moderators in the meeting, in id order. (A scan: messages to the hosts and
    /// waiting-room updates are few, and each person's chat is limited.)
    pub(super) fn moderators(&self) -> Vec<ParticipantId> {
        self.participants
            .iter()
            .filter(|(_, who)| who.permissions.moderate)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The moderators and `p`, in id order.
    fn hosts_and(&self, p: ParticipantId) -> Vec<ParticipantId> {
        let mut hosts = self.moderators();
        if let Err(at) = hosts.binary_search(&p) {
            hosts.insert(at, p);
        }
        hosts
    }

    /// Which messages `reader` may read (none: the API reads everything); whether it
    /// moderates is looked up once, not per message.
    fn readable_by(&self, reader: Option<ParticipantId>) -> impl Fn(&ChatMessage) -> bool {
        let moderates = reader
            .and_then(|r| self.participants.get(&r))
            .is_some_and(|p| p.permissions.moderate);
        move |m| reader.is_none_or(|r| m.readable_by(r, moderates))
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

    /// Up to `limit` messages before message `before` that `reader` may read, oldest first.
    pub fn chat_history(
        &self,
        before: u64,
        limit: usize,
        reader: Option<ParticipantId>,
    ) -> Vec<ChatMessage> {
        let readable = self.readable_by(reader);
        let older: Vec<&ChatMessage> = self
            .chat
            .iter()
            .filter(|m| m.id < before && readable(m))
            .collect();
        let skip = older.len().saturating_sub(limit.min(CHAT_PAGE_MAX));
        older.into_iter().skip(skip).cloned().collect()
    }

    pub(super) fn apply_chat(&mut self, message: ChatMessage) {
        self.next_chat = self.next_chat.max(message.id + 1);
        if self.chat.len() >= CHAT_KEPT {
            if let Some(old) = self.chat.pop_front() {
                self.chat_likes.remove(&old.id);
            }
        }
        self.chat.push_back(message);
    }

    /// The latest messages `reader` may read, for its snapshot.
    pub(super) fn latest_chat(&self, reader: ParticipantId) -> Vec<ChatMessage> {
        let readable = self.readable_by(Some(reader));
        let mut latest: Vec<ChatMessage> = self
            .chat
            .iter()
            .rev()
            .filter(|m| readable(m))
            .take(CHAT_IN_SNAPSHOT)
            .cloned()
            .collect();
        latest.reverse();
        latest
    }
}
