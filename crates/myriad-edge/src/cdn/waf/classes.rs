//! Classes of requests by the bytes they are made of, and the rules each class needs.
//!
//! libmodsecurity's cost per request grows with the rules it visits (a `RuleMessage`, copied
//! values and transformations for each), whether they match or not; most CRS rules look for
//! bytes (quotes, angle brackets, backslashes, percent signs) that most requests never hold.
//! The edge loads, besides the whole rule set, rule sets without the rules that cannot
//! match any request of a class (`reach`), and gives each bodiless request the narrowest set
//! whose class holds it: the same verdict and rule ids, fewer rules visited.

use std::path::Path;

use super::alphabet::Alphabet;
use super::reach;
use super::seclang::Directive;
use super::Inspected;

/// The classes, narrowest first: printable ASCII without the bytes listed.
const CLASSES: [&[u8]; 2] = [
    // What browsers send for a plain page or asset: no quotes, brackets, escapes or
    // encodings.
    b"\"'<>\\`%&;|$(){}[]^!#@~",
    // Quotes and parentheses (Client Hints fields, User-Agent), `;`, `&`, `+` and `=`.
    b"'<>\\`%|$^{}[]!#@~",
];

/// A source's text for one rule set: its name, the directives kept, how many rules.
pub type Loadable<'a> = (&'a str, String, usize);

/// For each class (narrowest first, if `narrow`; the whole set last, for any request), the
/// text of each source with the rules the class needs.
pub fn rule_sets<'a>(
    sources: &'a [(&'a str, Vec<Directive>)],
    narrow: bool,
) -> Vec<(Alphabet, Vec<Loadable<'a>>)> {
    let mut classes: Vec<Alphabet> = if narrow && analysable(sources) {
        CLASSES
            .iter()
            .map(|excluded| Alphabet::printable_without(excluded))
            .collect()
    } else {
        Vec::new()
    };
    classes.push(Alphabet::ALL);
    classes
        .into_iter()
        .map(|class| {
            let texts = sources
                .iter()
                .map(|(name, directives)| {
                    let mut text = String::new();
                    let mut rules = 0;
                    for d in directives.iter().filter(|d| needed(d, class)) {
                        text.push_str(&d.text);
                        // An empty line between directives: libmodsecurity reads a
                        // `SecRule` without actions as continuing on the next line.
                        text.push_str("\n\n");
                        rules += usize::from(!d.links.is_empty());
                    }
                    (*name, text, rules)
                })
                .collect();
            (class, texts)
        })
        .collect()
}

/// The bytes of everything the rules see of a bodiless request (the request line as
/// ModSecurity writes it, header names and values), URL-decoded too where there is a `%`
/// (ModSecurity decodes arguments and the file name).
pub fn request_alphabet(request: &Inspected<'_>) -> Alphabet {
    let mut used = Alphabet::of(b"HTTP/ ");
    for part in [request.method, request.target, request.version] {
        used.add(part.as_bytes());
    }
    for (name, value) in request.headers {
        used.add(name.as_str().as_bytes());
        used.add(value.as_bytes());
    }
    if used.contains(b'%') {
        let values = request.headers.values().map(|v| v.as_bytes());
        for text in std::iter::once(request.target.as_bytes()).chain(values) {
            for b in percent_encoding::percent_decode(text) {
                used.insert(b);
            }
        }
    }
    used
}

fn needed(d: &Directive, class: Alphabet) -> bool {
    match d.links.first() {
        // A chain runs nothing unless its first rule matches.
        Some(first) => class == Alphabet::ALL || reach::may_match(first, class, &phrases),
        None => true,
    }
}

/// Whether dropping rules keeps verdicts: no default transformations (they would apply to
/// every rule) and no `skip:N` (counts rules, so dropping one would move its target).
fn analysable(sources: &[(&str, Vec<Directive>)]) -> bool {
    sources.iter().flat_map(|(_, d)| d).all(|d| {
        let default_transforms = d.name.eq_ignore_ascii_case("SecDefaultAction")
            && d.actions.iter().any(|a| {
                a.name == "t"
                    && !a
                        .value
                        .as_deref()
                        .unwrap_or("")
                        .eq_ignore_ascii_case("none")
            });
        let skips = d.links.iter().any(|l| l.has_action("skip"));
        !default_transforms && !skips
    })
}

/// The phrases of an `@pmFromFile` list.
pub(super) fn phrases(path: &str) -> Option<Vec<Vec<u8>>> {
    let text = std::fs::read(Path::new(path)).ok()?;
    Some(
        text.split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
            .map(<[u8]>::to_vec)
            .collect(),
    )
}
