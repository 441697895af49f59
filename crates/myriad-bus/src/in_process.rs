//! The bus inside one process: subscriptions, KV buckets and logs in memory, with the
//! semantics of their NATS counterparts. [`crate::SimNet`] shares this broker and adds faults.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{
    check_key, check_name, check_pattern, check_payload, check_subject, subject, Bus, BusError,
    Entry, Kv, KvChange, KvConfig, KvWatch, Log, LogConfig, Message, Stored, Subscription,
};

/// Messages that may wait for one subscriber; past it, messages to it are dropped and
/// logged, as NATS does with a slow consumer.
const SUBSCRIPTION_QUEUE_LEN: usize = 65_536;

/// How the broker hands one message to one subscriber.
pub(crate) enum Delivery {
    Now,
    After(Duration),
    /// Lost on the way (the subscriber counts as there).
    Drop,
    /// The subscriber is gone (its node is cut off): it does not count as a listener.
    Absent,
}

/// Who holds a subscription (a node of the simulation; empty in one process).
struct Sub {
    pattern: String,
    owner: Arc<str>,
    tx: mpsc::Sender<Message>,
    /// Set once a full queue was logged, so a stuck subscriber costs one line.
    overflow_logged: bool,
}

#[derive(Default)]
struct Subs {
    /// Subscriptions without wildcards, by subject: the common case, found in O(1).
    exact: HashMap<String, Vec<Sub>>,
    wildcard: Vec<Sub>,
}

#[derive(Default)]
pub(crate) struct Broker {
    subs: Mutex<Subs>,
    kvs: Mutex<HashMap<String, Arc<MemKv>>>,
    logs: Mutex<HashMap<String, Arc<MemLog>>>,
    next_inbox: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Broker {
    pub(crate) fn subscribe(
        &self,
        pattern: &str,
        owner: Arc<str>,
        capacity: usize,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity);
        let sub = Sub {
            pattern: pattern.to_owned(),
            owner,
            tx,
            overflow_logged: false,
        };
        let mut subs = lock(&self.subs);
        if pattern.split('.').any(|t| t == "*" || t == ">") {
            subs.wildcard.push(sub);
        } else {
            subs.exact.entry(pattern.to_owned()).or_default().push(sub);
        }
        Subscription::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }))
    }

    /// Hands `msg` to every live subscription matching its subject, as `how` decides for
    /// each subscriber; returns how many matched.
    pub(crate) fn deliver(&self, msg: Message, mut how: impl FnMut(&str) -> Delivery) -> usize {
        let mut subs = lock(&self.subs);
        let Subs { exact, wildcard } = &mut *subs;
        let mut matched = 0;
        let mut hand = |sub: &mut Sub| {
            let delivery = how(&sub.owner);
            if !matches!(delivery, Delivery::Absent) {
                matched += 1;
            }
            match delivery {
                Delivery::Now => {
                    if sub.tx.try_send(msg.clone()).is_err()
                        && !sub.overflow_logged
                        && !sub.tx.is_closed()
                    {
                        sub.overflow_logged = true;
                        tracing::warn!(pattern = %sub.pattern, "slow subscriber: messages dropped");
                    }
                }
                Delivery::After(delay) => {
                    let tx = sub.tx.clone();
                    let msg = msg.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.try_send(msg);
                    });
                }
                Delivery::Drop | Delivery::Absent => {}
            }
        };
        if let Some(list) = exact.get_mut(&msg.subject) {
            list.retain(|s| !s.tx.is_closed());
            list.iter_mut().for_each(&mut hand);
            if list.is_empty() {
                exact.remove(&msg.subject);
            }
        }
        wildcard.retain(|s| !s.tx.is_closed());
        for sub in wildcard
            .iter_mut()
            .filter(|s| subject::matches(&s.pattern, &msg.subject))
        {
            hand(sub);
        }
        matched
    }

    pub(crate) fn inbox(&self) -> String {
        format!("_INBOX.{}", self.next_inbox.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn kv(&self, config: &KvConfig) -> Result<Arc<MemKv>, BusError> {
        check_name(&config.bucket)?;
        let mut kvs = lock(&self.kvs);
        let kv = kvs
            .entry(config.bucket.clone())
            .or_insert_with(|| Arc::new(MemKv::new(config.ttl)));
        Ok(Arc::clone(kv))
    }

    pub(crate) fn log(&self, config: &LogConfig) -> Result<Arc<MemLog>, BusError> {
        check_name(&config.name)?;
        check_pattern(&config.subjects)?;
        let mut logs = lock(&self.logs);
        let log = logs
            .entry(config.name.clone())
            .or_insert_with(|| Arc::new(MemLog::new(config)));
        Ok(Arc::clone(log))
    }
}

/// One process's bus.
#[derive(Clone, Default)]
pub struct InProcessBus {
    broker: Arc<Broker>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        check_payload(&payload)?;
        let msg = Message {
            subject: subject.to_owned(),
            payload,
            reply: None,
        };
        self.broker.deliver(msg, |_| Delivery::Now);
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        Ok(self
            .broker
            .subscribe(pattern, Arc::from(""), SUBSCRIPTION_QUEUE_LEN))
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        check_subject(subject)?;
        check_payload(&payload)?;
        let inbox = self.broker.inbox();
        let mut answers = self.broker.subscribe(&inbox, Arc::from(""), 1);
        let msg = Message {
            subject: subject.to_owned(),
            payload,
            reply: Some(inbox),
        };
        if self.broker.deliver(msg, |_| Delivery::Now) == 0 {
            return Err(BusError::NoResponders(subject.to_owned()));
        }
        match tokio::time::timeout(timeout, answers.next()).await {
            Ok(Some(answer)) => Ok(answer.payload),
            Ok(None) => Err(BusError::Unavailable("answer channel closed".into())),
            Err(_) => Err(BusError::Timeout(timeout)),
        }
    }

    async fn kv(&self, config: KvConfig) -> Result<Arc<dyn Kv>, BusError> {
        Ok(self.broker.kv(&config)?)
    }

    async fn log(&self, config: LogConfig) -> Result<Arc<dyn Log>, BusError> {
        Ok(self.broker.log(&config)?)
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }
}

