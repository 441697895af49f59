//! How many people a scheduled meeting will bring, per region, and when they will come,
//! learned from the turnout of past meetings (the project's own records: who joined, through
//! a node of which region, how long before or after the start). A host's own meetings teach
//! their show-up rate once there are enough of them; otherwise everyone's do. With no record
//! at all, the expected audience is taken as it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Joins are counted per minute ...
pub const BIN_S: i64 = 60;
/// ... from 15 minutes before the start (earlier joins count in the first minute) ...
pub const FIRST_BIN_S: i64 = -15 * 60;
/// ... to 30 minutes after it (later ones in the last).
pub const BINS: usize = 45;
/// A host's own records are used once there are this many.
const HOST_RECORDS: usize = 3;
/// The expected audience of people of no known region.
pub const ANY_REGION: &str = "*";

/// Who came to one scheduled meeting: people (each counted at their first join) per region of
/// the node they joined through, and per minute around the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turnout {
    pub meeting: String,
    #[serde(default)]
    pub host: Option<String>,
    pub starts_unix_s: u64,
    /// Who was expected, per region (the schedule's audience).
    pub expected: BTreeMap<String, u32>,
    pub attended: BTreeMap<String, u32>,
    /// First joins per minute from [`FIRST_BIN_S`].
    pub joins: Vec<u32>,
}

impl Turnout {
    pub fn new(
        meeting: &str,
        host: Option<String>,
        starts_unix_s: u64,
        expected: BTreeMap<String, u32>,
    ) -> Self {
        Self {
            meeting: meeting.to_owned(),
            host,
            starts_unix_s,
            expected,
            attended: BTreeMap::new(),
            joins: vec![0; BINS],
        }
    }

    /// Someone's first join, through a node of `region`, at `unix_s`.
    pub fn record_join(&mut self, region: &str, unix_s: u64) {
        *self.attended.entry(region.to_owned()).or_default() += 1;
        let offset = unix_s as i64 - self.starts_unix_s as i64;
        let bin = ((offset - FIRST_BIN_S).div_euclid(BIN_S)).clamp(0, BINS as i64 - 1) as usize;
        if self.joins.len() != BINS {
            self.joins.resize(BINS, 0);
        }
        self.joins[bin] += 1;
    }

    /// Adds what another coordinator of the same meeting saw (one that took it over, or
    /// started it again after it went idle).
    pub fn merge(&mut self, other: &Turnout) {
        for (region, n) in &other.attended {
            *self.attended.entry(region.clone()).or_default() += n;
        }
        self.joins.resize(BINS, 0);
        for (mine, theirs) in self.joins.iter_mut().zip(&other.joins) {
            *mine += theirs;
        }
    }

    pub fn total_expected(&self) -> u32 {
        self.expected.values().sum()
    }

    pub fn total_attended(&self) -> u32 {
        self.attended.values().sum()
    }

    /// The share of people who had joined by the end of each minute.
    fn cumulative(&self) -> Option<Vec<f64>> {
        let total: u32 = self.joins.iter().sum();
        (total > 0).then(|| cumulate(self.joins.iter().map(|n| f64::from(*n) / f64::from(total))))
    }
}

fn cumulate(shares: impl Iterator<Item = f64>) -> Vec<f64> {
    shares
        .scan(0.0, |sum, s| {
            *sum += s;
            Some(*sum)
        })
        .collect()
}

/// What a set of records says.
#[derive(Debug, Clone, Default)]
struct Learned {
    records: usize,
    /// Per region: people who came, people expected there (records expecting someone there).
    regions: BTreeMap<String, (f64, f64)>,
    overall: (f64, f64),
    /// Summed share of people joining in each minute.
    shape: Vec<f64>,
    shaped: usize,
}

impl Learned {
    fn add(&mut self, t: &Turnout) {
        let expected = t.total_expected();
        if expected == 0 {
            return;
        }
        self.records += 1;
        self.overall.0 += f64::from(t.total_attended());
        self.overall.1 += f64::from(expected);
        for (region, n) in t.expected.iter().filter(|(r, _)| *r != ANY_REGION) {
            let came = t.attended.get(region).copied().unwrap_or(0);
            let entry = self.regions.entry(region.clone()).or_default();
            entry.0 += f64::from(came);
            entry.1 += f64::from(*n);
        }
        if let Some(cdf) = t.cumulative() {
            self.shape.resize(BINS, 0.0);
            let mut last = 0.0;
            for (sum, c) in self.shape.iter_mut().zip(cdf) {
                *sum += c - last;
                last = c;
            }
            self.shaped += 1;
        }
    }

