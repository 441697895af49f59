//! What must hold in every run, checked as it goes and once the cluster has settled:
//!
//! - the journal is appended by one coordinator at a time: once another appended, a
//!   coordinator never appends nor broadcasts again; every event broadcast is the journal's;
//! - each client gets every event once, in order, from its welcome on (a snapshot is a new
//!   start), and in the end has the meeting's last one: every chat committed while it was
//!   in reached it;
//! - every chat a client was told was accepted is in the journal;
//! - the meeting's poll counts every answer a client was told was counted, each once (one
//!   per person, whatever the retries, resumes and takeovers);
//! - everyone connected is in exactly one partition, no partition over capacity, and the
//!   coordinator's idea of who is connected where is the clients' (no ghosts, nobody lost).

use std::collections::{BTreeMap, BTreeSet};

use myriad_proto::meeting::MeetingBroadcast;
use myriad_proto::{MeetingEvent, Seq, SeqEvent};
use myriad_room::Commit;

use crate::client::Ballot;
use crate::client::State;
use crate::node::{node_name, SIM_POLL, SIM_QUESTION};
use crate::world::{MeetingIx, World};

#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// The first violation seen; the run stops there.
    pub violation: Option<String>,
    /// Every event committed, by meeting and sequence.
    committed: BTreeMap<MeetingIx, BTreeMap<Seq, SeqEvent>>,
    last_appender: BTreeMap<MeetingIx, u64>,
    superseded: BTreeSet<(MeetingIx, u64)>,
    pub acked_chats: Vec<(MeetingIx, String)>,
    /// Who was told their ballot counts, by meeting and ballot.
    pub acked_votes: BTreeMap<(MeetingIx, Ballot), BTreeSet<String>>,
    pub crashes: u64,
    pub cuts: u64,
    pub freezes: u64,
    pub takeovers: u64,
    pub fenced: u64,
    pub joins: u64,
    pub resumes: u64,
    pub snapshot_resumes: u64,
    pub expired: u64,
    pub reconnects: u64,
    pub events_delivered: u64,
    pub chats_delivered: u64,
    pub chats_failed: u64,
}

impl Checker {
    pub fn fail(&mut self, what: String) {
        self.violation.get_or_insert(what);
    }

    pub fn appended(&mut self, meeting: MeetingIx, instance: u64, commit: &Commit) {
        if self.superseded.contains(&(meeting, instance)) {
            self.fail(format!(
                "coordinator {instance} of meeting {meeting} appended after another took over"
            ));
        }
        if let Some(previous) = self.last_appender.insert(meeting, instance) {
            if previous != instance {
                self.superseded.insert((meeting, previous));
            }
        }
        let committed = self.committed.entry(meeting).or_default();
        let differing = commit
            .events
            .iter()
            .filter_map(|e| {
                committed
                    .insert(e.seq, e.clone())
                    .filter(|before| before != e)
            })
            .map(|e| e.seq)
            .next();
        if let Some(seq) = differing {
            self.fail(format!(
                "meeting {meeting}: event {seq} committed twice, differently"
            ));
        }
    }

    pub fn broadcast(&mut self, meeting: MeetingIx, instance: u64, b: &MeetingBroadcast) {
        if self.superseded.contains(&(meeting, instance)) {
            let kind = match b {
                MeetingBroadcast::Events { .. } => "events",
                MeetingBroadcast::Plan { .. } => "a plan",
                MeetingBroadcast::Partitions { .. } => "partitions",
                MeetingBroadcast::SessionEnded { .. } => "a session end",
                MeetingBroadcast::Stopped => "its stop",
                MeetingBroadcast::TookOver { .. } => "a takeover",
            };
            self.fail(format!(
                "coordinator {instance} of meeting {meeting} broadcast {kind} after another took over"
            ));
        }
        if let MeetingBroadcast::Events { events, .. } = b {
            let committed = self.committed.get(&meeting);
            let foreign = events
                .iter()
                .find(|e| committed.and_then(|c| c.get(&e.seq)) != Some(*e))
                .map(|e| e.seq);
            if let Some(seq) = foreign {
                self.fail(format!(
                    "meeting {meeting}: coordinator {instance} broadcast event {seq} that the journal does not hold"
                ));
            }
        }
    }

