//! The bus of a simulation: the in-process broker, reached by many nodes through handles
//! ([`SimBus`]), with faults drawn from one seeded generator: delay, jitter (so messages
//! overtake each other), loss, and nodes cut off from the bus. Run under tokio's paused
//! clock on one thread, a seed replays a run exactly.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use myriad_seeded::SeededRng;

use crate::in_process::{Broker, Delivery, MemKv, MemLog};
use crate::{
    check_pattern, check_payload, check_subject, Bus, BusError, Entry, Kv, KvConfig, KvWatch, Log,
    LogConfig, Message, Stored, Subscription,
};

/// What the simulated network does to messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Every message and operation takes at least this long.
    pub latency: Duration,
    /// Messages take up to this much longer, at random: later ones overtake earlier ones.
    pub jitter: Duration,
    /// The share of messages lost on the way to each subscriber.
    pub drop_rate: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        drop_rate: 0.0,
    };
}

struct NetState {
    rng: SeededRng,
    faults: Faults,
    /// Nodes cut off from the bus: nothing reaches them, nothing of theirs gets out.
    cut: HashSet<Arc<str>>,
}

/// The simulated network: make a handle per node with [`SimNet::node`].
#[derive(Clone)]
pub struct SimNet {
    broker: Arc<Broker>,
    state: Arc<Mutex<NetState>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimNet {
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            broker: Arc::default(),
            state: Arc::new(Mutex::new(NetState {
                rng: SeededRng::new(seed),
                faults,
                cut: HashSet::new(),
            })),
        }
    }

    /// The bus as `node` sees it.
    pub fn node(&self, node: &str) -> SimBus {
        SimBus {
            net: self.clone(),
            node: Arc::from(node),
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// Cuts `node` off the bus (a network partition, or the bus lost to it).
    pub fn cut(&self, node: &str) {
        lock(&self.state).cut.insert(Arc::from(node));
    }

    pub fn heal(&self, node: &str) {
        lock(&self.state).cut.remove(node);
    }

    pub fn is_cut(&self, node: &str) -> bool {
        lock(&self.state).cut.contains(node)
    }

    /// Sends from `from`: each subscriber gets it, late or never, as the faults say.
    fn send(&self, from: &str, msg: Message) -> usize {
        let mut state = lock(&self.state);
        if state.cut.contains(from) {
            return 0;
        }
        let NetState { rng, faults, cut } = &mut *state;
        self.broker.deliver(msg, |to| {
            // A cut-off node is gone as far as others can tell: as after its connection to
            // the bus dropped, nobody counts it as listening.
            if cut.contains(to) {
                return Delivery::Absent;
            }
            if rng.chance(faults.drop_rate) {
                return Delivery::Drop;
            }
            let delay = faults.latency + rng.duration_below(faults.jitter);
            if delay.is_zero() {
                Delivery::Now
            } else {
                Delivery::After(delay)
            }
        })
    }

    /// An operation of `node` on the bus's state: it waits out the latency, and fails if the
    /// node is cut off.
    async fn reach(&self, node: &str) -> Result<(), BusError> {
        let latency = lock(&self.state).faults.latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.is_cut(node) {
            Err(BusError::Unavailable(format!("{node} is cut off")))
        } else {
            Ok(())
        }
    }
}

/// One node's handle on the simulated bus.
#[derive(Clone)]
pub struct SimBus {
    net: SimNet,
    node: Arc<str>,
}

#[async_trait::async_trait]
impl Bus for SimBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        check_payload(&payload)?;
        let msg = Message {
            subject: subject.to_owned(),
            payload,
            reply: None,
        };
        self.net.send(&self.node, msg);
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        self.net.reach(&self.node).await?;
        Ok(self
            .net
            .broker
            .subscribe(pattern, Arc::clone(&self.node), 65_536))
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        check_subject(subject)?;
        check_payload(&payload)?;
        self.net.reach(&self.node).await?;
        let inbox = self.net.broker.inbox();
        let mut answers = self.net.broker.subscribe(&inbox, Arc::clone(&self.node), 1);
        let msg = Message {
            subject: subject.to_owned(),
            payload,
            reply: Some(inbox),
        };
        if self.net.send(&self.node, msg) == 0 {
            return Err(BusError::NoResponders(subject.to_owned()));
        }
        match tokio::time::timeout(timeout, answers.next()).await {
            Ok(Some(answer)) => Ok(answer.payload),
            Ok(None) => Err(BusError::Unavailable("answer channel closed".into())),
            Err(_) => Err(BusError::Timeout(timeout)),
        }
    }

    async fn kv(&self, config: KvConfig) -> Result<Arc<dyn Kv>, BusError> {
        self.net.reach(&self.node).await?;
        Ok(Arc::new(SimKv {
            inner: self.net.broker.kv(&config)?,
            bus: self.clone(),
        }))
    }

    async fn log(&self, config: LogConfig) -> Result<Arc<dyn Log>, BusError> {
        self.net.reach(&self.node).await?;
        Ok(Arc::new(SimLog {
            inner: self.net.broker.log(&config)?,
            bus: self.clone(),
        }))
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// A bucket as one node reaches it.
struct SimKv {
    inner: Arc<MemKv>,
    bus: SimBus,
}

#[async_trait::async_trait]
impl Kv for SimKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.get(key).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.create(key, value).await
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.update(key, value, revision).await
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.put(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.delete(key).await
    }

    async fn keys(&self) -> Result<Vec<String>, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.keys().await
    }

    async fn watch(&self) -> Result<KvWatch, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        let changes = self.inner.watch().await?;
        let state = (changes, self.bus.net.clone(), Arc::clone(&self.bus.node));
        // While the node is cut off, changes pass it by.
        Ok(KvWatch::new(futures_util::stream::unfold(
            state,
            |(mut changes, net, node)| async move {
                loop {
                    let change = changes.next().await?;
                    if !net.is_cut(&node) {
                        return Some((change, (changes, net, node)));
                    }
                }
            },
        )))
    }
}

/// A log as one node reaches it.
struct SimLog {
    inner: Arc<MemLog>,
    bus: SimBus,
}

#[async_trait::async_trait]
impl Log for SimLog {
    async fn append(
        &self,
        subject: &str,
        payload: Bytes,
        expected_last: Option<u64>,
    ) -> Result<u64, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.append(subject, payload, expected_last).await
    }

    async fn read(&self, subject: &str, after: u64, max: usize) -> Result<Vec<Stored>, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.read(subject, after, max).await
    }

    async fn last(&self, subject: &str) -> Result<Option<u64>, BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.last(subject).await
    }

    async fn purge(&self, subject: &str) -> Result<(), BusError> {
        self.bus.net.reach(&self.bus.node).await?;
        self.inner.purge(subject).await
    }
}
