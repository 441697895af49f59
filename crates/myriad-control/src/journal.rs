//! A meeting's journal on the bus: its commits in an ordered log, appended before their events
//! go out, and now and then its whole state in a KV bucket, so that a coordinator taking over
//! rebuilds the meeting ([`myriad_room::Meeting::restore`]) and its sequence goes on.
//!
//! A state is larger than a bus message may be (about 200 bytes per person: 2 MB at 10,000),
//! so it is written in parts first, then an index naming them under the meeting's key; the
//! parts of the state before are deleted once the new index stands.
//!
//! Both are fenced: an append names the log position it follows and an index write the
//! revision it replaces, so a coordinator that lost the meeting to another cannot add to
//! either.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Kv, KvConfig, Log, LogConfig};
use myriad_proto::bus::{decode, encode, BusMessage};
use myriad_proto::MeetingId;
use myriad_room::{Commit, MeetingState};
use serde::{Deserialize, Serialize};

const LOG: &str = "MYRIAD_MEETINGS";
const STATES: &str = "myriad_meeting_state";
/// Commits are kept this long (a meeting's state, written often, stands for older ones).
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// A state is written after this many commits or this long, whichever comes first.
const STATE_EVERY_COMMITS: usize = 500;
const STATE_EVERY: Duration = Duration::from_secs(5);
/// Commits read per request when a meeting is rebuilt.
const READ_PAGE: usize = 256;
/// A state is stored in parts of at most this many bytes (below the bus's
/// [`myriad_bus::MAX_PAYLOAD`]).
const STATE_PART: usize = 512 * 1024;
/// Reads of a state whose parts vanished under the reader (a newer state replaced them).
const STATE_READS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("another coordinator wrote to the meeting's journal: this one is fenced off")]
    Fenced,
    #[error("the journal is unreachable: {0}")]
    Bus(BusError),
    #[error("the journal holds something unreadable: {0}")]
    Corrupt(String),
}

impl From<BusError> for JournalError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::WrongRevision { .. } => JournalError::Fenced,
            e => JournalError::Bus(e),
        }
    }
}

/// A meeting's state as written, with the last log position it includes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredState {
    log_seq: u64,
    state: MeetingState,
}

impl BusMessage for StoredState {
    const KIND: &'static str = "meeting.state";
    const VERSION: u32 = 1;
}

/// The entry under a meeting's key: where its state's parts are. The parts, concatenated,
/// are one encoded [`StoredState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateIndex {
    /// The log position of the state (names its parts).
    log_seq: u64,
    parts: u32,
}

impl BusMessage for StateIndex {
    const KIND: &'static str = "meeting.state.index";
    const VERSION: u32 = 1;
}

fn part_key(meeting_key: &str, log_seq: u64, part: u32) -> String {
    format!("{meeting_key}.{log_seq}.{part}")
}

/// What the journal held when it was opened.
pub(crate) struct History {
    pub state: Option<MeetingState>,
    pub commits: Vec<Commit>,
}

impl History {
    pub(crate) fn is_empty(&self) -> bool {
        self.state.is_none() && self.commits.is_empty()
    }
}

pub(crate) struct Journal {
    log: Arc<dyn Log>,
    states: Arc<dyn Kv>,
    subject: String,
    key: String,
    /// The log position of the meeting's last commit (0: none).
    last: u64,
    /// The revision of the meeting's state index, if one was written.
    state_revision: Option<u64>,
    /// What the index names now: its parts are deleted when the next state stands.
    state_index: Option<StateIndex>,
    commits_since_state: usize,
    state_at: Instant,
}

impl Journal {
    /// Opens the meeting's journal and reads what it holds: the last state and the commits
    /// after it.
    pub(crate) async fn open(
        bus: &dyn Bus,
        meeting: &MeetingId,
    ) -> Result<(Journal, History), JournalError> {
        let log = bus
            .log(LogConfig {
                name: LOG.to_owned(),
                subjects: "myriad.journal.>".to_owned(),
                max_age: KEEP,
            })
            .await?;
        let states = bus
            .kv(KvConfig {
                bucket: STATES.to_owned(),
                ttl: Some(KEEP),
            })
            .await?;
        let subject = format!("myriad.journal.{meeting}");
        let key = meeting.to_string();
        let LastState {
            state,
            log_seq: mut after,
            index: state_index,
            revision: state_revision,
        } = read_state(states.as_ref(), &key).await?;
        let mut commits = Vec::new();
        let mut last = after;
        loop {
            let page = log.read(&subject, after, READ_PAGE).await?;
            for stored in &page {
                let commit: Commit =
                    decode(&stored.payload).map_err(|e| JournalError::Corrupt(e.to_string()))?;
                commits.push(commit);
                last = stored.seq;
            }
            match page.last() {
                Some(m) if page.len() == READ_PAGE => after = m.seq,
                _ => break,
            }
        }
        // The log may hold nothing newer than the state; its last position is still ours
        // to follow.
        if let Some(seq) = log.last(&subject).await? {
            last = last.max(seq);
        }
        let journal = Journal {
            log,
            states,
            subject,
            key,
            last,
            state_revision,
            state_index,
            commits_since_state: commits.len(),
            state_at: Instant::now(),
        };
        Ok((journal, History { state, commits }))
    }

