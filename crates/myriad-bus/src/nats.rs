//! The bus over NATS: core NATS for messages and requests, JetStream KV buckets and streams
//! for state and logs. The client reconnects by itself when the server comes back.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::{
    check_key, check_name, check_pattern, check_payload, check_subject, Bus, BusError, Entry, Kv,
    KvChange, KvConfig, KvWatch, Log, LogConfig, Message, Stored, Subscription,
};

/// A connection to a NATS server with JetStream.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
}

fn backend(e: impl std::fmt::Display) -> BusError {
    BusError::Backend(e.to_string())
}

impl NatsBus {
    /// Connects as `name` (shown in the server's connection list); keeps reconnecting for as
    /// long as the process runs.
    pub async fn connect(url: &str, name: &str) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("bus connected"),
                    async_nats::Event::Disconnected => tracing::warn!("bus disconnected"),
                    other => tracing::debug!("bus: {other}"),
                }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let js = jetstream::new(client.clone());
        Ok(Self { client, js })
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        check_payload(&payload)?;
        self.client
            .publish(subject.to_owned(), payload)
            .await
            .map_err(backend)
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        let sub = self
            .client
            .subscribe(pattern.to_owned())
            .await
            .map_err(backend)?;
        Ok(Subscription::new(sub.map(|m| Message {
            subject: m.subject.to_string(),
            payload: m.payload,
            reply: m.reply.map(|r| r.to_string()),
        })))
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        use async_nats::RequestErrorKind;
        check_subject(subject)?;
        check_payload(&payload)?;
        let asked = self.client.request(subject.to_owned(), payload);
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(answer)) => Ok(answer.payload),
            Ok(Err(e)) => Err(match e.kind() {
                RequestErrorKind::NoResponders => BusError::NoResponders(subject.to_owned()),
                RequestErrorKind::TimedOut => BusError::Timeout(timeout),
                _ => backend(e),
            }),
            Err(_) => Err(BusError::Timeout(timeout)),
        }
    }

    async fn kv(&self, config: KvConfig) -> Result<Arc<dyn Kv>, BusError> {
        check_name(&config.bucket)?;
        if self.js.get_key_value(config.bucket.clone()).await.is_err() {
            // The bucket's stream, as the KV convention lays it out. `create_key_value` would
            // first read the account's info, which async-nats 0.51 cannot parse from the
            // nats-server 2.9 of Debian 12 (it lacks the `reserved_*` fields).
            let max_age = config.ttl.unwrap_or_default();
            let created = self
                .js
                .create_stream(stream::Config {
                    name: format!("KV_{}", config.bucket),
                    subjects: vec![format!("$KV.{}.>", config.bucket)],
                    max_messages_per_subject: 1,
                    max_age,
                    // Duplicates are detected within the window; it may not outlast an entry.
                    duplicate_window: if max_age.is_zero() {
                        Duration::from_secs(120)
                    } else {
                        max_age.min(Duration::from_secs(120))
                    },
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await;
            if let Err(e) = created {
                // Another node may have made it meanwhile: fine if it can now be opened.
                tracing::debug!(bucket = %config.bucket, "bucket stream not created: {e}");
            }
        }
        let store = self
            .js
            .get_key_value(config.bucket.clone())
            .await
            .map_err(backend)?;
        Ok(Arc::new(NatsKv { store }))
    }

    async fn log(&self, config: LogConfig) -> Result<Arc<dyn Log>, BusError> {
        check_name(&config.name)?;
        check_pattern(&config.subjects)?;
        let stream = self
            .js
            .get_or_create_stream(stream::Config {
                name: config.name.clone(),
                subjects: vec![config.subjects.clone()],
                max_age: config.max_age,
                allow_direct: true,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        Ok(Arc::new(NatsLog {
            js: self.js.clone(),
            stream,
        }))
    }

    async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(backend)
    }
}

struct NatsKv {
    store: kv::Store,
}

#[async_trait::async_trait]
impl Kv for NatsKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>, BusError> {
        check_key(key)?;
        let entry = self.store.entry(key).await.map_err(backend)?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| Entry {
                key: e.key,
                value: e.value,
                revision: e.revision,
            }))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        check_key(key)?;
        check_payload(&value)?;
        self.store
            .create(key, value)
            .await
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => BusError::Exists,
                _ => backend(e),
            })
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, BusError> {
        check_key(key)?;
        check_payload(&value)?;
        self.store
            .update(key, value, revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => {
                    BusError::WrongRevision { expected: revision }
                }
                _ => backend(e),
            })
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        check_key(key)?;
        check_payload(&value)?;
        self.store.put(key, value).await.map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<(), BusError> {
        check_key(key)?;
        self.store.delete(key).await.map_err(backend)
    }

    async fn keys(&self) -> Result<Vec<String>, BusError> {
        let mut keys = self.store.keys().await.map_err(backend)?;
        let mut all = Vec::new();
        while let Some(key) = keys.next().await {
            all.push(key.map_err(backend)?);
        }
        Ok(all)
    }

    async fn watch(&self) -> Result<KvWatch, BusError> {
        let watch = self.store.watch_all().await.map_err(backend)?;
        Ok(KvWatch::new(watch.filter_map(|e| async move {
            let e = e.ok()?;
            Some(match e.operation {
                kv::Operation::Put => KvChange::Put(Entry {
                    key: e.key,
                    value: e.value,
                    revision: e.revision,
                }),
                kv::Operation::Delete | kv::Operation::Purge => KvChange::Deleted { key: e.key },
            })
        })))
    }
}

struct NatsLog {
    js: jetstream::Context,
    stream: stream::Stream,
}

#[async_trait::async_trait]
impl Log for NatsLog {
    async fn append(
        &self,
        subject: &str,
        payload: Bytes,
        expected_last: Option<u64>,
    ) -> Result<u64, BusError> {
        use async_nats::jetstream::context::PublishErrorKind;
        check_subject(subject)?;
        check_payload(&payload)?;
        let mut message = jetstream::message::PublishMessage::build().payload(payload);
        if let Some(last) = expected_last {
            message = message.expected_last_subject_sequence(last);
        }
        let refused = |e: async_nats::jetstream::context::PublishError| match e.kind() {
            PublishErrorKind::WrongLastSequence => BusError::WrongRevision {
                expected: expected_last.unwrap_or_default(),
            },
            _ => backend(e),
        };
        let ack = self
            .js
            .send_publish(subject.to_owned(), message)
            .await
            .map_err(refused)?;
        Ok(ack.await.map_err(refused)?.sequence)
    }

    async fn read(&self, subject: &str, after: u64, max: usize) -> Result<Vec<Stored>, BusError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        check_subject(subject)?;
        let mut out = Vec::new();
        let mut next = after + 1;
        while out.len() < max {
            match self
                .stream
                .direct_get_next_for_subject(subject, Some(next))
                .await
            {
                Ok(m) => {
                    next = m.sequence + 1;
                    out.push(Stored {
                        seq: m.sequence,
                        payload: m.payload,
                    });
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(out)
    }

    async fn last(&self, subject: &str) -> Result<Option<u64>, BusError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        check_subject(subject)?;
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(Some(m.sequence)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn purge(&self, subject: &str) -> Result<(), BusError> {
        check_subject(subject)?;
        self.stream
            .purge()
            .filter(subject)
            .await
            .map(|_| ())
            .map_err(backend)
    }
}
