//! The REST API (JSON, authenticated with the API key as HTTP Basic `key:secret`), plus the
//! dev-mode endpoints the web page uses on a laptop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use myriad_auth::{parse_ttl, Grants};
use myriad_control::{
    generate_session_token, now_unix_s, AskError, ClusterView, Control, ControlError,
};
use myriad_plan::{nearest_region, Prefix};
use myriad_proto::cluster::{NodeInfo, RttShared, RTT_SUBJECT};
use myriad_proto::meeting::{Actor, RefusalKind};
use myriad_proto::{MeetingId, ParticipantId, PollKind, Role, TrackSource};
use myriad_store::{MeetingRecord, MeetingSettings, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{ClientAddr, Node};

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/meetings", post(create_meeting))
        .route(
            "/api/v1/meetings/{id}",
            get(get_meeting).delete(end_meeting),
        )
        .route("/api/v1/meetings/{id}/participants", get(list_participants))
        .route(
            "/api/v1/meetings/{id}/participants/{pid}",
            axum::routing::delete(remove_participant),
        )
        .route(
            "/api/v1/meetings/{id}/participants/{pid}/mute",
            post(mute_participant),
        )
        .route(
            "/api/v1/meetings/{id}/participants/{pid}/role",
            post(set_role),
        )
        .route("/api/v1/meetings/{id}/default_role", post(set_default_role))
        .route("/api/v1/meetings/{id}/polls", post(create_poll))
        .route("/api/v1/meetings/{id}/polls/{poll}/close", post(close_poll))
        .route(
            "/api/v1/meetings/{id}/polls/{poll}/answers.csv",
            get(poll_csv),
        )
        .merge(crate::schedule_api::routes())
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/route", get(route))
        .route("/api/v1/route/rtt", post(report_rtt))
        .route("/api/v1/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .route("/api/dev/meetings", post(dev_create_meeting))
        .route("/api/dev/token", post(dev_token))
}

/// An API error: a status and a JSON body `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        (self.status, body).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "meeting_not_found", e.to_string())
            }
            ControlError::Ended => Self::new(StatusCode::GONE, "meeting_ended", e.to_string()),
            ControlError::Exists => {
                Self::new(StatusCode::CONFLICT, "meeting_exists", e.to_string())
            }
            ControlError::Store(e) => {
                tracing::error!("store: {e}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "storage error",
                )
            }
            e => {
                tracing::error!("control: {e}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<AskError> for ApiError {
    fn from(e: AskError) -> Self {
        match e {
            AskError::Control(e) => e.into(),
            AskError::Refused { kind, message } => match kind {
                RefusalKind::MeetingEnded => Self::new(StatusCode::GONE, "meeting_ended", message),
                RefusalKind::UnknownParticipant => {
                    Self::new(StatusCode::NOT_FOUND, "participant_not_found", message)
                }
                RefusalKind::UnknownTrack => {
                    Self::new(StatusCode::NOT_FOUND, "track_not_found", message)
                }
                RefusalKind::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
                RefusalKind::UnknownPoll => {
                    Self::new(StatusCode::NOT_FOUND, "poll_not_found", message)
                }
                _ => Self::new(StatusCode::CONFLICT, "conflict", message),
            },
            e => {
                tracing::error!("meeting request failed: {e}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

/// Proof that the request carried the API key and secret.
pub struct ApiAuth;

impl FromRequestParts<Arc<Node>> for ApiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("missing Authorization: Basic <key:secret>"))?;
        let encoded = value.strip_prefix("Basic ").ok_or_else(|| {
            unauthorized("use HTTP Basic authentication with the API key and secret")
        })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        let (key, secret) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        let api = node.control.api_key();
        if key != api.key || !api.secret_matches(secret) {
            return Err(unauthorized("unknown API key or wrong secret"));
        }
        Ok(ApiAuth)
    }
}

pub(crate) fn meeting_id(s: &str) -> Result<MeetingId, ApiError> {
    MeetingId::parse(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_meeting_id", e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMeeting {
    id: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    settings: MeetingSettings,
}

const MAX_TITLE_BYTES: usize = 200;

async fn create_meeting(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Json(req): Json<CreateMeeting>,
) -> Result<(StatusCode, Json<CreatedMeeting>), ApiError> {
    let id = req.id.as_deref().map(meeting_id).transpose()?;
    create(&node, id, req.title, req.settings).await
}

#[derive(Serialize)]
struct CreatedMeeting {
    #[serde(flatten)]
    record: MeetingRecord,
    /// The secret of the meeting's host link (`/m/{id}?host=…`): it joins as host.
    host_key: String,
}

/// Creates a meeting for the REST API and the dev endpoint alike.
async fn create(
    node: &Node,
    id: Option<MeetingId>,
    title: String,
    settings: MeetingSettings,
) -> Result<(StatusCode, Json<CreatedMeeting>), ApiError> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_title",
            "title is too long",
        ));
    }
    if !settings
        .schedule
        .as_ref()
        .is_none_or(Schedule::content_fits)
    {
        let message = format!(
            "a schedule names at most {} content URLs of {} bytes",
            Schedule::MAX_CONTENT,
            Schedule::MAX_CONTENT_BYTES
        );
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_schedule",
            &message,
        ));
    }
    let record = node.control.create_meeting(id, title, settings).await?;
    let host_key = meeting_id(&record.id).map(|id| node.control.api_key().host_key(&id))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedMeeting { record, host_key }),
    ))
}

