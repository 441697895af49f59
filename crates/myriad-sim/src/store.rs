//! What the bus stores, as NATS JetStream (and the in-process bus) keep it: the meeting
//! leases (a KV bucket whose entries expire a term after their last write, created only when
//! absent, updated only at the revision read), the meetings' journals (logs appended only at
//! the position the writer names), and the registry of nodes (their last announcement).

use std::collections::BTreeMap;
use std::time::Duration;

use myriad_room::Commit;

/// A lease lasts this long after its last write (as `myriad-control`'s).
pub const TERM: Duration = Duration::from_secs(2);
/// A node not heard from for this long is out (as the registry's).
pub const SILENT_OUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseEntry {
    pub holder: usize,
    pub revision: u64,
    pub written: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseError {
    /// Someone holds it.
    Held,
    /// It changed (or expired) since it was read: it is lost.
    Lost,
}

#[derive(Debug, Default)]
pub struct Store {
    leases: BTreeMap<usize, LeaseEntry>,
    revision: u64,
    /// Per meeting: every commit appended, with the coordinator instance that appended it.
    journals: BTreeMap<usize, Vec<(u64, Commit)>>,
    /// Per node: when it last announced itself.
    heard: BTreeMap<usize, Duration>,
}

impl Store {
    fn live(&self, meeting: usize, now: Duration) -> Option<&LeaseEntry> {
        self.leases
            .get(&meeting)
            .filter(|e| now.saturating_sub(e.written) < TERM)
    }

    /// Creates the lease for `holder` unless a live one exists; returns its revision.
    pub fn acquire(
        &mut self,
        meeting: usize,
        holder: usize,
        now: Duration,
    ) -> Result<u64, LeaseError> {
        if self.live(meeting, now).is_some() {
            return Err(LeaseError::Held);
        }
        self.revision += 1;
        let entry = LeaseEntry {
            holder,
            revision: self.revision,
            written: now,
        };
        self.leases.insert(meeting, entry);
        Ok(entry.revision)
    }

    /// Renews a lease read at `revision`; returns the new revision.
    pub fn renew(
        &mut self,
        meeting: usize,
        revision: u64,
        now: Duration,
    ) -> Result<u64, LeaseError> {
        match self.live(meeting, now).copied() {
            Some(e) if e.revision == revision => {
                self.revision += 1;
                let holder = e.holder;
                self.leases.insert(
                    meeting,
                    LeaseEntry {
                        holder,
                        revision: self.revision,
                        written: now,
                    },
                );
                Ok(self.revision)
            }
            _ => Err(LeaseError::Lost),
        }
    }

    /// Deletes the lease if it is still at `revision`.
    pub fn release(&mut self, meeting: usize, revision: u64) {
        if self
            .leases
            .get(&meeting)
            .is_some_and(|e| e.revision == revision)
        {
            self.leases.remove(&meeting);
        }
    }

    /// Everything appended to the meeting's journal.
    pub fn journal(&self, meeting: usize) -> &[(u64, Commit)] {
        self.journals.get(&meeting).map_or(&[], Vec::as_slice)
    }

    /// Appends if the journal's length is `expected` (its writer's last position); returns
    /// the new length, or `None` when another writer appended meanwhile.
    pub fn append(
        &mut self,
        meeting: usize,
        expected: usize,
        instance: u64,
        commit: Commit,
    ) -> Option<usize> {
        let log = self.journals.entry(meeting).or_default();
        if log.len() != expected {
            return None;
        }
        log.push((instance, commit));
        Some(log.len())
    }

    pub fn heard(&mut self, node: usize, now: Duration) {
        self.heard.insert(node, now);
    }

    /// When the node last announced itself.
    pub fn last_heard(&self, node: usize) -> Option<Duration> {
        self.heard.get(&node).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_until_its_term_runs_out_and_renewals_fence_the_old_holder() {
        let mut s = Store::default();
        let almost = TERM - Duration::from_millis(1);
        let r1 = s.acquire(0, 1, Duration::ZERO).unwrap();
        assert_eq!(s.acquire(0, 2, almost), Err(LeaseError::Held));
        let r2 = s.renew(0, r1, almost).unwrap();
        assert_eq!(s.renew(0, r1, almost + almost), Err(LeaseError::Lost));
        assert_eq!(s.acquire(0, 2, almost + almost), Err(LeaseError::Held));
        let r3 = s.acquire(0, 2, almost + TERM).unwrap();
        assert!(r3 > r2);
        assert_eq!(s.renew(0, r2, almost + TERM), Err(LeaseError::Lost));
    }

    #[test]
    fn appends_name_the_position_they_follow() {
        let mut s = Store::default();
        assert_eq!(s.append(0, 0, 1, Commit::default()), Some(1));
        assert_eq!(s.append(0, 0, 2, Commit::default()), None);
        assert_eq!(s.append(0, 1, 2, Commit::default()), Some(2));
        assert_eq!(s.journal(0).len(), 2);
    }
}