    /// Appends a commit after the last one this coordinator knows of.
    pub(crate) async fn append(&mut self, commit: &Commit) -> Result<(), JournalError> {
        let payload = Bytes::from(encode(commit));
        self.last = self
            .log
            .append(&self.subject, payload, Some(self.last))
            .await?;
        self.commits_since_state += 1;
        Ok(())
    }

    /// Whether a state is due (many commits, or a while, since the last one).
    pub(crate) fn state_due(&self, now: Instant) -> bool {
        self.commits_since_state >= STATE_EVERY_COMMITS
            || (self.commits_since_state > 0 && now.duration_since(self.state_at) >= STATE_EVERY)
    }

    /// Writes the meeting's whole state as of the last commit: its parts, then the index. A
    /// failed write is tried again at the next due time, not at the next commit.
    pub(crate) async fn save_state(
        &mut self,
        state: MeetingState,
        now: Instant,
    ) -> Result<(), JournalError> {
        self.commits_since_state = 0;
        self.state_at = now;
        let log_seq = self.last;
        let bytes = Bytes::from(encode(&StoredState { log_seq, state }));
        let index = StateIndex {
            log_seq,
            parts: bytes.len().div_ceil(STATE_PART) as u32,
        };
        if let Err(e) = self.write_state(&bytes, index).await {
            self.delete_parts(index).await;
            return Err(e);
        }
        match self.state_index.replace(index) {
            Some(before) if before.log_seq != index.log_seq => self.delete_parts(before).await,
            _ => {}
        }
        Ok(())
    }

    async fn write_state(&mut self, bytes: &Bytes, index: StateIndex) -> Result<(), JournalError> {
        for (i, start) in (0..bytes.len()).step_by(STATE_PART).enumerate() {
            let part = bytes.slice(start..bytes.len().min(start + STATE_PART));
            self.states
                .put(&part_key(&self.key, index.log_seq, i as u32), part)
                .await?;
        }
        let payload = Bytes::from(encode(&index));
        let revision = match self.state_revision {
            Some(rev) => self.states.update(&self.key, payload, rev).await?,
            None => match self.states.create(&self.key, payload).await {
                Ok(rev) => rev,
                Err(BusError::Exists) => return Err(JournalError::Fenced),
                Err(e) => return Err(e.into()),
            },
        };
        self.state_revision = Some(revision);
        Ok(())
    }

    /// Deletes a state's parts (what is left expires with the bucket's age limit).
    async fn delete_parts(&self, index: StateIndex) {
        for part in 0..index.parts {
            let key = part_key(&self.key, index.log_seq, part);
            if let Err(e) = self.states.delete(&key).await {
                tracing::debug!(%key, "state part not deleted: {e}");
            }
        }
    }
}

/// A meeting's last state as read.
#[derive(Default)]
struct LastState {
    state: Option<MeetingState>,
    /// The log position the state includes (0: none).
    log_seq: u64,
    index: Option<StateIndex>,
    /// The revision of the meeting's entry.
    revision: Option<u64>,
}

