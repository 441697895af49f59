//! Scheduled meetings over the API: an iCalendar imported as meetings, what is planned, and
//! each host's feed for calendar apps (subscribed by URL, with a key of its own).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use myriad_control::ControlError;
use myriad_plan::prewarm::{held_out, Forecaster};
use myriad_store::MeetingSettings;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{ApiAuth, ApiError};
use crate::calendar;
use crate::Node;

pub(crate) fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/api/v1/calendar", post(import))
        .route("/api/v1/schedule", get(list))
        .route("/api/v1/forecast/accuracy", get(accuracy))
        .route("/api/v1/hosts/{host}/calendar.ics", get(host_feed))
}

/// Creates a meeting for each event of an iCalendar body (RFC 5545), with its schedule: its
/// start and length, its organizer as host, and its expected audience (our
/// `X-MYRIAD-AUDIENCE: eu=300,us=120`, else its attendees). The answer says, per event,
/// `created`, `updated` (imported before — the same UID is the same meeting — and its
/// time, audience or content changed since), `exists` (unchanged, or ended) or `refused`
/// and why.
async fn import(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let events = calendar::read(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_calendar", e.to_string()))?;
    let mut answers = Vec::with_capacity(events.len());
    for (uid, planned) in events {
        let planned = match planned {
            Ok(p) => p,
            Err(e) => {
                answers.push(json!({ "uid": uid, "status": "refused", "error": e.to_string() }));
                continue;
            }
        };
        let settings = MeetingSettings {
            schedule: Some(planned.schedule.clone()),
            ..MeetingSettings::default()
        };
        let status = match node
            .control
            .create_meeting(Some(planned.id.clone()), planned.title, settings)
            .await
        {
            Ok(_) => "created",
            Err(ControlError::Exists) => {
                let current = node.control.meeting_record(&planned.id).await?;
                let moved = current.settings.schedule.as_ref() != Some(&planned.schedule)
                    && node
                        .control
                        .reschedule(&planned.id, &planned.schedule)
                        .await?;
                if moved {
                    "updated"
                } else {
                    "exists"
                }
            }
            Err(e) => return Err(e.into()),
        };
        answers.push(json!({
            "uid": uid,
            "status": status,
            "meeting": planned.id,
            "starts_unix_s": planned.schedule.starts_unix_s,
        }));
    }
    Ok(Json(json!({ "events": answers })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    host: Option<String>,
}

/// The meetings planned and not ended, soonest first (one host's with `?host=`), each with
/// its link, and each host's feed URL.
async fn list(
    _: ApiAuth,
    State(node): State<Arc<Node>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let host = q.host.map(|h| h.to_lowercase());
    let base = node.config.url.trim_end_matches('/');
    let key = node.control.api_key();
    let forecaster = Forecaster::learn(&node.control.turnouts().await?);
    let meetings: Vec<Value> = node
        .control
        .scheduled_meetings()
        .await?
        .into_iter()
        .filter(|m| host.is_none() || hosted_by(m, host.as_deref()))
        .map(|m| {
            let feed = m
                .settings
                .schedule
                .as_ref()
                .and_then(|s| s.host.as_ref())
                .map(|h| {
                    format!(
                        "{base}/api/v1/hosts/{h}/calendar.ics?key={}",
                        key.feed_key(h)
                    )
                });
            let forecast = m.settings.schedule.as_ref().map(|s| {
                let f = forecaster.forecast(s.host.as_deref(), &s.audience);
                json!({
                    "attendance": f.attendance,
                    "first_joins_s": f.first_joins(),
                    "half_joined_s": f.by(0.5),
                })
            });
            json!({
                "id": m.id,
                "title": m.title,
                "schedule": m.settings.schedule,
                "forecast": forecast,
                "url": format!("{base}/m/{}", m.id),
                "host_feed": feed,
            })
        })
        .collect();
    Ok(Json(json!({ "meetings": meetings })))
}

/// How the forecasts would have done on the meetings recorded, each forecast from those
/// before it.
async fn accuracy(_: ApiAuth, State(node): State<Arc<Node>>) -> Result<Json<Value>, ApiError> {
    let records = node.control.turnouts().await?;
    Ok(Json(json!({
        "records": records.len(),
        "held_out": held_out(&records),
    })))
}

fn hosted_by(m: &myriad_store::MeetingRecord, host: Option<&str>) -> bool {
    m.settings.schedule.as_ref().and_then(|s| s.host.as_deref()) == host
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    key: String,
}

/// A host's planned meetings as an iCalendar feed; its key (in the URL `schedule` gives)
/// stands for the API key, since calendar apps subscribe by URL alone.
async fn host_feed(
    State(node): State<Arc<Node>>,
    Path(host): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let host = host.to_lowercase();
    if !node.control.api_key().is_feed_key(&host, &q.key) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_feed_key",
            "this feed's key is not that",
        ));
    }
    let meetings: Vec<_> = node
        .control
        .scheduled_meetings()
        .await?
        .into_iter()
        .filter(|m| hosted_by(m, Some(&host)))
        .collect();
    let text = calendar::feed(&format!("{host} on myriad"), &meetings, &node.config.url);
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        text,
    ))
}
