use serde::{Deserialize, Serialize};

use crate::{MeetingId, ParticipantId, Seq, TrackId};

/// What a participant may do in a meeting. Permissions derive from the role and the grants of
/// the access token; the server checks them on every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    /// Moderates like a host, but cannot change hosts' and co-hosts' roles nor make any.
    CoHost,
    Panelist,
    Attendee,
}

impl Role {
    /// Whether the role publishes media (microphone, camera, screen).
    pub fn publishes(self) -> bool {
        self != Role::Attendee
    }

    /// Whether the role moderates (mutes, removes, changes roles).
    pub fn moderates(self) -> bool {
        matches!(self, Role::Host | Role::CoHost)
    }

    /// Whether its join and leave reach everyone in a large meeting (people who may appear
    /// on stage and who run the meeting).
    pub fn is_announced(self) -> bool {
        self != Role::Attendee
    }
}

/// Where a published track comes from; the client declares it when it offers the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Microphone,
    Camera,
    Screen,
}

impl TrackSource {
    pub fn is_audio(self) -> bool {
        matches!(self, TrackSource::Microphone)
    }
}

/// Resume a session after the signalling connection dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub participant: ParticipantId,
    pub session_token: String,
    /// The last event sequence number the client applied.
    pub last_seq: Seq,
}

/// A mid in an SDP offer with the meaning the sender gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackMid {
    pub mid: String,
    /// For a client offer: the source of a track it sends on this mid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
    /// For a server offer: the meeting track the server sends on this mid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackId>,
}

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on a connection: authenticate with an access token, or resume.
    Join {
        v: u32,
        token: String,
        #[serde(default)]
        resume: Option<Resume>,
    },
    /// An SDP offer from the client (it publishes or changes what it publishes).
    Offer {
        sdp: String,
        tracks: Vec<TrackMid>,
        /// The first offer of a new peer connection (the old one failed): the server drops
        /// the old media connection and its tracks.
        #[serde(default)]
        restart: bool,
    },
    /// The client's answer to the server's last offer.
    Answer {
        sdp: String,
    },
    /// The client muted or unmuted one of its sources.
    Mute {
        source: TrackSource,
        muted: bool,
    },
    /// How the client shows video: the tallest tile it renders, and whom it pinned.
    View {
        max_height: u32,
        #[serde(default)]
        pinned: Vec<ParticipantId>,
    },
    /// A chat message to everyone in the meeting, or to its hosts only; `mentions` are the
    /// people it @mentions (a host's mention brings their video to everyone for a while).
    Chat {
        text: String,
        #[serde(default)]
        to_hosts: bool,
        #[serde(default)]
        mentions: Vec<ParticipantId>,
    },
    /// A host sets the role of people who join without one of their own (a link), from now
    /// on: panelists in a small meeting, attendees in a large one.
    SetDefaultRole {
        role: Role,
    },
    /// A moderator puts someone in the spotlight (first in everyone's video), or nobody.
    Spotlight {
        #[serde(default)]
        participant: Option<ParticipantId>,
    },
    /// A moderator gives someone another role; its grants follow at once.
    SetRole {
        participant: ParticipantId,
        role: Role,
    },
    /// A reaction, one of [`REACTIONS`]; everyone sees them counted per tick.
    React {
        emoji: String,
    },
    /// A moderator opens a poll; everyone learns of it.
    CreatePoll {
        question: String,
        kind: PollKind,
        #[serde(default)]
        anonymous: bool,
    },
    /// One answer per person per poll.
    Vote {
        poll: u64,
        answer: Answer,
    },
    /// A moderator closes a poll: no more answers, the final results go to everyone.
    ClosePoll {
        poll: u64,
    },
    /// A moderator mutes someone's source (only its owner unmutes it).
    MuteOther {
        participant: ParticipantId,
        source: TrackSource,
    },
    /// A moderator mutes every microphone but its own.
    MuteAll,
    /// A moderator removes someone from the meeting.
    Remove {
        participant: ParticipantId,
    },
    /// A moderator locks the meeting (nobody new joins) or opens it again.
    Lock {
        locked: bool,
    },
    /// A moderator ends the meeting for everyone.
    EndMeeting,
    /// Older chat: the messages before `before` (a message id), newest last.
    ChatHistory {
        before: u64,
    },
    /// A moderator releases a message the spam filter held: everyone gets it.
    ReleaseChat {
        id: u64,
    },
    /// Likes a chat message to everyone, once.
    LikeChat {
        id: u64,
    },
    /// A moderator deletes a chat message for everyone.
    DeleteChat {
        id: u64,
    },
    /// A moderator stops (or lets again) someone's chat.
    BanChat {
        participant: ParticipantId,
        banned: bool,
    },
    /// A moderator switches audience mode and what attendees may do.
    SetAudience {
        audience: Audience,
    },
    /// Ask the hosts a question.
    Ask {
        text: String,
    },
    /// Upvote someone's question, once.
    Upvote {
        question: u64,
    },
    /// A moderator answers a question: in writing, or live (no text).
    AnswerQuestion {
        question: u64,
        #[serde(default)]
        text: Option<String>,
    },
    /// A moderator dismisses a question.
    DismissQuestion {
        question: u64,
    },
    /// Raise or lower one's own hand.
    Hand {
        raised: bool,
    },
    /// A moderator lowers someone's hand, or everyone's (no participant).
    LowerHands {
        #[serde(default)]
        participant: Option<ParticipantId>,
    },
    /// A moderator invites someone to the stage or takes them off it; anyone may step off.
    Stage {
        participant: ParticipantId,
        on: bool,
    },
    /// A moderator turns the waiting room on (newcomers wait until let in) or off (those
    /// waiting come in).
    SetWaitingRoom {
        on: bool,
    },
    /// A moderator lets in (`admit`) or turns away someone waiting, by ticket, or everyone
    /// waiting (no ticket).
    Admit {
        #[serde(default)]
        ticket: Option<u64>,
        admit: bool,
    },
    /// A moderator sets up, opens, closes or speaks to the breakout rooms.
    Breakouts {
        op: BreakoutOp,
    },
    /// Asks to go to a breakout room: one's own, or (moderators, or when people choose) the
    /// one given. Answered with `breakout`: the room's meeting and a token to join it.
    JoinBreakout {
        #[serde(default)]
        room: Option<u32>,
    },
    /// Draws on the whiteboard, erases, undoes one's own latest shape, or (moderators)
    /// clears it.
    Board {
        op: crate::board::BoardOp,
    },
    /// The whiteboard as it is: answered with `board`; the events after its `seq` follow.
    BoardState,
    /// Leave the meeting for good (no resume).
    Leave,
    Ping,
}

