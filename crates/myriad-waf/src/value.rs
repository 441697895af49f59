//! One field value as a rule link's operator sees it: the value through the link's
//! transformations, replayed as libmodsecurity 3.0 does them (read in its source:
//! `src/actions/transformations/`) wherever the output is certain.
//!
//! `reach` asks about every value made of some bytes; a Referer holds letters, digits and
//! `/.?=&`, from which many patterns could be spelt, yet a given Referer rarely matches
//! any rule. Asking about the value itself needs its transformations to be exact: each is
//! either replayed (case, NULs, white space, `cmdLine`, `%HH`, the five named HTML
//! entities) or, where the output is not certain here (`%u` escapes, numeric entities,
//! backslash escapes, anything else), the value is given up at that stage and the rest is
//! answered for its alphabet (`Stages::rest`).

use std::ffi::{c_char, c_int};

use super::alphabet::Alphabet;

/// What an operator must be run on: every exact stage (`multiMatch` runs it after each
/// transformation; without it only the last counts, so all of them is never less), and,
/// past a transformation not replayed here, the bytes the remaining ones could produce.
pub struct Stages {
    pub exact: Vec<Vec<u8>>,
    pub rest: Option<Alphabet>,
}

/// `value` through `transformations` (names as written, in order), `alphabet_after`
/// answering for a transformation not replayed (`reach`'s alphabet of its output).
pub fn stages(
    value: &[u8],
    transformations: &[String],
    alphabet_after: impl Fn(&str, Alphabet) -> Alphabet,
) -> Stages {
    let mut exact = vec![value.to_vec()];
    for (i, t) in transformations.iter().enumerate() {
        let Some(last) = exact.last() else { break };
        let is_last = i + 1 == transformations.len();
        if is_last && t.eq_ignore_ascii_case("base64Decode") {
            // Each possible output a stage: the operator must be asked of them all.
            if let Some(outcomes) = base64_outcomes(last) {
                exact.extend(outcomes);
                return Stages { exact, rest: None };
            }
        }
        match transformed(t, last) {
            Some(next) => exact.push(next),
            None => {
                // The rest of the pipeline over the bytes it could produce; `reach` works
                // on case-closed sets.
                let mut seen = Alphabet::of(last).case_closed();
                let mut current = seen;
                for t in &transformations[i..] {
                    current = alphabet_after(t, current);
                    seen = seen.union(current);
                }
                return Stages {
                    exact,
                    rest: Some(seen),
                };
            }
        }
    }
    Stages { exact, rest: None }
}

/// A transformation's output, `None` when it is not certain here.
fn transformed(name: &str, v: &[u8]) -> Option<Vec<u8>> {
    let ascii = v.is_ascii();
    Some(match name.to_ascii_lowercase().as_str() {
        "lowercase" => v.to_ascii_lowercase(),
        "uppercase" => v.to_ascii_uppercase(),
        "removenulls" => v.iter().copied().filter(|&b| b != 0).collect(),
        "replacenulls" => v.iter().map(|&b| if b == 0 { b' ' } else { b }).collect(),
        // Reads up to a NUL (`strlen`); ASCII passes unchanged.
        "utf8tounicode" if ascii && !v.contains(&0) => v.to_vec(),
        "urldecode" | "urldecodeuni" => url_decoded(v)?,
        "htmlentitydecode" => html_entities_decoded(v)?,
        "jsdecode" | "cssdecode" | "escapeseqdecode" if !v.contains(&b'\\') => v.to_vec(),
        // `isspace` on a byte beyond ASCII and the non-breaking spaces some of these also
        // take are left to the alphabet.
        "compresswhitespace" if ascii => whitespace_compressed(v),
        "removewhitespace" if ascii => v.iter().copied().filter(|b| !is_space(*b)).collect(),
        "trim" if ascii => trimmed(v, true, true),
        "trimleft" if ascii => trimmed(v, true, false),
        "trimright" if ascii => trimmed(v, false, true),
        "cmdline" if ascii => command_line(v),
        "normalisepath" | "normalizepath" | "normalisepathwin" | "normalizepathwin"
            if !v.iter().any(|b| matches!(b, b'/' | b'\\' | b'.')) =>
        {
            v.to_vec()
        }
        "removecomments" | "replacecomments" | "removecommentschar"
            if ![&b"/*"[..], b"*/", b"--", b"#", b"<!"]
                .iter()
                .any(|m| contains(v, m)) =>
        {
            v.to_vec()
        }
        "length" => v.len().to_string().into_bytes(),
        "base64decode" => base64_decoded(v)?,
        _ => return None,
    })
}

