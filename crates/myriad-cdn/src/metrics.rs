//! Prometheus metrics of the caching proxy, served on the admin port at `/metrics`. What
//! every request updates is counted per thread ([`Sharded`]) and summed at scrape time; the
//! rest are the `prometheus-client` types.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::sharded::Sharded;
use super::store::Store;
use super::tier::Tier;

/// How a request was answered (as `/metrics` labels it and the access log writes it).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue, serde::Serialize)]
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
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue, serde::Serialize)]
pub enum BlockReason {
    RateLimit,
    Connections,
    /// Request head over the limit (431).
    HeadTooLarge,
    /// Not HTTP the parser accepts: request line, fields, lengths, chunking (400); HTTP/2
    /// frames that break the protocol (GOAWAY).
    Malformed,
    BodyTooLarge,
    SlowBody,
    SlowHead,
    /// The client took no response data for the send timeout (the connection is closed),
    /// or held a shared fetch back for its limit (its response is cut off).
    SlowRead,
    /// An HTTP/2 connection ended (GOAWAY `ENHANCE_YOUR_CALM`) for resetting streams before
    /// they were served (rapid reset), making the edge reset too many, or a header block
    /// split into more CONTINUATION frames than its size needs.
    Http2Abuse,
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

/// Upper bounds of the latency buckets, in seconds: 0.1 ms … ~6.5 s, doubling.
const LATENCY_BOUNDS: [f64; 17] = {
    let mut bounds = [0.0001; 17];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

/// The counts every request updates, in one thread's copy.
#[derive(Default)]
struct RequestCounts {
    by_protocol: [AtomicU64; Protocol::ALL.len()],
    by_outcome: [AtomicU64; Outcome::ALL.len()],
    response_bytes: AtomicU64,
    latency: [Latency; Outcome::ALL.len()],
}

/// A latency histogram's counts: per bucket (the last one past every bound), and the sum.
#[derive(Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    fn observe(&self, seconds: f64) {
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Whole nanoseconds: an integer sum needs no lock to stay exact.
        let ns = (seconds * 1e9) as u64;
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Writes the per-thread counts, summed, as the series they stand for.
struct RequestCountsCollector(Arc<Sharded<RequestCounts>>);

impl std::fmt::Debug for RequestCountsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestCountsCollector")
    }
}

fn sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::wrapping_add)
}

impl RequestCountsCollector {
    fn total(&self, field: impl Fn(&RequestCounts) -> &AtomicU64) -> u64 {
        sum(self.0.all().map(|c| field(c).load(Ordering::Relaxed)))
    }
}

type NoExemplar = Exemplar<NoLabelSet, u64>;
type NoExemplars = HashMap<usize, Exemplar<NoLabelSet, f64>>;

impl Collector for RequestCountsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let by_outcome = Outcome::ALL
            .iter()
            .enumerate()
            .map(|(i, &outcome)| (OutcomeLabel { outcome }, self.total(|c| &c.by_outcome[i])));
        encode_series(
            &mut encoder,
            (
                "requests",
                "Requests by how they were answered.",
                MetricType::Counter,
            ),
            by_outcome,
        )?;
        let mut durations = encoder.encode_descriptor(
            "request_duration_seconds",
            "Time to the response head, by outcome.",
            None,
            MetricType::Histogram,
        )?;
        for (i, &outcome) in Outcome::ALL.iter().enumerate() {
            let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds
                .enumerate()
                .map(|(b, bound)| (bound, self.total(|c| &c.latency[i].buckets[b])))
                .collect();
            let count = sum(buckets.iter().map(|&(_, n)| n));
            let sum_s = self.total(|c| &c.latency[i].sum_ns) as f64 / 1e9;
            durations
                .encode_family(&OutcomeLabel { outcome })?
                .encode_histogram(sum_s, count, &buckets, None::<&NoExemplars>)?;
        }
        let bytes = self.total(|c| &c.response_bytes);
        encoder
            .encode_descriptor(
                "response_body_bytes",
                "Body bytes served from the cache.",
                None,
                MetricType::Counter,
            )?
            .encode_counter(&bytes, None::<&NoExemplar>)?;
        let by_protocol = Protocol::ALL.iter().enumerate().map(|(i, &protocol)| {
            (
                ProtocolLabel { protocol },
                self.total(|c| &c.by_protocol[i]),
            )
        });
        encode_series(
            &mut encoder,
            (
                "requests_by_protocol",
                "Requests by the HTTP version they came in.",
                MetricType::Counter,
            ),
            by_protocol,
        )
    }
}

