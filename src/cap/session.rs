//! The CSTP session as a sans-I/O state machine (cap-04 §3, spec §2.5).
//!
//! Inputs are decoded frames, the results of work the session asked for, the latency timer and
//! the end of a TLS handshake; outputs are [`Action`]s for the connection task (send a line,
//! switch the codec to block mode, run work, cancel it, arm the latency timer, start TLS,
//! pause, close). No I/O and no clock happen here, so every row of the state table is a unit
//! test.
//!
//! ```text
//!             AUTHENTICATE (SASL lines)          SENDDATA            "."
//!  Connected ─────────────────────────► Identified ───► Receive-Data ───► Receive-Wait
//!   │  ▲ STARTTLS (once, before auth)      ▲   │ IDENTIFY/EXPAND              │ result / ABORT
//!   └──┘                                   │   └──► Busy ──┐                  │ (CONTINUE stays)
//!                                          └───────────────┴──────────────────┘
//!  DISCONNECT anywhere → Disconnected
//! ```
//!
//! "Authenticated" is merged into Identified (spec §1.5 #7). Receive is split into Receive-Data
//! (every line is payload) and Receive-Wait (the reply is being produced; only ABORT, CONTINUE
//! and DISCONNECT are accepted, spec Q13). While other work runs (a login check, IDENTIFY, an
//! expansion) the session reads nothing: PIPELINE=1, and what the client sends early waits in
//! the socket and is handled, in order, after the reply (spec §2.7).

use super::capability::{self, CapabilityContext};
use super::command::{self, Command, LineError, Tagged};
use super::payload::{self, Payload};
use super::reply::{self, Reply, code};
use super::sasl::{Captured, Exchange, Mechanism, Sasl, Step};
use super::senddata::{self, Outcome, TargetReply};
use super::status;
use crate::config::{AbortCode, PendingCode, ResponseFraming};
use crate::framing::Frame;
use crate::secret::Secret;
use crate::translate::{Expansion, Identity, LoginError, TranslateError};
use std::time::Duration;

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Whether PLAIN may be used without TLS for this client (`auth.plaintext_passwords`).
    pub plaintext_allowed: bool,
    /// Whether STARTTLS is configured.
    pub tls_available: bool,
    /// Whether the connection is TLS from its first byte (implicit-TLS listener).
    pub implicit_tls: bool,
    /// AUTHENTICATE attempts allowed after a failed one (`cap.auth_retries`; drafts: 0).
    pub auth_retries: u32,
    /// Client messages allowed in one SASL exchange (`limits.max_sasl_steps`).
    pub max_sasl_steps: u32,
    /// Command lines before login other than AUTHENTICATE; one more closes the connection
    /// (`limits.max_preauth_commands`).
    pub max_preauth_commands: u32,
    /// MAXICALOBJECTSIZE.
    pub max_object_size: usize,
    /// AUTOLOGOUTTIME.
    pub autologout_secs: u64,
    /// `cap.response_framing`.
    pub framing: ResponseFraming,
    /// `cap.senddata_goahead`.
    pub senddata_goahead: bool,
    /// `cap.pending_code`.
    pub pending_code: PendingCode,
    /// `cap.leading_dot_on_pending`.
    pub leading_dot_on_pending: bool,
    /// `cap.abort_code`.
    pub abort_code: AbortCode,
    /// The command-line limit, for the error text.
    pub max_line: usize,
    /// `gateway.server_id`, the CSID TARGETs are qualified with in replies.
    pub server_id: String,
}

/// The most ids one expansion returns (advertised as MAXCALIDEXPANDLIST / MAXUPNEXPANDLIST).
pub const EXPAND_LIMIT: usize = capability::EXPAND_LIMIT;

