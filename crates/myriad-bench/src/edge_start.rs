//! A `myriad edge` the bench started: its HTTP port, from the line it prints once it
//! listens (`myriad edge is running at http://127.0.0.1:PORT …`).

use std::io::{BufRead, BufReader};
use std::process::Child;

use anyhow::Context;

/// Flags that lift an edge's per-address limits: a bench's load all comes from one address,
/// and the limits would be what is measured.
pub const NO_ADDRESS_LIMITS: [&str; 6] = [
    "--max-conns-per-ip",
    "100000",
    "--rate-per-s",
    "1e12",
    "--burst",
    "1e12",
];

/// Reads the started edge's stdout up to its start line; its HTTP port. The child must have
/// been spawned with its stdout piped.
pub fn http_port(child: &mut Child) -> anyhow::Result<u16> {
    let stdout = child.stdout.take().context("the edge's stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("myriad edge is running at "))
        .context("myriad edge did not start")?;
    line.split("127.0.0.1:")
        .nth(1)
        .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .context("port in the start line")
}
