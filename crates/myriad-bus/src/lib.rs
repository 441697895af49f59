//! The bus between myriad's nodes, behind one trait with three backends:
//!
//! - [`InProcessBus`]: one process, nothing to run (what `myriad serve` alone uses);
//! - [`NatsBus`]: NATS with JetStream (`nats-server -js`): subjects for messages, JetStream KV
//!   buckets for the registry, directory and leases, streams for durable ordered logs;
//! - [`SimNet`]: the in-process semantics with seeded faults — delay, drop, reorder, a node cut
//!   off — for deterministic simulation.
//!
//! What travels is bytes: the messages are versioned types in `myriad-proto`.
//!
//! Semantics every backend keeps (the contract tests in `tests/` run on all three):
//! - publish is at most once and unordered across publishers; one publisher's messages on
//!   one subject arrive in order (except where the simulation reorders on purpose);
//! - a request goes to one responder and fails at once when nobody listens
//!   ([`BusError::NoResponders`]);
//! - a KV bucket may expire entries ([`KvConfig::ttl`], counted from the last write): a lease
//!   is an entry written with [`Kv::create`] and renewed with [`Kv::update`] (compare-and-set on
//!   the revision), so a holder that stops renewing loses it;
//! - a log keeps messages per subject in one sequence; [`Log::append`] with an expected last
//!   sequence fails if another writer appended since (fencing).

#![allow(clippy::disallowed_methods)] // an I/O shell: timeouts and expiry read the clock

mod in_process;
mod nats;
mod sim;
pub mod subject;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

pub use in_process::InProcessBus;
pub use nats::NatsBus;
pub use sim::{Faults, SimBus, SimNet};

/// A message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
    /// Where to send the answer, for a request.
    pub reply: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    #[error("the bus is unreachable: {0}")]
    Unavailable(String),
    #[error("nobody answers on {0}")]
    NoResponders(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the key exists already")]
    Exists,
    #[error("another write came first (expected revision {expected})")]
    WrongRevision { expected: u64 },
    #[error("invalid subject or name: {0:?}")]
    InvalidName(String),
    #[error("{size} bytes is more than the bus carries in one message ({MAX_PAYLOAD})")]
    TooLarge { size: usize },
    #[error("bus error: {0}")]
    Backend(String),
}

/// Messages on the subjects a subscription asked for, until it is dropped.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Message> + Send>>,
}

impl Subscription {
    pub fn new(stream: impl Stream<Item = Message> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
        }
    }

    /// The next message; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Message> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A KV bucket: what it is called and how long its entries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    pub bucket: String,
    /// Entries expire this long after their last write (a lease's term); `None`: never.
    pub ttl: Option<Duration>,
}

/// One key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Bytes,
    /// Increases with every write to the bucket; compare-and-set compares it.
    pub revision: u64,
}

/// A change seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvChange {
    Put(Entry),
    Deleted { key: String },
}

#[async_trait::async_trait]
pub trait Kv: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Entry>, BusError>;
    /// Writes `value` only if the key holds nothing (never written, deleted or expired).
    async fn create(&self, key: &str, value: Bytes) -> Result<u64, BusError>;
    /// Writes `value` only if the key's revision is still `revision`.
    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, BusError>;
    async fn put(&self, key: &str, value: Bytes) -> Result<u64, BusError>;
    async fn delete(&self, key: &str) -> Result<(), BusError>;
    /// The keys that hold a value now.
    async fn keys(&self) -> Result<Vec<String>, BusError>;
    /// Changes to the bucket from now on (expiry is not announced: readers check terms).
    async fn watch(&self) -> Result<KvWatch, BusError>;
}

/// The changes a [`Kv::watch`] sees, until dropped.
pub struct KvWatch {
    inner: Pin<Box<dyn Stream<Item = KvChange> + Send>>,
}

impl KvWatch {
    pub fn new(stream: impl Stream<Item = KvChange> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
        }
    }

    pub async fn next(&mut self) -> Option<KvChange> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

/// An ordered durable log: one sequence over all its subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub name: String,
    /// The subjects it keeps (a pattern, e.g. `myriad.events.>`).
    pub subjects: String,
    /// Messages older than this are dropped.
    pub max_age: Duration,
}

/// A message kept in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its place in the log's sequence (from 1).
    pub seq: u64,
    pub payload: Bytes,
}

#[async_trait::async_trait]
pub trait Log: Send + Sync {
    /// Appends to `subject`; with `expected_last`, only if the last message on that subject
    /// is still the one at that sequence (0: there is none). Returns the new message's sequence.
    async fn append(
        &self,
        subject: &str,
        payload: Bytes,
        expected_last: Option<u64>,
    ) -> Result<u64, BusError>;
    /// Up to `max` messages of `subject` after sequence `after`, in order.
    async fn read(&self, subject: &str, after: u64, max: usize) -> Result<Vec<Stored>, BusError>;
    /// The sequence of the last message on `subject`.
    async fn last(&self, subject: &str) -> Result<Option<u64>, BusError>;
    /// Drops every message of `subject`.
    async fn purge(&self, subject: &str) -> Result<(), BusError>;
}

#[async_trait::async_trait]
pub trait Bus: Send + Sync {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError>;
    /// Sends `payload` to one subscriber of `subject` and waits for its answer.
    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError>;
    /// Answers a request (`Message::reply`).
    async fn respond(&self, reply: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish(reply, payload).await
    }
    /// Opens (or creates) a KV bucket.
    async fn kv(&self, config: KvConfig) -> Result<Arc<dyn Kv>, BusError>;
    /// Opens (or creates) a log.
    async fn log(&self, config: LogConfig) -> Result<Arc<dyn Log>, BusError>;
    /// Returns once what was published so far has left this process.
    async fn flush(&self) -> Result<(), BusError>;
}

/// The largest message, KV value or log entry the bus carries: NATS's default `max_payload`
/// (headers and subject included there, so a little less in fact), kept by every backend so
/// that what works in-process works on NATS.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

fn check_payload(payload: &[u8]) -> Result<(), BusError> {
    if payload.len() <= MAX_PAYLOAD {
        Ok(())
    } else {
        Err(BusError::TooLarge {
            size: payload.len(),
        })
    }
}

fn check_subject(subject: &str) -> Result<(), BusError> {
    if subject::valid_subject(subject) {
        Ok(())
    } else {
        Err(BusError::InvalidName(subject.to_owned()))
    }
}

fn check_pattern(pattern: &str) -> Result<(), BusError> {
    if subject::valid_pattern(pattern) {
        Ok(())
    } else {
        Err(BusError::InvalidName(pattern.to_owned()))
    }
}

/// KV keys and bucket names: NATS allows `[-/_=.a-zA-Z0-9]`; we keep to tokens joined by `.`.
fn check_key(key: &str) -> Result<(), BusError> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidName(key.to_owned()))
    }
}

fn check_name(name: &str) -> Result<(), BusError> {
    if subject::valid_token(name) {
        Ok(())
    } else {
        Err(BusError::InvalidName(name.to_owned()))
    }
}
