//! A meeting's messages between the nodes its people are connected to and its coordinator,
//! over the bus. Nodes ask ([`MeetingRequest`] → [`MeetingReply`], request/reply on
//! [`rpc_subject`]); the coordinator tells every node at once ([`MeetingBroadcast`] on
//! [`broadcast_subject`]): events once per batch, the forwarding plan, sessions that ended.
//! Nodes report audio levels on [`levels_subject`] (no reply; a lost report is harmless).

use serde::{Deserialize, Serialize};

use crate::bus::BusMessage;
use crate::cluster::PartitionRef;
use crate::{
    ForwardingPlan, MeetingId, ParticipantId, ParticipantInfo, Role, Seq, SeqEvent, ServerMsg,
    TrackId, TrackInfo, TrackSource,
};

/// Requests to the meeting's coordinator.
pub fn rpc_subject(meeting: &MeetingId) -> String {
    format!("myriad.meeting.{meeting}.rpc")
}

/// What the coordinator tells every node.
pub fn broadcast_subject(meeting: &MeetingId) -> String {
    format!("myriad.meeting.{meeting}.out")
}

/// Audio levels reported by nodes.
pub fn levels_subject(meeting: &MeetingId) -> String {
    format!("myriad.meeting.{meeting}.levels")
}

/// One signalling connection: the node it is on and its number there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnRef {
    pub node: String,
    pub conn: u64,
}

/// Who asks for a moderation action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The operator's backend, authenticated with the API key.
    Api,
    Participant(ParticipantId),
}

/// Why a participant's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Left,
    Removed,
    Expired,
    MeetingEnded,
    /// Another connection resumed this session.
    Replaced,
}

/// Who joins, from their verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joiner {
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub publish: bool,
    pub subscribe: bool,
    pub moderate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MeetingRequest {
    Join {
        joiner: Joiner,
        session_token: String,
        conn: ConnRef,
    },
    /// `identity` is from the new connection's token and must be the session's.
    Resume {
        identity: String,
        participant: ParticipantId,
        session_token: String,
        last_seq: Seq,
        conn: ConnRef,
    },
    /// The connection dropped; the session may be resumed for a while.
    Disconnect {
        participant: ParticipantId,
        conn: ConnRef,
    },
    /// A join through this connection went unanswered: whatever session it made is
    /// disconnected (and expires unless resumed).
    ConnLost {
        conn: ConnRef,
    },
    Leave {
        participant: ParticipantId,
    },
    Mute {
        actor: Actor,
        target: ParticipantId,
        source: TrackSource,
        muted: bool,
    },
    Remove {
        actor: Actor,
        target: ParticipantId,
    },
    Chat {
        participant: ParticipantId,
        text: String,
        #[serde(default)]
        to_hosts: bool,
        #[serde(default)]
        mentions: Vec<ParticipantId>,
    },
    Spotlight {
        actor: Actor,
        target: Option<ParticipantId>,
    },
    /// A host (or the API) sets the meeting's default role (the directory keeps it too).
    SetDefaultRole {
        actor: Actor,
        role: Role,
    },
    SetRole {
        actor: Actor,
        target: ParticipantId,
        role: Role,
    },
    Hand {
        participant: ParticipantId,
        raised: bool,
    },
    CreatePoll {
        actor: Actor,
        question: String,
        kind: crate::PollKind,
        anonymous: bool,
    },
    Vote {
        participant: ParticipantId,
        poll: u64,
        answer: crate::Answer,
    },
    ClosePoll {
        actor: Actor,
        poll: u64,
    },
    /// A poll's answers, for its export: answered with [`MeetingReply::PollAnswers`].
    PollAnswers {
        poll: u64,
    },
    MuteAll {
        actor: Actor,
    },
    SetAudience {
        actor: Actor,
        audience: crate::Audience,
    },
    /// Chat messages before `before`, at most `limit`: answered with
    /// [`MeetingReply::ChatHistory`].
    ChatHistory {
        before: u64,
        limit: u32,
        /// Who asks (messages to the hosts are left out for others); none: the API.
        #[serde(default)]
        participant: Option<ParticipantId>,
    },
    DeleteChat {
        actor: Actor,
        id: u64,
    },
    ReleaseChat {
        actor: Actor,
        id: u64,
    },
    LikeChat {
        participant: ParticipantId,
        id: u64,
    },
    BanChat {
        actor: Actor,
        target: ParticipantId,
        banned: bool,
    },
    Ask {
        participant: ParticipantId,
        text: String,
    },
    Upvote {
        participant: ParticipantId,
        question: u64,
    },
    /// A moderator answers (`dismiss` false; in writing or live) or dismisses a question.
    SettleQuestion {
        actor: Actor,
        question: u64,
        dismiss: bool,
        text: Option<String>,
    },
    Lock {
        actor: Actor,
        locked: bool,
    },
    SetWaitingRoom {
        actor: Actor,
        on: bool,
    },
    Breakouts {
        actor: Actor,
        breakout: crate::BreakoutOp,
    },
    Board {
        participant: ParticipantId,
        board: crate::board::BoardOp,
    },
    /// The whiteboard: answered with [`MeetingReply::Board`].
    BoardState,
    /// The way into a breakout room: answered with [`MeetingReply::BreakoutPass`].
    BreakoutPass {
        participant: ParticipantId,
        room: Option<u32>,
    },
    /// Lets in (or turns away) whoever waits with `ticket`, or everyone waiting.
    Admit {
        actor: Actor,
        ticket: Option<u64>,
        admit: bool,
    },
    /// A moderator (or the API) ends the meeting for everyone.
    End {
        actor: Actor,
    },
    /// A node's reactions since its last such request, counted.
    Reactions {
        counts: Vec<crate::ReactionCount>,
    },
    /// Lowers `target`'s hand, or every hand.
    LowerHands {
        actor: Actor,
        target: Option<ParticipantId>,
    },
    Stage {
        actor: Actor,
        target: ParticipantId,
        on: bool,
    },
    /// The participant's media connection, in `partition`, offers a track from `source`.
    Publish {
        participant: ParticipantId,
        source: TrackSource,
        partition: PartitionRef,
    },
    /// The tracks published and the forwarding plan (a node's link starting, or after a
    /// takeover).
    Media,
    /// `node` readies `seats` for people forecast to come through it (a warm-up ahead of a
    /// scheduled start): partitions open there and the meeting stays open, empty, for
    /// `hold_ms`. Answered with [`MeetingReply::Prepared`].
    Prepare {
        node: String,
        seats: u32,
        hold_ms: u64,
    },
    /// The participant's media connection is gone (or replaced): its tracks with it.
    MediaClosed {
        participant: ParticipantId,
    },
    Participants {
        after: Option<ParticipantId>,
        limit: u32,
    },
    /// A node's connections to the meeting, all of them as of its connection number
    /// `up_to` (sent every few seconds, and at once when a coordinator took over): those
    /// bound to a participant, and those still joining. A participant the coordinator has on
    /// that node through an earlier connection that is not listed is disconnected (its
    /// session expires unless it resumes); one listed and not connected anywhere is
    /// connected again.
    Present {
        node: String,
        up_to: u64,
        present: Vec<Presence>,
        joining: Vec<u64>,
    },
    /// Which nodes a client (from `region`, if known) should connect to, best first.
    Route {
        region: Option<String>,
    },
    /// The events after `after` (a node missed some broadcast batches).
    Missed {
        after: Seq,
    },
}

