//! Remembered verdicts of bodiless requests.
//!
//! With the rules the edge loads (no IP reputation or DoS counters enabled) a verdict is a
//! pure function of the request, so a request whose head is the same as one already judged
//! gets its verdict without a libmodsecurity transaction (~1 ms of CPU with browser
//! fields). "The same" is the exact head, except for field values no rule of the set that
//! judges the request can match on: a request id, a trace context or a timestamp of digits
//! and dashes cannot move a verdict (a rule that does not match has no effect), so such a
//! value is left out of the key and requests that differ only there share a verdict. The
//! question is asked of the value's bytes first (`reach`: any value made of them), then,
//! when some rule could match such bytes, of the value itself (`value`: a Referer of a page
//! matches no rule though its letters could spell an attack), a chain's other links asked
//! of the request's shape (`Shape`). Query values are left out the same way where
//! libmodsecurity's reading of the target is certain (`query`) and no rule could match the
//! decoded value, nor the request line, target or query string that hold it; their decoded
//! lengths stay (`ARGS_COMBINED_SIZE`).
//! The key is the head itself, not a hash: no collision can borrow another request's
//! verdict.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use http::header::COOKIE;
use http::{HeaderName, HeaderValue};
use moka::sync::Cache;

use super::alphabet::Alphabet;
use super::query::{arg_decoded, request_line, Query, Url};
use super::reach::Prepared;
use super::seclang::{Action, Directive};
use super::shape::Shape;
use super::{Inspected, Verdict};

/// Heads longer than this (or with a field value longer) are always evaluated.
const KEY_MAX_BYTES: usize = 4096;

/// Memory for the answers about values each cache remembers: distinct values cannot grow it.
const ANSWERS_BYTES: u64 = 8 << 20;

/// What a remembered answer about a value of `len` bytes weighs (with its key's shape).
fn answer_weight(len: usize) -> u32 {
    u32::try_from(len + std::mem::size_of::<Shape>() + 64).unwrap_or(u32::MAX)
}

/// Fields ModSecurity or the CRS read beyond their value's text (the body's type and
/// framing, the server name, credentials, the User-Agent hash): never left out. Cookies
/// are read pair by pair (`cookie_key`).
const INTERPRETED: [&str; 6] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "authorization",
    "user-agent",
];

/// Variables whose macros copy query values, and those among them whose values are in the
/// key anyway.
const URL_MACROS: [&str; 5] = [
    "args",
    "query_string",
    "request_uri",
    "request_line",
    "full_request",
];
const URL_MACROS_KEPT: [&str; 4] = [
    "args_names",
    "args_get_names",
    "args_post_names",
    "args_combined_size",
];

/// Stands for a left-out value (a byte no field value holds).
pub(super) const LEFT_OUT: char = '\u{1}';

/// The rules of a set that read fields' values: those that read every field (or the whole
/// request), and those that read one field by name.
#[derive(Default)]
pub struct FieldReaders {
    every: Vec<Reader>,
    by_name: HashMap<String, Vec<Reader>>,
    /// Those that read cookie values.
    cookies: Vec<Reader>,
    /// Those that read query arguments' values.
    args: Vec<Reader>,
    /// Those that read the request line, the target or the query string.
    url: Vec<Reader>,
    /// Some rule reads the whole request, or copies part of the URL by macro where it can
    /// move a verdict: no query value is left out.
    url_kept: bool,
    /// Fields (lower case) whose values rule text copies by macro (`%{REQUEST_HEADERS.Host}`
    /// in a `setvar` or an operator): a value can move a verdict without any rule reading it.
    copied: HashSet<String>,
    /// The rules are not all known: any field's value may move a verdict.
    unknown: bool,
}

/// A rule link that reads fields, with the other links of its chain: all of them must match
/// for any of it to have an effect.
#[derive(Clone)]
struct Reader {
    link: Prepared,
    chain: Vec<Prepared>,
}

/// The values of actions other than those that only describe a match.
fn described(actions: &[Action]) -> impl Iterator<Item = &str> {
    actions
        .iter()
        .filter(|a| {
            !["msg", "logdata", "tag"]
                .iter()
                .any(|d| a.name.eq_ignore_ascii_case(d))
        })
        .filter_map(|a| a.value.as_deref())
}

impl Reader {
    /// Whether it could match on field `name` holding `value` in a request of `shape`.
    fn may_match_value(&self, name: &str, value: &[u8], shape: &Shape) -> bool {
        self.link.may_match_value(name, value) && self.chain_may_match(shape)
    }

    /// Whether it could match on cookie `name` holding `value` in a request of `shape`.
    fn may_match_cookie(&self, name: &str, value: &[u8], shape: &Shape) -> bool {
        self.link.may_match_cookie(name, value) && self.chain_may_match(shape)
    }

