//! Sans-IO meeting logic: participants, roles and permissions, sequenced events (and the gate
//! nodes pass them through), active speakers and the forwarding plan.
//!
//! No sockets, no clock, no tasks. The owner feeds inputs (`handle_*`, each with `now`) and,
//! after any input, drains [`Meeting::poll_output`] until it returns `None`, then sleeps until
//! [`Meeting::poll_timeout`] (calling [`Meeting::handle_timeout`] then) or the next input.

#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod error;
mod meeting;
mod plan;
mod seq_gate;
pub mod spam;
mod speaker;

pub use error::RoomError;
pub use meeting::{
    Addressing, Change, Commit, JoinRequest, Meeting, MeetingConfig, MeetingState, Output,
    Permissions, ReactionTally, Reason, ResumeFrom, Settled, StopReason, WAIT_REFRESH,
};
pub use myriad_proto::meeting::{Actor, EndReason};
pub use plan::plan_forwarding;
pub use seq_gate::{Passed, SeqGate};
pub use speaker::{SpeakerConfig, SpeakerDetector};

#[cfg(test)]
mod tests;
