//! A meeting's coordinator on a simulated node: the real [`CoordinatorCore`] driven as
//! `myriad-control`'s shell drives it — under the meeting's lease (renewed every second; lost
//! when a renewal fails, or when none succeeded for a term), each commit appended to the
//! journal at the position it follows before anything after it goes out, a takeover
//! rebuilding the meeting from the journal.

use std::rc::Rc;
use std::time::Duration;

use myriad_control::{ClusterView, CoordinatorCore, CoreOutput};
use myriad_plan::PlannerConfig;
use myriad_proto::cluster::NodeInfo;
use myriad_proto::meeting::MeetingRequest;
use myriad_room::{Commit, Meeting, MeetingConfig};

use crate::node::{node_index, node_name};
use crate::store::{SILENT_OUT, TERM};
use crate::world::{Answer, AskRef, CoordinatorTimer, Event, MeetingIx, NodeId, World};

/// The holder renews its lease this often (as `myriad-control`'s).
const RENEW_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct SimCoordinator {
    pub instance: u64,
    pub core: CoordinatorCore<AskRef>,
    lease: u64,
    renewed_at: Duration,
    /// The journal's length after this coordinator's last append.
    log_len: usize,
    /// The wake-up asked for last (earlier timers are stale).
    wake: Option<Duration>,
}

/// The registry as a coordinator reads it: who announced themselves lately.
struct Registry<'a> {
    world: &'a World,
}

impl ClusterView for Registry<'_> {
    fn node(&self, name: &str) -> Option<NodeInfo> {
        let index = node_index(name)?;
        let heard = self.world.store.last_heard(index)?;
        (self.world.now.saturating_sub(heard) < SILENT_OUT)
            .then(|| self.world.nodes[index].info(self.world.config.node_capacity))
    }

    fn alive(&self) -> Vec<NodeInfo> {
        (0..self.world.nodes.len())
            .filter_map(|n| self.node(&node_name(n)))
            .collect()
    }

    fn is_gone(&self, name: &str) -> bool {
        node_index(name)
            .and_then(|n| self.world.store.last_heard(n))
            .is_some_and(|heard| self.world.now.saturating_sub(heard) >= SILENT_OUT)
    }
}

impl World {
    /// Takes the meeting's lease for `node` and starts its coordinator there, rebuilt from
    /// the journal; false while another holds the lease.
    pub fn start_coordinator(&mut self, node: NodeId, meeting: MeetingIx) -> bool {
        let Ok(lease) = self.store.acquire(meeting, node, self.now) else {
            return false;
        };
        let journal = self.store.journal(meeting);
        let log_len = journal.len();
        let commits: Vec<Commit> = journal.iter().map(|(_, c)| c.clone()).collect();
        let last_events = commits.last().map(|c| c.events.clone());
        let id = self.meetings[meeting].clone();
        let now = self.instant();
        let config = MeetingConfig::default();
        let m = if commits.is_empty() {
            Meeting::new(id, config, now)
        } else {
            Meeting::restore(id, config, now, None, commits)
        };
        let mut core =
            CoordinatorCore::new(m, PlannerConfig::with_capacity(self.config.partition_size));
        if let Some(events) = last_events {
            self.check.takeovers += 1;
            core.took_over(lease, events);
        }
        let instance = self.next_instance;
        self.next_instance += 1;
        self.nodes[node].coordinators.insert(
            meeting,
            SimCoordinator {
                instance,
                core,
                lease,
                renewed_at: self.now,
                log_len,
                wake: None,
            },
        );
        self.coordinator_after(
            node,
            meeting,
            instance,
            RENEW_EVERY,
            CoordinatorTimer::Renew,
        );
        self.drain(node, meeting);
        true
    }

    fn coordinator_after(
        &mut self,
        node: NodeId,
        meeting: MeetingIx,
        instance: u64,
        delay: Duration,
        what: CoordinatorTimer,
    ) {
        let incarnation = self.nodes[node].incarnation;
        self.after(
            delay,
            Event::Coordinator {
                node,
                incarnation,
                meeting,
                instance,
                what,
            },
        );
    }

    pub fn coordinator_request(
        &mut self,
        node: NodeId,
        meeting: MeetingIx,
        from: AskRef,
        req: MeetingRequest,
    ) {
        let now = self.instant();
        let Some(mut c) = self.nodes[node].coordinators.remove(&meeting) else {
            return;
        };
        c.core
            .handle_request(now, Ok(req), Some(from), &Registry { world: self });
        self.nodes[node].coordinators.insert(meeting, c);
        self.drain(node, meeting);
    }

