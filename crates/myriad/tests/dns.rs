//! GeoDNS on real processes: a cluster of nodes in three regions on a real NATS, asked with
//! Debian's `dig` (scripts/peers/dns installs it, and the GeoLite2 City database).

#![allow(clippy::disallowed_methods)] // a test harness: reads the clock

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, Nats, Server};

/// The test database; scripts/test says where (scripts/peers/dns fetches it).
fn geoip_db() -> String {
    let path = std::env::var("MYRIAD_GEOIP_DB").unwrap_or_else(|_| {
        format!(
            "{}/.cache/myriad-geo/GeoLite2-City.mmdb",
            std::env::var("HOME").expect("HOME")
        )
    });
    assert!(
        std::path::Path::new(&path).is_file(),
        "no GeoLite2 City database at {path}: run scripts/peers/dns"
    );
    path
}

/// `dig`'s full answer to a question.
fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=2"])
        .args(args)
        .output()
        .expect("dig runs (scripts/peers/dns installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The addresses in an answer, sorted.
fn addresses(port: u16, args: &[&str]) -> Vec<String> {
    let mut ips: Vec<String> = dig(port, &[args, &["+short"]].concat())
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect();
    ips.sort();
    ips
}

/// Asks until the answer is `want` or `limit` passes; how long it took.
fn until_answer(port: u16, args: &[&str], want: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = addresses(port, args);
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?}, {args:?} still answers {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ZONE: &str = "meet.example.org";
const BERLIN: &str = "+subnet=81.169.145.0/24";
const KANSAS: &str = "+subnet=8.8.8.0/24";
const TOKYO: &str = "+subnet=133.242.0.0/24";

#[test]
fn dns_names_the_nodes_nearest_each_client_and_follows_the_registry() {
    let nats = Nats::start_js();
    let db = geoip_db();
    let port = free_port();
    let dns = format!("127.0.0.1:{port}");
    let eu = vec![
        "--public-ip",
        "127.0.0.11",
        "--location",
        "50.11,8.68",
        "--dns",
        &dns,
        "--dns-zone",
        ZONE,
        "--dns-answers",
        "3",
        "--geoip",
        &db,
        "--geo-prefix",
        "10.20.0.0/16=ap",
        // This test asks one name many times a second from one address to time health
        // changes: no rate limit (tested below).
        "--dns-rate-per-s",
        "0",
    ];
    let us = vec!["--public-ip", "127.0.0.12", "--location", "40.71,-74.01"];
    let ap = vec!["--public-ip", "127.0.0.13", "--location", "35.68,139.69"];
    let mut nodes = Server::cluster_each(&nats, &[("eu", eu), ("us", us), ("ap", ap)]);
    // From loopback, which no database places: every open node.
    let all = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    until_answer(port, &[ZONE, "A"], &all, Duration::from_secs(10));

    // A client subnet moves the answer to its region's node, with the database's scope.
    assert_eq!(addresses(port, &[ZONE, "A", BERLIN]), ["127.0.0.11"]);
    assert_eq!(addresses(port, &[ZONE, "A", KANSAS]), ["127.0.0.12"]);
    assert_eq!(addresses(port, &[ZONE, "A", TOKYO]), ["127.0.0.13"]);
    assert_eq!(
        addresses(port, &[ZONE, "A", KANSAS, "+tcp"]),
        ["127.0.0.12"]
    );
    let full = dig(port, &[ZONE, "A", BERLIN]);
    assert!(full.contains("status: NOERROR"), "{full}");
    assert!(full.contains("flags: qr aa"), "authoritative: {full}");
    assert!(full.contains("CLIENT-SUBNET: 81.169.145.0/24/19"), "{full}");
    assert!(
        full.contains(&format!("{ZONE}.\t20\tIN\tA\t127.0.0.11")),
        "{full}"
    );
    // A network the operator placed comes before the database.
    let placed = dig(port, &[ZONE, "A", "+subnet=10.20.3.0/24"]);
    assert!(
        placed.contains("CLIENT-SUBNET: 10.20.3.0/24/16"),
        "{placed}"
    );
    assert_eq!(
        addresses(port, &[ZONE, "A", "+subnet=10.20.3.0/24"]),
        ["127.0.0.13"]
    );
    // The zone's own records.
    let soa = addresses(port, &[ZONE, "SOA"]);
    assert!(
        soa[0].starts_with("ns1.meet.example.org. hostmaster.meet.example.org. "),
        "{soa:?}"
    );
    assert_eq!(addresses(port, &[ZONE, "NS"]), ["ns1.meet.example.org."]);

    // A node that stops (SIGTERM) leaves its registry entry, and the answers, at once.
    let stop = Instant::now();
    // SAFETY: a process this test started.
    assert_eq!(
        unsafe { libc::kill(nodes[1].pid() as i32, libc::SIGTERM) },
        0
    );
    let gone = until_answer(
        port,
        &[ZONE, "A", KANSAS],
        &["127.0.0.11"],
        Duration::from_secs(5),
    );
    println!(
        "a stopped node left the answers in {gone:?} (from the signal: {:?})",
        stop.elapsed()
    );
    assert!(gone < Duration::from_secs(1), "{gone:?}");
    // One that hangs (SIGSTOP) fails its health checks: out within a second, and back within
    // a second of resuming.
    let pid = nodes[2].pid() as i32;
    // SAFETY: a process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let out = until_answer(
        port,
        &[ZONE, "A", TOKYO],
        &["127.0.0.11"],
        Duration::from_secs(5),
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let back = until_answer(
        port,
        &[ZONE, "A", TOKYO],
        &["127.0.0.13"],
        Duration::from_secs(5),
    );
    println!("a hung node left the answers in {out:?}, and came back in {back:?}");
    assert!(out < Duration::from_secs(1), "{out:?}");
    assert!(back < Duration::from_secs(1), "{back:?}");
    // One that crashes too, though the registry would wait 2 s for it.
    nodes[2].kill();
    let crashed = until_answer(
        port,
        &[ZONE, "A", TOKYO],
        &["127.0.0.11"],
        Duration::from_secs(5),
    );
    println!("a crashed node left the answers in {crashed:?}");
    assert!(crashed < Duration::from_secs(1), "{crashed:?}");
    assert_eq!(addresses(port, &[ZONE, "A"]), ["127.0.0.11"]);
}

#[test]
fn bad_dns_queries_get_clear_errors_and_the_server_keeps_answering() {
    let port = free_port();
    let dns = format!("127.0.0.1:{port}");
    let _node = Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &["--dns", &dns, "--dns-zone", ZONE, "--geoip", &geoip_db()],
    );
    until_answer(port, &[ZONE, "A"], &["127.0.0.1"], Duration::from_secs(10));

    let status = |args: &[&str]| {
        let out = dig(port, args);
        out.lines()
            .find_map(|l| l.split("status: ").nth(1))
            .map(|s| s.split(',').next().unwrap_or("").to_owned())
            .unwrap_or_else(|| format!("no answer: {out}"))
    };
    assert_eq!(status(&["example.com", "A"]), "REFUSED", "not our zone");
    assert_eq!(status(&["nope.meet.example.org", "A"]), "NXDOMAIN");
    assert_eq!(status(&[ZONE, "MX"]), "NOERROR", "no data, with the SOA");
    assert_eq!(status(&["-c", "CH", ZONE, "A"]), "REFUSED");
    assert_eq!(status(&[ZONE, "A", "+edns=1", "+noednsneg"]), "BADVERS");
    assert!(dig(port, &[ZONE, "AXFR"]).contains("Transfer failed"));

    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    sock.connect(&dns).expect("connect");
    let answer = |query: &[u8]| -> Option<Vec<u8>> {
        sock.send(query).expect("send");
        let mut buf = [0u8; 1500];
        sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    };
    // Shorter than a header: nothing to answer to.
    assert_eq!(answer(b"\x12\x34\x01"), None);
    // A header that promises a question it does not carry: FORMERR.
    let formerr = answer(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]).expect("an answer");
    assert_eq!(
        (formerr[0], formerr[1], formerr[3] & 0x0f),
        (0x12, 0x34, 1),
        "FORMERR"
    );
    // An UPDATE: NOTIMP.
    let mut update = vec![0x56, 0x78, 0x28, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    update.extend_from_slice(b"\x04meet\x07example\x03org\x00\x00\x06\x00\x01");
    let notimp = answer(&update).expect("an answer");
    assert_eq!(notimp[3] & 0x0f, 4, "NOTIMP");
    // Random bytes of every length up to a packet.
    let mut x: u32 = 7;
    for len in 0..600usize {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        sock.send(&junk).expect("send");
    }
    // Still answering, over UDP and TCP.
    assert_eq!(addresses(port, &[ZONE, "A"]), ["127.0.0.1"]);
    assert_eq!(addresses(port, &[ZONE, "A", "+tcp"]), ["127.0.0.1"]);
}

/// Identical answers over UDP to one client network are limited (RRL): beyond the rate most
/// are dropped and every second one is sent truncated, so a real client retries over TCP,
/// which is not limited.
#[test]
fn udp_answers_are_rate_limited_and_tcp_is_not() {
    let port = free_port();
    let dns = format!("127.0.0.1:{port}");
    let _node = Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &["--dns", &dns, "--dns-zone", ZONE, "--dns-rate-per-s", "5"],
    );
    until_answer(
        port,
        &[ZONE, "A", "+tcp"],
        &["127.0.0.1"],
        Duration::from_secs(10),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    sock.connect(&dns).expect("connect");
    let mut query = vec![0x00, 0x00, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x04meet\x07example\x03org\x00\x00\x01\x00\x01");
    for id in 0..40u16 {
        query[..2].copy_from_slice(&id.to_be_bytes());
        sock.send(&query).expect("send");
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 1500];
    while let Ok(n) = sock.recv(&mut buf) {
        assert!(n >= 12, "a header");
        match buf[2] & 0x02 != 0 {
            true => truncated += 1,
            false => full += 1,
        }
    }
    // 5 a second with a second's burst; the 35 over it: half dropped, half truncated.
    assert!((5..=6).contains(&full), "{full} full answers");
    assert!((16..=19).contains(&truncated), "{truncated} truncated");
    // Over TCP the same client is answered at once; dig retries a truncated answer so.
    assert_eq!(addresses(port, &[ZONE, "A", "+tcp"]), ["127.0.0.1"]);
    assert_eq!(addresses(port, &[ZONE, "A"]), ["127.0.0.1"]);
}
