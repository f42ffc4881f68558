//! Errors of the CalDAV layer.
//!
//! Every failure of an upstream request becomes a [`CaldavError`] that carries what an operator
//! needs to understand it (method, path without credentials, HTTP status, the WebDAV/CalDAV
//! precondition element of RFC 4918 §16 / RFC 4791 §1.3 when the server sent one) and whether
//! repeating the request is safe ([`CaldavError::retry_safe`]). The protocol layers map these to
//! their own status codes, each in one place.

use super::resilience::is_safe_method;
use std::fmt;

/// A precondition or postcondition element from a `DAV:error` body, e.g.
/// `{urn:ietf:params:xml:ns:caldav}no-uid-conflict` (RFC 4791 §5.3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Namespace URI (`DAV:` or `urn:ietf:params:xml:ns:caldav`, …).
    pub namespace: String,
    /// Local name of the element.
    pub name: String,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.namespace.as_str() {
            crate::caldav::multistatus::DAV => "DAV:",
            crate::caldav::multistatus::CALDAV => "CALDAV:",
            other => return write!(f, "{{{other}}}{}", self.name),
        };
        write!(f, "{prefix}{}", self.name)
    }
}

/// What went wrong at the transport level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No TCP/TLS connection could be made (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// The connection or the whole request exceeded its timeout.
    Timeout,
    /// The connection broke while sending or receiving.
    Broken,
}

/// An upstream CalDAV failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CaldavError {
    /// The upstream could not be reached or the exchange broke off.
    #[error("upstream {method} {path}: {}: {detail}", transport_text(*kind))]
    Transport {
        kind: TransportKind,
        method: String,
        path: String,
        detail: String,
    },
    /// The upstream answered with an error status.
    #[error("upstream {method} {path}: HTTP {status}{}", condition_text(condition))]
    Status {
        method: String,
        path: String,
        status: u16,
        condition: Option<Condition>,
    },
    /// The upstream redirected where the gateway does not follow (another host, too many hops,
    /// or a method that must not be replayed).
    #[error("upstream {method} {path}: unexpected redirect (HTTP {status}) to {location}")]
    Redirect {
        method: String,
        path: String,
        status: u16,
        location: String,
    },
    /// The response body was not the XML (or iCalendar) that was expected.
    #[error("upstream {method} {path}: malformed response: {detail}")]
    Malformed {
        method: String,
        path: String,
        detail: String,
    },
    /// The response body was larger than `upstream.max_response_bytes`.
    #[error("upstream {method} {path}: response larger than {limit} bytes")]
    TooLarge {
        method: String,
        path: String,
        limit: usize,
    },
    /// Discovery did not find what the gateway needs (principal, home, outbox…).
    #[error("discovery for {user}: {detail}")]
    Discovery { user: String, detail: String },
}

fn transport_text(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Connect => "cannot connect",
        TransportKind::Timeout => "timed out",
        TransportKind::Broken => "connection broken",
    }
}

fn condition_text(c: &Option<Condition>) -> String {
    match c {
        Some(c) => format!(" ({c})"),
        None => String::new(),
    }
}

impl CaldavError {
    /// A whole command (its upstream requests together) ran past `limits.command_timeout_secs`.
    pub fn command_timeout(timeout: std::time::Duration) -> CaldavError {
        CaldavError::Transport {
            kind: TransportKind::Timeout,
            method: "command".into(),
            path: "(limits.command_timeout_secs)".into(),
            detail: format!("no result within {} s", timeout.as_secs()),
        }
    }