struct KvState {
    entries: BTreeMap<String, (Bytes, u64, Instant)>,
    revision: u64,
    watchers: Vec<mpsc::Sender<KvChange>>,
}

/// A KV bucket in memory; entries past the bucket's term count as absent.
pub(crate) struct MemKv {
    ttl: Option<Duration>,
    state: Mutex<KvState>,
}

impl MemKv {
    fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            state: Mutex::new(KvState {
                entries: BTreeMap::new(),
                revision: 0,
                watchers: Vec::new(),
            }),
        }
    }

    fn live<'a>(&self, state: &'a KvState, key: &str) -> Option<&'a (Bytes, u64, Instant)> {
        let now = Instant::now();
        state
            .entries
            .get(key)
            .filter(|(_, _, at)| self.ttl.is_none_or(|ttl| now.duration_since(*at) < ttl))
    }

    fn write(&self, state: &mut KvState, key: &str, value: Bytes) -> u64 {
        state.revision += 1;
        let revision = state.revision;
        state
            .entries
            .insert(key.to_owned(), (value.clone(), revision, Instant::now()));
        let change = KvChange::Put(Entry {
            key: key.to_owned(),
            value,
            revision,
        });
        state
            .watchers
            .retain(|w| w.try_send(change.clone()).is_ok() || !w.is_closed());
        revision
    }
}

#[async_trait::async_trait]
impl Kv for MemKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>, BusError> {
        check_key(key)?;
        let state = lock(&self.state);
        Ok(self.live(&state, key).map(|(value, revision, _)| Entry {
            key: key.to_owned(),
            value: value.clone(),
            revision: *revision,
        }))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        check_key(key)?;
        check_payload(&value)?;
        let mut state = lock(&self.state);
        if self.live(&state, key).is_some() {
            return Err(BusError::Exists);
        }
        Ok(self.write(&mut state, key, value))
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, BusError> {
        check_key(key)?;
        check_payload(&value)?;
        let mut state = lock(&self.state);
        match self.live(&state, key) {
            Some((_, current, _)) if *current == revision => {}
            _ => return Err(BusError::WrongRevision { expected: revision }),
        }
        Ok(self.write(&mut state, key, value))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        check_key(key)?;
        check_payload(&value)?;
        let mut state = lock(&self.state);
        Ok(self.write(&mut state, key, value))
    }

