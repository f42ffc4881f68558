//! CIP replies (cip-00 §1.4): `* <code> <info>` informational lines and the `OK|NO nnn text`
//! completion. This module is the one place where outcomes and errors become result codes:
//!
//! | code | meaning (cip-00 §1.4)              | used for                                            |
//! |------|------------------------------------|-----------------------------------------------------|
//! | 000  | no further information             | success; upstream failures; unknown UID             |
//! | 001  | invalid command or bad parameters  | syntax, unusable data, oversized lines and blocks   |
//! | 002  | not allowed by access control      | policy, wrong identity, upstream 403                |
//! | 003  | partially completed                | some attendees or users were not reached            |
//!
//! Informational codes: `TENTATIVE`, `NOTFOUND`, `PERMDENIED` (SENDEVENT), `CONFIRMED` (RSVP),
//! `NOTFOUND` (FREEBUSY), as in cip-00 §2.2–§2.4; `FAILED <user> <why>` is a gateway extension
//! for an attendee the upstream could not reach (clients ignore unknown codes, §1.4).

use super::command::CommandError;
use crate::framing::stuff;
use crate::translate::{
    DeliveryStatus, FreeBusyOutcome, LoginError, RsvpOutcome, SendEventOutcome, TranslateError,
};

/// The greeting (cip-00 §1.4): `OK CIP 1.0 <server-id>`.
pub fn greeting(server_id: &str) -> String {
    format!("OK CIP 1.0 {server_id}")
}

/// A bad command line.
pub fn command_error(e: &CommandError) -> String {
    format!("NO 001 {e}")
}

/// Successful login.
pub fn login_ok(who: &str) -> String {
    format!("OK 000 Logged in as {who}")
}

/// Failed login: no reason is given (cip-00 §2.1), unless the upstream could not be asked.
pub fn login_failed(e: &LoginError) -> String {
    match e {
        LoginError::Refused => "NO 000 Authentication failed".into(),
        LoginError::Unavailable(_) => "NO 000 Upstream unavailable, try again later".into(),
    }
}

/// A translation error as a completion line.
pub fn error(e: &TranslateError) -> String {
    match e {
        TranslateError::BadInput(t) => format!("NO 001 {t}"),
        TranslateError::AccessDenied(t) => format!("NO 002 {t}"),
        TranslateError::NotFound(t) | TranslateError::Conflict(t) | TranslateError::Exists(t) => {
            format!("NO 000 {t}")
        }
        TranslateError::Upstream(u) => {
            if u.is_unavailable() {
                "NO 000 Upstream unavailable".into()
            } else if u.is_uid_conflict() {
                "NO 000 The UID is in use by another event on the calendar server".into()
            } else if u.is_data_refused() {
                match u.condition() {
                    Some(c) => format!("NO 001 The calendar server refused the data ({c})"),
                    None => "NO 001 The calendar server refused the data".into(),
                }
            } else if u.is_unauthorized() || u.status() == Some(403) {
                "NO 002 The calendar server refused access".into()
            } else if u.status() == Some(413) {
                "NO 001 The calendar server refused the data as too large".into()
            } else if let Some(status) = u.status() {
                format!("NO 000 Upstream error (HTTP {status})")
            } else {
                "NO 000 Upstream error".into()
            }
        }
    }
}

/// SENDEVENT: one line per local attendee, then the completion (spec §7.3 #15).
pub fn sendevent(o: &SendEventOutcome) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut delivered, mut refused, mut other, mut unknown) = (0, 0, 0, 0);
    for d in &o.deliveries {
        match &d.status {
            DeliveryStatus::Delivered => {
                delivered += 1;
                lines.push(format!("* TENTATIVE {}", d.address));
            }
            DeliveryStatus::UnknownUser => {
                other += 1;
                lines.push(format!("* NOTFOUND {}", d.address));
            }
            DeliveryStatus::Refused => {
                refused += 1;
                lines.push(format!("* PERMDENIED {}", d.address));
            }
            DeliveryStatus::Failed(why) => {
                other += 1;
                lines.push(format!("* FAILED {} {why}", d.address));
            }
            DeliveryStatus::Unknown(why) => {
                unknown += 1;
                lines.push(format!("* UNKNOWN {} {why}", d.address));
            }
        }
    }
    let completion = if o.deliveries.is_empty() {
        if o.written {
            "OK 000 Event stored; no local attendees".to_owned()
        } else {
            format!(
                "OK 000 Event unchanged: SEQUENCE {} is already stored",
                o.sequence
            )
        }
    } else if refused + other == 0 && unknown > 0 {
        "OK 003 Event stored; delivery could not be confirmed for every attendee".to_owned()
    } else if refused + other == 0 {
        if o.written {
            "OK 000 Event delivered".to_owned()
        } else {
            format!(
                "OK 000 Event unchanged: SEQUENCE {} is already stored",
                o.sequence
            )
        }
    } else if delivered + unknown > 0 {
        "OK 003 Not all attendees received the event".to_owned()
    } else if other == 0 {
        "NO 002 No attendee accepts events from this organizer".to_owned()
    } else {
        "NO 000 No attendee received the event".to_owned()
    };
    lines.push(completion);
    lines
}

/// RSVP: `* CONFIRMED` for the other attendees who accepted, then the completion.
pub fn rsvp(o: &RsvpOutcome) -> Vec<String> {
    let mut lines: Vec<String> = o
        .confirmed
        .iter()
        .map(|a| format!("* CONFIRMED {a}"))
        .collect();
    lines.push(format!(
        "OK 000 RSVP recorded: {} is {}",
        o.responder, o.partstat
    ));
    lines
}