    pub fn coordinator_timer(
        &mut self,
        node: NodeId,
        meeting: MeetingIx,
        instance: u64,
        what: CoordinatorTimer,
    ) {
        let current = self.nodes[node]
            .coordinators
            .get(&meeting)
            .is_some_and(|c| c.instance == instance);
        if !current {
            return;
        }
        match what {
            CoordinatorTimer::Renew => {
                if !self.renew(node, meeting) {
                    self.nodes[node].coordinators.remove(&meeting);
                    return;
                }
                let now = self.instant();
                let Some(mut c) = self.nodes[node].coordinators.remove(&meeting) else {
                    return;
                };
                c.core.drop_lost_nodes(now, &Registry { world: self });
                self.nodes[node].coordinators.insert(meeting, c);
                self.coordinator_after(node, meeting, instance, RENEW_EVERY, what);
            }
            CoordinatorTimer::Wake => {
                let now = self.instant();
                let due = self.nodes[node]
                    .coordinators
                    .get(&meeting)
                    .and_then(|c| c.wake)
                    .is_some_and(|w| w <= self.now);
                if !due {
                    return;
                }
                if let Some(c) = self.nodes[node].coordinators.get_mut(&meeting) {
                    c.wake = None;
                    c.core.handle_timeout(now);
                }
            }
        }
        self.drain(node, meeting);
    }

    /// Renews the lease; false when the coordinator must stop.
    fn renew(&mut self, node: NodeId, meeting: MeetingIx) -> bool {
        let on_bus = self.on_bus(node);
        let now = self.now;
        let Some(c) = self.nodes[node].coordinators.get_mut(&meeting) else {
            return false;
        };
        if !on_bus {
            // Not renewed; within its term it goes on (the shell retries).
            return now.saturating_sub(c.renewed_at) < TERM;
        }
        match self.store.renew(meeting, c.lease, now) {
            Ok(revision) => {
                c.lease = revision;
                c.renewed_at = now;
                true
            }
            Err(_) => false,
        }
    }

    /// Does what the core asks, in order, as the shell does.
    fn drain(&mut self, node: NodeId, meeting: MeetingIx) {
        loop {
            let Some(c) = self.nodes[node].coordinators.get_mut(&meeting) else {
                return;
            };
            let Some(out) = c.core.poll_output() else {
                break;
            };
            let instance = c.instance;
            match out {
                CoreOutput::Append(commit) => {
                    let log_len = c.log_len;
                    // Off the bus, the journal cannot be reached: the coordinator stops.
                    let appended = if self.on_bus(node) {
                        self.store
                            .append(meeting, log_len, instance, commit.clone())
                    } else {
                        None
                    };
                    match appended {
                        Some(len) => {
                            if let Some(c) = self.nodes[node].coordinators.get_mut(&meeting) {
                                c.log_len = len;
                            }
                            self.check.appended(meeting, instance, &commit);
                        }
                        None => {
                            if self.on_bus(node) {
                                self.check.fenced += 1;
                            }
                            self.nodes[node].coordinators.remove(&meeting);
                            return;
                        }
                    }
                }
                CoreOutput::Broadcast(b) => {
                    self.check.broadcast(meeting, instance, &b);
                    self.broadcast(node, meeting, Rc::new(b));
                }
                CoreOutput::Reply(to, reply) => {
                    self.send_bus(
                        node,
                        Event::Reply {
                            to,
                            answer: Answer::Reply(reply),
                        },
                    );
                }
                CoreOutput::Stopped(_) => {
                    if let Some(c) = self.nodes[node].coordinators.remove(&meeting) {
                        self.store.release(meeting, c.lease);
                    }
                    return;
                }
            }
        }
        // Wake the meeting when it asks.
        let origin_now = self.instant();
        let now = self.now;
        let Some(c) = self.nodes[node].coordinators.get_mut(&meeting) else {
            return;
        };
        let wanted = c
            .core
            .poll_timeout()
            .map(|t| now + t.saturating_duration_since(origin_now));
        if wanted.is_some() && wanted != c.wake {
            c.wake = wanted;
            let (instance, at) = (c.instance, wanted.unwrap_or(now));
            self.coordinator_after(
                node,
                meeting,
                instance,
                at.saturating_sub(now),
                CoordinatorTimer::Wake,
            );
        }
    }

    /// To every node with a link to the meeting, each copy on its own way.
    fn broadcast(
        &mut self,
        from: NodeId,
        meeting: MeetingIx,
        b: Rc<myriad_proto::meeting::MeetingBroadcast>,
    ) {
        if !self.on_bus(from) {
            return;
        }
        for node in 0..self.nodes.len() {
            if !self.nodes[node].alive || !self.nodes[node].has_link(meeting) {
                continue;
            }
            if self.bus_drops() || self.nodes[node].cut {
                continue;
            }
            let delay = self.bus_delay();
            let incarnation = self.nodes[node].incarnation;
            self.after(
                delay,
                Event::Broadcast {
                    node,
                    incarnation,
                    meeting,
                    b: Rc::clone(&b),
                },
            );
        }
    }
}
