//! A meeting's coordinator: the task that owns one [`Meeting`] core and speaks only over the
//! bus — requests from nodes in, the meeting's batches, plan and session ends out to every
//! node at once. It knows nothing of sockets, media or HTTP: each node fans out to its own
//! connections and drives its own media.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Message, Subscription};
use myriad_proto::bus::{decode, encode};
use myriad_proto::meeting::{
    broadcast_subject, levels_subject, rpc_subject, AudioLevels, ConnRef, MeetingBroadcast,
    MeetingReply, MeetingRequest, RefusalKind,
};
use myriad_proto::{MeetingId, ParticipantId, SeqEvent, ServerMsg, PROTOCOL_VERSION};
use myriad_room::{
    JoinRequest, Meeting, MeetingConfig, Output, Permissions, ResumeFrom, RoomError,
};
use tokio::task::JoinHandle;

/// How long the coordinator sleeps when the meeting wants no wake-up (it wakes for input).
const NOTHING_DUE: Duration = Duration::from_secs(3600);

/// Subscribes the coordinator of `id` to its subjects and starts it. Returns once the bus has
/// the subscriptions, so a request sent next is heard.
pub(crate) async fn start(
    bus: Arc<dyn Bus>,
    id: MeetingId,
    config: MeetingConfig,
) -> Result<JoinHandle<()>, BusError> {
    let rpc = bus.subscribe(&rpc_subject(&id)).await?;
    let levels = bus.subscribe(&levels_subject(&id)).await?;
    bus.flush().await?;
    let coordinator = Coordinator {
        out: broadcast_subject(&id),
        meeting: Meeting::new(id, config, Instant::now()),
        bus,
        conns: HashMap::new(),
    };
    tracing::info!(meeting = %coordinator.meeting.id(), "meeting coordinator started");
    Ok(tokio::spawn(coordinator.run(rpc, levels)))
}

struct Coordinator {
    bus: Arc<dyn Bus>,
    meeting: Meeting,
    out: String,
    /// Each participant's current signalling connection.
    conns: HashMap<ParticipantId, ConnRef>,
}

impl Coordinator {
    async fn run(mut self, mut rpc: Subscription, mut levels: Subscription) {
        let id = self.meeting.id().clone();
        loop {
            self.drain().await;
            if self.meeting.is_stopped() {
                break;
            }
            let wake = self
                .meeting
                .poll_timeout()
                .map_or(Instant::now() + NOTHING_DUE, |(t, _)| t);
            tokio::select! {
                msg = rpc.next() => match msg {
                    Some(msg) => self.handle_message(msg).await,
                    None => {
                        tracing::error!(meeting = %id, "request subscription ended");
                        break;
                    }
                },
                Some(msg) = levels.next() => match decode::<AudioLevels>(&msg.payload) {
                    Ok(report) => self.meeting.handle_audio_levels(Instant::now(), &report.levels),
                    Err(e) => tracing::warn!(meeting = %id, "audio levels ignored: {e}"),
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.meeting.handle_timeout(Instant::now());
                }
            }
        }
        tracing::info!(meeting = %id, ended = self.meeting.is_ended(), "meeting coordinator stopped");
    }

    async fn handle_message(&mut self, msg: Message) {
        let reply = match decode::<MeetingRequest>(&msg.payload) {
            Ok(req) => self.handle(req).await,
            Err(e) => {
                tracing::warn!(meeting = %self.meeting.id(), "request refused: {e}");
                refused(RefusalKind::BadRequest, e.to_string())
            }
        };
        // Everything the request changed goes out before its answer.
        self.drain().await;
        match msg.reply {
            Some(to) => {
                if let Err(e) = self.bus.respond(&to, Bytes::from(encode(&reply))).await {
                    tracing::warn!(meeting = %self.meeting.id(), "answer not sent: {e}");
                }
            }
            None => {
                tracing::debug!(meeting = %self.meeting.id(), "a request without a reply subject")
            }
        }
    }