    /// Chats committed in a meeting, by text.
    fn committed_chats(&self, meeting: MeetingIx) -> BTreeSet<&str> {
        self.committed
            .get(&meeting)
            .map(|events| {
                events
                    .values()
                    .filter_map(|e| match &e.event {
                        MeetingEvent::Chat { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl World {
    /// The meeting's first question counts each voter once (its asker's and the upvotes),
    /// and every upvote a client was told counts.
    fn check_question(&self, meeting: MeetingIx, m: &myriad_room::Meeting) -> Result<(), String> {
        let acked = self.check.acked_votes.get(&(meeting, Ballot::Upvote));
        let state = m.state();
        let Some((question, voters)) = state.questions.iter().find(|(q, _)| q.id == SIM_QUESTION)
        else {
            return match acked {
                Some(a) if !a.is_empty() => Err(format!(
                    "meeting {meeting}: {} upvotes counted, and no question",
                    a.len()
                )),
                _ => Ok(()),
            };
        };
        if question.votes as usize != voters.len() {
            return Err(format!(
                "meeting {meeting}: the question shows {} votes from {} voters",
                question.votes,
                voters.len()
            ));
        }
        if let Some(lost) = acked.into_iter().flatten().find(|a| !voters.contains(a)) {
            return Err(format!(
                "meeting {meeting}: {lost} was told its upvote counts, and it is not counted"
            ));
        }
        Ok(())
    }

    /// The meeting's poll (the first: the one the clients answer) holds each answer once,
    /// and every answer a client was told counts.
    fn check_poll(&self, meeting: MeetingIx, m: &myriad_room::Meeting) -> Result<(), String> {
        let acked = self.check.acked_votes.get(&(meeting, Ballot::Poll));
        let Ok((poll, answers)) = m.poll_answers(SIM_POLL) else {
            return match acked {
                Some(a) if !a.is_empty() => Err(format!(
                    "meeting {meeting}: {} answers counted, and no poll",
                    a.len()
                )),
                _ => Ok(()),
            };
        };
        let mut counted = BTreeSet::new();
        for (voter, _) in &answers {
            let identity = voter.as_ref().map(|v| v.identity.as_str()).unwrap_or("?");
            if !counted.insert(identity) {
                return Err(format!(
                    "meeting {meeting}: {identity}'s answer counted twice"
                ));
            }
        }
        if poll.results.voters as usize != answers.len() {
            return Err(format!(
                "meeting {meeting}: {} voters in the results, {} answers",
                poll.results.voters,
                answers.len()
            ));
        }
        if let Some(lost) = acked
            .into_iter()
            .flatten()
            .find(|a| !counted.contains(a.as_str()))
        {
            return Err(format!(
                "meeting {meeting}: {lost} was told its answer counts, and it is not counted"
            ));
        }
        Ok(())
    }

    /// The checks once faults stopped and the cluster settled.
    pub fn check_settled(&mut self) -> Result<(), String> {
        for (meeting, text) in &self.check.acked_chats {
            if !self.check.committed_chats(*meeting).contains(text.as_str()) {
                return Err(format!(
                    "meeting {meeting}: accepted chat {text:?} is not in the journal"
                ));
            }
        }
        for meeting in 0..self.meetings.len() {
            self.check_meeting(meeting)?;
        }
        Ok(())
    }

    fn check_meeting(&self, meeting: MeetingIx) -> Result<(), String> {
        let coordinators: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive && self.nodes[*n].coordinates(meeting))
            .collect();
        let staying: Vec<usize> = (0..self.clients.len())
            .filter(|c| self.clients[*c].meeting == meeting && self.clients[*c].stays())
            .collect();
        let [node] = coordinators[..] else {
            if staying.is_empty() && coordinators.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "meeting {meeting}: {} coordinators at the end (on {coordinators:?})",
                coordinators.len()
            ));
        };
        let core = &self.nodes[node].coordinators[&meeting].core;
        self.check_poll(meeting, core.meeting())?;
        self.check_question(meeting, core.meeting())?;
        let seq = core.meeting().seq();
        core.planner()
            .check()
            .map_err(|e| format!("meeting {meeting}: {e}"))?;
        let mut expected = BTreeMap::new();
        for c in staying {
            let client = &self.clients[c];
            let State::In { node, conn } = client.state else {
                return Err(format!(
                    "{} is not back in meeting {meeting}: {:?}",
                    client.identity, client.state
                ));
            };
            if client.last != seq {
                return Err(format!(
                    "{} has events up to {}, the meeting is at {seq}",
                    client.identity, client.last
                ));
            }
            let Some((_, _, participant)) = self.nodes[node].bound(conn) else {
                return Err(format!(
                    "{}'s connection on n{node} is unknown there",
                    client.identity
                ));
            };
            expected.insert(participant, (node_name(node), conn));
        }
        let connected: BTreeMap<_, _> = core
            .connections()
            .map(|(p, c)| (p, (c.node.clone(), c.conn)))
            .collect();
        if connected != expected {
            let ghosts: Vec<String> = connected
                .iter()
                .filter(|(p, _)| !expected.contains_key(p))
                .map(|(p, at)| {
                    let whose = self.clients.iter().find(|c| {
                        c.meeting == meeting
                            && c.session.as_ref().is_some_and(|s| s.participant == *p)
                    });
                    match whose {
                        Some(c) => format!("{p} at {at:?} ({}: {:?})", c.identity, c.state),
                        None => format!("{p} at {at:?} (no client holds it now)"),
                    }
                })
                .collect();
            let lost: Vec<_> = expected
                .keys()
                .filter(|p| !connected.contains_key(p))
                .collect();
            return Err(format!(
                "meeting {meeting}: the coordinator's connections differ from the clients' (ghosts {ghosts:?}, unknown {lost:?}, {} vs {})",
                connected.len(),
                expected.len()
            ));
        }
        for (participant, (node, conn)) in &expected {
            let seat = core.planner().partition_of(*participant);
            let index = crate::node::node_index(node).unwrap_or(usize::MAX);
            let told = self.nodes.get(index).and_then(|n| n.partition_of(*conn));
            match seat {
                Some(p) if p.node == *node && told == Some(p) => {}
                _ => {
                    return Err(format!(
                        "meeting {meeting}: {participant} on {node} is seated in {seat:?}, its node was told {told:?}"
                    ))
                }
            }
        }
        Ok(())
    }
}
