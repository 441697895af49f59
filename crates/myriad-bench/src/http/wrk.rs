//! Runs `wrk` (Debian's; `scripts/peers/http` installs it) and reads its figures.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use super::cpus::Split;
use super::Load;

/// `script`: a wrk Lua script (e.g. one that varies a header per request).
pub fn run(
    url: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
    script: Option<&std::path::Path>,
    pin: Option<&Split>,
) -> anyhow::Result<Load> {
    let mut cmd = Command::new("wrk");
    if let Some(split) = pin {
        split.for_load(&mut cmd);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .args([
            &format!("-t{}", threads.max(1)),
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
        ])
        .args(["--latency", "--timeout", "5s", url])
        .output()
        .context("running wrk (scripts/peers/http installs it)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Reads `Requests/sec:` and the 50 % / 99 % lines of the latency distribution, and refuses a
/// run with errors (a cache that fails requests is not fast).
pub fn parse(text: &str) -> anyhow::Result<Load> {
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
    {
        bail!("wrk saw failed requests: {}", line.trim());
    }
    if let Some(line) = text
        .lines()
        .find(|l| l.trim_start().starts_with("Socket errors"))
    {
        bail!("wrk saw socket errors: {}", line.trim());
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("no Requests/sec in wrk output")?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| duration_ms(v.trim()))
            .with_context(|| format!("no {p} latency in wrk output"))
    };
    Ok(Load {
        requests_per_s: rps,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
    })
}

fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 3s test @ http://127.0.0.1:1/obj/1024
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   389.62us  101.71us   3.33ms   83.64%
    Req/Sec    81.95k     3.11k   86.11k    80.00%
  Latency Distribution
     50%  376.00us
     75%  424.00us
     90%  491.00us
     99%    1.02ms
  244609 requests in 3.00s, 287.68MB read
Requests/sec:  81524.38
Transfer/sec:     95.88MB
";

    #[test]
    fn reads_wrk_output() {
        let l = parse(SAMPLE).unwrap();
        assert_eq!(l.requests_per_s, 81524.38);
        assert_eq!(l.p50_ms, 0.376);
        assert_eq!(l.p99_ms, 1.02);
        let bad = SAMPLE.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 5\nRequests/sec",
        );
        assert!(parse(&bad).is_err());
    }
}
