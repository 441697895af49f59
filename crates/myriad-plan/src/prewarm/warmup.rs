//! What one node does ahead of the scheduled meetings its region will carry: from a lead
//! before the first people are forecast to come, it keeps seats open for its share of them
//! (partitions opened on its workers, the meeting's coordinator running) and fetches the
//! meeting's content into the edges next to it. If nobody has come by a grace after the
//! forecast's half-way point, the meeting did not happen: the seats lapse (the coordinator
//! stops as an idle meeting does) and its content is dropped from the edges again.

use std::collections::BTreeMap;

use myriad_proto::cluster::NodeInfo;

use super::forecast::{Forecast, ANY_REGION};
use crate::route::takes_newcomers;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupConfig {
    /// How long before the first forecast joins the warm-up starts.
    pub lead_s: u64,
    /// How long after half the people were forecast to have joined seats are still held for
    /// a meeting nobody came to.
    pub grace_s: u64,
    /// Seats kept open per forecast person (forecasts err).
    pub margin: f64,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        Self {
            lead_s: 300,
            grace_s: 600,
            margin: 1.2,
        }
    }
}

/// A scheduled meeting, as the warm-up sees it.
#[derive(Debug, Clone)]
pub struct Upcoming<'a> {
    pub meeting: &'a str,
    pub starts_unix_s: u64,
    pub duration_s: u32,
    pub forecast: &'a Forecast,
    /// Its content, to fetch into the edges (paths of the site, or URLs).
    pub content: &'a [String],
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Keep `seats` open here for the meeting until `hold_until_unix_s` (repeated while it
    /// holds: a coordinator that took the meeting over learns it again).
    Open {
        meeting: String,
        seats: u32,
        hold_until_unix_s: u64,
    },
    /// Fetch the meeting's content into the edges next to this node.
    Fetch { meeting: String, urls: Vec<String> },
    /// The meeting did not happen: drop its content from the edges.
    Undo { meeting: String, urls: Vec<String> },
}

#[derive(Debug, Clone)]
struct Warm {
    urls: Vec<String>,
    fetched: bool,
    /// Someone was seated in the meeting while it was warm.
    happened: bool,
    /// Settled (happened or undone): nothing more to do until it ends.
    settled: bool,
    ends_unix_s: u64,
}

/// The warm-up state of one node.
#[derive(Debug, Clone, Default)]
pub struct Warmup {
    config: WarmupConfig,
    warm: BTreeMap<String, Warm>,
}

impl Warmup {
    pub fn new(config: WarmupConfig) -> Self {
        Self {
            config,
            warm: BTreeMap::new(),
        }
    }

    /// The meeting's coordinator said how many people are seated in it.
    pub fn seated(&mut self, meeting: &str, seated: u32) {
        if let Some(w) = self.warm.get_mut(meeting) {
            w.happened |= seated > 0;
        }
    }

    /// Meetings warm here and not yet settled.
    pub fn warming(&self) -> usize {
        self.warm.values().filter(|w| !w.settled).count()
    }

    /// The steps due at `now` for node `me`, with `nodes` alive and `upcoming` scheduled.
    pub fn plan(
        &mut self,
        now_unix_s: u64,
        me: &NodeInfo,
        nodes: &[NodeInfo],
        upcoming: &[Upcoming<'_>],
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for u in upcoming {
            let start = u.starts_unix_s as i64;
            let warm_from = start + u.forecast.first_joins().min(0) - self.config.lead_s as i64;
            let hold_until =
                (start + u.forecast.by(0.5).max(0) + self.config.grace_s as i64).max(0) as u64;
            let ends = u.starts_unix_s + u64::from(u.duration_s);
            let now = now_unix_s as i64;
            if now < warm_from || now_unix_s >= ends.max(hold_until) {
                continue;
            }
            let seats = share(u.forecast, me, nodes, self.config.margin);
            if seats == 0 && u.content.is_empty() {
                continue;
            }
            let w = self
                .warm
                .entry(u.meeting.to_owned())
                .or_insert_with(|| Warm {
                    urls: u.content.to_vec(),
                    fetched: false,
                    happened: false,
                    settled: false,
                    ends_unix_s: ends.max(hold_until),
                });
            if w.settled {
                continue;
            }
            if now_unix_s >= hold_until {
                w.settled = true;
                if !w.happened && w.fetched {
                    steps.push(Step::Undo {
                        meeting: u.meeting.to_owned(),
                        urls: w.urls.clone(),
                    });
                }
                continue;
            }
            if seats > 0 {
                steps.push(Step::Open {
                    meeting: u.meeting.to_owned(),
                    seats,
                    hold_until_unix_s: hold_until,
                });
            }
            if !w.fetched && !w.urls.is_empty() {
                w.fetched = true;
                steps.push(Step::Fetch {
                    meeting: u.meeting.to_owned(),
                    urls: w.urls.clone(),
                });
            }
        }
        // Warm meetings no longer scheduled (deleted or ended early) that nobody came to.
        let listed: Vec<&str> = upcoming.iter().map(|u| u.meeting).collect();
        self.warm.retain(|meeting, w| {
            let gone = !listed.contains(&meeting.as_str());
            if gone && !w.settled && !w.happened && w.fetched {
                steps.push(Step::Undo {
                    meeting: meeting.clone(),
                    urls: w.urls.clone(),
                });
            }
            !gone && now_unix_s < w.ends_unix_s
        });
        steps
    }
}

/// This node's share of the forecast people, with the margin: its region's people split
/// over the region's open nodes, and those of no known region (or of a region with no open
/// node) over all open nodes.
fn share(forecast: &Forecast, me: &NodeInfo, nodes: &[NodeInfo], margin: f64) -> u32 {
    if !takes_newcomers(me) {
        return 0;
    }
    let open: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| takes_newcomers(n) || n.name == me.name)
        .collect();
    let in_region = |r: &str| open.iter().filter(|n| n.region == r).count();
    let mut mine = 0.0;
    let mut anywhere = 0.0;
    for (region, n) in &forecast.attendance {
        let n = f64::from(*n);
        match in_region(region) {
            0 => anywhere += n,
            _ if region == ANY_REGION => anywhere += n,
            k if *region == me.region => mine += n / k as f64,
            _ => {}
        }
    }
    mine += anywhere / open.len().max(1) as f64;
    (mine * margin).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::super::forecast::{Forecaster, BINS};
    use super::*;
    use crate::route::test_node;

