//! `spam`: the chat spam filter measured on the held-out fifth of its corpus (messages it
//! never learned from): the classifier's precision and recall at the meeting's threshold and
//! at others, the whole filter's (rules too, each message from a sender of its own), and the
//! cost of checking one message.

use std::time::{Duration, Instant};

use myriad_proto::ParticipantId;
use myriad_room::spam::classifier::{corpus, measure, Classifier, Measured};
use myriad_room::spam::{SpamFilter, SPAM_THRESHOLD};

use crate::Report;

/// How many times the held-out messages are checked for the cost figure.
const COST_ROUNDS: usize = 20;

pub fn run() -> Report {
    let (train, test) = corpus();
    let started = Instant::now();
    let model = Classifier::train(train.iter().copied());
    let train_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut report = Report::new("spam");
    report
        .field("training_messages", train.len() as u64)
        .field("held_out_messages", test.len() as u64)
        .field(
            "held_out_spam",
            test.iter().filter(|m| m.spam).count() as u64,
        )
        .field("train_ms", train_ms)
        .field("threshold", SPAM_THRESHOLD);
    let at = |threshold: f64| measure(&model, threshold, test.iter().copied());
    let put = |report: &mut Report, prefix: &str, m: Measured| {
        report
            .field(format!("{prefix}precision"), m.precision())
            .field(format!("{prefix}recall"), m.recall())
            .field(
                format!("{prefix}false_positives"),
                u64::from(m.false_positives),
            );
    };
    put(&mut report, "", at(SPAM_THRESHOLD));
    put(&mut report, "at_0_5_", at(0.5));
    put(&mut report, "at_0_99_", at(0.99));

    // The whole filter, as the meeting runs it (the shared model is trained on the same part).
    let t = Instant::now();
    let mut filter = SpamFilter::new(&[]);
    let mut whole = Measured::default();
    for (i, m) in test.iter().enumerate() {
        let flagged = filter
            .check(t, ParticipantId(i as u64 + 1), m.text)
            .is_some();
        match (flagged, m.spam) {
            (true, true) => whole.true_positives += 1,
            (true, false) => whole.false_positives += 1,
            (false, true) => whole.false_negatives += 1,
            (false, false) => whole.true_negatives += 1,
        }
    }
    put(&mut report, "filter_", whole);

    let started = Instant::now();
    let mut checked = 0u64;
    for round in 0..COST_ROUNDS {
        for (i, m) in test.iter().enumerate() {
            let sender = ParticipantId((round * test.len() + i) as u64);
            std::hint::black_box(filter.check(
                t + Duration::from_secs(round as u64 * 120),
                sender,
                m.text,
            ));
            checked += 1;
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / checked.max(1) as f64;
    report.field("check_ns_per_message", ns);
    report
}
