//! Persistence in an embedded SQLite database: API keys and meetings with their settings.
//!
//! Calls are short, local and synchronous; async callers run them on a blocking thread or
//! accept the microseconds they take.

#![cfg_attr(test, allow(clippy::disallowed_methods))]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use myriad_proto::Role;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a meeting with id {0} exists already")]
    MeetingExists(String),
    #[error("stored settings are corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Per-meeting settings chosen when the meeting is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeetingSettings {
    /// Above this many people attendees get counts, not roster events.
    pub roster_broadcast_max: u32,
    pub max_participants: u32,
    /// Camera tracks forwarded (last-N speakers).
    pub last_n_video: u32,
    /// The role of people who join without a role of their own (a dev token, a link):
    /// panelists for small meetings, attendees for large ones.
    pub default_role: Role,
    /// Words that get a chat message held by the spam filter for the hosts.
    pub blocked_words: Vec<String>,
    /// When it is to take place, and for whom: what pre-warming and host feeds go by.
    pub schedule: Option<Schedule>,
}

/// A meeting planned ahead (the REST API, or an iCalendar event imported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub starts_unix_s: u64,
    pub duration_s: u32,
    /// Who holds it (an organizer's address): a host's feed lists its meetings.
    #[serde(default)]
    pub host: Option<String>,
    /// People expected, per region (invitations and registrations); `*` for those whose
    /// region is not known.
    #[serde(default)]
    pub audience: BTreeMap<String, u32>,
    /// What its people will load (slides, recordings): paths of the site, or URLs; fetched
    /// into the edges ahead of the start.
    #[serde(default)]
    pub content: Vec<String>,
}

impl Schedule {
    /// Content a meeting names at most, and the longest URL.
    pub const MAX_CONTENT: usize = 100;
    pub const MAX_CONTENT_BYTES: usize = 2048;

    /// Whether its content is within bounds.
    pub fn content_fits(&self) -> bool {
        self.content.len() <= Self::MAX_CONTENT
            && self
                .content
                .iter()
                .all(|c| c.len() <= Self::MAX_CONTENT_BYTES)
    }

    pub fn expected(&self) -> u32 {
        self.audience.values().fold(0, |a, n| a.saturating_add(*n))
    }
}

impl Default for MeetingSettings {
    fn default() -> Self {
        Self {
            roster_broadcast_max: 200,
            max_participants: 10_000,
            last_n_video: 9,
            default_role: Role::Panelist,
            blocked_words: Vec::new(),
            schedule: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRecord {
    pub id: String,
    pub title: String,
    pub created_unix_s: u64,
    pub ended_unix_s: Option<u64>,
    pub settings: MeetingSettings,
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    key TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_unix_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meetings (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_unix_s INTEGER NOT NULL,
    ended_unix_s INTEGER,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turnout (
    meeting TEXT PRIMARY KEY,
    starts_unix_s INTEGER NOT NULL,
    record TEXT NOT NULL
);
";

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (each call is one
        // statement or transaction), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first API key; created from `generate()` (key, secret) when there is none.
    pub fn ensure_api_key(
        &self,
        now_unix_s: u64,
        generate: impl FnOnce() -> (String, String),
    ) -> Result<(String, String), StoreError> {
        let conn = self.conn();
        let existing = conn
            .query_row(
                "SELECT key, secret FROM api_keys ORDER BY created_unix_s, key LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some(pair) = existing {
            return Ok(pair);
        }
        let (key, secret) = generate();
        conn.execute(
            "INSERT INTO api_keys (key, secret, created_unix_s) VALUES (?1, ?2, ?3)",
            params![key, secret, now_unix_s],
        )?;
        Ok((key, secret))
    }

    pub fn api_key_secret(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT secret FROM api_keys WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn create_meeting(&self, record: &MeetingRecord) -> Result<(), StoreError> {
        let settings = serde_json::to_string(&record.settings)?;
        let res = self.conn().execute(
            "INSERT INTO meetings (id, title, created_unix_s, ended_unix_s, settings)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                record.id,
                record.title,
                record.created_unix_s,
                record.ended_unix_s,
                settings
            ],
        );
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::MeetingExists(record.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn meeting(&self, id: &str) -> Result<Option<MeetingRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, title, created_unix_s, ended_unix_s, settings FROM meetings WHERE id = ?1",
                [id],
                MeetingRow::read,
            )
            .optional()?;
        row.map(MeetingRow::record).transpose()
    }

    /// Replaces a meeting's settings; returns false when there is no such meeting.
    pub fn update_settings(
        &self,
        id: &str,
        settings: &MeetingSettings,
    ) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(settings)?;
        let n = self.conn().execute(
            "UPDATE meetings SET settings = ?2 WHERE id = ?1",
            params![id, settings],
        )?;
        Ok(n > 0)
    }

    /// Meetings with a schedule that have not ended, soonest first.
    pub fn scheduled_meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, title, created_unix_s, ended_unix_s, settings FROM meetings
             WHERE ended_unix_s IS NULL AND json_extract(settings, '$.schedule') IS NOT NULL
             ORDER BY json_extract(settings, '$.schedule.starts_unix_s'), id",
        )?;
        let rows = stmt.query_map([], MeetingRow::read)?;
        rows.map(|row| row?.record()).collect()
    }

    /// Keeps a scheduled meeting's turnout record (JSON), replacing the one it had.
    pub fn put_turnout(
        &self,
        meeting: &str,
        starts_unix_s: u64,
        record: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO turnout (meeting, starts_unix_s, record) VALUES (?1, ?2, ?3)
             ON CONFLICT(meeting) DO UPDATE SET starts_unix_s = ?2, record = ?3",
            params![meeting, starts_unix_s, record],
        )?;
        Ok(())
    }

    pub fn turnout(&self, meeting: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM turnout WHERE meeting = ?1")?;
        let mut rows = stmt.query_map(params![meeting], |r| r.get::<_, String>(0))?;
        Ok(rows.next().transpose()?)
    }

    /// The latest `limit` turnout records, latest start first.
    pub fn turnouts(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT record FROM turnout ORDER BY starts_unix_s DESC, meeting LIMIT ?1")?;
        let rows = stmt.query_map(params![limit], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn end_meeting(&self, id: &str, now_unix_s: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE meetings SET ended_unix_s = COALESCE(ended_unix_s, ?2) WHERE id = ?1",
            params![id, now_unix_s],
        )?;
        Ok(n > 0)
    }
}

/// A row of `meetings` as selected (id, title, created, ended, settings), settings still
/// JSON text.
struct MeetingRow(String, String, u64, Option<u64>, String);

impl MeetingRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    }

