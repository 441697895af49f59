//! One participant's signalling connection over WebSocket.
//!
//! The first message must be `join` (with a token, optionally resuming). After that the
//! session asks the meeting's coordinator (over the bus) for what the client does, drives the
//! client's media connection on this node, and passes on what the node's link to the meeting
//! sends it. Bad input gets an `error` message; persistent abuse or a protocol violation
//! closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use myriad_auth::{turn_credentials, AuthError, Grants};
use myriad_cdn::TokenBucket;
use myriad_control::{generate_session_token, now_unix_s, AskError, ControlError, MeetingClient};
use myriad_proto::meeting::{Actor, ConnRef, EndReason, Joiner, RefusalKind};
use myriad_proto::{
    ClientMsg, ErrorCode, IceServer, MeetingId, ParticipantId, Role, ServerMsg, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION, REACTIONS,
};
use myriad_room::WAIT_REFRESH;
use myriad_sfu::{NewPeer, PeerId, SfuError, SfuHandle, ShellError};
use tokio::sync::mpsc;

use crate::asks::ask_of;
use crate::link::{LinkHandle, SessionMsg, SESSION_QUEUE_LEN};
use crate::{ClientAddr, Node};

/// The client must say who it is within this time.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A client whose socket accepts nothing for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages per second a client may send, and the burst it may save up.
const MSG_RATE_PER_S: f64 = 20.0;
const MSG_BURST: f64 = 60.0;
const REACTIONS_PER_S: f64 = 4.0;
const REACTIONS_BURST: f64 = 12.0;
const CHATS_PER_S: f64 = 2.0;
const CHATS_BURST: f64 = 8.0;
/// Chat messages a history page carries.
const CHAT_PAGE: u32 = 50;
/// How long a breakout room's token lasts (its holder may resume there within it).
const BREAKOUT_TOKEN_TTL_S: u64 = 4 * 3600;
/// A client that keeps flooding after this many refused messages is disconnected.
const MAX_REFUSED: u32 = 200;

/// WebSocket close codes (RFC 6455 §7.4).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TRY_AGAIN: u16 = 1013;

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientAddr(remote)): ConnectInfo<ClientAddr>,
) -> Response {
    // Small buffers: thousands of mostly idle connections must stay cheap (the defaults are
    // 128 KiB each way); large messages still work, the buffers grow on demand.
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            let mut session = Session { sink, node, remote };
            session.run(stream).await;
        })
}

struct Session {
    sink: SplitSink<WebSocket, Message>,
    node: Arc<Node>,
    remote: SocketAddr,
}

/// A joined participant.
struct Member {
    meeting: MeetingId,
    client: MeetingClient,
    link: LinkHandle,
    /// The worker carrying its partition here: a new media connection goes there.
    worker: (u16, SfuHandle),
    participant: ParticipantId,
    conn: ConnRef,
    /// Its media connection, and the worker it is on.
    peer: Option<(PeerId, SfuHandle)>,
    /// Who the token says it is, and its `subscribe` grant.
    identity: String,
    name: String,
    subscribe: bool,
    /// Reactions and chat messages are limited per person (a click-happy attendee floats
    /// no storm, a flooder buries no conversation).
    reactions: TokenBucket,
    chats: TokenBucket,
}

/// What a join came to.
enum Entry {
    Member(Box<Member>),
    /// The meeting has a waiting room: ask again in a while.
    Waiting,
}

/// Why the main loop stopped.
enum Exit {
    /// The socket is gone; the session may still be resumed.
    Dropped,
    /// The participant left or was ended by the meeting.
    Ended,
}

