//! Which rules could match a request of a shape (made only of given bytes in each part), or
//! a given field value.
//!
//! A rule that does not match has no effect in ModSecurity (its actions, `setvar` included,
//! run only on a match; a chain's first link decides whether any of it runs). So a rule set
//! without the rules that cannot match any request of a class gives every request of that
//! class the same verdict, with the same rule ids, as the whole set. The answer here errs on
//! one side only: a rule is dropped only when its targets are all request text, every
//! transformation's output stays within a known alphabet, and its operator provably cannot
//! match a value over that alphabet; anything not understood keeps the rule.

use std::sync::{Arc, OnceLock};

use aho_corasick::AhoCorasick;
use regex_automata::meta::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};

use super::alphabet::Alphabet;
use super::pcre::{pattern, Pattern};
use super::query::Url;
use super::seclang::{RuleLink, Target};
use super::shape::{Shape, Source};
use super::tx_names::TxNames;
use super::value;

/// A rule link read once, to be asked about many alphabets without parsing again.
#[derive(Debug, Clone)]
pub struct Prepared {
    targets: Vec<Target>,
    transformations: Vec<String>,
    negated: bool,
    /// It tests only the presence of TX variables no rule sets (`tx_names`).
    never: bool,
    /// Shared by the rule sets' copies, with what it builds on first use.
    operator: Arc<Operator>,
}

/// What an operator needs of a value's bytes to match.
#[derive(Debug)]
enum Operator {
    /// A pattern as `regex_syntax` reads it (`pcre`), compiled when a value is first asked
    /// about (`None`: too large to compile, may match anything).
    Pattern(Box<Pattern>, OnceLock<Option<Regex>>),
    /// Any of these phrases; searched case-insensitively (never fewer matches than
    /// ModSecurity's), with a searcher built on first use.
    Phrases(Vec<Vec<u8>>, OnceLock<Option<AhoCorasick>>),
    /// This text, where the operator looks for it (`@contains`, `@streq`, ...).
    Text(TextAt, Vec<u8>),
    /// A byte outside these.
    ByteOutside(Alphabet),
    /// This byte (`%` for `@validateUrlEncoding`).
    Byte(u8),
    /// A byte beyond ASCII (`@validateUtf8Encoding`).
    NonAscii,
    /// libinjection (`@detectSQLi`, `@detectXSS`): any bytes may be one.
    Sqli,
    Xss,
    /// Not understood, or computed per request (`%{...}`): may match anything.
    Anything,
}

/// Where a text operator looks for its text in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextAt {
    Anywhere,
    /// As a word (`@containsWord`).
    Word,
    Start,
    End,
    /// The whole value (`@streq`).
    Whole,
}

/// How a link reads a request field.
enum Reading {
    No,
    /// Its value.
    Value,
    /// As part of something else (the whole request): any value may move it.
    Whole,
}

impl Prepared {
    /// `phrases` reads an `@pmFromFile` list; `tx` tells which TX variables may exist.
    pub fn new(
        link: &RuleLink,
        phrases: &dyn Fn(&str) -> Option<Vec<Vec<u8>>>,
        tx: &TxNames,
    ) -> Self {
        let (name, param) = (link.operator.name.as_str(), link.operator.param.as_str());
        let operator = if param.contains("%{") {
            Operator::Anything
        } else {
            match name {
                "rx" => pattern(param).map_or(Operator::Anything, |p| {
                    Operator::Pattern(Box::new(p), OnceLock::new())
                }),
                "pm" => Operator::Phrases(
                    param
                        .split_whitespace()
                        .map(|p| p.as_bytes().to_vec())
                        .collect(),
                    OnceLock::new(),
                ),
                "pmFromFile" | "pmf" => phrases(param).map_or(Operator::Anything, |list| {
                    Operator::Phrases(list, OnceLock::new())
                }),
                "contains" => Operator::Text(TextAt::Anywhere, param.as_bytes().to_vec()),
                "containsWord" => Operator::Text(TextAt::Word, param.as_bytes().to_vec()),
                "beginsWith" => Operator::Text(TextAt::Start, param.as_bytes().to_vec()),
                "endsWith" => Operator::Text(TextAt::End, param.as_bytes().to_vec()),
                "streq" => Operator::Text(TextAt::Whole, param.as_bytes().to_vec()),
                "validateByteRange" => {
                    byte_ranges(param).map_or(Operator::Anything, Operator::ByteOutside)
                }
                "validateUrlEncoding" => Operator::Byte(b'%'),
                "validateUtf8Encoding" => Operator::NonAscii,
                "detectSQLi" => Operator::Sqli,
                "detectXSS" => Operator::Xss,
                _ => Operator::Anything,
            }
        };
        Self {
            targets: link.targets.clone(),
            transformations: link
                .transformations()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            negated: link.operator.negated,
            never: tests_unset_variables(link, tx),
            operator: Arc::new(operator),
        }
    }

