//! URL path segments: percent-encoding (RFC 3986 §2.1) and the names of collection members.
//!
//! The encoders differ only in which characters they keep readable, so there is one
//! [`percent_encode`] and a keep-set per use ([`SEGMENT`] for URL paths built from user names,
//! the translate layer's own sets for CalIDs and resource names).

use reqwest::Url;

/// The characters besides ASCII letters and digits that a path segment built by calgate
/// keeps as they are (RFC 3986 §2.3 unreserved, and `@` for user names that are addresses).
pub(crate) const SEGMENT: &[u8] = b"-._~@";

/// Percent-encodes every byte of `s` except ASCII letters, digits and the bytes in `keep`
/// (`%XX`, upper-case hex).
pub(crate) fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8. A `%` without two hex digits is
/// kept as it is.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The name of `url` as a direct member of the collection `parent` (`/h/bob/` and
/// `/h/bob/Work%20Play/` give `Work Play`), percent-decoded; `None` when `url` is not one
/// segment below `parent` (the collection itself, something deeper, elsewhere) or the name is
/// not UTF-8.
pub(crate) fn child_name(parent: &Url, url: &Url) -> Option<String> {
    let rest = url
        .path()
        .strip_prefix(parent.path().trim_end_matches('/'))?
        .strip_prefix('/')?;
    let seg = rest.trim_end_matches('/');
    if seg.is_empty() || seg.contains('/') {
        return None;
    }
    percent_decode(seg)
}

/// True when both URLs name the same collection: same origin, same path but for a trailing
/// slash (servers report `/h/alice` and `/h/alice/` for one collection).
pub(crate) fn same_collection(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin() && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(p: &str) -> Url {
        Url::parse(&format!("http://h{p}")).unwrap()
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(percent_encode("bob", SEGMENT), "bob");
        assert_eq!(percent_encode("a b/c", SEGMENT), "a%20b%2Fc");
        assert_eq!(
            percent_encode("bob@example.com", SEGMENT),
            "bob@example.com"
        );
        assert_eq!(percent_encode("ä~", b""), "%C3%A4%7E");
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2"), Some("a%2".into()));
        assert_eq!(percent_decode("%41%62"), Some("Ab".into()));
        assert_eq!(percent_decode("%C3"), None);
        for s in ["Work Play", "Kalenderä", "100%", "a/b"] {
            assert_eq!(
                percent_decode(&percent_encode(s, SEGMENT)).as_deref(),
                Some(s)
            );
        }
    }

    #[test]
    fn child_names() {
        let home = url("/h/bob/");
        assert_eq!(
            child_name(&home, &url("/h/bob/Work%20Play/")).as_deref(),
            Some("Work Play")
        );
        assert_eq!(
            child_name(&home, &url("/h/bob/cal")).as_deref(),
            Some("cal")
        );
        assert_eq!(
            child_name(&url("/h/bob"), &url("/h/bob/cal/")).as_deref(),
            Some("cal")
        );
        for other in [
            "/h/bob/",
            "/h/bob",
            "/h/bob/a/b/",
            "/h/bobby/cal/",
            "/h/alice/cal/",
        ] {
            assert_eq!(child_name(&home, &url(other)), None, "{other}");
        }
        assert_eq!(child_name(&home, &url("/h/bob/%FF/")), None);
    }

    #[test]
    fn collections_compare_without_trailing_slash() {
        assert!(same_collection(&url("/h/alice/"), &url("/h/alice")));
        assert!(!same_collection(&url("/h/alice/"), &url("/h/alice2/")));
        assert!(!same_collection(
            &url("/h/alice/"),
            &Url::parse("http://other/h/alice/").unwrap()
        ));
    }
}