    fn record(self) -> Result<MeetingRecord, StoreError> {
        let Self(id, title, created_unix_s, ended_unix_s, settings) = self;
        Ok(MeetingRecord {
            id,
            title,
            created_unix_s,
            ended_unix_s,
            settings: serde_json::from_str(&settings)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_is_created_once() {
        let s = Store::open_in_memory().unwrap();
        let a = s.ensure_api_key(1, || ("k".into(), "s".into())).unwrap();
        let b = s
            .ensure_api_key(2, || panic!("must not generate twice"))
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(s.api_key_secret("k").unwrap().as_deref(), Some("s"));
        assert_eq!(s.api_key_secret("nope").unwrap(), None);
    }

    #[test]
    fn scheduled_meetings_are_listed_soonest_first_until_they_end() {
        let s = Store::open_in_memory().unwrap();
        let meeting = |id: &str, starts: Option<u64>| MeetingRecord {
            id: id.into(),
            title: id.into(),
            created_unix_s: 1,
            ended_unix_s: None,
            settings: MeetingSettings {
                schedule: starts.map(|starts_unix_s| Schedule {
                    starts_unix_s,
                    duration_s: 3600,
                    host: Some("ana@example.org".into()),
                    audience: BTreeMap::from([("eu".into(), 300), ("us".into(), 200)]),
                    content: vec!["/slides/deck.pdf".into()],
                }),
                ..MeetingSettings::default()
            },
        };
        for m in [
            meeting("late", Some(900)),
            meeting("now", None),
            meeting("soon", Some(100)),
        ] {
            s.create_meeting(&m).unwrap();
        }
        let ids = |s: &Store| -> Vec<String> {
            s.scheduled_meetings()
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(ids(&s), ["soon", "late"]);
        let soon = &s.scheduled_meetings().unwrap()[0];
        assert_eq!(
            soon.settings.schedule.as_ref().map(Schedule::expected),
            Some(500)
        );
        s.end_meeting("soon", 200).unwrap();
        assert_eq!(ids(&s), ["late"]);
    }

    #[test]
    fn turnout_records_are_replaced_and_listed_latest_first() {
        let s = Store::open_in_memory().unwrap();
        s.put_turnout("a", 10, "{1}").unwrap();
        s.put_turnout("b", 20, "{2}").unwrap();
        s.put_turnout("a", 10, "{3}").unwrap();
        assert_eq!(s.turnout("a").unwrap().as_deref(), Some("{3}"));
        assert_eq!(s.turnout("c").unwrap(), None);
        assert_eq!(s.turnouts(10).unwrap(), ["{2}", "{3}"]);
        assert_eq!(s.turnouts(1).unwrap(), ["{2}"]);
    }

    #[test]
    fn meetings_persist_across_reopen() {
        let dir = std::env::temp_dir().join(format!("myriad-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let rec = MeetingRecord {
            id: "m1".into(),
            title: "Town hall".into(),
            created_unix_s: 10,
            ended_unix_s: None,
            settings: MeetingSettings::default(),
        };
        {
            let s = Store::open(&path).unwrap();
            s.create_meeting(&rec).unwrap();
            assert!(matches!(
                s.create_meeting(&rec),
                Err(StoreError::MeetingExists(_))
            ));
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.meeting("m1").unwrap(), Some(rec));
        assert!(s.end_meeting("m1", 20).unwrap());
        assert!(s.end_meeting("m1", 30).unwrap());
        assert_eq!(s.meeting("m1").unwrap().unwrap().ended_unix_s, Some(20));
        assert!(!s.end_meeting("zz", 1).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
