//! How a node's sessions and the REST API ask a meeting's coordinator for something: typed
//! requests over the bus. Any request starts the coordinator when nobody runs it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use myriad_bus::BusError;
use myriad_proto::board::DrawnShape;
use myriad_proto::bus::{decode, encode};
use myriad_proto::cluster::PartitionRef;
use myriad_proto::meeting::{
    levels_subject, rpc_subject, Actor, AudioLevels, ConnRef, GivenAnswer, Joiner, MeetingReply,
    MeetingRequest, Presence, RefusalKind,
};
use myriad_proto::{
    ChatMessage, ForwardingPlan, MeetingId, ParticipantId, ParticipantInfo, PollKind, PollState,
    ReactionCount, Role, Seq, SeqEvent, ServerMsg, TrackId, TrackInfo, TrackSource,
};

use crate::{Control, ControlError};

/// How long a request may wait for the coordinator's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a join or resume waits for a coordinator: another node's lease on the meeting
/// expires within its term when that node is gone.
const COORDINATOR_WAIT: Duration = Duration::from_secs(6);
/// While another node holds the lease but does not answer yet, ask again this often.
const HELD_RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{message}")]
    Refused { kind: RefusalKind, message: String },
    #[error("the meeting's coordinator did not answer: {0}")]
    Bus(BusError),
    #[error("the coordinator answered something else than asked")]
    Unexpected,
}

/// A poll, and its answers in order with who gave each (none in an anonymous poll).
pub type PollAnswers = (PollState, Vec<GivenAnswer>);

/// A join or resume that was accepted.
#[derive(Debug, Clone)]
pub struct Joined {
    pub participant: ParticipantId,
    pub welcome: Box<ServerMsg>,
    pub missed: Vec<SeqEvent>,
    /// Where the welcome and the missed events leave the client.
    pub seq: Seq,
    /// Where its media goes on the node it joined through.
    pub partition: Option<PartitionRef>,
}

/// What a node needs to carry the meeting's media.
#[derive(Debug, Clone)]
pub struct MediaState {
    pub tracks: Vec<TrackInfo>,
    pub plan: ForwardingPlan,
    pub partitions: Vec<PartitionRef>,
    /// The meeting's last event when this was asked: broadcasts after it follow.
    pub seq: Seq,
}

#[derive(Clone)]
pub struct MeetingClient {
    control: Arc<Control>,
    meeting: MeetingId,
    subject: String,
}

impl MeetingClient {
    pub(crate) fn new(control: Arc<Control>, meeting: MeetingId) -> Self {
        let subject = rpc_subject(&meeting);
        Self {
            control,
            meeting,
            subject,
        }
    }

    pub fn meeting(&self) -> &MeetingId {
        &self.meeting
    }

    /// The bus the meeting's coordinator is on.
    pub fn bus(&self) -> &Arc<dyn myriad_bus::Bus> {
        self.control.bus()
    }

    /// Sends `req`; a refusal is an error. When nobody coordinates the meeting, one is
    /// started here (rebuilt from its journal if it had one), or the request waits while
    /// another node's lease runs out: a request during a takeover is served, not lost.
    async fn ask(&self, req: MeetingRequest) -> Result<MeetingReply, AskError> {
        let payload = Bytes::from(encode(&req));
        let bus = self.control.bus();
        let deadline = tokio::time::Instant::now() + COORDINATOR_WAIT;
        let mut timed_out = false;
        loop {
            match bus
                .request(&self.subject, payload.clone(), ASK_TIMEOUT)
                .await
            {
                Ok(bytes) => {
                    let reply = decode::<MeetingReply>(&bytes).map_err(|e| {
                        tracing::warn!(meeting = %self.meeting, "bad answer: {e}");
                        AskError::Unexpected
                    })?;
                    return match reply {
                        MeetingReply::Refused { kind, message } => {
                            Err(AskError::Refused { kind, message })
                        }
                        reply => Ok(reply),
                    };
                }
                Err(BusError::NoResponders(_)) if tokio::time::Instant::now() < deadline => {
                    match self.control.ensure_coordinator(&self.meeting).await {
                        Ok(()) => {}
                        Err(ControlError::Held) => tokio::time::sleep(HELD_RETRY).await,
                        Err(e) => return Err(e.into()),
                    }
                }
                // A coordinator that listens but does not answer may be hung: once its lease
                // has run out (it renews no more), one starts here, and asked again.
                Err(BusError::Timeout(t)) if !timed_out => {
                    timed_out = true;
                    if let Err(e) = self.control.ensure_coordinator(&self.meeting).await {
                        tracing::debug!(meeting = %self.meeting, "no coordinator started after a timeout: {e}");
                        return Err(AskError::Bus(BusError::Timeout(t)));
                    }
                }
                Err(e) => return Err(AskError::Bus(e)),
            }
        }
    }