impl Session {
    async fn run(&mut self, mut stream: SplitStream<WebSocket>) {
        let first = match tokio::time::timeout(JOIN_TIMEOUT, next_text(&mut stream)).await {
            Ok(Some(Ok(text))) => text,
            Ok(Some(Err(message))) => {
                self.fail(ErrorCode::BadMessage, &message).await;
                return;
            }
            Ok(None) => return,
            Err(_) => {
                self.fail(ErrorCode::NotJoined, "no join message within 10 s")
                    .await;
                return;
            }
        };
        let (tx, rx) = mpsc::channel(SESSION_QUEUE_LEN);
        let mut told_waiting = false;
        let mut member = loop {
            match self.join(&first, tx.clone()).await {
                Ok(Entry::Member(m)) => break *m,
                Ok(Entry::Waiting) => {
                    if !std::mem::replace(&mut told_waiting, true) {
                        self.send(&ServerMsg::Waiting).await;
                    }
                    if !self.wait_at_door(&mut stream).await {
                        return;
                    }
                }
                Err((code, message)) => {
                    tracing::info!(remote = %self.remote, ?code, "join refused: {message}");
                    self.fail(code, &message).await;
                    return;
                }
            }
        };
        tracing::info!(meeting = %member.meeting, participant = %member.participant, remote = %self.remote, "joined");
        let exit = self.serve(&mut member, stream, rx).await;
        member.link.unregister(member.conn.conn).await;
        if let Exit::Dropped = exit {
            if let Err(e) = member
                .client
                .disconnect(member.participant, member.conn.clone())
                .await
            {
                tracing::warn!(meeting = %member.meeting, participant = %member.participant, "disconnect not told: {e}");
            }
            tracing::info!(meeting = %member.meeting, participant = %member.participant, "connection dropped");
        }
    }

