//! Subjects as NATS has them: tokens separated by `.`; in a subscription, `*` stands for one
//! token and a final `>` for one or more.

/// Whether `subject` (no wildcards) is matched by `pattern`.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

/// A subject to publish on: non-empty tokens, no wildcards, no white space.
pub fn valid_subject(subject: &str) -> bool {
    valid(subject) && subject.split('.').all(|t| t != "*" && t != ">")
}

/// A subscription pattern: like a subject, with `*` tokens and a final `>` allowed.
pub fn valid_pattern(pattern: &str) -> bool {
    let tokens: Vec<&str> = pattern.split('.').collect();
    valid(pattern)
        && tokens
            .iter()
            .enumerate()
            .all(|(i, t)| *t != ">" || i == tokens.len() - 1)
}

fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|t| !t.is_empty())
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// A token made from an outside name (a meeting id, a node name): only what a subject token
/// may hold, so no name can reach into another's subjects.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_in_nats() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("*.b.>", "x.b.c.d"));
        assert!(!matches("a.b", "a.c"));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_subject("myriad.meeting.abc"));
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a\n"] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
        assert!(valid_pattern("a.*.c") && valid_pattern("a.>"));
        assert!(!valid_pattern("a.>.c"));
        assert!(valid_token("abc-def_1"));
        for bad in ["", "a.b", "*", ">", "a b", &"x".repeat(65)] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }
}