/// A family of counters or gauges, one series per label.
fn encode_series<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    series: impl Iterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (label, n) in series {
        let mut metric = family.encode_family(&label)?;
        match kind {
            MetricType::Counter => metric.encode_counter(&n, None::<&NoExemplar>)?,
            _ => metric.encode_gauge(&n)?,
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: Tier,
}

/// What each storage tier holds, read at scrape time.
struct StorageCollector(Arc<Store>);

impl std::fmt::Debug for StorageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageCollector")
    }
}

impl Collector for StorageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tiers = self.0.usage();
        let families = [
            (
                (
                    "cache_bytes",
                    "Bytes held by each tier, as weighed against its capacity.",
                    MetricType::Gauge,
                ),
                tiers.iter().map(|u| (u.tier, u.bytes)).collect::<Vec<_>>(),
            ),
            (
                (
                    "cache_capacity_bytes",
                    "Each tier's configured size.",
                    MetricType::Gauge,
                ),
                tiers.iter().map(|u| (u.tier, u.capacity_bytes)).collect(),
            ),
            (
                (
                    "cache_objects",
                    "Objects held by each tier.",
                    MetricType::Gauge,
                ),
                tiers.iter().map(|u| (u.tier, u.objects)).collect(),
            ),
            (
                (
                    "cache_evictions",
                    "Objects each tier dropped, or did not admit, for want of room.",
                    MetricType::Counter,
                ),
                tiers.iter().map(|u| (u.tier, u.evicted)).collect(),
            ),
        ];
        for (descriptor, series) in families {
            let labelled = series.into_iter().map(|(tier, n)| (TierLabel { tier }, n));
            encode_series(&mut encoder, descriptor, labelled)?;
        }
        Ok(())
    }
}

pub struct Metrics {
    registry: Registry,
    per_request: Arc<Sharded<RequestCounts>>,
    upstream_fetches: Counter,
    coalesced: Counter,
    blocked: Family<ReasonLabel, Counter>,
    integrity_failures: Counter,
    unstored: Family<UnstoredLabel, Counter>,
    quic_retries: Counter,
    tunnels_open: Gauge,
    tunnels_idle_closed: Counter,
    access_log_dropped: Counter,
}

impl Metrics {
    /// The metrics of an edge whose storage is `store`.
    pub fn new(store: Arc<Store>) -> Self {
        let mut registry = Registry::with_prefix("myriad_edge");
        let per_request = Arc::new(Sharded::default());
        registry.register_collector(Box::new(RequestCountsCollector(per_request.clone())));
        registry.register_collector(Box::new(StorageCollector(store)));
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
        let quic_retries = Counter::default();
        registry.register(
            "quic_retries",
            "QUIC clients asked to prove their address (Retry) before a handshake",
            quic_retries.clone(),
        );
        let tunnels_open = Gauge::default();
        registry.register(
            "websocket_tunnels",
            "WebSocket tunnels open",
            tunnels_open.clone(),
        );
        let tunnels_idle_closed = Counter::default();
        registry.register(
            "websocket_tunnels_idle_closed",
            "WebSocket tunnels closed after the idle timeout with nothing moving",
            tunnels_idle_closed.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_lines_dropped",
            "Access log lines lost because the writer fell behind",
            access_log_dropped.clone(),
        );
        Self {
            access_log_dropped,
            integrity_failures,
            registry,
            per_request,
            upstream_fetches,
            coalesced,
            blocked,
            unstored,
            quic_retries,
            tunnels_open,
            tunnels_idle_closed,
        }
    }