    /// Waits `WAIT_REFRESH` in the waiting room, answering pings; false if the client went
    /// or left.
    async fn wait_at_door(&mut self, stream: &mut SplitStream<WebSocket>) -> bool {
        let until = tokio::time::sleep(WAIT_REFRESH);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return true,
                incoming = next_text(stream) => match incoming.map(|t| t.map(|t| serde_json::from_str::<ClientMsg>(&t))) {
                    None => return false,
                    Some(Ok(Ok(ClientMsg::Ping))) => self.send(&ServerMsg::Pong).await,
                    Some(Ok(Ok(ClientMsg::Leave))) => {
                        self.close(CLOSE_NORMAL, "left").await;
                        return false;
                    }
                    Some(_) => {
                        // Only pings and leaving make sense here; a client that keeps talking
                        // is told why nothing happens (its socket's reads are paced by us).
                        self.send_error(ErrorCode::NotJoined, "waiting for a host to let you in").await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    async fn join(
        &mut self,
        text: &str,
        tx: mpsc::Sender<SessionMsg>,
    ) -> Result<Entry, (ErrorCode, String)> {
        let msg: ClientMsg = serde_json::from_str(text)
            .map_err(|e| (ErrorCode::BadMessage, describe_json_error(&e)))?;
        let ClientMsg::Join { v, token, resume } = msg else {
            return Err((
                ErrorCode::NotJoined,
                "the first message must be join".into(),
            ));
        };
        if v != PROTOCOL_VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            ));
        }
        let grants = self
            .node
            .control
            .api_key()
            .verify(&token, now_unix_s())
            .map_err(|e| match e {
                AuthError::Expired => (ErrorCode::TokenExpired, e.to_string()),
                e => (ErrorCode::Unauthorized, e.to_string()),
            })?;
        let meeting = grants.meeting.clone();
        let subscribe = grants.subscribe;
        let (identity, name) = (
            grants.identity.clone(),
            grants
                .name
                .clone()
                .unwrap_or_else(|| grants.identity.clone()),
        );
        // The meeting must exist and go on before anything is started for it.
        let control = &self.node.control;
        match control.meeting_record(&meeting).await {
            Ok(r) if r.ended_unix_s.is_some() => {
                return Err((ErrorCode::MeetingEnded, ControlError::Ended.to_string()))
            }
            Ok(_) => {}
            Err(e) => return Err(control_error(&e)),
        }
        let Some(media) = self.node.media.clone() else {
            return Err((
                ErrorCode::WrongNode,
                "this node carries no media: ask /api/v1/route?meeting=… where to connect".into(),
            ));
        };
        let client = control.client(&meeting);
        let conn = self.node.connection();
        // Registered first: every batch from now on reaches this connection, so none falls
        // between the welcome and the next batch.
        let link = self
            .node
            .register(&media, &client, conn.conn, tx)
            .await
            .map_err(|e| {
                (
                    ErrorCode::Internal,
                    format!("the meeting is unreachable: {e}"),
                )
            })?;
        let resume_asked = resume.is_some();
        let joined = match resume {
            Some(r) => client
                .resume(
                    grants.identity,
                    r.participant,
                    r.session_token,
                    r.last_seq,
                    conn.clone(),
                )
                .await
                .map_err(|e| match &e {
                    AskError::Refused {
                        kind: RefusalKind::NodeFull,
                        ..
                    } => ask_error(e),
                    _ => (ErrorCode::ResumeFailed, e.to_string()),
                }),
            None => {
                let joiner = Joiner {
                    name: name.clone(),
                    identity: grants.identity,
                    role: grants.role,
                    publish: grants.publish,
                    subscribe: grants.subscribe,
                    moderate: grants.moderate,
                };
                match client
                    .join(joiner, generate_session_token(), conn.clone())
                    .await
                {
                    Err(AskError::Refused {
                        kind: RefusalKind::Waiting,
                        ..
                    }) => {
                        link.unregister(conn.conn).await;
                        return Ok(Entry::Waiting);
                    }
                    joined => joined.map_err(ask_error),
                }
            }
        };
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                link.unregister(conn.conn).await;
                if e.0 == ErrorCode::Internal {
                    // Unanswered, not refused: the coordinator may have made a session for
                    // this connection, which nobody will use.
                    let (client, conn) = (client.clone(), conn.clone());
                    tokio::spawn(async move {
                        if let Err(e) = client.conn_lost(conn).await {
                            tracing::warn!(meeting = %client.meeting(), "lost join not told: {e}");
                        }
                    });
                }
                return Err(e);
            }
        };
        let resumed = resume_asked;
        let worker = joined.partition.as_ref().and_then(|p| {
            let handle = media.worker(p)?.clone();
            Some((p.worker, handle))
        });
        let Some(worker) = worker else {
            link.unregister(conn.conn).await;
            return Err((
                ErrorCode::Internal,
                format!("no partition on this node: {:?}", joined.partition),
            ));
        };
        let peer = link
            .bind(conn.conn, joined.participant, joined.partition, joined.seq)
            .await
            .and_then(|(peer, w)| Some((peer, media.workers().get(usize::from(w))?.clone())));
        if let Some(turn) = &self.node.config.turn {
            // Before the welcome: the client opens its media connection on it.
            let user = format!("{meeting}.{}", joined.participant);
            let expires = now_unix_s().saturating_add(turn.ttl.as_secs());
            let (username, credential) = turn_credentials(&turn.secret, &user, expires);
            self.send(&ServerMsg::IceServers {
                servers: vec![IceServer {
                    urls: turn.urls.clone(),
                    username,
                    credential,
                }],
            })
            .await;
        }
        self.send(&joined.welcome).await;
        if !joined.missed.is_empty() {
            self.send(&ServerMsg::Events {
                events: joined.missed,
            })
            .await;
        }
        if resumed && peer.is_none() {
            // Resumed here, its media connection elsewhere (or gone): it opens one here.
            let reason = "resumed on another node: reconnect media here".to_owned();
            self.send(&ServerMsg::MediaClosed { reason }).await;
        }
        Ok(Entry::Member(Box::new(Member {
            meeting,
            client,
            link,
            worker,
            participant: joined.participant,
            conn,
            peer,
            identity,
            name,
            subscribe,
            reactions: TokenBucket::new(REACTIONS_PER_S, REACTIONS_BURST, Instant::now()),
            chats: TokenBucket::new(CHATS_PER_S, CHATS_BURST, Instant::now()),
        })))
    }

    async fn serve(
        &mut self,
        member: &mut Member,
        mut stream: SplitStream<WebSocket>,
        mut from_meeting: mpsc::Receiver<SessionMsg>,
    ) -> Exit {
        let mut bucket = TokenBucket::new(MSG_RATE_PER_S, MSG_BURST, Instant::now());
        let mut refused = 0u32;
        loop {
            tokio::select! {
                incoming = next_text(&mut stream) => {
                    let text = match incoming {
                        None => return Exit::Dropped,
                        Some(Err(message)) => {
                            self.send_error(ErrorCode::BadMessage, &message).await;
                            continue;
                        }
                        Some(Ok(text)) => text,
                    };
                    if !bucket.try_take(Instant::now()) {
                        refused += 1;
                        if refused > MAX_REFUSED {
                            tracing::warn!(remote = %self.remote, participant = %member.participant, "flooding: disconnected");
                            self.close(CLOSE_POLICY, "message flood").await;
                            return Exit::Dropped;
                        }
                        self.send_error(ErrorCode::RateLimited, "too many messages; slow down").await;
                        continue;
                    }
                    match serde_json::from_str::<ClientMsg>(&text) {
                        Ok(msg) => {
                            if self.handle(member, msg).await {
                                return Exit::Ended;
                            }
                        }
                        Err(e) => self.send_error(ErrorCode::BadMessage, &describe_json_error(&e)).await,
                    }
                }
                out = from_meeting.recv() => match out {
                    Some(SessionMsg::Text(text)) => {
                        if self.write(Message::Text(text)).await.is_err() {
                            return Exit::Dropped;
                        }
                    }
                    Some(SessionMsg::MediaClosed { reason }) => {
                        member.peer = None;
                        self.send(&ServerMsg::MediaClosed { reason }).await;
                    }
                    Some(SessionMsg::End(reason)) => {
                        let (code, text) = match reason {
                            EndReason::Left => (None, "left"),
                            EndReason::Removed => (Some(ErrorCode::Removed), "removed from the meeting by a moderator"),
                            EndReason::MeetingEnded => (Some(ErrorCode::MeetingEnded), "the meeting has ended"),
                            EndReason::Expired => (Some(ErrorCode::ResumeFailed), "session expired"),
                            EndReason::Replaced => (None, "resumed on another connection"),
                        };
                        if let Some(code) = code {
                            self.send_error(code, text).await;
                        }
                        self.close(CLOSE_NORMAL, text).await;
                        return Exit::Ended;
                    }
                    None => {
                        // The coordinator dropped this connection (too slow, or it stopped).
                        self.close(CLOSE_TRY_AGAIN, "resume to continue").await;
                        return Exit::Ended;
                    }
                }
            }
        }
    }

    /// Handles one client message; returns true when the session is over.
    async fn handle(&mut self, member: &mut Member, msg: ClientMsg) -> bool {
        let msg = match ask_of(msg, member.participant) {
            Ok(req) => {
                let asked = member.client.ask_done(req).await;
                self.refused(asked).await;
                return false;
            }
            Err(msg) => msg,
        };
        match msg {
            ClientMsg::Join { .. } => {
                self.send_error(
                    ErrorCode::AlreadyJoined,
                    "this connection has joined already",
                )
                .await
            }
            ClientMsg::Offer {
                sdp,
                tracks,
                restart,
            } => {
                let res = match member.peer.clone().filter(|_| !restart) {
                    Some((peer, sfu)) => sfu.offer(peer, sdp, tracks).await,
                    None => {
                        let peer = self.node.peer_id();
                        let (index, sfu) = member.worker.clone();
                        // The link must know the peer before the media task talks about it;
                        // it drops a replaced peer and that peer's tracks.
                        member
                            .link
                            .attach_peer(member.participant, peer, index)
                            .await;
                        let new = NewPeer {
                            id: peer,
                            meeting: member.meeting.clone(),
                            participant: member.participant,
                            subscribe: member.subscribe,
                        };
                        let res = sfu.add_peer(new, sdp, tracks).await;
                        if res.is_ok() {
                            member.peer = Some((peer, sfu));
                        }
                        res
                    }
                };
                match res {
                    Ok(sdp) => self.send(&ServerMsg::Answer { sdp }).await,
                    Err(e) => self.send_media_error(e).await,
                }
            }
            ClientMsg::Answer { sdp } => match &member.peer {
                Some((peer, sfu)) => {
                    if let Err(e) = sfu.answer(*peer, sdp).await {
                        self.send_media_error(e).await;
                    }
                }
                None => {
                    self.send_error(ErrorCode::BadMessage, "no media connection to answer for")
                        .await
                }
            },
            ClientMsg::View { max_height, pinned } => {
                if let Some((peer, sfu)) = &member.peer {
                    let _ = sfu.set_view(*peer, max_height, pinned).await;
                }
            }
            ClientMsg::Chat {
                text,
                to_hosts,
                mentions,
            } => {
                if !member.chats.try_take(Instant::now()) {
                    self.send_error(ErrorCode::RateLimited, "too many chat messages; slow down")
                        .await;
                } else {
                    let (me, client) = (member.participant, &member.client);
                    let asked = client.chat(me, text, to_hosts, mentions).await;
                    self.refused(asked).await;
                }
            }
            ClientMsg::ChatHistory { before } => {
                let me = Some(member.participant);
                match member.client.chat_history(before, CHAT_PAGE, me).await {
                    Ok(messages) => self.send(&ServerMsg::ChatHistory { messages }).await,
                    Err(e) => self.refused(Err(e)).await,
                }
            }
            ClientMsg::React { emoji } => match REACTIONS.iter().position(|r| *r == emoji) {
                None => {
                    let message = format!("not a reaction: one of {}", REACTIONS.join(" "));
                    self.send_error(ErrorCode::BadMessage, &message).await;
                }
                Some(_) if !member.reactions.try_take(Instant::now()) => {
                    self.send_error(ErrorCode::RateLimited, "too many reactions; slow down")
                        .await;
                }
                Some(index) => member.link.react(index).await,
            },
            ClientMsg::CreatePoll {
                question,
                kind,
                anonymous,
            } => {
                let actor = Actor::Participant(member.participant);
                let asked = member
                    .client
                    .create_poll(actor, question, kind, anonymous)
                    .await;
                self.refused(asked.map(|_| ())).await;
            }
            ClientMsg::SetDefaultRole { role } => {
                let actor = Actor::Participant(member.participant);
                let set = self
                    .node
                    .control
                    .set_default_role(&member.meeting, actor, role);
                self.refused(set.await).await;
            }
            ClientMsg::BoardState => match member.client.board().await {
                Ok((shapes, seq)) => self.send(&ServerMsg::Board { shapes, seq }).await,
                Err(e) => self.refused(Err(e)).await,
            },
            ClientMsg::JoinBreakout { room } => match self.breakout(member, room).await {
                Ok(msg) => self.send(&msg).await,
                Err((code, message)) => self.send_error(code, &message).await,
            },
            ClientMsg::Leave => {
                if let Err(e) = member.client.leave(member.participant).await {
                    tracing::warn!(meeting = %member.meeting, participant = %member.participant, "leave not told: {e}");
                }
                self.close(CLOSE_NORMAL, "left").await;
                return true;
            }
            ClientMsg::Ping => self.send(&ServerMsg::Pong).await,
            // Translated by `ask_of` above.
            _ => {}
        }
        false
    }

    /// The way into a breakout room: the meeting says which room may be entered, the room's
    /// meeting is made if it is not yet, and a token for it is minted with who this is
    /// (moderating there if moderating here; talking there anyway).
    async fn breakout(
        &self,
        member: &Member,
        room: Option<u32>,
    ) -> Result<ServerMsg, (ErrorCode, String)> {
        let (room, meeting, moderate) = member
            .client
            .breakout_pass(member.participant, room)
            .await
            .map_err(ask_error)?;
        let control = &self.node.control;
        control
            .ensure_breakout_room(&member.meeting, room, &meeting)
            .await
            .map_err(|e| control_error(&e))?;
        let role = if moderate {
            Role::CoHost
        } else {
            Role::Panelist
        };
        let mut grants = Grants::for_role(
            meeting.clone(),
            member.identity.clone(),
            Some(member.name.clone()),
            role,
        );
        grants.subscribe = member.subscribe;
        let token = control
            .api_key()
            .create_token(&grants, now_unix_s(), BREAKOUT_TOKEN_TTL_S)
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        Ok(ServerMsg::Breakout {
            room,
            meeting,
            token,
        })
    }

    /// Writes one frame; a client that does not read for `WRITE_TIMEOUT` is given up on.
    async fn write(&mut self, msg: Message) -> Result<(), ()> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(()),
            Err(_) => {
                tracing::info!(remote = %self.remote, "client not reading: disconnected");
                Err(())
            }
        }
    }

    async fn send(&mut self, msg: &ServerMsg) {
        match serde_json::to_string(msg) {
            Ok(text) => {
                let _ = self.write(Message::Text(text.into())).await;
            }
            Err(e) => tracing::error!("server message not serializable: {e}"),
        }
    }

    /// Tells the client why the meeting refused what it asked, if it did.
    async fn refused(&mut self, asked: Result<(), AskError>) {
        if let Err(e) = asked {
            let (code, message) = ask_error(e);
            self.send_error(code, &message).await;
        }
    }

    async fn send_error(&mut self, code: ErrorCode, message: &str) {
        self.send(&ServerMsg::Error {
            code,
            message: message.to_owned(),
        })
        .await;
    }

    async fn send_media_error(&mut self, e: ShellError) {
        let (code, message) = match e {
            ShellError::Sfu(SfuError::Sdp(m)) => {
                (ErrorCode::InvalidSdp, format!("invalid SDP: {m}"))
            }
            ShellError::Sfu(e @ SfuError::NoOfferPending) => (ErrorCode::BadMessage, e.to_string()),
            e => (ErrorCode::Internal, e.to_string()),
        };
        tracing::info!(remote = %self.remote, "media request refused: {message}");
        self.send_error(code, &message).await;
    }

    /// Refuses the connection: an error message, then a close.
    async fn fail(&mut self, code: ErrorCode, message: &str) {
        self.send_error(code, message).await;
        self.close(CLOSE_POLICY, "refused").await;
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.write(Message::Close(Some(frame))).await;
    }
}