/// What moderators do with breakout rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum BreakoutOp {
    /// Makes `count` rooms, numbered from 1, nobody in them yet (not while they are open).
    Create { count: u32 },
    /// Puts someone in a room, or in none.
    Assign {
        participant: ParticipantId,
        room: Option<u32>,
    },
    /// Spreads everyone who does not moderate evenly over the rooms.
    AutoAssign,
    /// Opens the rooms: people go to theirs, or pick one when `choose`; after `minutes`
    /// everyone is called back.
    Open {
        #[serde(default)]
        minutes: Option<u32>,
        #[serde(default)]
        choose: bool,
    },
    /// Calls everyone back to the main room.
    Close,
    /// A message to everyone, in whichever room.
    Broadcast { text: String },
}

impl ClientMsg {
    /// A chat message to everyone, mentioning nobody.
    pub fn chat(text: String) -> Self {
        ClientMsg::Chat {
            text,
            to_hosts: false,
            mentions: Vec::new(),
        }
    }
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        v: u32,
        meeting: MeetingId,
        you: ParticipantInfo,
        /// Secret that lets this client resume the session after a disconnect.
        session_token: String,
        /// Whether this was a resume of an existing session.
        resumed: bool,
        /// Where to start from; absent on a resume that the missed events (sent next) cover.
        snapshot: Option<Box<Snapshot>>,
    },
    Answer {
        sdp: String,
    },
    Offer {
        sdp: String,
        tracks: Vec<TrackMid>,
    },
    /// Which meeting track each of the client's receiving slots (its server-offered mids)
    /// carries now; a slot without a track carries nothing. Sent when it changes.
    Slots {
        slots: Vec<TrackMid>,
    },
    /// Sequenced meeting events, in order, batched per tick.
    Events {
        events: Vec<SeqEvent>,
    },
    /// The media connection failed; the client should open a new one with a fresh offer.
    MediaClosed {
        reason: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
    /// The chat messages asked for with `chat_history`, oldest first (none: no older ones).
    ChatHistory {
        messages: Vec<ChatMessage>,
    },
    /// The meeting has a waiting room: the client waits on this connection until a host lets
    /// it in (a welcome follows) or turns it away (an error `denied`).
    Waiting,
    /// The whiteboard's shapes in drawing order, as of the meeting's event `seq` (apply the
    /// board events after it).
    Board {
        shapes: Vec<crate::board::DrawnShape>,
        seq: Seq,
    },
    /// The way into a breakout room: join `meeting` with `token` (a second connection; this
    /// one stays, and tells when the rooms close).
    Breakout {
        room: u32,
        meeting: MeetingId,
        token: String,
    },
    /// The STUN/TURN servers for this client's media connection (its RTCPeerConnection's
    /// `iceServers`), with credentials of its own; sent before the welcome when the node has
    /// TURN servers, for networks that block UDP.
    IceServers {
        servers: Vec<IceServer>,
    },
}

