//! The CIP session as a sans-I/O state machine (cip-00 §1.4, §2).
//!
//! Inputs are decoded frames and the results of work the session asked for; outputs are
//! [`Action`]s for the connection task to carry out (send a line, switch the codec to block
//! mode, run a login or a command, pause, close). No I/O and no clock happen here, so every
//! transition is a plain unit test.
//!
//! ```text
//!            ┌──────── line ────────┐
//!            ▼                      │ (reply)
//!  Ready ── "SENDEVENT +" ──► Data ── block ──► Busy ── Done ──► Ready
//!    │                                           ▲
//!    └── AUTHENTICATE LOGIN ─────────────────────┘
//! ```
//!
//! CIP is lock-step (cip-00 §1.4: the client must wait for a completion). A command that
//! arrives while another is running is not executed: its data block, if any, is read and
//! dropped, and after the running command's completion it gets its own `NO 001`.

use super::command::{self, Command};
use super::reply;
use crate::framing::Frame;
use crate::secret::Secret;
use crate::translate::{
    FreeBusyOutcome, Identity, LoginError, RsvpOutcome, SendEventOutcome, TranslateError,
};

/// Per-connection settings the session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The server id for the greeting.
    pub server_id: String,
    /// Whether a password may be sent on this connection (TLS, or plaintext allowed by policy
    /// for this client's address).
    pub passwords_allowed: bool,
    /// Failed logins before the connection is closed.
    pub max_auth_failures: u32,
    /// The command-line limit, for the error text.
    pub max_line: usize,
    /// Lines before login that are neither a login nor a data command (HELP, NOOP, errors);
    /// one more closes the connection (`limits.max_preauth_commands`).
    pub max_preauth_commands: u32,
}

/// A data-bearing command waiting for, or running with, its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataVerb {
    /// SENDEVENT.
    SendEvent,
    /// RSVP / RESPOND.
    Rsvp,
    /// FREEBUSY.
    FreeBusy,
}

/// Work the connection task runs for the session (it owns the gateway and the clock).
#[derive(Debug, Clone)]
pub enum Work {
    /// Check a login.
    Login {
        /// The identity given.
        identity: String,
        /// The password given.
        password: Secret<String>,
    },
    /// Run a data command as `identity`.
    Data {
        /// Which command.
        verb: DataVerb,
        /// Who runs it.
        identity: Identity,
        /// The block, decoded.
        data: String,
    },
}

/// What work produced.
#[derive(Debug)]
pub enum Done {
    /// A login result.
    Login(Result<Identity, LoginError>),
    /// SENDEVENT's result.
    SendEvent(Result<SendEventOutcome, TranslateError>),
    /// RSVP's result.
    Rsvp(Result<RsvpOutcome, TranslateError>),
    /// FREEBUSY's result.
    FreeBusy(Result<FreeBusyOutcome, TranslateError>),
}

/// An input to the session.
#[derive(Debug)]
pub enum Input {
    /// A decoded frame.
    Frame(Frame),
    /// Work finished.
    Done(Done),
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
    /// A login was refused: wait the failed-login delay of the client's address (kept by the
    /// connection layer, see [`crate::auth_penalty`]) before carrying out the next actions.
    LoginFailed,
    /// A configured limit was hit (for the metrics).
    LimitHit(crate::metrics::Limit),
    /// Close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Data(DataVerb),
    Busy,
    Closed,
}

/// One CIP session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    identity: Identity,
    auth_failures: u32,
    /// Commands that arrived while busy; each gets `NO 001` after the running one completes.
    early: u32,
    /// Lines before login that were neither a login nor a data command.
    junk: u32,
}

const LOCK_STEP: &str =
    "NO 001 Command sent before the previous one completed; wait for OK or NO (CIP is lock-step)";

