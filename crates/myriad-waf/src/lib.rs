//! The web application firewall: libmodsecurity 3 with the OWASP Core Rule Set (Debian's
//! `libmodsecurity-dev` and `modsecurity-crs`). Every request runs phases 1 and 2 (line,
//! headers, arguments, and the body up to a limit) — cached GETs included: an attack in the
//! URL is blocked even when the answer is in the cache, and CRS scores and decides in phase 2.
//! Responses are not inspected. A bodiless request is judged by the narrowest rule set whose
//! class holds it (`classes`) and its verdict remembered (`verdicts`); both give the whole
//! set's verdict.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use modsecurity::{ModSecurity, Rules};

use shape::Shape;
use verdicts::Verdicts;

mod alphabet;
mod classes;
mod pcre;
mod query;
mod reach;
#[cfg(test)]
mod same_verdicts;
mod seclang;
mod shape;
mod tx_names;
mod unreached;
mod value;
mod verdicts;

#[derive(Debug, Clone)]
pub struct WafConfig {
    /// CRS `crs-setup.conf` and the directory of its `*.conf` rule files.
    pub setup: PathBuf,
    pub rules_dir: PathBuf,
    /// CRS paranoia level, 1 (default) to 4.
    pub paranoia: u8,
    /// Rule ids removed (false positives of a site).
    pub exclude: Vec<u32>,
    /// Block (403) rather than only log what the rules flag.
    pub blocking: bool,
    /// Memory for remembered verdicts of request heads.
    pub verdict_cache_bytes: u64,
    /// Also load rule sets for narrower classes of requests (same verdicts, less work; see
    /// `classes`). Off only to measure what they save.
    pub narrow_rule_sets: bool,
}