/// Work the connection task runs for the session.
#[derive(Debug, Clone)]
pub enum Work {
    /// Check a PLAIN login against the upstream (pass-through).
    Login {
        /// The authentication identity.
        user: String,
        /// The password.
        password: Secret<String>,
    },
    /// IDENTIFY.
    Identify {
        /// The current identity.
        identity: Identity,
        /// The UPN asked for.
        upn: String,
    },
    /// CALIDEXPAND.
    CalidExpand {
        /// Who asks.
        identity: Identity,
        /// The CalID.
        calid: String,
    },
    /// UPNEXPAND.
    UpnExpand {
        /// Who asks.
        identity: Identity,
        /// The UPN.
        upn: String,
    },
    /// A SENDDATA command that needs the upstream (everything but NOOP and GENERATEUID),
    /// carried out by [`super::senddata::execute`].
    Command {
        /// Who sends it.
        identity: Identity,
        /// The command.
        payload: Box<Payload>,
    },
}

/// What work produced.
#[derive(Debug)]
pub enum Done {
    /// A login result.
    Login(Result<Identity, LoginError>),
    /// IDENTIFY's result.
    Identify(Result<Identity, TranslateError>),
    /// An expansion.
    Expand(Result<Expansion, TranslateError>),
    /// A SENDDATA command's outcome.
    Command(Result<Outcome, TranslateError>),
}

/// An input to the session.
#[derive(Debug)]
pub enum Input {
    /// A decoded frame.
    Frame(Frame),
    /// Work finished.
    Done(Done),
    /// The SENDDATA / CONTINUE latency ran out (cap-04 §4.5).
    LatencyExpired,
    /// The STARTTLS handshake completed.
    TlsEstablished,
}

/// What the connection task must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send one line.
    Send(String),
    /// Switch the codec to block mode for the next frames.
    ExpectBlock,
    /// Start work; its [`Done`] comes back as an input.
    Run(Work),
    /// Drop the running work (ABORT, DISCONNECT in Receive-Wait): its upstream request is
    /// abandoned and no [`Done`] comes back.
    CancelWork,
    /// Arm (or, with `None`, disarm) the latency timer.
    Latency(Option<Duration>),
    /// Send this proceed line and run the TLS handshake (cap-04 §7.1.10). Bytes the client sent
    /// after STARTTLS must not survive: if any are buffered, close instead.
    StartTls(String),
    /// A login was refused: wait the failed-login delay of the client's address (kept by the
    /// connection layer, see [`crate::auth_penalty`]) before carrying out the next actions.
    LoginFailed,
    /// A configured limit was hit (for the metrics).
    LimitHit(crate::metrics::Limit),
    /// Close the connection.
    Close,
}

/// What runs while the session reads nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BusyWith {
    /// A login check, after a SASL exchange that did (true) or did not send a challenge.
    Login { challenged: bool },
    /// IDENTIFY.
    Identify,
    /// CALIDEXPAND / UPNEXPAND of this argument (echoed in the reply's status line).
    Expand(String),
}

/// The SENDDATA whose reply is being produced (Receive-Wait).
#[derive(Debug)]
struct Pending {
    /// The SENDDATA line's tag, echoed on every status line of its reply.
    tag: Option<String>,
    /// The payload's CMDID.
    cmdid: Option<String>,
    /// A pending reply (`2.0.2`) was sent and CONTINUE/ABORT is awaited.
    awaiting_continue: bool,
}

#[derive(Debug)]
enum State {
    Connected,
    Sasl {
        exchange: Box<Exchange>,
        challenged: bool,
    },
    /// The server's final SASL data (SCRAM server-final) was sent; the client's empty
    /// response is awaited before the result (RFC 4422 §5).
    SaslFinal {
        captured: Captured,
    },
    TlsHandshake,
    Identified,
    Busy(BusyWith),
    ReceiveData {
        latency: Option<u64>,
    },
    ReceiveWait(Pending),
    Closed,
}

/// One CSTP session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    sasl: Sasl,
    state: State,
    identity: Option<Identity>,
    tls_active: bool,
    auth_attempts: u32,
    /// Command lines before login other than AUTHENTICATE.
    junk: u32,
    /// The tag of the command being answered.
    tag: Option<String>,
}

impl Session {
    /// A new session; [`Session::greeting`] gives its first reply.
    pub fn new(config: SessionConfig, sasl: Sasl) -> Session {
        Session {
            tls_active: config.implicit_tls,
            config,
            sasl,
            state: State::Connected,
            identity: None,
            auth_attempts: 0,
            junk: 0,
            tag: None,
        }
    }

