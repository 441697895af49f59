//! Reactions: counted as they come from the nodes, and sent to everyone as one event per
//! count interval, however many people react (each batch is a write to every connection:
//! at 10,000 people, per tick they cost twice the CPU for no visible difference).

use std::time::Instant;

use myriad_proto::{MeetingEvent, ReactionCount, REACTIONS};

use super::Meeting;
use crate::RoomError;

/// A node's count for one reaction in one request, at most: a node has at most a few
/// thousand people, each limited to a few reactions a second.
pub const MAX_REACTION_COUNT: u32 = 1_000_000;

/// Reactions counted since they were last taken, in [`REACTIONS`] order (the meeting's
/// since its last event; a node's since its last request).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally([u32; REACTIONS.len()]);

impl Tally {
    /// One more of reaction number `index` in [`REACTIONS`]; false if there is none such.
    pub fn add_one(&mut self, index: usize) -> bool {
        match self.0.get_mut(index) {
            Some(n) => {
                *n = n.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Adds a node's counts; refuses the whole request if any is not a reaction or too large.
    pub fn add(&mut self, counts: &[ReactionCount]) -> Result<(), RoomError> {
        let mut added = self.0;
        for c in counts {
            let i = REACTIONS
                .iter()
                .position(|r| *r == c.emoji)
                .ok_or(RoomError::InvalidReaction("not one of the reactions"))?;
            if c.count > MAX_REACTION_COUNT {
                return Err(RoomError::InvalidReaction("count too large"));
            }
            added[i] = added[i].saturating_add(c.count);
        }
        self.0 = added;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|c| *c == 0)
    }

    /// The counts so far (those above zero), and a fresh start.
    pub fn take(&mut self) -> Vec<ReactionCount> {
        let counts = std::mem::take(&mut self.0);
        REACTIONS
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(emoji, count)| ReactionCount {
                emoji: (*emoji).to_owned(),
                count,
            })
            .collect()
    }
}

impl Meeting {
    /// A node's reactions, counted; they go out with the next count announcement.
    pub fn handle_reactions(
        &mut self,
        now: Instant,
        counts: &[ReactionCount],
    ) -> Result<(), RoomError> {
        self.at(now);
        if !self.audience.reactions {
            return Err(RoomError::InvalidReaction("the hosts turned reactions off"));
        }
        self.reactions.add(counts)?;
        self.schedule_count(now);
        Ok(())
    }

    /// The reactions counted since the last announcement, as one event.
    pub(super) fn emit_reactions(&mut self) {
        if !self.reactions.is_empty() {
            let counts = self.reactions.take();
            self.emit(MeetingEvent::Reactions { counts });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(emoji: &str, count: u32) -> ReactionCount {
        ReactionCount {
            emoji: emoji.into(),
            count,
        }
    }

    #[test]
    fn counts_add_up_per_reaction_and_start_again_when_taken() {
        let mut t = Tally::default();
        assert!(t.is_empty());
        t.add(&[count("👍", 3), count("🎉", 1)]).unwrap();
        t.add(&[count("👍", 2)]).unwrap();
        assert!(t.add_one(5) && !t.add_one(REACTIONS.len()));
        assert_eq!(t.take(), [count("👍", 5), count("🎉", 2)]);
        assert!(t.is_empty() && t.take().is_empty());
    }

    #[test]
    fn a_request_with_anything_wrong_counts_nothing() {
        let mut t = Tally::default();
        for bad in [
            vec![count("👍", 1), count("💩", 1)],
            vec![count("<script>", 1)],
            vec![count("👍", MAX_REACTION_COUNT + 1)],
        ] {
            assert!(matches!(t.add(&bad), Err(RoomError::InvalidReaction(_))));
        }
        assert!(t.is_empty());
        for _ in 0..=u32::MAX / MAX_REACTION_COUNT {
            t.add(&[count("👍", MAX_REACTION_COUNT)]).unwrap();
        }
        assert_eq!(t.take(), [count("👍", u32::MAX)], "saturates, never wraps");
    }
}
