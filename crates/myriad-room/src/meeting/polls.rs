//! Polls: single and multiple choice, rating and free text, anonymous or named. One answer
//! per person, checked here; results counted as answers come and sent to everyone at most
//! once per count interval; every answer is a committed change, so a coordinator taking over
//! counts each exactly once.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use myriad_proto::meeting::{Actor, GivenAnswer, Voter};
use myriad_proto::{
    Answer, MeetingEvent, ParticipantId, PollInfo, PollKind, PollResults, PollState,
};

use super::durable::CountedAnswer;
use super::{Change, Meeting};
use crate::RoomError;

/// Longest question, option and free-text answer, in bytes.
pub const MAX_POLL_TEXT_BYTES: usize = 500;
/// Options of a choice poll: at least two, at most this many.
pub const MAX_POLL_OPTIONS: usize = 10;
/// Polls a meeting holds at most (open or closed).
pub const MAX_POLLS: usize = 100;
/// Highest value a rating poll may ask for.
pub const MAX_RATING: u8 = 10;

#[derive(Debug, Clone)]
pub(super) struct Poll {
    pub info: PollInfo,
    /// The identities that answered (whatever the poll's anonymity: one answer each, also
    /// for someone who left and joined again as a new participant).
    voted: HashSet<String>,
    /// The answers in the order given: whose identity gave each (kept for the durable state
    /// only), and as whom in a named poll.
    pub answers: Vec<CountedAnswer>,
    counts: Vec<u32>,
    /// Whether results changed since they were last sent.
    dirty: bool,
}

impl Poll {
    pub fn new(info: PollInfo) -> Self {
        let counts = vec![0; slots(&info.kind)];
        Self {
            info,
            voted: HashSet::new(),
            answers: Vec::new(),
            counts,
            dirty: false,
        }
    }

    pub fn results(&self) -> PollResults {
        PollResults {
            poll: self.info.id,
            voters: self.voted.len() as u32,
            counts: self.counts.clone(),
        }
    }

    pub fn state(&self) -> PollState {
        PollState {
            info: self.info.clone(),
            results: self.results(),
        }
    }

    /// Counts an answer already checked (as it was, or as committed).
    pub fn count(&mut self, identity: String, voter: Option<Voter>, answer: Answer) {
        let slots: Vec<usize> = match &answer {
            Answer::Single { option } => vec![*option as usize],
            Answer::Multiple { options } => options.iter().map(|o| *o as usize).collect(),
            Answer::Rating { value } => vec![usize::from(*value).saturating_sub(1)],
            Answer::Text { .. } => Vec::new(),
        };
        for slot in slots {
            if let Some(c) = self.counts.get_mut(slot) {
                *c += 1;
            }
        }
        self.voted.insert(identity.clone());
        self.answers.push((identity, voter, answer));
        self.dirty = true;
    }
}

/// Result slots of a poll: one per option or per rating value.
fn slots(kind: &PollKind) -> usize {
    match kind {
        PollKind::Single { options } | PollKind::Multiple { options } => options.len(),
        PollKind::Rating { max } => usize::from(*max),
        PollKind::Text => 0,
    }
}

/// Whether a poll as asked for can be held.
pub fn check_poll(question: &str, kind: &PollKind) -> Result<(), RoomError> {
    let text_ok = |t: &str| !t.trim().is_empty() && t.len() <= MAX_POLL_TEXT_BYTES;
    if !text_ok(question) {
        return Err(RoomError::InvalidPoll("a question of 1 to 500 bytes"));
    }
    match kind {
        PollKind::Single { options } | PollKind::Multiple { options } => {
            if !(2..=MAX_POLL_OPTIONS).contains(&options.len()) {
                return Err(RoomError::InvalidPoll("2 to 10 options"));
            }
            if !options.iter().all(|o| text_ok(o)) {
                return Err(RoomError::InvalidPoll("options of 1 to 500 bytes"));
            }
        }
        PollKind::Rating { max } if !(2..=MAX_RATING).contains(max) => {
            return Err(RoomError::InvalidPoll("a rating from 1 to 2–10"));
        }
        PollKind::Rating { .. } | PollKind::Text => {}
    }
    Ok(())
}

