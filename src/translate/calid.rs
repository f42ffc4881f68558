//! calgate's CalIDs (cap-04 §2.4.2 leaves their form to the calendar store; see
//! `protocols/caldav-mapping.md`, "CalIDs"):
//!
//! - `cap://<server_id>/<user>/<calendar>`: one calendar collection in `<user>`'s calendar home
//!   (RFC 4791 §6.2.1), `<calendar>` being the collection's last URL path segment;
//! - `cap://<server_id>/<user>`: the user's calendar home (CALIDEXPAND lists its calendars; as a
//!   SENDDATA TARGET it names the user's default calendar);
//! - the same without `cap://<server_id>/` (a relative CalID), with or without a leading `/`; a
//!   trailing `/` is ignored.

use crate::caldav::path::{percent_decode, percent_encode};

/// What a CalID segment shows unencoded besides letters and digits: RFC 3986's unreserved
/// characters, `@` and the sub-delims, all of which a CAP argument can carry.
const CALID_KEEP: &[u8] = b"-._~@!$&'()*+,;=";

/// A CalID of this calendar store, split into its parts (still as the client wrote them,
/// percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalId {
    /// The user segment (a login name or an address).
    pub user: String,
    /// The calendar's name; `None` for the calendar home.
    pub calendar: Option<String>,
}

/// Why a text is not a CalID of this calendar store; the text is for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalIdError {
    /// A CalID of another calendar store (calgate does not fan out).
    #[error("{0}")]
    Foreign(String),
    /// Not a CalID calgate understands.
    #[error("{0}")]
    Invalid(String),
}

/// Splits a CalID (absolute `cap://host/...` or relative) of one user's home or calendar.
pub fn parse(calid: &str, server_id: &str) -> Result<CalId, CalIdError> {
    let text = calid.trim();
    parse_address(text, server_id)?.ok_or_else(|| {
        CalIdError::Invalid(format!(
            "{text} names no user; expected cap://{server_id}/<user>[/<calendar>]"
        ))
    })
}

/// True for an absolute calendar address: `cap://host/…`, or `://host/…` with the scheme left
/// out (cap-02 §2.6 "Calendar Addresses").
pub fn is_absolute(text: &str) -> bool {
    let text = text.trim();
    strip_prefix_ci(text, "cap://").is_some() || text.starts_with("://")
}

/// Reads a calendar address (cap-02 §2.6): `[[cap]://<csid>[:<port>]/]<relcalid>`. `Ok(None)`
/// for the calendar store itself (`cap://<server_id>/`, an empty relative part).
pub fn parse_address(calid: &str, server_id: &str) -> Result<Option<CalId>, CalIdError> {
    let text = calid.trim();
    let invalid = |why: String| CalIdError::Invalid(why);
    let expected = format!("expected cap://{server_id}/<user>[/<calendar>]");
    if text.is_empty() {
        return Err(invalid(format!(
            "An empty CalID names no calendar; {expected}"
        )));
    }
    let absolute = strip_prefix_ci(text, "cap://").or_else(|| text.strip_prefix("://"));
    let path = if let Some(rest) = absolute {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        if host.is_empty() || host.contains('@') {
            return Err(invalid(format!("{text} is not a CalID; {expected}")));
        }
        if !host.eq_ignore_ascii_case(server_id) {
            return Err(CalIdError::Foreign(format!(
                "{text} is not on this calendar store ({server_id}); ask the calendar store at {host}"
            )));
        }
        if path.trim_matches('/').is_empty() {
            return Ok(None);
        }
        path
    } else if text.contains("://") {
        return Err(invalid(format!("{text} is not a cap:// CalID; {expected}")));
    } else {
        text.strip_prefix('/').unwrap_or(text)
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!("{text} is not a CalID; {expected}")));
    }
    let segments: Vec<&str> = path.split('/').collect();
    let decoded = |s: &str| percent_decode(s).filter(|d| valid_segment(d));
    let no_user = || invalid(format!("{text} names no user; {expected}"));
    match segments.as_slice() {
        [user] => Ok(Some(CalId {
            user: decoded(user).ok_or_else(no_user)?,
            calendar: None,
        })),
        [user, calendar] => Ok(Some(CalId {
            user: decoded(user).ok_or_else(no_user)?,
            calendar: Some(
                decoded(calendar)
                    .ok_or_else(|| invalid(format!("{text} names no calendar; {expected}")))?,
            ),
        })),
        _ => Err(invalid(format!(
            "{text} names nothing on this calendar store; {expected}"
        ))),
    }
}

