//! Wire types shared by the server, the web client and the benchmarks.
//!
//! Signalling is JSON over WebSocket. Every message is an object with a `type` tag; the client
//! states the protocol version in `join` and the server answers with its own in `welcome`.
//! Meeting state reaches clients as sequenced events (`seq` is meeting-wide and monotonic),
//! batched per tick, so a client can resume from the last `seq` it saw.

#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod board;
pub mod bus;
pub mod cluster;
mod ids;
pub mod meeting;
pub mod purge;
mod signal;

pub use ids::{MeetingId, ParticipantId, Seq, TrackId};
pub use signal::{
    Answer, Audience, BreakoutOp, BreakoutRoom, Breakouts, ChatLikes, ChatMessage, ClientMsg,
    ErrorCode, ForwardingPlan, Hands, IceServer, MeetingEvent, ParticipantInfo, PollInfo, PollKind,
    PollResults, PollState, Question, ReactionCount, Resume, Role, SeqEvent, ServerMsg, Snapshot,
    SpamReason, TrackInfo, TrackMid, TrackSource, Waiter, WaitingRoom, REACTIONS,
};

/// Version of the signalling protocol spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest chat message, in bytes.
pub const MAX_CHAT_BYTES: usize = 2000;

/// Largest signalling message a server accepts, in bytes. SDP offers with simulcast are a few
/// KiB; anything near this limit is abuse.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
