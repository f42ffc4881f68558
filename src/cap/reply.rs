//! CSTP replies: the status-line grammar, the two framings, tags, and the one place where
//! outcomes and errors become status codes (spec §2.3, §2.8, §2.9).
//!
//! ```text
//! reply       = [tag SP] status-line CRLF "." CRLF [data-lines] "." CRLF   ; two-dot (default)
//! reply       = [tag SP] status-line CRLF [data-lines] "." CRLF            ; single-dot switch
//! status-line = code [SP args] [SP ";" SP debug-text]
//! ```
//!
//! Data lines are dot-stuffed. Intermediate replies (`2.0.1`, `2.0.12`, SASL challenges, `+`)
//! are single lines and are not built here.

use super::senddata::TargetReply;
use crate::caldav::CaldavError;
use crate::config::ResponseFraming;
use crate::framing::stuff;
use crate::ical::component::Component;
use crate::ical::contentline::ContentLine;
use crate::translate::{LoginError, TranslateError};

/// Status codes used on the wire (cap-04 §8 and §7.1.x; spec §2.9).
pub mod code {
    /// Success.
    pub const OK: &str = "2.0";
    /// SENDDATA go-ahead (intermediate).
    pub const GO_AHEAD: &str = "2.0.1";
    /// Reply pending; awaiting CONTINUE or ABORT.
    pub const PENDING: &str = "2.0.2";
    /// Command aborted (selectable ABORT answer).
    pub const ABORTED: &str = "2.0.3";
    /// Proceed with the TLS handshake (intermediate).
    pub const TLS_PROCEED: &str = "2.0.12";
    /// EXPAND: permission denied.
    pub const EXPAND_DENIED: &str = "2.1";
    /// EXPAND: not found; ABORT: no command in progress.
    pub const NOT_FOUND_OR_IDLE: &str = "2.2";
    /// EXPAND: truncated.
    pub const EXPAND_TRUNCATED: &str = "2.3";
    /// EXPAND: other error.
    pub const EXPAND_ERROR: &str = "2.4";
    /// Capability not supported.
    pub const NOT_SUPPORTED: &str = "3.1.4";
    /// Access denied (a SENDDATA command this identity may not send).
    pub const ACCESS_DENIED: &str = "4.1";
    /// Authentication failed.
    pub const AUTH_FAILED: &str = "6.0";
    /// Authorization identity refused.
    pub const AUTHZ_REFUSED: &str = "6.1";
    /// The client aborted the SASL exchange.
    pub const AUTH_CANCELLED: &str = "6.2";
    /// Unsupported mechanism.
    pub const AUTH_MECHANISM: &str = "6.3";
    /// IDENTIFY refused; AUTHENTICATE: temporary failure.
    pub const IDENTITY_REFUSED: &str = "6.4";
    /// STARTTLS not supported.
    pub const TLS_UNAVAILABLE: &str = "6.5";
    /// Encryption required.
    pub const ENCRYPTION_REQUIRED: &str = "6.7";
    /// Timeout (final; or the interim code of the -02/-04 examples).
    pub const TIMEOUT: &str = "7.0";
    /// Failure in the receiver.
    pub const FAILURE: &str = "8.0";
    /// Too busy.
    pub const BUSY: &str = "8.1";
    /// Object over the size limit.
    pub const TOO_LARGE: &str = "8.2";
    /// UID already in use.
    pub const UID_IN_USE: &str = "8.5";
    /// Unrecognised command.
    pub const UNKNOWN: &str = "9.0";
    /// Unexpected command (wrong state).
    pub const WRONG_STATE: &str = "9.1";
    /// Server shutting down.
    pub const SHUTDOWN: &str = "10.2";
}

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub code: &'static str,
    /// Status-line arguments (a CMDID, an expanded id).
    pub args: Vec<String>,
    /// Debug text after ` ; ` (for people; clients must not depend on it, cap-04 §4.3).
    pub text: Option<String>,
    /// Data lines (unstuffed).
    pub data: Vec<String>,
}

impl Reply {
    /// A reply with a code and nothing else.
    pub fn new(code: &'static str) -> Reply {
        Reply {
            code,
            args: Vec::new(),
            text: None,
            data: Vec::new(),
        }
    }

    /// `2.0`.
    pub fn ok() -> Reply {
        Reply::new(code::OK)
    }

    /// Adds a status-line argument (skipped when `None`).
    pub fn arg(mut self, arg: Option<&str>) -> Reply {
        if let Some(a) = arg {
            self.args.push(a.to_owned());
        }
        self
    }

