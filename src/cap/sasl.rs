//! SASL for CAP AUTHENTICATE (cap-04 §7.1.3, §7.1.3.1; wire encoding cap-00/-01 §7.1.3), on
//! rsasl's server side.
//!
//! rsasl runs the mechanism (PLAIN per RFC 4616 with SASLprep and strict field count; ANONYMOUS
//! per RFC 4505); this module only *captures* what the client proved, as rsasl's callbacks are
//! synchronous and the password check is an async request to the upstream. The session then
//! asks the translation layer to check a captured PLAIN login (pass-through) and answers.
//!
//! The crate stays behind this module so it can be swapped.

use crate::secret::Secret;
use rsasl::callback::{Context, SessionCallback, SessionData};
use rsasl::mechanisms::anonymous::AnonymousToken;
use rsasl::prelude::{Mechname, SASLConfig, SASLServer, Session, SessionError, State};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use std::sync::Arc;

/// The mechanisms calgate offers (spec §2.6.2 GW: ANONYMOUS and PLAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616; the password is checked by the upstream.
    Plain,
    /// RFC 4505; session identity `@` (cap-04 §7.1.3.1).
    Anonymous,
}

impl Mechanism {
    /// The mechanism for a name from the command line (already upper-cased).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "ANONYMOUS" => Some(Mechanism::Anonymous),
            _ => None,
        }
    }

    /// The registered name (RFC 4422 registry).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Anonymous => "ANONYMOUS",
        }
    }
}

/// What a finished exchange proved, before any check against the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// PLAIN: an authentication identity and password (the authzid was empty or the same).
    Plain {
        /// The authentication identity.
        authcid: String,
        /// The password.
        password: Secret<String>,
    },
    /// PLAIN with an authorization identity other than the authcid (wire `6.1`; CAP has
    /// IDENTIFY for that, cap-00/-01 §7.1.3).
    AuthzidRefused,
    /// ANONYMOUS with its optional trace (an email address or opaque text; logged only as
    /// "given" or not).
    Anonymous {
        /// The trace the client sent.
        trace: String,
    },
}

struct CaptureValidation;
impl Validation for CaptureValidation {
    type Value = Captured;
}

#[derive(Debug, thiserror::Error)]
#[error("password is not UTF-8")]
struct NotUtf8;

struct Capture;

impl SessionCallback for Capture {
    fn validate(
        &self,
        session_data: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let mech = session_data.mechanism().mechanism.as_str();
        if mech == "PLAIN" {
            validate.with::<CaptureValidation, _>(|| {
                let authcid = context.get_ref::<AuthId>().unwrap_or_default();
                let authzid = context.get_ref::<AuthzId>().unwrap_or_default();
                let password = context.get_ref::<Password>().unwrap_or_default();
                if !authzid.is_empty() && authzid != authcid {
                    return Ok(Captured::AuthzidRefused);
                }
                let password = String::from_utf8(password.to_vec())
                    .map_err(|_| ValidationError::Boxed(Box::new(NotUtf8)))?;
                Ok(Captured::Plain {
                    authcid: authcid.to_owned(),
                    password: Secret::new(password),
                })
            })?;
        } else if mech == "ANONYMOUS" {
            validate.with::<CaptureValidation, _>(|| {
                Ok(Captured::Anonymous {
                    trace: context
                        .get_ref::<AnonymousToken>()
                        .unwrap_or_default()
                        .to_owned(),
                })
            })?;
        }
        Ok(())
    }
}

/// The shared rsasl configuration (built once per listener).
#[derive(Clone)]
pub struct Sasl {
    config: Arc<SASLConfig>,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sasl")
    }
}

impl Sasl {
    /// Builds the configuration.
    pub fn new() -> Result<Sasl, String> {
        let config = SASLConfig::builder()
            .with_defaults()
            .with_callback(Capture)
            .map_err(|e| format!("SASL setup failed: {e}"))?;
        Ok(Sasl { config })
    }