    /// Whether the link could match a bodiless request of the given shape (its bytes by
    /// source).
    pub fn may_match(&self, request: &Shape) -> bool {
        if self.never {
            return false;
        }
        if self.negated {
            return true;
        }
        // What the targets can hold; an exclusion adds nothing.
        let mut input = Alphabet::EMPTY;
        for t in self.targets.iter().filter(|t| !t.excluded) {
            match Source::of_variable(&t.name) {
                Some(source) if !t.counted => input = input.union(request.get(source)),
                _ => return true,
            }
        }
        self.operator_may_match_over(input)
    }

    /// Whether the link reads request fields' values (or the whole request).
    pub fn reads_fields(&self) -> bool {
        self.targets.iter().any(|t| {
            matches!(
                t.name.as_str(),
                "REQUEST_HEADERS" | "FULL_REQUEST" | "FULL_REQUEST_LENGTH"
            )
        })
    }

    /// The field the link reads by name (`REQUEST_HEADERS:Referer`), lower case, if that
    /// is the only way it reads fields; `None` when it reads every field (or the request).
    pub fn only_field(&self) -> Option<String> {
        let mut only = None;
        for t in self.targets.iter().filter(|t| !t.counted && !t.excluded) {
            match (t.name.as_str(), t.selector.as_deref()) {
                ("FULL_REQUEST" | "FULL_REQUEST_LENGTH", _) | ("REQUEST_HEADERS", None) => {
                    return None
                }
                ("REQUEST_HEADERS", Some(sel)) if sel.starts_with('/') => return None,
                ("REQUEST_HEADERS", Some(name)) => match &only {
                    None => only = Some(name.to_ascii_lowercase()),
                    Some(o) if *o == name.to_ascii_lowercase() => {}
                    Some(_) => return None,
                },
                _ => {}
            }
        }
        only
    }

