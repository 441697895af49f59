//! The HTTP cache conformance suite (http-tests/cache-tests) against `myriad edge`: its
//! CDN-Cache-Control tests (RFC 9213), with the suite's own origin server and test engine
//! (`scripts/peers/cache-tests` installs them). Every required and optimal test must pass;
//! the "check" ones (behaviours the specs leave open) are printed.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn engine() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let engine =
        PathBuf::from(home).join(".cache/myriad-cache-tests/node_modules/http-cache-tests");
    assert!(
        engine.join("client/runner.mjs").exists(),
        "{} is missing: run scripts/test (scripts/peers/cache-tests installs it)",
        engine.display()
    );
    engine
}

/// The suite's origin server, on a port of its own.
struct SuiteServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl SuiteServer {
    fn start(engine: &std::path::Path) -> SuiteServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = common::free_port();
        let child = Command::new("node")
            .arg(engine.join("server/server.mjs"))
            .env("npm_config_protocol", "http")
            .env("npm_config_port", port.to_string())
            .env("npm_config_pidfile", dir.path().join("server.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs the suite's server");
        let listening = (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(listening, "the suite's server did not listen on {port}");
        SuiteServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for SuiteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_cdn_cache_control_tests_pass() {
    let engine = engine();
    let origin = SuiteServer::start(&engine);
    let edge = common::Edge::start(&origin.url, &[]);
    let runner = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cache-tests/run-cdn.mjs");
    let out = Command::new("node")
        .arg(&runner)
        .env("CACHE_TESTS_ENGINE", &engine)
        .env("CACHE_TESTS_BASE", &edge.url)
        .output()
        .expect("node runs the suite");
    assert!(
        out.status.success(),
        "the suite did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the suite's JSON");
    let tests = report["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 24, "the suite's 24 tests: {report}");
    let mut failed = Vec::new();
    for t in tests {
        let passed = t["result"] == Value::Bool(true);
        println!(
            "{:8} {:5} {} {}",
            t["kind"].as_str().unwrap_or_default(),
            if passed { "pass" } else { "FAIL" },
            t["id"].as_str().unwrap_or_default(),
            if passed {
                String::new()
            } else {
                t["result"].to_string()
            }
        );
        if !passed && t["kind"] != "check" {
            failed.push(format!("{}: {}", t["id"], t["result"]));
        }
    }
    assert!(
        failed.is_empty(),
        "CDN tests failed:\n{}\n--- edge log ---\n{}",
        failed.join("\n"),
        edge.log()
    );
}