/// Whether `s` (percent-decoded) can be one CalID segment, a user or a calendar name: one
/// non-empty URL path segment, not `.` or `..`, without `/` or control characters.
pub fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains(char::is_control)
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    (text.len() >= prefix.len()
        && text.is_char_boundary(prefix.len())
        && text[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &text[prefix.len()..])
}

/// A CalID segment for display: what a CAP argument can carry stays readable, the rest is
/// percent-encoded (see the module documentation).
pub fn display_segment(s: &str) -> String {
    percent_encode(s, CALID_KEEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(user: &str, calendar: Option<&str>) -> CalId {
        CalId {
            user: user.into(),
            calendar: calendar.map(str::to_owned),
        }
    }

    #[test]
    fn calids_absolute_relative_and_home() {
        let s = "example.com";
        assert_eq!(
            parse("cap://example.com/alice/Default", s),
            Ok(parts("alice", Some("Default")))
        );
        assert_eq!(
            parse("CAP://Example.COM:5229/alice/Default/", s),
            Ok(parts("alice", Some("Default")))
        );
        assert_eq!(
            parse("cap://example.com/alice", s),
            Ok(parts("alice", None))
        );
        assert_eq!(
            parse("cap://example.com/alice/", s),
            Ok(parts("alice", None))
        );
        assert_eq!(
            parse("alice/calendar", s),
            Ok(parts("alice", Some("calendar")))
        );
        assert_eq!(parse("/alice", s), Ok(parts("alice", None)));
        assert_eq!(
            parse(" alice@example.com/Work%20Play ", s),
            Ok(parts("alice@example.com", Some("Work Play")))
        );
        assert_eq!(
            parse("alice/Kalender%C3%A4", s),
            Ok(parts("alice", Some("Kalenderä")))
        );
    }

    #[test]
    fn calids_that_are_not_ours() {
        let s = "example.com";
        let other = parse("cap://cal.other.example/alice/Default", s).unwrap_err();
        assert!(matches!(other, CalIdError::Foreign(_)), "{other:?}");
        let other = other.to_string();
        assert!(other.contains("not on this calendar store"), "{other}");
        assert!(other.contains("cal.other.example"), "{other}");
        assert_eq!(
            parse_address("://example.com/", s),
            Ok(None),
            "the store, scheme left out"
        );
        assert_eq!(
            parse_address("://EXAMPLE.com:5229/alice", s),
            Ok(Some(parts("alice", None)))
        );
        assert!(is_absolute(" cap://x/y") && is_absolute("://x/y") && !is_absolute("alice"));
        for bad in [
            "",
            "cap://example.com",
            "cap://example.com/",
            "cap://example.com/alice/Default/extra",
            "http://example.com/alice",
            "cap://x@example.com/alice",
            "alice//Default",
            "alice/Default?x",
            "alice/..",
            "alice/a%2Fb",
            "alice/%FF",
            "a b/c",
        ] {
            assert!(parse(bad, s).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn segments_are_one_non_empty_path_segment() {
        for good in ["Default", "Work Play", "a.b", "...", "Kalenderä"] {
            assert!(valid_segment(good), "{good:?}");
        }
        for bad in ["", ".", "..", "a/b", "/", "a\u{1}b", "a\nb"] {
            assert!(!valid_segment(bad), "{bad:?}");
        }
    }

    #[test]
    fn segments_display_readably_and_round_trip() {
        assert_eq!(display_segment("Default"), "Default");
        assert_eq!(display_segment("alice@example.com"), "alice@example.com");
        assert_eq!(display_segment("Work Play"), "Work%20Play");
        assert_eq!(display_segment("a/b%c:d"), "a%2Fb%25c%3Ad");
        assert_eq!(display_segment("Kalenderä"), "Kalender%C3%A4");
        for name in [
            "Work Play",
            "Kalenderä",
            "100%",
            "x:y",
            "calgate-test-1.2~3",
        ] {
            let shown = display_segment(name);
            assert!(!shown.contains([' ', '/', ':']), "{shown}");
            assert_eq!(
                parse(&format!("alice/{shown}"), "s").map(|p| p.calendar),
                Ok(Some(name.to_owned()))
            );
        }
        assert_eq!(percent_decode("a%2"), Some("a%2".into()));
        assert_eq!(percent_decode("%41%62"), Some("Ab".into()));
        assert_eq!(percent_decode("%C3"), None);
    }
}
