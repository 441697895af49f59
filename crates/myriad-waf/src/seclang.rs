//! ModSecurity configuration text (SecLang), read as far as the edge needs it: the
//! directives as written, and of each `SecRule` its targets, operator and actions, with the
//! rules chained to it kept in the same directive.

use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeclangError {
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: &'static str },
}

#[derive(Debug, Clone)]
pub struct Directive {
    /// The directive as it can be loaded again (continuation lines and chained rules
    /// included; data files named by absolute path).
    pub text: String,
    /// `SecRule`, `SecAction`, `SecMarker`, ...
    pub name: String,
    /// Its arguments, unquoted (of a chain, the first rule's).
    pub args: Vec<String>,
    /// A `SecRule` and the rules chained to it, in order.
    pub links: Vec<RuleLink>,
    /// The actions of `SecAction` and `SecDefaultAction`.
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct RuleLink {
    pub targets: Vec<Target>,
    pub operator: Operator,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `!ARGS:foo`: taken out of what the rule inspects.
    pub excluded: bool,
    /// `&ARGS`: the number of values, not the values.
    pub counted: bool,
    /// Upper case, e.g. `REQUEST_HEADERS`.
    pub name: String,
    pub selector: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub negated: bool,
    /// As written after `@` (`rx` when the operator is a bare pattern).
    pub name: String,
    pub param: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub value: Option<String>,
}

impl RuleLink {
    pub fn has_action(&self, name: &str) -> bool {
        self.actions
            .iter()
            .any(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The transformations in the order they apply (`t:none` drops those before it).
    pub fn transformations(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for a in &self.actions {
            if a.name == "t" {
                match a.value.as_deref() {
                    Some(t) if t.eq_ignore_ascii_case("none") => out.clear(),
                    Some(t) => out.push(t),
                    None => {}
                }
            }
        }
        out
    }
}

/// Every `setvar` of these rules, as (variable name in lower case with a deletion's `!`,
/// value as written); `None` when a script (`SecRuleScript`, `exec`) may set anything.
pub fn assignments<'a>(
    directives: impl IntoIterator<Item = &'a Directive>,
) -> Option<Vec<(String, &'a str)>> {
    let mut out = Vec::new();
    for d in directives {
        if d.name.eq_ignore_ascii_case("SecRuleScript") {
            return None;
        }
        let actions = d
            .actions
            .iter()
            .chain(d.links.iter().flat_map(|l| &l.actions));
        for a in actions {
            if a.name.eq_ignore_ascii_case("exec") {
                return None;
            }
            if a.name.eq_ignore_ascii_case("setvar") {
                let text = a.value.as_deref().unwrap_or("").trim();
                let (name, value) = text.split_once('=').unwrap_or((text, ""));
                out.push((name.trim().to_ascii_lowercase(), value));
            }
        }
    }
    Some(out)
}

/// Operators that read their parameter from a file, relative to the rule file.
const FROM_FILE: [&str; 4] = ["pmFromFile", "pmf", "ipMatchFromFile", "ipMatchF"];

/// Reads `text`; data files named by relative path are taken from `data_dir`.
pub fn parse(text: &str, data_dir: &Path) -> Result<Vec<Directive>, SeclangError> {
    let mut out: Vec<Directive> = Vec::new();
    let mut chained = false;
    let mut lines = text.lines().enumerate();
    while let Some((n, first)) = lines.next() {
        let line = n + 1;
        let trimmed = first.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut written = first.to_owned();
        let mut logical = String::new();
        let mut part = first;
        loop {
            match part.trim_end().strip_suffix('\\') {
                Some(rest) => {
                    logical.push_str(rest);
                    let Some((_, next)) = lines.next() else {
                        return Err(SeclangError::Syntax {
                            line,
                            what: "continuation at the end of the text",
                        });
                    };
                    written.push('\n');
                    written.push_str(next);
                    part = next;
                }
                None => {
                    logical.push_str(part);
                    break;
                }
            }
        }
        let args = split_args(&logical).ok_or(SeclangError::Syntax {
            line,
            what: "unterminated quotes",
        })?;
        let Some((name, args)) = args.split_first() else {
            continue;
        };
        if args.iter().any(|a| a.starts_with('\'')) {
            // ModSecurity may read these; this reader does not claim to.
            return Err(SeclangError::Syntax {
                line,
                what: "single-quoted arguments",
            });
        }
        let mut link = None;
        let mut actions = Vec::new();
        if name.eq_ignore_ascii_case("SecAction") || name.eq_ignore_ascii_case("SecDefaultAction") {
            actions = args.first().map(|a| parse_actions(a)).unwrap_or_default();
        } else if name.eq_ignore_ascii_case("SecRule") {
            let (targets, operator, rest) = match args {
                [targets, operator] => (targets, operator, None),
                [targets, operator, actions] => (targets, operator, Some(actions)),
                _ => {
                    return Err(SeclangError::Syntax {
                        line,
                        what: "SecRule takes targets, an operator and actions",
                    })
                }
            };
            let mut operator = parse_operator(operator);
            let relative = !operator.param.starts_with('/') && !operator.param.contains("://");
            if FROM_FILE.contains(&operator.name.as_str()) && relative {
                let absolute = data_dir.join(&operator.param).display().to_string();
                let as_written = format!("@{} {}", operator.name, operator.param);
                if !written.contains(&as_written) {
                    return Err(SeclangError::Syntax {
                        line,
                        what: "a data file's operator spelt in an unexpected way",
                    });
                }
                written =
                    written.replacen(&as_written, &format!("@{} {absolute}", operator.name), 1);
                operator.param = absolute;
            }
            link = Some(RuleLink {
                targets: parse_targets(targets),
                operator,
                actions: rest.map(|a| parse_actions(a)).unwrap_or_default(),
            });
        }
        if chained && link.is_none() {
            return Err(SeclangError::Syntax {
                line,
                what: "a chain must continue with SecRule",
            });
        }
        match (chained, link) {
            (true, Some(link)) => {
                let head = out.last_mut().ok_or(SeclangError::Syntax {
                    line,
                    what: "chain without a rule",
                })?;
                chained = link.has_action("chain");
                head.text.push('\n');
                head.text.push_str(&written);
                head.links.push(link);
            }
            (_, link) => {
                chained = link.as_ref().is_some_and(|l| l.has_action("chain"));
                out.push(Directive {
                    text: written,
                    name: name.clone(),
                    args: args.to_vec(),
                    links: link.into_iter().collect(),
                    actions,
                });
            }
        }
    }
    if chained {
        return Err(SeclangError::Syntax {
            line: text.lines().count(),
            what: "the last rule's chain is never continued",
        });
    }
    Ok(out)
}

/// Whitespace-separated arguments; a double-quoted one may hold spaces and `\"`.
fn split_args(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(c) = chars.next() else {
            return Some(out);
        };
        let mut arg = String::new();
        if c == '"' {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' if chars.peek() == Some(&'"') => {
                        chars.next();
                        arg.push('"');
                    }
                    c => arg.push(c),
                }
            }
        } else {
            arg.push(c);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        out.push(arg);
    }
}

