//! The semantics every backend keeps, checked on all three: in-process, simulated (without
//! faults) and NATS with JetStream (a real `nats-server -js`, which `scripts/setup --test`
//! installs; a missing server fails the test).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use myriad_bus::{
    Bus, BusError, Faults, InProcessBus, KvChange, KvConfig, LogConfig, NatsBus, SimNet,
    MAX_PAYLOAD,
};

const WAIT: Duration = Duration::from_secs(5);

async fn pub_sub(bus: &dyn Bus) {
    let mut exact = bus.subscribe("t.room.a").await.unwrap();
    let mut any_room = bus.subscribe("t.room.*").await.unwrap();
    let mut below = bus.subscribe("t.>").await.unwrap();
    for i in 0..20u8 {
        bus.publish("t.room.a", Bytes::from(vec![i])).await.unwrap();
    }
    bus.publish("t.room.b.deep", Bytes::from_static(b"deep"))
        .await
        .unwrap();
    bus.flush().await.unwrap();
    for sub in [&mut exact, &mut any_room, &mut below] {
        for i in 0..20u8 {
            let m = tokio::time::timeout(WAIT, sub.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (m.subject.as_str(), &m.payload[..]),
                ("t.room.a", &[i][..]),
                "in order"
            );
        }
    }
    let deep = tokio::time::timeout(WAIT, below.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deep.payload, "deep");
    // `t.room.*` does not reach two tokens down.
    bus.publish("t.room.c", Bytes::from_static(b"c"))
        .await
        .unwrap();
    bus.flush().await.unwrap();
    let next = tokio::time::timeout(WAIT, any_room.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.subject, "t.room.c");
    for bad in ["", "a..b", "a b", "a.*"] {
        assert!(matches!(
            bus.publish(bad, Bytes::new()).await,
            Err(BusError::InvalidName(_))
        ));
    }
    assert!(matches!(
        bus.subscribe("a.>.b").await,
        Err(BusError::InvalidName(_))
    ));
}

async fn request_reply(bus: Arc<dyn Bus>) {
    let mut service = bus.subscribe("t.svc.echo").await.unwrap();
    let responder = Arc::clone(&bus);
    let task = tokio::spawn(async move {
        while let Some(m) = service.next().await {
            let mut answer = b"re:".to_vec();
            answer.extend_from_slice(&m.payload);
            responder
                .respond(&m.reply.expect("a reply subject"), answer.into())
                .await
                .unwrap();
        }
    });
    bus.flush().await.unwrap();
    let answer = bus
        .request("t.svc.echo", Bytes::from_static(b"hi"), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, "re:hi");
    assert!(matches!(
        bus.request("t.svc.nobody", Bytes::new(), WAIT).await,
        Err(BusError::NoResponders(_))
    ));
    // Someone listens but never answers.
    let _silent = bus.subscribe("t.svc.silent").await.unwrap();
    bus.flush().await.unwrap();
    let short = Duration::from_millis(200);
    assert_eq!(
        bus.request("t.svc.silent", Bytes::new(), short).await,
        Err(BusError::Timeout(short))
    );
    task.abort();
}

async fn kv(bus: &dyn Bus, bucket: &str) {
    let kv = bus
        .kv(KvConfig {
            bucket: bucket.to_owned(),
            ttl: None,
        })
        .await
        .unwrap();
    let mut watch = kv.watch().await.unwrap();
    assert_eq!(kv.get("a").await.unwrap(), None);
    let r1 = kv.create("a", Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(
        kv.create("a", Bytes::from_static(b"x")).await,
        Err(BusError::Exists)
    );
    let got = kv.get("a").await.unwrap().unwrap();
    assert_eq!((got.value, got.revision), (Bytes::from_static(b"1"), r1));
    let r2 = kv.update("a", Bytes::from_static(b"2"), r1).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(
        kv.update("a", Bytes::from_static(b"3"), r1).await,
        Err(BusError::WrongRevision { expected: r1 }),
        "a stale writer is refused"
    );
    kv.put("b.c", Bytes::from_static(b"bc")).await.unwrap();
    let mut keys = kv.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b.c"]);
    kv.delete("a").await.unwrap();
    assert_eq!(kv.get("a").await.unwrap(), None);
    kv.create("a", Bytes::from_static(b"again")).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match tokio::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap()
        {
            KvChange::Put(e) => seen.push(format!(
                "put {}={}",
                e.key,
                String::from_utf8_lossy(&e.value)
            )),
            KvChange::Deleted { key } => seen.push(format!("del {key}")),
        }
    }
    assert_eq!(
        seen,
        ["put a=1", "put a=2", "put b.c=bc", "del a", "put a=again"]
    );
    for bad in ["", ".a", "a b", "a*"] {
        assert!(
            matches!(kv.get(bad).await, Err(BusError::InvalidName(_))),
            "{bad:?}"
        );
    }
    // Large values up to the limit pass everywhere; beyond it, a clear refusal.
    let big = Bytes::from(vec![7u8; 900 * 1024]);
    kv.put("big", big.clone()).await.unwrap();
    assert_eq!(kv.get("big").await.unwrap().unwrap().value, big);
    let too_big = Bytes::from(vec![7u8; MAX_PAYLOAD + 1]);
    assert_eq!(
        kv.put("big", too_big.clone()).await,
        Err(BusError::TooLarge {
            size: MAX_PAYLOAD + 1
        })
    );
    assert!(matches!(
        bus.publish("contract.big", too_big).await,
        Err(BusError::TooLarge { .. })
    ));
}

