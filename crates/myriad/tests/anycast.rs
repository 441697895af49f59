//! Anycast with real BIRD (Debian's bird2) in network namespaces this test makes: a router
//! and a node speak BGP over a veth pair; the node's BIRD announces the anycast prefix while
//! myriad's `--health-hook` says the node is ready, and withdraws it when the node drains.
//! Needs root (network namespaces), as the test suite runs here.

#![allow(clippy::disallowed_methods)] // a test harness: reads the clock

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

const PREFIX: &str = "203.0.113.10/32";

/// Two namespaces joined by a veth pair, each with a BIRD; removed on drop.
struct Bgp {
    dir: tempfile::TempDir,
    router: String,
    node: String,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Bgp {
    fn start() -> Bgp {
        assert!(
            Path::new("/usr/sbin/bird").exists(),
            "bird is missing: run scripts/setup --test (it installs bird2)"
        );
        let id = std::process::id() % 100_000;
        let (router, node) = (format!("myr-r{id}"), format!("myr-n{id}"));
        let (rv, nv) = (format!("myr{id}r"), format!("myr{id}n"));
        let dir = tempfile::tempdir().expect("temp dir");
        sh(&["ip", "netns", "add", &router]);
        sh(&["ip", "netns", "add", &node]);
        let bgp = Bgp { dir, router, node };
        sh(&[
            "ip", "link", "add", &rv, "type", "veth", "peer", "name", &nv,
        ]);
        sh(&["ip", "link", "set", &rv, "netns", &bgp.router]);
        sh(&["ip", "link", "set", &nv, "netns", &bgp.node]);
        for (ns, dev, addr) in [
            (&bgp.router, &rv, "10.77.0.1/30"),
            (&bgp.node, &nv, "10.77.0.2/30"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let write = |name: &str, text: &str| {
            let path = bgp.dir.path().join(name);
            std::fs::write(&path, text).expect("config");
            path
        };
        let router_conf = write(
            "router.conf",
            "router id 10.77.0.1;\nprotocol device {}\n\
             protocol bgp node1 { local 10.77.0.1 as 65000; neighbor 10.77.0.2 as 65010;\n\
             ipv4 { import all; export none; }; }\n",
        );
        // The prefix starts withdrawn: the health hook announces it.
        let node_conf = write(
            "node.conf",
            &format!(
                "router id 10.77.0.2;\nprotocol device {{}}\n\
                 protocol static anycast4 {{ disabled; ipv4; route {PREFIX} blackhole; }}\n\
                 protocol bgp uplink {{ local 10.77.0.2 as 65010; neighbor 10.77.0.1 as 65000;\n\
                 ipv4 {{ import none; export where proto = \"anycast4\"; next hop self; }}; }}\n"
            ),
        );
        for (ns, conf, name) in [
            (&bgp.router, &router_conf, "r"),
            (&bgp.node, &node_conf, "n"),
        ] {
            let sock = bgp.sock(name);
            let pid = bgp.dir.path().join(format!("{name}.pid"));
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "bird",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
                "-P",
                pid.to_str().unwrap(),
            ]);
        }
        bgp
    }

    fn sock(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.sock"))
    }

    /// Whether the router has a route to the anycast prefix.
    fn router_has_route(&self) -> bool {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.sock("r"))
            .args(["show", "route", "for", PREFIX])
            .output()
            .expect("birdc runs");
        String::from_utf8_lossy(&out.stdout).contains("via 10.77.0.2")
    }

    /// Waits until the router's route is there (or gone); how long that took.
    fn until_route(&self, present: bool, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.router_has_route() != present {
            assert!(
                start.elapsed() < limit,
                "after {limit:?} the route is still {}",
                if present { "missing" } else { "there" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }
}

impl Drop for Bgp {
    fn drop(&mut self) {
        for name in ["r", "n"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join(format!("{name}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        for ns in [&self.router, &self.node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn the_health_hook_announces_the_anycast_prefix_while_ready_and_withdraws_it_on_drain() {
    let bgp = Bgp::start();
    // The hook, as docs/anycast.md has it: enable or disable the announcing protocol.
    let hook = bgp.dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  announce) birdc -s {s} enable anycast4 ;;\n  withdraw) birdc -s {s} disable anycast4 ;;\nesac\n",
            s = bgp.sock("n").display()
        ),
    )
    .expect("hook");
    let hook = format!("sh {}", hook.display());
    let mut node = Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &["--health-hook", &hook, "--drain-s", "5"],
    );
    // BGP comes up in a few seconds; then the ready node's prefix is announced.
    let up = bgp.until_route(true, Duration::from_secs(30));
    println!("announced {up:?} after the node started");
    // SIGTERM: the node drains (still serving) and its prefix leaves the router at once.
    // SAFETY: a process this test started.
    assert_eq!(unsafe { libc::kill(node.pid() as i32, libc::SIGTERM) }, 0);
    let gone = bgp.until_route(false, Duration::from_secs(3));
    println!("withdrawn {gone:?} after SIGTERM");
    assert!(gone < Duration::from_secs(1), "{gone:?}");
    assert!(
        node.wait_exit(Duration::from_secs(10)).is_some(),
        "exits after its drain"
    );
    assert!(!bgp.router_has_route());
}