    /// Starts an exchange for `mechanism`.
    pub fn start(&self, mechanism: Mechanism) -> Result<Exchange, String> {
        let name = Mechname::parse(mechanism.name().as_bytes()).map_err(|e| e.to_string())?;
        let session = SASLServer::<CaptureValidation>::new(self.config.clone())
            .start_suggested(name)
            .map_err(|e| format!("SASL mechanism unavailable: {e}"))?;
        Ok(Exchange { session })
    }
}

/// One AUTHENTICATE exchange.
pub struct Exchange {
    session: Session<CaptureValidation>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exchange")
    }
}

/// What one client message led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (base64; empty means the `+` prompt) and wait for the next line.
    Challenge(String),
    /// The exchange is over; check what was captured.
    Done(Captured),
    /// The client's message is malformed (bad base64, wrong PLAIN format, empty password).
    Malformed(String),
}

impl Exchange {
    /// Feeds one client message, base64 as sent (`""` for an empty message).
    pub fn step(&mut self, base64: &str) -> Step {
        let mut out = Vec::new();
        match self
            .session
            .step64(Some(base64.trim().as_bytes()), &mut out)
        {
            Ok(State::Running) => Step::Challenge(String::from_utf8_lossy(&out).into_owned()),
            Ok(State::Finished(_)) => match self.session.validation() {
                Some(c) => Step::Done(c),
                None => Step::Malformed("the mechanism finished without credentials".into()),
            },
            Err(e) => Step::Malformed(describe(&e)),
        }
    }
}

fn describe(e: &SessionError) -> String {
    match e {
        SessionError::Base64 { .. } => "the response is not valid base64".into(),
        SessionError::ValidationError(_) => "the response could not be used".into(),
        other if other.is_mechanism_error() => format!("malformed response ({other})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        // Tiny encoder for tests.
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn run(mech: Mechanism, msg: &[u8]) -> Step {
        let sasl = Sasl::new().unwrap();
        sasl.start(mech).unwrap().step(&b64(msg))
    }

    #[test]
    fn plain_captures_credentials() {
        assert_eq!(
            run(Mechanism::Plain, b"\0bill@example.com\0secret"),
            Step::Done(Captured::Plain {
                authcid: "bill@example.com".into(),
                password: Secret::new("secret".into())
            })
        );
        // An authzid equal to the authcid is no authorization identity.
        assert!(matches!(
            run(Mechanism::Plain, b"bill\0bill\0secret"),
            Step::Done(Captured::Plain { .. })
        ));
    }

    #[test]
    fn plain_refuses_authzid_and_junk() {
        assert_eq!(
            run(Mechanism::Plain, b"mallory\0alice\0pw"),
            Step::Done(Captured::AuthzidRefused)
        );
        assert!(matches!(
            run(Mechanism::Plain, b"\0alice\0pw\0junk"),
            Step::Malformed(_)
        ));
        assert!(matches!(
            run(Mechanism::Plain, b"\0alice\0"),
            Step::Malformed(_)
        ));
        assert!(matches!(
            run(Mechanism::Plain, b"alice"),
            Step::Malformed(_)
        ));
        let sasl = Sasl::new().unwrap();
        assert_eq!(
            sasl.start(Mechanism::Plain).unwrap().step("!!notbase64"),
            Step::Malformed("the response is not valid base64".into())
        );
    }

    #[test]
    fn anonymous_trace() {
        assert_eq!(
            run(Mechanism::Anonymous, b"guest"),
            Step::Done(Captured::Anonymous {
                trace: "guest".into()
            })
        );
        assert_eq!(
            run(Mechanism::Anonymous, b""),
            Step::Done(Captured::Anonymous { trace: "".into() })
        );
    }

    #[test]
    fn captured_debug_hides_the_password() {
        let c = Captured::Plain {
            authcid: "bill".into(),
            password: Secret::new("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
