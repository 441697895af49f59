//! The waiting room: with it on, newcomers who do not moderate wait until a host lets them
//! in or turns them away. Whoever waits is not a participant yet: their node asks again
//! every second ([`WAIT_REFRESH`]), so the queue needs no durable record and a waiter whose
//! connection went is forgotten after [`WAITER_TTL`]. Who was let in or turned away is
//! durable: one admitted comes back in directly, one denied stays out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use myriad_proto::meeting::Actor;
use myriad_proto::{MeetingEvent, ParticipantId, Waiter, WaitingRoom};

use super::{Change, JoinRequest, Meeting};
use crate::RoomError;

/// How often a node asks again for a connection that waits.
pub const WAIT_REFRESH: Duration = Duration::from_secs(1);
/// A waiter not asked for in this long has gone.
pub const WAITER_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Lobby {
    on: bool,
    next_ticket: u64,
    /// By ticket: the earliest first.
    waiting: BTreeMap<u64, Waiting>,
    tickets: HashMap<String, u64>,
    admitted: HashSet<String>,
    denied: HashSet<String>,
}

#[derive(Debug)]
struct Waiting {
    identity: String,
    name: String,
    seen: Instant,
}

/// What becomes of a joiner at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Enter,
    /// Waits, with this ticket; `new` if it was not waiting before.
    Wait {
        ticket: u64,
        new: bool,
    },
    Denied,
}

impl Lobby {
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Switches the waiting room; true if that changed it.
    pub fn switch(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.on, on) != on
    }

    /// Someone knocks (again): moderators and those let in before enter, as does everyone
    /// while the room is off; those turned away stay out; the rest wait in arrival order.
    pub fn knock(&mut self, now: Instant, identity: &str, name: &str, moderates: bool) -> Door {
        if self.denied.contains(identity) {
            return Door::Denied;
        }
        if !self.on || moderates || self.admitted.contains(identity) {
            return Door::Enter;
        }
        if let Some(w) = self
            .tickets
            .get(identity)
            .and_then(|t| self.waiting.get_mut(t))
        {
            w.seen = now;
            return Door::Wait {
                ticket: self.tickets[identity],
                new: false,
            };
        }
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.tickets.insert(identity.to_owned(), ticket);
        let waiting = Waiting {
            identity: identity.to_owned(),
            name: name.to_owned(),
            seen: now,
        };
        self.waiting.insert(ticket, waiting);
        Door::Wait { ticket, new: true }
    }

    /// Lets in or turns away whoever waits with `ticket` (or everyone waiting); the
    /// identities it decided on.
    pub fn decide(&mut self, ticket: Option<u64>, admit: bool) -> Result<Vec<String>, RoomError> {
        let tickets: Vec<u64> = match ticket {
            Some(t) if !self.waiting.contains_key(&t) => return Err(RoomError::NotWaiting),
            Some(t) => vec![t],
            None => self.waiting.keys().copied().collect(),
        };
        let mut decided = Vec::with_capacity(tickets.len());
        for t in tickets {
            if let Some(w) = self.waiting.remove(&t) {
                self.tickets.remove(&w.identity);
                self.record(w.identity.clone(), admit);
                decided.push(w.identity);
            }
        }
        Ok(decided)
    }

    /// Remembers a decision (also when a committed one is applied again).
    pub fn record(&mut self, identity: String, admit: bool) {
        if admit {
            self.denied.remove(&identity);
            self.admitted.insert(identity);
        } else {
            self.admitted.remove(&identity);
            self.denied.insert(identity);
        }
    }

    /// Forgets waiters not asked for since `now - WAITER_TTL`; true if any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let gone: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.seen) >= WAITER_TTL)
            .map(|(t, _)| *t)
            .collect();
        for t in &gone {
            if let Some(w) = self.waiting.remove(t) {
                self.tickets.remove(&w.identity);
            }
        }
        !gone.is_empty()
    }

    /// When the next waiter would be forgotten.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.seen + WAITER_TTL).min()
    }

    /// The room as clients see it: the count and the earliest `shown`.
    pub fn summary(&self, shown: usize) -> WaitingRoom {
        WaitingRoom {
            on: self.on,
            waiting: self.waiting.len() as u32,
            first: self
                .waiting
                .iter()
                .take(shown)
                .map(|(ticket, w)| Waiter {
                    ticket: *ticket,
                    name: w.name.clone(),
                })
                .collect(),
        }
    }

    /// Who was let in and who turned away, for the meeting's state.
    pub fn decisions(&self) -> (Vec<String>, Vec<String>) {
        (
            self.admitted.iter().cloned().collect(),
            self.denied.iter().cloned().collect(),
        )
    }
}

impl Meeting {
    /// The door a joiner meets ([`Meeting::handle_join`] asks it first).
    pub(super) fn knock(&mut self, now: Instant, req: &JoinRequest) -> Result<(), RoomError> {
        match self
            .lobby
            .knock(now, &req.identity, &req.name, req.permissions.moderate)
        {
            Door::Enter => Ok(()),
            Door::Denied => Err(RoomError::Denied),
            Door::Wait { new, .. } => {
                if new {
                    self.lobby_changed(now);
                }
                Err(RoomError::Waiting)
            }
        }
    }