/// Whether `answer` answers a poll of `kind`.
pub fn check_answer(kind: &PollKind, answer: &Answer) -> Result<(), RoomError> {
    let ok = match (kind, answer) {
        (PollKind::Single { options }, Answer::Single { option }) => {
            (*option as usize) < options.len()
        }
        (PollKind::Multiple { options }, Answer::Multiple { options: chosen }) => {
            let mut seen = HashSet::new();
            !chosen.is_empty()
                && chosen
                    .iter()
                    .all(|o| (*o as usize) < options.len() && seen.insert(*o))
        }
        (PollKind::Rating { max }, Answer::Rating { value }) => (1..=*max).contains(value),
        (PollKind::Text, Answer::Text { text }) => {
            !text.trim().is_empty() && text.len() <= MAX_POLL_TEXT_BYTES
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RoomError::InvalidAnswer)
    }
}

impl Meeting {
    /// A moderator opens a poll; everyone learns of it at once.
    pub fn handle_create_poll(
        &mut self,
        now: Instant,
        actor: Actor,
        question: &str,
        kind: PollKind,
        anonymous: bool,
    ) -> Result<u64, RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        check_poll(question, &kind)?;
        if self.polls.len() >= MAX_POLLS {
            return Err(RoomError::InvalidPoll("a meeting holds 100 polls at most"));
        }
        let info = PollInfo {
            id: self.polls.keys().next_back().map_or(1, |id| id + 1),
            question: question.trim().to_owned(),
            kind,
            anonymous,
            open: true,
        };
        let id = info.id;
        self.changes.push(Change::PollOpened { poll: info.clone() });
        self.polls.insert(id, Poll::new(info.clone()));
        self.emit(MeetingEvent::PollOpened { poll: info });
        Ok(id)
    }

    /// One answer per person per open poll; the results go out with the next count.
    pub fn handle_vote(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        poll: u64,
        answer: Answer,
    ) -> Result<(), RoomError> {
        self.at(now);
        let p = self
            .participants
            .get(&participant)
            .ok_or(RoomError::UnknownParticipant)?;
        let voter = Voter {
            identity: p.info.identity.clone(),
            name: p.info.name.clone(),
        };
        let entry = self.polls.get_mut(&poll).ok_or(RoomError::UnknownPoll)?;
        if !entry.info.open {
            return Err(RoomError::PollClosed);
        }
        if entry.voted.contains(&voter.identity) {
            return Err(RoomError::AlreadyVoted);
        }
        check_answer(&entry.info.kind, &answer)?;
        let identity = voter.identity.clone();
        let voter = (!entry.info.anonymous).then_some(voter);
        entry.count(identity.clone(), voter.clone(), answer.clone());
        self.changes.push(Change::Voted {
            poll,
            identity,
            voter,
            answer,
        });
        self.schedule_count(now);
        Ok(())
    }

    /// A moderator closes a poll: the final results go to everyone at once.
    pub fn handle_close_poll(
        &mut self,
        now: Instant,
        actor: Actor,
        poll: u64,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let entry = self.polls.get_mut(&poll).ok_or(RoomError::UnknownPoll)?;
        if !entry.info.open {
            return Ok(());
        }
        entry.info.open = false;
        entry.dirty = false;
        let results = entry.results();
        self.changes.push(Change::PollClosed { poll });
        self.emit(MeetingEvent::PollClosed { results });
        Ok(())
    }

    /// A poll and its answers, for its export.
    pub fn poll_answers(&self, poll: u64) -> Result<(PollState, Vec<GivenAnswer>), RoomError> {
        let entry = self.polls.get(&poll).ok_or(RoomError::UnknownPoll)?;
        let answers = entry.answers.iter().map(|(_, v, a)| (v.clone(), a.clone()));
        Ok((entry.state(), answers.collect()))
    }

    pub(super) fn poll_states(&self) -> Vec<PollState> {
        self.polls.values().map(Poll::state).collect()
    }

    /// The results of the polls answered since they were last sent.
    pub(super) fn emit_poll_results(&mut self) {
        let changed: Vec<PollResults> = self
            .polls
            .values_mut()
            .filter_map(|p| std::mem::take(&mut p.dirty).then(|| p.results()))
            .collect();
        for results in changed {
            self.emit(MeetingEvent::PollResults { results });
        }
    }
}

/// The polls of a meeting by id.
pub(super) type Polls = BTreeMap<u64, Poll>;
