//! The simulated day: scheduled meetings a few seconds apart (a day's schedule, pressed
//! together), each expecting people in two regions, most of whom come in a storm around the
//! start; one that nobody comes to. Seeded, so that the run with warm-up and the run without
//! see the same day.

use myriad_seeded::SeededRng;

pub const REGIONS: [&str; 2] = ["eu", "us"];
/// Which meeting nobody comes to.
pub const NO_SHOW: usize = 1;
/// Slides per meeting.
pub const SLIDES: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct Meeting {
    pub id: String,
    /// Its start, after the day's first.
    pub starts_after_s: u64,
    /// People expected per region (the schedule's audience).
    pub expected: [u32; 2],
    pub arrivals: Vec<Arrival>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Index into [`REGIONS`].
    pub region: usize,
    /// When, from the start (negative: early).
    pub at_ms: i64,
}

/// How big the meetings are, relative to `people`, and the share of their people in the
/// first region.
const SIZES: [(f64, f64); 5] = [(1.0, 0.7), (0.6, 0.5), (1.4, 0.3), (0.8, 0.5), (1.2, 0.6)];

/// `meetings` meetings `gap_s` apart, expecting about `people` each.
pub fn plan(seed: u64, meetings: usize, people: u32, gap_s: u64) -> Vec<Meeting> {
    let mut rng = SeededRng::new(seed);
    (0..meetings)
        .map(|i| {
            let (size, first) = SIZES[i % SIZES.len()];
            let total = f64::from(people) * size;
            let expected = [
                (total * first).round() as u32,
                (total * (1.0 - first)).round() as u32,
            ];
            let show = 0.65 + 0.2 * rng.unit();
            let arrivals = match i == NO_SHOW {
                true => Vec::new(),
                false => (0..2)
                    .flat_map(|region| {
                        let came = (f64::from(expected[region]) * show).round() as usize;
                        (0..came).map(move |_| region)
                    })
                    .map(|region| Arrival {
                        region,
                        at_ms: arrival_ms(&mut rng),
                    })
                    .collect(),
            };
            Meeting {
                id: format!("day-{seed}-{i}"),
                starts_after_s: i as u64 * gap_s,
                expected,
                arrivals,
            }
        })
        .collect()
}

/// A join storm's shape: some people early, most in the first seconds, the rest late.
fn arrival_ms(rng: &mut SeededRng) -> i64 {
    let u = rng.unit();
    if u < 0.15 {
        -(rng.below(3000) as i64)
    } else if u < 0.8 {
        rng.below(1500) as i64
    } else {
        1500 + rng.below(3500) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_seeded_with_storms_around_each_start_and_one_no_show() {
        let day = plan(7, 5, 200, 5);
        assert_eq!(day, plan(7, 5, 200, 5));
        assert_ne!(day, plan(8, 5, 200, 5));
        assert_eq!(day[2].starts_after_s, 10);
        assert_eq!(day[0].expected, [140, 60]);
        assert!(day[NO_SHOW].arrivals.is_empty());
        for m in day.iter().filter(|m| !m.arrivals.is_empty()) {
            let expected: u32 = m.expected.iter().sum();
            let came = m.arrivals.len() as f64 / f64::from(expected);
            assert!((0.6..=0.9).contains(&came), "{came}");
            assert!(m.arrivals.iter().all(|a| (-3000..5000).contains(&a.at_ms)));
            let storm = m.arrivals.iter().filter(|a| (0..1500).contains(&a.at_ms));
            assert!(
                storm.count() * 2 > m.arrivals.len(),
                "most come in the storm"
            );
        }
    }
}