fn parse_operator(text: &str) -> Operator {
    let (negated, rest) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    match rest.strip_prefix('@') {
        Some(op) => {
            let (name, param) = op.split_once(char::is_whitespace).unwrap_or((op, ""));
            Operator {
                negated,
                name: name.to_owned(),
                param: param.trim_start().to_owned(),
            }
        }
        None => Operator {
            negated,
            name: "rx".to_owned(),
            param: rest.to_owned(),
        },
    }
}

/// `A|!B:x|&C|D:/re|gex/`: a selector between slashes is a pattern and may hold `|`.
fn parse_targets(text: &str) -> Vec<Target> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (mut excluded, mut counted) = (false, false);
        loop {
            if let Some(r) = rest.strip_prefix('!') {
                excluded = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('&') {
                counted = true;
                rest = r;
            } else {
                break;
            }
        }
        let name_end = rest.find([':', '|']).unwrap_or(rest.len());
        let name = rest[..name_end].trim().to_ascii_uppercase();
        rest = &rest[name_end..];
        let mut selector = None;
        if let Some(sel) = rest.strip_prefix(':') {
            // `ARGS:/^id/` is a pattern; `XML:/*` an XPath expression.
            let plain_end = sel.find('|').unwrap_or(sel.len());
            let pattern = sel.strip_prefix('/').filter(|_| name != "XML");
            let end = match pattern.and_then(closing_slash) {
                Some(slash) => 2 + slash,
                None => plain_end,
            };
            selector = Some(sel[..end].to_owned());
            rest = &sel[end..];
        }
        rest = rest.strip_prefix('|').unwrap_or(rest);
        out.push(Target {
            excluded,
            counted,
            name,
            selector,
        });
    }
    out
}