    /// The greeting: `2.0`, then the Connected-state capabilities (cap-04 §7.1.1, spec §2.4).
    pub fn greeting(&self) -> Vec<String> {
        self.render(Reply::ok().data(self.capabilities()))
    }

    /// The reply sent when the gateway shuts down (cap-04 §8 `10.2`).
    pub fn shutdown_reply(&self) -> Vec<String> {
        Reply::new(code::SHUTDOWN)
            .text("The gateway is shutting down; reconnect later")
            .render(None, self.config.framing)
    }

    /// Who the session acts for, once authenticated.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// True once authenticated (for the idle limits).
    pub fn is_authenticated(&self) -> bool {
        self.identity.is_some()
    }

    /// True when the connection should read frames: not while a login check, IDENTIFY or an
    /// expansion runs (PIPELINE=1), nor during the TLS handshake.
    pub fn wants_input(&self) -> bool {
        !matches!(
            self.state,
            State::Busy(_) | State::TlsHandshake | State::Closed
        )
    }

    /// True while a SENDDATA reply is being produced (ABORT/CONTINUE/DISCONNECT apply).
    pub fn in_receive_wait(&self) -> bool {
        matches!(self.state, State::ReceiveWait(_))
    }

    /// True once the session has closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn passwords_allowed(&self) -> bool {
        self.tls_active || self.config.plaintext_allowed
    }

    fn capabilities(&self) -> Vec<String> {
        capability::lines(&CapabilityContext {
            passwords_allowed: self.passwords_allowed(),
            scram_available: self.sasl.scram_available(),
            starttls_available: self.config.tls_available
                && !self.tls_active
                && self.identity.is_none()
                && self.auth_attempts == 0,
            identity: self.identity.as_ref().map(upn),
            max_object_size: self.config.max_object_size,
            autologout_secs: self.config.autologout_secs,
        })
    }

    fn render(&self, reply: Reply) -> Vec<String> {
        reply.render(self.tag.as_deref(), self.config.framing)
    }

    fn send(&self, reply: Reply) -> Vec<Action> {
        self.render(reply).into_iter().map(Action::Send).collect()
    }

    /// An intermediate reply (`2.0.1`, `2.0.12`): the status line alone.
    fn tagged(&self, status: &'static str) -> String {
        Reply::new(status).status_line(self.tag.as_deref())
    }

    /// Who the session acts for: the logged-in identity (anonymous before login).
    fn acting_identity(&self) -> Identity {
        self.identity.clone().unwrap_or(Identity::Anonymous)
    }

    /// Feeds one input; returns the actions to carry out, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match (state, input) {
            (State::Closed, _) => Vec::new(),
            (
                State::Sasl {
                    exchange,
                    challenged,
                },
                Input::Frame(f),
            ) => self.sasl_frame(exchange, challenged, f),
            (State::SaslFinal { captured }, Input::Frame(f)) => self.sasl_final_frame(captured, f),
            (State::ReceiveData { latency }, Input::Frame(f)) => self.payload(latency, f),
            (State::ReceiveWait(pending), Input::Frame(f)) => self.receive_wait_frame(pending, f),
            (State::ReceiveWait(mut pending), Input::LatencyExpired) => {
                pending.awaiting_continue = true;
                let actions = self.pending_reply(&pending);
                self.state = State::ReceiveWait(pending);
                actions
            }
            (State::ReceiveWait(pending), Input::Done(done)) => {
                self.state = State::Identified;
                let mut actions = vec![Action::Latency(None)];
                actions.extend(self.senddata_done(pending, done));
                actions
            }
            (State::Busy(with), Input::Done(done)) => self.busy_done(with, done),
            (State::TlsHandshake, Input::TlsEstablished) => {
                self.tls_active = true;
                self.state = State::Connected;
                self.send(Reply::ok())
            }
            (state @ (State::Connected | State::Identified), Input::Frame(f)) => {
                self.state = state;
                self.line_frame(f)
            }
            (state, input) => {
                // Work finishing when none was asked for, a timer for a finished command, a
                // frame while busy: none can happen; keep the state and ignore the input.
                tracing::debug!(?input, "CAP session ignored an input it did not expect");
                self.state = state;
                Vec::new()
            }
        }
    }

    fn line_frame(&mut self, frame: Frame) -> Vec<Action> {
        let parsed = self.parse_frame(frame);
        let counts = match &parsed {
            Ok(Command::Authenticate { .. }) => false,
            Ok(_) => true,
            Err(answer) => !answer.is_empty(),
        };
        if counts && self.identity.is_none() {
            self.junk += 1;
            if self.junk > self.config.max_preauth_commands {
                tracing::info!(
                    limit = "preauth_commands",
                    "CAP connection closed at a limit"
                );
                let mut a = self.send(
                    Reply::new(code::WRONG_STATE)
                        .text("Too many commands without logging in; closing the connection"),
                );
                a.push(Action::Close);
                a.insert(0, Action::LimitHit(crate::metrics::Limit::PreauthCommands));
                self.state = State::Closed;
                return a;
            }
        }
        match parsed {
            Ok(command) => self.command(command),
            Err(answer) => answer,
        }
    }

    /// One command line, in any state that reads commands: the command (with `self.tag` set
    /// to its tag), or the answer to a line that is not one (`9.0`, nothing for a blank line).
    fn parse_frame(&mut self, frame: Frame) -> Result<Command, Vec<Action>> {
        self.tag = None;
        let line = match frame {
            Frame::Line(l) => l,
            Frame::LineTooLong => {
                return Err(self.send(Reply::new(code::UNKNOWN).text(format!(
                    "Command line too long (the limit is {} octets)",
                    self.config.max_line
                ))));
            }
            Frame::BareLf => {
                return Err(self.send(
                    Reply::new(code::UNKNOWN).text("Lines must end with CRLF on this listener"),
                ));
            }
            Frame::Block(_) | Frame::BlockTooLarge => return Err(Vec::new()),
        };
        match command::parse(&line) {
            Ok(Tagged { tag, command }) => {
                self.tag = tag;
                Ok(command)
            }
            Err(LineError::Empty) => Err(Vec::new()),
            Err(LineError::NotAscii) => Err(self.send(
                Reply::new(code::UNKNOWN).text("Command lines must be US-ASCII (cap-04 §4.3)"),
            )),
            Err(LineError::UnknownVerb(v)) => Err(self.send(reply::unknown(&v))),
            Err(LineError::BadArguments { tag, verb, reason }) => {
                self.tag = tag;
                Err(self.send(Reply::new(code::UNKNOWN).text(format!("{verb} {reason}"))))
            }
        }
    }

    fn command(&mut self, command: Command) -> Vec<Action> {
        let identified = matches!(self.state, State::Identified);
        match command {
            Command::Capability => self.send(Reply::ok().data(self.capabilities())),
            Command::Noop => self.send(Reply::ok()),
            Command::Disconnect => {
                let mut a = self.send(Reply::ok());
                a.push(Action::Close);
                self.state = State::Closed;
                a
            }
            Command::Abort { .. } => self
                .send(Reply::new(code::NOT_FOUND_OR_IDLE).text("No command in progress to abort")),
            Command::Continue { .. } => self.send(reply::wrong_state(
                "CONTINUE",
                "no reply is pending (CONTINUE follows a 2.0.2)",
            )),
            Command::Authenticate { mechanism, initial } => {
                if identified {
                    // cap-00..05 §7.1.3: only one AUTHENTICATE per session.
                    return self.terminate("AUTHENTICATE after authentication");
                }
                self.authenticate(&mechanism, initial)
            }
            Command::StartTls => {
                if identified || self.auth_attempts > 0 || self.tls_active {
                    // cap-04 §7.1.10: not after AUTHENTICATE or an earlier STARTTLS.
                    return self.terminate("STARTTLS after STARTTLS or AUTHENTICATE");
                }
                if !self.config.tls_available {
                    return self.send(
                        Reply::new(code::TLS_UNAVAILABLE)
                            .text("STARTTLS is not configured on this gateway"),
                    );
                }
                self.state = State::TlsHandshake;
                vec![Action::StartTls(self.tagged(code::TLS_PROCEED))]
            }
            _ if !identified => {
                let verb = command.verb().name();
                self.send(reply::wrong_state(
                    verb,
                    "authenticate first (AUTHENTICATE)",
                ))
            }
            Command::Identify { upn } => self.run_busy(
                BusyWith::Identify,
                Work::Identify {
                    identity: self.acting_identity(),
                    upn,
                },
            ),
            Command::CalidExpand { calid } => self.run_busy(
                BusyWith::Expand(calid.clone()),
                Work::CalidExpand {
                    identity: self.acting_identity(),
                    calid,
                },
            ),
            Command::UpnExpand { upn } => self.run_busy(
                BusyWith::Expand(upn.clone()),
                Work::UpnExpand {
                    identity: self.acting_identity(),
                    upn,
                },
            ),
            Command::GenerateUid { count } => {
                let uids = (0..count)
                    .map(|_| crate::translate::freebusy::generate_uid())
                    .collect();
                self.send(Reply::ok().data(uids))
            }
            Command::SendData { latency } => {
                self.state = State::ReceiveData { latency };
                let mut a = Vec::new();
                if self.config.senddata_goahead {
                    a.push(Action::Send(self.tagged(code::GO_AHEAD)));
                }
                a.push(Action::ExpectBlock);
                a
            }
        }
    }

    fn terminate(&mut self, why: &str) -> Vec<Action> {
        tracing::info!(reason = why, "CAP session terminated as the drafts require");
        self.state = State::Closed;
        vec![Action::Close]
    }

    fn run_busy(&mut self, with: BusyWith, work: Work) -> Vec<Action> {
        self.state = State::Busy(with);
        vec![Action::Run(work)]
    }

    // ---- AUTHENTICATE (cap-04 §7.1.3) ----

    fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Vec<Action> {
        if self.auth_attempts > self.config.auth_retries {
            return self.terminate("a second AUTHENTICATE");
        }
        // The drafts' examples write DIGEST_MD5; the registry name is DIGEST-MD5 (spec §1.5 #10).
        let mech = Mechanism::from_name(mechanism)
            .filter(|m| *m != Mechanism::ScramSha256 || self.sasl.scram_available());
        let Some(mech) = mech else {
            let scram = if self.sasl.scram_available() {
                "SCRAM-SHA-256, "
            } else {
                ""
            };
            return self.send(Reply::new(code::AUTH_MECHANISM).text(format!(
                "Mechanism {mechanism} is not supported; use {}",
                if self.passwords_allowed() {
                    format!("{scram}PLAIN or ANONYMOUS")
                } else if scram.is_empty() {
                    "ANONYMOUS, or STARTTLS then PLAIN".to_owned()
                } else {
                    "SCRAM-SHA-256 or ANONYMOUS, or STARTTLS then PLAIN".to_owned()
                }
            )));
        };
        if mech == Mechanism::Plain && !self.passwords_allowed() {
            return self.send(Reply::new(code::ENCRYPTION_REQUIRED).text(
                "PLAIN sends a password; use STARTTLS first (this gateway does not accept \
                 passwords in plaintext from your address)",
            ));
        }
        self.auth_attempts += 1;
        let mut exchange = match self.sasl.start(mech) {
            Ok(e) => Box::new(e),
            Err(e) => {
                tracing::error!(error = %e, "SASL mechanism could not start");
                return self.send(Reply::new(code::FAILURE).text("Authentication is unavailable"));
            }
        };
        match initial {
            Some(ir) => {
                let step = exchange.step(&ir);
                self.sasl_step(exchange, false, step)
            }
            None => {
                self.state = State::Sasl {
                    exchange,
                    challenged: true,
                };
                vec![Action::Send("+".into())]
            }
        }
    }

    fn sasl_frame(
        &mut self,
        mut exchange: Box<Exchange>,
        challenged: bool,
        frame: Frame,
    ) -> Vec<Action> {
        let line = match self.sasl_response(frame, challenged) {
            Ok(line) => line,
            Err(answer) => return answer,
        };
        if exchange.messages() >= self.config.max_sasl_steps {
            tracing::info!(limit = "sasl_steps", "CAP SASL exchange refused at a limit");
            let mut a = self.auth_failed(
                challenged,
                code::AUTH_FAILED,
                "Authentication failed: too many SASL steps",
            );
            a.push(Action::LimitHit(crate::metrics::Limit::SaslSteps));
            return a;
        }
        let step = exchange.step(&line);
        self.sasl_step(exchange, challenged, step)
    }

    /// The client's answer to the server's final SASL data: empty (or `=`) to finish.
    fn sasl_final_frame(&mut self, captured: Captured, frame: Frame) -> Vec<Action> {
        match self.sasl_response(frame, true) {
            Ok(line) if line.is_empty() || line == "=" => self.sasl_captured(captured, true),
            Ok(_) => self.auth_failed(
                true,
                code::AUTH_FAILED,
                "Authentication failed: expected an empty response to the server's final message",
            ),
            Err(answer) => answer,
        }
    }

    /// One client line of a SASL exchange, or the answer when it ends the exchange: a frame
    /// that is no line fails it, `.` or `*` cancels it (cap-00/-01 §7.1.3: "."; "*" is the
    /// IMAP habit).
    fn sasl_response(&mut self, frame: Frame, challenged: bool) -> Result<String, Vec<Action>> {
        let Frame::Line(l) = frame else {
            return Err(self.auth_failed(challenged, code::AUTH_FAILED, "Response line too long"));
        };
        let line = String::from_utf8_lossy(&l).trim().to_owned();
        if line == "." || line == "*" {
            self.state = State::Connected;
            return Err(self.send(
                Reply::new(code::AUTH_CANCELLED).text("Authentication cancelled by the client"),
            ));
        }
        Ok(line)
    }

    fn sasl_step(&mut self, exchange: Box<Exchange>, challenged: bool, step: Step) -> Vec<Action> {
        match step {
            Step::Challenge(c) => {
                self.state = State::Sasl {
                    exchange,
                    challenged: true,
                };
                vec![Action::Send(if c.is_empty() { "+".into() } else { c })]
            }
            Step::Malformed(why) => self.auth_failed(
                challenged,
                code::AUTH_FAILED,
                &format!("Authentication failed: {why}"),
            ),
            Step::Final { data, captured } => {
                self.state = State::SaslFinal { captured };
                vec![Action::Send(data)]
            }
            Step::Refused => {
                self.auth_failed(challenged, code::AUTH_FAILED, "Authentication failed")
            }
            Step::Done(captured) => self.sasl_captured(captured, challenged),
        }
    }

    /// What a finished exchange proved: answer, or check it against the upstream.
    fn sasl_captured(&mut self, captured: Captured, challenged: bool) -> Vec<Action> {
        match captured {
            Captured::AuthzidRefused => self.auth_failed(
                challenged,
                code::AUTHZ_REFUSED,
                "SASL authorization identities are not supported; log in, then use IDENTIFY",
            ),
            Captured::Anonymous { trace } => {
                tracing::info!(trace_given = !trace.is_empty(), "CAP anonymous login");
                self.logged_in(Identity::Anonymous)
            }
            Captured::Plain { authcid, password } => {
                self.state = State::Busy(BusyWith::Login { challenged });
                vec![Action::Run(Work::Login {
                    user: authcid,
                    password,
                })]
            }
            Captured::Scram {
                authcid,
                upstream_password,
            } => {
                // The client proved the gateway-local password; the gateway now logs in
                // upstream with the account's own credentials (the same check as PLAIN).
                tracing::info!(user = %authcid, "CAP SCRAM-SHA-256 proof accepted");
                self.state = State::Busy(BusyWith::Login { challenged });
                vec![Action::Run(Work::Login {
                    user: authcid,
                    password: upstream_password,
                })]
            }
        }
    }

    fn auth_failed(&mut self, challenged: bool, status: &'static str, text: &str) -> Vec<Action> {
        self.state = State::Connected;
        let mut a = vec![Action::LoginFailed];
        if challenged {
            // "." ends the challenge stream before the code (cap-00/-01 §7.1.3; the -03..-05
            // failure example).
            a.push(Action::Send(".".into()));
        }
        a.extend(self.send(Reply::new(status).text(text)));
        a
    }

    fn logged_in(&mut self, identity: Identity) -> Vec<Action> {
        tracing::info!(identity = %identity.describe(), "CAP login");
        self.identity = Some(identity);
        self.state = State::Identified;
        self.send(Reply::ok().data(self.capabilities()))
    }

    fn busy_done(&mut self, with: BusyWith, done: Done) -> Vec<Action> {
        self.state = State::Identified;
        match (with, done) {
            (BusyWith::Login { .. }, Done::Login(Ok(identity))) => self.logged_in(identity),
            (BusyWith::Login { challenged }, Done::Login(Err(e))) => {
                let r = reply::login_error(&e);
                self.auth_failed(challenged, r.code, r.text.as_deref().unwrap_or(""))
            }
            (BusyWith::Identify, Done::Identify(Ok(identity))) => {
                tracing::info!(identity = %identity.describe(), "CAP IDENTIFY");
                self.identity = Some(identity);
                self.send(Reply::ok())
            }
            (BusyWith::Identify, Done::Identify(Err(e))) => self.send(reply::identify_error(&e)),
            (BusyWith::Expand(arg), Done::Expand(Ok(x))) => {
                let status = if x.truncated {
                    code::EXPAND_TRUNCATED
                } else {
                    code::OK
                };
                let mut r = Reply::new(status).arg(Some(&arg)).data(x.ids);
                if x.truncated {
                    r = r.text(format!("Only the first {EXPAND_LIMIT} are listed"));
                }
                self.send(r)
            }
            (BusyWith::Expand(arg), Done::Expand(Err(e))) => {
                self.send(reply::expand_error(&arg, &e))
            }
            (with, done) => {
                tracing::warn!(?with, ?done, "CAP work finished with a mismatched result");
                if matches!(with, BusyWith::Login { .. }) {
                    self.state = State::Connected;
                }
                self.send(Reply::new(code::FAILURE).text("Internal error"))
            }
        }
    }

    // ---- SENDDATA (cap-04 §7.1.8) ----

    fn payload(&mut self, latency: Option<u64>, frame: Frame) -> Vec<Action> {
        self.state = State::Identified;
        let block = match frame {
            Frame::Block(b) => b,
            Frame::BlockTooLarge => {
                return self.send(Reply::new(code::TOO_LARGE).text(format!(
                    "The object is larger than MAXICALOBJECTSIZE ({} octets) or has a line \
                     that is too long; nothing was done",
                    self.config.max_object_size
                )));
            }
            // Block mode yields only blocks; anything else leaves the session usable.
            _ => return Vec::new(),
        };
        let entity = match super::mime::parse(&block) {
            Ok(e) => e,
            Err(e) => {
                return self.send(Reply::new(code::FAILURE).text(format!("Unreadable data: {e}")));
            }
        };
        let payload = match payload::parse(&entity) {
            Ok(p) => p,
            // The MIME envelope was readable, so the transport says 2.0 and the object's
            // status says what is wrong with it (spec §2.8).
            Err(e) => {
                return self.send(reply::response(
                    None,
                    &[TargetReply::of(Vec::new()).with_status(status::of_payload_error(&e))],
                ));
            }
        };
        tracing::info!(method = payload.method.name(), cmdid = ?payload.cmdid, "CAP SENDDATA");
        match senddata::local(&payload, &self.config.server_id) {
            Some(outcome) => self.send(reply::response(payload.cmdid.as_deref(), &outcome.targets)),
            None => {
                self.state = State::ReceiveWait(Pending {
                    tag: self.tag.clone(),
                    cmdid: payload.cmdid.clone(),
                    awaiting_continue: false,
                });
                let mut a = vec![Action::Run(Work::Command {
                    identity: self.acting_identity(),
                    payload: Box::new(payload),
                })];
                if let Some(secs) = latency {
                    a.push(Action::Latency(Some(Duration::from_secs(secs))));
                }
                a
            }
        }
    }

    fn receive_wait_frame(&mut self, pending: Pending, frame: Frame) -> Vec<Action> {
        // Replies to these commands carry their own tag; the SENDDATA's stays in `pending`.
        let command = match self.parse_frame(frame) {
            Ok(c) => c,
            Err(answer) => {
                self.state = State::ReceiveWait(pending);
                return answer;
            }
        };
        let other_id = |wanted: &Option<String>| wanted.is_some() && *wanted != pending.cmdid;
        match command {
            Command::Abort { cmdid: wanted } if other_id(&wanted) => {
                self.state = State::ReceiveWait(pending);
                self.send(no_such_command(wanted.as_deref()))
            }
            Command::Abort { .. } => {
                self.state = State::Identified;
                let status = match self.config.abort_code {
                    AbortCode::Ok => code::OK,
                    AbortCode::Aborted => code::ABORTED,
                };
                let mut a = vec![Action::CancelWork, Action::Latency(None)];
                a.extend(
                    self.send(
                        Reply::new(status)
                            .arg(pending.cmdid.as_deref())
                            .text("Aborted; the upstream request was abandoned"),
                    ),
                );
                a
            }
            Command::Continue { .. } if !pending.awaiting_continue => {
                self.state = State::ReceiveWait(pending);
                self.send(reply::wrong_state(
                    "CONTINUE",
                    "no reply is pending yet (CONTINUE follows a 2.0.2)",
                ))
            }
            Command::Continue { cmdid: wanted, .. } if other_id(&wanted) => {
                self.state = State::ReceiveWait(pending);
                self.send(no_such_command(wanted.as_deref()))
            }
            Command::Continue { latency, .. } => {
                self.state = State::ReceiveWait(Pending {
                    awaiting_continue: false,
                    ..pending
                });
                // No acknowledgement: the next reply is the command's (cap-04 §7.1.6).
                vec![Action::Latency(latency.map(Duration::from_secs))]
            }
            Command::Disconnect => {
                let mut a = vec![Action::CancelWork, Action::Latency(None)];
                a.extend(self.send(Reply::ok()));
                a.push(Action::Close);
                self.state = State::Closed;
                a
            }
            other => {
                self.state = State::ReceiveWait(pending);
                self.send(reply::wrong_state(
                    other.verb().name(),
                    "a SENDDATA reply is pending; send ABORT, CONTINUE or DISCONNECT",
                ))
            }
        }
    }

    fn pending_reply(&self, pending: &Pending) -> Vec<Action> {
        let mut a = vec![Action::Latency(None)];
        if self.config.leading_dot_on_pending {
            a.push(Action::Send(".".into()));
        }
        let status = match self.config.pending_code {
            PendingCode::ReplyPending => code::PENDING,
            PendingCode::Timeout => code::TIMEOUT,
        };
        // The pending reply belongs to the SENDDATA: its tag, and its CMDID (cap-04 §8).
        a.extend(
            Reply::new(status)
                .arg(pending.cmdid.as_deref())
                .text("Reply pending; send CONTINUE [seconds] or ABORT")
                .render(pending.tag.as_deref(), self.config.framing)
                .into_iter()
                .map(Action::Send),
        );
        a
    }

    fn senddata_done(&mut self, pending: Pending, done: Done) -> Vec<Action> {
        self.tag = pending.tag;
        let cmdid = pending.cmdid.as_deref();
        match done {
            Done::Command(Ok(outcome)) => self.send(reply::response(cmdid, &outcome.targets)),
            Done::Command(Err(e)) => self.send(reply::senddata_error(cmdid, &e)),
            other => {
                tracing::warn!(?other, "CAP SENDDATA finished with a mismatched result");
                self.send(Reply::new(code::FAILURE).arg(cmdid).text("Internal error"))
            }
        }
    }
}

/// The session UPN of an identity (cap-04 §2.4.6): `@` for anonymous (§7.1.3.1), the realm
/// alone for a peer server.
pub fn upn(identity: &Identity) -> String {
    match identity {
        Identity::Anonymous => "@".into(),
        Identity::User { address, .. } => address.clone(),
        Identity::Peer { id } => format!("@{id}"),
    }
}

/// `2.2 <cmdid>`: ABORT or CONTINUE named a command that is not the one in progress.
fn no_such_command(cmdid: Option<&str>) -> Reply {
    Reply::new(code::NOT_FOUND_OR_IDLE)
        .arg(cmdid)
        .text("No command with that id is in progress")
}

#[cfg(test)]
mod tests;
