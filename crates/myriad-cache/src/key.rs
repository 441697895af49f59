//! Cache keys: the primary key of a request (host and target), the tags of a response, and
//! purge targets written as URLs.

use http::header::HeaderMap;

/// The primary key: lower-case host (with port) followed by the path and query.
pub fn primary(host: &str, path_and_query: &str) -> String {
    let mut key = String::with_capacity(host.len() + path_and_query.len());
    key.push_str(host);
    key.make_ascii_lowercase();
    key.push_str(path_and_query);
    key
}

/// A purge target (`http[s]://host/path…` or `host/path…`) as a primary key or key prefix;
/// `None` when it names no host.
pub fn purge_target(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    (!host.is_empty()).then(|| primary(host, path))
}

/// Tags a response carries for purging: `Surrogate-Key` (space-separated) and `Cache-Tag`
/// (comma-separated).
pub fn tags(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let fields = [("surrogate-key", ' '), ("cache-tag", ',')];
    for (name, sep) in fields {
        for v in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
            for t in v.split(sep).map(str::trim).filter(|t| !t.is_empty()) {
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_owned());
                }
            }
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn purge_targets_match_primary_keys() {
        assert_eq!(
            purge_target("http://Site.Test/a?b=1"),
            Some(primary("site.test", "/a?b=1"))
        );
        assert_eq!(
            purge_target("https://site.test:8443/img/"),
            Some("site.test:8443/img/".into())
        );
        assert_eq!(purge_target("site.test"), Some("site.test/".into()));
        assert_eq!(purge_target("http:///x"), None);
        assert_eq!(purge_target(""), None);
    }

    #[test]
    fn tags_from_both_fields() {
        let mut h = HeaderMap::new();
        h.insert("surrogate-key", HeaderValue::from_static("a  b c"));
        h.append("cache-tag", HeaderValue::from_static("c, d,,e"));
        assert_eq!(tags(&h), ["a", "b", "c", "d", "e"]);
    }
}
