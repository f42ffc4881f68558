//! REQUEST-STATUS values of SENDDATA replies (spec §3.6, §2.9; RFC 2446 §3.6 codes): the one
//! place where a translation or upstream error becomes a per-object status. The table is
//! repeated in `protocols/caldav-mapping.md` ("CAP SENDDATA: upstream errors").
//!
//! Codes follow spec Q11: where an iTIP code exists it is used (3.x bad data or no authority,
//! 5.1 service unavailable); the CAP codes fill the gaps (6.1 container not found and 6.2
//! already exists from cap-04 §7.2.1.2, 8.5 UID already in use, 10.4 quota, 8.0 failure).

use super::payload::PayloadError;
use crate::caldav::CaldavError;
use crate::ical::contentline::ContentLine;
use crate::translate::TranslateError;

/// One REQUEST-STATUS: `code;description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The dotted code (`2.0`, `8.5`, …).
    pub code: &'static str,
    /// A readable description (never credentials, never event bodies).
    pub text: String,
}

impl Status {
    /// `2.0;Success`.
    pub fn success() -> Status {
        Status::new(SUCCESS, "Success")
    }

    /// A status with this code and text.
    pub fn new(code: &'static str, text: impl Into<String>) -> Status {
        Status {
            code,
            text: text.into(),
        }
    }

    /// True for 2.x.
    pub fn is_success(&self) -> bool {
        self.code.starts_with("2.")
    }

    /// The `REQUEST-STATUS` content line (the text is escaped as iCalendar TEXT; a `;` in it
    /// would start the extra-data field, so it becomes `,`).
    pub fn to_line(&self) -> ContentLine {
        let text = self.text.replace(['\r', '\n'], " ").replace(';', ",");
        let mut line = ContentLine::new("REQUEST-STATUS", "");
        line.value = format!(
            "{};{}",
            self.code,
            crate::ical::contentline::escape_text(&text)
        );
        line
    }
}

/// Client data that cannot be used or applied (a query that does not parse, a MODIFY or an
/// iTIP ADD/CANCEL that does not fit the stored object): an RFC 2446 §3.6 REQUEST-STATUS code
/// (`3.0` … `3.14`) and a readable reason. `cap::vquery`, `cap::modify` and `cap::itip` name it
/// after themselves (`QueryError`, `ModifyError`, `ItipError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}")]
pub struct Refusal {
    /// The REQUEST-STATUS code.
    pub code: &'static str,
    /// What is wrong, for the REQUEST-STATUS description and the log.
    pub reason: String,
}

impl Refusal {
    /// A refusal with this code and reason.
    pub fn new(code: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        Status::new(r.code, r.reason)
    }
}

/// 2.0 Success.
pub const SUCCESS: &str = "2.0";
/// 3.0 Invalid property name (RFC 2446): the data is not a calendar object at all.
pub const INVALID_NAME: &str = "3.0";
/// 3.1 Invalid property value (RFC 2446): the client's data cannot be used.
pub const INVALID_VALUE: &str = "3.1";
/// 3.8 No authority (RFC 2446): the upstream (or policy) does not let this identity do it.
pub const NO_AUTHORITY: &str = "3.8";
/// 3.10 Request entity too large (RFC 2446).
pub const TOO_LARGE: &str = "3.10";
/// 3.11 Required component or property missing (RFC 2446).
pub const MISSING: &str = "3.11";
/// 3.14 Unsupported capability (RFC 2446): a method or feature the upstream cannot carry out.
pub const UNSUPPORTED: &str = "3.14";
/// 5.1 Service unavailable (RFC 2446): the upstream could not be used; nothing was done.
pub const UNAVAILABLE: &str = "5.1";
/// 6.1 Container not found (cap-04 §7.2.1.2): no such calendar or object.
pub const NOT_FOUND: &str = "6.1";
/// 6.2 Already exists (cap-04 §7.2.1.2): a calendar name in use.
pub const ALREADY_EXISTS: &str = "6.2";
/// 8.0 Failure (cap-04 §8): a change that could not be applied (concurrent changes, an
/// unexpected upstream answer).
pub const FAILURE: &str = "8.0";
/// 8.5 UID already in use (cap-04 §8).
pub const UID_IN_USE: &str = "8.5";
/// 10.4 Resource quota exceeded (cap-04 §8).
pub const QUOTA: &str = "10.4";

