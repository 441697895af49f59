//! Rules no request reaches: the CRS's sections for paranoia levels above the one set.
//!
//! Each section starts with `SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt N" "...,skipAfter:M"`.
//! When every value the rules can ever give `tx.executing_paranoia_level` is below N, and
//! the first rule of all sets it (the edge's own engine settings do), that rule skips every
//! time, and the rules of its phase between it and marker `M` never run: they can neither
//! be needed in a narrower rule set nor move a verdict. The answer errs on one side only:
//! a value set by anything but a constant, a section holding another marker (an earlier
//! skip could land inside it), a skipping rule something could remove or retarget — and
//! nothing is unreached.

use std::collections::HashSet;

use super::seclang::{self, Directive};

const LEVEL: &str = "tx.executing_paranoia_level";
const CONFIGURED: &str = "tx.paranoia_level";

/// A directive by source and position.
pub type At = (usize, usize);

/// The rules (by source and position) that never run.
pub fn unreached(sources: &[(&str, Vec<Directive>)]) -> HashSet<At> {
    let directives: Vec<(At, &Directive)> = sources
        .iter()
        .enumerate()
        .flat_map(|(s, (_, ds))| ds.iter().enumerate().map(move |(i, d)| ((s, i), d)))
        .collect();
    let mut out = HashSet::new();
    let Some(level) = highest_level(&directives) else {
        return out;
    };
    let removals = Removals::of(&directives);
    // Per phase (1 to 5): the skip under way and the rules passed on the way.
    let mut skipping: [Option<(Skip, Vec<At>)>; 6] = Default::default();
    for (at, d) in &directives {
        if d.name.eq_ignore_ascii_case("SecMarker") {
            let name = d.args.first().map_or("", String::as_str);
            for region in &mut skipping {
                let Some((skip, passed)) = region.take() else {
                    continue;
                };
                if skip.marker != name {
                    continue;
                }
                // Whatever may remove the skipping rule must remove these too.
                out.extend(passed.into_iter().filter(|(s, i)| {
                    let id = rule_id(&sources[*s].1[*i]);
                    skip.removers
                        .iter()
                        .all(|&(lo, hi)| id.is_some_and(|id| (lo..=hi).contains(&id)))
                }));
            }
            continue;
        }
        let Some(phase) = phase_of(d) else { continue };
        match &mut skipping[phase] {
            Some((_, passed)) => passed.push(*at),
            region @ None => {
                if let Some(skip) = certain_skip(d, level, &removals) {
                    *region = Some((skip, Vec::new()));
                }
            }
        }
    }
    out
}

/// A rule that skips to `marker` unless one of `removers` (ranges of rule ids that a
/// `SecRuleRemoveById` or `ctl:ruleRemoveById` takes out) removes it.
struct Skip<'a> {
    marker: &'a str,
    removers: Vec<(u32, u32)>,
}

fn rule_id(d: &Directive) -> Option<u32> {
    let actions = if d.name.eq_ignore_ascii_case("SecAction") {
        &d.actions
    } else {
        &d.links.first()?.actions
    };
    let id = actions.iter().find(|a| a.name.eq_ignore_ascii_case("id"))?;
    constant(id.value.as_deref()?)
}

