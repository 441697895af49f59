//! A meeting's journal on the bus: its commits in an ordered log, appended before their events
//! go out, and now and then its whole state in a KV bucket, so that a coordinator taking over
//! rebuilds the meeting ([`myriad_room::Meeting::restore`]) and its sequence goes on.
//!
//! Both are fenced: an append names the log position it follows and a state write the revision
//! it replaces, so a coordinator that lost the meeting to another cannot add to either.

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
    /// The revision of the meeting's state entry, if one was written.
    state_revision: Option<u64>,
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
        let (state, mut after, state_revision) = match states.get(&key).await? {
            Some(entry) => {
                let stored: StoredState =
                    decode(&entry.value).map_err(|e| JournalError::Corrupt(e.to_string()))?;
                (Some(stored.state), stored.log_seq, Some(entry.revision))
            }
            None => (None, 0, None),
        };
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

    /// Writes the meeting's whole state as of the last commit.
    pub(crate) async fn save_state(
        &mut self,
        state: MeetingState,
        now: Instant,
    ) -> Result<(), JournalError> {
        let payload = Bytes::from(encode(&StoredState {
            log_seq: self.last,
            state,
        }));
        let revision = match self.state_revision {
            Some(rev) => self.states.update(&self.key, payload, rev).await?,
            None => match self.states.create(&self.key, payload).await {
                Ok(rev) => rev,
                Err(BusError::Exists) => return Err(JournalError::Fenced),
                Err(e) => return Err(e.into()),
            },
        };
        self.state_revision = Some(revision);
        self.commits_since_state = 0;
        self.state_at = now;
        Ok(())
    }
}