/// What an error was about, where the same error needs different codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A calendar object (UID in use → 8.5).
    Object,
    /// A calendar (name in use → 6.2).
    Calendar,
}

/// The status for a failed operation.
pub fn of_error(e: &TranslateError, subject: Subject) -> Status {
    match e {
        TranslateError::BadInput(t) => Status::new(INVALID_VALUE, t.clone()),
        TranslateError::AccessDenied(t) => Status::new(NO_AUTHORITY, t.clone()),
        TranslateError::NotFound(t) => Status::new(NOT_FOUND, t.clone()),
        TranslateError::Conflict(t) => Status::new(FAILURE, t.clone()),
        TranslateError::Exists(t) => match subject {
            Subject::Object => Status::new(UID_IN_USE, t.clone()),
            Subject::Calendar => Status::new(ALREADY_EXISTS, t.clone()),
        },
        TranslateError::Upstream(u) => of_upstream(u, subject),
    }
}

/// The status for a SENDDATA payload that holds no usable command (spec §2.8: its MIME envelope
/// was readable, so the transport says 2.0 and this status says what is wrong).
pub fn of_payload_error(e: &PayloadError) -> Status {
    let code = match e {
        PayloadError::Syntax(_) => INVALID_NAME,
        PayloadError::NoObject | PayloadError::NoMethod => MISSING,
        PayloadError::TooMany => UNSUPPORTED,
    };
    Status::new(code, format!("{e} (nothing was done)"))
}

/// The code for a CalDAV precondition about the data itself (RFC 4791 §5.3.2.1, §9.6),
/// which the upstream sends with 403 or 409: the client's object is what was refused, not the
/// client (Cyrus refuses a DATE-TIME event without an end, or ending where it starts, with
/// 403 `CALDAV:valid-calendar-data`).
fn data_condition(e: &CaldavError) -> Option<&'static str> {
    let c = e.condition()?;
    if c.namespace != crate::caldav::multistatus::CALDAV {
        return None;
    }
    Some(match c.name.as_str() {
        "valid-calendar-data" | "valid-calendar-object-resource" | "supported-calendar-data" => {
            INVALID_VALUE
        }
        "supported-calendar-component" => "3.13",
        "min-date-time" | "max-date-time" => "3.5",
        "max-resource-size" => TOO_LARGE,
        "max-instances" | "max-attendees-per-instance" => UNSUPPORTED,
        _ => return None,
    })
}

