//! The chat's spam filter: rules (a flood of messages, the same message again, many links,
//! blocked words) and a trained classifier ([`classifier`]). A flagged message is held for
//! the moderators (its sender sees it as sent), who may release it to everyone.

pub mod classifier;

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use myriad_proto::{ParticipantId, SpamReason};

/// A message the classifier finds at least this likely to be spam is flagged.
pub const SPAM_THRESHOLD: f64 = 0.95;
/// More than `FLOOD_MAX` messages from one person within `FLOOD_WINDOW` is a flood.
const FLOOD_WINDOW: Duration = Duration::from_secs(10);
const FLOOD_MAX: usize = 10;
/// The same text again within `REPEAT_WINDOW` is a repeat.
const REPEAT_WINDOW: Duration = Duration::from_secs(60);
/// More links than this in one message is link spam.
const MAX_LINKS: usize = 2;

#[derive(Debug, Default)]
pub struct SpamFilter {
    /// Per sender: when it sent its recent messages, and a hash of each text.
    recent: HashMap<ParticipantId, VecDeque<(Instant, u64)>>,
    /// Lowercased words that flag a message.
    blocked: Vec<String>,
}

impl SpamFilter {
    pub fn new(blocked_words: &[String]) -> Self {
        SpamFilter {
            recent: HashMap::new(),
            blocked: blocked_words.iter().map(|w| w.to_lowercase()).collect(),
        }
    }

    /// Why `text` from `from` is spam, if it is; the message is remembered either way.
    pub fn check(&mut self, now: Instant, from: ParticipantId, text: &str) -> Option<SpamReason> {
        let normalized = text.to_lowercase();
        let hash = {
            let mut h = DefaultHasher::new();
            normalized.split_whitespace().for_each(|w| w.hash(&mut h));
            h.finish()
        };
        let recent = self.recent.entry(from).or_default();
        while recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > REPEAT_WINDOW)
        {
            recent.pop_front();
        }
        let repeat = recent.iter().any(|(_, h)| *h == hash);
        let in_window = recent
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= FLOOD_WINDOW)
            .count();
        recent.push_back((now, hash));
        if in_window >= FLOOD_MAX {
            return Some(SpamReason::Flood);
        }
        if repeat {
            return Some(SpamReason::Repeat);
        }
        let links = normalized
            .split_whitespace()
            .filter(|w| w.contains("http") || w.starts_with("www.") || w.contains(".com"))
            .count();
        if links > MAX_LINKS {
            return Some(SpamReason::Links);
        }
        let blocked = normalized
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| self.blocked.iter().any(|b| b == w));
        if blocked {
            return Some(SpamReason::BlockedWord);
        }
        let p = classifier::Classifier::shared().spam_probability(text);
        (p >= SPAM_THRESHOLD).then_some(SpamReason::LooksLikeSpam)
    }

    /// `p` left: its history goes.
    pub fn forget(&mut self, p: ParticipantId) {
        self.recent.remove(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);

    #[test]
    fn floods_repeats_links_and_blocked_words_are_flagged() {
        let t = Instant::now();
        let mut f = SpamFilter::new(&["Crypto".to_owned()]);
        assert_eq!(f.check(t, A, "hello everyone"), None);
        assert_eq!(f.check(t, A, "Hello   everyone"), Some(SpamReason::Repeat));
        assert_eq!(f.check(t, B, "hello everyone"), None, "another sender");
        let later = t + Duration::from_secs(61);
        assert_eq!(f.check(later, A, "hello everyone"), None, "a minute later");
        for i in 0..9 {
            assert_eq!(f.check(later, A, &format!("point {i}")), None);
        }
        assert_eq!(f.check(later, A, "one more"), Some(SpamReason::Flood));
        let links = "see http://a.example http://b.example www.c.example";
        assert_eq!(f.check(t, B, links), Some(SpamReason::Links));
        assert_eq!(
            f.check(t, B, "buy CRYPTO today"),
            Some(SpamReason::BlockedWord)
        );
        assert_eq!(
            f.check(t, B, "cryptography talk at 3"),
            None,
            "whole words only"
        );
    }

    #[test]
    fn the_classifier_flags_the_usual_spam_and_not_a_meeting_question() {
        let t = Instant::now();
        let mut f = SpamFilter::new(&[]);
        let spam =
            "URGENT! You have won a £1000 cash prize. Call 09061701461 now to claim, T&C apply";
        assert_eq!(f.check(t, A, spam), Some(SpamReason::LooksLikeSpam));
        assert_eq!(
            f.check(t, B, "Could you share the slides after the meeting?"),
            None
        );
    }
}
