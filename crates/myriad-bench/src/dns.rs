//! `dns`: myriad's GeoDNS and PowerDNS Authoritative side by side, each answering the same
//! question: which of three nodes (at addresses the GeoLite2 City database places in Berlin,
//! Kansas and Tokyo) is nearest the client subnet, among the healthy ones.
//!
//! - myriad: a cluster of three `myriad serve` nodes on a real `nats-server -js`, the first
//!   also serving DNS (`--dns`, `--geoip`), answering from its live registry.
//! - PowerDNS: a LUA record, `ifportup(443, {the three}, {selector='pickclosest'})`, with its
//!   GeoIP backend on the same database (`scripts/peers/dns` installs it; the bench writes
//!   its config in a private directory and starts and stops it).
//!
//! Both are first asked by `dig` from each subnet and must agree with the expected node;
//! then `dnsperf` loads each in turn (rounds alternate, one client subnet per round), on the
//! same machine, the same way. Last, myriad's health path both ways: a node frozen
//! (SIGSTOP) until the answer moves away, then resumed (SIGCONT) until it comes back.

use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cluster::{Cluster, ClusterOpts};
use crate::server::{cpu_seconds, TempDir};
use crate::Report;

#[derive(Debug, Clone)]
pub struct DnsArgs {
    /// Of each dnsperf run.
    pub seconds: f64,
    /// Runs of each server, alternating.
    pub rounds: usize,
    /// The GeoLite2 City database both use.
    pub geoip: PathBuf,
}

const ZONE: &str = "meet.example.org";

/// A node: its region, its address, where the database places that address, and a client
/// subnet there.
struct Site {
    region: &'static str,
    ip: &'static str,
    location: &'static str,
    subnet: &'static str,
}

const SITES: [Site; 3] = [
    Site {
        region: "eu",
        ip: "81.169.145.1",
        location: "52.5167,13.4",
        subnet: "81.169.145.0/24",
    },
    Site {
        region: "us",
        ip: "8.8.8.8",
        location: "37.751,-97.822",
        subnet: "8.8.8.0/24",
    },
    Site {
        region: "ap",
        ip: "133.242.0.1",
        location: "35.69,139.69",
        subnet: "133.242.0.0/24",
    },
];

/// What one dnsperf run reported.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    qps: f64,
    sent: u64,
    lost: u64,
    avg_latency_ms: f64,
    cpu_us_per_query: Option<f64>,
}

pub fn run(args: &DnsArgs) -> anyhow::Result<Report> {
    if !args.geoip.is_file() {
        bail!(
            "no GeoLite2 City database at {}: run scripts/peers/dns",
            args.geoip.display()
        );
    }
    let port = free_udp_port()?;
    let cluster = Cluster::start(&ClusterOpts {
        nodes: SITES.len(),
        per_node: myriad_flags(port, &args.geoip),
        ..ClusterOpts::default()
    })
    .context("starting the myriad cluster")?;
    let myriad_pid = cluster.first().pid().context("the DNS node's pid")?;
    let pdns = PowerDns::start(&args.geoip)?;

    // Both agree on every site before anything is measured.
    for site in &SITES {
        let want = [site.ip.to_owned()];
        until_answer(port, site.subnet, &want, Duration::from_secs(15))
            .with_context(|| format!("myriad's answer from {}", site.subnet))?;
        until_answer(pdns.port, site.subnet, &want, Duration::from_secs(15))
            .with_context(|| format!("PowerDNS' answer from {}", site.subnet))?;
    }

    let query_file = TempDir::new("dns-queries")?;
    let queries = query_file.0.join("queries");
    std::fs::write(&queries, format!("{ZONE} A\n"))?;
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..args.rounds.max(1) {
        let subnet = SITES[round % SITES.len()].subnet;
        mine.push(dnsperf(port, myriad_pid, subnet, &queries, args.seconds)?);
        theirs.push(dnsperf(
            pdns.port,
            pdns.child.id(),
            subnet,
            &queries,
            args.seconds,
        )?);
    }

    let (down, up) = health_both_ways(&cluster, port)?;

    let mean =
        |runs: &[Load], f: fn(&Load) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
    let cpu = |runs: &[Load]| -> Option<f64> {
        let per: Vec<f64> = runs.iter().filter_map(|l| l.cpu_us_per_query).collect();
        (per.len() == runs.len()).then(|| per.iter().sum::<f64>() / per.len() as f64)
    };
    let qps_myriad = mean(&mine, |l| l.qps);
    let qps_powerdns = mean(&theirs, |l| l.qps);
    let mut report = Report::new("dns");
    report
        .field("qps_myriad", qps_myriad.round())
        .field("qps_powerdns", qps_powerdns.round())
        .field("ratio", qps_myriad / qps_powerdns.max(f64::MIN_POSITIVE))
        .field("avg_latency_ms_myriad", mean(&mine, |l| l.avg_latency_ms))
        .field(
            "avg_latency_ms_powerdns",
            mean(&theirs, |l| l.avg_latency_ms),
        )
        .field("lost_myriad", mine.iter().map(|l| l.lost).sum::<u64>())
        .field("lost_powerdns", theirs.iter().map(|l| l.lost).sum::<u64>())
        .field("queries_myriad", mine.iter().map(|l| l.sent).sum::<u64>())
        .field(
            "queries_powerdns",
            theirs.iter().map(|l| l.sent).sum::<u64>(),
        );
    if let (Some(m), Some(p)) = (cpu(&mine), cpu(&theirs)) {
        report
            .field("cpu_us_per_query_myriad", m)
            .field("cpu_us_per_query_powerdns", p);
    }
    report
        .field("health_down_ms", down.as_millis() as u64)
        .field("health_up_ms", up.as_millis() as u64)
        .field("rounds", args.rounds.max(1) as u64)
        .field("seconds", args.seconds);
    Ok(report)
}