    /// Whether the link reads cookie values (`REQUEST_COOKIES`).
    pub fn reads_cookies(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.name == "REQUEST_COOKIES" && !t.counted && !t.excluded)
    }

    /// Whether the link could match on cookie `name` holding exactly `value` (a pair as
    /// libmodsecurity splits the `Cookie` field).
    pub fn may_match_cookie(&self, name: &str, value: &[u8]) -> bool {
        self.may_match_member("REQUEST_COOKIES", name, value)
    }

    /// Whether the link could match on the value of the request field `field` (lower case)
    /// when that value is made of `value`'s bytes. True when it reads something that may
    /// carry the value other than the field itself (the whole request).
    pub fn may_match_field(&self, field: &str, value: Alphabet) -> bool {
        match self.reading("REQUEST_HEADERS", field) {
            Reading::No => false,
            Reading::Whole => true,
            Reading::Value => self.negated || self.operator_may_match_over(value),
        }
    }

    /// Whether the link could match on the request field `field` (lower case) holding
    /// exactly `value`.
    pub fn may_match_value(&self, field: &str, value: &[u8]) -> bool {
        self.may_match_member("REQUEST_HEADERS", field, value)
    }

    /// Whether the link could match on the member `name` of `collection` holding exactly
    /// `value`.
    fn may_match_member(&self, collection: &str, name: &str, value: &[u8]) -> bool {
        match self.reading(collection, name) {
            Reading::No => false,
            Reading::Whole => true,
            Reading::Value => self.may_match_exactly(value),
        }
    }

    /// Whether the link reads query arguments' values (`ARGS`, `ARGS_GET`).
    pub fn reads_args(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.name.as_str(), "ARGS" | "ARGS_GET") && !t.counted && !t.excluded)
    }

    /// Whether the link could match on a query argument made of `value`'s bytes, whatever
    /// its name.
    pub fn may_match_arg_over(&self, value: Alphabet) -> bool {
        self.reads_args() && (self.negated || self.operator_may_match_over(value))
    }

    /// Whether the link could match on the query argument `name` holding exactly `value`.
    pub fn may_match_arg(&self, name: &str, value: &[u8]) -> bool {
        self.may_match_member("ARGS", name, value) || self.may_match_member("ARGS_GET", name, value)
    }

    /// Whether the link reads a string holding the query (or the whole request).
    pub fn reads_url(&self) -> bool {
        self.targets
            .iter()
            .any(|t| !t.counted && !t.excluded && URL_VARIABLES.contains(&t.name.as_str()))
    }

    /// Whether the link reads the whole request (`FULL_REQUEST`): any part may move it.
    pub fn reads_whole_request(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.name.as_str(), "FULL_REQUEST" | "FULL_REQUEST_LENGTH"))
    }

    /// Whether the link could match on the strings libmodsecurity derives from a request
    /// line of `url` (`Url`: a target whose reading is certain).
    pub fn may_match_url(&self, url: &Url<'_>) -> bool {
        self.targets
            .iter()
            .filter(|t| !t.counted && !t.excluded)
            .any(|t| match t.name.as_str() {
                "REQUEST_LINE" => self.may_match_exactly(url.line.as_bytes()),
                "REQUEST_URI" => self.may_match_exactly(&url.uri),
                "REQUEST_URI_RAW" => self.may_match_exactly(url.raw.as_bytes()),
                "QUERY_STRING" => self.may_match_exactly(url.query.as_bytes()),
                "FULL_REQUEST" | "FULL_REQUEST_LENGTH" => true,
                _ => false,
            })
    }

    /// Whether the link's operator could match (the negation minded) this exact value.
    fn may_match_exactly(&self, value: &[u8]) -> bool {
        if self.negated {
            !self.operator_certainly_matches_value(value)
        } else {
            self.operator_may_match_value(value)
        }
    }

    /// How the link reads the member `name` of `collection` (`REQUEST_HEADERS`,
    /// `REQUEST_COOKIES`).
    fn reading(&self, collection: &str, name: &str) -> Reading {
        let mut reads = false;
        let mut named = false;
        for t in &self.targets {
            match t.name.as_str() {
                "FULL_REQUEST" | "FULL_REQUEST_LENGTH" => return Reading::Whole,
                c if c == collection && !t.counted && !t.excluded => {
                    reads |= match t.selector.as_deref() {
                        None => true,
                        Some(pattern) if pattern.starts_with('/') => true,
                        Some(selected) => {
                            let this = selected.eq_ignore_ascii_case(name);
                            named |= this;
                            this
                        }
                    };
                }
                _ => {}
            }
        }
        // Named and taken out at once: which wins is not counted on.
        if reads && (named || !self.excludes_field(collection, name)) {
            Reading::Value
        } else {
            Reading::No
        }
    }

    /// Whether a target takes the request field `name` out of what the link reads:
    /// `!REQUEST_HEADERS:Referer` by its exact name, in any case (libmodsecurity 3.0.9
    /// applies the CRS's capitalised exclusions to the edge's lower-case names; a test pins
    /// it). Exclusions by pattern, and those of other collections, are not counted on:
    /// reading more only keeps more.
    fn excludes_field(&self, collection: &str, name: &str) -> bool {
        collection == "REQUEST_HEADERS"
            && self.targets.iter().any(|t| {
                t.excluded
                    && !t.counted
                    && t.name == collection
                    && t.selector
                        .as_deref()
                        .is_some_and(|s| !s.starts_with('/') && s.eq_ignore_ascii_case(name))
            })
    }

    /// Whether the operator could match `value` after the transformations.
    fn operator_may_match_value(&self, value: &[u8]) -> bool {
        let stages = value::stages(value, &self.transformations, transformed);
        stages
            .rest
            .is_some_and(|seen| self.operator_may_match_stages(seen))
            || stages.exact.iter().any(|v| self.operator_matches(v))
    }

    /// Whether the operator matches `value` after the transformations, as libmodsecurity's
    /// would, known for certain: every stage replayed and matched by an unwidened pattern
    /// or a text test. False whenever in doubt.
    fn operator_certainly_matches_value(&self, value: &[u8]) -> bool {
        let stages = value::stages(value, &self.transformations, transformed);
        stages.rest.is_none()
            && stages
                .exact
                .iter()
                .all(|v| self.operator_certainly_matches(v))
    }

    /// Whether the operator certainly matches this exact (transformed) value. An unwidened
    /// pattern agrees with PCRE on printable ASCII (`pcre`); the text tests are
    /// case-sensitive in libmodsecurity 3.0.9.
    fn operator_certainly_matches(&self, v: &[u8]) -> bool {
        match &*self.operator {
            Operator::Pattern(p, compiled)
                if p.exact && v.iter().all(|b| (b' '..=b'~').contains(b)) =>
            {
                compiled
                    .get_or_init(|| Regex::builder().build_from_hir(&p.hir).ok())
                    .as_ref()
                    .is_some_and(|re| re.is_match(v))
            }
            Operator::Text(at, text) => match at {
                TextAt::Anywhere => text.is_empty() || v.windows(text.len()).any(|w| w == text),
                TextAt::Start => v.starts_with(text),
                TextAt::End => v.ends_with(text),
                TextAt::Whole => v == text.as_slice(),
                TextAt::Word => false,
            },
            _ => false,
        }
    }

    /// Whether the operator could match this exact (transformed) value: patterns in their
    /// widened form, phrases and text in any case.
    fn operator_matches(&self, v: &[u8]) -> bool {
        match &*self.operator {
            Operator::Pattern(p, compiled) => compiled
                .get_or_init(|| Regex::builder().build_from_hir(&p.hir).ok())
                .as_ref()
                .is_none_or(|re| re.is_match(v)),
            Operator::Phrases(list, searcher) => searcher
                .get_or_init(|| {
                    AhoCorasick::builder()
                        .ascii_case_insensitive(true)
                        .build(list)
                        .ok()
                })
                .as_ref()
                .is_none_or(|ac| ac.is_match(v)),
            // In any case: never fewer matches than libmodsecurity's.
            Operator::Text(at, text) => match at {
                TextAt::Anywhere | TextAt::Word => {
                    text.is_empty() || v.windows(text.len()).any(|w| w.eq_ignore_ascii_case(text))
                }
                TextAt::Start => {
                    v.len() >= text.len() && v[..text.len()].eq_ignore_ascii_case(text)
                }
                TextAt::End => {
                    v.len() >= text.len() && v[v.len() - text.len()..].eq_ignore_ascii_case(text)
                }
                TextAt::Whole => v.eq_ignore_ascii_case(text),
            },
            Operator::ByteOutside(allowed) => v.iter().any(|b| !allowed.contains(*b)),
            Operator::Byte(b) => v.contains(b),
            Operator::NonAscii => !v.is_ascii(),
            Operator::Sqli => value::is_sqli(v),
            Operator::Xss => value::is_xss(v),
            Operator::Anything => true,
        }
    }

    /// Whether the operator could match after the transformations of values over `input`.
    fn operator_may_match_over(&self, input: Alphabet) -> bool {
        // Every stage of the transformation pipeline: `multiMatch` runs the operator after
        // each, and a union of stages is never smaller than the last one.
        let mut value = input.case_closed();
        let mut seen = value;
        for t in &self.transformations {
            value = transformed(t, value);
            seen = seen.union(value);
        }
        self.operator_may_match_stages(seen)
    }

    /// Whether the operator could match a value over `seen` (every stage's bytes).
    fn operator_may_match_stages(&self, seen: Alphabet) -> bool {
        match &*self.operator {
            Operator::Pattern(p, _) => hir_may_match(&p.hir, seen),
            Operator::Phrases(list, _) => list.iter().any(|p| seen.covers(p)),
            Operator::Text(_, text) => seen.covers(text),
            Operator::ByteOutside(allowed) => !seen.is_subset_of(allowed),
            Operator::Byte(b) => seen.contains(*b),
            Operator::NonAscii => seen.has_non_ascii(),
            Operator::Sqli | Operator::Xss | Operator::Anything => true,
        }
    }
}