/// The status for an upstream failure (HTTP status or transport).
pub fn of_upstream(e: &CaldavError, subject: Subject) -> Status {
    let data = match e.status() {
        Some(403 | 409) => data_condition(e),
        _ => None,
    };
    let code = data.unwrap_or_else(|| match e.status() {
        Some(507) => QUOTA,
        _ if e.is_unavailable() => UNAVAILABLE,
        Some(401 | 403) => NO_AUTHORITY,
        Some(404 | 410) => NOT_FOUND,
        Some(405) if subject == Subject::Calendar => ALREADY_EXISTS,
        Some(409) => NOT_FOUND,
        Some(412) => FAILURE,
        Some(413) => TOO_LARGE,
        Some(429) => UNAVAILABLE,
        _ => FAILURE,
    });
    let prefix = match code {
        _ if data.is_some() => "The calendar server refused the data",
        UNAVAILABLE if e.outcome_unknown() => {
            "No answer from the calendar server (the change may or may not have been made)"
        }
        UNAVAILABLE => "Upstream unavailable, nothing was done",
        NO_AUTHORITY => "The calendar server refused access",
        NOT_FOUND => "Not found on the calendar server",
        TOO_LARGE => "The calendar server refused the data as too large",
        QUOTA => "The calendar server's quota is exhausted",
        ALREADY_EXISTS => "Already exists on the calendar server",
        _ => "Upstream error",
    };
    Status::new(code, format!("{prefix}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caldav::TransportKind;

    fn http(status: u16) -> TranslateError {
        TranslateError::Upstream(CaldavError::Status {
            method: "PUT".into(),
            path: "/dav/x.ics".into(),
            status,
            condition: None,
        })
    }

    #[test]
    fn the_table() {
        let o = Subject::Object;
        let cases = [
            (http(403), "3.8"),
            (http(401), "3.8"),
            (http(404), "6.1"),
            (http(409), "6.1"),
            (http(412), "8.0"),
            (http(413), "3.10"),
            (http(507), "10.4"),
            (http(500), "5.1"),
            (http(503), "5.1"),
            (http(429), "5.1"),
            (http(418), "8.0"),
            (TranslateError::Exists("UID u in use".into()), "8.5"),
            (TranslateError::Conflict("changed".into()), "8.0"),
            (TranslateError::NotFound("no".into()), "6.1"),
            (TranslateError::AccessDenied("no".into()), "3.8"),
            (TranslateError::BadInput("bad".into()), "3.1"),
        ];
        for (e, code) in cases {
            assert_eq!(of_error(&e, o).code, code, "{e}");
        }
        let timeout = TranslateError::Upstream(CaldavError::Transport {
            kind: TransportKind::Timeout,
            method: "PUT".into(),
            path: "/x".into(),
            detail: "slow".into(),
        });
        assert_eq!(of_error(&timeout, o).code, "5.1");
        assert_eq!(
            of_error(&TranslateError::Exists("taken".into()), Subject::Calendar).code,
            "6.2"
        );
        assert_eq!(of_error(&http(405), Subject::Calendar).code, "6.2");
    }

    #[test]
    fn data_preconditions_are_about_the_data() {
        let refused = |status: u16, namespace: &str, name: &str| {
            of_error(
                &TranslateError::Upstream(CaldavError::Status {
                    method: "PUT".into(),
                    path: "/dav/x.ics".into(),
                    status,
                    condition: Some(crate::caldav::Condition {
                        namespace: namespace.into(),
                        name: name.into(),
                    }),
                }),
                Subject::Object,
            )
        };
        let caldav = crate::caldav::multistatus::CALDAV;
        let s = refused(403, caldav, "valid-calendar-data");
        assert_eq!(s.code, "3.1");
        assert!(
            s.text
                .starts_with("The calendar server refused the data: upstream PUT"),
            "{}",
            s.text
        );
        assert_eq!(
            refused(403, caldav, "supported-calendar-component").code,
            "3.13"
        );
        assert_eq!(refused(409, caldav, "max-resource-size").code, "3.10");
        assert_eq!(refused(403, caldav, "min-date-time").code, "3.5");
        // Other conditions keep the status's meaning.
        assert_eq!(refused(403, "DAV:", "need-privileges").code, "3.8");
        assert_eq!(refused(409, caldav, "no-uid-conflict").code, "6.1");
    }

    #[test]
    fn unusable_payloads() {
        let s = of_payload_error(&PayloadError::Syntax("line 3".into()));
        assert_eq!(s.code, "3.0");
        assert!(s.text.ends_with("line 3 (nothing was done)"), "{}", s.text);
        assert_eq!(of_payload_error(&PayloadError::NoObject).code, "3.11");
        assert_eq!(of_payload_error(&PayloadError::NoMethod).code, "3.11");
        assert_eq!(of_payload_error(&PayloadError::TooMany).code, "3.14");
    }

    #[test]
    fn lines_never_carry_a_stray_field_separator() {
        let s = Status::new("8.0", "a;b\r\nc, d");
        let line = s.to_line().to_line();
        assert_eq!(line, "REQUEST-STATUS:8.0;a\\,b  c\\, d");
    }
}