impl Session {
    /// A new session; [`Session::greeting`] is its first line.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            state: State::Ready,
            identity: Identity::Anonymous,
            auth_failures: 0,
            early: 0,
            junk: 0,
        }
    }

    /// The greeting line.
    pub fn greeting(&self) -> String {
        reply::greeting(&self.config.server_id)
    }

    /// Who the session acts for.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// True once a login succeeded (for the idle limits).
    pub fn is_authenticated(&self) -> bool {
        !matches!(self.identity, Identity::Anonymous)
    }

    /// True while work is running.
    pub fn is_busy(&self) -> bool {
        self.state == State::Busy
    }

    /// True once the session has closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Feeds one input; returns the actions to carry out, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match (self.state, input) {
            (State::Closed, _) => Vec::new(),
            (State::Busy, Input::Frame(frame)) => self.early_frame(frame),
            (State::Busy, Input::Done(done)) => {
                self.state = State::Ready;
                let mut actions = self.done(done);
                for _ in 0..std::mem::take(&mut self.early) {
                    actions.push(Action::Send(LOCK_STEP.into()));
                }
                actions
            }
            (_, Input::Done(_)) => {
                // Work finishing when none was running cannot happen; ignore it defensively.
                tracing::warn!("CIP session got a result it did not ask for");
                Vec::new()
            }
            (State::Ready, Input::Frame(frame)) => self.ready_frame(frame),
            (State::Data(verb), Input::Frame(frame)) => self.data_frame(verb, frame),
        }
    }

    fn ready_frame(&mut self, frame: Frame) -> Vec<Action> {
        // Each line is parsed once, here; the pre-login limit and the command both use it.
        let parsed = match &frame {
            Frame::Line(bytes) => Some(command::parse(&latin1(bytes))),
            _ => None,
        };
        let starts_work = matches!(
            parsed,
            Some(
                Ok(Command::Login { .. } | Command::SendEvent | Command::Rsvp | Command::FreeBusy)
                    | Err(command::CommandError::Empty)
            )
        );
        if !self.is_authenticated() && !starts_work {
            self.junk += 1;
            if self.junk > self.config.max_preauth_commands {
                tracing::info!(
                    limit = "preauth_commands",
                    "CIP connection closed at a limit"
                );
                self.state = State::Closed;
                return vec![
                    Action::LimitHit(crate::metrics::Limit::PreauthCommands),
                    Action::Send(
                        "NO 000 Too many commands without logging in; closing the connection"
                            .into(),
                    ),
                    Action::Close,
                ];
            }
        }
        match (frame, parsed) {
            (_, Some(parsed)) => self.command(parsed),
            (Frame::LineTooLong, _) => vec![Action::Send(format!(
                "NO 001 Command line too long (the limit is {} octets)",
                self.config.max_line
            ))],
            (Frame::BareLf, _) => vec![Action::Send(
                "NO 001 Lines must end with CRLF on this listener".into(),
            )],
            // Blocks only follow a data command; the codec does not produce them in Ready.
            (Frame::Line(_) | Frame::Block(_) | Frame::BlockTooLarge, _) => Vec::new(),
        }
    }

    fn command(&mut self, parsed: Result<Command, command::CommandError>) -> Vec<Action> {
        let cmd = match parsed {
            Ok(c) => c,
            // A blank line from a person at a terminal is ignored, not an error.
            Err(command::CommandError::Empty) => return Vec::new(),
            Err(e) => return vec![Action::Send(reply::command_error(&e))],
        };
        match cmd {
            Command::Help => reply::help().into_iter().map(Action::Send).collect(),
            Command::Noop => vec![Action::Send("OK 000 NOOP".into())],
            Command::Quit => {
                self.state = State::Closed;
                vec![Action::Send("OK 000 Goodbye".into()), Action::Close]
            }
            Command::Login { identity, password } => {
                if !self.config.passwords_allowed {
                    return vec![Action::Send(
                        "NO 002 Passwords are not accepted on an unencrypted connection from \
                         this address"
                            .into(),
                    )];
                }
                self.state = State::Busy;
                vec![Action::Run(Work::Login { identity, password })]
            }
            Command::SendEvent => self.start_data(DataVerb::SendEvent),
            Command::Rsvp => self.start_data(DataVerb::Rsvp),
            Command::FreeBusy => self.start_data(DataVerb::FreeBusy),
        }
    }

    fn start_data(&mut self, verb: DataVerb) -> Vec<Action> {
        self.state = State::Data(verb);
        vec![Action::ExpectBlock]
    }

    fn data_frame(&mut self, verb: DataVerb, frame: Frame) -> Vec<Action> {
        match frame {
            Frame::Block(bytes) => {
                self.state = State::Busy;
                vec![Action::Run(Work::Data {
                    verb,
                    identity: self.identity.clone(),
                    data: decode_data(&bytes),
                })]
            }
            Frame::BlockTooLarge => {
                self.state = State::Ready;
                vec![Action::Send(
                    "NO 001 Data too large or a data line too long; nothing was done".into(),
                )]
            }
            // In block mode the codec yields only blocks; anything else means it was reset.
            Frame::Line(_) | Frame::LineTooLong | Frame::BareLf => {
                self.state = State::Ready;
                vec![Action::Send("NO 001 Data block interrupted".into())]
            }
        }
    }

    fn early_frame(&mut self, frame: Frame) -> Vec<Action> {
        match frame {
            Frame::Line(bytes) => {
                let line = latin1(&bytes);
                match command::parse(&line) {
                    Err(command::CommandError::Empty) => Vec::new(),
                    Ok(cmd) if cmd.takes_data() => {
                        // Read its block so its lines are not taken for commands; drop it.
                        self.early += 1;
                        vec![Action::ExpectBlock]
                    }
                    _ => {
                        self.early += 1;
                        Vec::new()
                    }
                }
            }
            Frame::LineTooLong | Frame::BareLf => {
                self.early += 1;
                Vec::new()
            }
            // The block of an early data command: dropped, already counted.
            Frame::Block(_) | Frame::BlockTooLarge => Vec::new(),
        }
    }

    fn done(&mut self, done: Done) -> Vec<Action> {
        let lines = match done {
            Done::Login(Ok(identity)) => {
                let who = identity.describe();
                self.identity = identity;
                self.auth_failures = 0;
                vec![reply::login_ok(&who)]
            }
            Done::Login(Err(e)) => {
                // A failed attempt also drops any earlier identity: the client asked to be
                // someone else and was refused.
                self.identity = Identity::Anonymous;
                if let LoginError::Unavailable(_) = e {
                    return vec![Action::Send(reply::login_failed(&e))];
                }
                self.auth_failures += 1;
                let mut actions = vec![Action::LoginFailed, Action::Send(reply::login_failed(&e))];
                if self.auth_failures >= self.config.max_auth_failures {
                    self.state = State::Closed;
                    actions.push(Action::Send(
                        "NO 000 Too many failed logins; closing the connection".into(),
                    ));
                    actions.push(Action::Close);
                }
                return actions;
            }
            Done::SendEvent(r) => r.map(|o| reply::sendevent(&o)).unwrap_or_else(err),
            Done::Rsvp(r) => r.map(|o| reply::rsvp(&o)).unwrap_or_else(err),
            Done::FreeBusy(r) => r.map(|o| reply::freebusy(&o)).unwrap_or_else(err),
        };
        lines.into_iter().map(Action::Send).collect()
    }
}