/// The bytes a transformation can produce from values over `input` (a case-closed set).
fn transformed(name: &str, input: Alphabet) -> Alphabet {
    let decodes_if = |b: u8| {
        if input.contains(b) {
            Alphabet::ALL
        } else {
            input
        }
    };
    match name.to_ascii_lowercase().as_str() {
        "lowercase" | "uppercase" | "trim" | "trimleft" | "trimright" | "removenulls"
        | "removewhitespace" | "removecomments" | "removecommentschar" | "normalisepath"
        | "normalizepath" => input,
        "compresswhitespace" | "replacecomments" | "replacenulls" | "cmdline" => input.with(b' '),
        "normalisepathwin" | "normalizepathwin" => input.with(b'/'),
        "urldecode" | "urldecodeuni" => decodes_if(b'%').union(if input.contains(b'+') {
            Alphabet::of(b" ")
        } else {
            Alphabet::EMPTY
        }),
        "htmlentitydecode" => decodes_if(b'&'),
        "jsdecode" | "cssdecode" | "escapeseqdecode" => decodes_if(b'\\'),
        "utf8tounicode" if !input.has_non_ascii() => input,
        _ => Alphabet::ALL,
    }
}

/// The variables holding the query's text: the request line, the target (decoded and
/// raw), the query string; and the whole request.
const URL_VARIABLES: [&str; 6] = [
    "REQUEST_LINE",
    "REQUEST_URI",
    "REQUEST_URI_RAW",
    "QUERY_STRING",
    "FULL_REQUEST",
    "FULL_REQUEST_LENGTH",
];

/// Whether the link only counts TX variables no rule sets and needs a count above zero
/// (`SecRule &TX:ARG_LENGTH "@eq 1"`, the CRS's test for an optional limit): it never
/// matches.
fn tests_unset_variables(link: &RuleLink, tx: &TxNames) -> bool {
    let unset = |t: &Target| {
        t.counted
            && !t.excluded
            && t.name == "TX"
            && t.selector
                .as_deref()
                .is_some_and(|name| !name.starts_with('/') && !tx.may_exist(name))
    };
    let op = &link.operator;
    let needs_some = match op.param.trim().parse::<i64>() {
        Ok(n) => match op.name.as_str() {
            "eq" => n != 0,
            "ge" => n > 0,
            "gt" => n >= 0,
            _ => false,
        },
        Err(_) => false,
    };
    !op.negated && needs_some && !link.targets.is_empty() && link.targets.iter().all(unset)
}

/// `1-255` or `9,10,13,32-126`.
fn byte_ranges(param: &str) -> Option<Alphabet> {
    let mut set = Alphabet::EMPTY;
    for part in param.split(',') {
        let (lo, hi) = match part.trim().split_once('-') {
            Some((lo, hi)) => (lo.trim().parse::<u8>().ok()?, hi.trim().parse::<u8>().ok()?),
            None => {
                let b = part.trim().parse::<u8>().ok()?;
                (b, b)
            }
        };
        for b in lo..=hi {
            set.insert(b);
        }
    }
    Some(set)
}