/// One entry of a WebRTC `iceServers` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The meeting state a client starts from; events with `seq` greater than `seq` follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub seq: Seq,
    pub count: u32,
    /// The people relevant to this client (all of them in a small meeting; publishers and
    /// hosts in a large one).
    pub participants: Vec<ParticipantInfo>,
    pub tracks: Vec<TrackInfo>,
    pub active_speakers: Vec<ParticipantId>,
    #[serde(default)]
    pub hands: Hands,
    /// The meeting's polls, with their results so far.
    #[serde(default)]
    pub polls: Vec<PollState>,
    /// Nobody new may join.
    #[serde(default)]
    pub locked: bool,
    /// The role of people who join without one of their own.
    #[serde(default = "panelist")]
    pub default_role: Role,
    /// Who is in the spotlight, and who a host's mention features for a while.
    #[serde(default)]
    pub spotlight: Option<ParticipantId>,
    #[serde(default)]
    pub mentioned: Vec<ParticipantId>,
    /// The Q&A's questions, dismissed ones left out.
    #[serde(default)]
    pub questions: Vec<Question>,
    #[serde(default)]
    pub audience: Audience,
    /// The latest chat messages, oldest first (older ones: `chat_history`).
    #[serde(default)]
    pub chat: Vec<ChatMessage>,
    /// Who is on stage, in the order invited.
    #[serde(default)]
    pub stage: Vec<ParticipantInfo>,
    #[serde(default)]
    pub waiting_room: WaitingRoom,
    #[serde(default)]
    pub breakouts: Breakouts,
}

/// The breakout rooms: whether they are open, whether people pick their own, how long until
/// everyone is called back, and each room with who is assigned to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakouts {
    pub open: bool,
    pub choose: bool,
    pub remaining_s: Option<u32>,
    pub rooms: Vec<BreakoutRoom>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutRoom {
    /// From 1.
    pub room: u32,
    /// The room's own meeting.
    pub meeting: MeetingId,
    pub assigned: Vec<ParticipantId>,
}

/// The waiting room: whether newcomers wait to be let in, how many wait, and the earliest of
/// them (the queue a host works through).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoom {
    pub on: bool,
    pub waiting: u32,
    pub first: Vec<Waiter>,
}

/// Someone waiting to be let in: a ticket to admit or deny by, and the name they gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    pub ticket: u64,
    pub name: String,
}

/// Audience mode (lectures, town halls, briefings): attendees receive only the stage and
/// whoever speaks; and what attendees may do (those who publish or moderate may always chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    pub on: bool,
    /// Attendees may chat to everyone, and (even with that off) to the hosts.
    pub chat: bool,
    #[serde(default = "yes")]
    pub chat_hosts: bool,
    pub reactions: bool,
    pub hands: bool,
}

fn yes() -> bool {
    true
}

fn panelist() -> Role {
    Role::Panelist
}

impl Default for Audience {
    fn default() -> Self {
        Self {
            on: false,
            chat: true,
            chat_hosts: true,
            reactions: true,
            hands: true,
        }
    }
}

/// A chat message kept in the meeting's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: u64,
    pub from: ParticipantId,
    pub name: String,
    pub text: String,
    /// Who alone may read it (none: everyone; hosts read every message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<ParticipantId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<ParticipantId>,
    /// Sent to the hosts only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub to_hosts: bool,
    /// Held by the spam filter, for the hosts to release or delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<SpamReason>,
    /// How many people liked it (many: a top quote in the hosts' highlights).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub likes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A chat message's likes, as they are now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLikes {
    pub id: u64,
    pub likes: u32,
}

/// Why the spam filter held a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpamReason {
    /// Too many messages in a short time.
    Flood,
    /// The same message again.
    Repeat,
    /// Many links.
    Links,
    /// A word the meeting blocks.
    BlockedWord,
    /// The trained classifier finds it likely spam.
    LooksLikeSpam,
}