    fn show_rate(&self) -> f64 {
        if self.overall.1 > 0.0 {
            self.overall.0 / self.overall.1
        } else {
            1.0
        }
    }
}

/// Forecasts from past meetings' turnout.
#[derive(Debug, Clone, Default)]
pub struct Forecaster {
    everyone: Learned,
    hosts: BTreeMap<String, Learned>,
}

/// A meeting's expected attendance per region and join curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// People per region (`*`: of no known region).
    pub attendance: BTreeMap<String, u32>,
    /// The share of people who will have joined by the end of each minute from
    /// [`FIRST_BIN_S`] (none learned: everyone at the start).
    pub curve: Vec<f64>,
}

impl Forecast {
    pub fn total(&self) -> u32 {
        self.attendance.values().sum()
    }

    /// Seconds from the start by which `share` of the people will have joined.
    pub fn by(&self, share: f64) -> i64 {
        let bin = self.curve.iter().position(|c| *c >= share - 1e-9);
        bin.map_or(FIRST_BIN_S + BINS as i64 * BIN_S, |b| {
            FIRST_BIN_S + (b as i64 + 1) * BIN_S
        })
    }

    /// Seconds from the start when the first people (1%) come.
    pub fn first_joins(&self) -> i64 {
        self.by(0.01) - BIN_S
    }
}

impl Forecaster {
    pub fn learn<'a>(records: impl IntoIterator<Item = &'a Turnout>) -> Self {
        let mut f = Self::default();
        for t in records {
            f.everyone.add(t);
            if let Some(host) = &t.host {
                f.hosts.entry(host.clone()).or_default().add(t);
            }
        }
        f
    }

    /// Records learned from.
    pub fn records(&self) -> usize {
        self.everyone.records
    }

    /// The forecast for a meeting of `host` expecting `expected` per region.
    pub fn forecast(&self, host: Option<&str>, expected: &BTreeMap<String, u32>) -> Forecast {
        let own = host
            .and_then(|h| self.hosts.get(h))
            .filter(|l| l.records >= HOST_RECORDS);
        let learned = own.unwrap_or(&self.everyone);
        let rate = learned.show_rate();
        let attendance = expected
            .iter()
            .map(|(region, n)| {
                let region_rate = learned
                    .regions
                    .get(region)
                    .filter(|(_, exp)| *exp > 0.0)
                    .map_or(rate, |(came, exp)| came / exp);
                (region.clone(), (f64::from(*n) * region_rate).round() as u32)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let shaped = if learned.shaped > 0 {
            learned
        } else {
            &self.everyone
        };
        let curve = if shaped.shaped > 0 {
            cumulate(shaped.shape.iter().map(|s| s / shaped.shaped as f64))
        } else {
            // Nothing learned: everyone in the minute of the start.
            let start = ((-FIRST_BIN_S) / BIN_S) as usize;
            (0..BINS)
                .map(|b| if b >= start { 1.0 } else { 0.0 })
                .collect()
        };
        Forecast { attendance, curve }
    }
}

/// How well the forecaster did on meetings it had not seen, each forecast from the meetings
/// that started before it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeldOut {
    /// Meetings forecast (those with at least three earlier records).
    pub meetings: usize,
    /// Σ|forecast − attended| / Σ attended, over regions and meetings.
    pub attendance_error: f64,
    /// The same for taking the expected audience as it is, for comparison.
    pub expected_error: f64,
    /// The mean largest gap between the forecast and the real share joined by a minute.
    pub curve_error: f64,
}

