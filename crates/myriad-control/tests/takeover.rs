//! A meeting outlives the node coordinating it: cut that node off the bus and another takes
//! the lease once its term is over, rebuilds the meeting from the journal, and goes on with
//! the same participants and the same sequence; the old coordinator, fenced, adds nothing.
//! Real time (the lease's term is 2 s), nodes on the simulated bus.

#![allow(clippy::disallowed_methods)] // a real-time test of real timers

use std::sync::Arc;
use std::time::{Duration, Instant};

use myriad_auth::ApiKey;
use myriad_bus::{Bus, Faults, SimNet};
use myriad_control::{Control, ControlConfig, Directory, PlannerConfig};

use myriad_proto::bus::decode;
use myriad_proto::meeting::{broadcast_subject, ConnRef, Joiner, MeetingBroadcast};
use myriad_proto::{MeetingEvent, MeetingId, Role, Seq};
use myriad_store::MeetingSettings;

async fn control(net: &SimNet, node: &str) -> Arc<Control> {
    let bus: Arc<dyn Bus> = Arc::new(net.node(node));
    let directory = Directory::shared(bus.as_ref()).await.unwrap();
    Control::start(
        directory,
        ApiKey::new("MKtest", "secret"),
        bus,
        ControlConfig {
            dev_mode: false,
            node: node.to_owned(),
            partitions: PlannerConfig::default(),
        },
    )
    .await
    .unwrap()
}

fn joiner(name: &str) -> Joiner {
    Joiner {
        identity: name.into(),
        name: name.into(),
        role: Role::Panelist,
        publish: true,
        subscribe: true,
        moderate: false,
    }
}

fn conn(node: &str, n: u64) -> ConnRef {
    ConnRef {
        node: node.into(),
        conn: n,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_the_meeting_over_and_nothing_is_lost() {
    let net = SimNet::new(7, Faults::NONE);
    let (n1, n2) = (control(&net, "n1").await, control(&net, "n2").await);
    let id = MeetingId::parse("m").unwrap();
    n1.create_meeting(Some(id.clone()), "t".into(), MeetingSettings::default())
        .await
        .unwrap();

    // An observer on a third node records every event broadcast, in order.
    let observer = net.node("watcher");
    let mut out = observer.subscribe(&broadcast_subject(&id)).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(m) = out.next().await {
            if let Ok(b) = decode::<MeetingBroadcast>(&m.payload) {
                record.lock().unwrap().push(b);
            }
        }
    });

    let c1 = n1.client(&id);
    let alice = c1
        .join(joiner("alice"), "alice-secret".into(), conn("n1", 1))
        .await
        .unwrap();
    let bob = c1
        .join(joiner("bob"), "bob-secret".into(), conn("n1", 2))
        .await
        .unwrap();
    for i in 0..5 {
        c1.chat(alice.participant, format!("before {i}"), false, Vec::new())
            .await
            .unwrap();
    }
    let last_before = seq_of_chat(&seen, "before 4").await;
    assert!(
        last_before.0 >= 7,
        "two joins and five chats: {last_before}"
    );

    // n1 is cut off. Alice's client resumes through n2: n2 waits out n1's lease, then takes
    // the meeting over.
    net.cut("n1");
    let cut_at = Instant::now();
    let c2 = n2.client(&id);
    let resumed = c2
        .resume(
            "alice".into(),
            alice.participant,
            "alice-secret".into(),
            last_before,
            conn("n2", 1),
        )
        .await
        .expect("resumed on the other node");
    let took = cut_at.elapsed();
    eprintln!("taken over and resumed {took:?} after the cut");
    assert!(took <= Duration::from_secs(5), "took over in {took:?}");
    assert_eq!(
        resumed.participant, alice.participant,
        "the same participant"
    );
    assert_eq!(resumed.seq, last_before, "nothing happened meanwhile");

    // The sequence goes on from where it was, and Bob is still in (until his session's
    // resume window closes, as nobody reported him present).
    c2.chat(alice.participant, "after".into(), false, Vec::new())
        .await
        .unwrap();
    seq_of_chat(&seen, "after").await;
    let chats: Vec<(Seq, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| match b {
            MeetingBroadcast::Events { events, .. } => Some(events.clone()),
            _ => None,
        })
        .flatten()
        .filter_map(|e| match e.event {
            MeetingEvent::Chat { text, .. } => Some((e.seq, text)),
            _ => None,
        })
        .collect();
    let after = chats
        .iter()
        .find(|(_, t)| t == "after")
        .expect("the chat after");
    assert_eq!(after.0, Seq(last_before.0 + 1), "{chats:?}");
    let mut seqs: Vec<Seq> = chats.iter().map(|(s, _)| *s).collect();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        6,
        "every chat once (after dropping replays): {chats:?}"
    );
    let (count, people) = c2.participants(None, 10).await.unwrap();
    assert_eq!(count, 2);
    assert!(people.iter().any(|p| p.id == bob.participant));
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|b| matches!(b, MeetingBroadcast::TookOver { .. })));

    // n1 comes back: its coordinator lost the lease and stopped; nothing it could still send
    // changes the meeting (its journal appends are fenced).
    net.heal("n1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (count, _) = n1.client(&id).participants(None, 10).await.unwrap();
    assert_eq!(count, 2, "n1 now asks n2's coordinator");
    // A late publish from n1's side reaches the new coordinator too.
    c1.chat(bob.participant, "from n1".into(), false, Vec::new())
        .await
        .unwrap();
    assert_eq!(seq_of_chat(&seen, "from n1").await, Seq(last_before.0 + 2));
}

/// The sequence number of the chat saying `text`, once the observer has it.
async fn seq_of_chat(seen: &std::sync::Mutex<Vec<MeetingBroadcast>>, text: &str) -> Seq {
    let started = Instant::now();
    loop {
        let found = seen.lock().unwrap().iter().find_map(|b| match b {
            MeetingBroadcast::Events { events, .. } => events.iter().find_map(|e| match &e.event {
                MeetingEvent::Chat { text: t, .. } if t == text => Some(e.seq),
                _ => None,
            }),
            _ => None,
        });
        if let Some(seq) = found {
            return seq;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no chat {text:?} seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
