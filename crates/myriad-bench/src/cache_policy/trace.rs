//! A synthetic day of requests with the shape of meeting content, since no public CDN trace
//! can be fetched here: join storms that fetch the web client's assets, each meeting's
//! slides fetched by its attendees while it runs, recordings watched on demand (Zipf), and
//! avatars fetched once (one-hit wonders). Seeded: the same seed, the same trace.

use myriad_seeded::SeededRng;

/// One request: which object, and how large it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub key: u64,
    pub bytes: u32,
}

/// The shape of a day.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub meetings: u32,
    /// Attendees of the largest meeting (meeting i has about `largest / (i + 1)^0.8`).
    pub largest: u32,
    pub recordings: u32,
    /// Requests for recordings per attendee of a meeting (on-demand traffic in between).
    pub vod_per_attendee: u32,
}

impl Shape {
    pub const DAY: Shape = Shape {
        meetings: 200,
        largest: 3000,
        recordings: 400,
        vod_per_attendee: 6,
    };
}

const ASSETS: u64 = 24;
const SLIDES_PER_MEETING: u64 = 20;
const SEGMENTS_PER_RECORDING: u64 = 30;
/// Key spaces of the kinds of content, apart.
const ASSET_KEYS: u64 = 0;
const SLIDE_KEYS: u64 = 1 << 40;
const VOD_KEYS: u64 = 2 << 40;
const AVATAR_KEYS: u64 = 3 << 40;

/// The day's requests in order.
pub fn day(shape: Shape, seed: u64) -> Vec<Request> {
    let mut rng = SeededRng::new(seed);
    let asset_bytes: Vec<u32> = (0..ASSETS)
        .map(|_| rng.in_range(5_000..300_000) as u32)
        .collect();
    let vod = Zipf::new(u64::from(shape.recordings), 0.9);
    let mut out = Vec::new();
    let mut avatar = 0u64;
    // Meetings follow one another; a few overlap (each runs over the next one's start).
    for m in 0..u64::from(shape.meetings) {
        let attendees = (f64::from(shape.largest) / ((m + 1) as f64).powf(0.8)).max(5.0) as u64;
        let attendees = attendees.min(u64::from(shape.largest));
        // The join storm: each attendee loads the client and its avatar.
        let mut joining: Vec<Request> = Vec::new();
        for _ in 0..attendees {
            for (a, bytes) in asset_bytes.iter().enumerate() {
                joining.push(Request {
                    key: ASSET_KEYS + a as u64,
                    bytes: *bytes,
                });
            }
            avatar += 1;
            joining.push(Request {
                key: AVATAR_KEYS + avatar,
                bytes: 10_000,
            });
        }
        rng.shuffle(&mut joining);
        out.extend(joining);
        // The meeting: its slides for everyone, recordings watched elsewhere meanwhile.
        let mut during: Vec<Request> = Vec::new();
        for s in 0..SLIDES_PER_MEETING {
            let key = SLIDE_KEYS + m * SLIDES_PER_MEETING + s;
            let bytes = 50_000 + ((key * 7919) % 950_000) as u32;
            for _ in 0..attendees {
                during.push(Request { key, bytes });
            }
        }
        for _ in 0..attendees * u64::from(shape.vod_per_attendee) {
            let recording = vod.sample(&mut rng);
            let segment = rng.below(SEGMENTS_PER_RECORDING);
            during.push(Request {
                key: VOD_KEYS + recording * SEGMENTS_PER_RECORDING + segment,
                bytes: 1_000_000,
            });
        }
        rng.shuffle(&mut during);
        out.extend(during);
    }
    out
}

/// Zipf over 0..n with exponent `s`, by inverting its cumulative weights.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut SeededRng) -> u64 {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.unit() * total;
        self.cumulative.partition_point(|c| *c < x) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Shape = Shape {
        meetings: 5,
        largest: 50,
        recordings: 20,
        vod_per_attendee: 2,
    };

    #[test]
    fn a_day_is_the_same_for_a_seed_and_has_every_kind_of_content() {
        let a = day(SMALL, 7);
        assert_eq!(a, day(SMALL, 7));
        assert_ne!(a, day(SMALL, 8));
        for space in [ASSET_KEYS, SLIDE_KEYS, VOD_KEYS, AVATAR_KEYS] {
            assert!(a.iter().any(|r| r.key >> 40 == space >> 40), "{space}");
        }
        // Avatars are fetched once each.
        let avatars: Vec<u64> = a
            .iter()
            .filter(|r| r.key >> 40 == 3)
            .map(|r| r.key)
            .collect();
        let mut unique = avatars.clone();
        unique.dedup();
        assert_eq!(unique.len(), avatars.len());
    }

    #[test]
    fn zipf_favours_the_first_items() {
        let z = Zipf::new(100, 0.9);
        let mut rng = SeededRng::new(1);
        let first = (0..10_000).filter(|_| z.sample(&mut rng) == 0).count();
        let last = (0..10_000).filter(|_| z.sample(&mut rng) == 99).count();
        assert!(first > 10 * last.max(1), "{first} {last}");
    }
}
