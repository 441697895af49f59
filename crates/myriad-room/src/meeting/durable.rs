//! What survives a coordinator: every state change, committed per tick with the events it
//! made ([`Commit`]), and now and then the whole state ([`MeetingState`]). A coordinator taking
//! over rebuilds the meeting from the last state and the commits after it
//! ([`Meeting::restore`]); the sequence of events goes on where it was.
//!
//! Kept: who is in (with the hash of their session secret, never the secret), their
//! permissions and their seats (partitions), the tracks and whether they are muted, the event
//! sequence and the recent events that resuming clients may need. Not kept: active speakers (the next levels report
//! says who speaks) and who is connected (each node reports its people, [`Meeting::handle_present`]).

use std::collections::VecDeque;
use std::time::Instant;

use myriad_proto::board::DrawnShape;
use myriad_proto::bus::BusMessage;
use myriad_proto::cluster::PartitionRef;
use myriad_proto::meeting::Voter;
use myriad_proto::{
    Answer, Audience, ChatMessage, MeetingEvent, MeetingId, ParticipantId, ParticipantInfo,
    PollInfo, Question, Role, Seq, SeqEvent, TrackId, TrackInfo,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::breakouts::BreakoutState;
use super::polls::Poll;
use super::{Meeting, MeetingConfig, Participant, Permissions, Track};

/// A change to the meeting's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    Joined {
        participant: ParticipantInfo,
        permissions: Permissions,
        /// SHA-256 of the session secret, hex.
        secret: String,
    },
    Left {
        participant: ParticipantId,
    },
    Published {
        track: TrackInfo,
    },
    Unpublished {
        track: TrackId,
    },
    Muted {
        track: TrackId,
        muted: bool,
    },
    Seated {
        participant: ParticipantId,
        partition: Option<PartitionRef>,
    },
    RoleChanged {
        participant: ParticipantId,
        role: Role,
        permissions: Permissions,
    },
    Hand {
        participant: ParticipantId,
        raised: bool,
    },
    HandsLowered,
    Staged {
        participant: ParticipantId,
        on: bool,
        permissions: Permissions,
    },
    PollOpened {
        poll: PollInfo,
    },
    Voted {
        poll: u64,
        /// The identity that answered (one answer per person), whatever the anonymity.
        identity: String,
        voter: Option<Voter>,
        answer: Answer,
    },
    PollClosed {
        poll: u64,
    },
    Locked {
        locked: bool,
    },
    Asked {
        question: Question,
        identity: String,
    },
    Upvoted {
        question: u64,
        identity: String,
    },
    /// Answered or dismissed: the question as it is now.
    QuestionSettled {
        question: Question,
    },
    Chatted {
        message: ChatMessage,
    },
    ChatDeleted {
        id: u64,
    },
    ChatLiked {
        id: u64,
        identity: String,
    },
    /// A message the spam filter held was released.
    ChatReleased {
        id: u64,
    },
    ChatBanned {
        identity: String,
        banned: bool,
    },
    Audience {
        audience: Audience,
    },
    WaitingRoom {
        on: bool,
    },
    Drawn {
        shape: DrawnShape,
    },
    Erased {
        ids: Vec<u64>,
    },
    BoardCleared,
    Spotlight {
        participant: Option<ParticipantId>,
    },
    DefaultRole {
        role: Role,
    },
    /// The breakout rooms as they are now.
    Breakouts {
        state: BreakoutState,
    },
    /// Someone waiting was let in (`admit`) or turned away, for good.
    Admitted {
        identity: String,
        admit: bool,
    },
    Ended,
}

/// A tick's batch: the events for everyone and the changes behind them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub events: Vec<SeqEvent>,
    pub changes: Vec<Change>,
}

impl BusMessage for Commit {
    const KIND: &'static str = "meeting.commit";
    const VERSION: u32 = 1;
}

