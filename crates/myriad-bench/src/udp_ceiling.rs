//! `udp-ceiling`: how many 1,200-byte datagrams per second this machine moves over loopback,
//! one thread sending and one receiving, batched (`sendmmsg`/`recvmmsg`) and one per call.
//! The forwarding benchmarks are judged against it.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::mmsg::{recv_batch, send_batch};
use crate::Report;

pub const DATAGRAM_BYTES: usize = 1200;
const BATCH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Batched,
    Single,
}

/// Datagrams per second received during `duration`.
pub fn measure(mode: Mode, duration: Duration) -> anyhow::Result<f64> {
    let rx = UdpSocket::bind("127.0.0.1:0").context("bind receiver")?;
    let tx = UdpSocket::bind("127.0.0.1:0").context("bind sender")?;
    tx.connect(rx.local_addr()?)?;
    rx.connect(tx.local_addr()?)?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let stop = Arc::new(AtomicBool::new(false));

    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || -> u64 {
            let payload = [0x5au8; DATAGRAM_BYTES];
            let batch: Vec<&[u8]> = (0..BATCH).map(|_| &payload[..]).collect();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = match mode {
                    Mode::Batched => send_batch(&tx, &batch).unwrap_or(0),
                    Mode::Single => usize::from(tx.send(&payload).is_ok()),
                };
                sent += n as u64;
            }
            sent
        })
    };

    let mut bufs = vec![vec![0u8; 2048]; 64];
    let mut received = 0u64;
    // Let the pipe fill before counting.
    let warmup = Instant::now() + Duration::from_millis(200);
    let mut start = None;
    let end = warmup + duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let n = match mode {
            Mode::Batched => recv_batch(&rx, &mut bufs).unwrap_or(0),
            Mode::Single => usize::from(rx.recv(&mut bufs[0]).is_ok()),
        };
        if now >= warmup {
            start.get_or_insert(now);
            received += n as u64;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let elapsed = start.map_or(duration, |s| s.elapsed()).as_secs_f64();
    Ok(received as f64 / elapsed.max(1e-6))
}

pub fn run(seconds: f64) -> anyhow::Result<Report> {
    let duration = Duration::from_secs_f64(seconds.clamp(0.2, 60.0));
    let pps_mmsg = measure(Mode::Batched, duration)?;
    let pps_single = measure(Mode::Single, duration)?;
    let mut report = Report::new("udp-ceiling");
    report
        .field("datagram_bytes", DATAGRAM_BYTES as u64)
        .field("seconds", duration.as_secs_f64())
        .field("pps_mmsg", pps_mmsg.round())
        .field("pps_single", pps_single.round())
        .field("gbps_mmsg", pps_mmsg * DATAGRAM_BYTES as f64 * 8.0 / 1e9);
    Ok(report)
}