impl Default for WafConfig {
    fn default() -> Self {
        Self {
            setup: "/etc/modsecurity/crs/crs-setup.conf".into(),
            rules_dir: "/usr/share/modsecurity-crs/rules".into(),
            paranoia: 1,
            exclude: Vec::new(),
            blocking: true,
            verdict_cache_bytes: 32 << 20,
            narrow_rule_sets: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WafError {
    #[error("WAF rules {0}: {1}")]
    Rules(String, String),
}

/// A request the rules flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: u16,
    pub rule_ids: Vec<String>,
}

/// Request bodies are inspected up to this much (the rest passes, as ModSecurity's
/// `ProcessPartial`).
pub const BODY_INSPECTION_BYTES: usize = 128 * 1024;

pub struct Waf {
    engine: ModSecurity,
    /// Rules for classes of bodiless requests, narrowest first (see `classes`).
    narrower: Vec<RuleSet>,
    /// All the rules, for any request.
    whole: RuleSet,
    blocking: bool,
    verdicts: Verdicts,
    next_id: AtomicU64,
}

/// The rules that could match some bodiless request of a shape.
struct RuleSet {
    shape: Shape,
    rules: Rules,
    /// `SecRule`s loaded (a chain counts once).
    rule_count: usize,
    /// The rules (chain links included) that read request fields' values.
    field_readers: verdicts::FieldReaders,
}

impl Waf {
    pub fn load(config: &WafConfig) -> Result<Self, WafError> {
        let err =
            |what: &str, e: &dyn std::fmt::Display| WafError::Rules(what.to_owned(), e.to_string());
        let paranoia = config.paranoia.clamp(1, 4);
        // The executing level too (CRS 901125 would copy it later): set by the first rule,
        // it is known wherever a rule runs, and sections above it are `unreached`.
        // The engine always says what it would do: in detection-only mode the edge logs the
        // verdict and lets the request pass (libmodsecurity's own DetectionOnly gives no
        // intervention at all, so nothing would tell what it would have refused).
        let settings = format!(
            "SecRuleEngine On\n\
             SecRequestBodyAccess On\n\
             SecRequestBodyLimit {BODY_INSPECTION_BYTES}\n\
             SecRequestBodyLimitAction ProcessPartial\n\
             SecResponseBodyAccess Off\n\
             SecAuditEngine Off\n\
             SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={paranoia},\
             setvar:tx.executing_paranoia_level={paranoia}\"\n"
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(&config.rules_dir)
            .map_err(|e| err(&config.rules_dir.display().to_string(), &e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(err(
                &config.rules_dir.display().to_string(),
                &"no rule files",
            ));
        }
        let mut sources = vec![(
            "engine settings".to_owned(),
            settings.clone(),
            PathBuf::new(),
        )];
        for f in std::iter::once(&config.setup).chain(&files) {
            let text = std::fs::read_to_string(f).map_err(|e| err(&f.display().to_string(), &e))?;
            let dir = f.parent().map(PathBuf::from).unwrap_or_default();
            sources.push((f.display().to_string(), text, dir));
        }
        let exclusions: String = config
            .exclude
            .iter()
            .map(|id| format!("SecRuleRemoveById {id}\n"))
            .collect();
        sources.push(("exclusions".to_owned(), exclusions.clone(), PathBuf::new()));
        let parsed: Result<Vec<_>, _> = sources
            .iter()
            .map(|(name, text, dir)| {
                seclang::parse(text, dir).map(|directives| (name.as_str(), directives))
            })
            .collect();
        let mut sets = match parsed {
            Ok(parsed) => classes::rule_sets(&parsed, config.narrow_rule_sets)
                .into_iter()
                .map(|planned| {
                    let mut rules = Rules::new();
                    let mut rule_count = 0;
                    for (name, text, count) in planned.texts {
                        rules.add_plain(&text).map_err(|e| err(name, &e))?;
                        rule_count += count;
                    }
                    Ok(RuleSet {
                        shape: planned.class,
                        rules,
                        rule_count,
                        field_readers: planned.field_readers,
                    })
                })
                .collect::<Result<Vec<_>, WafError>>()?,
            Err(e) => {
                // libmodsecurity may read what `seclang` does not: load the files as they
                // are, one set, no field left out of a verdict's key.
                tracing::warn!("WAF rules not analysed ({e}); loaded as they are, whole");
                let mut rules = Rules::new();
                rules
                    .add_plain(&settings)
                    .map_err(|e| err("engine settings", &e))?;
                for f in std::iter::once(&config.setup).chain(&files) {
                    rules
                        .add_file(f)
                        .map_err(|e| err(&f.display().to_string(), &e))?;
                }
                rules
                    .add_plain(&exclusions)
                    .map_err(|e| err("exclusions", &e))?;
                vec![RuleSet {
                    shape: Shape::ANY,
                    rules,
                    rule_count: 0,
                    field_readers: verdicts::FieldReaders::anything(),
                }]
            }
        };
        let whole = sets.pop().ok_or_else(|| err("rules", &"no rule set"))?;
        tracing::info!(
            files = files.len(),
            paranoia,
            blocking = config.blocking,
            rules = whole.rule_count,
            narrower = ?sets.iter().map(|s| s.rule_count).collect::<Vec<_>>(),
            "WAF rules loaded"
        );
        Ok(Self {
            engine: ModSecurity::builder().with_log_callbacks().build(),
            narrower: sets,
            whole,
            blocking: config.blocking,
            next_id: AtomicU64::new(1),
            verdicts: Verdicts::new(config.verdict_cache_bytes),
        })
    }

    pub fn blocking(&self) -> bool {
        self.blocking
    }

    /// Runs the request phases; `None` when the rules let it through.
    pub fn check(&self, request: &Inspected<'_>, body: Option<&[u8]>) -> Option<Verdict> {
        if body.is_some() {
            return self.evaluate(&self.whole, request, body, log_debug);
        }
        let (index, set, shape) = self.rules_for(request);
        let Some(key) = self
            .verdicts
            .key(index, &set.field_readers, request, &shape)
        else {
            return self.evaluate(set, request, None, log_debug);
        };
        if let Some(v) = self.verdicts.get(&key) {
            return v;
        }
        let v = self.evaluate(set, request, None, log_debug);
        self.verdicts.insert(key, v.clone());
        v
    }

    /// The narrowest rule set for a bodiless request, its index, and the request's shape.
    fn rules_for(&self, request: &Inspected<'_>) -> (usize, &RuleSet, Shape) {
        let shape = Shape::of(request);
        let (index, set) = self
            .narrower
            .iter()
            .enumerate()
            .find(|(_, s)| shape.within(&s.shape))
            .unwrap_or((self.narrower.len(), &self.whole));
        (index, set, shape)
    }

    fn evaluate(
        &self,
        set: &RuleSet,
        request: &Inspected<'_>,
        body: Option<&[u8]>,
        log: impl Fn(Option<&str>) + Send + Sync + 'static,
    ) -> Option<Verdict> {
        // An id of ours: without one, libmodsecurity seeds a std::random_device per
        // transaction (~4 % of its time in a profile).
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        // The rules that matched on the way (each logs a message), for the verdict: the
        // intervention itself names only the rule that decided (949110 in the CRS).
        let matched = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&matched);
        let mut t = match self
            .engine
            .transaction_builder()
            .with_rules(&set.rules)
            .with_id(&id)
            .with_logging(move |message| {
                if let (Some(m), Ok(mut ids)) = (message, sink.lock()) {
                    add_new(&mut ids, rule_ids(m));
                }
                log(message);
            })
            .build()
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("WAF transaction failed: {e}");
                return None;
            }
        };
        let client = request.client;
        let ip = client.ip().to_string();
        let steps = t
            .process_connection(&ip, client.port() as i32, "0.0.0.0", 0)
            .and_then(|()| t.process_uri(request.target, request.method, request.version));
        if let Err(e) = steps {
            tracing::debug!("WAF could not read the request line: {e}");
        }
        for (name, value) in request.headers {
            let _ = t.add_request_header(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
        }
        let _ = t.process_request_headers();
        if let Some(v) = verdict(&mut t, &matched) {
            return Some(v);
        }
        // Phase 2 runs for every request: CRS inspects ARGS and decides (rule 949110) there.
        if let Some(body) = body {
            let _ = t.append_request_body(&body[..body.len().min(BODY_INSPECTION_BYTES)]);
        }
        let _ = t.process_request_body();
        verdict(&mut t, &matched)
    }
}

/// What the rules see of a request's head.
pub struct Inspected<'a> {
    pub client: SocketAddr,
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
    /// HTTP version as the rules know it: "1.0", "1.1" or "2.0".
    pub version: &'a str,
    pub headers: &'a HeaderMap,
}

#[cfg(test)]
impl<'a> Inspected<'a> {
    /// A GET over HTTP/1.1 from a documentation address.
    pub fn get(target: &'a str, headers: &'a HeaderMap) -> Self {
        Self {
            client: ([192, 0, 2, 1], 50_000).into(),
            method: "GET",
            target,
            version: "1.1",
            headers,
        }
    }
}

fn log_debug(message: Option<&str>) {
    if let Some(m) = message {
        tracing::debug!(target: "myriad_waf", "{m}");
    }
}

/// The intervention, if the rules decided on one; its rule ids are those that matched on the
/// way, then the deciding one.
fn verdict(
    t: &mut modsecurity::transaction::Transaction<'_>,
    matched: &Mutex<Vec<String>>,
) -> Option<Verdict> {
    let iv = t.intervention()?;
    let mut ids = matched.lock().map(|m| m.clone()).unwrap_or_default();
    add_new(&mut ids, rule_ids(iv.log().unwrap_or_default()));
    Some(Verdict {
        status: u16::try_from(iv.status()).unwrap_or(403),
        rule_ids: ids,
    })
}

/// Appends the ids not listed yet (a rule matching several arguments logs once for each).
fn add_new(ids: &mut Vec<String>, more: Vec<String>) {
    for id in more {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
}

/// The `[id "942100"]` parts of an intervention's log line.
fn rule_ids(log: &str) -> Vec<String> {
    log.split("[id \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rule_ids_from_the_log() {
        let log = r#"ModSecurity: Access denied with code 403 (phase 2). [file "x"] [line "1"] [id "949110"] [msg "Inbound Anomaly Score Exceeded"] [id "942100"]"#;
        assert_eq!(rule_ids(log), ["949110", "942100"]);
        assert!(rule_ids("nothing").is_empty());
    }

    /// The CRS's exclusions name fields as clients write them (`!REQUEST_HEADERS:Referer`);
    /// they apply to the edge's lower-case names too: 930110 (path traversal) reads every
    /// field but the Referer, which may well hold `../` in a page's address.
    #[test]
    fn crs_field_exclusions_apply_to_lower_case_names() {
        let waf = Waf::load(&WafConfig::default()).expect("CRS loads");
        let judge = |name: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("host", "site.test".parse().unwrap());
            h.insert("user-agent", "Mozilla/5.0 test".parse().unwrap());
            h.insert(
                name,
                "https://site.test/docs/../index.html".parse().unwrap(),
            );
            waf.evaluate(&waf.whole, &Inspected::get("/", &h), None, |_| {})
        };
        assert_eq!(judge("referer"), None);
        let v = judge("x-custom").expect("path traversal in another field");
        assert_eq!(v.status, 403);
    }

    #[test]
    fn crs_flags_attacks_and_passes_clean_requests() {
        let waf = Waf::load(&WafConfig::default()).expect("CRS loads (scripts/setup installs it)");
        let client: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", "site.test".parse().unwrap());
        h.insert("user-agent", "Mozilla/5.0 test".parse().unwrap());
        h.insert("accept", "text/html".parse().unwrap());
        let check = |target: &str| {
            let request = Inspected::get(target, &h);
            waf.check(&request, None)
        };
        assert_eq!(check("/products?id=42&sort=price"), None);
        for attack in [
            "/?id=1%27%20OR%20%271%27%3D%271",
            "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "/?file=../../../../etc/passwd",
        ] {
            let v = check(attack).unwrap_or_else(|| panic!("{attack} passed"));
            assert_eq!(v.status, 403);
            assert!(v.rule_ids.iter().any(|id| id == "949110"), "{v:?}");
        }
        // Remembered verdicts answer the same way.
        assert!(check("/?file=../../../../etc/passwd").is_some());
        assert_eq!(check("/products?id=42&sort=price"), None);
        let body = b"username=admin&password=' or 1=1--";
        let mut form = h.clone();
        form.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let request = Inspected {
            client,
            method: "POST",
            target: "/login",
            version: "1.1",
            headers: &form,
        };
        let v = waf.check(&request, Some(body));
        assert!(v.is_some(), "SQL injection in a form body");
    }

    /// A WAF with an empty setup and `rules` as its only rule file.
    fn load_only(name: &str, rules: &str) -> Result<Waf, WafError> {
        let dir = std::env::temp_dir().join(format!("myriad-waf-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let setup = dir.join("setup.conf");
        std::fs::write(&setup, "").unwrap();
        std::fs::write(dir.join("rules.conf"), rules).unwrap();
        let loaded = Waf::load(&WafConfig {
            setup,
            rules_dir: dir.clone(),
            ..WafConfig::default()
        });
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    /// A field's value copied into rule text by a macro moves verdicts though no rule reads
    /// it: it stays in a remembered verdict's key.
    #[test]
    fn fields_copied_by_macros_stay_in_the_key() {
        let waf = load_only(
            "macro",
            "SecRule ARGS:q \"@streq %{request_headers.x-token}\" \"id:1000,phase:2,deny,status:403\"\n",
        )
        .expect("rules load");
        let check = |token: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-token", http::HeaderValue::from_static(token));
            waf.check(&Inspected::get("/?q=abc", &headers), None)
        };
        assert_eq!(check("zzz"), None);
        assert_eq!(check("abc").map(|v| v.status), Some(403));
    }

    /// Rules this edge's reader does not claim to read still load, as they are, whole.
    #[test]
    fn rules_it_cannot_read_load_whole() {
        let waf = load_only(
            "fallback",
            "SecRule ARGS '@rx attack' \"id:1000,phase:2,deny,status:403\"\n",
        )
        .expect("libmodsecurity reads a single-quoted operator");
        assert!(waf.narrower.is_empty());
        // libmodsecurity takes the quotes as part of the pattern; the edge does not guess.
        let key = |id: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-request-id", http::HeaderValue::from_static(id));
            let request = Inspected::get("/?q=fine", &headers);
            assert_eq!(waf.check(&request, None), None);
            let (index, set, shape) = waf.rules_for(&request);
            waf.verdicts
                .key(index, &set.field_readers, &request, &shape)
        };
        assert_ne!(key("1"), key("2"), "no field is left out of the key");
    }
}
