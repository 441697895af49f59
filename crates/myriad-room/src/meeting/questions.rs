//! Q&A: anyone asks, everyone else upvotes (once each), moderators answer (in text or live)
//! or dismiss. Upvotes reach everyone coalesced, once per count interval, however many
//! click; a question asked, answered or dismissed goes out at once.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use myriad_proto::meeting::Actor;
use myriad_proto::{MeetingEvent, ParticipantId, Question};

use super::{Change, Meeting};
use crate::RoomError;

/// Longest question or written answer, in bytes.
pub const MAX_QUESTION_BYTES: usize = 500;
/// Questions a meeting holds at most.
pub const MAX_QUESTIONS: usize = 1000;

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub question: Question,
    /// The identities that asked it or upvoted it (one vote each).
    pub voters: HashSet<String>,
    /// Whether its votes changed since they were last sent.
    dirty: bool,
}

pub(super) type Questions = BTreeMap<u64, Entry>;

fn check_text(text: &str) -> Result<&str, RoomError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_QUESTION_BYTES {
        return Err(RoomError::InvalidQuestion("1 to 500 bytes of text"));
    }
    Ok(text)
}

impl Meeting {
    /// Someone asks a question (its own vote counts as the first).
    pub fn handle_ask(
        &mut self,
        now: Instant,
        from: ParticipantId,
        text: &str,
    ) -> Result<u64, RoomError> {
        self.at(now);
        let p = self
            .participants
            .get(&from)
            .ok_or(RoomError::UnknownParticipant)?;
        let text = check_text(text)?;
        let (identity, name) = (p.info.identity.clone(), p.info.name.clone());
        if self.questions.len() >= MAX_QUESTIONS {
            return Err(RoomError::InvalidQuestion(
                "room: a meeting holds 1000 questions",
            ));
        }
        let question = Question {
            id: self.questions.keys().next_back().map_or(1, |id| id + 1),
            from: name,
            text: text.to_owned(),
            votes: 1,
            answer: None,
            answered: false,
            dismissed: false,
        };
        let id = question.id;
        self.apply_asked(question.clone(), identity.clone());
        self.changes.push(Change::Asked {
            question: question.clone(),
            identity,
        });
        self.emit(MeetingEvent::QuestionAsked { question });
        Ok(id)
    }

    /// Someone upvotes a question, once; the new counts go out with the next count.
    pub fn handle_upvote(
        &mut self,
        now: Instant,
        from: ParticipantId,
        question: u64,
    ) -> Result<(), RoomError> {
        self.at(now);
        let identity = self
            .participants
            .get(&from)
            .map(|p| p.info.identity.clone())
            .ok_or(RoomError::UnknownParticipant)?;
        let entry = self
            .questions
            .get_mut(&question)
            .ok_or(RoomError::UnknownQuestion)?;
        if entry.question.dismissed {
            return Err(RoomError::UnknownQuestion);
        }
        if !entry.voters.insert(identity.clone()) {
            return Err(RoomError::AlreadyVoted);
        }
        entry.question.votes += 1;
        entry.dirty = true;
        self.changes.push(Change::Upvoted { question, identity });
        self.schedule_count(now);
        Ok(())
    }

    /// A moderator answers a question, in writing or (no text) live; or dismisses it.
    pub fn handle_settle_question(
        &mut self,
        now: Instant,
        actor: Actor,
        question: u64,
        settled: Settled,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let answer = match &settled {
            Settled::Answered(Some(text)) => Some(check_text(text)?.to_owned()),
            _ => None,
        };
        let entry = self
            .questions
            .get_mut(&question)
            .ok_or(RoomError::UnknownQuestion)?;
        match settled {
            Settled::Answered(_) => {
                entry.question.answered = true;
                entry.question.answer = answer;
            }
            Settled::Dismissed => entry.question.dismissed = true,
        }
        entry.dirty = false;
        let question = entry.question.clone();
        self.changes.push(Change::QuestionSettled {
            question: question.clone(),
        });
        self.emit(MeetingEvent::QuestionUpdated { question });
        Ok(())
    }

    pub(super) fn apply_asked(&mut self, question: Question, identity: String) {
        let voters = HashSet::from([identity]);
        let entry = Entry {
            question,
            voters,
            dirty: false,
        };
        self.questions.insert(entry.question.id, entry);
    }

    pub(super) fn apply_upvoted(&mut self, question: u64, identity: String) {
        if let Some(e) = self.questions.get_mut(&question) {
            if e.voters.insert(identity) {
                e.question.votes += 1;
            }
        }
    }

    /// The questions for a snapshot: those not dismissed.
    pub(super) fn open_questions(&self) -> Vec<Question> {
        self.questions
            .values()
            .filter(|e| !e.question.dismissed)
            .map(|e| e.question.clone())
            .collect()
    }

    /// The questions whose votes changed since they were last sent.
    pub(super) fn emit_question_votes(&mut self) {
        let changed: Vec<Question> = self
            .questions
            .values_mut()
            .filter_map(|e| std::mem::take(&mut e.dirty).then(|| e.question.clone()))
            .collect();
        for question in changed {
            self.emit(MeetingEvent::QuestionUpdated { question });
        }
    }
}

/// How a moderator settles a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Answered: in writing, or live (no text).
    Answered(Option<String>),
    Dismissed,
}
