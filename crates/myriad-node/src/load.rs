//! What this node carries, for its announcements in the registry: participants and meetings
//! (counted by its links), its CPU time, and the media it sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::histogram::Histogram;

use myriad_proto::cluster::NodeInfo;
use myriad_sfu::Media;

use crate::NodeConfig;

/// The shortest interval a CPU and egress reading is made over.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) struct Load {
    /// Participants bound to a connection on this node.
    pub participants: AtomicI64,
    /// Meetings with a link on this node.
    pub meetings: AtomicI64,
    /// The last reading: when, CPU seconds used, bytes sent.
    last: Mutex<Option<(Instant, f64, u64)>>,
    /// How late event batches arrive (its clones share the counts).
    event_lag: Histogram,
    /// It was asked to stop and lets its people finish.
    pub draining: AtomicBool,
    /// Cores busy, and bits per second sent, over the last interval measured.
    last_rates: Mutex<(f32, u64)>,
    /// Round-trip samples clients reported (`POST /api/v1/route/rtt`).
    pub rtt_samples: AtomicU64,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            participants: AtomicI64::new(0),
            meetings: AtomicI64::new(0),
            last: Mutex::new(None),
            event_lag: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            draining: AtomicBool::new(false),
            last_rates: Mutex::new((0.0, 0)),
            rtt_samples: AtomicU64::new(0),
        }
    }
}

impl Load {
    /// A batch the coordinator sent at `sent_unix_ms` arrived now.
    pub(crate) fn event_lag(&self, sent_unix_ms: u64) {
        if sent_unix_ms == 0 {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.event_lag
            .observe(now_ms.saturating_sub(sent_unix_ms) as f64 / 1000.0);
    }

    pub(crate) fn event_lag_histogram(&self) -> Histogram {
        self.event_lag.clone()
    }

    /// This node's announcement: who, where, and how loaded since the last one.
    pub(crate) fn announcement(&self, config: &NodeConfig, media: Option<&Media>) -> NodeInfo {
        let now = Instant::now();
        let cpu_s = process_cpu_seconds().unwrap_or(0.0);
        let sent = media.map_or(0, |m| m.totals().bytes_sent);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut rates = self.last_rates.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            // CPU time is counted in 10 ms ticks: over a shorter interval one tick would read
            // as several cores busy (the registry asks twice at start). Such a reading keeps
            // the last rates.
            Some((at, _, _)) if now.saturating_duration_since(at) < MIN_INTERVAL => {}
            Some((at, cpu_before, sent_before)) => {
                let secs = now.duration_since(at).as_secs_f64();
                *rates = (
                    ((cpu_s - cpu_before) / secs) as f32,
                    ((sent.saturating_sub(sent_before)) as f64 * 8.0 / secs) as u64,
                );
                *last = Some((now, cpu_s, sent));
            }
            None => *last = Some((now, cpu_s, sent)),
        }
        let (cpu, egress_bps) = *rates;
        drop((last, rates));
        NodeInfo {
            name: config.name.clone(),
            region: config.region.clone(),
            url: config.url.clone(),
            relays: match (media, config.relay_ip) {
                (Some(m), Some(ip)) => m
                    .relay_addrs()
                    .into_iter()
                    .map(|a| SocketAddr::new(ip, a.port()).to_string())
                    .collect(),
                _ => Vec::new(),
            },
            media: media.is_some(),
            workers: media.map_or(0, Media::count),
            capacity: config.capacity,
            participants: self.participants.load(Ordering::Relaxed).max(0) as u32,
            partitions: self.meetings.load(Ordering::Relaxed).max(0) as u32,
            cpu,
            egress_bps,
            draining: self.draining.load(Ordering::Relaxed),
            addrs: config.addrs.clone(),
            location: config.location,
        }
    }

    /// Cores busy over the last announcement's interval.
    pub(crate) fn cpu(&self) -> f32 {
        self.last_rates.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// CPU seconds this process used (user and system), from `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, which may hold spaces): fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports these in USER_HZ, 100 on Linux.
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_moments_apart_do_not_read_one_cpu_tick_as_many_cores() {
        let config = NodeConfig {
            name: "n".into(),
            region: "r".into(),
            url: "http://n".into(),
            capacity: 10,
            relay_ip: None,
            addrs: Vec::new(),
            location: None,
            geo: std::sync::Arc::new(myriad_geo::Geo::new(None, Vec::new()).unwrap()),
            turn: None,
            trusted_proxies: Vec::new(),
        };
        let load = Load::default();
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f32);
        // Busy on one core, asked every millisecond: CPU time moves in 10 ms ticks, so a
        // reading over one millisecond would say ten cores.
        let start = Instant::now();
        let mut spin = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(750) {
            let burst = Instant::now();
            while burst.elapsed() < std::time::Duration::from_millis(1) {
                spin = spin.wrapping_add(1);
            }
            let cpu = load.announcement(&config, None).cpu;
            assert!(cpu <= cores + 0.5, "{cpu} cores busy of {cores}");
        }
        assert!(spin > 0);
        assert!(load.cpu() > 0.3, "one core was busy: {}", load.cpu());
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert!(spin > 0);
        assert!(process_cpu_seconds().is_some_and(|s| s > 0.0));
    }
}