    /// A moderator switches the waiting room; switched off, whoever waits comes in when
    /// their node asks next.
    pub fn handle_set_waiting_room(
        &mut self,
        now: Instant,
        actor: Actor,
        on: bool,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        if self.lobby.switch(on) {
            self.changes.push(Change::WaitingRoom { on });
            self.emit_lobby();
        }
        Ok(())
    }

    /// A moderator lets in or turns away one waiter, or all of them.
    pub fn handle_admit(
        &mut self,
        now: Instant,
        actor: Actor,
        ticket: Option<u64>,
        admit: bool,
    ) -> Result<(), RoomError> {
        self.at(now);
        self.check_moderator(actor)?;
        let decided = self.lobby.decide(ticket, admit)?;
        if !decided.is_empty() {
            for identity in decided {
                self.changes.push(Change::Admitted { identity, admit });
            }
            self.lobby_changed(now);
        }
        Ok(())
    }

    /// Waiters whose node stopped asking have gone.
    pub(super) fn expire_waiters(&mut self, now: Instant) {
        if self.lobby.expire(now) {
            self.lobby_changed(now);
        }
    }

    /// The queue goes out with the next count announcement.
    fn lobby_changed(&mut self, now: Instant) {
        self.lobby_dirty = true;
        self.schedule_count(now);
    }

    /// The waiting room as `reader` sees it: whether it is on, and (moderators only) who
    /// waits.
    pub(super) fn lobby_summary(&self, reader: ParticipantId) -> WaitingRoom {
        let moderates = self
            .participants
            .get(&reader)
            .is_some_and(|p| p.permissions.moderate);
        if moderates {
            self.lobby.summary(self.config.hands_shown)
        } else {
            WaitingRoom {
                on: self.lobby.is_on(),
                ..WaitingRoom::default()
            }
        }
    }

    fn emit_lobby(&mut self) {
        self.lobby_dirty = false;
        let room = self.lobby.summary(self.config.hands_shown);
        let hosts = self.moderators();
        self.emit(MeetingEvent::WaitingRoom { room, hosts });
    }

    /// The coalesced waiting room, if it changed since the last one.
    pub(super) fn emit_lobby_if_changed(&mut self) {
        if self.lobby_dirty {
            self.emit_lobby();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcomers_wait_in_order_and_a_decision_sticks() {
        let t0 = Instant::now();
        let mut l = Lobby::default();
        assert_eq!(l.knock(t0, "ada", "Ada", false), Door::Enter, "off");
        assert!(l.switch(true));
        assert!(!l.switch(true));
        assert_eq!(l.knock(t0, "host", "Host", true), Door::Enter);
        assert_eq!(
            l.knock(t0, "bob", "Bob", false),
            Door::Wait {
                ticket: 1,
                new: true
            }
        );
        assert_eq!(
            l.knock(t0, "cy", "Cy", false),
            Door::Wait {
                ticket: 2,
                new: true
            }
        );
        assert_eq!(
            l.knock(t0, "bob", "Bob", false),
            Door::Wait {
                ticket: 1,
                new: false
            },
            "asking again keeps the place"
        );
        let s = l.summary(1);
        assert_eq!((s.on, s.waiting, s.first.len()), (true, 2, 1));
        assert_eq!(s.first[0].name, "Bob");
        assert_eq!(l.decide(Some(9), true), Err(RoomError::NotWaiting));
        assert_eq!(l.decide(Some(1), true).unwrap(), ["bob"]);
        assert_eq!(l.decide(Some(1), true), Err(RoomError::NotWaiting));
        assert_eq!(l.knock(t0, "bob", "Bob", false), Door::Enter);
        assert_eq!(l.decide(None, false).unwrap(), ["cy"]);
        assert_eq!(l.knock(t0, "cy", "Cy", false), Door::Denied);
        l.switch(false);
        assert_eq!(l.knock(t0, "cy", "Cy", false), Door::Denied, "off or on");
        assert_eq!(l.summary(5).waiting, 0);
    }

    #[test]
    fn a_waiter_whose_node_stops_asking_is_forgotten() {
        let t0 = Instant::now();
        let mut l = Lobby::default();
        l.switch(true);
        l.knock(t0, "bob", "Bob", false);
        l.knock(t0 + Duration::from_secs(3), "cy", "Cy", false);
        assert_eq!(l.next_expiry(), Some(t0 + WAITER_TTL));
        assert!(!l.expire(t0 + Duration::from_secs(4)));
        l.knock(t0 + Duration::from_secs(4), "bob", "Bob", false);
        assert!(l.expire(t0 + Duration::from_secs(8)), "cy went quiet");
        let s = l.summary(5);
        assert_eq!(
            s.first.iter().map(|w| &w.name[..]).collect::<Vec<_>>(),
            ["Bob"]
        );
        assert!(l.expire(t0 + Duration::from_secs(20)));
        assert_eq!(l.next_expiry(), None);
    }
}