/// C's `isspace` in the C locale (`\v` and `\f` included, unlike `u8::is_ascii_whitespace`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn trimmed(v: &[u8], start: bool, end: bool) -> Vec<u8> {
    let from = if start {
        v.iter().position(|b| !is_space(*b)).unwrap_or(v.len())
    } else {
        0
    };
    let to = if end {
        v.iter()
            .rposition(|b| !is_space(*b))
            .map_or(from, |p| p + 1)
    } else {
        v.len()
    };
    v[from..to.max(from)].to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `%HH` decoded and `+` made a space; `None` for any other `%` (`%u` escapes, invalid
/// ones), which the two decoders treat differently.
fn url_decoded(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                let hex = v.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `t:base64Decode` (mbedtls underneath) where every version agrees: only the base64
/// alphabet, whole groups of four, no padding. `None` otherwise.
fn base64_decoded(v: &[u8]) -> Option<Vec<u8>> {
    let sextet = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    if !v.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(v.len() / 4 * 3);
    for group in v.chunks(4) {
        let mut x: u32 = 0;
        for &b in group {
            x = (x << 6) | u32::from(sextet(b)?);
        }
        out.extend_from_slice(&x.to_be_bytes()[1..]);
    }
    Some(out)
}

/// What `t:base64Decode` may give for `v`, over the mbedtls versions libmodsecurity 3.0.9
/// may be built with (`Base64::decode`: a first call for the length, a second to decode;
/// an error leaves the length 0, so the output empty): the whole groups of four decoded
/// (older versions drop a partial last group), or nothing (newer ones refuse it, and all
/// refuse a byte outside the alphabet, and a space inside a line). `None` where line
/// breaks, trailing spaces or `=` make it uncertain.
fn base64_outcomes(v: &[u8]) -> Option<Vec<Vec<u8>>> {
    let in_alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    let refused = v
        .iter()
        .any(|b| !in_alphabet(b) && !matches!(b, b'=' | b' ' | b'\r' | b'\n'))
        || (!v.contains(&b'\r')
            && !v.contains(&b'\n')
            && v.windows(2).any(|w| w[0] == b' ' && w[1] != b' '));
    if refused {
        return Some(vec![Vec::new()]);
    }
    if !v.iter().all(in_alphabet) {
        return None;
    }
    let whole = base64_decoded(&v[..v.len() / 4 * 4])?;
    Some(if v.len().is_multiple_of(4) {
        vec![whole]
    } else {
        vec![whole, Vec::new()]
    })
}

/// The named entities libmodsecurity decodes (whole name, any case; the `;` optional).
const ENTITIES: [(&[u8], u8); 5] = [
    (b"quot", b'"'),
    (b"amp", b'&'),
    (b"lt", b'<'),
    (b"gt", b'>'),
    (b"nbsp", 0xA0),
];

/// `&name;` for the named entities; `None` for a numeric one (`&#`).
fn html_entities_decoded(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'&' || i + 1 >= v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        if v[i + 1] == b'#' {
            return None;
        }
        let name_end = v[i + 1..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(v.len(), |p| i + 1 + p);
        let name = &v[i + 1..name_end];
        match ENTITIES
            .iter()
            .find(|(n, _)| !name.is_empty() && name.eq_ignore_ascii_case(n))
        {
            Some((_, decoded)) => {
                out.push(*decoded);
                i = if v.get(name_end) == Some(&b';') {
                    name_end + 1
                } else {
                    name_end
                };
            }
            None => {
                out.extend_from_slice(&v[i..name_end]);
                i = name_end;
            }
        }
    }
    Some(out)
}

fn whitespace_compressed(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut in_space = false;
    for &b in v {
        if is_space(b) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
    out
}

/// `t:cmdLine`: quoting and escapes dropped, separators one space, no space before `/`
/// or `(`, lower case.
fn command_line(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut space = false;
    for &b in v {
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            b => {
                out.push(b.to_ascii_lowercase());
                space = false;
            }
        }
    }
    out
}

// libinjection, as compiled into the libmodsecurity the edge runs its rules with (it
// exports these): `@detectSQLi` and `@detectXSS` call exactly these.
#[link(name = "modsecurity")]
extern "C" {
    fn libinjection_sqli(s: *const c_char, len: usize, fingerprint: *mut c_char) -> c_int;
    fn libinjection_xss(s: *const c_char, len: usize) -> c_int;
}

/// What `@detectSQLi` answers for `value`.
pub fn is_sqli(value: &[u8]) -> bool {
    let mut fingerprint = [0 as c_char; 8];
    // SAFETY: libinjection reads `len` bytes of `value` and writes at most 8 bytes of
    // fingerprint (libmodsecurity passes a `char[8]` the same way).
    unsafe { libinjection_sqli(value.as_ptr().cast(), value.len(), fingerprint.as_mut_ptr()) != 0 }
}

/// What `@detectXSS` answers for `value`.
pub fn is_xss(value: &[u8]) -> bool {
    // SAFETY: libinjection reads `len` bytes of `value`.
    unsafe { libinjection_xss(value.as_ptr().cast(), value.len()) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, v: &str) -> Option<String> {
        transformed(name, v.as_bytes()).map(|o| String::from_utf8_lossy(&o).into_owned())
    }

    #[test]
    fn transformations_replay_libmodsecurity() {
        assert_eq!(t("lowerCase", "AbC/%41").as_deref(), Some("abc/%41"));
        assert_eq!(t("urlDecodeUni", "a%41+b%2fc").as_deref(), Some("aA b/c"));
        assert_eq!(t("urlDecodeUni", "%u0041"), None);
        assert_eq!(t("urlDecode", "100%"), None);
        assert_eq!(t("urlDecode", "%zz"), None);
        assert_eq!(
            t("htmlEntityDecode", "a=1&b=2&LT;x&amp;y&gt&ampz").as_deref(),
            Some("a=1&b=2<x&y>&ampz")
        );
        // Only whole names: `&ltx` is not `<` (nor `&ampz` above `&`).
        assert_eq!(t("htmlEntityDecode", "&ltx;&").as_deref(), Some("&ltx;&"));
        assert_eq!(t("htmlEntityDecode", "&#60;"), None);
        assert_eq!(t("jsDecode", "plain").as_deref(), Some("plain"));
        assert_eq!(t("jsDecode", r"\x41"), None);
        assert_eq!(
            t("cmdLine", "C:\\Win\"dows ,; /Sys (A)^B").as_deref(),
            Some("c:windows/sys(a)b")
        );
        assert_eq!(
            t("compressWhitespace", "a \t\x0b b").as_deref(),
            Some("a b")
        );
        assert_eq!(t("removeWhitespace", " a\tb ").as_deref(), Some("ab"));
        assert_eq!(t("removeWhitespace", "a\u{a0}b"), None);
        assert_eq!(t("trim", "\x0b a b\t").as_deref(), Some("a b"));
        assert_eq!(t("trimRight", " a ").as_deref(), Some(" a"));
        assert_eq!(t("length", "hello").as_deref(), Some("5"));
        assert_eq!(t("normalisePath", "a/../b"), None);
        assert_eq!(t("base64Decode", "aGk="), None);
        assert_eq!(
            t("base64Decode", "aGVsbG8gd29y").as_deref(),
            Some("hello wor")
        );
        assert_eq!(t("base64Decode", "aGVsbG8"), None);
        assert_eq!(t("base64Decode", "aGVs-G8g"), None);
    }

    #[test]
    fn a_stage_not_replayed_leaves_the_rest_to_the_alphabet() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let s = stages(b"A%41", &names(&["lowercase", "urlDecodeUni"]), |_, _| {
            Alphabet::ALL
        });
        assert_eq!(
            s.exact,
            [b"A%41".to_vec(), b"a%41".to_vec(), b"aA".to_vec()]
        );
        assert!(s.rest.is_none());
        let s = stages(b"\\x41", &names(&["jsDecode", "lowercase"]), |_, a| a);
        assert_eq!(s.exact.len(), 1);
        let rest = s.rest.expect("jsDecode is not replayed");
        assert!(rest.contains(b'x') && rest.contains(b'X'));
    }

    #[test]
    fn libinjection_is_libmodsecuritys() {
        assert!(is_sqli(b"1' or '1'='1"));
        assert!(!is_sqli(b"https://site.test/articles/page-7?from=home"));
        assert!(is_xss(b"<script>alert(1)</script>"));
        assert!(!is_xss(b"https://site.test/articles/page-7?from=home"));
    }

    /// CRS 934100 decodes every argument as base64 last (`multiMatch`): the outcomes of
    /// each mbedtls version are all asked about.
    #[test]
    fn base64_last_gives_every_possible_output() {
        let outcomes = |v: &str| {
            base64_outcomes(v.as_bytes()).map(|o| {
                o.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(outcomes("aGVsbG8g").unwrap(), ["hello "]);
        assert_eq!(outcomes("aGVsbG8").unwrap(), ["hel", ""]);
        assert_eq!(outcomes("17").unwrap(), ["", ""]);
        assert_eq!(outcomes("page-2").unwrap(), [""]);
        assert_eq!(outcomes("aGk="), None);
        assert_eq!(
            outcomes("blue shoes").unwrap(),
            [""],
            "a space inside a line"
        );
        assert_eq!(outcomes("aGk\tx").unwrap(), [""]);
        assert_eq!(outcomes("aGVs  "), None, "trailing spaces pass");
        assert_eq!(outcomes("aG\nk x"), None);
        let pipeline = ["urlDecodeUni".to_owned(), "base64Decode".to_owned()];
        let out = stages(b"aGVsbG8", &pipeline, |_, _| Alphabet::ALL);
        assert!(out.rest.is_none());
        assert_eq!(
            out.exact,
            [
                b"aGVsbG8".to_vec(),
                b"aGVsbG8".to_vec(),
                b"hel".to_vec(),
                Vec::new()
            ]
        );
        // Not last: one certain output or none.
        let earlier = ["base64Decode".to_owned(), "lowercase".to_owned()];
        assert!(stages(b"aGVsbG8", &earlier, |_, _| Alphabet::ALL)
            .rest
            .is_some());
    }
}