fn err(e: TranslateError) -> Vec<String> {
    tracing::info!(error = %e, "CIP command failed");
    vec![reply::error(&e)]
}

/// Protocol text is ISO 8859-1 (cip-00 §1.0): every byte is one character.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// Event data has its own charset rules (cip-00 §1.0): UTF-8 when it is valid UTF-8 (modern
/// clients), else ISO 8859-1 (the draft's default).
pub fn decode_data(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => latin1(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caldav::Credentials;

    fn session() -> Session {
        Session::new(SessionConfig {
            server_id: "example.com".into(),
            passwords_allowed: true,
            max_auth_failures: 3,
            max_line: 1000,
            max_preauth_commands: 5,
        })
    }

    fn line(s: &str) -> Input {
        Input::Frame(Frame::Line(s.as_bytes().to_vec()))
    }

    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    fn alice() -> Identity {
        Identity::User {
            creds: Credentials::new("alice", "pw"),
            address: "alice@example.com".into(),
        }
    }

    #[test]
    fn greeting_and_simple_commands() {
        let mut s = session();
        assert_eq!(s.greeting(), "OK CIP 1.0 example.com");
        assert_eq!(sent(&s.handle(line("NOOP"))), vec!["OK 000 NOOP"]);
        assert!(
            sent(&s.handle(line("HELP")))
                .last()
                .unwrap()
                .starts_with("OK 000")
        );
        assert!(
            sent(&s.handle(line("SELECT SERVER x")))
                .remove(0)
                .starts_with("NO 001")
        );
        assert!(s.handle(line("")).is_empty());
        let a = s.handle(line("QUIT"));
        assert_eq!(sent(&a), vec!["OK 000 Goodbye"]);
        assert!(matches!(a.last(), Some(Action::Close)));
        assert!(
            s.handle(line("NOOP")).is_empty(),
            "closed sessions ignore input"
        );
    }

    #[test]
    fn data_command_flow() {
        let mut s = session();
        let a = s.handle(line("SENDEVENT +"));
        assert!(matches!(a.as_slice(), [Action::ExpectBlock]));
        let a = s.handle(Input::Frame(Frame::Block(b"UID:1\r\n".to_vec())));
        match a.as_slice() {
            [
                Action::Run(Work::Data {
                    verb,
                    identity,
                    data,
                }),
            ] => {
                assert_eq!(*verb, DataVerb::SendEvent);
                assert_eq!(*identity, Identity::Anonymous);
                assert_eq!(data, "UID:1\r\n");
            }
            other => panic!("{other:?}"),
        }
        assert!(s.is_busy());
        let a = s.handle(Input::Done(Done::SendEvent(Err(TranslateError::BadInput(
            "The event has no UID".into(),
        )))));
        assert_eq!(sent(&a), vec!["NO 001 The event has no UID"]);
        assert!(!s.is_busy());
    }

    #[test]
    fn oversized_block_keeps_the_session() {
        let mut s = session();
        s.handle(line("RSVP +"));
        let a = s.handle(Input::Frame(Frame::BlockTooLarge));
        assert!(sent(&a)[0].starts_with("NO 001"));
        assert_eq!(sent(&s.handle(line("NOOP"))), vec!["OK 000 NOOP"]);
        assert!(sent(&s.handle(Input::Frame(Frame::LineTooLong)))[0].starts_with("NO 001"));
    }

    #[test]
    fn login_success_failure_delay_and_limit() {
        let mut s = session();
        let a = s.handle(line("AUTHENTICATE LOGIN alice alicepw"));
        assert!(
            matches!(a.as_slice(), [Action::Run(Work::Login { identity, .. })] if identity == "alice")
        );
        let a = s.handle(Input::Done(Done::Login(Ok(alice()))));
        assert_eq!(sent(&a), vec!["OK 000 Logged in as alice@example.com"]);
        assert!(s.is_authenticated());

        for i in 0..3 {
            s.handle(line("AUTHENTICATE LOGIN alice wrong"));
            let a = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
            assert!(
                !s.is_authenticated(),
                "a failed re-login drops the identity"
            );
            assert!(sent(&a).contains(&"NO 000 Authentication failed".to_owned()));
            assert!(matches!(a.first(), Some(Action::LoginFailed)), "{a:?}");
            assert_eq!(matches!(a.last(), Some(Action::Close)), i == 2);
        }
        assert!(s.is_closed());
    }

    #[test]
    fn too_many_commands_before_login_close_the_connection() {
        let mut s = session();
        for _ in 0..5 {
            assert_eq!(sent(&s.handle(line("NOOP"))), vec!["OK 000 NOOP"]);
        }
        // Blank lines and data commands do not count.
        assert!(s.handle(line("")).is_empty());
        let a = s.handle(line("BOGUS"));
        assert_eq!(
            sent(&a),
            vec!["NO 000 Too many commands without logging in; closing the connection"]
        );
        assert!(matches!(a.last(), Some(Action::Close)));
        assert!(s.is_closed());
    }

    #[test]
    fn commands_after_login_are_not_limited() {
        let mut s = session();
        s.handle(line("AUTHENTICATE LOGIN alice alicepw"));
        s.handle(Input::Done(Done::Login(Ok(alice()))));
        for _ in 0..20 {
            assert_eq!(sent(&s.handle(line("NOOP"))), vec!["OK 000 NOOP"]);
        }
    }

    #[test]
    fn passwords_refused_when_not_allowed() {
        let mut s = Session::new(SessionConfig {
            passwords_allowed: false,
            ..session().config
        });
        let a = s.handle(line("AUTHENTICATE LOGIN alice alicepw"));
        assert!(sent(&a)[0].starts_with("NO 002"));
        assert!(!s.is_busy());
    }

    #[test]
    fn commands_while_busy_are_answered_after_the_running_one() {
        let mut s = session();
        s.handle(line("FREEBUSY +"));
        s.handle(Input::Frame(Frame::Block(
            b"ATTENDEE:bob@example.com\r\n".to_vec(),
        )));
        assert!(s.handle(line("NOOP")).is_empty());
        let a = s.handle(line("SENDEVENT +"));
        assert!(
            matches!(a.as_slice(), [Action::ExpectBlock]),
            "its block is swallowed"
        );
        assert!(
            s.handle(Input::Frame(Frame::Block(b"UID:x\r\n".to_vec())))
                .is_empty()
        );
        let a = s.handle(Input::Done(Done::FreeBusy(Ok(FreeBusyOutcome {
            not_found: vec!["bob@example.com".into()],
            ..FreeBusyOutcome::default()
        }))));
        let lines = sent(&a);
        assert_eq!(lines[0], "* NOTFOUND bob@example.com");
        assert_eq!(lines[1], "NO 000 No free/busy information found");
        assert_eq!(lines[2], LOCK_STEP);
        assert_eq!(lines[3], LOCK_STEP);
        assert_eq!(lines.len(), 4);
        assert_eq!(sent(&s.handle(line("NOOP"))), vec!["OK 000 NOOP"]);
    }

    #[test]
    fn data_decoding() {
        assert_eq!(latin1(b"Caf\xe9"), "Café");
        assert_eq!(decode_data("Café".as_bytes()), "Café");
        assert_eq!(decode_data(b"Caf\xe9"), "Café");
    }
}
