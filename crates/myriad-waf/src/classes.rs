//! Classes of requests by the bytes they are made of, and the rules each class needs.
//!
//! libmodsecurity's cost per request grows with the rules it visits (a `RuleMessage`, copied
//! values and transformations for each), whether they match or not; most CRS rules look for
//! bytes (quotes, angle brackets, backslashes, percent signs) that most requests never hold.
//! The edge loads, besides the whole rule set, rule sets without the rules that cannot
//! match any request of a class (`reach`), and gives each bodiless request the narrowest set
//! whose class holds it: the same verdict and rule ids, fewer rules visited. Rules that
//! never run at the paranoia level set (`unreached`) are in no narrower set either.

use std::path::Path;

use super::alphabet::Alphabet;
use super::reach::Prepared;
use super::seclang::Directive;
use super::shape::Shape;
use super::tx_names::TxNames;
use super::unreached;
use super::verdicts::FieldReaders;

/// Bytes none of whose narrow classes hold: quotes, angle brackets, escapes, encodings and
/// the shell's and SQL's punctuation.
const NEVER_NARROW: &[u8] = b"'<>\\`%|$^{}[]!#@~";

/// The classes, narrowest first. Each part of a request has a narrow alphabet: printable
/// ASCII without `NEVER_NARROW` and, for the request line and the arguments, without
/// parentheses, `;` and `"` (the arguments also without `&`, which separates them); cookies
/// may hold `;` (which separates them); fields may hold all of these (browsers send quotes
/// in Client Hints, parentheses and `;` in User-Agent). Each set costs ~20 MB; classes for
/// unusual cookies (614 of the CRS's 624 rules at paranoia 1) or URLs (623) would save too
/// little to pay for theirs.
fn classes() -> [Shape; 2] {
    let without = |more: &[u8]| Alphabet::printable_without(&[NEVER_NARROW, more].concat());
    let line = without(b"();\"");
    let args = without(b"();\"&");
    let cookies = without(b"()\"&");
    let fields = without(b"");
    let any = Alphabet::ALL;
    [
        Shape::new(line, args, cookies, fields),
        // Unusual fields.
        Shape::new(line, args, cookies, any),
    ]
}

/// A source's text for one rule set: its name, the directives kept, how many rules.
pub type Loadable<'a> = (&'a str, String, usize);

/// A rule set to load: its class, each source's text, and the rules (links of chains
/// included) that read request fields' values.
pub struct Planned<'a> {
    pub class: Shape,
    pub texts: Vec<Loadable<'a>>,
    pub field_readers: FieldReaders,
}