    async fn handle(&mut self, req: MeetingRequest) -> MeetingReply {
        let now = Instant::now();
        let m = &mut self.meeting;
        let done =
            |r: Result<(), RoomError>| r.map_or_else(|e| room_refused(&e), |()| MeetingReply::Done);
        match req {
            MeetingRequest::Join {
                joiner,
                session_token,
                conn,
            } => {
                let req = JoinRequest {
                    identity: joiner.identity,
                    name: joiner.name,
                    role: joiner.role,
                    permissions: Permissions {
                        publish: joiner.publish,
                        subscribe: joiner.subscribe,
                        moderate: joiner.moderate,
                    },
                    session_token: session_token.clone(),
                };
                match m.handle_join(now, req) {
                    Ok(participant) => {
                        self.conns.insert(participant, conn);
                        self.joined(participant, session_token, false, None)
                    }
                    Err(e) => room_refused(&e),
                }
            }
            MeetingRequest::Resume {
                identity,
                participant,
                session_token,
                last_seq,
                conn,
            } => match m.handle_resume(now, participant, &identity, &session_token, last_seq) {
                Ok(from) => {
                    // The old connection is told to go (with its own reference) before the
                    // new one takes the participant's place.
                    self.drain().await;
                    self.conns.insert(participant, conn);
                    let missed = match from {
                        ResumeFrom::Events(missed) => Some(missed),
                        ResumeFrom::Snapshot(_) => None,
                    };
                    self.joined(participant, session_token, true, missed)
                }
                Err(e) => room_refused(&e),
            },
            MeetingRequest::Disconnect { participant, conn } => {
                if self.conns.get(&participant) == Some(&conn) {
                    self.conns.remove(&participant);
                    m.handle_disconnect(now, participant);
                }
                MeetingReply::Done
            }
            MeetingRequest::Leave { participant } => {
                m.handle_leave(now, participant);
                MeetingReply::Done
            }
            MeetingRequest::Mute {
                actor,
                target,
                source,
                muted,
            } => done(m.handle_mute(now, actor, target, source, muted)),
            MeetingRequest::Remove { actor, target } => done(m.handle_remove(now, actor, target)),
            MeetingRequest::Chat { participant, text } => {
                done(m.handle_chat(now, participant, &text))
            }
            MeetingRequest::Publish {
                participant,
                source,
            } => match m.handle_publish(now, participant, source) {
                Ok(track) => MeetingReply::Published { track },
                Err(e) => room_refused(&e),
            },
            MeetingRequest::MediaClosed { participant } => {
                for track in m.tracks_of(participant) {
                    m.handle_unpublish(now, track);
                }
                MeetingReply::Done
            }
            MeetingRequest::Participants { after, limit } => MeetingReply::Page {
                count: m.count(),
                participants: m.participants_page(after, limit.min(1000) as usize),
            },
            MeetingRequest::End => {
                m.end(now);
                MeetingReply::Done
            }
        }
    }

    /// The answer to a join or a resume: the welcome, then the events the client missed; or,
    /// on a first join and when too many were missed (`None`), a snapshot in the welcome.
    fn joined(
        &self,
        participant: ParticipantId,
        session_token: String,
        resumed: bool,
        missed: Option<Vec<SeqEvent>>,
    ) -> MeetingReply {
        let Some(you) = self.meeting.participant(participant).cloned() else {
            return refused(RefusalKind::UnknownParticipant, "gone meanwhile".into());
        };
        let snapshot = missed
            .is_none()
            .then(|| self.meeting.snapshot_for(participant));
        let missed = missed.unwrap_or_default();
        MeetingReply::Joined {
            participant,
            welcome: Box::new(ServerMsg::Welcome {
                v: PROTOCOL_VERSION,
                meeting: self.meeting.id().clone(),
                you,
                session_token,
                resumed,
                snapshot,
            }),
            missed,
            seq: self.meeting.seq(),
        }
    }

    /// Sends what the meeting produced: batches, plans and session ends to every node.
    async fn drain(&mut self) {
        while let Some(out) = self.meeting.poll_output() {
            let broadcast = match out {
                Output::Events(events) => MeetingBroadcast::Events { events },
                Output::Plan(plan) => MeetingBroadcast::Plan { plan },
                Output::SessionEnded {
                    participant,
                    reason,
                } => MeetingBroadcast::SessionEnded {
                    participant,
                    conn: self.conns.remove(&participant),
                    reason,
                },
                Output::Stopped(_) => MeetingBroadcast::Stopped,
            };
            if let Err(e) = self
                .bus
                .publish(&self.out, Bytes::from(encode(&broadcast)))
                .await
            {
                tracing::warn!(meeting = %self.meeting.id(), "broadcast not sent: {e}");
            }
        }
    }
}

fn room_refused(e: &RoomError) -> MeetingReply {
    refused(e.kind(), e.to_string())
}

fn refused(kind: RefusalKind, message: String) -> MeetingReply {
    MeetingReply::Refused { kind, message }
}
