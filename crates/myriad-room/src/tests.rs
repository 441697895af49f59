use std::time::{Duration, Instant};

use myriad_proto::{MeetingEvent, MeetingId, ParticipantId, Role, Seq, TrackSource};

use crate::*;

fn meeting() -> Meeting {
    Meeting::new(MeetingId::parse("m1").unwrap(), MeetingConfig::default())
}

fn join(m: &mut Meeting, now: Instant, name: &str, role: Role) -> ParticipantId {
    let publish = role != Role::Attendee;
    m.handle_join(
        now,
        JoinRequest {
            identity: name.into(),
            name: name.into(),
            role,
            permissions: Permissions {
                publish,
                subscribe: true,
                moderate: role == Role::Host,
            },
            session_token: format!("secret-{name}"),
        },
    )
    .unwrap()
}

fn drain(m: &mut Meeting) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn events(outputs: &[Output]) -> Vec<MeetingEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.event.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn joins_and_leaves_are_sequenced_events() {
    let t = Instant::now();
    let mut m = meeting();
    let a = join(&mut m, t, "alice", Role::Host);
    let b = join(&mut m, t, "bob", Role::Attendee);
    m.handle_leave(t, a);
    let out = drain(&mut m);
    let seqs: Vec<Seq> = out
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.seq),
            _ => None,
        })
        .collect();
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
    let t = Instant::now();
    let mut m = meeting();
    for i in 0..50 {
        join(&mut m, t, &format!("p{i}"), Role::Attendee);
    }
    drain(&mut m);
    let due = m.poll_timeout().expect("count update scheduled");
    m.handle_timeout(due);
    let ev = events(&drain(&mut m));
    assert_eq!(ev, vec![MeetingEvent::Count { count: 50 }]);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn large_meetings_do_not_broadcast_attendee_roster_changes() {
    let t = Instant::now();
    let cfg = MeetingConfig {
        roster_broadcast_max: 3,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("big").unwrap(), cfg);
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
    let t = Instant::now();
    let mut m = meeting();
    let host = join(&mut m, t, "host", Role::Host);
    let att = join(&mut m, t, "att", Role::Attendee);
    assert!(matches!(
        m.handle_publish(att, TrackSource::Camera),
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
    let t = Instant::now();
    let mut m = meeting();
    let host = join(&mut m, t, "host", Role::Host);
    let pan = join(&mut m, t, "pan", Role::Panelist);
    m.handle_publish(pan, TrackSource::Microphone).unwrap();
    m.handle_mute(Actor::Participant(host), pan, TrackSource::Microphone, true)
        .unwrap();
    assert!(m
        .handle_mute(
            Actor::Participant(host),
            pan,
            TrackSource::Microphone,
            false
        )
        .is_err());
    assert!(m.plan().audio.is_empty(), "muted audio is not forwarded");
    m.handle_mute(Actor::Participant(pan), pan, TrackSource::Microphone, false)
        .unwrap();
    assert_eq!(m.plan().audio.len(), 1);
}

#[test]
fn forwarding_follows_speakers_within_limits() {
    let t0 = Instant::now();
    let cfg = MeetingConfig {
        last_n_video: 2,
        speaker: SpeakerConfig {
            max_active: 2,
            ..SpeakerConfig::default()
        },
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("fw").unwrap(), cfg);
    let ps: Vec<ParticipantId> = (0..4)
        .map(|i| join(&mut m, t0, &format!("p{i}"), Role::Panelist))
        .collect();
    let mut mic = Vec::new();
    let mut cam = Vec::new();
    for &p in &ps {
        mic.push(m.handle_publish(p, TrackSource::Microphone).unwrap());
        cam.push(m.handle_publish(p, TrackSource::Camera).unwrap());
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
    let screen = m.handle_publish(ps[1], TrackSource::Screen).unwrap();
    assert_eq!(m.plan().video[0], screen);
    assert_eq!(m.plan().video.len(), 3);

    // A muted speaker's level is ignored.
    m.handle_mute(
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
    let t = Instant::now();
    let cfg = MeetingConfig {
        event_log_len: 4,
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(MeetingId::parse("r").unwrap(), cfg);
    let a = join(&mut m, t, "alice", Role::Host);
    let seen = m.seq();
    m.handle_disconnect(t, a);
    join(&mut m, t, "bob", Role::Host);
    drain(&mut m);

    assert_eq!(
        m.handle_resume(a, "wrong", seen),
        Err(RoomError::UnknownSession)
    );
    match m.handle_resume(a, "secret-alice", seen).unwrap() {
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
        m.handle_resume(a, "secret-alice", seen).unwrap(),
        ResumeFrom::Snapshot(s) if s.count == 12
    ));
}

#[test]
fn sessions_expire_after_the_resume_window() {
    let t = Instant::now();
    let mut m = meeting();
    let a = join(&mut m, t, "alice", Role::Host);
    m.handle_publish(a, TrackSource::Camera).unwrap();
    m.handle_disconnect(t, a);
    drain(&mut m);
    let later = t + MeetingConfig::default().resume_window;
    assert!(m.poll_timeout().unwrap() <= later);
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
    let t = Instant::now();
    let mut m = meeting();
    let a = join(&mut m, t, "alice", Role::Host);
    drain(&mut m);
    m.handle_resume(a, "secret-alice", m.seq()).unwrap();
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
    let t = Instant::now();
    let mut m = meeting();
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
    let t = Instant::now();
    let mut m = meeting();
    let a = join(&mut m, t, "alice", Role::Attendee);
    drain(&mut m);
    m.handle_chat(a, "  hello  ").unwrap();
    assert_eq!(
        events(&drain(&mut m)),
        vec![MeetingEvent::Chat {
            from: a,
            name: "alice".into(),
            text: "hello".into()
        }]
    );
    assert!(matches!(
        m.handle_chat(a, "   "),
        Err(RoomError::InvalidChat(_))
    ));
    assert!(matches!(
        m.handle_chat(a, &"x".repeat(myriad_proto::MAX_CHAT_BYTES + 1)),
        Err(RoomError::InvalidChat(_))
    ));
    assert_eq!(
        m.handle_chat(ParticipantId(99), "hi"),
        Err(RoomError::UnknownParticipant)
    );
}