/// The highest value `tx.executing_paranoia_level` can hold, if it is set by the first
/// rule and only ever to constants (or to `tx.paranoia_level`, itself only constants).
fn highest_level(directives: &[(At, &Directive)]) -> Option<u32> {
    let first_rule = directives.iter().map(|(_, d)| *d).find(|d| is_rule(d))?;
    let sets_first = first_rule.name.eq_ignore_ascii_case("SecAction")
        && phase_of(first_rule) == Some(1)
        && first_rule
            .actions
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("setvar"))
            .any(|a| {
                a.value
                    .as_deref()
                    .and_then(|v| v.split_once('='))
                    .is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case(LEVEL) && constant(value).is_some()
                    })
            });
    if !sets_first {
        return None;
    }
    let (mut levels, mut configured, mut from_configured) = (Vec::new(), Vec::new(), false);
    for (name, value) in seclang::assignments(directives.iter().map(|(_, d)| *d))? {
        if name.contains("%{") {
            if [LEVEL, CONFIGURED].iter().any(|v| may_name(&name, v)) {
                return None;
            }
            continue;
        }
        if let Some(deleted) = name.strip_prefix('!') {
            if deleted == LEVEL || deleted == CONFIGURED {
                return None;
            }
            continue;
        }
        if name != LEVEL && name != CONFIGURED {
            continue;
        }
        match (name.as_str(), constant(value)) {
            (LEVEL, Some(v)) => levels.push(v),
            (LEVEL, None) if value.trim().eq_ignore_ascii_case("%{tx.paranoia_level}") => {
                from_configured = true;
            }
            (_, Some(v)) => configured.push(v),
            _ => return None,
        }
    }
    if from_configured {
        // Never set to a constant: no level is certain.
        levels.push(configured.iter().copied().max().unwrap_or(u32::MAX));
    }
    levels.into_iter().max()
}

/// Whether a variable name with macros (`tx.header_name_%{tx.0}`) could expand to `var`:
/// its literal pieces, in order, first at the start and last at the end.
pub(super) fn may_name(pattern: &str, var: &str) -> bool {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("%{") {
        pieces.push(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => rest = &rest[start + end + 1..],
            None => return true,
        }
    }
    pieces.push(rest);
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    let Some(mut left) = var.strip_prefix(first) else {
        return false;
    };
    for piece in &pieces[1..pieces.len() - 1] {
        match left.find(piece) {
            Some(at) => left = &left[at + piece.len()..],
            None => return false,
        }
    }
    left.ends_with(last)
}

/// A setvar value that is a plain number (not `+1`, not a macro).
fn constant(value: &str) -> Option<u32> {
    let v = value.trim();
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

fn is_rule(d: &Directive) -> bool {
    d.name.eq_ignore_ascii_case("SecAction") || d.name.eq_ignore_ascii_case("SecRule")
}

/// The phase a rule runs in, when it says (1 to 5).
fn phase_of(d: &Directive) -> Option<usize> {
    let actions = if d.name.eq_ignore_ascii_case("SecAction") {
        &d.actions
    } else {
        &d.links.first()?.actions
    };
    let phase = actions
        .iter()
        .rev()
        .find(|a| a.name.eq_ignore_ascii_case("phase"))?
        .value
        .as_deref()?;
    match phase.trim().to_ascii_lowercase().as_str() {
        "request" => Some(2),
        "response" => Some(4),
        "logging" => Some(5),
        p => p.parse().ok().filter(|p| (1..=5).contains(p)),
    }
}

/// The skip a rule certainly makes, unless removed: `SecRule TX:EXECUTING_PARANOIA_LEVEL
/// "@lt N"` with `N` above every level the rules can set, nothing to transform, nothing that
/// could take its target out or remove it by name.
fn certain_skip<'a>(d: &'a Directive, level: u32, removals: &Removals) -> Option<Skip<'a>> {
    let [link] = d.links.as_slice() else {
        return None;
    };
    let [target] = link.targets.as_slice() else {
        return None;
    };
    let reads_level = target.name == "TX"
        && !target.counted
        && !target.excluded
        && target
            .selector
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("EXECUTING_PARANOIA_LEVEL"));
    let op = &link.operator;
    let above = op.name == "lt" && !op.negated && constant(&op.param).is_some_and(|n| level < n);
    if !reads_level || !above || !link.transformations().is_empty() {
        return None;
    }
    let id = rule_id(d)?;
    let named = link.has_action("tag") || link.has_action("msg");
    let covers = |&(lo, hi): &(u32, u32)| (lo..=hi).contains(&id);
    if removals.anything || (named && removals.by_name) || removals.tx_targets.iter().any(covers) {
        return None;
    }
    let marker = link
        .actions
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("skipAfter"))?
        .value
        .as_deref()?
        .trim();
    Some(Skip {
        marker,
        removers: removals.rules.iter().copied().filter(covers).collect(),
    })
}