/// FREEBUSY: `+`, the VCALENDAR, `.`, informational lines, completion (spec §7.3 #6).
pub fn freebusy(o: &FreeBusyOutcome) -> Vec<String> {
    let mut lines = Vec::new();
    if !o.found.is_empty() {
        lines.push("+".to_owned());
        let mut ics = vec![
            "BEGIN:VCALENDAR".to_owned(),
            "VERSION:2.0".to_owned(),
            "PRODID:-//calgate//calgate//EN".to_owned(),
            "METHOD:REPLY".to_owned(),
        ];
        for u in &o.found {
            ics.push("BEGIN:VFREEBUSY".to_owned());
            ics.push(format!("ATTENDEE:{}", u.address));
            ics.push(format!("DTSTART:{}", o.start));
            ics.push(format!("DTEND:{}", o.end));
            for b in &u.busy {
                ics.push(b.to_line());
            }
            ics.push("END:VFREEBUSY".to_owned());
        }
        ics.push("END:VCALENDAR".to_owned());
        for logical in ics {
            for physical in crate::ical::contentline::fold(&logical)
                .split("\r\n")
                .filter(|l| !l.is_empty())
            {
                lines.push(stuff(physical));
            }
        }
        lines.push(".".to_owned());
    }
    for a in &o.not_found {
        lines.push(format!("* NOTFOUND {a}"));
    }
    for a in &o.refused {
        lines.push(format!("* PERMDENIED {a}"));
    }
    for (a, why) in &o.failed {
        lines.push(format!("* FAILED {a} {why}"));
    }
    let missing = o.not_found.len() + o.refused.len() + o.failed.len();
    lines.push(if o.found.is_empty() {
        "NO 000 No free/busy information found".to_owned()
    } else if missing == 0 {
        "OK 000 Free/busy returned".to_owned()
    } else {
        "OK 003 Not all users were found".to_owned()
    });
    lines
}

/// `HELP` (extension): the commands and their syntax, for people at a terminal.
pub fn help() -> Vec<String> {
    [
        "* HELP AUTHENTICATE LOGIN <identity> <password>  log in as a user or a peer server id",
        "* HELP SENDEVENT +    then event lines, then a line with a single .  deliver an invitation",
        "* HELP RSVP +         then UID, ATTENDEE;STATUS=..., then .  answer an invitation (alias RESPOND)",
        "* HELP FREEBUSY +     then ATTENDEE, DTSTART, DTEND lines, then .  ask for busy time",
        "* HELP NOOP           do nothing",
        "* HELP QUIT           end the session (alias LOGOUT; closing the connection works too)",
        "OK 000 Commands are case-insensitive; lines end with CRLF or LF",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Delivery, DeliveryStatus as S};

    fn outcome(statuses: &[S], written: bool) -> SendEventOutcome {
        SendEventOutcome {
            uid: "u".into(),
            written,
            sequence: 1,
            deliveries: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| Delivery {
                    address: format!("u{i}@example.com"),
                    status: s.clone(),
                })
                .collect(),
        }
    }

    fn last(lines: Vec<String>) -> String {
        lines.last().cloned().unwrap_or_default()
    }

    #[test]
    fn sendevent_completion_rules() {
        assert!(
            last(sendevent(&outcome(&[S::Delivered, S::Delivered], true))).starts_with("OK 000")
        );
        assert!(
            last(sendevent(&outcome(&[S::Delivered, S::UnknownUser], true))).starts_with("OK 003")
        );
        assert!(last(sendevent(&outcome(&[S::Refused, S::Refused], true))).starts_with("NO 002"));
        assert!(last(sendevent(&outcome(&[S::UnknownUser], true))).starts_with("NO 000"));
        assert!(
            last(sendevent(&outcome(
                &[S::Refused, S::Failed("x".into())],
                true
            )))
            .starts_with("NO 000")
        );
        assert!(last(sendevent(&outcome(&[], true))).starts_with("OK 000"));
        assert!(last(sendevent(&outcome(&[S::Delivered], false))).contains("unchanged"));
        let lines = sendevent(&outcome(&[S::Delivered, S::UnknownUser, S::Refused], true));
        assert_eq!(lines[0], "* TENTATIVE u0@example.com");
        assert_eq!(lines[1], "* NOTFOUND u1@example.com");
        assert_eq!(lines[2], "* PERMDENIED u2@example.com");
    }

    #[test]
    fn freebusy_block_is_framed_and_stuffed() {
        let o = FreeBusyOutcome {
            start: "19961126T080000Z".into(),
            end: "19961126T200000Z".into(),
            found: vec![crate::translate::UserFreeBusy {
                address: "bob@example.com".into(),
                busy: vec![],
            }],
            not_found: vec!["zed@example.com".into()],
            ..FreeBusyOutcome::default()
        };
        let lines = freebusy(&o);
        assert_eq!(lines[0], "+");
        assert!(lines.contains(&"ATTENDEE:bob@example.com".to_owned()));
        let dot = lines.iter().position(|l| l == ".").unwrap();
        assert_eq!(lines[dot + 1], "* NOTFOUND zed@example.com");
        assert_eq!(lines.last().unwrap(), "OK 003 Not all users were found");
        let none = freebusy(&FreeBusyOutcome {
            not_found: vec!["x@y.z".into()],
            ..FreeBusyOutcome::default()
        });
        assert_eq!(
            none,
            vec!["* NOTFOUND x@y.z", "NO 000 No free/busy information found"]
        );
    }
}
