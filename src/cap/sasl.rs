//! SASL for CAP AUTHENTICATE (cap-04 §7.1.3, §7.1.3.1; wire encoding cap-00/-01 §7.1.3), on
//! rsasl's server side.
//!
//! rsasl runs the mechanism (PLAIN per RFC 4616 with SASLprep and strict field count; ANONYMOUS
//! per RFC 4505; SCRAM-SHA-256 per RFC 5802/7677 for gateway-local accounts); this module only
//! *captures* what the client proved, as rsasl's callbacks are synchronous and the password
//! check is an async request to the upstream. The session then asks the translation layer to
//! check a captured PLAIN login (pass-through), or the upstream credentials of the SCRAM
//! account, and answers.
//!
//! SCRAM and unknown users: rsasl answers a user it has no verifier for with a random salt and
//! a different iteration count, which would tell a prober which accounts exist. The callback
//! therefore answers every user: unknown ones get a decoy verifier whose salt is stable per name
//! (derived from a key no client knows) and whose keys match no password.
//!
//! The crate stays behind this module so it can be swapped.

use super::scram::{self, StoredKeys};
use crate::secret::Secret;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::anonymous::AnonymousToken;
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::prelude::{Mechname, MessageSent, SASLConfig, SASLServer, Session, SessionError, State};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use std::sync::Arc;

/// The mechanisms calgate offers (spec §2.6.2 GW: ANONYMOUS and PLAIN; SCRAM-SHA-256 where
/// gateway-local accounts are configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616; the password is checked by the upstream.
    Plain,
    /// RFC 4505; session identity `@` (cap-04 §7.1.3.1).
    Anonymous,
    /// RFC 7677, for `[[auth.local_accounts]]` only.
    ScramSha256,
}

impl Mechanism {
    /// The mechanism for a name from the command line (already upper-cased).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "ANONYMOUS" => Some(Mechanism::Anonymous),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            _ => None,
        }
    }

    /// The registered name (RFC 4422 registry).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Anonymous => "ANONYMOUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// A gateway-local account that may log in with SCRAM-SHA-256 (`[[auth.local_accounts]]`).
#[derive(Debug, Clone)]
pub struct ScramAccount {
    /// The SCRAM user name, also the upstream user the gateway acts as.
    pub user: String,
    /// The verifier.
    pub keys: StoredKeys,
    /// The upstream password used after a successful exchange.
    pub upstream_password: Secret<String>,
}

impl ScramAccount {
    /// The account from its configuration entry.
    pub fn from_config(account: &crate::config::LocalAccount) -> Result<ScramAccount, String> {
        Ok(ScramAccount {
            user: account.user.clone(),
            keys: StoredKeys::parse(account.scram_sha256.expose())
                .map_err(|e| format!("local account {:?}: {e}", account.user))?,
            upstream_password: account.upstream_password.clone(),
        })
    }
}

/// The SCRAM accounts with what is needed to look them up and to answer unknown users.
struct Accounts {
    list: Arc<[ScramAccount]>,
    domain: String,
    /// Keys the decoy verifiers of unknown users (derived from the real verifiers, so stable
    /// across restarts and unknown to clients).
    decoy_key: [u8; scram::KEY_LEN],
    decoy_iterations: u32,
    decoy_salt_len: usize,
}

impl Accounts {
    fn new(list: Arc<[ScramAccount]>, domain: &str) -> Accounts {
        let mut seed = b"calgate SCRAM decoy".to_vec();
        for a in list.iter() {
            seed.extend_from_slice(&a.keys.server_key);
            seed.extend_from_slice(&a.keys.stored_key);
        }
        let first = list.first().map(|a| &a.keys);
        Accounts {
            decoy_key: scram::sha256(&seed),
            decoy_iterations: first.map_or(scram::MIN_ITERATIONS, |k| k.iterations),
            // Config validation keeps every salt at most KEY_LEN octets and all of one length.
            decoy_salt_len: first
                .map_or(scram::SALT_LEN, |k| k.salt.len())
                .min(scram::KEY_LEN),
            domain: domain.to_owned(),
            list,
        }
    }

