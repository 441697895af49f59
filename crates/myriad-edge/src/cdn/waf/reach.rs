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
use super::seclang::{RuleLink, Target};
use super::shape::{Shape, Source};
use super::value;

/// A rule link read once, to be asked about many alphabets without parsing again.
#[derive(Debug, Clone)]
pub struct Prepared {
    targets: Vec<Target>,
    transformations: Vec<String>,
    negated: bool,
    /// Shared by the rule sets' copies, with what it builds on first use.
    operator: Arc<Operator>,
}

/// What an operator needs of a value's bytes to match.
#[derive(Debug)]
enum Operator {
    /// A pattern, widened to what `regex_syntax` reads (a superset of PCRE's matches with
    /// ModSecurity's flags, `DOTALL` and `MULTILINE`); compiled when a value is first
    /// asked about (`None`: too large to compile, may match anything).
    Pattern(Box<Hir>, OnceLock<Option<Regex>>),
    /// Any of these phrases; searched case-insensitively (never fewer matches than
    /// ModSecurity's), with a searcher built on first use.
    Phrases(Vec<Vec<u8>>, OnceLock<Option<AhoCorasick>>),
    /// This text (`@contains`, `@streq`, ...).
    Text(Vec<u8>),
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

/// How a link reads a request field.
enum Reading {
    No,
    /// Its value.
    Value,
    /// As part of something else (the whole request): any value may move it.
    Whole,
}

impl Prepared {
    /// `phrases` reads an `@pmFromFile` list.
    pub fn new(link: &RuleLink, phrases: &dyn Fn(&str) -> Option<Vec<Vec<u8>>>) -> Self {
        let (name, param) = (link.operator.name.as_str(), link.operator.param.as_str());
        let operator = if param.contains("%{") {
            Operator::Anything
        } else {
            match name {
                "rx" => pattern(param).map_or(Operator::Anything, |h| {
                    Operator::Pattern(Box::new(h), OnceLock::new())
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
                "contains" | "containsWord" | "beginsWith" | "endsWith" | "streq" => {
                    Operator::Text(param.as_bytes().to_vec())
                }
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
            operator: Arc::new(operator),
        }
    }

    /// Whether the link could match a bodiless request of the given shape (its bytes by
    /// source).
    pub fn may_match(&self, request: &Shape) -> bool {
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
            Reading::Value => self.negated || self.operator_may_match_value(value),
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

    /// Whether the operator could match this exact (transformed) value: patterns in their
    /// widened form, phrases and text in any case.
    fn operator_matches(&self, v: &[u8]) -> bool {
        match &*self.operator {
            Operator::Pattern(hir, compiled) => compiled
                .get_or_init(|| Regex::builder().build_from_hir(hir).ok())
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
            Operator::Text(text) => {
                text.is_empty() || v.windows(text.len()).any(|w| w.eq_ignore_ascii_case(text))
            }
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
            Operator::Pattern(hir, _) => hir_may_match(hir, seen),
            Operator::Phrases(list, _) => list.iter().any(|p| seen.covers(p)),
            Operator::Text(text) => seen.covers(text),
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

/// A PCRE pattern widened to what `regex_syntax` reads; `None` when it is beyond what
/// `relaxed` and `regex_syntax` read.
fn pattern(pcre: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(false)
        .octal(true)
        .dot_matches_new_line(true)
        .multi_line(true)
        .nest_limit(1000)
        .build()
        .parse(&relaxed(pcre)?)
        .ok()
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

/// A pattern `regex_syntax` reads whose language contains the PCRE pattern's: lookarounds
/// dropped, atomic groups and possessive quantifiers made ordinary, back-references made
/// "anything", PCRE-only escapes spelt out, and the characters PCRE takes literally where
/// `regex_syntax` would not (`{` that starts no quantifier, `[` `&` `~` inside a class)
/// escaped. `None` for constructs it does not know (recursion, callouts, verbs).
fn relaxed(pattern: &str) -> Option<String> {
    const ANY: &str = "(?s:.)";
    const ANYTHING: &str = "(?s:.*)";
    let p = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    // Whether the last thing written was a quantifier (a `+` after it is possessive).
    let mut after_quantifier = false;
    while i < p.len() {
        let was_quantifier = std::mem::take(&mut after_quantifier);
        match p[i] {
            b'\\' => {
                let c = *p.get(i + 1)?;
                i += 2;
                match c {
                    b'1'..=b'9' => {
                        while p.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        out.push_str(ANYTHING);
                    }
                    b'g' | b'k' => {
                        i = reference_end(p, i)?;
                        out.push_str(ANYTHING);
                    }
                    b'Z' | b'G' | b'K' => {}
                    b'h' => out.push_str(r"[\t \xA0]"),
                    b'v' => out.push_str(r"[\n\x0B\x0C\r\x85]"),
                    b'R' => out.push_str(r"(?s:.{1,2})"),
                    b'H' | b'V' | b'N' | b'X' | b'C' => out.push_str(ANY),
                    b'e' => out.push_str(r"\x1B"),
                    b'Q' => {
                        let rest = &pattern[i..];
                        let end = rest.find(r"\E").unwrap_or(rest.len());
                        out.push_str(&regex_syntax::escape(&rest[..end]));
                        i += (end + 2).min(rest.len());
                    }
                    b'p' | b'P' => return None,
                    // PCRE reads any escaped punctuation as itself; `regex_syntax` reads
                    // `\<` and `\>` as word boundaries.
                    c if c.is_ascii_punctuation() => push_hex_escape(&mut out, c),
                    c if c.is_ascii() => {
                        out.push('\\');
                        out.push(char::from(c));
                    }
                    _ => return None,
                }
            }
            b'[' => i = relaxed_class(pattern, i, &mut out)?,
            b'(' if p.get(i + 1) == Some(&b'?') => {
                let rest = &p[i + 2..];
                if rest.starts_with(b"=")
                    || rest.starts_with(b"!")
                    || rest.starts_with(b"<=")
                    || rest.starts_with(b"<!")
                {
                    i = group_end(pattern, i)?;
                } else if rest.starts_with(b"#") {
                    i += pattern[i..].find(')')? + 1;
                } else if rest.starts_with(b"P=") {
                    i += pattern[i..].find(')')? + 1;
                    out.push_str(ANYTHING);
                } else if rest.starts_with(b">") || rest.starts_with(b"|") {
                    out.push_str("(?:");
                    i += 3;
                } else if rest.starts_with(b"'") {
                    let close = pattern[i + 3..].find('\'')?;
                    out.push_str("(?:");
                    i += 3 + close + 1;
                } else if is_flags_or_named(rest) {
                    out.push_str("(?");
                    i += 2;
                } else {
                    return None; // recursion, callouts, conditionals
                }
            }
            b'(' if p.get(i + 1) == Some(&b'*') => return None,
            b'{' => match quantifier_end(p, i) {
                Some(end) => {
                    out.push_str(&pattern[i..end]);
                    i = end;
                    after_quantifier = true;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            b'}' | b']' => {
                out.push('\\');
                out.push(char::from(p[i]));
                i += 1;
            }
            // After a quantifier, `+` makes it possessive and `?` lazy.
            b'+' if was_quantifier => i += 1,
            b'?' if was_quantifier => {
                out.push('?');
                i += 1;
            }
            b'*' | b'+' | b'?' => {
                out.push(char::from(p[i]));
                i += 1;
                after_quantifier = true;
            }
            _ => {
                let c = pattern[i..].chars().next()?;
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Some(out)
}

/// A byte as `\xHH`, a literal wherever it stands.
fn push_hex_escape(out: &mut String, b: u8) {
    out.push_str(&format!(r"\x{b:02X}"));
}

/// After `(?`: flags (`i)`, `-s:`) or a named group, which `regex_syntax` reads as PCRE
/// does. (PCRE's `(?R)` is recursion; `regex_syntax` would read a flag.)
fn is_flags_or_named(rest: &[u8]) -> bool {
    if rest.starts_with(b"<") || rest.starts_with(b"P<") {
        return true;
    }
    let flags = rest.iter().take_while(|c| b"imsxU-".contains(c)).count();
    matches!(rest.get(flags), Some(b':' | b')'))
}

/// `{n}`, `{n,}` or `{n,m}` at `start`: the index after it.
fn quantifier_end(p: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let digits = |i: &mut usize| {
        let from = *i;
        while p.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    if !digits(&mut i) {
        return None;
    }
    if p.get(i) == Some(&b',') {
        i += 1;
        digits(&mut i);
    }
    (p.get(i) == Some(&b'}')).then_some(i + 1)
}

/// After `\g` or `\k`: the end of the reference (`{name}`, `<name>`, `'name'` or digits).
fn reference_end(p: &[u8], i: usize) -> Option<usize> {
    let close = match p.get(i)? {
        b'{' => b'}',
        b'<' => b'>',
        b'\'' => b'\'',
        _ => {
            let mut j = i;
            while p.get(j).is_some_and(|c| c.is_ascii_digit() || *c == b'-') {
                j += 1;
            }
            return (j > i).then_some(j);
        }
    };
    let len = p[i + 1..].iter().position(|&c| c == close)?;
    Some(i + 1 + len + 1)
}

/// The index after the group opened at `start`, nesting, escapes and classes minded.
fn group_end(pattern: &str, start: usize) -> Option<usize> {
    let p = pattern.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 2,
            b'[' => {
                let mut scratch = String::new();
                i = relaxed_class(pattern, i, &mut scratch)?;
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Copies the class at `start` as `regex_syntax` reads it; returns the index after it.
fn relaxed_class(pattern: &str, start: usize, out: &mut String) -> Option<usize> {
    let p = pattern.as_bytes();
    let mut i = start + 1;
    let mut class = String::from("[");
    if p.get(i) == Some(&b'^') {
        class.push('^');
        i += 1;
    }
    if p.get(i) == Some(&b']') {
        class.push_str(r"\]");
        i += 1;
    }
    loop {
        match *p.get(i)? {
            b']' => {
                class.push(']');
                i += 1;
                break;
            }
            b'[' if p.get(i + 1) == Some(&b':') => {
                let len = pattern[i..].find(":]")? + 2;
                class.push_str(&pattern[i..i + len]);
                i += len;
            }
            b'\\' => {
                let c = *p.get(i + 1)?;
                i += 2;
                match c {
                    b'h' => class.push_str(r"\t \xA0"),
                    b'v' => class.push_str(r"\n\x0B\x0C\r\x85"),
                    b'H' | b'V' | b'N' | b'R' | b'X' => {
                        // Nearly everything: the class becomes any byte.
                        let end = relaxed_class_end(p, i)?;
                        out.push_str("(?s:.)");
                        return Some(end);
                    }
                    b'e' => class.push_str(r"\x1B"),
                    b'Q' | b'E' | b'p' | b'P' => return None,
                    c if c.is_ascii_punctuation() => push_hex_escape(&mut class, c),
                    c if c.is_ascii() => {
                        class.push('\\');
                        class.push(char::from(c));
                    }
                    _ => return None,
                }
            }
            c @ (b'[' | b'&' | b'~') => {
                class.push('\\');
                class.push(char::from(c));
                i += 1;
            }
            b'-' if p.get(i + 1) == Some(&b'-') => {
                class.push_str(r"\-");
                i += 1;
            }
            _ => {
                let c = pattern[i..].chars().next()?;
                class.push(c);
                i += c.len_utf8();
            }
        }
    }
    out.push_str(&class);
    Some(i)
}

/// From inside a class: the index after its closing `]`.
fn relaxed_class_end(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *p.get(i)? {
            b'\\' => i += 2,
            b']' => return Some(i + 1),
            b'[' if p.get(i + 1) == Some(&b':') => {
                i += 2;
                while *p.get(i)? != b']' {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::seclang;
    use super::*;

    fn rx(pattern: &str, alphabet: &[u8]) -> Option<bool> {
        super::pattern(pattern).map(|h| hir_may_match(&h, Alphabet::of(alphabet).case_closed()))
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
            Prepared::new(&link(rule), &none).may_match_field(name, value)
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
        let hir = pattern(r"a\<b[^\<\>\~]").expect("parses");
        let re = Regex::builder().build_from_hir(&hir).expect("compiles");
        assert!(re.is_match(b"a<bc"));
        assert!(!re.is_match(b"ab<"));
    }

    #[test]
    fn a_field_value_asked_about_itself() {
        let none = |_: &str| None;
        let value = |rule: &str, v: &str| {
            Prepared::new(&link(rule), &none).may_match_value("referer", v.as_bytes())
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
        let negated = r#"SecRule REQUEST_HEADERS "!@rx ^https" "id:1""#;
        assert!(
            value(negated, page),
            "a negated operator may match anything"
        );
        let other = r#"SecRule REQUEST_HEADERS:User-Agent "@rx ." "id:1""#;
        assert!(!value(other, page), "another field");
        // A field taken out by name is not read, in whatever case the rule spells it;
        // by pattern, or named and taken out at once, it still is.
        let traversal = r#"SecRule REQUEST_HEADERS|!REQUEST_HEADERS:Referer "@rx \.\./" "id:1""#;
        let up = "https://site.test/docs/../index.html";
        assert!(!value(traversal, up));
        assert!(Prepared::new(&link(traversal), &none).may_match_value("x-custom", up.as_bytes()));
        assert!(!Prepared::new(&link(traversal), &none)
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
        let may = |rule: &str| Prepared::new(&link(rule), &none).may_match(&request);
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
            Prepared::new(&file, phrases).may_match(request)
        };
        assert!(may_with(&words, &request));
        let abc = Alphabet::of(b"abc");
        let letters = Shape::new(abc, abc, abc, abc);
        assert!(!may_with(&words, &letters));
        assert!(may_with(&none, &letters), "unreadable list");
        // Each target reads its own part of the request.
        let fields_only = Shape::new(abc, abc, abc, Alphabet::of(b"<"));
        let rule = |targets: &str| link(&format!("SecRule {targets} \"@rx <\" \"id:1\""));
        let may_fields =
            |targets: &str| Prepared::new(&rule(targets), &none).may_match(&fields_only);
        assert!(!may_fields("ARGS|REQUEST_COOKIES|REQUEST_URI"));
        assert!(may_fields("ARGS|REQUEST_HEADERS:Referer"));
        // Which fields a rule reads.
        let only = |targets: &str| Prepared::new(&rule(targets), &none).only_field();
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
        assert!(Prepared::new(&rule("&REQUEST_HEADERS"), &none).reads_fields());
        assert!(!Prepared::new(&rule("ARGS"), &none).reads_fields());
    }
}