    /// Asks for a change answered only with done (or a refusal).
    pub async fn ask_done(&self, req: MeetingRequest) -> Result<(), AskError> {
        match self.ask(req).await? {
            MeetingReply::Done => Ok(()),
            _ => Err(AskError::Unexpected),
        }
    }

    pub async fn join(
        &self,
        joiner: Joiner,
        session_token: String,
        conn: ConnRef,
    ) -> Result<Joined, AskError> {
        let reply = self
            .ask(MeetingRequest::Join {
                joiner,
                session_token,
                conn,
            })
            .await?;
        joined(reply)
    }

    pub async fn resume(
        &self,
        identity: String,
        participant: ParticipantId,
        session_token: String,
        last_seq: Seq,
        conn: ConnRef,
    ) -> Result<Joined, AskError> {
        let reply = self
            .ask(MeetingRequest::Resume {
                identity,
                participant,
                session_token,
                last_seq,
                conn,
            })
            .await?;
        joined(reply)
    }

    pub async fn disconnect(
        &self,
        participant: ParticipantId,
        conn: ConnRef,
    ) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::Disconnect { participant, conn })
            .await
    }

    /// A join through `conn` went unanswered: whatever session it made is disconnected.
    pub async fn conn_lost(&self, conn: ConnRef) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::ConnLost { conn }).await
    }

    pub async fn leave(&self, participant: ParticipantId) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::Leave { participant }).await
    }

    pub async fn mute(
        &self,
        actor: Actor,
        target: ParticipantId,
        source: TrackSource,
        muted: bool,
    ) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::Mute {
            actor,
            target,
            source,
            muted,
        })
        .await
    }

    pub async fn remove(&self, actor: Actor, target: ParticipantId) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::Remove { actor, target })
            .await
    }

    pub async fn set_role(
        &self,
        actor: Actor,
        target: ParticipantId,
        role: Role,
    ) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::SetRole {
            actor,
            target,
            role,
        })
        .await
    }

    /// This node's reactions since it last sent them, counted.
    pub async fn reactions(&self, counts: Vec<ReactionCount>) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::Reactions { counts }).await
    }

    /// A chat message to everyone (`to_hosts`: to the hosts only), @mentioning `mentions`.
    pub async fn chat(
        &self,
        participant: ParticipantId,
        text: String,
        to_hosts: bool,
        mentions: Vec<ParticipantId>,
    ) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::Chat {
            participant,
            text,
            to_hosts,
            mentions,
        })
        .await
    }

    /// The meeting's id for a track the participant's media connection (in `partition`)
    /// offers.
    pub async fn publish(
        &self,
        participant: ParticipantId,
        source: TrackSource,
        partition: PartitionRef,
    ) -> Result<TrackId, AskError> {
        match self
            .ask(MeetingRequest::Publish {
                participant,
                source,
                partition,
            })
            .await?
        {
            MeetingReply::Published { track } => Ok(track),
            _ => Err(AskError::Unexpected),
        }
    }

    /// The tracks published, the forwarding plan and the open partitions.
    pub async fn media(&self) -> Result<MediaState, AskError> {
        match self.ask(MeetingRequest::Media).await? {
            MeetingReply::Media {
                tracks,
                plan,
                partitions,
                seq,
            } => Ok(MediaState {
                tracks,
                plan,
                partitions,
                seq,
            }),
            _ => Err(AskError::Unexpected),
        }
    }

    /// The events after `after`; `None` when some are too old to be kept.
    pub async fn missed(&self, after: Seq) -> Result<Option<Vec<SeqEvent>>, AskError> {
        match self.ask(MeetingRequest::Missed { after }).await? {
            MeetingReply::Missed { events } => Ok(events),
            _ => Err(AskError::Unexpected),
        }
    }

    /// The nodes a client (from `region`) should connect to, best first.
    pub async fn route(&self, region: Option<String>) -> Result<Vec<String>, AskError> {
        match self.ask(MeetingRequest::Route { region }).await? {
            MeetingReply::Route { nodes } => Ok(nodes),
            _ => Err(AskError::Unexpected),
        }
    }

    /// Readies `seats` on `node` for people forecast to come, and keeps the meeting open for
    /// them for `hold`; answers how many are seated in it now.
    pub async fn prepare(
        &self,
        node: &str,
        seats: u32,
        hold: std::time::Duration,
    ) -> Result<u32, AskError> {
        let req = MeetingRequest::Prepare {
            node: node.to_owned(),
            seats,
            hold_ms: hold.as_millis().try_into().unwrap_or(u64::MAX),
        };
        match self.ask(req).await? {
            MeetingReply::Prepared { seated } => Ok(seated),
            _ => Err(AskError::Unexpected),
        }
    }

    pub async fn media_closed(&self, participant: ParticipantId) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::MediaClosed { participant })
            .await
    }

    /// How many are in the meeting, and a page of them in id order after `after`.
    pub async fn participants(
        &self,
        after: Option<ParticipantId>,
        limit: u32,
    ) -> Result<(u32, Vec<ParticipantInfo>), AskError> {
        match self
            .ask(MeetingRequest::Participants { after, limit })
            .await?
        {
            MeetingReply::Page {
                count,
                participants,
            } => Ok((count, participants)),
            _ => Err(AskError::Unexpected),
        }
    }

    pub async fn create_poll(
        &self,
        actor: Actor,
        question: String,
        kind: PollKind,
        anonymous: bool,
    ) -> Result<u64, AskError> {
        let req = MeetingRequest::CreatePoll {
            actor,
            question,
            kind,
            anonymous,
        };
        match self.ask(req).await? {
            MeetingReply::PollCreated { poll } => Ok(poll),
            _ => Err(AskError::Unexpected),
        }
    }

    pub async fn close_poll(&self, actor: Actor, poll: u64) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::ClosePoll { actor, poll })
            .await
    }

    /// A poll and its answers in order, each with who gave it in a named poll.
    pub async fn poll_answers(&self, poll: u64) -> Result<PollAnswers, AskError> {
        match self.ask(MeetingRequest::PollAnswers { poll }).await? {
            MeetingReply::PollAnswers { poll, answers } => Ok((poll, answers)),
            _ => Err(AskError::Unexpected),
        }
    }

    /// Up to `limit` chat messages before message `before`, oldest first.
    /// Chat messages before `before` that `reader` may read (none: all of them).
    pub async fn chat_history(
        &self,
        before: u64,
        limit: u32,
        reader: Option<ParticipantId>,
    ) -> Result<Vec<ChatMessage>, AskError> {
        let ask = MeetingRequest::ChatHistory {
            before,
            limit,
            participant: reader,
        };
        match self.ask(ask).await? {
            MeetingReply::ChatHistory { messages } => Ok(messages),
            _ => Err(AskError::Unexpected),
        }
    }

    /// The whiteboard's shapes, as of the meeting's event `seq`.
    pub async fn board(&self) -> Result<(Vec<DrawnShape>, Seq), AskError> {
        match self.ask(MeetingRequest::BoardState).await? {
            MeetingReply::Board { shapes, seq } => Ok((shapes, seq)),
            _ => Err(AskError::Unexpected),
        }
    }

    /// The way into a breakout room for `participant` (its own, or `room`): the room, its
    /// meeting, and whether the participant moderates there.
    pub async fn breakout_pass(
        &self,
        participant: ParticipantId,
        room: Option<u32>,
    ) -> Result<(u32, MeetingId, bool), AskError> {
        match self
            .ask(MeetingRequest::BreakoutPass { participant, room })
            .await?
        {
            MeetingReply::BreakoutPass {
                room,
                meeting,
                moderate,
            } => Ok((room, meeting, moderate)),
            _ => Err(AskError::Unexpected),
        }
    }

    /// Ends the meeting for everyone, as the API.
    pub async fn end(&self) -> Result<(), AskError> {
        self.ask_done(MeetingRequest::End { actor: Actor::Api })
            .await
    }

    /// Tells the coordinator every connection `node` has to the meeting as of connection
    /// number `up_to`: who is connected (and in which partition), and which are joining.
    /// Answers with the meeting's last event.
    pub async fn present(
        &self,
        node: String,
        up_to: u64,
        present: Vec<Presence>,
        joining: Vec<u64>,
    ) -> Result<Seq, AskError> {
        let req = MeetingRequest::Present {
            node,
            up_to,
            present,
            joining,
        };
        match self.ask(req).await? {
            MeetingReply::Presence { seq } => Ok(seq),
            _ => Err(AskError::Unexpected),
        }
    }

    /// Reports this node's loudest speakers (no answer; a lost report is harmless).
    pub async fn report_levels(&self, levels: Vec<(ParticipantId, f32)>) {
        let report = Bytes::from(encode(&AudioLevels { levels }));
        let subject = levels_subject(&self.meeting);
        if let Err(e) = self.control.bus().publish(&subject, report).await {
            tracing::debug!(meeting = %self.meeting, "levels not sent: {e}");
        }
    }
}

fn joined(reply: MeetingReply) -> Result<Joined, AskError> {
    match reply {
        MeetingReply::Joined {
            participant,
            welcome,
            missed,
            seq,
            partition,
        } => Ok(Joined {
            participant,
            welcome,
            missed,
            seq,
            partition,
        }),
        _ => Err(AskError::Unexpected),
    }
}