/// What could take a rule out, or take targets out of it, at load or per request.
#[derive(Default)]
struct Removals {
    /// Rules removed (`SecRuleRemoveById`, `ctl:ruleRemoveById`), by id range.
    rules: Vec<(u32, u32)>,
    /// Rules whose `TX` targets may be removed (`ctl:ruleRemoveTargetById=ID;TX...`).
    tx_targets: Vec<(u32, u32)>,
    /// Rules removed by tag or message.
    by_name: bool,
    /// Something not read here.
    anything: bool,
}

impl Removals {
    fn of(directives: &[(At, &Directive)]) -> Self {
        let mut r = Self::default();
        for (_, d) in directives {
            let name = d.name.to_ascii_lowercase();
            if name == "secruleremovebyid" {
                for arg in &d.args {
                    r.add_ids(arg, false);
                }
            } else if name.starts_with("secruleremoveby") {
                r.by_name = true;
            } else if name.starts_with("secruleupdate") {
                r.anything = true;
            }
            let ctls = d
                .actions
                .iter()
                .chain(d.links.iter().flat_map(|l| &l.actions))
                .filter(|a| a.name.eq_ignore_ascii_case("ctl"))
                .filter_map(|a| a.value.as_deref());
            for ctl in ctls {
                let (what, value) = ctl.split_once('=').unwrap_or((ctl, ""));
                match what.trim().to_ascii_lowercase().as_str() {
                    "ruleremovebyid" => r.add_ids(value, false),
                    "ruleremovetargetbyid" => {
                        let (ids, target) = value.split_once(';').unwrap_or((value, ""));
                        let variable = target.split(':').next().unwrap_or("").trim();
                        // Only a `TX` target (or one not known here) touches a skip.
                        let tx = variable.eq_ignore_ascii_case("TX")
                            || variable.is_empty()
                            || target.contains("%{");
                        if tx {
                            r.add_ids(ids, true);
                        }
                    }
                    w if w.starts_with("ruleremove") => r.by_name = true,
                    _ => {}
                }
            }
        }
        r
    }