    /// Whether it could match on query argument `name` holding `value`.
    fn may_match_arg(&self, name: &str, value: &[u8], shape: &Shape) -> bool {
        self.link.may_match_arg(name, value) && self.chain_may_match(shape)
    }

    /// Whether it could match on the strings derived from `url`.
    fn may_match_url(&self, url: &Url<'_>, shape: &Shape) -> bool {
        self.link.may_match_url(url) && self.chain_may_match(shape)
    }

    fn chain_may_match(&self, shape: &Shape) -> bool {
        self.chain.iter().all(|l| l.may_match(shape))
    }
}

impl FieldReaders {
    pub fn anything() -> Self {
        Self {
            unknown: true,
            ..Self::default()
        }
    }

    #[cfg(test)]
    pub fn any_field_moves(&self) -> bool {
        self.unknown
    }

    /// The links of a rule (a chain's, in order) that read fields or cookies.
    pub fn add_chain(&mut self, links: &[Prepared]) {
        for (i, link) in links.iter().enumerate() {
            let reader = || Reader {
                link: link.clone(),
                chain: [&links[..i], &links[i + 1..]].concat(),
            };
            if link.reads_cookies() {
                self.cookies.push(reader());
            }
            if link.reads_args() {
                self.args.push(reader());
            }
            if link.reads_url() {
                self.url.push(reader());
            }
            self.url_kept |= link.reads_whole_request();
            if link.reads_fields() {
                match link.only_field() {
                    Some(name) => self.by_name.entry(name).or_default().push(reader()),
                    None => self.every.push(reader()),
                }
            }
        }
    }

    /// The fields a rule's text copies by macro; all of them (`unknown`) for a macro that
    /// copies the whole collection or the request.
    pub fn add_copies(&mut self, rule: &str) {
        let text = rule.to_ascii_lowercase();
        for macro_start in text.match_indices("%{").map(|(i, _)| i + 2) {
            let inner = text[macro_start..].split('}').next().unwrap_or("");
            if inner.starts_with("request_headers_names")
                || inner.starts_with("request_cookies_names")
            {
                continue; // names are always in the key
            }
            if let Some(rest) = inner.strip_prefix("request_headers") {
                match rest.strip_prefix(['.', ':']) {
                    Some(name) if !name.is_empty() && !name.starts_with('/') => {
                        self.copied.insert(name.to_owned());
                    }
                    _ => self.unknown = true,
                }
            } else if inner.starts_with("request_cookies") {
                self.copied.insert(COOKIE.as_str().to_owned());
            } else if inner.starts_with("full_request") {
                self.unknown = true;
            }
        }
    }

    /// Whether a rule copies part of the URL by macro where it can move a verdict: in an
    /// operator's parameter or an action, not in `msg` or `logdata`, which only describe a
    /// match (the CRS's 920100 logs `%{request_line}`). Argument names, and the arguments'
    /// combined size, are in the key anyway.
    pub fn add_url_copies(&mut self, rule: &Directive) {
        let texts = rule
            .links
            .iter()
            .flat_map(|l| std::iter::once(l.operator.param.as_str()).chain(described(&l.actions)))
            .chain(described(&rule.actions));
        for text in texts {
            let text = text.to_ascii_lowercase();
            for macro_start in text.match_indices("%{").map(|(i, _)| i + 2) {
                let inner = &text[macro_start..];
                let copies_url = URL_MACROS.iter().any(|v| inner.starts_with(v))
                    && !URL_MACROS_KEPT.iter().any(|v| inner.starts_with(v));
                self.url_kept |= copies_url;
            }
        }
    }

    fn for_field<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Reader> {
        let named = self.by_name.get(name);
        self.every.iter().chain(named.into_iter().flatten())
    }
}

pub struct Verdicts {
    verdicts: Cache<String, Option<Verdict>>,
    /// Whether a field's value, by the bytes it is made of, can move the verdict of a rule
    /// set (by its index); the field by name only where some rule reads it by name. A few
    /// thousand answers cover what clients send.
    movable: Cache<(usize, Option<HeaderName>, Alphabet), bool>,
    /// The same for the value itself in a request of a shape, where its bytes could: the
    /// fields a client sends on every request (Accept, its Referer) ask once. Bounded by
    /// bytes, as are the cookies'.
    moving_values: Cache<(usize, HeaderName, HeaderValue, Shape), bool>,
    /// The same for a cookie's value, by set, name and value.
    moving_cookies: Cache<(usize, Vec<u8>, Vec<u8>, Shape), bool>,
    /// Whether a query value made of an alphabet's bytes could move a verdict, by set.
    movable_args: Cache<(usize, Alphabet), bool>,
    /// The same for the value itself, by set, name and value.
    moving_args: Cache<(usize, String, Vec<u8>, Shape), bool>,
    /// Whether a request line's strings could move a verdict, by set and line: a page's
    /// assets (`app.js?v=3`) ask once.
    moving_lines: Cache<(usize, String, Shape), bool>,
}