pub fn held_out(records: &[Turnout]) -> HeldOut {
    let mut sorted: Vec<&Turnout> = records.iter().filter(|t| t.total_expected() > 0).collect();
    sorted.sort_by_key(|t| (t.starts_unix_s, t.meeting.clone()));
    let (mut meetings, mut gap, mut naive, mut attended) = (0, 0.0, 0.0, 0.0);
    let mut curve_gap = 0.0;
    let mut curves = 0;
    for (i, t) in sorted.iter().enumerate().skip(HOST_RECORDS) {
        let f = Forecaster::learn(sorted[..i].iter().copied());
        let forecast = f.forecast(t.host.as_deref(), &t.expected);
        meetings += 1;
        let regions: std::collections::BTreeSet<&String> = t
            .attended
            .keys()
            .chain(forecast.attendance.keys())
            .chain(t.expected.keys())
            .collect();
        for r in regions {
            let came = f64::from(t.attended.get(r).copied().unwrap_or(0));
            let said = f64::from(forecast.attendance.get(r).copied().unwrap_or(0));
            let invited = f64::from(t.expected.get(r).copied().unwrap_or(0));
            gap += (said - came).abs();
            naive += (invited - came).abs();
            attended += came;
        }
        if let Some(real) = t.cumulative() {
            let worst = real
                .iter()
                .zip(&forecast.curve)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            curve_gap += worst;
            curves += 1;
        }
    }
    let ratio = |x: f64| if attended > 0.0 { x / attended } else { 0.0 };
    HeldOut {
        meetings,
        attendance_error: ratio(gap),
        expected_error: ratio(naive),
        curve_error: if curves > 0 {
            curve_gap / curves as f64
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    /// A meeting of `host` at hour `h` expecting `eu`/`us` where `rate` of them come, joining
    /// from `early` minutes before the start to 4 minutes after.
    fn meeting(host: &str, h: u64, eu: u32, us: u32, rate: (f64, f64), early: i64) -> Turnout {
        let start = 1_800_000_000 + h * 3600;
        let mut t = Turnout::new(
            &format!("m{h}"),
            Some(host.into()),
            start,
            audience(&[("eu", eu), ("us", us)]),
        );
        for (region, n, r) in [("eu", eu, rate.0), ("us", us, rate.1)] {
            let came = (f64::from(n) * r).round() as i64;
            for i in 0..came {
                let at = start as i64 - early * 60 + i * (early + 4) * 60 / came.max(1);
                t.record_join(region, at as u64);
            }
        }
        t
    }

    #[test]
    fn joins_fall_in_minutes_around_the_start() {
        let mut t = Turnout::new("m", None, 10_000, audience(&[("eu", 3)]));
        t.record_join("eu", 10_000 - 3600);
        t.record_join("eu", 10_000);
        t.record_join("us", 10_000 + 100 * 60);
        assert_eq!(t.joins[0], 1, "an hour early counts in the first minute");
        assert_eq!(t.joins[15], 1, "the start opens minute 15");
        assert_eq!(t.joins[BINS - 1], 1);
        assert_eq!(t.attended, audience(&[("eu", 2), ("us", 1)]));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Turnout>(&json).unwrap(), t);
    }

    #[test]
    fn nothing_learned_takes_the_audience_as_it_is_at_the_start() {
        let f = Forecaster::default().forecast(None, &audience(&[("eu", 100), ("*", 7)]));
        assert_eq!(f.attendance, audience(&[("eu", 100), ("*", 7)]));
        assert_eq!(f.by(1.0), 60);
        assert_eq!(f.first_joins(), 0);
    }

    #[test]
    fn show_up_rates_are_learned_per_region_and_the_hosts_own_win() {
        let mut past: Vec<Turnout> = (0..4)
            .map(|h| meeting("town-hall", h, 100, 100, (0.8, 0.4), 10))
            .collect();
        past.extend((4..8).map(|h| meeting("lecture", h, 100, 100, (0.5, 0.5), 2)));
        let f = Forecaster::learn(&past);
        assert_eq!(f.records(), 8);
        let th = f.forecast(Some("town-hall"), &audience(&[("eu", 1000), ("us", 500)]));
        assert_eq!(th.attendance, audience(&[("eu", 800), ("us", 200)]));
        // Early joiners: the town hall's people come ten minutes ahead.
        assert_eq!(th.first_joins(), -600);
        // A new host: everyone's rates.
        let new = f.forecast(Some("new"), &audience(&[("eu", 100), ("apac", 10)]));
        assert_eq!(new.attendance, audience(&[("eu", 65), ("apac", 6)]));
    }

    #[test]
    fn held_out_meetings_are_forecast_better_than_the_invitations_say() {
        let past: Vec<Turnout> = (0..12)
            .map(|h| {
                let wobble = if h % 2 == 0 { 0.05 } else { -0.05 };
                meeting("briefing", h, 200, 100, (0.6 + wobble, 0.3 + wobble), 5)
            })
            .collect();
        let e = held_out(&past);
        assert_eq!(e.meetings, 9);
        assert!(e.attendance_error < 0.15, "{e:?}");
        assert!(e.expected_error > 1.0, "{e:?}");
        assert!(e.curve_error < 0.1, "{e:?}");
        assert_eq!(held_out(&past[..3]).meetings, 0);
    }
}
