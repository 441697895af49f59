//! A multinomial naive Bayes text classifier over words and word pairs (short numbers
//! dropped: in a meeting they are slides and rooms), trained on the SMS
//! Spam Collection in `crates/myriad-room/data` (see its README). Every fifth message is held out for
//! measuring; the model learns from the rest, once, at first use.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The labelled corpus: `ham` or `spam`, a tab, the message.
const CORPUS: &str = include_str!("../../data/sms-spam-collection.tsv");

/// Features the model must know in a message before it judges it: a short message ("room 5",
/// "ok 10 min") says too little, and numbers alone lean to spam in SMS.
const MIN_KNOWN_FEATURES: usize = 4;

/// Every this-many-th message of the corpus is held out from training.
const HOLD_OUT_EVERY: usize = 5;

/// A labelled message of the corpus.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub spam: bool,
    pub text: &'a str,
}

/// The corpus, split: (training, held out).
pub fn corpus() -> (Vec<Labelled<'static>>, Vec<Labelled<'static>>) {
    let all = CORPUS.lines().filter_map(|line| {
        let (label, text) = line.split_once('\t')?;
        Some(Labelled {
            spam: label == "spam",
            text,
        })
    });
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, m) in all.enumerate() {
        if i % HOLD_OUT_EVERY == 0 {
            test.push(m);
        } else {
            train.push(m);
        }
    }
    (train, test)
}

#[derive(Debug, Default)]
pub struct Classifier {
    /// Per feature: how often it occurs in spam and in ham.
    counts: HashMap<String, [u32; 2]>,
    /// Features seen in spam and in ham, in all.
    totals: [u64; 2],
    /// Messages of each class.
    messages: [u64; 2],
}

impl Classifier {
    pub fn train<'a>(examples: impl IntoIterator<Item = Labelled<'a>>) -> Self {
        let mut c = Classifier::default();
        for e in examples {
            let class = usize::from(e.spam);
            c.messages[class] += 1;
            for f in features(e.text) {
                c.counts.entry(f).or_default()[class] += 1;
                c.totals[class] += 1;
            }
        }
        c
    }

    /// The model trained on the corpus's training part (made once).
    pub fn shared() -> &'static Classifier {
        static MODEL: OnceLock<Classifier> = OnceLock::new();
        MODEL.get_or_init(|| Classifier::train(corpus().0))
    }

    /// The probability that `text` is spam.
    pub fn spam_probability(&self, text: &str) -> f64 {
        let vocabulary = self.counts.len() as f64 + 1.0;
        let all = (self.messages[0] + self.messages[1]).max(1) as f64;
        // Log-odds of spam over ham: the prior, then each feature with add-one smoothing.
        let mut odds = ((self.messages[1] as f64 + 1.0) / all).ln()
            - ((self.messages[0] as f64 + 1.0) / all).ln();
        let mut known = 0;
        for f in features(text) {
            let [ham, spam] = self.counts.get(&f).copied().unwrap_or_default();
            if ham == 0 && spam == 0 {
                continue; // unseen: says nothing
            }
            known += 1;
            odds += ((f64::from(spam) + 1.0) / (self.totals[1] as f64 + vocabulary)).ln()
                - ((f64::from(ham) + 1.0) / (self.totals[0] as f64 + vocabulary)).ln();
        }
        if known < MIN_KNOWN_FEATURES {
            return 0.0;
        }
        1.0 / (1.0 + (-odds).exp())
    }
}

/// The words of a message (lowercased; numbers, prices and links as classes of their own),
/// and each pair of neighbouring words.
fn features(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .flat_map(|w| {
            let lower = w.to_lowercase();
            if lower.starts_with("http") || lower.starts_with("www.") || lower.contains(".com") {
                return vec!["<link>".to_owned()];
            }
            let mut out = Vec::new();
            if lower.contains(['£', '$', '€']) {
                out.push("<money>".to_owned());
            }
            out.extend(
                lower
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    // Short numbers (slides, rooms, times) say nothing in a meeting; long
                    // ones are phone numbers and short codes, as in SMS spam.
                    .filter_map(|t| match t.chars().filter(char::is_ascii_digit).count() {
                        0 => Some(t.to_owned()),
                        n if n >= 5 => Some("<phone>".to_owned()),
                        _ => None,
                    }),
            );
            out
        })
        .collect();
    let pairs = words.windows(2).map(|p| format!("{} {}", p[0], p[1]));
    let mut all = words.clone();
    all.extend(pairs);
    all
}

/// Precision and recall of `model` at `threshold` on `examples`.
pub fn measure<'a>(
    model: &Classifier,
    threshold: f64,
    examples: impl IntoIterator<Item = Labelled<'a>>,
) -> Measured {
    let mut m = Measured::default();
    for e in examples {
        let flagged = model.spam_probability(e.text) >= threshold;
        match (flagged, e.spam) {
            (true, true) => m.true_positives += 1,
            (true, false) => m.false_positives += 1,
            (false, true) => m.false_negatives += 1,
            (false, false) => m.true_negatives += 1,
        }
    }
    m
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub true_positives: u32,
    pub false_positives: u32,
    pub false_negatives: u32,
    pub true_negatives: u32,
}

impl Measured {
    pub fn precision(&self) -> f64 {
        f64::from(self.true_positives)
            / f64::from((self.true_positives + self.false_positives).max(1))
    }

    pub fn recall(&self) -> f64 {
        f64::from(self.true_positives)
            / f64::from((self.true_positives + self.false_negatives).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_splits_into_training_and_held_out_parts() {
        let (train, test) = corpus();
        assert_eq!(train.len() + test.len(), 4862);
        assert_eq!(test.len(), 973);
        assert!(test.iter().filter(|m| m.spam).count() > 100);
    }

    /// What people write in a meeting is not held (the corpus is SMS: numbers, "call" and
    /// "please" lean to spam there), and SMS-style spam is.
    #[test]
    fn meeting_chat_is_let_through_and_sms_spam_is_not() {
        let model = Classifier::shared();
        let threshold = super::super::SPAM_THRESHOLD;
        for ham in [
            "bench-chat:17",
            "Room 5",
            "slide 23 please",
            "Can you share the link to the deck?",
            "Call me after the meeting, 5pm",
            "Free pizza in room 4 after this",
            "Please mute your mic",
            "Congratulations to the team on the award!",
            "Please call the helpdesk on 0800 123 4567 for access",
        ] {
            assert!(model.spam_probability(ham) < threshold, "{ham}");
        }
        for spam in [
            "Win a free ticket to the conference, reply YES",
            "Claim your free prize now, text WIN to 80082",
        ] {
            assert!(model.spam_probability(spam) >= threshold, "{spam}");
        }
    }

    #[test]
    fn features_class_phone_numbers_prices_and_links_and_drop_short_numbers() {
        let f = features("WIN £100 now! Call 09061701461 or see www.win.com");
        for want in ["win", "<money>", "<phone>", "<link>", "win <money>"] {
            assert!(f.iter().any(|x| x == want), "{want} in {f:?}");
        }
        assert!(!f.iter().any(|x| x.contains("100")), "{f:?}");
    }

    /// The model, measured on messages it never saw, must hold its figures (a change to the
    /// features or the smoothing that loses either shows here).
    #[test]
    fn held_out_messages_are_told_apart() {
        let (_, test) = corpus();
        let m = measure(Classifier::shared(), super::super::SPAM_THRESHOLD, test);
        assert!(m.precision() >= 0.95, "precision {m:?}");
        assert!(m.recall() >= 0.90, "recall {m:?}");
    }
}