    async fn delete(&self, key: &str) -> Result<(), BusError> {
        check_key(key)?;
        let mut state = lock(&self.state);
        if state.entries.remove(key).is_some() {
            state.revision += 1;
            let change = KvChange::Deleted {
                key: key.to_owned(),
            };
            state
                .watchers
                .retain(|w| w.try_send(change.clone()).is_ok() || !w.is_closed());
        }
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<String>, BusError> {
        let state = lock(&self.state);
        Ok(state
            .entries
            .keys()
            .filter(|k| self.live(&state, k).is_some())
            .cloned()
            .collect())
    }

    async fn watch(&self) -> Result<KvWatch, BusError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_QUEUE_LEN);
        lock(&self.state).watchers.push(tx);
        Ok(KvWatch::new(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        )))
    }
}

struct LogState {
    seq: u64,
    /// Per subject, in sequence order: (seq, payload, when appended).
    subjects: HashMap<String, VecDeque<(u64, Bytes, Instant)>>,
}

/// A log in memory.
pub(crate) struct MemLog {
    subjects: String,
    max_age: Duration,
    state: Mutex<LogState>,
}

impl MemLog {
    fn new(config: &LogConfig) -> Self {
        Self {
            subjects: config.subjects.clone(),
            max_age: config.max_age,
            state: Mutex::new(LogState {
                seq: 0,
                subjects: HashMap::new(),
            }),
        }
    }

    fn expire(&self, list: &mut VecDeque<(u64, Bytes, Instant)>) {
        let now = Instant::now();
        while list
            .front()
            .is_some_and(|(_, _, at)| now.duration_since(*at) >= self.max_age)
        {
            list.pop_front();
        }
    }

    fn check(&self, subject: &str) -> Result<(), BusError> {
        check_subject(subject)?;
        if subject::matches(&self.subjects, subject) {
            Ok(())
        } else {
            Err(BusError::InvalidName(format!(
                "{subject} is not in this log ({})",
                self.subjects
            )))
        }
    }
}

#[async_trait::async_trait]
impl Log for MemLog {
    async fn append(
        &self,
        subject: &str,
        payload: Bytes,
        expected_last: Option<u64>,
    ) -> Result<u64, BusError> {
        self.check(subject)?;
        check_payload(&payload)?;
        let mut state = lock(&self.state);
        let LogState { seq, subjects } = &mut *state;
        let list = subjects.entry(subject.to_owned()).or_default();
        self.expire(list);
        if let Some(expected) = expected_last {
            let last = list.back().map_or(0, |(s, _, _)| *s);
            if last != expected {
                return Err(BusError::WrongRevision { expected });
            }
        }
        *seq += 1;
        list.push_back((*seq, payload, Instant::now()));
        Ok(*seq)
    }

    async fn read(&self, subject: &str, after: u64, max: usize) -> Result<Vec<Stored>, BusError> {
        self.check(subject)?;
        let mut state = lock(&self.state);
        let Some(list) = state.subjects.get_mut(subject) else {
            return Ok(Vec::new());
        };
        self.expire(list);
        let start = list.partition_point(|(s, _, _)| *s <= after);
        Ok(list
            .iter()
            .skip(start)
            .take(max)
            .map(|(seq, payload, _)| Stored {
                seq: *seq,
                payload: payload.clone(),
            })
            .collect())
    }

    async fn last(&self, subject: &str) -> Result<Option<u64>, BusError> {
        self.check(subject)?;
        let mut state = lock(&self.state);
        Ok(state.subjects.get_mut(subject).and_then(|list| {
            self.expire(list);
            list.back().map(|(s, _, _)| *s)
        }))
    }

    async fn purge(&self, subject: &str) -> Result<(), BusError> {
        self.check(subject)?;
        lock(&self.state).subjects.remove(subject);
        Ok(())
    }
}