/// A lease: created, renewed by compare-and-set, lost when not renewed for its term.
async fn lease(bus: &dyn Bus, bucket: &str) {
    let term = Duration::from_secs(1);
    let kv = bus
        .kv(KvConfig {
            bucket: bucket.to_owned(),
            ttl: Some(term),
        })
        .await
        .unwrap();
    let mut rev = kv
        .create("holder", Bytes::from_static(b"n1"))
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(term / 2).await;
        rev = kv
            .update("holder", Bytes::from_static(b"n1"), rev)
            .await
            .unwrap();
        assert_eq!(
            kv.create("holder", Bytes::from_static(b"n2")).await,
            Err(BusError::Exists)
        );
    }
    // n1 stops renewing: within a little more than the term, n2 gets it.
    let started = tokio::time::Instant::now();
    loop {
        match kv.create("holder", Bytes::from_static(b"n2")).await {
            Ok(_) => break,
            Err(BusError::Exists) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(started.elapsed() < term * 4, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= term / 2,
        "expired early: {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            kv.update("holder", Bytes::from_static(b"n1"), rev).await,
            Err(BusError::WrongRevision { .. })
        ),
        "the old holder is fenced"
    );
}

async fn log(bus: &dyn Bus, name: &str) {
    let log = bus
        .log(LogConfig {
            name: name.to_owned(),
            subjects: format!("{name}.>"),
            max_age: Duration::from_secs(3600),
        })
        .await
        .unwrap();
    let a = format!("{name}.m1");
    let b = format!("{name}.m2");
    assert_eq!(log.last(&a).await.unwrap(), None);
    let s1 = log
        .append(&a, Bytes::from_static(b"1"), Some(0))
        .await
        .unwrap();
    let s2 = log
        .append(&b, Bytes::from_static(b"other"), None)
        .await
        .unwrap();
    let s3 = log
        .append(&a, Bytes::from_static(b"2"), Some(s1))
        .await
        .unwrap();
    assert!(s1 < s2 && s2 < s3, "one sequence over the log");
    assert_eq!(
        log.append(&a, Bytes::from_static(b"stale"), Some(s1)).await,
        Err(BusError::WrongRevision { expected: s1 }),
        "a writer that missed an append is fenced"
    );
    assert_eq!(log.last(&a).await.unwrap(), Some(s3));
    let all = log.read(&a, 0, 10).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [s1, s3]);
    assert_eq!(all[1].payload, "2");
    assert_eq!(log.read(&a, s1, 10).await.unwrap().len(), 1);
    assert_eq!(log.read(&a, 0, 1).await.unwrap().len(), 1);
    assert!(log.read(&a, s3, 10).await.unwrap().is_empty());
    log.purge(&a).await.unwrap();
    assert!(log.read(&a, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        log.read(&b, 0, 10).await.unwrap().len(),
        1,
        "other subjects stay"
    );
}

async fn all(bus: Arc<dyn Bus>, tag: &str) {
    pub_sub(bus.as_ref()).await;
    request_reply(Arc::clone(&bus)).await;
    kv(bus.as_ref(), &format!("kv_{tag}")).await;
    lease(bus.as_ref(), &format!("lease_{tag}")).await;
    log(bus.as_ref(), &format!("log_{tag}")).await;
}

#[tokio::test]
async fn in_process() {
    all(Arc::new(InProcessBus::new()), "mem").await;
}

#[tokio::test]
async fn simulated_without_faults() {
    let net = SimNet::new(1, Faults::NONE);
    all(Arc::new(net.node("n1")), "sim").await;
}

/// A real `nats-server` with JetStream, its store in a temporary directory.
struct NatsServer {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup --test installs it)");
        let up = (0..500).any(|_| {
            let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(20));
            }
            ok
        });
        assert!(up, "nats-server did not listen");
        Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nats_with_jetstream() {
    let server = NatsServer::start();
    let bus = NatsBus::connect(&server.url, "contract").await.unwrap();
    all(Arc::new(bus), "nats").await;
}