    /// The account a SCRAM user name (`alice`, `alice@<domain>`) names. Account names hold no
    /// `,` or `=` (config validation), so SCRAM's `=2C`/`=3D` escapes never matter here.
    fn find(&self, name: &str) -> Option<&ScramAccount> {
        self.list.iter().find(|a| {
            a.user == name
                || name.rsplit_once('@').is_some_and(|(local, domain)| {
                    local == a.user && domain.eq_ignore_ascii_case(&self.domain)
                })
        })
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
    /// SCRAM-SHA-256: the client proved it knows the password of this local account.
    Scram {
        /// The account's `user` (as configured, whatever form the client used).
        authcid: String,
        /// The account's upstream password, for the upstream login that follows.
        upstream_password: Secret<String>,
    },
}

struct CaptureValidation;
impl Validation for CaptureValidation {
    type Value = Captured;
}

#[derive(Debug, thiserror::Error)]
#[error("password is not UTF-8")]
struct NotUtf8;

struct Capture {
    accounts: Arc<Accounts>,
}

impl Capture {
    /// The verifier answered for an unknown user: stable per name, matching no password.
    fn decoy(&self, name: &str) -> StoredKeys {
        let a = &self.accounts;
        let part = |label: &str| {
            let mut data = label.as_bytes().to_vec();
            data.push(0);
            data.extend_from_slice(name.as_bytes());
            scram::hmac_sha256(&a.decoy_key, &data)
        };
        StoredKeys {
            iterations: a.decoy_iterations,
            salt: part("salt")[..a.decoy_salt_len].to_vec(),
            stored_key: part("stored"),
            server_key: part("server"),
        }
    }
}

impl SessionCallback for Capture {
    fn callback(
        &self,
        _session_data: &SessionData,
        context: &Context,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if !request.is::<ScramStoredPassword>() {
            return Ok(());
        }
        let name = context.get_ref::<AuthId>().unwrap_or_default();
        let decoy;
        let keys = match self.accounts.find(name) {
            Some(a) => &a.keys,
            None => {
                decoy = self.decoy(name);
                &decoy
            }
        };
        request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
            keys.iterations,
            &keys.salt,
            &keys.stored_key,
            &keys.server_key,
        ))?;
        Ok(())
    }

    fn validate(
        &self,
        session_data: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        match Mechanism::from_name(session_data.mechanism().mechanism.as_str()) {
            Some(Mechanism::Plain) => {
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
            }
            Some(Mechanism::Anonymous) => {
                validate.with::<CaptureValidation, _>(|| {
                    Ok(Captured::Anonymous {
                        trace: context
                            .get_ref::<AnonymousToken>()
                            .unwrap_or_default()
                            .to_owned(),
                    })
                })?;
            }
            Some(Mechanism::ScramSha256) => {
                let authcid = context.get_ref::<AuthId>().unwrap_or_default();
                let authzid = context.get_ref::<AuthzId>().unwrap_or_default();
                // Only a real account validates (a decoy's keys match no proof anyway).
                if let Some(a) = self.accounts.find(authcid) {
                    // An authzid naming the same account (`alice` for `alice@<domain>`) is none.
                    let same = authzid.is_empty()
                        || self
                            .accounts
                            .find(authzid)
                            .is_some_and(|z| z.user == a.user);
                    let captured = if same {
                        Captured::Scram {
                            authcid: a.user.clone(),
                            upstream_password: a.upstream_password.clone(),
                        }
                    } else {
                        Captured::AuthzidRefused
                    };
                    validate.with::<CaptureValidation, _>(|| Ok(captured))?;
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// The shared rsasl configuration and the SCRAM accounts.
#[derive(Clone)]
pub struct Sasl {
    config: Arc<SASLConfig>,
    accounts: Arc<Accounts>,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sasl")
    }
}

impl Sasl {
    /// Builds the configuration. SCRAM-SHA-256 is offered when `accounts` is not empty;
    /// `domain` is `upstream.domain` (`alice@<domain>` names the account `alice`).
    pub fn new(accounts: Arc<[ScramAccount]>, domain: &str) -> Result<Sasl, String> {
        let accounts = Arc::new(Accounts::new(accounts, domain));
        let config = SASLConfig::builder()
            .with_defaults()
            .with_callback(Capture {
                accounts: accounts.clone(),
            })
            .map_err(|e| format!("SASL setup failed: {e}"))?;
        Ok(Sasl { config, accounts })
    }

    /// Without SCRAM accounts.
    pub fn without_accounts() -> Result<Sasl, String> {
        Sasl::new(Arc::from(Vec::new()), "localhost")
    }

    /// True when SCRAM-SHA-256 is offered (accounts are configured).
    pub fn scram_available(&self) -> bool {
        !self.accounts.list.is_empty()
    }

    /// Starts an exchange for `mechanism`.
    pub fn start(&self, mechanism: Mechanism) -> Result<Exchange, String> {
        let name = Mechname::parse(mechanism.name().as_bytes()).map_err(|e| e.to_string())?;
        let session = SASLServer::<CaptureValidation>::new(self.config.clone())
            .start_suggested(name)
            .map_err(|e| format!("SASL mechanism unavailable: {e}"))?;
        Ok(Exchange {
            session,
            mechanism,
            messages: 0,
        })
    }
}

/// One AUTHENTICATE exchange.
pub struct Exchange {
    session: Session<CaptureValidation>,
    mechanism: Mechanism,
    /// Client messages fed so far.
    messages: u32,
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
    /// The exchange succeeded and the server has final data (SCRAM's server-final message,
    /// base64): send it as one more challenge, wait for an empty response, then check what was
    /// captured (CSTP has no "success with data", RFC 4422 §5).
    Final {
        /// The server's last message, base64.
        data: String,
        /// What the exchange proved.
        captured: Captured,
    },
    /// The client failed to prove its identity (a SCRAM proof that does not match, or an
    /// unknown user): the usual login failure, with no hint which.
    Refused,
    /// The client's message is malformed (bad base64, wrong PLAIN format, empty password).
    Malformed(String),
}

impl Exchange {
    /// Client messages fed so far (the initial response counts).
    pub fn messages(&self) -> u32 {
        self.messages
    }

    /// Feeds one client message, base64 as sent (`""` for an empty message).
    pub fn step(&mut self, base64: &str) -> Step {
        self.messages += 1;
        // `=` is an empty response (the IMAP convention), wherever a response is expected.
        let base64 = match base64.trim() {
            "=" => "",
            other => other,
        };
        let Some(message) = scram::base64_decode(base64) else {
            return Step::Malformed("the response is not valid base64".into());
        };
        // rsasl 2.3.1's SCRAM parser indexes attributes without checking their length (a bare
        // `n` attribute panics): only well-formed messages reach it.
        if self.mechanism == Mechanism::ScramSha256 && !scram_shape_ok(&message, self.messages == 1)
        {
            return Step::Malformed("malformed SCRAM message".into());
        }
        let mut out = Vec::new();
        match self.session.step(Some(&message), &mut out) {
            Ok(State::Running) => Step::Challenge(scram::base64_encode(&out)),
            Ok(State::Finished(sent)) => match self.session.validation() {
                Some(captured) if sent == MessageSent::Yes && !out.is_empty() => Step::Final {
                    data: scram::base64_encode(&out),
                    captured,
                },
                Some(c) => Step::Done(c),
                // SCRAM finishes with an `e=` message and no validation on a bad proof or an
                // unknown user; that message is not sent (it would tell which).
                None if self.mechanism == Mechanism::ScramSha256 => Step::Refused,
                None => Step::Malformed("the mechanism finished without credentials".into()),
            },
            Err(e) => Step::Malformed(describe(&e)),
        }
    }
}

/// Whether a SCRAM client message has the attribute layout rsasl can parse safely: the first
/// message `gs2-cbind-flag,[a=authzid],n=...,r=...[,ext]`, the final one `c=...,r=...[,...],p=...`;
/// every attribute is `<letter>=...`.
fn scram_shape_ok(message: &[u8], first: bool) -> bool {
    let parts: Vec<&[u8]> = message.split(|&b| b == b',').collect();
    let attribute = |p: &&[u8]| p.len() >= 2 && p[0].is_ascii_alphabetic() && p[1] == b'=';
    if first {
        parts.len() >= 4
            && (parts[1].is_empty() || parts[1].starts_with(b"a="))
            && parts[2..].iter().all(attribute)
    } else {
        parts.len() >= 3 && parts.iter().all(attribute)
    }
}

fn describe(e: &SessionError) -> String {
    match e {
        SessionError::ValidationError(_) => "the response could not be used".into(),
        other if other.is_mechanism_error() => format!("malformed response ({other})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        crate::cap::scram::base64_encode(bytes)
    }

    fn run(mech: Mechanism, msg: &[u8]) -> Step {
        let sasl = Sasl::without_accounts().unwrap();
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
        let sasl = Sasl::without_accounts().unwrap();
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

    /// The RFC 7677 verifier of "pencil" for alice, and one for bob.
    fn scram_sasl() -> Sasl {
        let salt = b"0123456789abcdef";
        let accounts = vec![
            ScramAccount {
                user: "alice".into(),
                keys: StoredKeys::derive(b"pencil", salt, 4096),
                upstream_password: Secret::new("alicepw".into()),
            },
            ScramAccount {
                user: "bob".into(),
                keys: StoredKeys::derive(b"bobscram", b"fedcba9876543210", 4096),
                upstream_password: Secret::new("bobpw".into()),
            },
        ];
        Sasl::new(Arc::from(accounts), "example.com").unwrap()
    }

    /// Runs a SCRAM exchange; returns the server-first (decoded) and the final step.
    fn scram(sasl: &Sasl, gs2: &str, user: &str, password: &str) -> (String, Step, bool) {
        let mut client = scram::TestClient::new(gs2, user, password);
        let mut ex = sasl.start(Mechanism::ScramSha256).unwrap();
        let Step::Challenge(server_first) = ex.step(&client.first()) else {
            panic!("no server-first");
        };
        let last = ex.step(&client.final_message(&server_first));
        let verified = match &last {
            Step::Final { data, .. } => client.server_final_ok(data),
            _ => false,
        };
        let first = String::from_utf8(scram::base64_decode(&server_first).unwrap()).unwrap();
        (first, last, verified)
    }

    #[test]
    fn scram_success_sends_the_server_final() {
        let sasl = scram_sasl();
        assert!(sasl.scram_available());
        assert!(!Sasl::without_accounts().unwrap().scram_available());
        for (gs2, user) in [
            ("n,,", "alice"),
            ("y,,", "alice"),
            ("n,,", "alice@example.com"),
            ("n,,", "alice@EXAMPLE.COM"),
            ("n,a=alice,", "alice"),
        ] {
            let (first, last, verified) = scram(&sasl, gs2, user, "pencil");
            assert!(first.contains(",i=4096"), "{first}");
            match last {
                Step::Final { captured, .. } => assert!(
                    matches!(&captured, Captured::Scram { authcid, .. } if authcid == "alice"),
                    "{gs2}{user}: {captured:?}"
                ),
                other => panic!("{gs2}{user}: {other:?}"),
            }
            assert!(verified, "the server signature checks out");
        }
        let (_, last, _) = scram(&sasl, "n,,", "bob", "bobscram");
        match last {
            Step::Final {
                captured:
                    Captured::Scram {
                        authcid,
                        upstream_password,
                    },
                ..
            } => {
                assert_eq!(authcid, "bob");
                assert_eq!(upstream_password.expose(), "bobpw");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scram_failures() {
        let sasl = scram_sasl();
        assert_eq!(scram(&sasl, "n,,", "alice", "wrong").1, Step::Refused);
        assert_eq!(scram(&sasl, "n,,", "mallory", "pencil").1, Step::Refused);
        assert_eq!(
            scram(&sasl, "n,,", "alice@other.org", "pencil").1,
            Step::Refused
        );
        assert!(matches!(
            scram(&sasl, "n,a=bob,", "alice", "pencil").1,
            Step::Final {
                captured: Captured::AuthzidRefused,
                ..
            }
        ));
        // Malformed messages are refused before rsasl sees them (some would make it panic).
        for bad in [
            "n,,n",
            "n,,n=alice",
            "n,a,n=alice,r=abc",
            "x",
            "n,,x,r=abc",
            "",
        ] {
            let mut ex = sasl.start(Mechanism::ScramSha256).unwrap();
            let step = ex.step(&scram::base64_encode(bad.as_bytes()));
            assert!(matches!(step, Step::Malformed(_)), "{bad:?}: {step:?}");
        }
        let mut ex = sasl.start(Mechanism::ScramSha256).unwrap();
        assert!(matches!(ex.step("!!"), Step::Malformed(_)));
        let client = scram::TestClient::new("n,,", "alice", "pencil");
        for bad in ["c", "c=biws,r", "c=biws,r=x", "c=biws,r=x,p"] {
            let mut ex = sasl.start(Mechanism::ScramSha256).unwrap();
            assert!(matches!(ex.step(&client.first()), Step::Challenge(_)));
            let step = ex.step(&scram::base64_encode(bad.as_bytes()));
            assert!(matches!(step, Step::Malformed(_)), "{bad:?}: {step:?}");
        }
    }

    #[test]
    fn scram_does_not_reveal_which_users_exist() {
        let sasl = scram_sasl();
        let params = |first: &str| {
            first
                .split(',')
                .filter(|p| !p.starts_with("r="))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (alice1, _, _) = scram(&sasl, "n,,", "alice", "x");
        let (alice2, _, _) = scram(&sasl, "n,,", "alice", "x");
        let (mallory1, _, _) = scram(&sasl, "n,,", "mallory", "x");
        let (mallory2, _, _) = scram(&sasl, "n,,", "mallory", "x");
        let (eve, _, _) = scram(&sasl, "n,,", "eve", "x");
        // Known and unknown users alike: the same salt every time, the same iteration count,
        // salts of the same length.
        assert_eq!(params(&alice1), params(&alice2));
        assert_eq!(params(&mallory1), params(&mallory2));
        assert_ne!(params(&mallory1), params(&eve));
        let salt_len = |f: &str| {
            let s = f.split(',').find_map(|p| p.strip_prefix("s=")).unwrap();
            scram::base64_decode(s).unwrap().len()
        };
        assert_eq!(salt_len(&alice1), salt_len(&mallory1));
        assert!(mallory1.ends_with(",i=4096"), "{mallory1}");
        // A second Sasl (the next connection) answers the same decoy.
        let (mallory3, _, _) = scram(&scram_sasl(), "n,,", "mallory", "x");
        assert_eq!(params(&mallory1), params(&mallory3));
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
