use std::time::{Duration, Instant};

use myriad_proto::{MeetingEvent, MeetingId, ParticipantId, Role, Seq, SeqEvent, TrackSource};
use myriad_seeded::VirtualClock;

use crate::*;

fn meeting(now: Instant) -> Meeting {
    Meeting::new(
        MeetingId::parse("m1").unwrap(),
        MeetingConfig::default(),
        now,
    )
}

fn join(m: &mut Meeting, now: Instant, name: &str, role: Role) -> ParticipantId {
    m.handle_join(
        now,
        JoinRequest {
            identity: name.into(),
            name: name.into(),
            role,
            permissions: Permissions {
                publish: role.publishes(),
                subscribe: true,
                moderate: role.moderates(),
            },
            session_token: format!("secret-{name}"),
        },
    )
    .unwrap()
}

/// `n` people who join as `role`, named `{prefix}0`, `{prefix}1`, …
fn join_many(
    m: &mut Meeting,
    now: Instant,
    prefix: &str,
    n: usize,
    role: Role,
) -> Vec<ParticipantId> {
    (0..n)
        .map(|i| join(m, now, &format!("{prefix}{i}"), role))
        .collect()
}

/// Every output, the meeting's time moved on to each batch of events it holds back.
fn drain(m: &mut Meeting) -> Vec<Output> {
    let mut all = Vec::new();
    loop {
        all.extend(std::iter::from_fn(|| m.poll_output()));
        match m.poll_timeout() {
            Some((t, Reason::Flush)) => m.handle_timeout(t),
            _ => return all,
        }
    }
}

fn seq_events(outputs: &[Output]) -> Vec<SeqEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Commit(c) => Some(c.events.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn events(outputs: &[Output]) -> Vec<MeetingEvent> {
    seq_events(outputs).into_iter().map(|e| e.event).collect()
}

/// What `pick` takes from each event the outputs hold, in order.
fn picked<T>(outputs: &[Output], pick: impl FnMut(MeetingEvent) -> Option<T>) -> Vec<T> {
    events(outputs).into_iter().filter_map(pick).collect()
}

#[test]
fn joins_and_leaves_are_sequenced_events() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Host);
    let b = join(&mut m, t, "bob", Role::Attendee);
    m.handle_leave(t, a);
    let out = drain(&mut m);
    let seqs: Vec<Seq> = seq_events(&out).iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![Seq(1), Seq(2), Seq(3)]);
    assert!(
        matches!(&events(&out)[2], MeetingEvent::ParticipantLeft { participant } if *participant == a)
    );
    assert!(out.contains(&Output::SessionEnded {
        participant: a,
        reason: EndReason::Left
    }));
    assert_eq!(m.count(), 1);
    assert!(m.participant(b).is_some());
}

#[test]
fn counts_are_coalesced_per_interval() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    for i in 0..50 {
        join(&mut m, t, &format!("p{i}"), Role::Attendee);
    }
    drain(&mut m);
    let (due, why) = m.poll_timeout().expect("count update scheduled");
    assert_eq!(why, Reason::Count);
    m.handle_timeout(due);
    let ev = events(&drain(&mut m));
    assert_eq!(ev, vec![MeetingEvent::Count { count: 50 }]);
    assert_eq!(
        m.poll_timeout().map(|(_, why)| why),
        None,
        "nothing due while people are in"
    );
}

#[test]
fn large_meetings_do_not_broadcast_attendee_roster_changes() {
    let t = VirtualClock::new().now();
    let cfg = MeetingConfig {
        roster_broadcast_max: 3,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("big").unwrap(), cfg, t);
    for i in 0..10 {
        join(&mut m, t, &format!("a{i}"), Role::Attendee);
    }
    let host = join(&mut m, t, "host", Role::Host);
    let joined = events(&drain(&mut m))
        .into_iter()
        .filter(|e| matches!(e, MeetingEvent::ParticipantJoined { .. }))
        .count();
    assert_eq!(joined, 4, "three while small, then only the host");
    let snap = m.snapshot_for(host);
    assert_eq!(snap.count, 11);
    assert_eq!(snap.participants.len(), 1, "attendees are a paged query");
    let page = m.participants_page(None, 4);
    assert_eq!(page.len(), 4);
    let next = m.participants_page(Some(page[3].id), 100);
    assert_eq!(next.len(), 7);
}

#[test]
fn attendees_may_not_publish_and_only_moderators_remove() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let att = join(&mut m, t, "att", Role::Attendee);
    assert!(matches!(
        m.handle_publish(t, att, TrackSource::Camera, None),
        Err(RoomError::Forbidden(_))
    ));
    assert!(matches!(
        m.handle_remove(t, Actor::Participant(att), host),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_remove(t, Actor::Participant(host), att).unwrap();
    assert!(m.participant(att).is_none());
    assert_eq!(
        m.handle_remove(t, Actor::Api, att),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn moderators_mute_but_never_unmute_others() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let pan = join(&mut m, t, "pan", Role::Panelist);
    m.handle_publish(t, pan, TrackSource::Microphone, None)
        .unwrap();
    m.handle_mute(
        t,
        Actor::Participant(host),
        pan,
        TrackSource::Microphone,
        true,
    )
    .unwrap();
    assert!(m
        .handle_mute(
            t,
            Actor::Participant(host),
            pan,
            TrackSource::Microphone,
            false
        )
        .is_err());
    assert!(m.plan().audio.is_empty(), "muted audio is not forwarded");
    m.handle_mute(
        t,
        Actor::Participant(pan),
        pan,
        TrackSource::Microphone,
        false,
    )
    .unwrap();
    assert_eq!(m.plan().audio.len(), 1);
}

fn role_of(m: &Meeting, p: ParticipantId) -> Role {
    m.participant(p).expect("in the meeting").role
}

#[test]
fn a_host_promotes_and_demotes_and_grants_follow_at_once() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let att = join(&mut m, t, "att", Role::Attendee);
    drain(&mut m);
    let by_host = Actor::Participant(host);

    m.handle_set_role(t, by_host, att, Role::Panelist).unwrap();
    assert_eq!(role_of(&m, att), Role::Panelist);
    let camera = m.handle_publish(t, att, TrackSource::Camera, None).unwrap();
    assert!(
        m.plan().video.contains(&camera),
        "the promoted publishes at once"
    );

    m.handle_set_role(t, by_host, att, Role::Attendee).unwrap();
    assert_eq!(role_of(&m, att), Role::Attendee);
    assert!(
        !m.plan().video.contains(&camera),
        "a demoted one's tracks stop"
    );
    assert!(matches!(
        m.handle_publish(t, att, TrackSource::Camera, None),
        Err(RoomError::Forbidden(_))
    ));
    let seen = events(&drain(&mut m));
    let roles: Vec<Role> = seen
        .iter()
        .filter_map(|e| match e {
            MeetingEvent::RoleChanged { participant } if participant.id == att => {
                Some(participant.role)
            }
            _ => None,
        })
        .collect();
    assert_eq!(roles, [Role::Panelist, Role::Attendee]);
    assert!(seen
        .iter()
        .any(|e| matches!(e, MeetingEvent::TrackUnpublished { track } if *track == camera)));

    // A co-host moderates: it removes people and moves them between panelist and attendee.
    m.handle_set_role(t, by_host, att, Role::CoHost).unwrap();
    let other = join(&mut m, t, "other", Role::Attendee);
    m.handle_set_role(t, Actor::Participant(att), other, Role::Panelist)
        .unwrap();
    assert_eq!(role_of(&m, other), Role::Panelist);
}

#[test]
fn roles_are_changed_only_by_those_allowed_to() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let cohost = join(&mut m, t, "cohost", Role::CoHost);
    let pan = join(&mut m, t, "pan", Role::Panelist);
    let att = join(&mut m, t, "att", Role::Attendee);
    drain(&mut m);
    let forbidden = |r: Result<(), RoomError>| matches!(r, Err(RoomError::Forbidden(_)));

    // Not a moderator: not even oneself.
    assert!(forbidden(m.handle_set_role(
        t,
        Actor::Participant(att),
        att,
        Role::Panelist
    )));
    assert!(forbidden(m.handle_set_role(
        t,
        Actor::Participant(pan),
        att,
        Role::Panelist
    )));
    // A co-host neither makes nor changes hosts and co-hosts.
    let by_cohost = Actor::Participant(cohost);
    assert!(forbidden(m.handle_set_role(
        t,
        by_cohost,
        att,
        Role::CoHost
    )));
    assert!(forbidden(m.handle_set_role(t, by_cohost, pan, Role::Host)));
    assert!(forbidden(m.handle_set_role(
        t,
        by_cohost,
        host,
        Role::Attendee
    )));
    assert!(forbidden(m.handle_set_role(
        t,
        by_cohost,
        cohost,
        Role::Host
    )));
    assert_eq!(
        m.handle_set_role(
            t,
            Actor::Participant(host),
            ParticipantId(999),
            Role::Panelist
        ),
        Err(RoomError::UnknownParticipant)
    );
    assert!(
        events(&drain(&mut m)).is_empty(),
        "a refused change tells nobody anything"
    );
    assert_eq!(
        [host, cohost, pan, att].map(|p| role_of(&m, p)),
        [Role::Host, Role::CoHost, Role::Panelist, Role::Attendee]
    );
    // The operator's backend (the API) may make hosts; a host may step down.
    m.handle_set_role(t, Actor::Api, pan, Role::Host).unwrap();
    m.handle_set_role(t, Actor::Participant(host), host, Role::Attendee)
        .unwrap();
    assert!(forbidden(m.handle_remove(t, Actor::Participant(host), att)));
}