/// Node i is at site i; the first serves the zone.
fn myriad_flags(port: u16, geoip: &Path) -> Vec<Vec<String>> {
    SITES
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let mut flags: Vec<String> = [
                "--region",
                site.region,
                "--public-ip",
                site.ip,
                "--location",
                site.location,
            ]
            .map(str::to_owned)
            .to_vec();
            if i == 0 {
                flags.extend([
                    "--dns".to_owned(),
                    format!("127.0.0.1:{port}"),
                    "--dns-zone".to_owned(),
                    ZONE.to_owned(),
                    "--dns-answers".to_owned(),
                    "1".to_owned(),
                    // dnsperf asks from one address: the rate limit would be the test
                    // (PowerDNS runs without one too).
                    "--dns-rate-per-s".to_owned(),
                    "0".to_owned(),
                    "--geoip".to_owned(),
                    geoip.display().to_string(),
                ]);
            }
            flags
        })
        .collect()
}

/// Freezes the second node (SIGSTOP: it neither announces nor answers) until the answer from
/// its subnet names another node, then resumes it until the answer names it again.
fn health_both_ways(cluster: &Cluster, port: u16) -> anyhow::Result<(Duration, Duration)> {
    let site = &SITES[1];
    let pid = cluster.node(1).pid().context("the node's pid")?;
    let pid = libc::pid_t::try_from(pid).context("pid")?;
    // SAFETY: a process this bench started.
    if unsafe { libc::kill(pid, libc::SIGSTOP) } != 0 {
        bail!("could not stop node 2");
    }
    let frozen = Instant::now();
    let moved = wait_for(
        port,
        site.subnet,
        |ips| ips.iter().all(|ip| ip != site.ip),
        Duration::from_secs(10),
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let down = moved.map(|()| frozen.elapsed())?;
    let resumed = Instant::now();
    wait_for(
        port,
        site.subnet,
        |ips| ips.first().is_some_and(|ip| ip == site.ip),
        Duration::from_secs(10),
    )?;
    Ok((down, resumed.elapsed()))
}

fn until_answer(port: u16, subnet: &str, want: &[String], limit: Duration) -> anyhow::Result<()> {
    wait_for(port, subnet, |ips| ips == want, limit)
}

/// Asks every 10 ms until the addresses answered satisfy `done`.
fn wait_for(
    port: u16,
    subnet: &str,
    done: impl Fn(&[String]) -> bool,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let ips = dig(port, subnet)?;
        if done(&ips) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("after {limit:?} the answer from {subnet} is still {ips:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The addresses answered for the zone to a client in `subnet`.
fn dig(port: u16, subnet: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+tries=1",
            "+time=1",
            "+short",
        ])
        .arg(format!("+subnet={subnet}"))
        .args([ZONE, "A"])
        .output()
        .context("running dig (scripts/peers/dns installs it)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect())
}

/// One dnsperf run against `port`, every query carrying the client subnet.
fn dnsperf(
    port: u16,
    pid: u32,
    subnet: &str,
    queries: &Path,
    seconds: f64,
) -> anyhow::Result<Load> {
    let cpu_before = cpu_seconds(pid);
    let out = Command::new("dnsperf")
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "4",
            "-q",
            "200",
        ])
        .arg("-d")
        .arg(queries)
        .args(["-l", &format!("{seconds}")])
        .args(["-E", &format!("8:{}", ecs_option_hex(subnet)?)])
        .output()
        .context("running dnsperf (scripts/peers/dns installs it)")?;
    let cpu_after = cpu_seconds(pid);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut load =
        parse_dnsperf(&text).with_context(|| format!("reading dnsperf's report:\n{text}"))?;
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        if load.sent > 0 {
            load.cpu_us_per_query = Some((after - before) * 1e6 / load.sent as f64);
        }
    }
    Ok(load)
}