    /// Sets the debug text.
    pub fn text(mut self, text: impl Into<String>) -> Reply {
        self.text = Some(text.into());
        self
    }

    /// Sets the data lines.
    pub fn data(mut self, lines: Vec<String>) -> Reply {
        self.data = lines;
        self
    }

    /// The status line, with the tag if the command had one.
    pub fn status_line(&self, tag: Option<&str>) -> String {
        let mut line = String::new();
        if let Some(t) = tag {
            line.push_str(t);
            line.push(' ');
        }
        line.push_str(self.code);
        for a in &self.args {
            line.push(' ');
            line.push_str(&one_line(a));
        }
        if let Some(t) = &self.text {
            line.push_str(" ; ");
            line.push_str(&one_line(t));
        }
        line
    }

    /// The reply's lines in the chosen framing.
    pub fn render(&self, tag: Option<&str>, framing: ResponseFraming) -> Vec<String> {
        let mut lines = Vec::with_capacity(self.data.len() + 3);
        lines.push(self.status_line(tag));
        if framing == ResponseFraming::TwoDot {
            lines.push(".".into());
        }
        lines.extend(self.data.iter().map(|l| stuff(l)));
        lines.push(".".into());
        lines
    }
}

/// Text for a status line: one line, printable ASCII, bounded.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        out.push_str("...");
    }
    out
}

/// Over the connection limit (`8.1`, cap-04 §7.1.1); the connection is closed after it.
pub fn busy() -> Reply {
    Reply::new(code::BUSY).text("Too many connections, try again later")
}

/// An unknown verb (`9.0`).
pub fn unknown(verb: &str) -> Reply {
    Reply::new(code::UNKNOWN).text(format!(
        "Unknown command {verb}; try CAPABILITY, AUTHENTICATE, SENDDATA, NOOP or DISCONNECT"
    ))
}

/// A verb that is not allowed in this state (`9.1`).
pub fn wrong_state(verb: &str, why: &str) -> Reply {
    Reply::new(code::WRONG_STATE).text(format!("{verb} is not allowed now: {why}"))
}

/// A failed login (`6.0` or `6.4`).
pub fn login_error(e: &LoginError) -> Reply {
    match e {
        LoginError::Refused => Reply::new(code::AUTH_FAILED).text("Authentication failed"),
        LoginError::Unavailable(e) => Reply::new(code::IDENTITY_REFUSED).text(format!(
            "The calendar server cannot check passwords right now; try again later ({})",
            upstream_summary(e)
        )),
    }
}

/// An IDENTIFY failure (`6.4`, `9.0` for a malformed UPN, `8.0` upstream).
pub fn identify_error(e: &TranslateError) -> Reply {
    match e {
        TranslateError::BadInput(t) => Reply::new(code::UNKNOWN).text(t.clone()),
        TranslateError::Upstream(u) => Reply::new(code::FAILURE).text(format!(
            "The calendar server could not be asked: {}",
            upstream_summary(u)
        )),
        other => Reply::new(code::IDENTITY_REFUSED).text(other.to_string()),
    }
}

/// A CALIDEXPAND / UPNEXPAND failure (`2.1`, `2.2`, `2.4`; cap-04 §7.1.4), with the argument
/// echoed in the status line as the successful replies do.
pub fn expand_error(argument: &str, e: &TranslateError) -> Reply {
    let code = match e {
        TranslateError::AccessDenied(_) => code::EXPAND_DENIED,
        TranslateError::NotFound(_) | TranslateError::BadInput(_) => code::NOT_FOUND_OR_IDLE,
        TranslateError::Conflict(_) | TranslateError::Exists(_) | TranslateError::Upstream(_) => {
            code::EXPAND_ERROR
        }
    };
    let text = match e {
        TranslateError::Upstream(u) => format!("Upstream error: {}", upstream_summary(u)),
        other => other.to_string(),
    };
    Reply::new(code).arg(Some(argument)).text(text)
}

/// A SENDDATA command that failed as a whole (spec §2.8, §3.6): the transport status replaces
/// `2.0`.
pub fn senddata_error(cmdid: Option<&str>, e: &TranslateError) -> Reply {
    let (code, text) = match e {
        TranslateError::BadInput(t) | TranslateError::NotFound(t) | TranslateError::Conflict(t) => {
            (code::FAILURE, t.clone())
        }
        TranslateError::AccessDenied(t) => (code::ACCESS_DENIED, t.clone()),
        TranslateError::Exists(t) => (code::UID_IN_USE, t.clone()),
        TranslateError::Upstream(u) if u.is_unavailable() => (
            code::FAILURE,
            format!("Upstream unavailable: {}", upstream_summary(u)),
        ),
        TranslateError::Upstream(u) => (
            code::FAILURE,
            format!("Upstream error: {}", upstream_summary(u)),
        ),
    };
    Reply::new(code).arg(cmdid).text(text)
}