impl ChatMessage {
    /// Whether `p` may read it (`moderates`: whether `p` is a host now).
    pub fn readable_by(&self, p: ParticipantId, moderates: bool) -> bool {
        self.only.is_empty() || moderates || self.only.contains(&p)
    }
}

impl SeqEvent {
    /// The event as `p` receives it: withheld, its number kept, if it is for others.
    pub fn seen_by(&self, p: ParticipantId) -> SeqEvent {
        if self.is_for(p) {
            self.clone()
        } else {
            SeqEvent {
                seq: self.seq,
                event: MeetingEvent::Withheld,
            }
        }
    }

    /// Whether `p` receives it as it is.
    pub fn is_for(&self, p: ParticipantId) -> bool {
        match &self.event {
            MeetingEvent::Chat { only, .. } => only.is_empty() || only.contains(&p),
            MeetingEvent::WaitingRoom { hosts, .. } => hosts.contains(&p),
            _ => true,
        }
    }

    /// Whether only some receive it.
    pub fn is_private(&self) -> bool {
        match &self.event {
            MeetingEvent::Chat { only, .. } => !only.is_empty(),
            MeetingEvent::WaitingRoom { .. } => true,
            _ => false,
        }
    }
}

/// A question of the Q&A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: u64,
    /// Who asked it, by name.
    pub from: String,
    pub text: String,
    /// The asker's and the upvotes.
    pub votes: u32,
    /// A written answer, if it was answered in writing.
    pub answer: Option<String>,
    pub answered: bool,
    pub dismissed: bool,
}

/// What a poll asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PollKind {
    /// One of the options.
    Single { options: Vec<String> },
    /// Any of the options, at least one.
    Multiple { options: Vec<String> },
    /// A value from 1 to `max`.
    Rating { max: u8 },
    /// Free text.
    Text,
}

/// One person's answer to a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    Single { option: u32 },
    Multiple { options: Vec<u32> },
    Rating { value: u8 },
    Text { text: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollInfo {
    pub id: u64,
    pub question: String,
    pub kind: PollKind,
    /// Nobody, hosts included, learns who answered what.
    pub anonymous: bool,
    pub open: bool,
}

/// A poll's results: how many answered, and per option (or per rating value, 1 first) how
/// many chose it; free-text answers are counted, and read by hosts in the export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResults {
    pub poll: u64,
    pub voters: u32,
    pub counts: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollState {
    pub info: PollInfo,
    pub results: PollResults,
}

/// The reactions a client may send: a small fixed set, so that they count and show alike
/// everywhere (and nobody floats arbitrary text over a town hall).
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "😮", "👏", "🎉"];

/// How many times one reaction was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: u32,
}