/// For each class (narrowest first, if `narrow`; the whole set last, for any request), the
/// text of each source with the rules the class needs.
pub fn rule_sets<'a>(sources: &'a [(&'a str, Vec<Directive>)], narrow: bool) -> Vec<Planned<'a>> {
    let analysable = analysable(sources);
    let mut classes: Vec<Shape> = if narrow && analysable {
        classes().to_vec()
    } else {
        Vec::new()
    };
    classes.push(Shape::ANY);
    // Rules that never run at the paranoia level set: in no narrower set, no field reader.
    let unreached = if analysable {
        unreached::unreached(sources)
    } else {
        Default::default()
    };
    let tx = if analysable {
        TxNames::of(sources)
    } else {
        TxNames::any()
    };
    // Each rule's links, read once for every class.
    let prepared: Vec<Vec<Vec<Prepared>>> = sources
        .iter()
        .map(|(_, directives)| {
            directives
                .iter()
                .map(|d| {
                    d.links
                        .iter()
                        .map(|l| Prepared::new(l, &phrases, &tx))
                        .collect()
                })
                .collect()
        })
        .collect();
    classes
        .into_iter()
        .map(|class| {
            // Rules read from their own text may not be all there is to them (targets added
            // by `SecRuleUpdateTargetById`, ...): then any field may move a verdict.
            let mut field_readers = if analysable {
                FieldReaders::default()
            } else {
                FieldReaders::anything()
            };
            let texts = sources
                .iter()
                .zip(&prepared)
                .enumerate()
                .map(|(s, ((name, directives), links))| {
                    let mut text = String::new();
                    let mut rules = 0;
                    for (i, (d, links)) in directives.iter().zip(links).enumerate() {
                        let runs = !unreached.contains(&(s, i));
                        // A chain runs nothing unless its first rule matches.
                        let needed = class == Shape::ANY
                            || (runs && links.first().is_none_or(|first| first.may_match(&class)));
                        if !needed {
                            continue;
                        }
                        text.push_str(&d.text);
                        // An empty line between directives: libmodsecurity reads a
                        // `SecRule` without actions as continuing on the next line.
                        text.push_str("\n\n");
                        rules += usize::from(!links.is_empty());
                        if runs {
                            field_readers.add_chain(links);
                            field_readers.add_copies(&d.text);
                            field_readers.add_url_copies(d);
                        }
                    }
                    (*name, text, rules)
                })
                .collect();
            Planned {
                class,
                texts,
                field_readers,
            }
        })
        .collect()
}

/// Directives that change nothing `reach` relies on: rules, markers, removals, and the
/// engine's settings (these names, and the families after them). Any other
/// (`SecRuleUpdateTargetById` adds targets, `SecRuleUpdateActionById` transformations,
/// `SecArgumentSeparator` changes how `Shape::of` must split, `Include` hides text) turns
/// the narrower sets off.
const UNDERSTOOD: [&str; 7] = [
    "SecRule",
    "SecAction",
    "SecMarker",
    "SecDefaultAction",
    "SecComponentSignature",
    "SecCollectionTimeout",
    "SecRuleEngine",
];
const UNDERSTOOD_FAMILIES: [&str; 4] = [
    "SecRuleRemoveBy",
    "SecRequestBody",
    "SecResponseBody",
    "SecAudit",
];

/// Whether the rules' text tells all about them, so dropping rules keeps verdicts: only
/// directives it understands (`UNDERSTOOD`), no
/// default transformations (they would apply to every rule) and no `skip:N` (counts rules,
/// so dropping one would move its target).
fn analysable(sources: &[(&str, Vec<Directive>)]) -> bool {
    sources.iter().flat_map(|(_, d)| d).all(|d| {
        let name = d.name.to_ascii_lowercase();
        let understood = UNDERSTOOD.iter().any(|u| name == u.to_ascii_lowercase())
            || UNDERSTOOD_FAMILIES
                .iter()
                .any(|f| name.starts_with(&f.to_ascii_lowercase()));
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
        understood && !default_transforms && !skips
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Inspected;
    use http::HeaderMap;

    /// The first class that holds a request with `target` and `fields`.
    fn class_of(target: &str, fields: &[(&'static str, &str)]) -> Option<usize> {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.insert(*name, value.parse().unwrap());
        }
        let request = Inspected::get(target, &headers);
        let shape = Shape::of(&request);
        classes().iter().position(|c| shape.within(c))
    }

    #[test]
    fn common_requests_land_in_the_narrowest_class() {
        let chromium = [
            ("host", "site.test"),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
            ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("sec-ch-ua", "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\""),
            ("cookie", "_ga=GA1.1.123.456; session=Fe26.2**abc_-"),
        ];
        let curl = [
            ("host", "api.test"),
            ("user-agent", "curl/8.5.0"),
            ("accept", "*/*"),
        ];
        assert_eq!(class_of("/static/app.js?v=3&lang=en", &chromium), Some(0));
        assert_eq!(class_of("/api/items?page=2", &curl), Some(0));
        let odd_field = [("user-agent", "x<y")];
        assert_eq!(class_of("/", &odd_field), Some(1));
        let odd_cookie = [("cookie", "prefs={\"a\":1}")];
        assert_eq!(class_of("/", &odd_cookie), None);
        assert_eq!(class_of("/search?q=caf%C3%A9", &curl), None);
        assert_eq!(class_of("/search?q=(1)", &curl), None);
    }

    #[test]
    fn directives_it_does_not_understand_turn_the_narrower_sets_off() {
        let dir = Path::new("/");
        let sets = |text: &str| {
            let parsed = [("t", crate::seclang::parse(text, dir).unwrap())];
            rule_sets(&parsed, true).len()
        };
        let rule = "SecRule ARGS \"@rx <\" \"id:1,deny\"\n";
        assert_eq!(sets(rule), 3);
        assert_eq!(
            sets(&format!("{rule}SecRuleRemoveById 1\nSecMarker END")),
            3
        );
        // Nor, then, can a field value be left out of a remembered verdict's key.
        let parsed = [(
            "t",
            crate::seclang::parse(
                &format!("{rule}SecRuleUpdateTargetById 1 REQUEST_HEADERS"),
                dir,
            )
            .unwrap(),
        )];
        let whole = rule_sets(&parsed, true).pop().unwrap();
        assert!(whole.field_readers.any_field_moves());
        for other in [
            "SecRuleUpdateTargetById 1 REQUEST_HEADERS",
            "SecRuleUpdateActionById 1 \"t:base64Decode\"",
            "SecArgumentSeparator ;",
            "Include other.conf",
            "SecDefaultAction \"phase:2,t:urlDecode\"",
            "SecRule ARGS \"@rx a\" \"id:2,skip:1\"",
        ] {
            assert_eq!(sets(&format!("{rule}{other}")), 1, "{other}");
        }
    }
}