/// The whole state of a meeting, as of its sequence number `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingState {
    pub seq: Seq,
    pub next_participant: u64,
    pub next_track: u64,
    /// (who, what they may do, their secret's hash)
    pub participants: Vec<(ParticipantInfo, Permissions, String)>,
    pub tracks: Vec<TrackInfo>,
    /// Who is seated in which partition.
    #[serde(default)]
    pub seats: Vec<(ParticipantId, PartitionRef)>,
    /// The most recent events, oldest first.
    pub recent: Vec<SeqEvent>,
    pub ended: bool,
    /// Raised hands, the earliest first, and who is on stage.
    #[serde(default)]
    pub hands: Vec<ParticipantId>,
    #[serde(default)]
    pub stage: Vec<ParticipantId>,
    /// Each poll and its answers in order: who gave each, as whom (named polls).
    #[serde(default)]
    pub polls: Vec<(PollInfo, Vec<CountedAnswer>)>,
    #[serde(default)]
    pub locked: bool,
    /// The Q&A: each question and the identities that asked or upvoted it.
    #[serde(default)]
    pub questions: Vec<(Question, Vec<String>)>,
    /// The chat history, oldest first, and the identities whose chat is stopped.
    #[serde(default)]
    pub chat: Vec<ChatMessage>,
    #[serde(default)]
    pub chat_banned: Vec<String>,
    /// Per message, the identities that liked it.
    #[serde(default)]
    pub chat_likes: Vec<(u64, Vec<String>)>,
    #[serde(default)]
    pub audience: Audience,
    /// The waiting room, and the identities let in and turned away.
    #[serde(default)]
    pub waiting_room: bool,
    #[serde(default)]
    pub admitted: Vec<String>,
    #[serde(default)]
    pub denied: Vec<String>,
    #[serde(default)]
    pub breakouts: BreakoutState,
    /// The whiteboard's shapes in drawing order, and the next shape's number.
    #[serde(default)]
    pub board: Vec<DrawnShape>,
    #[serde(default)]
    pub next_shape: u64,
    #[serde(default)]
    pub spotlight: Option<ParticipantId>,
    #[serde(default)]
    pub default_role: Option<Role>,
}

/// An answer as the meeting keeps it: whose identity gave it, as whom (named polls), what.
pub type CountedAnswer = (String, Option<Voter>, Answer);

/// Events a state carries for resuming clients, at most: a state must fit one bus message.
const STATE_RECENT_EVENTS: usize = 256;

