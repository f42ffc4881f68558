//! SENDDATA TARGETs (cap-04 §2.4.2 and §7.2.1; cap-02 §2.6 "Calendar Addresses"; spec §3.2).
//!
//! A TARGET is `[[<scheme>]://<csid>[:<port>]/]<relcalid>`: on this store
//! `cap://example.com/alice`, `://example.com/alice` and `alice` name the same calendar.
//! calgate's relative CalIDs are `<user>` (the user's default calendar, as a TARGET) and
//! `<user>/<calendar>` (see `translate::calid`); `cap://<csid>/` with an empty relative part
//! names the calendar store itself (where top-level calendars are created). A CSID other than
//! `gateway.server_id` names another calendar store: calgate does not fan out (cap-04's
//! "2.2 will attempt operation on the remote CAP server" is not offered), so such a TARGET gets
//! its own status and the others go ahead.

use crate::translate::calid::{self, CalId};

/// What a TARGET names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The calendar store (`cap://<csid>/`).
    Store,
    /// A calendar of this store.
    Calendar(CalId),
}

/// Why a TARGET cannot be used (another calendar store, or not a CalID); the text is for the
/// client.
pub use crate::translate::calid::CalIdError as TargetError;

/// Reads a TARGET value (any of the three forms above).
pub fn parse(target: &str, server_id: &str) -> Result<Target, TargetError> {
    Ok(match calid::parse_address(target, server_id)? {
        None => Target::Store,
        Some(c) => Target::Calendar(c),
    })
}

/// The TARGET as calgate writes it in replies: qualified with `cap://<server_id>/` (spec §3.6),
/// otherwise as the client wrote it.
pub fn qualified(target: &str, server_id: &str) -> String {
    let text = target.trim();
    match text.strip_prefix("://") {
        Some(rest) => format!("cap://{rest}"),
        None if calid::is_absolute(text) => text.to_owned(),
        None => format!("cap://{server_id}/{}", text.trim_start_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(user: &str, calendar: Option<&str>) -> Target {
        Target::Calendar(CalId {
            user: user.into(),
            calendar: calendar.map(str::to_owned),
        })
    }

    #[test]
    fn the_three_forms_name_the_same_calendar() {
        let s = "cal.example.com";
        for t in [
            "cap://cal.example.com/alice",
            "://cal.example.com/alice",
            "alice",
            "CAP://CAL.example.com:5229/alice/",
        ] {
            assert_eq!(parse(t, s), Ok(cal("alice", None)), "{t}");
        }
        assert_eq!(parse("alice/Work", s), Ok(cal("alice", Some("Work"))));
        assert_eq!(
            parse("://cal.example.com/bob/Default", s),
            Ok(cal("bob", Some("Default")))
        );
    }

    #[test]
    fn the_store_itself() {
        let s = "cal.example.com";
        assert_eq!(parse("cap://cal.example.com/", s), Ok(Target::Store));
        assert_eq!(parse("cap://cal.example.com", s), Ok(Target::Store));
        assert_eq!(parse("://cal.example.com/", s), Ok(Target::Store));
    }

    #[test]
    fn foreign_and_invalid() {
        let s = "cal.example.com";
        let e = parse("cap://cal.other.org/relcal2", s).unwrap_err();
        assert!(
            matches!(&e, TargetError::Foreign(t) if t.contains("cal.other.org")),
            "{e}"
        );
        for bad in [
            "",
            "cap:///x",
            "http://cal.example.com/alice",
            "a b",
            "alice/x/y",
        ] {
            assert!(
                matches!(parse(bad, s), Err(TargetError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn qualification() {
        let s = "cal.example.com";
        assert_eq!(qualified("alice", s), "cap://cal.example.com/alice");
        assert_eq!(
            qualified("://cal.example.com/x", s),
            "cap://cal.example.com/x"
        );
        assert_eq!(qualified("cap://other/x", s), "cap://other/x");
    }
}