/// The figures of dnsperf's summary.
fn parse_dnsperf(text: &str) -> Option<Load> {
    let field = |label: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
    };
    Some(Load {
        qps: field("Queries per second:")?.parse().ok()?,
        sent: field("Queries sent:")?.parse().ok()?,
        lost: field("Queries lost:")?.parse().ok()?,
        avg_latency_ms: field("Average Latency (s):")?.parse::<f64>().ok()? * 1000.0,
        cpu_us_per_query: None,
    })
}

/// The EDNS Client Subnet option's data (RFC 7871) for an IPv4 subnet, as dnsperf's `-E`
/// takes it: family 1, source prefix, scope 0, the address' significant bytes.
fn ecs_option_hex(subnet: &str) -> anyhow::Result<String> {
    let (addr, bits) = subnet.split_once('/').context("a subnet is ADDR/BITS")?;
    let addr: std::net::Ipv4Addr = addr.parse().context("an IPv4 subnet")?;
    let bits: u8 = bits.parse().context("prefix bits")?;
    if bits > 32 {
        bail!("{subnet}: at most 32 bits");
    }
    let bytes = usize::from(bits).div_ceil(8);
    let mut hex = format!("0001{bits:02x}00");
    for b in &addr.octets()[..bytes] {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok(hex)
}

fn free_udp_port() -> anyhow::Result<u16> {
    // Free for UDP and for TCP alike (the DNS listens on both).
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP")
}

/// PowerDNS Authoritative on loopback with the bench's zone, in a directory of its own.
struct PowerDns {
    port: u16,
    child: Child,
    _dir: TempDir,
}

impl PowerDns {
    fn start(geoip: &Path) -> anyhow::Result<Self> {
        let dir = TempDir::new("pdns")?;
        let port = free_udp_port()?;
        let d = dir.0.display();
        let candidates: Vec<String> = SITES.iter().map(|s| format!("'{}'", s.ip)).collect();
        std::fs::write(
            dir.0.join("pdns.conf"),
            format!(
                "launch=bind,geoip\n\
                 bind-config={d}/named.conf\n\
                 geoip-database-files=mmdb:{geoip}\n\
                 geoip-zones-file={d}/geo.yaml\n\
                 enable-lua-records=yes\n\
                 edns-subnet-processing=yes\n\
                 local-address=127.0.0.1\n\
                 local-port={port}\n\
                 socket-dir={d}\n\
                 guardian=no\ndaemon=no\ndisable-syslog=yes\nwrite-pid=no\nloglevel=4\n",
                geoip = geoip.display()
            ),
        )?;
        std::fs::write(
            dir.0.join("named.conf"),
            format!("zone \"{ZONE}\" {{ type master; file \"{d}/zone\"; }};\n"),
        )?;
        std::fs::write(dir.0.join("geo.yaml"), "domains: []\n")?;
        std::fs::write(
            dir.0.join("zone"),
            format!(
                "$TTL 20\n\
                 @ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 20\n\
                 @ IN NS ns1.{ZONE}.\n\
                 @ IN LUA A \"ifportup(443, {{{}}}, {{selector='pickclosest', backupSelector='pickclosest'}})\"\n",
                candidates.join(", ")
            ),
        )?;
        let log = std::fs::File::create(dir.0.join("log"))?;
        let child = Command::new("/usr/sbin/pdns_server")
            .arg(format!("--config-dir={d}"))
            .process_group(0)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting pdns_server (scripts/peers/dns installs it)")?;
        let pdns = Self {
            port,
            child,
            _dir: dir,
        };
        let ready = (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            dig(port, SITES[0].subnet).is_ok_and(|ips| !ips.is_empty())
        });
        if !ready {
            let log = std::fs::read_to_string(pdns._dir.0.join("log")).unwrap_or_default();
            bail!("PowerDNS did not answer on {port}; its log:\n{log}");
        }
        Ok(pdns)
    }
}

impl Drop for PowerDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_subnets_are_written_as_rfc_7871_says() {
        assert_eq!(ecs_option_hex("81.169.145.0/24").unwrap(), "0001180051a991");
        assert_eq!(ecs_option_hex("10.0.0.0/8").unwrap(), "000108000a");
        assert_eq!(ecs_option_hex("0.0.0.0/0").unwrap(), "00010000");
        assert!(ecs_option_hex("10.0.0.0/33").is_err());
        assert!(ecs_option_hex("::/0").is_err());
    }

    #[test]
    fn dnsperf_summaries_are_read() {
        let text = "Statistics:\n\n  Queries sent:         9409\n  Queries completed:    9409 (100.00%)\n  Queries lost:         0 (0.00%)\n\n  Response codes:       NOERROR 9409 (100.00%)\n  Queries per second:   3086.362045\n\n  Average Latency (s):  0.031843 (min 0.000522, max 0.094549)\n";
        let load = parse_dnsperf(text).unwrap();
        assert_eq!((load.sent, load.lost), (9409, 0));
        assert!((load.qps - 3086.36).abs() < 0.01);
        assert!((load.avg_latency_ms - 31.843).abs() < 0.001);
        assert!(parse_dnsperf("nothing").is_none());
    }
}