/// The stored form of a session secret.
pub(super) fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Meeting {
    /// The whole state now (uncommitted changes included: take it after a commit).
    pub fn state(&self) -> MeetingState {
        let skip = self.log.len().saturating_sub(STATE_RECENT_EVENTS);
        let (admitted, denied) = self.lobby.decisions();
        MeetingState {
            seq: self.seq,
            next_participant: self.next_participant,
            next_track: self.next_track,
            participants: self
                .participants
                .values()
                .map(|p| (p.info.clone(), p.permissions, p.secret.clone()))
                .collect(),
            tracks: self.tracks.values().map(|t| t.info.clone()).collect(),
            seats: self.seats().map(|(p, s)| (p, s.clone())).collect(),
            recent: self.log.iter().skip(skip).cloned().collect(),
            ended: self.ended,
            hands: self.stage.hands().to_vec(),
            stage: self.stage.on_stage().to_vec(),
            polls: self
                .polls
                .values()
                .map(|p| (p.info.clone(), p.answers.clone()))
                .collect(),
            locked: self.locked,
            questions: self
                .questions
                .values()
                .map(|e| (e.question.clone(), e.voters.iter().cloned().collect()))
                .collect(),
            chat: self.chat.iter().cloned().collect(),
            chat_banned: self.chat_banned.iter().cloned().collect(),
            chat_likes: self
                .chat_likes
                .iter()
                .map(|(id, who)| (*id, who.iter().cloned().collect()))
                .collect(),
            audience: self.audience,
            waiting_room: self.lobby.is_on(),
            breakouts: self.breakouts.clone(),
            board: self.board.shapes(),
            next_shape: self.board.next_id,
            spotlight: self.featured.spotlight(),
            default_role: Some(self.default_role),
            admitted,
            denied,
        }
    }

    /// The meeting as a coordinator that held it left it: `state` (if it ever wrote one),
    /// then the commits after it. Everyone in it counts as disconnected from `now` until
    /// their node reports them present or they resume; the plan is made anew and output.
    pub fn restore(
        id: MeetingId,
        config: MeetingConfig,
        now: Instant,
        state: Option<MeetingState>,
        commits: impl IntoIterator<Item = Commit>,
    ) -> Self {
        let mut m = Meeting::new(id, config, now);
        if let Some(s) = state {
            m.seq = s.seq;
            m.next_participant = s.next_participant;
            m.next_track = s.next_track;
            for (info, permissions, secret) in s.participants {
                m.apply(Change::Joined {
                    participant: info,
                    permissions,
                    secret,
                });
            }
            for track in s.tracks {
                m.apply(Change::Published { track });
            }
            for (participant, partition) in s.seats {
                m.apply(Change::Seated {
                    participant,
                    partition: Some(partition),
                });
            }
            for participant in s.hands {
                m.stage.raise(participant);
            }
            for participant in s.stage {
                // Its permissions came with it; the size limit held when it was invited.
                let _ = m.stage.invite(participant, usize::MAX);
            }
            for (info, answers) in s.polls {
                let id = info.id;
                let open = info.open;
                m.apply(Change::PollOpened {
                    poll: PollInfo { open: true, ..info },
                });
                for (identity, voter, answer) in answers {
                    m.apply(Change::Voted {
                        poll: id,
                        identity,
                        voter,
                        answer,
                    });
                }
                if !open {
                    m.apply(Change::PollClosed { poll: id });
                }
            }
            m.locked = s.locked;
            for message in s.chat {
                m.apply_chat(message);
            }
            m.chat_banned.extend(s.chat_banned);
            // The counts came with the messages; who liked each comes here.
            for (id, who) in s.chat_likes {
                m.chat_likes.insert(id, who.into_iter().collect());
            }
            m.audience = s.audience;
            m.lobby.switch(s.waiting_room);
            for identity in s.admitted {
                m.lobby.record(identity, true);
            }
            for identity in s.denied {
                m.lobby.record(identity, false);
            }
            m.restore_breakouts(s.breakouts);
            for shape in s.board {
                m.board.put(shape);
            }
            m.board.next_id = m.board.next_id.max(s.next_shape);
            m.featured.set_spotlight(s.spotlight);
            m.default_role = s.default_role.unwrap_or(m.default_role);
            for (question, voters) in s.questions {
                let id = question.id;
                let mut voters = voters.into_iter();
                m.apply_asked(question, voters.next().unwrap_or_default());
                if let Some(e) = m.questions.get_mut(&id) {
                    e.voters.extend(voters);
                }
            }
            m.remember(s.recent);
            m.ended = s.ended;
        }
        for commit in commits {
            for change in commit.changes {
                m.apply(change);
            }
            m.remember(commit.events);
        }
        for p in m.participants.values_mut() {
            p.disconnected_at = Some(now);
        }
        m.announced_count = m.count();
        m.empty_since = m.participants.is_empty().then_some(now);
        if m.ended {
            m.stopped = true;
        } else {
            m.replan();
        }
        m
    }

    /// Applies one change as it was committed.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Joined {
                participant,
                permissions,
                secret,
            } => {
                self.next_participant = self.next_participant.max(participant.id.0 + 1);
                self.participants.insert(
                    participant.id,
                    Participant {
                        info: participant,
                        permissions,
                        secret,
                        disconnected_at: None,
                        seat: None,
                    },
                );
            }
            Change::Left { participant } => {
                self.participants.remove(&participant);
                self.stage.forget(participant);
                self.tracks.retain(|_, t| t.info.participant != participant);
                self.recent_speakers.retain(|p| *p != participant);
            }
            Change::Published { track } => {
                self.next_track = self.next_track.max(track.id.0 + 1);
                let order = track.id.0;
                self.tracks.insert(track.id, Track { info: track, order });
            }
            Change::Unpublished { track } => {
                self.tracks.remove(&track);
            }
            Change::Muted { track, muted } => {
                if let Some(t) = self.tracks.get_mut(&track) {
                    t.info.muted = muted;
                }
            }
            Change::Seated {
                participant,
                partition,
            } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.seat = partition;
                }
            }
            Change::RoleChanged {
                participant,
                role,
                permissions,
            } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.info.role = role;
                    p.permissions = permissions;
                }
            }
            Change::Hand {
                participant,
                raised: true,
            } => {
                self.stage.raise(participant);
            }
            Change::Hand {
                participant,
                raised: false,
            } => {
                self.stage.lower(participant);
            }
            Change::HandsLowered => {
                self.stage.lower_all();
            }
            Change::Staged {
                participant,
                on,
                permissions,
            } => {
                if on {
                    let _ = self.stage.invite(participant, usize::MAX);
                } else {
                    self.stage.remove(participant);
                }
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.permissions = permissions;
                }
            }
            Change::PollOpened { poll } => {
                self.polls.insert(poll.id, Poll::new(poll));
            }
            Change::Voted {
                poll,
                identity,
                voter,
                answer,
            } => {
                if let Some(p) = self.polls.get_mut(&poll) {
                    p.count(identity, voter, answer);
                }
            }
            Change::PollClosed { poll } => {
                if let Some(p) = self.polls.get_mut(&poll) {
                    p.info.open = false;
                }
            }
            Change::Locked { locked } => self.locked = locked,
            Change::Chatted { message } => self.apply_chat(message),
            Change::Audience { audience } => self.audience = audience,
            Change::ChatDeleted { id } => self.chat.retain(|m| m.id != id),
            Change::ChatReleased { id } => self.apply_release(id),
            Change::ChatLiked { id, identity } => {
                self.apply_like(id, identity);
            }
            Change::ChatBanned {
                identity,
                banned: true,
            } => {
                self.chat_banned.insert(identity);
            }
            Change::ChatBanned {
                identity,
                banned: false,
            } => {
                self.chat_banned.remove(&identity);
            }
            Change::Asked { question, identity } => self.apply_asked(question, identity),
            Change::Upvoted { question, identity } => self.apply_upvoted(question, identity),
            Change::QuestionSettled { question } => {
                if let Some(e) = self.questions.get_mut(&question.id) {
                    e.question = question;
                }
            }
            Change::WaitingRoom { on } => {
                self.lobby.switch(on);
            }
            Change::Admitted { identity, admit } => self.lobby.record(identity, admit),
            Change::Breakouts { state } => self.restore_breakouts(state),
            Change::Drawn { shape } => self.board.put(shape),
            Change::Erased { ids } => {
                self.board.erase(&ids);
            }
            Change::BoardCleared => self.board.clear(),
            Change::DefaultRole { role } => self.default_role = role,
            Change::Spotlight { participant } => {
                self.featured.set_spotlight(participant);
            }
            Change::Ended => self.ended = true,
        }
    }

    /// Keeps committed events for resuming clients and moves the sequence on to them.
    fn remember(&mut self, events: Vec<SeqEvent>) {
        for ev in events {
            self.seq = self.seq.max(ev.seq);
            if matches!(ev.event, MeetingEvent::MeetingEnded) {
                self.ended = true;
            }
            if self.log.len() >= self.config.event_log_len {
                self.log.pop_front();
            }
            self.log.push_back(ev);
        }
    }

    /// A node says these participants are connected to it (after a takeover, the new
    /// coordinator learns who is still there this way).
    pub fn handle_present(&mut self, now: Instant, present: &[ParticipantId]) {
        self.at(now);
        for id in present {
            if let Some(p) = self.participants.get_mut(id) {
                p.disconnected_at = None;
            }
        }
    }

    /// The recent events kept, oldest first (for tests and diagnostics).
    pub fn recent_events(&self) -> &VecDeque<SeqEvent> {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use myriad_proto::{Role, TrackSource};
    use myriad_seeded::{SeededRng, VirtualClock};

    use super::*;
    use crate::{JoinRequest, Output};

    fn joiner(i: u64) -> JoinRequest {
        let role = [Role::Host, Role::CoHost, Role::Panelist, Role::Attendee][(i % 4) as usize];
        JoinRequest {
            identity: format!("id{i}"),
            name: format!("person {i}"),
            role,
            permissions: Permissions {
                publish: role.publishes(),
                subscribe: true,
                moderate: role.moderates(),
            },
            session_token: format!("secret{i}"),
        }
    }

    /// A seeded run of joins, leaves, publications, mutes, chats, role changes, hands, the
    /// stage, polls, questions and timeouts;
    /// the commits it made, taking a state at `state_at` (a commit count) if given.
    fn run(
        seed: u64,
        steps: usize,
        state_at: Option<usize>,
    ) -> (Meeting, Vec<Commit>, Option<(MeetingState, usize)>) {
        let mut rng = SeededRng::new(seed);
        let mut clock = VirtualClock::new();
        let config = MeetingConfig {
            roster_broadcast_max: 5,
            event_log_len: 64,
            ..MeetingConfig::default()
        };
        let mut m = Meeting::new(MeetingId::parse("d").unwrap(), config, clock.now());
        let mut commits = Vec::new();
        let mut state = None;
        let mut joined = 0;
        for _ in 0..steps {
            let now = clock.advance(rng.duration_below(Duration::from_millis(60)));
            let people: Vec<ParticipantId> = m.participants.keys().copied().collect();
            let anyone = rng.pick(&people).copied();
            match (rng.below(12), anyone) {
                (0 | 1, _) | (_, None) => {
                    joined += 1;
                    let _ = m.handle_join(now, joiner(joined));
                }
                (2, Some(p)) => m.handle_leave(now, p),
                (3, Some(p)) => {
                    let source = [
                        TrackSource::Microphone,
                        TrackSource::Camera,
                        TrackSource::Screen,
                    ][rng.below(3) as usize];
                    let _ = m.handle_publish(
                        now,
                        p,
                        source,
                        Some(myriad_proto::cluster::PartitionRef::new("n1", 0)),
                    );
                }
                (4, Some(p)) => {
                    let _ = m.handle_mute(
                        now,
                        crate::Actor::Participant(p),
                        p,
                        TrackSource::Microphone,
                        rng.chance(0.5),
                    );
                }
                (5, Some(p)) => {
                    let _ = m.handle_chat(now, p, "hello", crate::Addressing::default());
                }
                (6, Some(p)) => m.handle_disconnect(now, p),
                (7, Some(p)) => {
                    let target = rng.pick(&people).copied().unwrap_or(p);
                    let role = [Role::Host, Role::CoHost, Role::Panelist, Role::Attendee]
                        [rng.below(4) as usize];
                    let _ = m.handle_set_role(now, crate::Actor::Participant(p), target, role);
                }
                (10, Some(p)) => {
                    // Questions asked, upvoted, answered or dismissed by whoever.
                    let asked: Vec<u64> = m.questions.keys().copied().collect();
                    let by = crate::Actor::Participant(p);
                    let _ = match (rng.pick(&asked).copied(), rng.below(4)) {
                        (Some(q), 0 | 1) => m.handle_upvote(now, p, q),
                        (Some(q), 2) => {
                            let settled = if rng.chance(0.5) {
                                crate::Settled::Dismissed
                            } else {
                                crate::Settled::Answered(rng.chance(0.5).then(|| "yes".into()))
                            };
                            m.handle_settle_question(now, by, q, settled)
                        }
                        _ => m.handle_ask(now, p, "why?").map(|_| ()),
                    };
                }
                (9, Some(p)) => {
                    // A poll of two options, asked by whoever; answered by whoever.
                    let open: Vec<u64> = m.polls.keys().copied().collect();
                    let _ = match rng.pick(&open).copied() {
                        Some(poll) if rng.chance(0.8) => {
                            let answer = myriad_proto::Answer::Single {
                                option: rng.below(2) as u32,
                            };
                            m.handle_vote(now, p, poll, answer)
                        }
                        Some(poll) if rng.chance(0.3) => {
                            m.handle_close_poll(now, crate::Actor::Participant(p), poll)
                        }
                        _ => m
                            .handle_create_poll(
                                now,
                                crate::Actor::Participant(p),
                                "lunch?",
                                myriad_proto::PollKind::Single {
                                    options: vec!["yes".into(), "no".into()],
                                },
                                rng.chance(0.5),
                            )
                            .map(|_| ()),
                    };
                }
                (8, Some(p)) => {
                    let target = rng.pick(&people).copied().unwrap_or(p);
                    let _ = match rng.below(4) {
                        0 => m.handle_hand(now, p, rng.chance(0.7)),
                        1 => m.handle_lower_hands(
                            now,
                            crate::Actor::Participant(p),
                            rng.chance(0.5).then_some(target),
                        ),
                        _ => m.handle_stage(
                            now,
                            crate::Actor::Participant(p),
                            target,
                            rng.chance(0.6),
                        ),
                    };
                }
                _ => m.handle_timeout(now),
            }
            while let Some(out) = m.poll_output() {
                if let Output::Commit(c) = out {
                    commits.push(c);
                    if state_at == Some(commits.len()) {
                        state = Some((m.state(), commits.len()));
                    }
                }
            }
        }
        // The last changes, committed.
        m.handle_timeout(clock.advance(Duration::from_secs(1)));
        while let Some(out) = m.poll_output() {
            if let Output::Commit(c) = out {
                commits.push(c);
            }
        }
        (m, commits, state)
    }

    fn same_state(a: &Meeting, b: &Meeting) {
        let sa = a.state();
        let sb = b.state();
        assert_eq!(sa.seq, sb.seq);
        assert_eq!(sa.participants, sb.participants);
        assert_eq!(sa.tracks, sb.tracks);
        assert_eq!(sa.next_participant, sb.next_participant);
        assert_eq!(sa.next_track, sb.next_track);
        assert_eq!(
            a.recent_events().iter().collect::<Vec<_>>(),
            b.recent_events().iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_meeting_restored_from_its_commits_is_the_meeting() {
        for seed in 0..20 {
            let (live, commits, _) = run(seed, 400, None);
            let now = VirtualClock::new().now();
            let restored =
                Meeting::restore(live.id.clone(), live.config.clone(), now, None, commits);
            same_state(&live, &restored);
        }
    }

    #[test]
    fn a_state_and_the_commits_after_it_restore_the_same_meeting() {
        for seed in 0..20 {
            let (live, commits, state) = run(seed, 400, Some(30));
            let (state, taken) = state.expect("thirty commits in four hundred steps");
            let now = VirtualClock::new().now();
            let after = commits.into_iter().skip(taken);
            let restored = Meeting::restore(
                live.id.clone(),
                live.config.clone(),
                now,
                Some(state),
                after,
            );
            let (a, b) = (live.state(), restored.state());
            assert_eq!(
                (a.seq, a.participants, a.tracks),
                (b.seq, b.participants, b.tracks)
            );
        }
    }

    #[test]
    fn after_a_restore_the_sequence_goes_on_and_sessions_resume_with_their_secret() {
        let (live, commits, _) = run(7, 300, None);
        let mut clock = VirtualClock::new();
        let mut m = Meeting::restore(
            live.id.clone(),
            live.config.clone(),
            clock.now(),
            None,
            commits,
        );
        let seq = m.seq();
        let someone = m
            .participants
            .values()
            .next()
            .map(|p| (p.info.id, p.info.identity.clone()));
        let (id, identity) = someone.expect("people are in");
        let n: u64 = identity.trim_start_matches("id").parse().unwrap();
        // Everyone counts as gone until present or resumed.
        assert!(m.poll_timeout().is_some());
        assert!(m
            .handle_resume(clock.now(), id, &identity, "wrong", seq)
            .is_err());
        assert!(m
            .handle_resume(clock.now(), id, &identity, &format!("secret{n}"), seq)
            .is_ok());
        let p = m
            .handle_join(clock.advance(Duration::from_millis(5)), joiner(10_000))
            .unwrap();
        assert!(p.0 > id.0, "ids go on");
        let out: Vec<Output> = std::iter::from_fn(|| m.poll_output()).collect();
        let first = out.iter().find_map(|o| match o {
            Output::Commit(c) => c.events.first().map(|e| e.seq),
            _ => None,
        });
        assert_eq!(
            first,
            Some(Seq(seq.0 + 1)),
            "the sequence continues: {out:?}"
        );
    }

    #[test]
    fn those_not_present_after_a_restore_expire() {
        let (live, commits, _) = run(3, 300, None);
        let clock = VirtualClock::new();
        let t = clock.now();
        let mut m = Meeting::restore(live.id.clone(), live.config.clone(), t, None, commits);
        let people: Vec<ParticipantId> = m.participants.keys().copied().collect();
        assert!(people.len() >= 2);
        let (kept, gone) = people.split_at(1);
        m.handle_present(t, kept);
        m.handle_timeout(t + m.config.resume_window);
        let ended: Vec<ParticipantId> = std::iter::from_fn(|| m.poll_output())
            .filter_map(|o| match o {
                Output::SessionEnded { participant, .. } => Some(participant),
                _ => None,
            })
            .collect();
        assert_eq!(ended, gone);
        assert_eq!(m.count(), 1);
    }

    #[test]
    fn commits_and_states_survive_json() {
        let (live, commits, _) = run(1, 200, None);
        for c in &commits {
            let text = serde_json::to_string(c).unwrap();
            assert_eq!(&serde_json::from_str::<Commit>(&text).unwrap(), c);
        }
        let state = live.state();
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<MeetingState>(&text).unwrap(), state);
        assert!(!text.contains("secret1\""), "no session secret is kept");
    }
}