    pub fn request_in(&self, protocol: Protocol) {
        let counts = self.per_request.local();
        counts.by_protocol[protocol as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn answered(&self, outcome: Outcome, seconds: f64) {
        let counts = self.per_request.local();
        counts.by_outcome[outcome as usize].fetch_add(1, Ordering::Relaxed);
        counts.latency[outcome as usize].observe(seconds);
    }

    pub fn served_bytes(&self, n: u64) {
        let counts = self.per_request.local();
        counts.response_bytes.fetch_add(n, Ordering::Relaxed);
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

    pub fn tunnel_opened(&self) {
        self.tunnels_open.inc();
    }

    /// `idle`: closed by the idle timeout rather than by either side.
    pub fn tunnel_closed(&self, idle: bool) {
        self.tunnels_open.dec();
        if idle {
            self.tunnels_idle_closed.inc();
        }
    }

    /// Counts the access log's lost lines.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_index_their_own_series() {
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        let m = Metrics::new(Arc::new(Store::new(1 << 20, None)));
        m.request_in(Protocol::of(http::Version::HTTP_3));
        m.request_in(Protocol::of(http::Version::HTTP_10));
        let text = m.encode();
        assert!(text.contains("myriad_edge_requests_by_protocol_total{protocol=\"Http3\"} 1"));
        assert!(text.contains("myriad_edge_requests_by_protocol_total{protocol=\"Http1\"} 1"));
    }

    /// The same series as `prometheus-client`'s own counters and histograms would write.
    #[test]
    fn per_thread_counts_read_as_the_crates_own_series() {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

        let mut reference = Registry::with_prefix("myriad_edge");
        let requests = Family::<OutcomeLabel, Counter>::default();
        reference.register(
            "requests",
            "Requests by how they were answered",
            requests.clone(),
        );
        let durations = Family::<OutcomeLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        reference.register(
            "request_duration_seconds",
            "Time to the response head, by outcome",
            durations.clone(),
        );
        let bytes = Counter::<u64>::default();
        reference.register(
            "response_body_bytes",
            "Body bytes served from the cache",
            bytes.clone(),
        );
        let protocols = Family::<ProtocolLabel, Counter>::default();
        reference.register(
            "requests_by_protocol",
            "Requests by the HTTP version they came in",
            protocols.clone(),
        );
        // Every series present in both, as the per-thread counts always write them all.
        for &outcome in &Outcome::ALL {
            let _ = requests.get_or_create(&OutcomeLabel { outcome });
            let _ = durations.get_or_create(&OutcomeLabel { outcome });
        }
        for &protocol in &Protocol::ALL {
            let _ = protocols.get_or_create(&ProtocolLabel { protocol });
        }

        let metrics = Metrics::new(Arc::new(Store::new(1 << 20, None)));
        // Sums exact in binary, so both add them up to the same float.
        let answers = [
            (Outcome::Hit, 0.0625),
            (Outcome::Hit, 0.5),
            (Outcome::Miss, 2.0),
            (Outcome::Blocked, 0.25),
            (Outcome::Hit, 100.0),
        ];
        std::thread::scope(|s| {
            for (i, &(outcome, seconds)) in answers.iter().enumerate() {
                let metrics = &metrics;
                s.spawn(move || {
                    metrics.request_in(Protocol::ALL[i % 3]);
                    metrics.answered(outcome, seconds);
                    metrics.served_bytes(1000 + i as u64);
                });
                let label = OutcomeLabel { outcome };
                requests.get_or_create(&label).inc();
                durations.get_or_create(&label).observe(seconds);
                bytes.inc_by(1000 + i as u64);
                let protocol = Protocol::ALL[i % 3];
                protocols.get_or_create(&ProtocolLabel { protocol }).inc();
            }
        });
        let mut expected = String::new();
        prometheus_client::encoding::text::encode_registry(&mut expected, &reference)
            .expect("encodes");
        // Line by line: a family writes its series in hash order.
        let sorted = |lines: Vec<&str>| {
            let mut lines: Vec<String> = lines.into_iter().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        let expected = sorted(expected.lines().filter(|l| *l != "# EOF").collect());
        let text = metrics.encode();
        let families = [
            "myriad_edge_requests",
            "myriad_edge_request_duration_seconds",
            "myriad_edge_response_body_bytes",
        ];
        let ours = text
            .lines()
            .filter(|l| families.iter().any(|f| l.contains(f)))
            .collect();
        assert_eq!(sorted(ours), expected);
    }

    #[test]
    fn outcomes_index_their_own_series() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        let m = Metrics::new(Arc::new(Store::new(1 << 20, None)));
        m.answered(Outcome::Stale, 0.001);
        assert!(m
            .encode()
            .contains("myriad_edge_requests_total{outcome=\"Stale\"} 1"));
    }

    #[test]
    fn storage_is_read_at_scrape_time_per_tier() {
        use crate::tier::Stored;
        let store = Arc::new(Store::new(1 << 20, None));
        let m = Metrics::new(store.clone());
        let key = Store::key("h/x", "");
        store.insert("h/x", Vec::new(), key, Stored::sample(1000, &[]));
        let text = m.encode();
        let bytes = store.usage()[0].bytes;
        assert!(bytes > 1000, "{bytes}");
        for line in [
            format!("myriad_edge_cache_bytes{{tier=\"Memory\"}} {bytes}"),
            "# TYPE myriad_edge_cache_bytes gauge".to_owned(),
            "myriad_edge_cache_capacity_bytes{tier=\"Memory\"} 1048576".to_owned(),
            "myriad_edge_cache_objects{tier=\"Memory\"} 1".to_owned(),
            "# TYPE myriad_edge_cache_evictions counter".to_owned(),
            "myriad_edge_cache_evictions_total{tier=\"Memory\"} 0".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        store.invalidate("h/x");
        assert!(m
            .encode()
            .contains("myriad_edge_cache_objects{tier=\"Memory\"} 0"));
    }
}