#[test]
fn a_role_change_reaches_everyone_in_a_large_meeting() {
    let t = VirtualClock::new().now();
    let cfg = MeetingConfig {
        roster_broadcast_max: 3,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("big").unwrap(), cfg, t);
    let host = join(&mut m, t, "host", Role::Host);
    let attendees = join_many(&mut m, t, "a", 10, Role::Attendee);
    drain(&mut m);
    let promoted = attendees[7];
    m.handle_set_role(t, Actor::Participant(host), promoted, Role::Panelist)
        .unwrap();
    let seen = events(&drain(&mut m));
    assert!(seen.iter().any(|e| matches!(
        e,
        MeetingEvent::RoleChanged { participant }
            if participant.id == promoted && participant.name == "a7"
    )));
    let snap = m.snapshot_for(attendees[0]);
    assert!(
        snap.participants.iter().any(|p| p.id == promoted),
        "a panelist is on the pushed roster of a large meeting"
    );
}

/// The hand queue events in `outputs`: (raised, first ids, lowered ids).
fn hand_events(outputs: &[Output]) -> Vec<(u32, Vec<ParticipantId>, Vec<ParticipantId>)> {
    events(outputs)
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::Hands { hands, lowered } => Some((
                hands.raised,
                hands.first.iter().map(|p| p.id).collect(),
                lowered,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn hands_queue_in_order_and_reach_everyone_coalesced() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let people = join_many(&mut m, t, "a", 3, Role::Attendee);
    drain(&mut m);
    let t = clock.advance(Duration::from_secs(1));
    for p in [people[2], people[0], people[1]] {
        m.handle_hand(t, p, true).unwrap();
    }
    m.handle_hand(t, people[0], true).unwrap();
    let t = clock.advance(MeetingConfig::default().count_interval);
    m.handle_timeout(t);
    let seen = hand_events(&drain(&mut m));
    assert_eq!(
        seen,
        [(3, vec![people[2], people[0], people[1]], vec![])],
        "three hands, one event, in the order raised"
    );

    // Only moderators lower others' hands; lowered hands are named so their owners know.
    assert!(matches!(
        m.handle_lower_hands(t, Actor::Participant(people[0]), Some(people[2])),
        Err(RoomError::Forbidden(_))
    ));
    assert_eq!(
        m.handle_lower_hands(t, Actor::Participant(host), Some(ParticipantId(999))),
        Err(RoomError::UnknownParticipant)
    );
    m.handle_lower_hands(t, Actor::Participant(host), Some(people[2]))
        .unwrap();
    m.handle_hand(t, people[1], false).unwrap();
    let t = clock.advance(Duration::from_secs(1));
    m.handle_timeout(t);
    assert_eq!(
        hand_events(&drain(&mut m)),
        [(1, vec![people[0]], vec![people[2]])]
    );
    m.handle_lower_hands(t, Actor::Api, None).unwrap();
    let t = clock.advance(Duration::from_secs(1));
    m.handle_timeout(t);
    assert_eq!(hand_events(&drain(&mut m)), [(0, vec![], vec![people[0]])]);
    assert_eq!(
        m.handle_hand(t, ParticipantId(999), true),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn the_stage_publishes_is_planned_first_and_has_a_size() {
    let t = VirtualClock::new().now();
    let cfg = MeetingConfig {
        stage_max: 2,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("hall").unwrap(), cfg, t);
    let host = join(&mut m, t, "host", Role::Host);
    let pan = join(&mut m, t, "pan", Role::Panelist);
    let att = join_many(&mut m, t, "a", 3, Role::Attendee);
    let pan_cam = m.handle_publish(t, pan, TrackSource::Camera, None).unwrap();
    m.handle_hand(t, att[1], true).unwrap();
    drain(&mut m);
    let by_host = Actor::Participant(host);

    assert!(matches!(
        m.handle_stage(t, Actor::Participant(att[1]), att[1], true),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_stage(t, by_host, att[1], true).unwrap();
    let cam = m
        .handle_publish(t, att[1], TrackSource::Camera, None)
        .expect("on stage, an attendee publishes");
    assert_eq!(m.plan().video, [cam, pan_cam], "the stage first");
    let stage_events: Vec<Vec<ParticipantId>> = events(&drain(&mut m))
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::Stage { participants } => {
                Some(participants.iter().map(|p| p.id).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(stage_events, [vec![att[1]]]);
    let snap = m.snapshot_for(att[0]);
    assert_eq!(
        snap.stage.iter().map(|p| p.id).collect::<Vec<_>>(),
        [att[1]]
    );
    assert_eq!(snap.hands.raised, 0, "invited: the hand is answered");

    m.handle_stage(t, by_host, att[0], true).unwrap();
    assert_eq!(
        m.handle_stage(t, by_host, att[2], true),
        Err(RoomError::StageFull)
    );
    assert_eq!(
        m.handle_stage(t, by_host, ParticipantId(999), true),
        Err(RoomError::UnknownParticipant)
    );
    // Stepping off oneself is allowed; the tracks of one who may not publish stop.
    m.handle_stage(t, Actor::Participant(att[1]), att[1], false)
        .unwrap();
    assert!(m.track(cam).is_none());
    assert!(!m.permissions(att[1]).unwrap().publish);
    assert!(matches!(
        m.handle_stage(t, Actor::Participant(att[1]), att[0], false),
        Err(RoomError::Forbidden(_))
    ));
    // A panelist taken off the stage keeps publishing; one who leaves leaves the stage.
    m.handle_stage(t, by_host, pan, true).unwrap();
    m.handle_stage(t, by_host, pan, false).unwrap();
    assert!(m.track(pan_cam).is_some());
    m.handle_leave(t, att[0]);
    assert!(m.snapshot_for(host).stage.is_empty());
}

#[test]
fn reactions_from_many_nodes_go_out_as_one_event_per_count_interval() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    join(&mut m, t, "a", Role::Attendee);
    drain(&mut m);
    let count = |emoji: &str, count| myriad_proto::ReactionCount {
        emoji: emoji.into(),
        count,
    };
    m.handle_reactions(t, &[count("👍", 400), count("🎉", 2)])
        .unwrap();
    m.handle_reactions(t, &[count("👍", 600)]).unwrap();
    assert!(m.handle_reactions(t, &[count("nope", 1)]).is_err());
    assert!(!m.has_uncommitted(), "they wait for the count interval");
    let t = clock.advance(MeetingConfig::default().count_interval);
    m.handle_timeout(t);
    let seen: Vec<Vec<myriad_proto::ReactionCount>> = events(&drain(&mut m))
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::Reactions { counts } => Some(counts),
            _ => None,
        })
        .collect();
    assert_eq!(seen, [vec![count("👍", 1000), count("🎉", 2)]]);
}

fn results_of(outputs: &[Output]) -> Vec<myriad_proto::PollResults> {
    events(outputs)
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::PollResults { results } | MeetingEvent::PollClosed { results } => {
                Some(results)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_poll_counts_one_answer_each_and_sends_results_coalesced() {
    use myriad_proto::{Answer, PollKind};
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let people = join_many(&mut m, t, "a", 4, Role::Attendee);
    drain(&mut m);
    let kind = PollKind::Single {
        options: vec!["yes".into(), "no".into()],
    };
    assert!(matches!(
        m.handle_create_poll(t, Actor::Participant(people[0]), "Q?", kind.clone(), false),
        Err(RoomError::Forbidden(_))
    ));
    let poll = m
        .handle_create_poll(t, Actor::Participant(host), " Lunch now? ", kind, false)
        .unwrap();
    let opened = events(&drain(&mut m));
    assert!(opened.iter().any(|e| matches!(e,
        MeetingEvent::PollOpened { poll: p } if p.id == poll && p.question == "Lunch now?" && p.open)));

    let yes = Answer::Single { option: 0 };
    let no = Answer::Single { option: 1 };
    for (p, a) in [(people[0], &yes), (people[1], &yes), (people[2], &no)] {
        m.handle_vote(t, p, poll, a.clone()).unwrap();
    }
    assert_eq!(
        m.handle_vote(t, people[0], poll, no.clone()),
        Err(RoomError::AlreadyVoted)
    );
    // One answer per person: leaving and joining again (a new participant) changes nothing.
    m.handle_leave(t, people[0]);
    let again = join(&mut m, t, "a0", Role::Attendee);
    assert_eq!(
        m.handle_vote(t, again, poll, no.clone()),
        Err(RoomError::AlreadyVoted)
    );
    for bad in [
        Answer::Single { option: 2 },
        Answer::Multiple { options: vec![0] },
        Answer::Text { text: "yes".into() },
    ] {
        assert_eq!(
            m.handle_vote(t, people[3], poll, bad),
            Err(RoomError::InvalidAnswer)
        );
    }
    assert_eq!(
        m.handle_vote(t, people[3], 99, yes.clone()),
        Err(RoomError::UnknownPoll)
    );
    let t = clock.advance(MeetingConfig::default().count_interval);
    m.handle_timeout(t);
    let results = results_of(&drain(&mut m));
    assert_eq!(results.len(), 1, "three answers, one update");
    assert_eq!(
        (results[0].voters, results[0].counts.clone()),
        (3, vec![2, 1])
    );

    m.handle_close_poll(t, Actor::Participant(host), poll)
        .unwrap();
    assert_eq!(
        m.handle_vote(t, people[3], poll, yes),
        Err(RoomError::PollClosed)
    );
    let closed = results_of(&drain(&mut m));
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].counts, [2, 1]);
    let snap = m.snapshot_for(people[3]);
    assert_eq!(snap.polls.len(), 1);
    assert!(!snap.polls[0].info.open);
    let (_, answers) = m.poll_answers(poll).unwrap();
    let names: Vec<String> = answers
        .iter()
        .map(|(v, _)| v.as_ref().map(|v| v.name.clone()).unwrap_or_default())
        .collect();
    assert_eq!(names, ["a0", "a1", "a2"], "a named poll: who, in order");
}

#[test]
fn polls_of_every_kind_check_their_questions_and_answers() {
    use myriad_proto::{Answer, PollKind};
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = Actor::Participant(join(&mut m, t, "host", Role::Host));
    let a = join(&mut m, t, "a", Role::Attendee);
    let options = |n: usize| (0..n).map(|i| format!("o{i}")).collect::<Vec<_>>();
    for (question, kind) in [
        ("", PollKind::Text),
        (&"q".repeat(501) as &str, PollKind::Text),
        (
            "q",
            PollKind::Single {
                options: options(1),
            },
        ),
        (
            "q",
            PollKind::Multiple {
                options: options(11),
            },
        ),
        (
            "q",
            PollKind::Single {
                options: vec!["ok".into(), " ".into()],
            },
        ),
        ("q", PollKind::Rating { max: 1 }),
        ("q", PollKind::Rating { max: 11 }),
    ] {
        assert!(
            matches!(
                m.handle_create_poll(t, host, question, kind.clone(), true),
                Err(RoomError::InvalidPoll(_))
            ),
            "{question:.10} {kind:?}"
        );
    }
    let multi = m
        .handle_create_poll(
            t,
            host,
            "q",
            PollKind::Multiple {
                options: options(3),
            },
            true,
        )
        .unwrap();
    for bad in [vec![], vec![0, 0], vec![3]] {
        let answer = Answer::Multiple { options: bad };
        assert_eq!(
            m.handle_vote(t, a, multi, answer),
            Err(RoomError::InvalidAnswer)
        );
    }
    m.handle_vote(
        t,
        a,
        multi,
        Answer::Multiple {
            options: vec![2, 0],
        },
    )
    .unwrap();
    let rating = m
        .handle_create_poll(t, host, "q", PollKind::Rating { max: 5 }, true)
        .unwrap();
    for bad in [0, 6] {
        let answer = Answer::Rating { value: bad };
        assert_eq!(
            m.handle_vote(t, a, rating, answer),
            Err(RoomError::InvalidAnswer)
        );
    }
    m.handle_vote(t, a, rating, Answer::Rating { value: 5 })
        .unwrap();
    let text = m
        .handle_create_poll(t, host, "q", PollKind::Text, true)
        .unwrap();
    for bad in ["  ", &"x".repeat(501)] {
        let answer = Answer::Text { text: bad.into() };
        assert_eq!(
            m.handle_vote(t, a, text, answer),
            Err(RoomError::InvalidAnswer)
        );
    }
    m.handle_vote(
        t,
        a,
        text,
        Answer::Text {
            text: "fine".into(),
        },
    )
    .unwrap();
    let states = m.snapshot_for(a).polls;
    let counts: Vec<Vec<u32>> = states.iter().map(|p| p.results.counts.clone()).collect();
    assert_eq!(counts, [vec![1, 0, 1], vec![0, 0, 0, 0, 1], vec![]]);
    let (_, answers) = m.poll_answers(rating).unwrap();
    assert_eq!(
        answers,
        [(None, Answer::Rating { value: 5 })],
        "anonymous: nobody named"
    );
}

#[test]
fn moderators_mute_everyone_lock_the_meeting_and_end_it() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let pans = join_many(&mut m, t, "p", 3, Role::Panelist);
    for p in pans.iter().chain([&host]) {
        m.handle_publish(t, *p, TrackSource::Microphone, None)
            .unwrap();
    }
    let by = |p| Actor::Participant(p);
    assert!(matches!(
        m.handle_mute_all(t, by(pans[0])),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_mute_all(t, by(host)).unwrap();
    let unmuted: Vec<ParticipantId> = m
        .tracks()
        .iter()
        .filter(|t| !t.muted)
        .map(|t| t.participant)
        .collect();
    assert_eq!(unmuted, [host], "everyone but the one who asked");

    assert!(matches!(
        m.handle_lock(t, by(pans[0]), true),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_lock(t, by(host), true).unwrap();
    assert!(m.is_locked());
    let late = JoinRequest {
        identity: "late".into(),
        name: "late".into(),
        role: Role::Attendee,
        permissions: Permissions::default(),
        session_token: "s".into(),
    };
    assert_eq!(
        m.handle_join(t, late.clone()),
        Err(RoomError::MeetingLocked)
    );
    assert!(m.snapshot_for(host).locked);
    m.handle_lock(t, Actor::Api, false).unwrap();
    m.handle_join(t, late).unwrap();
    assert!(events(&drain(&mut m))
        .iter()
        .any(|e| matches!(e, MeetingEvent::Locked { locked: true })));

    assert!(matches!(
        m.handle_end(t, by(pans[1])),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_end(t, by(host)).unwrap();
    assert!(m.is_ended());
}

#[test]
fn questions_are_upvoted_once_each_and_settled_by_moderators() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let people = join_many(&mut m, t, "a", 3, Role::Attendee);
    drain(&mut m);
    for bad in ["", "   ", &"?".repeat(501)] {
        assert!(matches!(
            m.handle_ask(t, people[0], bad),
            Err(RoomError::InvalidQuestion(_))
        ));
    }
    let q = m.handle_ask(t, people[0], " Why now? ").unwrap();
    let asked = events(&drain(&mut m));
    assert!(asked.iter().any(|e| matches!(e,
        MeetingEvent::QuestionAsked { question } if question.text == "Why now?" && question.from == "a0" && question.votes == 1)));
    assert_eq!(
        m.handle_upvote(t, people[0], q),
        Err(RoomError::AlreadyVoted),
        "the asker's vote counts"
    );
    m.handle_upvote(t, people[1], q).unwrap();
    m.handle_upvote(t, people[2], q).unwrap();
    assert_eq!(
        m.handle_upvote(t, people[2], q),
        Err(RoomError::AlreadyVoted)
    );
    assert_eq!(
        m.handle_upvote(t, people[2], 99),
        Err(RoomError::UnknownQuestion)
    );
    let t = clock.advance(MeetingConfig::default().count_interval);
    m.handle_timeout(t);
    let votes: Vec<u32> = events(&drain(&mut m))
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::QuestionUpdated { question } => Some(question.votes),
            _ => None,
        })
        .collect();
    assert_eq!(votes, [3], "two upvotes, one update");

    let by = |p| Actor::Participant(p);
    assert!(matches!(
        m.handle_settle_question(t, by(people[1]), q, Settled::Dismissed),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_settle_question(t, by(host), q, Settled::Answered(Some("Because.".into())))
        .unwrap();
    let q2 = m.handle_ask(t, people[1], "And later?").unwrap();
    m.handle_settle_question(t, by(host), q2, Settled::Dismissed)
        .unwrap();
    assert_eq!(
        m.handle_upvote(t, people[0], q2),
        Err(RoomError::UnknownQuestion)
    );
    let shown = m.snapshot_for(people[2]).questions;
    assert_eq!(shown.len(), 1, "dismissed questions are not shown");
    assert!(shown[0].answered && shown[0].answer.as_deref() == Some("Because."));
}

#[test]
fn chat_is_kept_for_late_joiners_paged_deleted_and_stopped_by_moderators() {
    use crate::meeting::chat;
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let a = join(&mut m, t, "a", Role::Attendee);
    // The host's messages (a flood from anyone else is held by the spam filter).
    for i in 0..(chat::CHAT_KEPT + 20) {
        m.handle_chat(t, host, &format!("line {i}"), Addressing::default())
            .unwrap();
    }
    let late = join(&mut m, t, "late", Role::Attendee);
    let shown = m.snapshot_for(late).chat;
    assert_eq!(shown.len(), chat::CHAT_IN_SNAPSHOT);
    assert_eq!(shown.last().map(|c| c.text.as_str()), Some("line 519"));
    let page = m.chat_history(shown[0].id, 30, None);
    assert_eq!(page.len(), 30);
    assert_eq!(
        page.last().map(|c| c.id + 1),
        Some(shown[0].id),
        "just before"
    );
    let oldest = m.chat_history(page[0].id, 1000, None);
    assert_eq!(oldest.len(), chat::CHAT_PAGE_MAX, "a page is bounded");
    let all_kept = m.chat_history(u64::MAX, usize::MAX, None);
    assert_eq!(all_kept.len(), chat::CHAT_PAGE_MAX);

    let last = shown.last().unwrap().id;
    assert!(matches!(
        m.handle_delete_chat(t, Actor::Participant(a), last),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_delete_chat(t, Actor::Participant(host), last)
        .unwrap();
    assert_eq!(
        m.handle_delete_chat(t, Actor::Api, last),
        Err(RoomError::UnknownChat)
    );
    assert!(m.snapshot_for(late).chat.iter().all(|c| c.id != last));

    m.handle_ban_chat(t, Actor::Participant(host), a, true)
        .unwrap();
    assert!(matches!(
        m.handle_chat(t, a, "hi", Addressing::default()),
        Err(RoomError::Forbidden(_))
    ));
    // Stopped by identity: joining again does not lift it.
    m.handle_leave(t, a);
    let again = join(&mut m, t, "a", Role::Attendee);
    assert!(matches!(
        m.handle_chat(t, again, "hi", Addressing::default()),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_ban_chat(t, Actor::Participant(host), again, false)
        .unwrap();
    m.handle_chat(t, again, "hi again", Addressing::default())
        .unwrap();
    let seen = events(&drain(&mut m));
    assert!(seen
        .iter()
        .any(|e| matches!(e, MeetingEvent::ChatDeleted { id } if *id == last)));
    assert!(seen
        .iter()
        .any(|e| matches!(e, MeetingEvent::ChatBanned { banned: true, .. })));
}

#[test]
fn audience_mode_limits_attendees_and_the_plan_live() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let pan = join(&mut m, t, "pan", Role::Panelist);
    let att = join(&mut m, t, "att", Role::Attendee);
    let host_cam = m
        .handle_publish(t, host, TrackSource::Camera, None)
        .unwrap();
    let pan_cam = m.handle_publish(t, pan, TrackSource::Camera, None).unwrap();
    assert_eq!(m.plan().video.len(), 2);
    let strict = myriad_proto::Audience {
        on: true,
        chat: false,
        chat_hosts: false,
        reactions: false,
        hands: false,
    };
    assert!(matches!(
        m.handle_set_audience(t, Actor::Participant(att), strict),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_set_audience(t, Actor::Participant(host), strict)
        .unwrap();
    assert!(
        m.plan().video.is_empty(),
        "nobody speaks, nobody on stage: no camera"
    );
    m.handle_stage(t, Actor::Participant(host), pan, true)
        .unwrap();
    assert_eq!(m.plan().video, [pan_cam], "the stage is seen");
    assert!(!m.plan().video.contains(&host_cam));
    assert!(matches!(
        m.handle_chat(t, att, "hi", Addressing::default()),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_chat(t, pan, "panelists still chat", Addressing::default())
        .unwrap();
    assert!(matches!(
        m.handle_hand(t, att, true),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_hand(t, att, false).unwrap();
    let thumbs = myriad_proto::ReactionCount {
        emoji: "👍".into(),
        count: 1,
    };
    assert!(m
        .handle_reactions(t, std::slice::from_ref(&thumbs))
        .is_err());
    assert!(m.snapshot_for(att).audience.on);
    m.handle_set_audience(t, Actor::Api, myriad_proto::Audience::default())
        .unwrap();
    m.handle_chat(t, att, "back", Addressing::default())
        .unwrap();
    m.handle_reactions(t, &[thumbs]).unwrap();
    assert_eq!(m.plan().video.len(), 2);
}

#[test]
fn forwarding_follows_speakers_within_limits() {
    let t0 = VirtualClock::new().now();
    let cfg = MeetingConfig {
        last_n_video: 2,
        speaker: SpeakerConfig {
            max_active: 2,
            ..SpeakerConfig::default()
        },
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("fw").unwrap(), cfg, t0);
    let ps = join_many(&mut m, t0, "p", 4, Role::Panelist);
    let mut mic = Vec::new();
    let mut cam = Vec::new();
    for &p in &ps {
        mic.push(
            m.handle_publish(t0, p, TrackSource::Microphone, None)
                .unwrap(),
        );
        cam.push(m.handle_publish(t0, p, TrackSource::Camera, None).unwrap());
    }
    // Nobody spoke yet: earliest publishers, within the limits.
    assert_eq!(m.plan().audio, vec![mic[0], mic[1]]);
    assert_eq!(m.plan().video, vec![cam[0], cam[1]]);

    // p3 talks for a while: its audio and camera come first.
    let mut t = t0;
    for _ in 0..10 {
        t += Duration::from_millis(100);
        m.handle_audio_levels(t, &[(ps[3], -20.0)]);
    }
    assert_eq!(m.plan().audio[0], mic[3]);
    assert_eq!(m.plan().video[0], cam[3]);
    assert_eq!(m.plan().video.len(), 2);
    assert!(
        events(&drain(&mut m)).contains(&MeetingEvent::ActiveSpeakers {
            participants: vec![ps[3]]
        })
    );

    // A screen share is always forwarded, on top of last-N.
    let screen = m
        .handle_publish(t, ps[1], TrackSource::Screen, None)
        .unwrap();
    assert_eq!(m.plan().video[0], screen);
    assert_eq!(m.plan().video.len(), 3);

    // A muted speaker's level is ignored.
    m.handle_mute(
        t,
        Actor::Participant(ps[2]),
        ps[2],
        TrackSource::Microphone,
        true,
    )
    .unwrap();
    for _ in 0..10 {
        t += Duration::from_millis(100);
        m.handle_audio_levels(t, &[(ps[2], -5.0)]);
    }
    assert!(!m.plan().audio.contains(&mic[2]));
}

#[test]
fn resume_replays_missed_events_or_gives_a_snapshot() {
    let t = VirtualClock::new().now();
    let cfg = MeetingConfig {
        event_log_len: 4,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("r").unwrap(), cfg, t);
    let a = join(&mut m, t, "alice", Role::Host);
    let seen = m.seq();
    m.handle_disconnect(t, a);
    join(&mut m, t, "bob", Role::Host);
    drain(&mut m);

    assert_eq!(
        m.handle_resume(t, a, "alice", "wrong", seen),
        Err(RoomError::UnknownSession)
    );
    assert_eq!(
        m.handle_resume(t, a, "mallory", "secret-alice", seen),
        Err(RoomError::UnknownSession),
        "another identity with a stolen session secret"
    );
    match m
        .handle_resume(t, a, "alice", "secret-alice", seen)
        .unwrap()
    {
        ResumeFrom::Events(ev) => {
            assert_eq!(ev.len(), 1);
            assert!(matches!(
                ev[0].event,
                MeetingEvent::ParticipantJoined { .. }
            ));
        }
        other => panic!("expected events, got {other:?}"),
    }
    for i in 0..10 {
        join(&mut m, t, &format!("x{i}"), Role::Host);
    }
    m.handle_disconnect(t, a);
    assert!(matches!(
        m.handle_resume(t, a, "alice", "secret-alice", seen).unwrap(),
        ResumeFrom::Snapshot(s) if s.count == 12
    ));
}

#[test]
fn sessions_expire_after_the_resume_window() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Host);
    m.handle_publish(t, a, TrackSource::Camera, None).unwrap();
    m.handle_disconnect(t, a);
    drain(&mut m);
    let later = t + MeetingConfig::default().resume_window;
    let (due, _) = m.poll_timeout().expect("the expiry is scheduled");
    assert!(due <= later);
    m.handle_timeout(later);
    let out = drain(&mut m);
    assert!(out.contains(&Output::SessionEnded {
        participant: a,
        reason: EndReason::Expired
    }));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, MeetingEvent::TrackUnpublished { .. })));
    assert_eq!(m.count(), 0);
}

#[test]
fn resuming_a_live_session_replaces_the_old_connection() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Host);
    drain(&mut m);
    m.handle_resume(t, a, "alice", "secret-alice", m.seq())
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![Output::SessionEnded {
            participant: a,
            reason: EndReason::Replaced
        }]
    );
    assert!(m.participant(a).is_some());
}

#[test]
fn an_ended_meeting_refuses_joins() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    join(&mut m, t, "alice", Role::Host);
    m.end(t);
    assert!(events(&drain(&mut m)).contains(&MeetingEvent::MeetingEnded));
    assert_eq!(m.count(), 0);
    let err = m.handle_join(
        t,
        JoinRequest {
            identity: "late".into(),
            name: "late".into(),
            role: Role::Attendee,
            permissions: Permissions::default(),
            session_token: "s".into(),
        },
    );
    assert_eq!(err, Err(RoomError::MeetingEnded));
}

#[test]
fn chat_is_sequenced_and_checked() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Attendee);
    drain(&mut m);
    m.handle_chat(t, a, "  hello  ", Addressing::default())
        .unwrap();
    assert_eq!(
        events(&drain(&mut m)),
        vec![MeetingEvent::Chat {
            id: 1,
            from: a,
            name: "alice".into(),
            text: "hello".into(),
            only: Vec::new(),
            mentions: Vec::new(),
            to_hosts: false,
            flagged: None,
        }]
    );
    assert!(matches!(
        m.handle_chat(t, a, "   ", Addressing::default()),
        Err(RoomError::InvalidChat(_))
    ));
    assert!(matches!(
        m.handle_chat(
            t,
            a,
            &"x".repeat(myriad_proto::MAX_CHAT_BYTES + 1),
            Addressing::default()
        ),
        Err(RoomError::InvalidChat(_))
    ));
    assert_eq!(
        m.handle_chat(t, ParticipantId(99), "hi", Addressing::default()),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn events_go_in_one_batch_per_tick() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Panelist);
    // After a quiet tick: at once.
    let first = std::iter::from_fn(|| m.poll_output()).collect::<Vec<_>>();
    assert_eq!(events(&first).len(), 1, "{first:?}");
    // Within the tick: held back, due at its end.
    let t1 = clock.advance(Duration::from_millis(5));
    m.handle_chat(t1, a, "one", Addressing::default()).unwrap();
    let t2 = clock.advance(Duration::from_millis(5));
    m.handle_chat(t2, a, "two", Addressing::default()).unwrap();
    assert_eq!(m.poll_output(), None);
    assert_eq!(
        m.poll_timeout(),
        Some((t + MeetingConfig::default().tick, Reason::Flush))
    );
    m.handle_timeout(t + MeetingConfig::default().tick);
    let batch = std::iter::from_fn(|| m.poll_output()).collect::<Vec<_>>();
    assert_eq!(batch.len(), 1, "one batch: {batch:?}");
    let seqs: Vec<Seq> = seq_events(&batch).iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![Seq(2), Seq(3)]);
    // A quiet tick later, the next event goes at once again.
    let t3 = clock.advance(Duration::from_secs(1));
    m.handle_chat(t3, a, "three", Addressing::default())
        .unwrap();
    assert!(matches!(m.poll_output(), Some(Output::Commit(c)) if c.events.len() == 1));
}

#[test]
fn larger_meetings_batch_over_longer_ticks() {
    let t = Instant::now();
    let config = MeetingConfig {
        tick_people: 3,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("m1").unwrap(), config.clone(), t);
    let tick = |m: &Meeting| m.tick().as_millis();
    assert_eq!(tick(&m), 25);
    for (i, expected) in [25, 25, 50, 50, 50, 75, 75, 75, 100, 100, 100, 100, 100]
        .into_iter()
        .enumerate()
    {
        join(&mut m, t, &format!("p{i}"), Role::Attendee);
        assert_eq!(tick(&m), expected, "{} people", i + 1);
    }
    // What the tick says is when a held-back batch goes.
    let t1 = t + Duration::from_secs(10);
    m.handle_timeout(t1);
    let _ = drain(&mut m);
    let a = join(&mut m, t1, "talker", Role::Panelist);
    let _ = std::iter::from_fn(|| m.poll_output()).count();
    m.handle_chat(t1, a, "held", Addressing::default()).unwrap();
    assert_eq!(
        m.poll_timeout(),
        Some((t1 + config.max_tick, Reason::Flush))
    );
}

#[test]
fn a_full_batch_goes_before_its_tick_ends() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Panelist);
    let _ = std::iter::from_fn(|| m.poll_output()).count();
    // A burst within one tick: the batch goes each time it is full, the rest at the tick.
    // Each chat is an event and a change (its place in the history).
    let max = MeetingConfig::default().max_batch;
    let t1 = clock.advance(Duration::from_millis(1));
    let mut commits = Vec::new();
    for i in 0..(max + 5) {
        m.handle_chat(t1, a, &format!("{i}"), Addressing::default())
            .unwrap();
        commits.extend(std::iter::from_fn(|| m.poll_output()));
    }
    assert_eq!(commits.len(), 2);
    commits.extend(drain(&mut m));
    let sizes: Vec<usize> = commits
        .iter()
        .map(|c| match c {
            Output::Commit(c) => c.events.len() + c.changes.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(sizes, vec![max, max, 10]);
    let seqs: Vec<u64> = seq_events(&commits).iter().map(|e| e.seq.0).collect();
    assert_eq!(seqs, (2..2 + max as u64 + 5).collect::<Vec<_>>());
}

#[test]
fn an_empty_meeting_stops_after_the_idle_time() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let idle = MeetingConfig::default().idle_stop;
    assert_eq!(
        m.poll_timeout(),
        Some((t + idle, Reason::Idle)),
        "never joined"
    );
    let a = join(
        &mut m,
        clock.advance(Duration::from_secs(10)),
        "alice",
        Role::Host,
    );
    drain(&mut m);
    assert!(
        m.poll_timeout().is_none_or(|(_, why)| why != Reason::Idle),
        "someone is in"
    );
    let left = clock.advance(Duration::from_secs(10));
    m.handle_leave(left, a);
    drain(&mut m);
    // The count update comes first, then the idle stop.
    let mut stopped = None;
    while let Some((due, why)) = m.poll_timeout() {
        m.handle_timeout(due);
        for out in drain(&mut m) {
            if let Output::Stopped(reason) = out {
                stopped = Some((due, why, reason));
            }
        }
    }
    assert_eq!(stopped, Some((left + idle, Reason::Idle, StopReason::Idle)));
    assert!(m.is_stopped());
}

#[test]
fn a_held_meeting_waits_empty_for_the_people_expected() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let idle = MeetingConfig::default().idle_stop;
    let held = t + idle * 3;
    m.hold_until(held);
    m.hold_until(t + idle * 2);
    assert_eq!(
        m.poll_timeout(),
        Some((held, Reason::Idle)),
        "the later hold wins"
    );
    m.handle_timeout(t + idle);
    assert!(!m.is_stopped());
    m.handle_timeout(held);
    assert!(m.is_stopped());
    // Held for less than the idle time, nobody coming: it stops when they were due.
    let mut m = meeting(t);
    m.hold_until(t + idle / 2);
    assert_eq!(m.poll_timeout(), Some((t + idle / 2, Reason::Idle)));
    // Once someone came and left, the idle time runs as for any meeting.
    let a = join(&mut m, t, "alice", Role::Host);
    m.handle_leave(t, a);
    drain(&mut m);
    while let Some((due, why)) = m.poll_timeout() {
        if why == Reason::Idle {
            assert_eq!(due, t + idle);
            break;
        }
        m.handle_timeout(due);
        drain(&mut m);
    }
}

#[test]
fn an_ended_meeting_sends_its_last_events_then_stops() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let a = join(&mut m, t, "alice", Role::Host);
    m.handle_chat(t, a, "bye", Addressing::default()).unwrap();
    m.end(t);
    let out = std::iter::from_fn(|| m.poll_output()).collect::<Vec<_>>();
    assert_eq!(out.last(), Some(&Output::Stopped(StopReason::Ended)));
    assert!(events(&out).contains(&MeetingEvent::MeetingEnded));
    assert_eq!(m.poll_timeout(), None);
}

fn knock(m: &mut Meeting, now: Instant, name: &str) -> Result<ParticipantId, RoomError> {
    m.handle_join(
        now,
        JoinRequest {
            identity: name.into(),
            name: name.into(),
            role: Role::Attendee,
            permissions: Permissions {
                publish: false,
                subscribe: true,
                moderate: false,
            },
            session_token: format!("secret-{name}"),
        },
    )
}

fn waiting_rooms(outputs: &[Output]) -> Vec<myriad_proto::WaitingRoom> {
    picked(outputs, |e| match e {
        MeetingEvent::WaitingRoom { room, .. } => Some(room),
        _ => None,
    })
}

#[test]
fn the_waiting_room_holds_newcomers_until_a_host_decides() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let early = join(&mut m, t, "early", Role::Attendee);
    let by = Actor::Participant;
    assert!(matches!(
        m.handle_set_waiting_room(t, by(early), true),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_set_waiting_room(t, by(host), true).unwrap();
    assert_eq!(knock(&mut m, t, "bob"), Err(RoomError::Waiting));
    assert_eq!(knock(&mut m, t, "cy"), Err(RoomError::Waiting));
    assert_eq!(knock(&mut m, t, "dee"), Err(RoomError::Waiting));
    assert_eq!(m.count(), 2, "waiting is not being in");
    join(&mut m, t, "cohost", Role::CoHost);

    // The queue reaches everyone coalesced, with the switch first.
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    let outputs = drain(&mut m);
    // For the moderators only: others get the number, withheld.
    for e in seq_events(&outputs)
        .iter()
        .filter(|e| matches!(e.event, MeetingEvent::WaitingRoom { .. }))
    {
        assert!(e.is_for(host) && !e.is_for(early), "{e:?}");
    }
    let rooms = waiting_rooms(&outputs);
    assert_eq!(rooms.first().map(|r| (r.on, r.waiting)), Some((true, 0)));
    let room = rooms.last().unwrap().clone();
    assert_eq!(room.waiting, 3);
    let names: Vec<&str> = room.first.iter().map(|w| &w.name[..]).collect();
    assert_eq!(names, ["bob", "cy", "dee"]);
    assert_eq!(m.snapshot_for(host).waiting_room, room);
    let hidden = m.snapshot_for(early).waiting_room;
    assert_eq!(
        (hidden.on, hidden.waiting, hidden.first.len()),
        (true, 0, 0)
    );

    assert!(matches!(
        m.handle_admit(t, by(early), Some(room.first[0].ticket), true),
        Err(RoomError::Forbidden(_))
    ));
    assert_eq!(
        m.handle_admit(t, by(host), Some(999), true),
        Err(RoomError::NotWaiting)
    );
    m.handle_admit(t, by(host), Some(room.first[0].ticket), true)
        .unwrap();
    m.handle_admit(t, Actor::Api, Some(room.first[1].ticket), false)
        .unwrap();
    let bob = knock(&mut m, t, "bob").expect("let in");
    assert_eq!(knock(&mut m, t, "cy"), Err(RoomError::Denied));
    // Bob leaves and comes back: let in once is let in.
    m.handle_leave(t, bob);
    knock(&mut m, t, "bob").expect("back in");

    // A takeover keeps the decisions; the queue is rebuilt by the nodes asking again.
    let mut commits = Vec::new();
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    while let Some(o) = m.poll_output() {
        if let Output::Commit(c) = o {
            commits.push(c);
        }
    }
    let state = m.state();
    let mut restored = Meeting::restore(
        m.id().clone(),
        MeetingConfig::default(),
        t,
        Some(state),
        commits,
    );
    assert_eq!(knock(&mut restored, t, "cy"), Err(RoomError::Denied));
    assert_eq!(knock(&mut restored, t, "dee"), Err(RoomError::Waiting));
    knock(&mut restored, t, "bob").expect("still let in");

    // Whoever waits when the room is switched off comes in when asking next.
    m.handle_set_waiting_room(t, Actor::Api, false).unwrap();
    knock(&mut m, t, "dee").expect("the room is off");
    assert_eq!(
        knock(&mut m, t, "cy"),
        Err(RoomError::Denied),
        "denied stays out"
    );
}

#[test]
fn a_host_admits_everyone_waiting_at_once_and_quiet_waiters_go() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    m.handle_set_waiting_room(t, Actor::Participant(host), true)
        .unwrap();
    for i in 0..100 {
        assert_eq!(knock(&mut m, t, &format!("w{i}")), Err(RoomError::Waiting));
    }
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    let room = waiting_rooms(&drain(&mut m)).pop().unwrap();
    assert_eq!(
        (room.waiting, room.first.len()),
        (100, 50),
        "the earliest 50 shown"
    );
    // Half of them keep asking; the others' connections went.
    let t = clock.advance(Duration::from_secs(3));
    for i in 0..50 {
        assert_eq!(knock(&mut m, t, &format!("w{i}")), Err(RoomError::Waiting));
    }
    let (due, why) = m.poll_timeout().unwrap();
    assert_eq!(why, Reason::WaiterExpiry);
    m.handle_timeout(clock.advance(due - t));
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    assert_eq!(waiting_rooms(&drain(&mut m)).pop().unwrap().waiting, 50);
    m.handle_admit(t, Actor::Participant(host), None, true)
        .unwrap();
    for i in 0..50 {
        knock(&mut m, t, &format!("w{i}")).expect("everyone let in");
    }
    assert_eq!(m.count(), 51);
}

fn breakouts_of(outputs: &[Output]) -> Vec<myriad_proto::Breakouts> {
    picked(outputs, |e| match e {
        MeetingEvent::Breakouts { breakouts } => Some(breakouts),
        _ => None,
    })
}

#[test]
fn breakout_rooms_are_assigned_opened_spoken_to_and_called_back() {
    use myriad_proto::BreakoutOp;
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let people = join_many(&mut m, t, "a", 5, Role::Attendee);
    let by = Actor::Participant;
    assert!(matches!(
        m.handle_breakouts(t, by(people[0]), BreakoutOp::Create { count: 2 }),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_breakouts(t, by(host), BreakoutOp::Create { count: 2 })
        .unwrap();
    m.handle_breakouts(t, by(host), BreakoutOp::AutoAssign)
        .unwrap();
    let unknown = BreakoutOp::Assign {
        participant: ParticipantId(99),
        room: Some(1),
    };
    assert_eq!(
        m.handle_breakouts(t, by(host), unknown),
        Err(RoomError::UnknownParticipant)
    );
    let by_hand = BreakoutOp::Assign {
        participant: people[1],
        room: Some(1),
    };
    m.handle_breakouts(t, by(host), by_hand).unwrap();
    assert!(
        breakouts_of(&drain(&mut m)).is_empty(),
        "assignments wait for the count interval"
    );
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    let b = breakouts_of(&drain(&mut m))
        .pop()
        .expect("one coalesced update");
    assert!(!b.open);
    assert_eq!(b.rooms.len(), 2);
    assert_eq!(
        b.rooms[0].assigned,
        [people[0], people[1], people[2], people[4]]
    );
    assert_eq!(b.rooms[1].assigned, [people[3]]);
    assert_eq!(b.rooms[1].meeting.as_str(), "m1_br2");
    assert!(
        !b.rooms.iter().any(|r| r.assigned.contains(&host)),
        "hosts float"
    );

    assert!(m.breakout_pass(people[0], None).is_err(), "not open yet");
    let open = BreakoutOp::Open {
        minutes: Some(5),
        choose: false,
    };
    m.handle_breakouts(t, by(host), open).unwrap();
    let b = breakouts_of(&drain(&mut m))
        .pop()
        .expect("opening goes at once");
    assert!(b.open);
    assert_eq!(b.remaining_s, Some(300));
    let (room, meeting, moderates) = m.breakout_pass(people[3], None).unwrap();
    assert_eq!((room, meeting.as_str(), moderates), (2, "m1_br2", false));
    assert!(matches!(
        m.breakout_pass(people[3], Some(1)),
        Err(RoomError::Forbidden(_))
    ));
    assert!(m.breakout_pass(host, Some(1)).unwrap().2);
    assert!(m.snapshot_for(host).breakouts.open);

    let words = BreakoutOp::Broadcast {
        text: "  Two minutes left  ".into(),
    };
    m.handle_breakouts(t, by(host), words).unwrap();
    let said = events(&drain(&mut m));
    assert!(said.contains(&MeetingEvent::Broadcast {
        from: "host".into(),
        text: "Two minutes left".into()
    }));
    let empty = BreakoutOp::Broadcast { text: " ".into() };
    assert!(m.handle_breakouts(t, by(host), empty).is_err());

    // Someone leaving loses their room; a takeover keeps the rooms open.
    m.handle_leave(t, people[4]);
    let mut commits = Vec::new();
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    while let Some(o) = m.poll_output() {
        if let Output::Commit(c) = o {
            commits.push(c);
        }
    }
    let state = m.state();
    assert_eq!(state.breakouts.assigned.len(), 4);
    let restored = Meeting::restore(
        m.id().clone(),
        MeetingConfig::default(),
        t,
        Some(state),
        commits,
    );
    assert_eq!(restored.breakout_pass(people[3], None).unwrap().0, 2);

    // The timer calls everyone back.
    let (due, why) = m.poll_timeout().unwrap();
    assert_eq!(why, Reason::BreakoutTimer);
    assert!(due > t + Duration::from_secs(299));
    m.handle_timeout(clock.advance(Duration::from_secs(300)));
    let b = breakouts_of(&drain(&mut m)).pop().expect("called back");
    assert!(!b.open);
    assert!(m.breakout_pass(people[3], None).is_err());
}

fn pen(points: Vec<[u16; 2]>) -> myriad_proto::board::Shape {
    myriad_proto::board::Shape {
        kind: myriad_proto::board::ShapeKind::Pen,
        color: "#e5484d".into(),
        width: 3,
        points,
        text: None,
    }
}

#[test]
fn the_whiteboard_orders_shapes_and_lets_people_undo_their_own() {
    use myriad_proto::board::BoardOp;
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let ann = join(&mut m, t, "ann", Role::Panelist);
    let bob = join(&mut m, t, "bob", Role::Panelist);
    let watcher = join(&mut m, t, "watcher", Role::Attendee);
    let draw = |points| BoardOp::Draw { shape: pen(points) };
    assert!(matches!(
        m.handle_board(t, watcher, draw(vec![[0, 0]])),
        Err(RoomError::Forbidden(_))
    ));
    assert!(matches!(
        m.handle_board(t, ann, draw(vec![])),
        Err(RoomError::InvalidBoard(_))
    ));
    m.handle_board(t, ann, draw(vec![[0, 0], [10, 10]]))
        .unwrap();
    m.handle_board(t, bob, draw(vec![[5, 5]])).unwrap();
    m.handle_board(t, ann, draw(vec![[7, 7]])).unwrap();
    let (shapes, seq) = m.board();
    assert_eq!(
        shapes.iter().map(|s| (s.id, s.by)).collect::<Vec<_>>(),
        [(0, ann), (1, bob), (2, ann)]
    );
    assert_eq!(seq, m.seq());

    assert!(
        matches!(
            m.handle_board(t, ann, BoardOp::Erase { ids: vec![1] }),
            Err(RoomError::Forbidden(_))
        ),
        "not hers"
    );
    m.handle_board(t, ann, BoardOp::Undo).unwrap();
    m.handle_board(t, bob, BoardOp::Erase { ids: vec![1, 42] })
        .unwrap();
    assert!(matches!(
        m.handle_board(t, ann, BoardOp::Clear),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_board(t, host, draw(vec![[1, 1]])).unwrap();
    let outputs = drain(&mut m);
    let evs = events(&outputs);
    let board_events: Vec<String> = evs
        .iter()
        .filter_map(|e| match e {
            MeetingEvent::Drawn { shape } => Some(format!("drawn {}", shape.id)),
            MeetingEvent::Erased { ids } => Some(format!("erased {ids:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        board_events,
        [
            "drawn 0",
            "drawn 1",
            "drawn 2",
            "erased [2]",
            "erased [1]",
            "drawn 3"
        ]
    );

    // A takeover keeps the board and goes on numbering after the last shape drawn.
    let mut commits: Vec<Commit> = outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Commit(c) => Some(c),
            _ => None,
        })
        .collect();
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    while let Some(o) = m.poll_output() {
        if let Output::Commit(c) = o {
            commits.push(c);
        }
    }
    let mut restored = Meeting::restore(m.id().clone(), MeetingConfig::default(), t, None, commits);
    assert_eq!(restored.board().0, m.board().0);
    restored.handle_board(t, bob, draw(vec![[2, 2]])).unwrap();
    assert_eq!(restored.board().0.last().map(|s| s.id), Some(4));
    m.handle_board(t, host, BoardOp::Clear).unwrap();
    assert!(m.board().0.is_empty());
    assert!(events(&drain(&mut m)).contains(&MeetingEvent::BoardCleared));
}

#[test]
fn a_full_whiteboard_refuses_more_until_erased() {
    use myriad_proto::board::BoardOp;
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let ann = join(&mut m, t, "ann", Role::Panelist);
    for _ in 0..20 {
        m.handle_board(
            t,
            ann,
            BoardOp::Draw {
                shape: pen(vec![[3, 3]; 2000]),
            },
        )
        .unwrap();
    }
    assert!(matches!(
        m.handle_board(
            t,
            ann,
            BoardOp::Draw {
                shape: pen(vec![[3, 3]])
            }
        ),
        Err(RoomError::InvalidBoard(_))
    ));
    m.handle_board(t, ann, BoardOp::Undo).unwrap();
    m.handle_board(
        t,
        ann,
        BoardOp::Draw {
            shape: pen(vec![[3, 3]]),
        },
    )
    .unwrap();
}

#[test]
fn a_message_to_the_hosts_reaches_them_and_its_sender_only() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let co = join(&mut m, t, "co", Role::CoHost);
    let ann = join(&mut m, t, "ann", Role::Attendee);
    let bob = join(&mut m, t, "bob", Role::Attendee);
    drain(&mut m);
    let to_hosts = Addressing {
        to_hosts: true,
        mentions: Vec::new(),
    };
    m.handle_chat(t, ann, "a private question", to_hosts.clone())
        .unwrap();
    m.handle_chat(t, bob, "hello all", Addressing::default())
        .unwrap();
    let sent = seq_events(&drain(&mut m));
    let private = sent.iter().find(|e| e.is_private()).unwrap().clone();
    let MeetingEvent::Chat { only, .. } = &private.event else {
        panic!("{private:?}");
    };
    assert_eq!(only, &[host, co, ann]);
    assert_eq!(private.seen_by(co), private);
    assert_eq!(private.seen_by(ann), private);
    assert_eq!(private.seen_by(bob).event, MeetingEvent::Withheld);
    assert_eq!(private.seen_by(bob).seq, private.seq, "the number is kept");

    // Resumed, snapshots and history: the same.
    let missed = m.events_for(Seq(0), bob).unwrap();
    assert!(missed.iter().all(|e| !e.is_private()));
    assert!(missed.iter().any(|e| e.event == MeetingEvent::Withheld));
    let texts = |msgs: Vec<myriad_proto::ChatMessage>| -> Vec<String> {
        msgs.into_iter().map(|c| c.text).collect()
    };
    assert_eq!(texts(m.snapshot_for(bob).chat), ["hello all"]);
    assert_eq!(
        texts(m.snapshot_for(ann).chat),
        ["a private question", "hello all"]
    );
    assert_eq!(
        texts(m.chat_history(u64::MAX, 50, Some(bob))),
        ["hello all"]
    );
    assert_eq!(texts(m.chat_history(u64::MAX, 50, Some(co))).len(), 2);
    // A host made later reads what was sent to the hosts.
    m.handle_set_role(t, Actor::Api, bob, Role::CoHost).unwrap();
    assert_eq!(texts(m.snapshot_for(bob).chat).len(), 2);

    // With chat to everyone off, attendees may still write to the hosts, unless that is off.
    let mut audience = myriad_proto::Audience {
        chat: false,
        ..Default::default()
    };
    m.handle_set_audience(t, Actor::Api, audience).unwrap();
    assert!(matches!(
        m.handle_chat(t, ann, "all?", Addressing::default()),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_chat(t, ann, "hosts?", to_hosts.clone()).unwrap();
    audience.chat_hosts = false;
    m.handle_set_audience(t, Actor::Api, audience).unwrap();
    assert!(matches!(
        m.handle_chat(t, ann, "hosts?", to_hosts),
        Err(RoomError::Forbidden(_))
    ));
    let _ = clock.advance(Duration::from_secs(1));
}

#[test]
fn the_spotlight_and_a_hosts_mention_come_first_in_everyones_video() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let pans = join_many(&mut m, t, "p", 12, Role::Panelist);
    let cams: Vec<_> = pans
        .iter()
        .map(|p| m.handle_publish(t, *p, TrackSource::Camera, None).unwrap())
        .collect();
    assert_eq!(m.plan().video.len(), 9, "last-N");
    assert!(!m.plan().video.contains(&cams[11]));
    assert!(matches!(
        m.handle_spotlight(t, Actor::Participant(pans[0]), Some(pans[11])),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_spotlight(t, Actor::Participant(host), Some(pans[11]))
        .unwrap();
    assert_eq!(m.plan().video[0], cams[11]);
    assert_eq!(m.snapshot_for(host).spotlight, Some(pans[11]));

    // A panelist's mention features nobody; a host's features for `mention_for`.
    let mention = |p| Addressing {
        to_hosts: false,
        mentions: vec![p, ParticipantId(999)],
    };
    m.handle_chat(t, pans[1], "see @p10", mention(pans[10]))
        .unwrap();
    assert!(!m.plan().video.contains(&cams[10]));
    m.handle_chat(t, host, "over to @p10", mention(pans[10]))
        .unwrap();
    assert_eq!(&m.plan().video[..2], &[cams[11], cams[10]]);
    let evs = events(&drain(&mut m));
    assert!(evs.contains(&MeetingEvent::Featured {
        spotlight: Some(pans[11]),
        mentioned: vec![pans[10]],
    }));
    let chat_mentions: Vec<Vec<ParticipantId>> = evs
        .iter()
        .filter_map(|e| match e {
            MeetingEvent::Chat { mentions, .. } => Some(mentions.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        chat_mentions,
        [vec![pans[10]], vec![pans[10]]],
        "unknown ids dropped"
    );

    m.handle_timeout(clock.advance(Duration::from_millis(300)));
    drain(&mut m);
    let (due, why) = m.poll_timeout().unwrap();
    assert_eq!(why, Reason::MentionExpiry);
    assert_eq!(due, t + MeetingConfig::default().mention_for);
    m.handle_timeout(clock.advance(Duration::from_secs(30)));
    assert!(!m.plan().video.contains(&cams[10]), "the mention ran out");
    m.handle_leave(t, pans[11]);
    assert_eq!(m.snapshot_for(host).spotlight, None, "gone with its person");
}

#[test]
fn only_a_host_sets_the_default_role_and_never_to_a_host() {
    let t = VirtualClock::new().now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let co = join(&mut m, t, "co", Role::CoHost);
    assert_eq!(m.snapshot_for(host).default_role, Role::Panelist);
    assert!(matches!(
        m.handle_set_default_role(t, Actor::Participant(co), Role::Attendee),
        Err(RoomError::Forbidden(_))
    ));
    assert!(matches!(
        m.handle_set_default_role(t, Actor::Participant(host), Role::CoHost),
        Err(RoomError::Forbidden(_))
    ));
    m.handle_set_default_role(t, Actor::Participant(host), Role::Attendee)
        .unwrap();
    assert_eq!(m.snapshot_for(co).default_role, Role::Attendee);
    assert!(events(&drain(&mut m)).contains(&MeetingEvent::DefaultRole {
        role: Role::Attendee
    }));
    assert_eq!(m.state().default_role, Some(Role::Attendee));
}

#[test]
fn spam_is_held_for_the_hosts_until_one_releases_it() {
    let t = VirtualClock::new().now();
    let config = MeetingConfig {
        blocked_words: vec!["crypto".into()],
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("m1").unwrap(), config, t);
    let host = join(&mut m, t, "host", Role::Host);
    let ann = join(&mut m, t, "ann", Role::Attendee);
    let bob = join(&mut m, t, "bob", Role::Attendee);
    drain(&mut m);
    let spam = "WINNER!! You have been selected to receive a £900 prize reward! To claim call 09061701461. Claim code KL341";
    m.handle_chat(t, ann, spam, Addressing::default()).unwrap();
    m.handle_chat(t, ann, "buy crypto here", Addressing::default())
        .unwrap();
    m.handle_chat(
        t,
        bob,
        "Could you share the slides after the meeting?",
        Addressing::default(),
    )
    .unwrap();
    m.handle_chat(
        t,
        host,
        "WIN a £100 prize, call now!",
        Addressing::default(),
    )
    .unwrap();
    let sent = seq_events(&drain(&mut m));
    let flagged: Vec<(u64, Option<myriad_proto::SpamReason>, bool)> = sent
        .iter()
        .filter_map(|e| match &e.event {
            MeetingEvent::Chat { id, flagged, .. } => Some((*id, *flagged, e.seen_by(bob) == *e)),
            _ => None,
        })
        .collect();
    use myriad_proto::SpamReason::*;
    assert_eq!(
        flagged,
        [
            (1, Some(LooksLikeSpam), false),
            (2, Some(BlockedWord), false),
            (3, None, true),
            (4, None, true),
        ],
        "held ones reach the hosts and the sender only; a host is never held"
    );
    assert!(matches!(
        m.handle_release_chat(t, Actor::Participant(bob), 1),
        Err(RoomError::Forbidden(_))
    ));
    assert_eq!(
        m.handle_release_chat(t, Actor::Participant(host), 3),
        Err(RoomError::UnknownChat),
        "not held"
    );
    m.handle_release_chat(t, Actor::Participant(host), 1)
        .unwrap();
    let again = seq_events(&drain(&mut m));
    assert!(again.iter().any(|e| matches!(&e.event,
        MeetingEvent::Chat { id: 1, flagged: None, only, .. } if only.is_empty())));
    let bobs: Vec<u64> = m.snapshot_for(bob).chat.iter().map(|c| c.id).collect();
    assert_eq!(bobs, [1, 3, 4]);
}

#[test]
fn chat_messages_are_liked_once_each_and_counted_coalesced() {
    let mut clock = VirtualClock::new();
    let t = clock.now();
    let mut m = meeting(t);
    let host = join(&mut m, t, "host", Role::Host);
    let people = join_many(&mut m, t, "a", 4, Role::Attendee);
    m.handle_chat(t, host, "Welcome, everyone", Addressing::default())
        .unwrap();
    let to_hosts = Addressing {
        to_hosts: true,
        mentions: Vec::new(),
    };
    m.handle_chat(t, people[0], "a word for the hosts", to_hosts)
        .unwrap();
    drain(&mut m);
    for p in &people {
        m.handle_like_chat(t, *p, 1).unwrap();
    }
    assert_eq!(
        m.handle_like_chat(t, people[0], 1),
        Err(RoomError::AlreadyVoted)
    );
    assert_eq!(
        m.handle_like_chat(t, people[1], 2),
        Err(RoomError::UnknownChat),
        "not a message to everyone"
    );
    assert_eq!(
        m.handle_like_chat(t, people[1], 99),
        Err(RoomError::UnknownChat)
    );
    let t = clock.advance(Duration::from_millis(300));
    m.handle_timeout(t);
    let likes: Vec<myriad_proto::ChatLikes> = events(&drain(&mut m))
        .into_iter()
        .filter_map(|e| match e {
            MeetingEvent::ChatLiked { likes } => Some(likes),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        likes,
        [myriad_proto::ChatLikes { id: 1, likes: 4 }],
        "one update"
    );
    assert_eq!(m.snapshot_for(host).chat[0].likes, 4);
    // A takeover keeps who liked what.
    let mut restored = Meeting::restore(
        m.id().clone(),
        MeetingConfig::default(),
        t,
        Some(m.state()),
        [],
    );
    assert_eq!(
        restored.handle_like_chat(t, people[2], 1),
        Err(RoomError::AlreadyVoted)
    );
}
