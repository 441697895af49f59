//! How a node passes a meeting's event batches on to its people: in sequence order and once
//! each. Batches travel on a bus that may lose, repeat or reorder them; what was passed on
//! already is dropped, and what comes after a gap is held while the missing events are asked
//! of the coordinator ([`crate::Meeting::events_after`]). A gap that cannot be filled (the
//! events are too old) means the node's people start again from a snapshot.

use std::collections::BTreeMap;

use myriad_proto::{Seq, SeqEvent};

/// Events held after a gap at most; beyond, the gap is given up on.
const MAX_HELD: usize = 8192;

#[derive(Debug, Clone, PartialEq)]
pub struct Passed {
    /// The events to pass on now, in order, none seen before.
    pub events: Vec<SeqEvent>,
    /// Ask the coordinator for the events after this one (a gap opened).
    pub ask_after: Option<Seq>,
}

#[derive(Debug, Clone)]
pub struct SeqGate {
    last: Seq,
    held: BTreeMap<Seq, SeqEvent>,
    /// A gap was asked for and not answered yet.
    asking: bool,
}

impl SeqGate {
    /// Everything up to `last` counts as passed on.
    pub fn new(last: Seq) -> Self {
        Self {
            last,
            held: BTreeMap::new(),
            asking: false,
        }
    }

    /// The last event passed on.
    pub fn last(&self) -> Seq {
        self.last
    }

    /// Whether events wait for a gap before them to be filled.
    pub fn is_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// A batch from the bus (or the answer to an ask): what can go on now, and whether to
    /// ask for a gap.
    pub fn offer(&mut self, events: Vec<SeqEvent>) -> Passed {
        for e in events {
            if e.seq > self.last {
                self.held.entry(e.seq).or_insert(e);
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 != self.last.0 + 1 {
                break;
            }
            let e = entry.remove();
            self.last = e.seq;
            out.push(e);
        }
        if self.held.is_empty() {
            self.asking = false;
        }
        let ask_after = (!self.held.is_empty() && !self.asking).then(|| {
            self.asking = true;
            self.last
        });
        Passed {
            events: out,
            ask_after,
        }
    }

    /// The meeting is at `seq` (as its coordinator says): if this gate passed less, the
    /// batches in between were lost; ask for them (unless asking already).
    pub fn behind(&mut self, seq: Seq) -> Option<Seq> {
        (seq > self.last && !self.asking).then(|| {
            self.asking = true;
            self.last
        })
    }

    /// The ask went unanswered: the next batch asks again.
    pub fn ask_failed(&mut self) {
        self.asking = false;
    }

    /// Whether the held events outgrew what is worth holding: give the gap up.
    pub fn overflowing(&self) -> bool {
        self.held.len() > MAX_HELD
    }

    /// The gap cannot be filled: everything up to the newest event seen counts as passed on
    /// (the node's people start again from a snapshot). Returns that event's sequence.
    pub fn give_up(&mut self) -> Seq {
        if let Some((seq, _)) = self.held.last_key_value() {
            self.last = *seq;
        }
        self.held.clear();
        self.asking = false;
        self.last
    }
}

#[cfg(test)]
mod tests {
    use myriad_proto::MeetingEvent;

    use super::*;

    fn ev(n: u64) -> SeqEvent {
        SeqEvent {
            seq: Seq(n),
            event: MeetingEvent::Count { count: n as u32 },
        }
    }

    fn seqs(events: &[SeqEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq.0).collect()
    }

    #[test]
    fn in_order_batches_pass_and_repeats_are_dropped() {
        let mut g = SeqGate::new(Seq(3));
        let p = g.offer(vec![ev(2), ev(3), ev(4), ev(5)]);
        assert_eq!(seqs(&p.events), [4, 5]);
        assert_eq!(p.ask_after, None);
        assert_eq!(seqs(&g.offer(vec![ev(5), ev(6)]).events), [6]);
        assert_eq!(g.last(), Seq(6));
    }

    #[test]
    fn a_gap_is_asked_for_once_and_filled_in_order() {
        let mut g = SeqGate::new(Seq(0));
        g.offer(vec![ev(1)]);
        let p = g.offer(vec![ev(4), ev(5)]);
        assert!(p.events.is_empty());
        assert_eq!(p.ask_after, Some(Seq(1)));
        // Later batches wait too, without asking again.
        let p = g.offer(vec![ev(6)]);
        assert_eq!((p.events.len(), p.ask_after), (0, None));
        assert!(g.is_held());
        // The answer overlaps what is held: each event goes on once.
        let p = g.offer(vec![ev(2), ev(3), ev(4), ev(5)]);
        assert_eq!(seqs(&p.events), [2, 3, 4, 5, 6]);
        assert!(!g.is_held());
    }

    #[test]
    fn reordered_batches_need_no_ask_once_the_late_one_comes() {
        let mut g = SeqGate::new(Seq(0));
        let p = g.offer(vec![ev(3)]);
        assert_eq!(p.ask_after, Some(Seq(0)));
        let p = g.offer(vec![ev(1), ev(2)]);
        assert_eq!(seqs(&p.events), [1, 2, 3]);
    }

    #[test]
    fn a_lost_last_batch_is_asked_for_once_the_meetings_sequence_is_heard() {
        let mut g = SeqGate::new(Seq(0));
        g.offer(vec![ev(1), ev(2)]);
        assert_eq!(g.behind(Seq(2)), None);
        assert_eq!(g.behind(Seq(4)), Some(Seq(2)));
        assert_eq!(g.behind(Seq(4)), None, "asked already");
        assert_eq!(seqs(&g.offer(vec![ev(3), ev(4)]).events), [3, 4]);
        assert_eq!(g.behind(Seq(5)), Some(Seq(4)), "asking again once answered");
    }

    #[test]
    fn an_unanswered_ask_is_repeated_and_a_hopeless_gap_given_up() {
        let mut g = SeqGate::new(Seq(0));
        assert_eq!(g.offer(vec![ev(5)]).ask_after, Some(Seq(0)));
        g.ask_failed();
        assert_eq!(g.offer(vec![ev(6)]).ask_after, Some(Seq(0)));
        assert_eq!(g.give_up(), Seq(6));
        assert!(!g.is_held());
        assert_eq!(seqs(&g.offer(vec![ev(6), ev(7)]).events), [7]);
    }
}