    /// The HTTP status, when the upstream answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CaldavError::Status { status, .. } | CaldavError::Redirect { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The precondition element of the error body, if any.
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            CaldavError::Status { condition, .. } => condition.as_ref(),
            _ => None,
        }
    }

    /// Whether sending the same request again cannot do harm and might succeed: a failure to
    /// connect (nothing was sent, so any method), and transport failures and 5xx/429 answers of
    /// the safe methods GET, HEAD, OPTIONS, PROPFIND and REPORT (RFC 9110 §9.2.1, §9.2.2; see
    /// [`super::resilience::is_safe_method`]). PUT and DELETE are idempotent by HTTP rules but
    /// not harmless to repeat against a scheduling server (a repeated PUT re-sends invitations,
    /// a repeated DELETE answers 404), and POST (free-busy) is not idempotent at all, so their
    /// answers are reported as not safe; callers that know better may decide themselves. The
    /// client has already retried what its policy allows (including a 429/503 with
    /// `Retry-After` for any method) before an error reaches the caller.
    pub fn retry_safe(&self) -> bool {
        match self {
            CaldavError::Transport { kind, method, .. } => {
                *kind == TransportKind::Connect || is_safe_method(method)
            }
            CaldavError::Status { status, method, .. } => {
                (*status >= 500 || *status == 429) && is_safe_method(method)
            }
            _ => false,
        }
    }

    /// True when a request that changes something may have been carried out although no answer
    /// says so: it timed out or its connection broke after it was sent (RFC 9110 §9.2.2: only
    /// safe methods are known to have changed nothing). A refused connection, a breaker that
    /// failed the request fast and any HTTP answer are not "unknown".
    pub fn outcome_unknown(&self) -> bool {
        match self {
            CaldavError::Transport { kind, method, .. } => {
                *kind != TransportKind::Connect && !is_safe_method(method)
            }
            _ => false,
        }
    }

    /// The CalDAV precondition the upstream named when it refused a write, if any.
    fn caldav_condition(&self) -> Option<&str> {
        self.condition()
            .filter(|c| c.namespace == crate::caldav::multistatus::CALDAV)
            .map(|c| c.name.as_str())
    }

    /// True when the upstream refused a write because another resource holds the UID:
    /// `CALDAV:no-uid-conflict` (RFC 4791 §5.3.2.1) or `CALDAV:unique-scheduling-object-resource`
    /// (RFC 6638 §3.2.4.1, what Cyrus sends).
    pub fn is_uid_conflict(&self) -> bool {
        matches!(
            self.caldav_condition(),
            Some("no-uid-conflict" | "unique-scheduling-object-resource")
        )
    }

    /// True when the upstream refused the calendar data itself with a CalDAV precondition
    /// (RFC 4791 §5.3.2.1: valid or supported data, component, date range, size, instances).
    pub fn is_data_refused(&self) -> bool {
        matches!(
            self.caldav_condition(),
            Some(
                "valid-calendar-data"
                    | "valid-calendar-object-resource"
                    | "supported-calendar-data"
                    | "supported-calendar-component"
                    | "min-date-time"
                    | "max-date-time"
                    | "max-resource-size"
                    | "max-instances"
                    | "max-attendees-per-instance"
            )
        )
    }

    /// True when the upstream refused the credentials (401).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// True when the resource does not exist (404, 410).
    pub fn is_not_found(&self) -> bool {
        matches!(self.status(), Some(404 | 410))
    }

    /// True when an `If-Match`/`If-None-Match`/`If-Schedule-Tag-Match` condition failed (412).
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }

    /// True when the upstream could not be used at all (unreachable, timeout, 5xx): the
    /// "Upstream unavailable" case of the protocol layers.
    pub fn is_unavailable(&self) -> bool {
        match self {
            CaldavError::Transport { .. } => true,
            CaldavError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: &str, status: u16) -> CaldavError {
        CaldavError::Status {
            method: method.into(),
            path: "/dav/x.ics".into(),
            status,
            condition: None,
        }
    }

    #[test]
    fn retry_safety_follows_method_and_status() {
        assert!(status("GET", 503).retry_safe());
        assert!(status("REPORT", 429).retry_safe());
        assert!(
            !status("PUT", 502).retry_safe(),
            "a PUT may have been processed (and scheduled) before the 502"
        );
        assert!(!status("DELETE", 503).retry_safe());
        assert!(!status("POST", 503).retry_safe());
        assert!(!status("PUT", 412).retry_safe());
        assert!(!status("GET", 404).retry_safe());
        let connect = CaldavError::Transport {
            kind: TransportKind::Connect,
            method: "POST".into(),
            path: "/".into(),
            detail: "refused".into(),
        };
        assert!(
            connect.retry_safe(),
            "nothing was sent, so any method may retry"
        );
        let broken = CaldavError::Transport {
            kind: TransportKind::Broken,
            method: "POST".into(),
            path: "/".into(),
            detail: "reset".into(),
        };
        assert!(!broken.retry_safe());
    }

    #[test]
    fn message_names_method_path_status_and_condition() {
        let e = CaldavError::Status {
            method: "PUT".into(),
            path: "/dav/calendars/user/alice/Default/a.ics".into(),
            status: 403,
            condition: Some(Condition {
                namespace: crate::caldav::multistatus::CALDAV.into(),
                name: "no-uid-conflict".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "upstream PUT /dav/calendars/user/alice/Default/a.ics: HTTP 403 (CALDAV:no-uid-conflict)"
        );
    }
}