/// A participant connected to a node, and the partition carrying it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    pub participant: ParticipantId,
    pub conn: ConnRef,
    pub partition: Option<PartitionRef>,
}

impl BusMessage for MeetingRequest {
    const KIND: &'static str = "meeting.request";
    const VERSION: u32 = 1;
}

/// Why the coordinator refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    MeetingEnded,
    MeetingFull,
    MeetingLocked,
    /// Not in yet: the joiner waits until a host lets it in (it asks again meanwhile).
    Waiting,
    /// A host turned the joiner away.
    Denied,
    UnknownSession,
    UnknownParticipant,
    UnknownTrack,
    AlreadyPublished,
    InvalidChat,
    Forbidden,
    /// The stage holds as many as it may.
    StageFull,
    AlreadyVoted,
    UnknownPoll,
    UnknownQuestion,
    /// The node asked through has no free seat in the meeting's partitions: connect where
    /// [`MeetingRequest::Route`] says.
    NodeFull,
    /// The request itself could not be read (version, shape).
    BadRequest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MeetingReply {
    /// Joined or resumed: the welcome to send to the client, then the events it missed;
    /// together they bring the client to `seq`, and events after it follow.
    Joined {
        participant: ParticipantId,
        welcome: Box<ServerMsg>,
        #[serde(default)]
        missed: Vec<SeqEvent>,
        seq: Seq,
        /// Where its media goes on the node it joined through.
        partition: Option<PartitionRef>,
    },
    Published {
        track: TrackId,
    },
    Media {
        tracks: Vec<TrackInfo>,
        plan: ForwardingPlan,
        partitions: Vec<PartitionRef>,
        /// The meeting's last event: broadcasts after it follow.
        seq: Seq,
    },
    /// The events asked for; `None` when some are too old to be kept.
    Missed {
        events: Option<Vec<SeqEvent>>,
    },
    /// Node names, best first.
    Route {
        nodes: Vec<String>,
    },
    /// People seated in the meeting now.
    Prepared {
        seated: u32,
    },
    /// The answer to [`MeetingRequest::Present`]: the meeting's last event (a node that has
    /// not got it lost a batch, and asks for what it missed).
    Presence {
        seq: Seq,
    },
    Page {
        count: u32,
        participants: Vec<ParticipantInfo>,
    },
    PollCreated {
        poll: u64,
    },
    ChatHistory {
        messages: Vec<crate::ChatMessage>,
    },
    /// A poll and its answers in the order given, each with who gave it (none in an
    /// anonymous poll).
    PollAnswers {
        poll: crate::PollState,
        answers: Vec<GivenAnswer>,
    },
    Board {
        shapes: Vec<crate::board::DrawnShape>,
        seq: Seq,
    },
    /// `participant` may go to breakout `room`, whose meeting is `meeting`; it moderates
    /// there if it moderates here.
    BreakoutPass {
        room: u32,
        meeting: crate::MeetingId,
        moderate: bool,
    },
    Done,
    Refused {
        kind: RefusalKind,
        message: String,
    },
}

