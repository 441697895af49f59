//! PCRE patterns as `regex_syntax` reads them. ModSecurity compiles a rule's pattern with
//! PCRE (`DOTALL`, `MULTILINE`, no UTF mode); `regex_syntax` reads most of its syntax the
//! same way and refuses or misreads the rest. `pattern` spells a PCRE pattern in
//! `regex_syntax`'s terms, widening what it cannot express (lookarounds, back-references,
//! atomic and possessive matching) so that the language never shrinks, and says whether it
//! had to widen: an unwidened pattern matches an ASCII text without line breaks exactly
//! when PCRE's does (the escapes, classes, anchors and case folding then agree).

use regex_syntax::hir::Hir;

/// A PCRE pattern read by `regex_syntax`.
#[derive(Debug)]
pub struct Pattern {
    /// Its language contains the PCRE pattern's.
    pub hir: Hir,
    /// Nothing was widened: the same language, on printable ASCII.
    pub exact: bool,
}

/// `pcre` as `regex_syntax` reads it; `None` when it is beyond what `relaxed` and
/// `regex_syntax` read.
pub fn pattern(pcre: &str) -> Option<Pattern> {
    let mut widened = false;
    let text = relaxed(pcre, &mut widened)?;
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(false)
        .octal(true)
        .dot_matches_new_line(true)
        .multi_line(true)
        .nest_limit(1000)
        .build()
        .parse(&text)
        .ok()?;
    Some(Pattern {
        hir,
        exact: !widened,
    })
}

/// A pattern `regex_syntax` reads whose language contains the PCRE pattern's: lookarounds
/// dropped, atomic groups and possessive quantifiers made ordinary, back-references made
/// "anything", PCRE-only escapes spelt out, and the characters PCRE takes literally where
/// `regex_syntax` would not (`{` that starts no quantifier, `[` `&` `~` inside a class)
/// escaped. `widened` is set when the language grew. `None` for constructs it does not know
/// (recursion, callouts, verbs, extended mode).
fn relaxed(pattern: &str, widened: &mut bool) -> Option<String> {
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
                        *widened = true;
                    }
                    b'g' | b'k' => {
                        i = reference_end(p, i)?;
                        out.push_str(ANYTHING);
                        *widened = true;
                    }
                    // `\K` moves where the reported match starts, not whether there is one.
                    b'K' => {}
                    b'Z' | b'G' => *widened = true,
                    b'h' => out.push_str(r"[\t \xA0]"),
                    b'v' => out.push_str(r"[\n\x0B\x0C\r\x85]"),
                    b'R' => {
                        out.push_str(r"(?s:.{1,2})");
                        *widened = true;
                    }
                    b'H' | b'V' | b'N' | b'X' | b'C' => {
                        out.push_str(ANY);
                        *widened = true;
                    }
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
            b'[' => i = relaxed_class(pattern, i, &mut out, widened)?,
            b'(' if p.get(i + 1) == Some(&b'?') => {
                let rest = &p[i + 2..];
                if rest.starts_with(b"=")
                    || rest.starts_with(b"!")
                    || rest.starts_with(b"<=")
                    || rest.starts_with(b"<!")
                {
                    i = group_end(pattern, i)?;
                    *widened = true;
                } else if rest.starts_with(b"#") {
                    i += pattern[i..].find(')')? + 1;
                } else if rest.starts_with(b"P=") {
                    i += pattern[i..].find(')')? + 1;
                    out.push_str(ANYTHING);
                    *widened = true;
                } else if rest.starts_with(b">") || rest.starts_with(b"|") {
                    // Atomic groups can fail where ordinary ones match; a branch reset
                    // only renumbers.
                    *widened |= rest.starts_with(b">");
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
            b'+' if was_quantifier => {
                i += 1;
                *widened = true;
            }
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
    // Not `x`: PCRE keeps white space inside a class in extended mode, `regex_syntax` drops it.
    let flags = rest.iter().take_while(|c| b"imsU-".contains(c)).count();
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
                let (mut scratch, mut widened) = (String::new(), false);
                i = relaxed_class(pattern, i, &mut scratch, &mut widened)?;
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
fn relaxed_class(
    pattern: &str,
    start: usize,
    out: &mut String,
    widened: &mut bool,
) -> Option<usize> {
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
                        *widened = true;
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
    use super::*;
    use regex_automata::meta::Regex;

    fn exact(p: &str) -> Option<bool> {
        pattern(p).map(|p| p.exact)
    }

    #[test]
    fn says_when_it_widened() {
        // Re-spelt only: the same language.
        for same in [
            r"^(?i:get /[^?#]*(?:\?[^#\s]*)?)$",
            r"[\w\-\./]+\<a\>{",
            r"\Qa+b\E(?#note)(?|x|y)(?'n'z)\K\h\v",
            r"a{2,3}?b*?[[:alpha:]]",
        ] {
            assert_eq!(exact(same), Some(true), "{same}");
        }
        for widened in [
            r"a(?=b)",
            r"(?<!a)b",
            r"(a)\1",
            r"(?P<n>a)(?P=n)",
            r"(?>a|ab)c",
            r"a++b",
            r"a\Z",
            r"\Ga",
            r"\R",
            r"[\H]",
        ] {
            assert_eq!(exact(widened), Some(false), "{widened}");
        }
        // Extended mode keeps white space in classes in PCRE and not in `regex_syntax`.
        assert_eq!(exact("(?x)[ a]"), None);
    }

    /// CRS 920100's request-line grammar, read exactly: the edge can tell when it matches.
    #[test]
    fn an_unwidened_pattern_matches_as_pcre_does() {
        let grammar = r"^(?i:(?:[a-z]{3,10}\s+(?:\w{3,7}?://[\w\-\./]*(?::\d+)?)?/[^?#]*(?:\?[^#\s]*)?(?:#[\S]*)?|connect (?:\d{1,3}\.){3}\d{1,3}\.?(?::\d+)?|options \*)\s+[\w\./]+|get /[^?#]*(?:\?[^#\s]*)?(?:#[\S]*)?)$";
        let p = pattern(grammar).expect("reads");
        assert!(p.exact);
        let re = Regex::builder().build_from_hir(&p.hir).unwrap();
        assert!(re.is_match(b"GET /obj/1024?page=17 HTTP/1.1"));
        assert!(re.is_match(b"OPTIONS * HTTP/1.1"));
        assert!(!re.is_match(b"GET obj HTTP/1.1"));
        assert!(!re.is_match(b"GET /a?b HTTP/1.1 x"));
    }
}