/// The raised hands: how many, and the earliest of them (the queue a host works through).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hands {
    pub raised: u32,
    pub first: Vec<ParticipantInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub identity: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub id: TrackId,
    pub participant: ParticipantId,
    pub source: TrackSource,
    pub muted: bool,
    /// The partition its media comes from (other partitions pull it from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<crate::cluster::PartitionRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqEvent {
    pub seq: Seq,
    #[serde(flatten)]
    pub event: MeetingEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeetingEvent {
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant: ParticipantId,
    },
    Count {
        count: u32,
    },
    TrackPublished {
        track: TrackInfo,
    },
    TrackUnpublished {
        track: TrackId,
    },
    TrackMuted {
        track: TrackId,
        muted: bool,
    },
    ActiveSpeakers {
        participants: Vec<ParticipantId>,
    },
    Chat {
        /// The message's number in the meeting (for history and deletion).
        #[serde(default)]
        id: u64,
        from: ParticipantId,
        name: String,
        text: String,
        /// Who alone receives it (a message to the hosts, or one the spam filter holds: they
        /// and its sender); none: everyone. A message released later comes again, same id.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        only: Vec<ParticipantId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<ParticipantId>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        to_hosts: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flagged: Option<SpamReason>,
    },
    /// An event for others (a message to the hosts): its number only.
    Withheld,
    /// The role of people who join without one of their own changed.
    DefaultRole {
        role: Role,
    },
    /// Who is in the spotlight now (a moderator's choice), and who a host's @mention brought
    /// to everyone's video for a while: they come first in everyone's video.
    Featured {
        spotlight: Option<ParticipantId>,
        mentioned: Vec<ParticipantId>,
    },
    /// A moderator deleted a chat message.
    ChatDeleted {
        id: u64,
    },
    /// Chat messages' likes changed (at most one per count interval).
    ChatLiked {
        likes: Vec<ChatLikes>,
    },
    /// A moderator stopped (or let again) someone's chat.
    ChatBanned {
        participant: ParticipantId,
        banned: bool,
    },
    /// Someone's role changed (what it may do follows from the role): everyone learns of it,
    /// with who it is, even in a meeting too large for the roster to be pushed.
    RoleChanged {
        participant: ParticipantInfo,
    },
    /// The hand queue changed (at most one per count interval, however many hands moved):
    /// the queue as it is, and the hands a moderator lowered since the last one (so each
    /// client knows when its own went down, wherever it was in the queue).
    Hands {
        hands: Hands,
        #[serde(default)]
        lowered: Vec<ParticipantId>,
    },
    /// Who is on stage now, in the order invited (they publish, and everyone receives them).
    Stage {
        participants: Vec<ParticipantInfo>,
    },
    PollOpened {
        poll: PollInfo,
    },
    /// A poll's results changed (at most one per count interval, however many voted).
    PollResults {
        results: PollResults,
    },
    PollClosed {
        results: PollResults,
    },
    QuestionAsked {
        question: Question,
    },
    /// A question's votes changed (at most once per count interval), or it was answered or
    /// dismissed (at once).
    QuestionUpdated {
        question: Question,
    },
    /// Audience mode, or what attendees may do, changed.
    Audience {
        audience: Audience,
    },
    /// The meeting was locked (nobody new joins) or opened again.
    Locked {
        locked: bool,
    },
    /// The waiting room was switched, or who waits changed (at most one per count interval).
    /// For the moderators (`hosts`, those in the meeting then) only: who waits is theirs to
    /// know.
    WaitingRoom {
        room: WaitingRoom,
        hosts: Vec<ParticipantId>,
    },
    /// The breakout rooms changed (assignments coalesced per count interval).
    Breakouts {
        breakouts: Breakouts,
    },
    /// A shape was drawn on the whiteboard.
    Drawn {
        shape: crate::board::DrawnShape,
    },
    /// Shapes were erased (or undone).
    Erased {
        ids: Vec<u64>,
    },
    BoardCleared,
    /// A moderator's message to everyone, in whichever room.
    Broadcast {
        from: String,
        text: String,
    },
    /// The reactions since the last such event, counted (one event per tick at most,
    /// however many people react).
    Reactions {
        counts: Vec<ReactionCount>,
    },
    MeetingEnded,
}

/// What every edge forwards in a meeting, decided by the meeting's coordinator. A subscriber
/// additionally gets the camera of the people it pinned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardingPlan {
    /// Audio tracks to forward: the active and most recent speakers, at most K.
    pub audio: Vec<TrackId>,
    /// Video tracks to forward, most important first: screen shares, then last-N speakers.
    pub video: Vec<TrackId>,
}

/// Machine-readable error codes; `message` says the same for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    TooLarge,
    UnsupportedVersion,
    NotJoined,
    AlreadyJoined,
    Unauthorized,
    TokenExpired,
    MeetingNotFound,
    MeetingEnded,
    /// The meeting holds its `max_participants` already.
    MeetingFull,
    /// Its hosts locked it: nobody new joins.
    MeetingLocked,
    /// A host turned this person away from the waiting room.
    Denied,
    Forbidden,
    /// The stage holds as many as it may.
    StageFull,
    /// One answer per person per poll.
    AlreadyVoted,
    InvalidSdp,
    ResumeFailed,
    RateLimited,
    Removed,
    /// This node takes no participants (control only), or has no free seat in the
    /// meeting's partitions: ask the route API where to connect.
    WrongNode,
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_round_trip_as_tagged_json() {
        let msg = ClientMsg::Mute {
            source: TrackSource::Microphone,
            muted: true,
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"type":"mute","source":"microphone","muted":true}"#
        );
        assert_eq!(serde_json::from_str::<ClientMsg>(&json).unwrap(), msg);
    }

    #[test]
    fn unknown_types_and_fields_are_rejected() {
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"launch"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(
            r#"{"type":"mute","source":"camera","muted":true,"x":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"token":"a"}"#).is_err());
    }

    #[test]
    fn events_flatten_seq_and_kind() {
        let ev = SeqEvent {
            seq: Seq(7),
            event: MeetingEvent::Count { count: 3 },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(json, r#"{"seq":7,"kind":"count","count":3}"#);
        assert_eq!(serde_json::from_str::<SeqEvent>(&json).unwrap(), ev);
    }
}
