//! Where a libmodsecurity transaction's time goes: the edge's WAF (`myriad_waf`)
//! loaded with no rules, with the whole OWASP CRS, and with the CRS initialization plus one
//! rule file at a time, each checking GET heads that differ in one field (so no verdict is
//! reused). The whole CRS is measured with three kinds of head, with all its rules and with
//! the narrowest of the edge's rule sets that may judge the head: a minimal one (an API
//! client's), a browser's (Chromium's fields, Client Hints with their quotes), and a
//! browser's asking for a percent-encoded URL (which only the whole set may judge). Prints
//! microseconds per request on one thread.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use http::HeaderMap;
use myriad_waf::{Inspected, Waf, WafConfig};

use crate::Report;

pub struct WafCostArgs {
    /// Requests per rule set.
    pub requests: usize,
    /// Also measure each CRS rule file on its own.
    pub per_file: bool,
}

const INITIALIZATION: &str = "REQUEST-901-INITIALIZATION.conf";

/// Alternating turns of the comparison with and without the narrower sets.
const TURNS: usize = 9;

/// The fastest turn: the one least disturbed by the rest of this machine.
fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn run(args: WafCostArgs) -> anyhow::Result<Report> {
    let defaults = WafConfig::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&defaults.rules_dir)
        .with_context(|| {
            format!(
                "{} (scripts/setup installs the CRS)",
                defaults.rules_dir.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let (conf, data): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|p| p.extension().is_some_and(|x| x == "conf"));
    let init = conf
        .iter()
        .find(|p| p.ends_with(INITIALIZATION))
        .context("the CRS has no initialization file")?
        .clone();
    let scratch = std::env::temp_dir().join(format!("myriad-bench-waf-{}", std::process::id()));
    let measure = |name: &str, rules: &[&Path], head: &Head| -> anyhow::Result<f64> {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir)?;
        // Rule files find their data files (`@pmFromFile`) next to themselves.
        for f in rules
            .iter()
            .copied()
            .chain(data.iter().map(PathBuf::as_path))
        {
            let name = f.file_name().context("rule file name")?;
            std::os::unix::fs::symlink(f, dir.join(name))?;
        }
        if rules.is_empty() {
            std::fs::write(dir.join("none.conf"), "")?;
        }
        let waf = Waf::load(&WafConfig {
            rules_dir: dir,
            verdict_cache_bytes: 0,
            narrow_rule_sets: false,
            ..defaults.clone()
        })?;
        Ok(microseconds_per_request(&waf, args.requests, head))
    };
    let result = (|| -> anyhow::Result<Report> {
        let mut report = Report::new("waf-cost");
        report.field("requests_per_rule_set", args.requests);
        // Memory of the rules: the whole set alone, then with the narrower sets (both kept
        // loaded, so the second does not reuse the first's pages).
        let me = std::process::id();
        let before = crate::server::rss_mb(me).unwrap_or(f64::NAN);
        let whole_only = Waf::load(&WafConfig {
            narrow_rule_sets: false,
            verdict_cache_bytes: 0,
            ..defaults.clone()
        })?;
        let after_whole = crate::server::rss_mb(me).unwrap_or(f64::NAN);
        let with_narrower = Waf::load(&WafConfig {
            verdict_cache_bytes: 0,
            ..defaults.clone()
        })?;
        let after_all = crate::server::rss_mb(me).unwrap_or(f64::NAN);
        report
            .field("mb_rss_whole_set", after_whole - before)
            .field("mb_rss_with_narrower_sets", after_all - after_whole);
        let engine = measure("none", &[], &BROWSER)?;
        report.field("us_engine_without_rules", engine);
        // The whole CRS with and without its narrower sets, in alternating turns (this
        // machine's speed drifts by half within a minute), the fastest turn of each.
        for head in [&MINIMAL, &BROWSER, &ENCODED] {
            let mut all = Vec::with_capacity(TURNS);
            let mut narrow = Vec::with_capacity(TURNS);
            for _ in 0..TURNS {
                all.push(microseconds_per_request(
                    &whole_only,
                    args.requests / TURNS,
                    head,
                ));
                narrow.push(microseconds_per_request(
                    &with_narrower,
                    args.requests / TURNS,
                    head,
                ));
            }
            report
                .field(format!("us_crs_{}_head", head.name), fastest(&all))
                .field(
                    format!("us_crs_{}_head_narrowest_set", head.name),
                    fastest(&narrow),
                );
        }
        drop((whole_only, with_narrower));
        let initialized = measure("init", &[init.as_path()], &BROWSER)?;
        report.field("us_crs_initialization", initialized - engine);
        if args.per_file {
            for f in conf.iter().filter(|f| **f != init) {
                let stem = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let us = measure(&stem, &[init.as_path(), f.as_path()], &BROWSER)?;
                report.field(format!("us_plus_{stem}"), us - initialized);
            }
        }
        Ok(report)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// A kind of request head.
struct Head {
    name: &'static str,
    target: &'static str,
    fields: &'static [(&'static str, &'static str)],
}

const CHROMIUM: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

const BROWSER_FIELDS: &[(&str, &str)] = &[
    ("host", "site.test"),
    ("user-agent", CHROMIUM),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br"),
    (
        "sec-ch-ua",
        "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("sec-fetch-mode", "navigate"),
];

const MINIMAL: Head = Head {
    name: "minimal",
    target: "/static/app.js?v=3",
    fields: &[
        ("host", "site.test"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
    ],
};

const BROWSER: Head = Head {
    name: "browser",
    target: "/static/app.js?v=3",
    fields: BROWSER_FIELDS,
};

const ENCODED: Head = Head {
    name: "encoded",
    target: "/search?q=caf%C3%A9&v=3",
    fields: BROWSER_FIELDS,
};

/// Checks `n` requests (after a warm-up) and returns the mean time of one.
fn microseconds_per_request(waf: &Waf, n: usize, head: &Head) -> f64 {
    let client: SocketAddr = ([192, 0, 2, 1], 50_000).into();
    let mut headers = HeaderMap::new();
    for (name, value) in head.fields {
        headers.insert(*name, http::HeaderValue::from_static(value));
    }
    let mut check = |i: usize| {
        headers.insert("x-request-id", http::HeaderValue::from(i));
        let request = Inspected {
            client,
            method: "GET",
            target: head.target,
            version: "1.1",
            headers: &headers,
        };
        let verdict = waf.check(&request, None);
        debug_assert!(
            verdict.is_none(),
            "a clean request was flagged: {verdict:?}"
        );
    };
    for i in 0..n / 10 {
        check(i);
    }
    let start = Instant::now();
    for i in 0..n {
        check(n + i);
    }
    start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
}