    const START: u64 = 1_800_000_000;

    fn forecast(pairs: &[(&str, u32)]) -> Forecast {
        let audience = pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        Forecaster::default().forecast(None, &audience)
    }

    fn upcoming<'a>(meeting: &'a str, f: &'a Forecast, content: &'a [String]) -> Upcoming<'a> {
        Upcoming {
            meeting,
            starts_unix_s: START,
            duration_s: 3600,
            forecast: f,
            content,
        }
    }

    #[test]
    fn a_node_opens_its_regions_share_and_fetches_once_from_the_lead() {
        let nodes = [
            test_node("eu1", "eu", 0, 1000),
            test_node("eu2", "eu", 0, 1000),
            test_node("us1", "us", 0, 1000),
        ];
        let f = forecast(&[("eu", 1000), ("us", 10), ("*", 30)]);
        let content = vec!["/slides/deck.pdf".to_owned()];
        let meetings = [upcoming("m", &f, &content)];
        let mut w = Warmup::new(WarmupConfig::default());
        assert!(w.plan(START - 301, &nodes[0], &nodes, &meetings).is_empty());
        let steps = w.plan(START - 300, &nodes[0], &nodes, &meetings);
        // 1000 / 2 + 30 / 3, with a fifth more.
        let open = Step::Open {
            meeting: "m".into(),
            seats: 612,
            hold_until_unix_s: START + 60 + 600,
        };
        assert_eq!(
            steps,
            [
                open.clone(),
                Step::Fetch {
                    meeting: "m".into(),
                    urls: content.clone()
                }
            ]
        );
        assert_eq!(w.plan(START - 200, &nodes[0], &nodes, &meetings), [open]);
        assert_eq!(w.warming(), 1);
        let us = w.plan(START - 200, &nodes[2], &nodes, &meetings);
        assert!(matches!(us[0], Step::Open { seats: 24, .. }), "{us:?}");
    }

    #[test]
    fn a_meeting_nobody_came_to_is_undone_and_one_that_happened_is_not() {
        let nodes = [test_node("eu1", "eu", 0, 1000)];
        let f = forecast(&[("eu", 50)]);
        let content = vec!["/a".to_owned()];
        let meetings = [
            upcoming("empty", &f, &content),
            upcoming("full", &f, &content),
        ];
        let mut w = Warmup::new(WarmupConfig::default());
        assert_eq!(w.plan(START - 10, &nodes[0], &nodes, &meetings).len(), 4);
        w.seated("full", 3);
        let hold = START + 60 + 600;
        assert_eq!(w.plan(hold - 1, &nodes[0], &nodes, &meetings).len(), 2);
        assert_eq!(
            w.plan(hold, &nodes[0], &nodes, &meetings),
            [Step::Undo {
                meeting: "empty".into(),
                urls: content.clone()
            }]
        );
        assert!(w.plan(hold + 5, &nodes[0], &nodes, &meetings).is_empty());
        assert_eq!(w.warming(), 0);
    }

    #[test]
    fn a_meeting_deleted_while_warm_is_undone_and_a_draining_node_opens_nothing() {
        let mut nodes = [test_node("eu1", "eu", 0, 1000)];
        let f = forecast(&[("eu", 50)]);
        let content = vec!["/a".to_owned()];
        let mut w = Warmup::new(WarmupConfig::default());
        w.plan(START, &nodes[0], &nodes, &[upcoming("m", &f, &content)]);
        assert_eq!(
            w.plan(START + 1, &nodes[0], &nodes, &[]),
            [Step::Undo {
                meeting: "m".into(),
                urls: content
            }]
        );
        nodes[0].draining = true;
        let steps = w.plan(START, &nodes[0], &nodes, &[upcoming("n", &f, &[])]);
        assert!(steps.is_empty(), "{steps:?}");
        assert_eq!(f.curve.len(), BINS);
    }
}
