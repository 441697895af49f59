//! Host names in site and certificate configuration: exact (`example.com`) or wildcard
//! (`*.example.com`: every name below it, at any depth, as nginx's `server_name` has it).
//! An exact name wins over a wildcard, and a longer wildcard over a shorter one.

/// How well `pattern` names `host` (both lowercase, without a port): `None` if it does not,
/// else a rank — exact names above every wildcard, wildcards by the length of their suffix.
pub fn rank(pattern: &str, host: &str) -> Option<usize> {
    match pattern.strip_prefix("*.") {
        None => (pattern == host).then_some(usize::MAX),
        Some(parent) => {
            let below = host.strip_suffix(parent)?.strip_suffix('.')?;
            (!below.is_empty()).then_some(parent.len())
        }
    }
}

/// The best of `candidates` (each with its patterns) for `host`.
pub fn best<'a, T>(
    host: &str,
    candidates: impl IntoIterator<Item = (&'a [String], T)>,
) -> Option<T> {
    candidates
        .into_iter()
        .filter_map(|(patterns, c)| {
            let r = patterns.iter().filter_map(|p| rank(p, host)).max()?;
            Some((r, c))
        })
        // The first of equals: configuration order decides.
        .fold(None, |best: Option<(usize, T)>, (r, c)| match best {
            Some((b, _)) if b >= r => best,
            _ => Some((r, c)),
        })
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_names() {
        assert_eq!(rank("example.com", "example.com"), Some(usize::MAX));
        assert_eq!(rank("example.com", "www.example.com"), None);
        assert_eq!(rank("*.example.com", "www.example.com"), Some(11));
        assert_eq!(rank("*.example.com", "a.b.example.com"), Some(11));
        assert_eq!(rank("*.example.com", "example.com"), None);
        assert_eq!(rank("*.example.com", "badexample.com"), None);
        assert_eq!(rank("*.example.com", ".example.com"), None);
        assert_eq!(rank("*.", "x"), None);
    }

    #[test]
    fn the_most_specific_pattern_wins_then_the_first() {
        let sites: Vec<(Vec<String>, &str)> = vec![
            (vec!["*.example.com".into()], "any"),
            (vec!["*.media.example.com".into()], "media"),
            (vec!["live.media.example.com".into()], "live"),
            (vec!["*.example.com".into()], "second any"),
        ];
        let pick = |host: &str| best(host, sites.iter().map(|(p, n)| (p.as_slice(), *n)));
        assert_eq!(pick("www.example.com"), Some("any"));
        assert_eq!(pick("img.media.example.com"), Some("media"));
        assert_eq!(pick("live.media.example.com"), Some("live"));
        assert_eq!(pick("example.org"), None);
    }
}