impl Verdicts {
    pub fn new(bytes: u64) -> Self {
        Self {
            verdicts: Cache::builder()
                .max_capacity(bytes)
                .weigher(|k: &String, _: &Option<Verdict>| {
                    u32::try_from(k.len() + 64).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(600))
                .build(),
            movable: Cache::new(10_000),
            moving_values: Cache::builder()
                .max_capacity(ANSWERS_BYTES)
                .weigher(
                    |(_, name, value, _): &(usize, HeaderName, HeaderValue, Shape), _| {
                        answer_weight(name.as_str().len() + value.len())
                    },
                )
                .build(),
            moving_cookies: Cache::builder()
                .max_capacity(ANSWERS_BYTES)
                .weigher(
                    |(_, name, value, _): &(usize, Vec<u8>, Vec<u8>, Shape), _| {
                        answer_weight(name.len() + value.len())
                    },
                )
                .build(),
            movable_args: Cache::new(10_000),
            moving_args: Cache::builder()
                .max_capacity(ANSWERS_BYTES)
                .weigher(|(_, name, value, _): &(usize, String, Vec<u8>, Shape), _| {
                    answer_weight(name.len() + value.len())
                })
                .build(),
            moving_lines: Cache::builder()
                .max_capacity(ANSWERS_BYTES)
                .weigher(|(_, line, _): &(usize, String, Shape), _| answer_weight(line.len()))
                .build(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Option<Verdict>> {
        self.verdicts.get(key)
    }

    pub fn insert(&self, key: String, verdict: Option<Verdict>) {
        self.verdicts.insert(key, verdict);
    }

    /// The key of a bodiless request of `shape` judged by rule set `set` (whose rules
    /// reading field values are `readers`), if its head is short enough.
    pub fn key(
        &self,
        set: usize,
        readers: &FieldReaders,
        request: &Inspected<'_>,
        shape: &Shape,
    ) -> Option<String> {
        let mut key = String::with_capacity(256);
        key.push_str(itoa::Buffer::new().format(set));
        key.push(' ');
        key.push_str(request.method);
        key.push(' ');
        match self.target_key(set, readers, request, shape) {
            Some(target) => key.push_str(&target),
            None => key.push_str(request.target),
        }
        key.push(' ');
        key.push_str(request.version);
        for (name, value) in request.headers {
            if value.len() > KEY_MAX_BYTES {
                return None;
            }
            key.push('\n');
            key.push_str(name.as_str());
            key.push(':');
            let bytes = value.as_bytes();
            if INTERPRETED.contains(&name.as_str()) || self.moves(set, readers, name, value, shape)
            {
                key.push_str(&String::from_utf8_lossy(bytes));
            } else if name == COOKIE {
                self.cookie_key(set, readers, bytes, shape, &mut key);
            } else {
                key.push(LEFT_OUT);
            }
            if key.len() > KEY_MAX_BYTES {
                return None;
            }
        }
        Some(key)
    }

    /// The target with the query values no rule could match on left out (their decoded
    /// lengths kept), if there are any and no rule could match the strings that hold them
    /// either.
    fn target_key(
        &self,
        set: usize,
        readers: &FieldReaders,
        request: &Inspected<'_>,
        shape: &Shape,
    ) -> Option<String> {
        if readers.unknown || readers.url_kept || request.target.len() > KEY_MAX_BYTES {
            return None;
        }
        let query = Query::of(request.target)?;
        let mut key = String::with_capacity(request.target.len() + 8);
        key.push_str(query.path);
        key.push('?');
        let mut left_out = false;
        for (i, piece) in query.pieces().enumerate() {
            if i > 0 {
                key.push('&');
            }
            let Some((name, value)) = piece.split_once('=') else {
                key.push_str(piece);
                continue;
            };
            let value = arg_decoded(value);
            // Rules name arguments as decoded; a name that is not ASCII is not compared here.
            let decoded_name = String::from_utf8(arg_decoded(name))
                .ok()
                .filter(|n| n.is_ascii());
            match decoded_name {
                Some(n)
                    if !value.is_empty() && !self.arg_moves(set, readers, &n, &value, shape) =>
                {
                    key.push_str(name);
                    key.push('=');
                    key.push(LEFT_OUT);
                    key.push_str(itoa::Buffer::new().format(value.len()));
                    left_out = true;
                }
                _ => key.push_str(piece),
            }
        }
        if !left_out {
            return None;
        }
        // Asked once per line: the strings derived only when it is new.
        let line = request_line(request.method, request.target, request.version);
        let url_moves = remembered(&self.moving_lines, (set, line, *shape), || {
            let url = Url::new(request.method, request.target, request.version, &query);
            readers.url.iter().any(|r| r.may_match_url(&url, shape))
        });
        (!url_moves).then_some(key)
    }

    /// Whether query argument `name` holding `value` could move the verdict: first for any
    /// value of its bytes, then for the value itself.
    fn arg_moves(
        &self,
        set: usize,
        readers: &FieldReaders,
        name: &str,
        value: &[u8],
        shape: &Shape,
    ) -> bool {
        let alphabet = Alphabet::of(value);
        remembered(&self.movable_args, (set, alphabet), || {
            readers
                .args
                .iter()
                .any(|r| r.link.may_match_arg_over(alphabet))
        }) && remembered(
            &self.moving_args,
            (set, name.to_owned(), value.to_vec(), *shape),
            || {
                readers
                    .args
                    .iter()
                    .any(|r| r.may_match_arg(name, value, shape))
            },
        )
    }

    /// A `Cookie` field whose text no rule could match on, pair by pair as libmodsecurity
    /// 3.0.9 splits it (at `;` as `getline` does, then at the first `=`; the name
    /// left-trimmed, the last pair's value right-trimmed): each value left out unless a rule
    /// reading cookie values could match it. Names (and so their count) are kept.
    fn cookie_key(
        &self,
        set: usize,
        readers: &FieldReaders,
        field: &[u8],
        shape: &Shape,
        key: &mut String,
    ) {
        let mut pairs: Vec<&[u8]> = field.split(|&b| b == b';').collect();
        let ends_with_separator = field.ends_with(b";");
        if ends_with_separator {
            pairs.pop(); // `getline` gives no empty last piece
        }
        let last = pairs.len().saturating_sub(1);
        for (i, pair) in pairs.iter().enumerate() {
            if i > 0 {
                key.push(';');
            }
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                key.push_str(&String::from_utf8_lossy(pair));
                continue;
            };
            let (name, value) = (&pair[..eq], &pair[eq + 1..]);
            let read_name = name.trim_ascii_start();
            let read_value = if i == last {
                value.trim_ascii_end()
            } else {
                value
            };
            key.push_str(&String::from_utf8_lossy(name));
            key.push('=');
            if read_name.is_empty() || self.cookie_moves(set, readers, read_name, read_value, shape)
            {
                key.push_str(&String::from_utf8_lossy(value));
            } else {
                key.push(LEFT_OUT);
            }
        }
        if ends_with_separator {
            key.push(';');
        }
    }

    fn cookie_moves(
        &self,
        set: usize,
        readers: &FieldReaders,
        name: &[u8],
        value: &[u8],
        shape: &Shape,
    ) -> bool {
        let question = (set, name.to_vec(), value.to_vec(), *shape);
        remembered(&self.moving_cookies, question, || {
            let name = String::from_utf8_lossy(name);
            readers
                .cookies
                .iter()
                .any(|r| r.may_match_cookie(&name, value, shape))
        })
    }

    /// Whether the field's value could move the verdict: first for any value of its bytes
    /// (remembered per alphabet), then, when that says it could, for the value itself.
    fn moves(
        &self,
        set: usize,
        readers: &FieldReaders,
        name: &HeaderName,
        value: &HeaderValue,
        shape: &Shape,
    ) -> bool {
        let bytes = value.as_bytes();
        // Not ASCII: the rules see it converted (U+FFFD for what is not UTF-8).
        if readers.unknown || !bytes.is_ascii() || readers.copied.contains(name.as_str()) {
            return true;
        }
        let alphabet = Alphabet::of(bytes);
        let named = readers.by_name.contains_key(name.as_str());
        let question = (set, named.then(|| name.clone()), alphabet);
        remembered(&self.movable, question, || {
            readers
                .for_field(name.as_str())
                .any(|r| r.link.may_match_field(name.as_str(), alphabet))
        }) && remembered(
            &self.moving_values,
            (set, name.clone(), value.clone(), *shape),
            || {
                readers
                    .for_field(name.as_str())
                    .any(|r| r.may_match_value(name.as_str(), bytes, shape))
            },
        )
    }
}

/// The answer `cache` remembers for `question`, worked out by `answer` the first time.
fn remembered<Q>(cache: &Cache<Q, bool>, question: Q, answer: impl FnOnce() -> bool) -> bool
where
    Q: std::hash::Hash + Eq + Send + Sync + 'static,
{
    cache.get(&question).unwrap_or_else(|| {
        let answer = answer();
        cache.insert(question, answer);
        answer
    })
}
