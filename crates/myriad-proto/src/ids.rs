use std::fmt;

use serde::{Deserialize, Serialize};

/// A meeting's public identifier: 1–64 characters of `[A-Za-z0-9_-]`, safe in URLs and paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeetingId(String);

impl MeetingId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, InvalidMeetingId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidMeetingId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMeetingId;

impl fmt::Display for InvalidMeetingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("meeting id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")
    }
}

impl std::error::Error for InvalidMeetingId {}

impl TryFrom<String> for MeetingId {
    type Error = InvalidMeetingId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MeetingId> for String {
    fn from(id: MeetingId) -> String {
        id.0
    }
}

impl fmt::Display for MeetingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// A participant session within one meeting, allocated by the meeting from 1 upwards.
    ParticipantId
);
numeric_id!(
    /// A published track within one meeting, allocated by the meeting from 1 upwards.
    TrackId
);
numeric_id!(
    /// Meeting-wide event sequence number; strictly increasing, starts at 1.
    Seq
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_id_accepts_url_safe_names_only() {
        assert!(MeetingId::parse("team-sync_2").is_ok());
        assert!(MeetingId::parse("").is_err());
        assert!(MeetingId::parse("a/b").is_err());
        assert!(MeetingId::parse("ä").is_err());
        assert!(MeetingId::parse(&"x".repeat(65)).is_err());
        assert!(serde_json::from_str::<MeetingId>("\"../etc\"").is_err());
    }
}
