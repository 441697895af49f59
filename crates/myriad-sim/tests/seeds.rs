//! The simulation in CI: a fixed set of seeds at CI's scale (20 nodes, 5,000 people), one at
//! the (100 nodes, 100,000 people), each with crashes, cuts, freezes and a lossy,
//! reordering bus; every invariant checked. A failure names its seed; `cargo run -p
//! myriad-sim --release -- --seed S [--scale full] [--trace N]` replays it exactly.

use myriad_sim::{run, Config, Report};

fn must_hold(config: Config) -> Report {
    match run(config) {
        Ok(report) => {
            eprintln!("{report}");
            report
        }
        Err(violation) => panic!("{violation}"),
    }
}

#[test]
fn sixteen_seeds_of_faults_break_no_invariant() {
    let reports: Vec<Report> = (1..=16).map(|seed| must_hold(Config::ci(seed))).collect();
    // The faults happened and the paths they open were taken: takeovers, resumes, and
    // coordinators that woke from a pause to find their journal taken (fenced).
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    assert!(sum(|r| r.crashes) >= 60, "crashes");
    assert!(sum(|r| r.cuts) >= 60 && sum(|r| r.freezes) >= 60);
    assert!(sum(|r| r.takeovers) >= 40, "takeovers");
    assert!(sum(|r| r.fenced_appends) >= 5, "fenced appends");
    assert!(sum(|r| r.resumes) >= 1000, "resumes");
    assert!(reports.iter().all(|r| r.joins == 5_000));
    assert!(sum(|r| r.chats_accepted) >= 5_000);
}

#[test]
fn a_hundred_nodes_and_a_hundred_thousand_people_break_no_invariant() {
    let report = must_hold(Config::full(1));
    assert_eq!(report.joins, 100_000);
    assert!(report.crashes >= 8 && report.takeovers >= 1);
    assert!(report.partitions_open >= 200, "{report}");
}

#[test]
fn a_seed_replays_exactly() {
    assert_eq!(must_hold(Config::ci(7)), must_hold(Config::ci(7)));
}
