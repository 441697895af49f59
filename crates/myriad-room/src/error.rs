use myriad_proto::meeting::RefusalKind;

/// Why the meeting refused an input. Each is the client's doing, never a broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error("the meeting has ended")]
    MeetingEnded,
    #[error("the meeting is full")]
    MeetingFull,
    #[error("the meeting is locked: its hosts let nobody new in")]
    MeetingLocked,
    #[error("no such session, or the session token does not match")]
    UnknownSession,
    #[error("no such participant")]
    UnknownParticipant,
    #[error("no such track")]
    UnknownTrack,
    #[error("that source is already published")]
    AlreadyPublished,
    #[error("invalid chat message: {0}")]
    InvalidChat(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("the stage is full: take someone off it first")]
    StageFull,
    #[error("invalid reaction: {0}")]
    InvalidReaction(&'static str),
    #[error("no such poll")]
    UnknownPoll,
    #[error("the poll is closed")]
    PollClosed,
    #[error("you have answered this poll already")]
    AlreadyVoted,
    #[error("invalid poll: it needs {0}")]
    InvalidPoll(&'static str),
    #[error("that answer does not fit the poll")]
    InvalidAnswer,
    #[error("no such question")]
    UnknownQuestion,
    #[error("no such chat message")]
    UnknownChat,
    #[error("invalid question: it needs {0}")]
    InvalidQuestion(&'static str),
    #[error("waiting for a host to let you in")]
    Waiting,
    #[error("a host did not let you in")]
    Denied,
    #[error("nobody waits with that ticket")]
    NotWaiting,
    #[error("invalid breakout rooms: it needs {0}")]
    InvalidBreakout(&'static str),
    #[error("invalid whiteboard operation: it needs {0}")]
    InvalidBoard(&'static str),
}

impl RoomError {
    /// How the refusal travels back over the bus.
    pub fn kind(&self) -> RefusalKind {
        match self {
            RoomError::MeetingEnded => RefusalKind::MeetingEnded,
            RoomError::MeetingFull => RefusalKind::MeetingFull,
            RoomError::MeetingLocked => RefusalKind::MeetingLocked,
            RoomError::Waiting => RefusalKind::Waiting,
            RoomError::Denied => RefusalKind::Denied,
            RoomError::UnknownSession => RefusalKind::UnknownSession,
            RoomError::UnknownParticipant => RefusalKind::UnknownParticipant,
            RoomError::UnknownTrack => RefusalKind::UnknownTrack,
            RoomError::AlreadyPublished => RefusalKind::AlreadyPublished,
            RoomError::InvalidChat(_) => RefusalKind::InvalidChat,
            RoomError::Forbidden(_) => RefusalKind::Forbidden,
            RoomError::StageFull => RefusalKind::StageFull,
            RoomError::InvalidReaction(_)
            | RoomError::PollClosed
            | RoomError::InvalidPoll(_)
            | RoomError::InvalidAnswer
            | RoomError::InvalidQuestion(_)
            | RoomError::UnknownChat
            | RoomError::NotWaiting
            | RoomError::InvalidBreakout(_)
            | RoomError::InvalidBoard(_) => RefusalKind::BadRequest,
            RoomError::UnknownQuestion => RefusalKind::UnknownQuestion,
            RoomError::AlreadyVoted => RefusalKind::AlreadyVoted,
            RoomError::UnknownPoll => RefusalKind::UnknownPoll,
        }
    }
}