/// `2.0 [cmdid]` and the RESPONSE entity of a SENDDATA command (spec §3.6, Q4): one VCAP per
/// [`TargetReply`] with `VERSION`, `METHOD:RESPONSE`, `CMDID`, its `TARGET`s, its
/// calendar-level REQUEST-STATUS and its components. One VCAP is a `text/calendar;
/// method=RESPONSE` entity; several are a `multipart/mixed` entity with one such part each
/// (cap-04 §9.2.1).
pub fn response(cmdid: Option<&str>, targets: &[TargetReply]) -> Reply {
    let content_type = match cmdid {
        Some(id) => format!(
            "Content-Type: text/calendar; method=RESPONSE; optinfo=\"CMDID:{}\"",
            one_line(id).replace('"', "'")
        ),
        None => "Content-Type: text/calendar; method=RESPONSE".to_owned(),
    };
    let vcap = |t: &TargetReply| -> Vec<String> {
        let mut c = Component::new("VCAP");
        c.properties.push(ContentLine::new("VERSION", "2.0"));
        c.properties.push(ContentLine::new("METHOD", "RESPONSE"));
        if let Some(id) = cmdid {
            c.properties.push(ContentLine::new("CMDID", id));
        }
        for target in &t.targets {
            c.properties.push(ContentLine::new("TARGET", target));
        }
        if let Some(s) = &t.status {
            c.properties.push(s.to_line());
        }
        c.properties.extend(t.properties.iter().cloned());
        c.components.extend(t.components.iter().cloned());
        c.to_ics().lines().map(str::to_owned).collect()
    };
    // One text/calendar entity: its header lines, a blank line, the VCAP.
    let entity = |data: &mut Vec<String>, t: &TargetReply| {
        data.push(content_type.clone());
        data.push("Content-Transfer-Encoding: 8bit".into());
        data.push(String::new());
        data.extend(vcap(t));
    };
    let mut data = Vec::new();
    match targets {
        [one] => entity(&mut data, one),
        many => {
            let boundary = crate::translate::freebusy::generate_uid();
            data.push(format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\""
            ));
            data.push(String::new());
            for t in many {
                data.push(format!("--{boundary}"));
                entity(&mut data, t);
            }
            data.push(format!("--{boundary}--"));
        }
    }
    Reply::ok().arg(cmdid).data(data)
}

/// A short description of an upstream failure for a status line (never credentials: the
/// error carries none).
fn upstream_summary(e: &CaldavError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_dot_and_single_dot() {
        let r = Reply::ok().data(vec!["CAPVERSION=1.0".into(), ".hidden".into()]);
        assert_eq!(
            r.render(None, ResponseFraming::TwoDot),
            ["2.0", ".", "CAPVERSION=1.0", "..hidden", "."]
        );
        assert_eq!(
            r.render(None, ResponseFraming::SingleDot),
            ["2.0", "CAPVERSION=1.0", "..hidden", "."]
        );
        assert_eq!(
            Reply::ok().render(None, ResponseFraming::TwoDot),
            ["2.0", ".", "."]
        );
        assert_eq!(
            Reply::ok().render(None, ResponseFraming::SingleDot),
            ["2.0", "."]
        );
    }

    #[test]
    fn tags_args_and_text() {
        let r = Reply::new(code::PENDING)
            .arg(Some("xyz"))
            .text("still working\r\non it");
        assert_eq!(
            r.status_line(Some("10")),
            "10 2.0.2 xyz ; still working??on it"
        );
        assert_eq!(Reply::ok().arg(None).status_line(None), "2.0");
    }

    #[test]
    fn codes_in_context() {
        assert_eq!(
            expand_error("x", &TranslateError::AccessDenied("no".into())).code,
            "2.1"
        );
        assert_eq!(
            expand_error("x", &TranslateError::NotFound("no".into())).code,
            "2.2"
        );
        assert_eq!(
            identify_error(&TranslateError::AccessDenied("no".into())).code,
            "6.4"
        );
        assert_eq!(login_error(&LoginError::Refused).code, "6.0");
    }
}