/// Whether some string over `value` is in the language of `hir`, assertions ignored (a
/// search can place a match anywhere, and ignoring an assertion only widens it).
fn hir_may_match(hir: &Hir, value: Alphabet) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(l) => value.covers(&l.0),
        HirKind::Class(Class::Bytes(c)) => {
            c.ranges().iter().any(|r| value.meets(r.start(), r.end()))
        }
        HirKind::Class(Class::Unicode(c)) => c.ranges().iter().any(|r| {
            let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
            (lo < 0x80 && value.meets(lo as u8, hi.min(0x7F) as u8))
                || (hi >= 0x80 && value.has_non_ascii())
        }),
        HirKind::Repetition(r) => r.min == 0 || hir_may_match(&r.sub, value),
        HirKind::Capture(c) => hir_may_match(&c.sub, value),
        HirKind::Concat(parts) => parts.iter().all(|h| hir_may_match(h, value)),
        HirKind::Alternation(parts) => parts.iter().any(|h| hir_may_match(h, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seclang;

    fn rx(pattern: &str, alphabet: &[u8]) -> Option<bool> {
        super::pattern(pattern).map(|p| hir_may_match(&p.hir, Alphabet::of(alphabet).case_closed()))
    }

    #[test]
    fn a_pattern_needs_the_bytes_of_some_match() {
        assert_eq!(rx("<script", b"abc<script"), Some(true));
        assert_eq!(rx("<script", b"script"), Some(false));
        assert_eq!(rx("(?i)union.*select", b"UNIONSELECT"), Some(true));
        assert_eq!(rx("a|<b", b"xyz"), Some(false));
        assert_eq!(rx("a|<b", b"a"), Some(true));
        assert_eq!(rx("x*", b""), Some(true), "matches the empty string");
        assert_eq!(
            rx("[^a-z]", b"abc"),
            Some(true),
            "case closed: A is not a-z"
        );
        assert_eq!(rx("[^a-zA-Z]", b"abc"), Some(false));
        assert_eq!(rx("^$", b""), Some(true));
        assert_eq!(rx(r"\x5c", b"abc"), Some(false));
        assert_eq!(rx(r"\x5c", b"\\"), Some(true));
    }

    #[test]
    fn pcre_only_syntax_is_widened_not_narrowed() {
        // Lookarounds are dropped: the rest decides.
        assert_eq!(rx("(?!<)ab", b"ab"), Some(true));
        assert_eq!(rx("(?<=<)ab", b"ab"), Some(true));
        assert_eq!(rx("(?=x)<", b"x"), Some(false));
        // Back-references match anything.
        assert_eq!(rx(r"(a)\1", b"a"), Some(true));
        // Possessive and atomic.
        assert_eq!(rx("a++<", b"a"), Some(false));
        assert_eq!(rx("(?>a|<)", b"a"), Some(true));
        // PCRE takes these literally.
        assert_eq!(rx("a{", b"a"), Some(false));
        assert_eq!(rx("a{", b"a{"), Some(true));
        assert_eq!(rx("[[]", b"["), Some(true));
        assert_eq!(rx("[[]", b"a"), Some(false));
        assert_eq!(rx("[a&&b]", b"&"), Some(true));
        assert_eq!(rx("a{2}+", b"a"), Some(true));
        assert_eq!(rx(r"\h", b" "), Some(true));
        assert_eq!(rx(r"\v", b"\n"), Some(true));
        assert_eq!(rx(r"[\v]", b"\r"), Some(true));
        assert_eq!(rx(r"\Qa+\E<", b"a+"), Some(false));
        assert_eq!(rx(r"\Qa+\E", b"a+"), Some(true));
        // Not understood: the caller keeps the rule.
        assert_eq!(rx("(?R)", b"a"), None);
        assert_eq!(rx(r"\p{L}", b"a"), None);
    }

    #[test]
    fn a_field_value_that_no_rule_can_match_on() {
        let none = |_: &str| None;
        let digits = Alphabet::of(b"0123456789");
        let field = |rule: &str, name: &str, value: Alphabet| {
            Prepared::new(&link(rule), &none, &TxNames::any()).may_match_field(name, value)
        };
        let all_fields = r#"SecRule REQUEST_HEADERS "@rx [a-z]" "id:1""#;
        assert!(!field(all_fields, "x-request-id", digits));
        assert!(field(all_fields, "x-request-id", Alphabet::of(b"a1")));
        let one = r#"SecRule REQUEST_HEADERS:X-Request-Id "@rx ^\d+$" "id:1""#;
        assert!(field(one, "x-request-id", digits));
        assert!(!field(one, "x-trace", Alphabet::ALL), "another field");
        let pattern = r#"SecRule REQUEST_HEADERS:/^x-/ "@rx ." "id:1""#;
        assert!(
            field(pattern, "traceparent", digits),
            "a pattern may name any field"
        );
        let negated = r#"SecRule REQUEST_HEADERS "!@rx [a-z]" "id:1""#;
        assert!(field(negated, "x-request-id", digits));
        let whole = r#"SecRule FULL_REQUEST "@rx [a-z]" "id:1""#;
        assert!(field(whole, "x-request-id", digits));
        let count = r#"SecRule &REQUEST_HEADERS "@gt 0" "id:1""#;
        assert!(
            !field(count, "x-request-id", digits),
            "a count reads no value"
        );
        let other = r#"SecRule ARGS "@rx ." "id:1""#;
        assert!(!field(other, "x-request-id", digits));
    }

    #[test]
    fn transformations_widen_the_alphabet() {
        let plain = Alphabet::of(b"abc/").case_closed();
        assert_eq!(transformed("lowercase", plain), plain);
        assert_eq!(transformed("urlDecodeUni", plain), plain);
        assert_eq!(transformed("urlDecodeUni", plain.with(b'%')), Alphabet::ALL);
        assert!(transformed("urlDecode", plain.with(b'+')).contains(b' '));
        assert_eq!(
            transformed("htmlEntityDecode", plain.with(b'&')),
            Alphabet::ALL
        );
        assert_eq!(transformed("jsDecode", plain.with(b'\\')), Alphabet::ALL);
        assert_eq!(transformed("base64Decode", plain), Alphabet::ALL);
        assert_eq!(transformed("sha1", plain), Alphabet::ALL);
        assert_eq!(transformed("utf8toUnicode", plain), plain);
        assert_eq!(
            transformed("utf8toUnicode", plain.with(0xC3)),
            Alphabet::ALL
        );
        assert_eq!(transformed("someFutureThing", plain), Alphabet::ALL);
    }

    #[test]
    fn escaped_punctuation_stays_literal() {
        // `\<` is `<` to PCRE, a word boundary to `regex_syntax`; in a class it would not
        // parse at all.
        let p = pattern(r"a\<b[^\<\>\~]").expect("parses");
        let re = Regex::builder().build_from_hir(&p.hir).expect("compiles");
        assert!(re.is_match(b"a<bc"));
        assert!(!re.is_match(b"ab<"));
    }

    #[test]
    fn a_field_value_asked_about_itself() {
        let none = |_: &str| None;
        let value = |rule: &str, v: &str| {
            Prepared::new(&link(rule), &none, &TxNames::any())
                .may_match_value("referer", v.as_bytes())
        };
        let page = "https://site.test/articles/page-7?from=home&q=a%2Fb";
        // Its letters could spell `script`; the value does not.
        let xss = r#"SecRule REQUEST_HEADERS:Referer "@rx (?i)<script" "id:1,t:none,t:urlDecodeUni,t:htmlEntityDecode""#;
        assert!(!value(xss, page));
        assert!(value(xss, "https://site.test/?q=%3Cscript%3E"));
        assert!(value(xss, "https://site.test/?q=&lt;SCRIPT"));
        // ModSecurity compiles patterns MULTILINE: `$` before a line feed matches.
        let end = r#"SecRule REQUEST_HEADERS "@rx home$" "id:1,t:urlDecode""#;
        assert!(value(end, "from=home"));
        assert!(value(end, "from=home%0Anext"));
        // Past a transformation not replayed (`%u`), the rest is asked by alphabet.
        assert!(value(xss, "https://site.test/?q=%u003Cscript"));
        let sqli = r#"SecRule REQUEST_HEADERS:Referer "@detectSQLi" "id:1,t:urlDecodeUni""#;
        assert!(!value(sqli, page));
        assert!(value(
            sqli,
            "https://site.test/?id=1%27%20or%20%271%27%3D%271"
        ));
        let phrases = r#"SecRule REQUEST_HEADERS "@pm nikto sqlmap" "id:1,t:lowercase""#;
        assert!(!value(phrases, page));
        assert!(value(phrases, "Mozilla (SQLMap)"));
        let bytes = r#"SecRule REQUEST_HEADERS "@validateByteRange 32-126" "id:1,t:urlDecodeUni""#;
        assert!(!value(bytes, page));
        assert!(value(bytes, "a%00b"));
        // A negated operator is silent where its pattern certainly matches.
        let negated = r#"SecRule REQUEST_HEADERS "!@rx ^https" "id:1""#;
        assert!(!value(negated, page));
        assert!(value(negated, "http://site.test/"));
        let widened = r#"SecRule REQUEST_HEADERS "!@rx ^(?=h)https" "id:1""#;
        assert!(
            value(widened, page),
            "a widened pattern proves nothing negated"
        );
        let other = r#"SecRule REQUEST_HEADERS:User-Agent "@rx ." "id:1""#;
        assert!(!value(other, page), "another field");
        // A field taken out by name is not read, in whatever case the rule spells it;
        // by pattern, or named and taken out at once, it still is.
        let traversal = r#"SecRule REQUEST_HEADERS|!REQUEST_HEADERS:Referer "@rx \.\./" "id:1""#;
        let up = "https://site.test/docs/../index.html";
        assert!(!value(traversal, up));
        assert!(Prepared::new(&link(traversal), &none, &TxNames::any())
            .may_match_value("x-custom", up.as_bytes()));
        assert!(!Prepared::new(&link(traversal), &none, &TxNames::any())
            .may_match_field("referer", Alphabet::printable_without(b"")));
        for kept in [
            r#"SecRule REQUEST_HEADERS|!REQUEST_HEADERS:/^ref/ "@rx \.\./" "id:1""#,
            r#"SecRule REQUEST_HEADERS:Referer|!REQUEST_HEADERS:referer "@rx \.\./" "id:1""#,
            r#"SecRule REQUEST_HEADERS|!REQUEST_COOKIES:Referer "@rx \.\./" "id:1""#,
            r#"SecRule FULL_REQUEST|!REQUEST_HEADERS:Referer "@rx \.\./" "id:1""#,
        ] {
            assert!(value(kept, up), "{kept}");
        }
    }

    /// Negated operators are silent only where the edge knows they match: unwidened
    /// patterns and text tests, on the exact value.
    #[test]
    fn the_request_line_asked_exactly() {
        let none = |_: &str| None;
        let target = "/obj/1024?page=17";
        let query = crate::query::Query::of(target).unwrap();
        let url = Url::new("GET", target, "1.1", &query);
        let on_url =
            |rule: &str| Prepared::new(&link(rule), &none, &TxNames::any()).may_match_url(&url);
        assert!(!on_url(
            r#"SecRule REQUEST_LINE "!@rx ^GET /[a-z0-9/]+\?page=\d+ HTTP/1\.1$" "id:1""#
        ));
        assert!(on_url(
            r#"SecRule REQUEST_LINE "!@rx ^GET /[a-z]+ HTTP/1\.1$" "id:1""#
        ));
        assert!(
            on_url(r#"SecRule REQUEST_LINE "!@rx ^(?=GET)GET /" "id:1""#),
            "a widened pattern proves nothing negated"
        );
        assert!(!on_url(r#"SecRule REQUEST_LINE "@streq GET /" "id:1""#));
        assert!(
            on_url(r#"SecRule REQUEST_LINE "@beginsWith get /" "id:1""#),
            "any case"
        );
        assert!(!on_url(
            r#"SecRule REQUEST_LINE "!@beginsWith GET /" "id:1""#
        ));
        assert!(on_url(
            r#"SecRule REQUEST_LINE "!@beginsWith get /" "id:1""#
        ));
        assert!(!on_url(r#"SecRule QUERY_STRING "@endsWith =1" "id:1""#));
        assert!(on_url(r#"SecRule QUERY_STRING "@endsWith =17" "id:1""#));
        assert!(on_url(r#"SecRule REQUEST_URI "@rx \?page=\d" "id:1""#));
        assert!(
            on_url(r#"SecRule FULL_REQUEST "@rx <" "id:1""#),
            "the whole request"
        );
        assert!(
            !on_url(r#"SecRule REQUEST_FILENAME "@rx page" "id:1""#),
            "the path only"
        );
        // Arguments by name and value.
        let arg = |rule: &str, name: &str, value: &str| {
            Prepared::new(&link(rule), &none, &TxNames::any()).may_match_arg(name, value.as_bytes())
        };
        assert!(arg(r#"SecRule ARGS "@rx ^\d+$" "id:1""#, "page", "17"));
        assert!(!arg(r#"SecRule ARGS_GET "@rx [a-z]" "id:1""#, "page", "17"));
        assert!(!arg(r#"SecRule ARGS:id "@rx \d" "id:1""#, "page", "17"));
        assert!(arg(r#"SecRule ARGS:/^p/ "@rx \d" "id:1""#, "page", "17"));
        assert!(!arg(
            r#"SecRule ARGS:do "!@streq admin" "id:1""#,
            "do",
            "admin"
        ));
        assert!(arg(
            r#"SecRule ARGS:do "!@streq admin" "id:1""#,
            "do",
            "Admin"
        ));
    }

    /// The CRS's optional limits test their variable first; unset, the chain never runs.
    #[test]
    fn counts_of_variables_no_rule_sets_never_match() {
        let none = |_: &str| None;
        let shape = Shape::ANY;
        let parsed = |text: &str| seclang::parse(text, std::path::Path::new("/")).unwrap();
        let limit = r#"SecRule &TX:ARG_LENGTH "@eq 1" "id:1,phase:2,chain"
    SecRule ARGS "@gt %{tx.arg_length}" "t:length,block""#;
        let setup = r#"SecAction "id:2,phase:1,pass,setvar:tx.arg_length=400""#;
        let first = |text: &str| {
            let sources = [("t", parsed(text))];
            let tx = TxNames::of(&sources);
            let d = &sources[0]
                .1
                .iter()
                .find(|d| !d.links.is_empty())
                .unwrap()
                .links[0];
            Prepared::new(d, &none, &tx).may_match(&shape)
        };
        assert!(!first(limit));
        assert!(first(&format!(
            "{setup}
{limit}"
        )));
        for other in [
            r#"SecRule &TX:ARG_LENGTH "@eq 0" "id:1""#,
            r#"SecRule &TX:ARG_LENGTH "!@eq 1" "id:1""#,
            r#"SecRule &TX:/arg/ "@eq 1" "id:1""#,
            r#"SecRule &TX:ARG_LENGTH|&ARGS "@ge 1" "id:1""#,
            r#"SecRule TX:ARG_LENGTH "@eq 1" "id:1""#,
        ] {
            assert!(first(other), "{other}");
        }
    }

    fn link(rule: &str) -> RuleLink {
        let mut d = seclang::parse(rule, std::path::Path::new("/")).unwrap();
        d.remove(0).links.remove(0)
    }

    #[test]
    fn rules_kept_unless_provably_silent() {
        let none = |_: &str| None;
        let words = |_: &str| Some(vec![b"nikto".to_vec(), b"<sqlmap".to_vec()]);
        let plain = Alphabet::printable_without(b"<>'\"%&\\");
        let request = Shape::new(plain, plain, plain, plain);
        let may =
            |rule: &str| Prepared::new(&link(rule), &none, &TxNames::any()).may_match(&request);
        assert!(!may(r#"SecRule ARGS "@rx <script" "id:1""#));
        assert!(may(r#"SecRule ARGS "@rx (?i)union\s+select" "id:1""#));
        assert!(
            may(r#"SecRule TX:X "@rx <script" "id:1""#),
            "not request text"
        );
        assert!(may(r#"SecRule &ARGS "@rx <" "id:1""#), "a count");
        assert!(may(r#"SecRule ARGS "!@rx <script" "id:1""#), "negated");
        assert!(
            !may(r#"SecRule ARGS|!ARGS:x "@rx <script" "id:1""#),
            "an exclusion adds no values"
        );
        assert!(may(
            r#"SecRule ARGS "@rx <script" "id:1,t:urlDecodeUni,t:base64Decode""#
        ));
        assert!(!may(r#"SecRule ARGS "@pm <a <b" "id:1""#));
        assert!(may(r#"SecRule ARGS "@pm <a b" "id:1""#));
        assert!(!may(r#"SecRule ARGS "@contains '" "id:1""#));
        assert!(may(r#"SecRule ARGS "@contains %{tx.x}" "id:1""#));
        assert!(!may(r#"SecRule ARGS "@validateByteRange 32-126" "id:1""#));
        assert!(may(r#"SecRule ARGS "@validateByteRange 32-100" "id:1""#));
        assert!(!may(r#"SecRule ARGS "@validateUrlEncoding" "id:1""#));
        assert!(may(r#"SecRule ARGS "@detectSQLi" "id:1""#));
        assert!(may(r#"SecRule ARGS "@eq 0" "id:1""#));
        assert!(may(r#"SecRule ARGS "@rx (?R)" "id:1""#), "not understood");
        let file = link(r#"SecRule REQUEST_HEADERS:User-Agent "@pmFromFile ua.data" "id:1""#);
        let may_with = |phrases: &dyn Fn(&str) -> Option<Vec<Vec<u8>>>, request: &Shape| {
            Prepared::new(&file, phrases, &TxNames::any()).may_match(request)
        };
        assert!(may_with(&words, &request));
        let abc = Alphabet::of(b"abc");
        let letters = Shape::new(abc, abc, abc, abc);
        assert!(!may_with(&words, &letters));
        assert!(may_with(&none, &letters), "unreadable list");
        // Each target reads its own part of the request.
        let fields_only = Shape::new(abc, abc, abc, Alphabet::of(b"<"));
        let rule = |targets: &str| link(&format!("SecRule {targets} \"@rx <\" \"id:1\""));
        let may_fields = |targets: &str| {
            Prepared::new(&rule(targets), &none, &TxNames::any()).may_match(&fields_only)
        };
        assert!(!may_fields("ARGS|REQUEST_COOKIES|REQUEST_URI"));
        assert!(may_fields("ARGS|REQUEST_HEADERS:Referer"));
        // Which fields a rule reads.
        let only =
            |targets: &str| Prepared::new(&rule(targets), &none, &TxNames::any()).only_field();
        assert_eq!(
            only("ARGS|REQUEST_HEADERS:Referer").as_deref(),
            Some("referer")
        );
        assert_eq!(only("REQUEST_HEADERS"), None);
        assert_eq!(only("REQUEST_HEADERS:/^x-/"), None);
        assert_eq!(
            only("REQUEST_HEADERS:Referer|REQUEST_HEADERS:User-Agent"),
            None
        );
        assert!(Prepared::new(&rule("&REQUEST_HEADERS"), &none, &TxNames::any()).reads_fields());
        assert!(!Prepared::new(&rule("ARGS"), &none, &TxNames::any()).reads_fields());
    }
}
