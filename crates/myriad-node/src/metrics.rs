//! The node's metrics in Prometheus' text format (`GET /metrics`): participants and meetings
//! carried, media packets and bits, relay datagrams by fate, the cluster as heard, the
//! meeting leases held here, and how late event batches arrive from their coordinators.
//! Read at scrape time from the counters the parts keep anyway.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use myriad_control::{ClusterView, Control};
use myriad_sfu::Media;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::load::Load;

pub(crate) struct NodeMetrics {
    registry: Registry,
}

impl NodeMetrics {
    pub(crate) fn new(load: Arc<Load>, media: Option<Media>, control: Arc<Control>) -> Self {
        let mut registry = Registry::with_prefix("myriad_node");
        registry.register(
            "event_lag_seconds",
            "How late event batches arrive from their coordinator (its clock against ours).",
            load.event_lag_histogram(),
        );
        registry.register_collector(Box::new(NodeCollector {
            load,
            media,
            control,
        }));
        Self { registry }
    }

    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("metrics not encoded: {e}");
        }
        text
    }
}

struct NodeCollector {
    load: Arc<Load>,
    media: Option<Media>,
    control: Arc<Control>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauge(
            e,
            "participants",
            "Participants connected to this node.",
            self.load.participants.load(Ordering::Relaxed),
        )?;
        gauge(
            e,
            "partitions",
            "Meetings this node carries people and media of.",
            self.load.meetings.load(Ordering::Relaxed),
        )?;
        let alive = self.control.cluster().alive();
        gauge(
            e,
            "cluster_nodes",
            "Nodes heard from in the last two seconds, this one included.",
            alive.len() as i64,
        )?;
        gauge(
            e,
            "leases",
            "Meetings coordinated here (their leases held).",
            self.control.coordinators_running() as i64,
        )?;
        counter(
            e,
            "route_rtt_samples",
            "Round-trip times to nodes that clients measured and reported here.",
            self.load.rtt_samples.load(Ordering::Relaxed),
        )?;
        let Some(media) = &self.media else {
            return Ok(());
        };
        gauge(
            e,
            "media_workers",
            "Media workers (one per core, each with its own UDP socket).",
            i64::from(media.count()),
        )?;
        let t = media.totals();
        let counters = [
            (
                "media_packets_sent",
                "Media datagrams sent to clients.",
                t.packets_sent,
            ),
            (
                "media_bits_sent",
                "Media bits sent to clients.",
                t.bytes_sent * 8,
            ),
            (
                "media_packets_received",
                "Media datagrams received from clients.",
                t.packets_received,
            ),
            (
                "media_bits_received",
                "Media bits received from clients.",
                t.bytes_received * 8,
            ),
            (
                "relay_sent",
                "Relay datagrams sent to other nodes.",
                t.relay_sent,
            ),
            (
                "relay_bits_sent",
                "Relay bits sent to other nodes.",
                t.relay_bytes_sent * 8,
            ),
            (
                "relay_received",
                "Relay datagrams from other nodes, opened.",
                t.relay_received,
            ),
            (
                "relay_refused",
                "Relay datagrams refused: forged, altered, cut short or played again.",
                t.relay_refused,
            ),
            (
                "relay_dropped",
                "Relay messages not sent: partition unknown, socket or sibling queue full.",
                t.relay_dropped,
            ),
            (
                "relay_sibling_sent",
                "Relay messages passed in-process to another worker of this node.",
                t.relay_sibling_sent,
            ),
            (
                "media_tcp_packets_sent",
                "Media packets sent to clients over ICE-TCP (counted in media_packets_sent too).",
                t.tcp_packets_sent,
            ),
            (
                "media_tcp_packets_received",
                "Media packets from clients over ICE-TCP (counted in media_packets_received too).",
                t.tcp_packets_received,
            ),
            (
                "media_tcp_dropped",
                "Media packets for ICE-TCP clients dropped: not read fast enough, or gone.",
                t.tcp_dropped,
            ),
        ];
        for (name, help, value) in counters {
            counter(e, name, help, value)?;
        }
        gauge(
            e,
            "relay_links",
            "Other nodes this one can relay to.",
            alive
                .iter()
                .filter(|n| n.name != media.node() && !n.relays.is_empty())
                .count() as i64,
        )?;
        Ok(())
    }
}