/// The index of the first `/` not escaped by a backslash.
fn closing_slash(pattern: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in pattern.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '/' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// `id:1,t:none,msg:'a, b'`: commas inside single quotes do not separate.
fn parse_actions(text: &str) -> Vec<Action> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut push = |raw: &str| {
        let raw = raw.trim();
        if raw.is_empty() {
            return;
        }
        let (name, value) = match raw.split_once(':') {
            Some((n, v)) => {
                let v = v.trim();
                let v = v
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap_or(v);
                (n.trim(), Some(v.to_owned()))
            }
            None => (raw, None),
        };
        out.push(Action {
            name: name.to_owned(),
            value,
        });
    };
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => {
                push(&current);
                current.clear();
            }
            c => current.push(c),
        }
    }
    push(&current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
# a comment
SecRuleEngine On
SecRule REQUEST_HEADERS|!REQUEST_HEADERS:Referer|&ARGS|REQUEST_COOKIES:/^a|b$/ "@rx (?i)a\"b" \
    "id:1,\
    phase:2,\
    t:none,t:urlDecodeUni,t:none,t:lowercase,\
    msg:'x, y',\
    chain"
    SecRule MATCHED_VARS "!@pmFromFile words.data" "t:cmdLine"
SecRule ARGS "foo" "id:2,setvar:'tx.x=1'"
SecMarker END
"#;

    #[test]
    fn reads_directives_rules_and_chains() {
        let d = parse(TEXT, Path::new("/crs")).unwrap();
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["SecRuleEngine", "SecRule", "SecRule", "SecMarker"]);
        let rule = &d[1];
        assert_eq!(rule.links.len(), 2);
        let first = &rule.links[0];
        assert_eq!(first.targets.len(), 4);
        assert_eq!(
            first.targets[1],
            Target {
                excluded: true,
                counted: false,
                name: "REQUEST_HEADERS".into(),
                selector: Some("Referer".into())
            }
        );
        assert!(first.targets[2].counted);
        assert_eq!(first.targets[3].selector.as_deref(), Some("/^a|b$/"));
        assert_eq!(first.operator.name, "rx");
        assert_eq!(first.operator.param, "(?i)a\"b");
        assert_eq!(first.transformations(), ["lowercase"]);
        assert!(first
            .actions
            .iter()
            .any(|a| a.name == "msg" && a.value.as_deref() == Some("x, y")));
        let second = &rule.links[1];
        assert!(second.operator.negated);
        assert_eq!(second.operator.param, "/crs/words.data");
        assert!(rule.text.contains("@pmFromFile /crs/words.data"));
        assert!(rule.text.contains("t:urlDecodeUni") && rule.text.ends_with("\"t:cmdLine\""));
        assert_eq!(d[2].links[0].operator.param, "foo");
        let action = &parse("SecDefaultAction \"phase:1,t:lowercase\"", Path::new("/")).unwrap()[0];
        assert_eq!(action.actions[1].value.as_deref(), Some("lowercase"));
        assert_eq!(
            d[2].links[0].actions[1].value.as_deref(),
            Some("tx.x=1"),
            "quotes around a value are not part of it"
        );
    }

    #[test]
    fn bad_text_is_an_error() {
        let dir = Path::new("/");
        assert!(parse("SecRule ARGS \"@rx a", dir).is_err());
        assert!(parse("SecRule ARGS", dir).is_err());
        assert!(parse("SecRule ARGS a \"id:1\" extra", dir).is_err());
        assert!(parse("SecRule ARGS '@rx a b' \"id:1\"", dir).is_err());
        assert!(parse("SecRule ARGS a \"id:1,chain\"", dir).is_err());
        assert!(parse("SecRule ARGS a \"id:1,chain\"\nSecMarker x", dir).is_err());
        assert!(parse("SecRule ARGS a \\", dir).is_err());
        let xpath = parse("SecRule ARGS|XML:/*|XML://@* a", dir).unwrap();
        let targets = &xpath[0].links[0].targets;
        assert_eq!(targets[1].selector.as_deref(), Some("/*"));
        assert_eq!(targets[2].selector.as_deref(), Some("//@*"));
        assert!(parse("", dir).unwrap().is_empty());
    }
}
