//! The simulated bus's faults, in virtual time: what a seed decides, it decides the same way
//! every time.

use std::time::Duration;

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Faults, KvConfig, SimNet};
use tokio::time::Instant;

/// The order in which `n` messages sent 1 ms apart arrive, under `faults` and `seed`.
async fn arrival_order(seed: u64, faults: Faults, n: u8) -> Vec<u8> {
    let net = SimNet::new(seed, faults);
    let (a, b) = (net.node("a"), net.node("b"));
    let mut sub = b.subscribe("x").await.unwrap();
    for i in 0..n {
        a.publish("x", Bytes::from(vec![i])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
        got.push(m.payload[0]);
    }
    got
}

#[tokio::test(start_paused = true)]
async fn jitter_reorders_the_same_way_for_the_same_seed() {
    let faults = Faults {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(50),
        drop_rate: 0.0,
    };
    let first = arrival_order(42, faults, 100).await;
    assert_eq!(first.len(), 100, "nothing lost");
    assert_ne!(first, (0..100).collect::<Vec<u8>>(), "reordered");
    assert_eq!(
        arrival_order(42, faults, 100).await,
        first,
        "replayed exactly"
    );
    assert_ne!(
        arrival_order(43, faults, 100).await,
        first,
        "another seed, another run"
    );
    // Without jitter, one publisher's order holds.
    let steady = Faults {
        jitter: Duration::ZERO,
        ..faults
    };
    assert_eq!(
        arrival_order(42, steady, 100).await,
        (0..100).collect::<Vec<u8>>()
    );
}

#[tokio::test(start_paused = true)]
async fn latency_delays_and_loss_drops() {
    let net = SimNet::new(
        7,
        Faults {
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            drop_rate: 0.0,
        },
    );
    let (a, b) = (net.node("a"), net.node("b"));
    let mut sub = b.subscribe("x").await.unwrap();
    let sent = Instant::now();
    a.publish("x", Bytes::from_static(b"1")).await.unwrap();
    sub.next().await.unwrap();
    assert_eq!(sent.elapsed(), Duration::from_millis(20));

    net.set_faults(Faults {
        drop_rate: 0.3,
        ..Faults::NONE
    });
    for _ in 0..1000 {
        a.publish("x", Bytes::from_static(b"2")).await.unwrap();
    }
    let mut got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
        got += 1;
    }
    assert!((620..780).contains(&got), "{got} of 1000 with 30 % loss");
}

#[tokio::test(start_paused = true)]
async fn a_cut_node_neither_hears_nor_is_heard_until_healed() {
    let net = SimNet::new(1, Faults::NONE);
    let (a, b) = (net.node("a"), net.node("b"));
    let mut at_a = a.subscribe("x").await.unwrap();
    let mut at_b = b.subscribe("x").await.unwrap();
    let kv = b
        .kv(KvConfig {
            bucket: "k".into(),
            ttl: None,
        })
        .await
        .unwrap();
    let mut watch = a
        .kv(KvConfig {
            bucket: "k".into(),
            ttl: None,
        })
        .await
        .unwrap()
        .watch()
        .await
        .unwrap();

    net.cut("b");
    a.publish("x", Bytes::from_static(b"to b")).await.unwrap();
    b.publish("x", Bytes::from_static(b"from b")).await.unwrap();
    let quiet = Duration::from_millis(100);
    assert!(
        tokio::time::timeout(quiet, at_b.next()).await.is_err(),
        "nothing reaches b"
    );
    let only = tokio::time::timeout(quiet, at_a.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(only.payload, "to b", "a hears itself, not b");
    assert!(tokio::time::timeout(quiet, at_a.next()).await.is_err());
    assert!(matches!(
        kv.put("k", Bytes::new()).await,
        Err(BusError::Unavailable(_))
    ));
    assert!(matches!(
        b.request("x", Bytes::new(), quiet).await,
        Err(BusError::Unavailable(_))
    ));

    net.heal("b");
    kv.put("k", Bytes::from_static(b"v")).await.unwrap();
    assert!(tokio::time::timeout(quiet, watch.next())
        .await
        .unwrap()
        .is_some());
    b.publish("x", Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(at_a.next().await.unwrap().payload, "back");
}