/// What the client is told when the meeting refused or could not be asked.
fn ask_error(e: AskError) -> (ErrorCode, String) {
    let code = match &e {
        AskError::Refused { kind, .. } => match kind {
            RefusalKind::MeetingEnded => ErrorCode::MeetingEnded,
            RefusalKind::MeetingFull => ErrorCode::MeetingFull,
            RefusalKind::MeetingLocked => ErrorCode::MeetingLocked,
            RefusalKind::Denied => ErrorCode::Denied,
            RefusalKind::Forbidden => ErrorCode::Forbidden,
            RefusalKind::StageFull => ErrorCode::StageFull,
            RefusalKind::AlreadyVoted => ErrorCode::AlreadyVoted,
            RefusalKind::UnknownPoll | RefusalKind::UnknownQuestion => ErrorCode::BadMessage,
            RefusalKind::UnknownSession => ErrorCode::ResumeFailed,
            RefusalKind::NodeFull => ErrorCode::WrongNode,
            _ => ErrorCode::BadMessage,
        },
        AskError::Control(e) => return control_error(e),
        _ => ErrorCode::Internal,
    };
    (code, e.to_string())
}

fn control_error(e: &ControlError) -> (ErrorCode, String) {
    let code = match e {
        ControlError::NotFound => ErrorCode::MeetingNotFound,
        ControlError::Ended => ErrorCode::MeetingEnded,
        _ => ErrorCode::Internal,
    };
    (code, e.to_string())
}

fn describe_json_error(e: &serde_json::Error) -> String {
    let mut s = format!("malformed message: {e}");
    s.truncate(300);
    s
}

/// The next text message; binary frames are an error; `None` when the socket is gone.
async fn next_text(stream: &mut SplitStream<WebSocket>) -> Option<Result<String, String>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(t)) => return Some(Ok(t.to_string())),
            Ok(Message::Binary(_)) => return Some(Err("binary messages are not supported".into())),
            Ok(Message::Close(_)) => return None,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Err(e) => {
                tracing::debug!("websocket error: {e}");
                return None;
            }
        }
    }
}