#[derive(Serialize)]
struct MeetingView {
    #[serde(flatten)]
    record: MeetingRecord,
    /// Participants connected now (0 when the meeting is not running).
    participants: u32,
}

async fn get_meeting(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<MeetingView>, ApiError> {
    let id = meeting_id(&id)?;
    let record = node.control.meeting_record(&id).await?;
    let participants = node
        .control
        .client(&id)
        .participants(None, 0)
        .await
        .map_or(0, |(n, _)| n);
    Ok(Json(MeetingView {
        record,
        participants,
    }))
}

async fn end_meeting(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    node.control.end_meeting(&meeting_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Page {
    after: Option<u64>,
    limit: Option<u32>,
}

async fn list_participants(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let (count, participants) = node
        .control
        .client(&id)
        .participants(page.after.map(ParticipantId), limit)
        .await?;
    let next = (participants.len() == limit as usize)
        .then(|| participants.last().map(|p| p.id))
        .flatten();
    Ok(Json(
        json!({ "count": count, "participants": participants, "next_after": next }),
    ))
}

async fn remove_participant(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path((id, pid)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    node.control
        .client(&id)
        .remove(Actor::Api, ParticipantId(pid))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mute {
    #[serde(default = "microphone")]
    source: TrackSource,
}

fn microphone() -> TrackSource {
    TrackSource::Microphone
}

async fn mute_participant(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path((id, pid)): Path<(String, u64)>,
    body: Option<Json<Mute>>,
) -> Result<StatusCode, ApiError> {
    let source = body.map_or(TrackSource::Microphone, |Json(m)| m.source);
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    node.control
        .client(&id)
        .mute(Actor::Api, ParticipantId(pid), source, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePoll {
    question: String,
    kind: PollKind,
    #[serde(default)]
    anonymous: bool,
}

/// Opens a poll in a meeting (the operator's backend asks it, as a host would).
async fn create_poll(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Json(req): Json<CreatePoll>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    let poll = node
        .control
        .client(&id)
        .create_poll(Actor::Api, req.question, req.kind, req.anonymous)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": poll }))))
}

async fn close_poll(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path((id, poll)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    node.control
        .client(&id)
        .close_poll(Actor::Api, poll)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A poll's answers as CSV, in the order given (who gave each only in a named poll).
async fn poll_csv(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path((id, poll)): Path<(String, u64)>,
) -> Result<impl IntoResponse, ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    let (poll, answers) = node.control.client(&id).poll_answers(poll).await?;
    let csv = crate::poll_export::to_csv(&poll, &answers)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let name = format!("attachment; filename=\"{id}-poll-{}.csv\"", poll.info.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRole {
    role: Role,
}

/// Gives a participant another role, live (the operator's backend may make hosts).
async fn set_role(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path((id, pid)): Path<(String, u64)>,
    Json(body): Json<SetRole>,
) -> Result<StatusCode, ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    node.control
        .client(&id)
        .set_role(Actor::Api, ParticipantId(pid), body.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether this node should be sent people (200 `ready`), or why not (503 `draining`,
/// `overloaded`, `unavailable`, with a reason).
async fn healthz(State(node): State<Arc<Node>>) -> Response {
    let health = node.health();
    let status = StatusCode::from_u16(health.http_status()).unwrap_or(StatusCode::OK);
    (status, Json(health)).into_response()
}

/// Sets the role of people who join without one of their own (a link), from now on.
async fn set_default_role(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Json(body): Json<SetRole>,
) -> Result<StatusCode, ApiError> {
    let id = meeting_id(&id)?;
    node.control.meeting_record(&id).await?;
    node.control
        .set_default_role(&id, Actor::Api, body.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteQuery {
    meeting: String,
    /// The client's region, if it knows it; else this node's.
    region: Option<String>,
}

/// Where a client of a meeting should connect: the best node, and the others to try in turn
/// (the web client goes down the list when a node fails), as the meeting's coordinator
/// places people — a free seat in an open partition near the client first. Any page may
/// ask any node. A client that does not say its region is placed by its address (placed
/// networks, then the geolocation database), else taken to be in this node's; behind a
/// trusted proxy, by the address it forwards for.
async fn route(
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    fields: HeaderMap,
    Query(q): Query<RouteQuery>,
) -> Result<
    (
        [(header::HeaderName, &'static str); 1],
        Json<serde_json::Value>,
    ),
    ApiError,
> {
    let id = meeting_id(&q.meeting)?;
    let record = node.control.meeting_record(&id).await?;
    if record.ended_unix_s.is_some() {
        return Err(ControlError::Ended.into());
    }
    let alive = node.control.cluster().routable();
    let client = node.client_ip(peer, &fields);
    let region = q.region.unwrap_or_else(|| {
        let measured = lock(&node.rtt).fastest_region(Prefix::of(client), &alive, Instant::now());
        measured
            .or_else(|| nearest_region(&alive, node.config.geo.locate(client).place))
            .unwrap_or(&node.config.region)
            .to_owned()
    });
    let names = node.control.client(&id).route(Some(region)).await?;
    let ranked: Vec<&NodeInfo> = names
        .iter()
        .filter_map(|name| alive.iter().find(|n| &n.name == name))
        .collect();
    let Some(best) = ranked.first() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_node",
            "no node with media has room now",
        ));
    };
    let candidates: Vec<serde_json::Value> = ranked
        .iter()
        .map(|n| json!({ "node": n.name, "url": n.url, "region": n.region, "load": n.load() }))
        .collect();
    let answer = json!({
        "meeting": id,
        "node": best.name,
        "url": best.url,
        "region": best.region,
        "candidates": candidates,
    });
    Ok(([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], Json(answer)))
}

/// Samples one report carries at most.
pub(crate) const MAX_RTT_SAMPLES: usize = 8;

/// A round trip a client could have measured: 0–60,000 ms.
pub(crate) fn plausible_rtt(ms: f64) -> bool {
    ms.is_finite() && ms > 0.0 && ms < 60_000.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RttReport {
    samples: Vec<RttSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RttSample {
    node: String,
    rtt_ms: f64,
}

/// A web client's measured round trips to the nodes it was offered, kept for its network
/// prefix: the next clients from there are routed to the region of the fastest. A plain-text
/// body (JSON in it), so that any page may send it without a preflight; nodes the registry
/// does not list are ignored.
async fn report_rtt(
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    fields: HeaderMap,
    body: String,
) -> Result<([(header::HeaderName, &'static str); 1], StatusCode), ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_rtt_report", m);
    let report: RttReport = serde_json::from_str(&body).map_err(|e| bad(e.to_string()))?;
    if report.samples.len() > MAX_RTT_SAMPLES {
        return Err(bad(format!("at most {MAX_RTT_SAMPLES} samples")));
    }
    if let Some(s) = report.samples.iter().find(|s| !plausible_rtt(s.rtt_ms)) {
        return Err(bad(format!("{}: a round trip is 0–60,000 ms", s.rtt_ms)));
    }
    let alive = node.control.cluster().alive();
    let prefix = Prefix::of(node.client_ip(peer, &fields));
    let now = Instant::now();
    let known: Vec<(String, f64)> = report
        .samples
        .into_iter()
        .filter(|s| alive.iter().any(|n| n.name == s.node))
        .map(|s| (s.node, s.rtt_ms))
        .collect();
    {
        let mut book = lock(&node.rtt);
        for (n, rtt_ms) in &known {
            book.record(prefix, n, *rtt_ms, now);
            node.load.rtt_samples.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Every node routes this network by them too.
    let shared = RttShared {
        from: node.name.clone(),
        prefix: prefix.bits(),
        samples: known,
    };
    let payload = bytes::Bytes::from(myriad_proto::bus::encode(&shared));
    if let Err(e) = node.control.bus().publish(RTT_SUBJECT, payload).await {
        tracing::warn!("round trips not shared with the other nodes: {e}");
    }
    Ok((
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        StatusCode::NO_CONTENT,
    ))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The node's metrics, in Prometheus' text format: to a scraper on this machine (not through
/// a proxy), or to one with the API key.
async fn metrics(
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    mut parts: Parts,
) -> Result<impl IntoResponse, ApiError> {
    let local = dev_refusal(true, client, &parts.headers).is_none();
    if !local {
        ApiAuth::from_request_parts(&mut parts, &node).await?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.encode(),
    ))
}

/// The nodes of the cluster as this node hears them (operators only).
async fn cluster(_: ApiAuth, State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(json!({ "this": node.name, "nodes": node.control.cluster().alive() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    meeting: String,
    identity: String,
    name: Option<String>,
    #[serde(default = "attendee")]
    role: Role,
    ttl: Option<String>,
}

fn attendee() -> Role {
    Role::Attendee
}

fn issue(
    control: &Control,
    meeting: MeetingId,
    identity: String,
    name: Option<String>,
    role: Role,
    ttl_s: u64,
) -> Result<String, ApiError> {
    let grants = Grants::for_role(meeting, identity, name, role);
    control
        .api_key()
        .create_token(&grants, now_unix_s(), ttl_s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_grants", e.to_string()))
}

async fn create_token(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Json(req): Json<CreateToken>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ttl_s = match req.ttl.as_deref() {
        None => 3600,
        Some(t) => parse_ttl(t).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_ttl",
                "ttl must look like 90s, 15m, 1h or 7d",
            )
        })?,
    };
    let token = issue(
        &node.control,
        meeting_id(&req.meeting)?,
        req.identity,
        req.name,
        req.role,
        ttl_s,
    )?;
    Ok(Json(json!({ "token": token })))
}

/// Fields a proxy adds: a request that carries one came through something else.
const PROXY_FIELDS: [&str; 4] = ["forwarded", "x-forwarded-for", "x-real-ip", "via"];

/// Dev powers (meetings and tokens for anyone) go to a client on this machine only: in dev
/// mode, from a loopback address, not through a proxy (a proxy on this machine, an edge in
/// front of it, makes every client look local).
fn require_dev(control: &Control, client: SocketAddr, fields: &HeaderMap) -> Result<(), ApiError> {
    match dev_refusal(control.dev_mode(), client, fields) {
        None => Ok(()),
        Some((code, message)) => Err(ApiError::new(StatusCode::FORBIDDEN, code, message)),
    }
}

/// Why a request gets no dev powers, if it does not.
fn dev_refusal(
    dev_mode: bool,
    client: SocketAddr,
    fields: &HeaderMap,
) -> Option<(&'static str, String)> {
    if !dev_mode {
        return Some((
            "dev_mode_off",
            "this server is not in dev mode: tokens come from the operator's backend".into(),
        ));
    }
    if !client.ip().to_canonical().is_loopback() {
        return Some((
            "dev_local_only",
            "dev mode serves clients on this machine only: tokens come from the operator's backend"
                .into(),
        ));
    }
    PROXY_FIELDS
        .iter()
        .find(|f| fields.contains_key(**f))
        .map(|field| {
            (
                "dev_not_proxied",
                format!("dev mode serves no request that came through a proxy ({field})"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_powers_go_to_local_unproxied_clients_only() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let none = HeaderMap::new();
        assert_eq!(dev_refusal(true, local, &none), None);
        assert_eq!(dev_refusal(true, mapped, &none), None);
        assert_eq!(dev_refusal(false, local, &none).unwrap().0, "dev_mode_off");
        assert_eq!(
            dev_refusal(true, remote, &none).unwrap().0,
            "dev_local_only"
        );
        for field in PROXY_FIELDS {
            let mut proxied = HeaderMap::new();
            proxied.insert(field, "x".parse().unwrap());
            assert_eq!(
                dev_refusal(true, local, &proxied).unwrap().0,
                "dev_not_proxied"
            );
        }
    }

    #[test]
    fn roles_rank_attendee_panelist_host() {
        assert!(rank(Role::Attendee) < rank(Role::Panelist));
        assert!(rank(Role::Panelist) < rank(Role::Host));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevMeeting {
    #[serde(default)]
    title: String,
    #[serde(default)]
    settings: MeetingSettings,
}

async fn dev_create_meeting(
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    fields: HeaderMap,
    Json(req): Json<DevMeeting>,
) -> Result<(StatusCode, Json<CreatedMeeting>), ApiError> {
    require_dev(&node.control, client, &fields)?;
    create(&node, None, req.title, req.settings).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevToken {
    meeting: String,
    name: String,
    /// At most the meeting's default role, which it is unless asked for.
    role: Option<Role>,
    /// The meeting's host key (from its host link): any role, host unless asked for.
    host_key: Option<String>,
}

/// How much a role may do: a dev token may carry no more than the meeting's default.
fn rank(role: Role) -> u8 {
    match role {
        Role::Attendee => 0,
        Role::Panelist => 1,
        Role::CoHost => 2,
        Role::Host => 3,
    }
}

/// In dev mode, anyone on this machine may join any existing meeting by name, with at most
/// the meeting's default role; with the meeting's host key, as its host.
async fn dev_token(
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    fields: HeaderMap,
    Json(req): Json<DevToken>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_dev(&node.control, client, &fields)?;
    let meeting = meeting_id(&req.meeting)?;
    let record = node.control.meeting_record(&meeting).await?;
    if record.ended_unix_s.is_some() {
        return Err(ControlError::Ended.into());
    }
    let name = req.name.trim().to_owned();
    let default = record.settings.default_role;
    let host = match &req.host_key {
        Some(key) if node.control.api_key().is_host_key(&meeting, key) => true,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_host_key",
                "this host link is not the meeting's: ask its host for the right one",
            ))
        }
        None => false,
    };
    let role = req.role.unwrap_or(if host { Role::Host } else { default });
    if !host && rank(role) > rank(default) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "dev_role",
            format!("a dev token carries at most the meeting's default role ({default:?}); more needs the API key"),
        ));
    }
    // The identity is the typed name plus a suffix, so two people called Alex are two people.
    let identity = format!("{name}#{}", &generate_session_token()[..6]);
    let token = issue(
        &node.control,
        meeting,
        identity,
        Some(name),
        role,
        12 * 3600,
    )?;
    Ok(Json(json!({ "token": token })))
}
