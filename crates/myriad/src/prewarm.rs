//! Warming this node up ahead of scheduled meetings: every tick, what the schedule and the
//! forecasts (learned from past meetings' turnout) say it should ready now ([`Warmup`]),
//! done — seats asked of each meeting's coordinator; the meeting's page, the web client and
//! its content fetched into the edges next to the node (their admin `/prefetch`), or purged
//! from them again when the meeting did not happen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use myriad_control::{now_unix_s, ClusterView, Control};
use myriad_plan::prewarm::{Forecast, Forecaster, Step, Upcoming, Warmup};
use myriad_proto::MeetingId;
use myriad_store::MeetingRecord;
use serde_json::json;

use crate::config::Prewarm;

/// How often the warm-up looks at the schedule.
const TICK: Duration = Duration::from_secs(1);
/// How often forecasts learn again from the turnout records.
const RELEARN: Duration = Duration::from_secs(30);
/// How long one edge may take over a prefetch (it fetches the whole content).
const EDGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts warming up for `control`'s node; content given as paths is fetched under `site`
/// (the config's, else the node's URL).
pub fn start(mut config: Prewarm, site: &str, control: Arc<Control>) -> anyhow::Result<()> {
    config.site.get_or_insert_with(|| site.to_owned());
    let http = reqwest::Client::builder()
        .timeout(EDGE_TIMEOUT)
        .build()
        .context("the warm-up's HTTP client")?;
    tokio::spawn(run(config, control, http));
    Ok(())
}

async fn run(config: Prewarm, control: Arc<Control>, http: reqwest::Client) {
    let site = config.site.as_deref().unwrap_or_default();
    let mut warmup = Warmup::new(config.warmup);
    let mut forecaster = Forecaster::default();
    let mut learned_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if learned_at.is_none_or(|t| t.elapsed() >= RELEARN) {
            match control.turnouts().await {
                Ok(records) => {
                    forecaster = Forecaster::learn(&records);
                    learned_at = Some(Instant::now());
                }
                Err(e) => tracing::warn!("turnout records not read: {e}"),
            }
        }
        let scheduled = match control.scheduled_meetings().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("scheduled meetings not read: {e}");
                continue;
            }
        };
        let Some(me) = control.cluster().node(control.node()) else {
            continue;
        };
        let nodes = control.cluster().alive();
        let forecasts: Vec<(&MeetingRecord, Forecast)> = scheduled
            .iter()
            .filter_map(|m| {
                let s = m.settings.schedule.as_ref()?;
                Some((m, forecaster.forecast(s.host.as_deref(), &s.audience)))
            })
            .collect();
        let upcoming: Vec<Upcoming<'_>> = forecasts
            .iter()
            .filter_map(|(m, forecast)| {
                let s = m.settings.schedule.as_ref()?;
                Some(Upcoming {
                    meeting: &m.id,
                    starts_unix_s: s.starts_unix_s,
                    duration_s: s.duration_s,
                    forecast,
                    content: &s.content,
                })
            })
            .collect();
        let now = now_unix_s();
        for step in warmup.plan(now, &me, &nodes, &upcoming) {
            match step {
                Step::Open {
                    meeting,
                    seats,
                    hold_until_unix_s,
                } => {
                    let hold = Duration::from_secs(hold_until_unix_s.saturating_sub(now));
                    if let Some(seated) = open(&control, &meeting, seats, hold).await {
                        warmup.seated(&meeting, seated);
                    }
                }
                Step::Fetch { meeting, urls } => {
                    let mut urls = absolute(site, &urls);
                    urls.extend(absolute(site, &myriad_node::client_paths(&meeting)));
                    tracing::info!(%meeting, urls = urls.len(), "warm-up: fetching the meeting's content into the edges");
                    to_edges(&http, &config, "prefetch", json!({ "urls": urls })).await;
                }
                Step::Undo { meeting, urls } => {
                    let mut urls = absolute(site, &urls);
                    urls.extend(absolute(site, &[format!("/m/{meeting}")]));
                    tracing::info!(%meeting, "warm-up undone: nobody came; its content leaves the edges");
                    to_edges(&http, &config, "purge", json!({ "urls": urls })).await;
                }
            }
        }
    }
}

/// Asks the meeting's coordinator (started here if nobody runs it) to ready `seats` here.
async fn open(control: &Arc<Control>, meeting: &str, seats: u32, hold: Duration) -> Option<u32> {
    let id = MeetingId::parse(meeting).ok()?;
    match control
        .client(&id)
        .prepare(control.node(), seats, hold)
        .await
    {
        Ok(seated) => Some(seated),
        Err(e) => {
            tracing::warn!(%meeting, seats, "warm-up: seats not readied: {e}");
            None
        }
    }
}

/// Content as the edges are asked for it: paths under the site, URLs as they are.
fn absolute(site: &str, content: &[String]) -> Vec<String> {
    content
        .iter()
        .map(|c| match c.starts_with('/') {
            true => format!("{}{c}", site.trim_end_matches('/')),
            false => c.clone(),
        })
        .collect()
}

async fn to_edges(http: &reqwest::Client, config: &Prewarm, verb: &str, body: serde_json::Value) {
    for edge in &config.edges {
        let url = format!("{}/{verb}", edge.trim_end_matches('/'));
        let mut req = http.post(&url).json(&body);
        if let Some(token) = &config.edge_token {
            req = req.bearer_auth(token);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(%url, status = %r.status(), "warm-up: the edge refused"),
            Err(e) => tracing::warn!(%url, "warm-up: the edge was not reached: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_fetched_under_the_site_and_urls_as_they_are() {
        let content = [
            "/slides/a.pdf".to_owned(),
            "https://cdn.example/b".to_owned(),
        ];
        assert_eq!(
            absolute("http://meet.example/", &content),
            ["http://meet.example/slides/a.pdf", "https://cdn.example/b"]
        );
    }
}
