//! Prometheus metrics of the caching proxy, served on the admin port at `/metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a request was answered.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    Hit,
    /// Served stale (while revalidating, on error, or accepted by the client).
    Stale,
    Miss,
    /// Validated with the next hop (304 or a new copy).
    Revalidated,
    Bypass,
    /// Refused by a limit.
    Blocked,
    /// The next hop failed and nothing could stand in.
    Error,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Hit,
        Outcome::Stale,
        Outcome::Miss,
        Outcome::Revalidated,
        Outcome::Bypass,
        Outcome::Blocked,
        Outcome::Error,
    ];
}

/// The HTTP version a request came in.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Protocol {
    Http1,
    Http2,
    Http3,
}

impl Protocol {
    const ALL: [Protocol; 3] = [Protocol::Http1, Protocol::Http2, Protocol::Http3];

    pub fn of(version: http::Version) -> Self {
        match version {
            http::Version::HTTP_2 => Protocol::Http2,
            http::Version::HTTP_3 => Protocol::Http3,
            _ => Protocol::Http1,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: Protocol,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BlockReason {
    RateLimit,
    Connections,
    /// Request head over the limit (431).
    HeadTooLarge,
    /// Not HTTP the parser accepts: request line, fields, lengths, chunking (400).
    Malformed,
    BodyTooLarge,
    SlowBody,
    SlowHead,
    Signature,
    Waf,
}

/// Why a storable response was passed through instead.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Unstored {
    /// Over the per-object limit.
    TooLarge,
    /// The fetches in flight hold all the memory they may.
    Memory,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnstoredLabel {
    reason: Unstored,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: BlockReason,
}

pub struct Metrics {
    registry: Registry,
    /// The request counter and latency histogram of each outcome, resolved once: looking
    /// them up in their families per request took a lock and a hash.
    per_outcome: Vec<(Counter, Histogram)>,
    response_bytes: Counter,
    upstream_fetches: Counter,
    coalesced: Counter,
    blocked: Family<ReasonLabel, Counter>,
    integrity_failures: Counter,
    unstored: Family<UnstoredLabel, Counter>,
    quic_retries: Counter,
    /// Requests by protocol, resolved once like `per_outcome`.
    per_protocol: Vec<Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("myriad_edge");
        let requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests by how they were answered",
            requests.clone(),
        );
        let duration = Family::<OutcomeLabel, Histogram>::new_with_constructor(|| {
            // 0.1 ms … ~6.5 s
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by outcome",
            duration.clone(),
        );
        let response_bytes = Counter::default();
        registry.register(
            "response_body_bytes",
            "Body bytes served from the cache",
            response_bytes.clone(),
        );
        let upstream_fetches = Counter::default();
        registry.register(
            "upstream_fetches",
            "Requests sent to the next hop (origin or parent)",
            upstream_fetches.clone(),
        );
        let coalesced = Counter::default();
        registry.register(
            "coalesced_waits",
            "Requests that waited for another request's fetch",
            coalesced.clone(),
        );
        let blocked = Family::<ReasonLabel, Counter>::default();
        registry.register("blocked", "Requests refused by a limit", blocked.clone());
        let integrity_failures = Counter::default();
        registry.register(
            "integrity_failures",
            "Bodies that did not match their Content-Digest (never stored nor completed)",
            integrity_failures.clone(),
        );
        let unstored = Family::<UnstoredLabel, Counter>::default();
        registry.register(
            "fills_unstored",
            "Storable responses passed through without being stored, by reason",
            unstored.clone(),
        );
        let protocols = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "requests_by_protocol",
            "Requests by the HTTP version they came in",
            protocols.clone(),
        );
        let per_protocol = Protocol::ALL
            .iter()
            .map(|&protocol| protocols.get_or_create(&ProtocolLabel { protocol }).clone())
            .collect();
        let quic_retries = Counter::default();
        registry.register(
            "quic_retries",
            "QUIC clients asked to prove their address (Retry) before a handshake",
            quic_retries.clone(),
        );
        let per_outcome = Outcome::ALL
            .iter()
            .map(|&outcome| {
                let label = OutcomeLabel { outcome };
                let count = requests.get_or_create(&label).clone();
                let time = duration.get_or_create(&label).clone();
                (count, time)
            })
            .collect();
        Self {
            integrity_failures,
            registry,
            per_outcome,
            response_bytes,
            upstream_fetches,
            coalesced,
            blocked,
            unstored,
            quic_retries,
            per_protocol,
        }
    }

    pub fn request_in(&self, protocol: Protocol) {
        if let Some(count) = self.per_protocol.get(protocol as usize) {
            count.inc();
        }
    }

    pub fn answered(&self, outcome: Outcome, seconds: f64) {
        if let Some((count, time)) = self.per_outcome.get(outcome as usize) {
            count.inc();
            time.observe(seconds);
        }
    }

    pub fn served_bytes(&self, n: u64) {
        self.response_bytes.inc_by(n);
    }

    pub fn upstream_fetch(&self) {
        self.upstream_fetches.inc();
    }

    pub fn coalesced(&self) {
        self.coalesced.inc();
    }

    pub fn integrity_failure(&self) {
        self.integrity_failures.inc();
    }

    pub fn quic_retry(&self) {
        self.quic_retries.inc();
    }

    pub fn fill_unstored(&self, reason: Unstored) {
        self.unstored.get_or_create(&UnstoredLabel { reason }).inc();
    }

    pub fn blocked(&self, reason: BlockReason) {
        self.blocked.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_index_their_own_series() {
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        let m = Metrics::new();
        m.request_in(Protocol::of(http::Version::HTTP_3));
        m.request_in(Protocol::of(http::Version::HTTP_10));
        let text = m.encode();
        assert!(text.contains("myriad_edge_requests_by_protocol_total{protocol=\"Http3\"} 1"));
        assert!(text.contains("myriad_edge_requests_by_protocol_total{protocol=\"Http1\"} 1"));
    }

    #[test]
    fn outcomes_index_their_own_series() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        let m = Metrics::new();
        m.answered(Outcome::Stale, 0.001);
        assert!(m
            .encode()
            .contains("myriad_edge_requests_total{outcome=\"Stale\"} 1"));
    }
}
