//! A network namespace of the bench's own, joined to this one by a veth pair, where the server
//! under test runs. Janus (libnice) gathers no loopback candidates, so comparing servers needs
//! a real interface; both targets run there so that they pay the same network path.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context};

pub struct NetNs {
    pub name: String,
    host_if: String,
    /// The bench's side of the veth pair.
    pub host_ip: Ipv4Addr,
    /// The server's side, inside the namespace.
    pub ns_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetNs {
    /// Creates `myriad-bench-<pid>` with a /30 on a veth pair (needs root).
    pub fn create() -> anyhow::Result<Self> {
        let pid = std::process::id();
        let octet = (pid % 250) as u8 + 1;
        let ns = Self {
            name: format!("myriad-bench-{pid}"),
            host_if: format!("mbh{}", pid % 100_000),
            host_ip: Ipv4Addr::new(10, 253, octet, 1),
            ns_ip: Ipv4Addr::new(10, 253, octet, 2),
        };
        let ns_if = format!("mbn{}", pid % 100_000);
        let host_cidr = format!("{}/30", ns.host_ip);
        let ns_cidr = format!("{}/30", ns.ns_ip);
        ip(&["netns", "add", &ns.name])
            .context("creating a network namespace (the bench must run as root)")?;
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &ns.name])?;
        ip(&["addr", "add", &host_cidr, "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        ip(&[
            "netns", "exec", &ns.name, "ip", "addr", "add", &ns_cidr, "dev", &ns_if,
        ])?;
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"])?;
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