    /// `942100`, `942100-942199`, or several separated by spaces or commas.
    fn add_ids(&mut self, text: &str, targets: bool) {
        for part in text.split([' ', ',']).filter(|p| !p.trim().is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            match (constant(lo), constant(hi)) {
                (Some(lo), Some(hi)) if targets => self.tx_targets.push((lo, hi)),
                (Some(lo), Some(hi)) => self.rules.push((lo, hi)),
                _ => self.anything = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::seclang;

    const SETTINGS: &str = "SecAction \"id:1,phase:1,pass,nolog,setvar:tx.paranoia_level=1,\
                            setvar:tx.executing_paranoia_level=1\"\n";
    const RULES: &str = r#"
SecRule &TX:executing_paranoia_level "@eq 0" "id:901125,phase:1,pass,nolog,setvar:'tx.executing_paranoia_level=%{TX.PARANOIA_LEVEL}'"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:942011,phase:1,pass,nolog,skipAfter:END-942"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:942012,phase:2,pass,nolog,skipAfter:END-942"
SecRule ARGS "@rx a" "id:942100,phase:2,block"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:942013,phase:1,pass,nolog,skipAfter:END-942"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:942014,phase:2,pass,nolog,skipAfter:END-942"
SecRule REQUEST_HEADERS:Referer "@rx b" "id:942200,phase:2,block"
SecRule REQUEST_HEADERS "@rx c" "id:942201,phase:1,block"
SecMarker "END-942"
SecRule ARGS "@rx d" "id:943100,phase:2,block"
"#;

    /// The ids of the rules that never run.
    fn ids(texts: &[&str]) -> Vec<String> {
        let parsed: Vec<(&str, Vec<Directive>)> = texts
            .iter()
            .map(|t| ("test", seclang::parse(t, Path::new("/")).expect("parses")))
            .collect();
        let mut out: Vec<String> = unreached(&parsed)
            .into_iter()
            .map(|(s, i)| {
                parsed[s].1[i].links[0].actions[0]
                    .value
                    .clone()
                    .unwrap_or_default()
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn sections_above_the_paranoia_level_never_run() {
        assert_eq!(ids(&[SETTINGS, RULES]), ["942200", "942201"]);
        let at_two = SETTINGS.replace("=1", "=2");
        assert!(ids(&[&at_two, RULES]).is_empty());
    }

    #[test]
    fn names_with_macros_may_name_only_what_their_text_allows() {
        assert!(may_name("tx.%{a}", LEVEL));
        assert!(may_name("tx.%{a}_paranoia_%{b}", LEVEL));
        assert!(!may_name("tx.header_name_%{tx.0}", LEVEL));
        assert!(!may_name(
            "tx.%{rule.id}-owasp_crs/%{matched_var_name}",
            CONFIGURED
        ));
        assert!(!may_name("%{a}_x", LEVEL));
    }

    #[test]
    fn anything_uncertain_keeps_every_rule() {
        // The level not set by the first rule.
        assert!(ids(&[RULES]).is_empty());
        // Set to something not constant somewhere.
        for more in [
            r#"SecAction "id:5,phase:1,pass,setvar:tx.executing_paranoia_level=+1""#,
            r#"SecAction "id:5,phase:1,pass,setvar:tx.paranoia_level=%{ARGS.pl}""#,
            r#"SecAction "id:5,phase:1,pass,setvar:!tx.executing_paranoia_level""#,
            r#"SecAction "id:5,phase:1,pass,setvar:tx.%{ARGS.name}=4""#,
            r#"SecAction "id:5,phase:1,pass,setvar:tx.%{ARGS.a}paranoia%{ARGS.b}=4""#,
            r#"SecAction "id:5,phase:1,pass,exec:/usr/local/bin/set.lua""#,
            // The skipping rules could be removed (and the rules after them not).
            "SecRuleRemoveById 942000-942099",
            r#"SecAction "id:5,phase:1,pass,ctl:ruleRemoveById=942013-942014""#,
            r#"SecAction "id:5,phase:1,pass,ctl:ruleRemoveById=942000-942199""#,
            "SecAction \"id:5,phase:1,pass,\
             ctl:ruleRemoveTargetById=942013;TX:EXECUTING_PARANOIA_LEVEL,\
             ctl:ruleRemoveTargetById=942014;TX:EXECUTING_PARANOIA_LEVEL\"",
        ] {
            let found = ids(&[SETTINGS, RULES, more]);
            assert!(found.is_empty(), "{more}: {found:?}");
        }
        // A marker inside a section: a skip from before could land there.
        let inner = RULES.replace(
            "SecRule REQUEST_HEADERS \"@rx c\"",
            "SecMarker OTHER\nSecRule REQUEST_HEADERS \"@rx c\"",
        );
        assert!(ids(&[SETTINGS, &inner]).is_empty());
        // Each phase's section stands alone: removing phase 2's skip leaves phase 1's.
        let one = r#"SecAction "id:5,phase:1,pass,ctl:ruleRemoveById=942014""#;
        assert_eq!(ids(&[SETTINGS, RULES, one]), ["942201"]);
        // What removes a skip and the rules after it, or takes other targets out of it,
        // changes nothing.
        for more in [
            "SecRuleRemoveById 942000-942999",
            r#"SecAction "id:5,phase:1,pass,ctl:ruleRemoveTargetById=942000-942999;ARGS:pass""#,
        ] {
            assert_eq!(
                ids(&[SETTINGS, RULES, more]),
                ["942200", "942201"],
                "{more}"
            );
        }
    }
}