impl BusMessage for MeetingReply {
    const KIND: &'static str = "meeting.reply";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MeetingBroadcast {
    /// Sequenced events, in order, for everyone in the meeting; `sent_unix_ms` is when the
    /// coordinator sent them (nodes measure how late they are).
    Events {
        events: Vec<SeqEvent>,
        #[serde(default)]
        sent_unix_ms: u64,
    },
    Plan {
        plan: ForwardingPlan,
    },
    /// The meeting's open partitions changed: these are open now.
    Partitions {
        partitions: Vec<PartitionRef>,
    },
    /// A session is over; `conn` is the connection it had (none while disconnected).
    SessionEnded {
        participant: ParticipantId,
        conn: Option<ConnRef>,
        reason: EndReason,
    },
    /// The coordinator stopped (the meeting ended, or nobody was in it for a while).
    Stopped,
    /// A coordinator took the meeting over (with this lease epoch): nodes say who is
    /// connected to them ([`MeetingRequest::Present`]).
    TookOver {
        epoch: u64,
    },
}

impl BusMessage for MeetingBroadcast {
    const KIND: &'static str = "meeting.broadcast";
    const VERSION: u32 = 1;
}

/// The loudest level per local participant over the last interval, in dBov.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioLevels {
    pub levels: Vec<(ParticipantId, f32)>,
}

impl BusMessage for AudioLevels {
    const KIND: &'static str = "meeting.levels";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{decode, encode};

    #[test]
    fn requests_and_replies_round_trip() {
        let req = MeetingRequest::Resume {
            identity: "ada".into(),
            participant: ParticipantId(3),
            session_token: "s".into(),
            last_seq: Seq(9),
            conn: ConnRef {
                node: "n1".into(),
                conn: 7,
            },
        };
        assert_eq!(decode::<MeetingRequest>(&encode(&req)), Ok(req));
        let reply = MeetingReply::Refused {
            kind: RefusalKind::Forbidden,
            message: "no".into(),
        };
        assert_eq!(decode::<MeetingReply>(&encode(&reply)), Ok(reply));
        let b = MeetingBroadcast::SessionEnded {
            participant: ParticipantId(1),
            conn: None,
            reason: EndReason::Expired,
        };
        assert_eq!(decode::<MeetingBroadcast>(&encode(&b)), Ok(b));
    }

    #[test]
    fn a_request_is_not_a_broadcast_and_unknown_ops_are_refused() {
        let bytes = encode(&MeetingRequest::End { actor: Actor::Api });
        assert!(decode::<MeetingBroadcast>(&bytes).is_err());
        let unknown = br#"{"v":1,"kind":"meeting.request","body":{"op":"launch"}}"#;
        assert!(decode::<MeetingRequest>(unknown).is_err());
    }

    #[test]
    fn subjects_are_one_token_per_meeting() {
        let m = MeetingId::parse("abc-def_1").unwrap();
        assert_eq!(rpc_subject(&m), "myriad.meeting.abc-def_1.rpc");
        assert_eq!(broadcast_subject(&m).split('.').count(), 4);
    }
}

/// An answer to a poll, with who gave it in a named poll.
pub type GivenAnswer = (Option<Voter>, crate::Answer);

/// Who gave an answer in a named poll, as they were named then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    pub identity: String,
    pub name: String,
}
