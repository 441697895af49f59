//! `cache-policy`: which eviction policy keeps the most of meeting content at the edge. A
//! synthetic day ([`trace`]) replayed through each policy ([`policies`]) at a few memory
//! budgets: object and byte hit ratios, side by side.

pub mod policies;
pub mod trace;

use policies::{EdgeS3Fifo, Moka, Policy, Sieve};
use serde_json::{json, Value};

use crate::Report;

#[derive(Debug, Clone)]
pub struct CachePolicyArgs {
    pub seed: u64,
    /// Memory budgets to compare at, MB.
    pub budgets_mb: Vec<u64>,
    /// A smaller day (for smoke runs).
    pub small: bool,
}

pub fn run(args: &CachePolicyArgs) -> Report {
    let shape = if args.small {
        trace::Shape {
            meetings: 20,
            largest: 200,
            recordings: 50,
            vod_per_attendee: 3,
        }
    } else {
        trace::Shape::DAY
    };
    let day = trace::day(shape, args.seed);
    let total_bytes: u64 = day.iter().map(|r| u64::from(r.bytes)).sum();
    let mut report = Report::new("cache-policy");
    report
        .field("requests", day.len() as u64)
        .field("requested_gb", total_bytes as f64 / 1e9);
    let mut results: Vec<Value> = Vec::new();
    for &mb in &args.budgets_mb {
        let capacity = mb * 1_000_000;
        let contenders: Vec<Box<dyn Policy>> = vec![
            Box::new(Moka::tiny_lfu(capacity)),
            Box::new(Moka::lru(capacity)),
            Box::new(Sieve::new(capacity)),
            Box::new(EdgeS3Fifo::new(capacity)),
        ];
        for mut policy in contenders {
            let (mut hits, mut hit_bytes) = (0u64, 0u64);
            for r in &day {
                if policy.request(r.key, r.bytes) {
                    hits += 1;
                    hit_bytes += u64::from(r.bytes);
                }
            }
            let object_ratio = hits as f64 / day.len().max(1) as f64;
            let byte_ratio = hit_bytes as f64 / total_bytes.max(1) as f64;
            report.field(
                format!("{}@{mb}MB", policy.name()),
                format!("objects {:.3}, bytes {:.3}", object_ratio, byte_ratio),
            );
            results.push(json!({
                "policy": policy.name(),
                "budget_mb": mb,
                "object_hit_ratio": object_ratio,
                "byte_hit_ratio": byte_ratio,
            }));
        }
    }
    report.field("results", Value::Array(results));
    report
}