/// The meeting's last state. The parts are read again from a fresh index when one vanished
/// under the reader: a coordinator wrote a newer state meanwhile.
async fn read_state(states: &dyn Kv, key: &str) -> Result<LastState, JournalError> {
    let corrupt = |e: &dyn std::fmt::Display| JournalError::Corrupt(e.to_string());
    for _ in 0..STATE_READS {
        let Some(entry) = states.get(key).await? else {
            return Ok(LastState::default());
        };
        let index: StateIndex = match decode(&entry.value) {
            Ok(index) => index,
            // Written whole by an earlier version: read it, and the next index replaces it.
            Err(e) => match decode::<StoredState>(&entry.value) {
                Ok(stored) => {
                    return Ok(LastState {
                        state: Some(stored.state),
                        log_seq: stored.log_seq,
                        index: None,
                        revision: Some(entry.revision),
                    })
                }
                Err(_) => return Err(corrupt(&e)),
            },
        };
        let mut bytes = Vec::new();
        let mut complete = true;
        for part in 0..index.parts {
            match states.get(&part_key(key, index.log_seq, part)).await? {
                Some(p) => bytes.extend_from_slice(&p.value),
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            let stored: StoredState = decode(&bytes).map_err(|e| corrupt(&e))?;
            if stored.log_seq != index.log_seq {
                return Err(corrupt(&"a state's parts are of another state"));
            }
            return Ok(LastState {
                state: Some(stored.state),
                log_seq: index.log_seq,
                index: Some(index),
                revision: Some(entry.revision),
            });
        }
    }
    Err(corrupt(&"the state's parts keep vanishing"))
}

#[cfg(test)]
mod tests {
    use myriad_bus::{InProcessBus, MAX_PAYLOAD};
    use myriad_proto::Role;
    use myriad_room::{JoinRequest, Meeting, MeetingConfig, Output, Permissions};

    use super::*;

    /// A meeting of `people` attendees, and its commits.
    fn meeting(people: usize, now: Instant) -> (Meeting, Vec<Commit>) {
        let config = MeetingConfig {
            max_participants: people as u32,
            ..MeetingConfig::default()
        };
        let mut m = Meeting::new(MeetingId::parse("m1").unwrap(), config, now);
        let mut commits = Vec::new();
        for i in 0..people {
            let name = format!("attendee number {i}");
            m.handle_join(
                now,
                JoinRequest {
                    identity: name.clone(),
                    name,
                    role: Role::Attendee,
                    permissions: Permissions {
                        publish: false,
                        subscribe: true,
                        moderate: false,
                    },
                    session_token: format!("a session token of attendee {i}"),
                },
            )
            .unwrap();
            commits.extend(
                std::iter::from_fn(|| m.poll_output()).filter_map(|o| match o {
                    Output::Commit(c) => Some(c),
                    _ => None,
                }),
            );
        }
        (m, commits)
    }

    #[tokio::test]
    async fn a_state_larger_than_a_bus_message_is_kept_in_parts_and_read_back() {
        let bus = InProcessBus::new();
        let id = MeetingId::parse("m1").unwrap();
        let now = Instant::now();
        let (m, commits) = meeting(10_000, now);
        let state = m.state();
        let size = serde_json::to_vec(&state).unwrap().len();
        assert!(size > 2 * MAX_PAYLOAD, "{size} bytes");

        let (mut journal, history) = Journal::open(&bus, &id).await.unwrap();
        assert!(history.is_empty());
        journal.append(&commits[0]).await.unwrap();
        journal.save_state(state.clone(), now).await.unwrap();
        let (_, history) = Journal::open(&bus, &id).await.unwrap();
        assert_eq!(history.state.as_ref(), Some(&state));
        assert!(history.commits.is_empty());

        // The next state replaces it; the parts of the first are deleted, and the commit
        // after the state is read with it.
        let states = bus
            .kv(KvConfig {
                bucket: STATES.to_owned(),
                ttl: Some(KEEP),
            })
            .await
            .unwrap();
        let first_parts = states.keys().await.unwrap().len() - 1;
        assert!(first_parts >= 3, "{first_parts} parts");
        journal.append(&commits[0]).await.unwrap();
        journal.save_state(state.clone(), now).await.unwrap();
        journal.append(&commits[0]).await.unwrap();
        let mut keys = states.keys().await.unwrap();
        keys.sort();
        let second: Vec<String> = ["m1".to_owned()]
            .into_iter()
            .chain((0..first_parts as u32).map(|p| part_key("m1", 2, p)))
            .collect();
        assert_eq!(keys, second);
        let (_, history) = Journal::open(&bus, &id).await.unwrap();
        assert_eq!(history.state.as_ref(), Some(&state));
        assert_eq!(history.commits, vec![commits[0].clone()]);
    }

    #[tokio::test]
    async fn a_fenced_coordinator_writes_no_state() {
        let bus = InProcessBus::new();
        let id = MeetingId::parse("m1").unwrap();
        let now = Instant::now();
        let (m, commits) = meeting(10, now);
        let (mut old, _) = Journal::open(&bus, &id).await.unwrap();
        old.append(&commits[0]).await.unwrap();
        old.save_state(m.state(), now).await.unwrap();
        // Another takes over and writes a state of its own.
        let (mut new, _) = Journal::open(&bus, &id).await.unwrap();
        new.append(&commits[0]).await.unwrap();
        new.save_state(m.state(), now).await.unwrap();
        assert!(matches!(
            old.append(&commits[0]).await,
            Err(JournalError::Fenced)
        ));
        assert!(matches!(
            old.save_state(m.state(), now).await,
            Err(JournalError::Fenced)
        ));
        let (_, history) = Journal::open(&bus, &id).await.unwrap();
        assert_eq!(history.state, Some(m.state()));
        assert!(history.commits.is_empty());
    }
}
