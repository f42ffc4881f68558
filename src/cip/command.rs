//! CIP command lines (draft-ietf-calsch-cip-00 §2, with the GW readings of spec §7.3).
//!
//! ```abnf
//! command      = verb [1*WSP arguments] [*WSP "+"]      ; "+" marks a data-bearing command
//! verb         = 1*ALPHA                                 ; case-insensitive (§7.3 #22)
//! authenticate = "AUTHENTICATE" 1*WSP mechanism 1*WSP identity 1*WSP password
//!                ; LOGIN only; the password is the rest of the line (§7.3 #18)
//! sendevent    = "SENDEVENT" *WSP "+"                    ; §2.2, both "SENDEVENT +" and "SENDEVENT+"
//! rsvp         = ("RSVP" / "RESPOND") *WSP "+"           ; §2.3; RESPOND as in §1.7 (§7.3 #20)
//! freebusy     = "FREEBUSY" *WSP "+"                     ; §2.4
//! help / quit / logout / noop                            ; gateway extensions for people at a terminal
//! ```

use crate::secret::Secret;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{take_till1, take_while, take_while1};
use nom::combinator::{all_consuming, opt, rest};
use nom::sequence::preceded;

/// A parsed CIP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `AUTHENTICATE LOGIN <identity> <password>`.
    Login {
        /// A user (`alice`, `alice@example.com`) or a peer server id (`a.com`).
        identity: String,
        /// The rest of the line.
        password: Secret<String>,
    },
    /// `SENDEVENT +`: an event follows.
    SendEvent,
    /// `RSVP +` / `RESPOND +`: an answer follows.
    Rsvp,
    /// `FREEBUSY +`: a free-busy request follows.
    FreeBusy,
    /// `HELP` (extension).
    Help,
    /// `QUIT` / `LOGOUT` (extension; EOF also ends a session).
    Quit,
    /// `NOOP` (extension).
    Noop,
}

impl Command {
    /// True for the commands followed by a dot-terminated data block.
    pub fn takes_data(&self) -> bool {
        matches!(self, Command::SendEvent | Command::Rsvp | Command::FreeBusy)
    }
}

/// Why a line is not a command (each becomes `NO 001 <text>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nothing but blanks.
    #[error("Empty command; type HELP for the list of commands")]
    Empty,
    /// Not a CIP verb.
    #[error("Unknown command {0}; type HELP for the list of commands")]
    UnknownVerb(String),
    /// A data command without its `+`.
    #[error("{0} needs data: end the line with +, send the data, then a line with a single .")]
    NeedsData(&'static str),
    /// A `+` on a command that takes no data.
    #[error("{0} takes no data")]
    UnexpectedData(&'static str),
    /// Arguments that do not fit the verb.
    #[error("{0}")]
    BadArguments(String),
    /// An AUTHENTICATE mechanism other than LOGIN.
    #[error("Unknown authentication mechanism {0}; only LOGIN is supported")]
    UnknownMechanism(String),
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `verb = 1*ALPHA`
fn verb(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_alphabetic()).parse(i)
}

/// `1*WSP token`
fn token(i: &str) -> IResult<&str, &str> {
    preceded(take_while1(is_wsp), take_till1(is_wsp)).parse(i)
}

/// `AUTHENTICATE` arguments: `1*WSP mechanism 1*WSP identity 1*WSP password`.
fn login_args(i: &str) -> IResult<&str, (&str, Option<&str>, Option<&str>)> {
    all_consuming((token, opt(token), opt(preceded(take_while1(is_wsp), rest)))).parse(i)
}

/// Parses one command line (already without its line end; ISO 8859-1 decoded).
pub fn parse(line: &str) -> Result<Command, CommandError> {
    let line = line.trim_matches(|c: char| c == ' ' || c == '\t');
    if line.is_empty() {
        return Err(CommandError::Empty);
    }
    let (args, name) = match verb(line) {
        Ok(v) => v,
        Err(_) => {
            let shown: String = line.chars().take(40).collect();
            return Err(CommandError::UnknownVerb(shown));
        }
    };
    // Something glued to the verb other than blanks or '+' makes it another word.
    if let Some(c) = args.chars().next()
        && !is_wsp(c)
        && c != '+'
    {
        let shown: String = line
            .split(is_wsp)
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        return Err(CommandError::UnknownVerb(shown));
    }
    // Upper-cased on the stack: every verb fits in 12 octets, a longer word is no verb.
    let mut buf = [0u8; 12];
    let upper = match buf.get_mut(..name.len()) {
        Some(b) => {
            b.copy_from_slice(name.as_bytes());
            b.make_ascii_uppercase();
            std::str::from_utf8(b).unwrap_or_default()
        }
        None => "",
    };
    let (body, plus) = match args.trim_end().strip_suffix('+') {
        Some(b) => (b.trim_end(), true),
        None => (args.trim_end(), false),
    };
    let no_args = |verb: &'static str, cmd: Command| -> Result<Command, CommandError> {
        if !body.trim().is_empty() {
            return Err(CommandError::BadArguments(format!(
                "{verb} takes no arguments"
            )));
        }
        match (cmd.takes_data(), plus) {
            (true, false) => Err(CommandError::NeedsData(verb)),
            (false, true) => Err(CommandError::UnexpectedData(verb)),
            _ => Ok(cmd),
        }
    };
    match upper {
        "SENDEVENT" => no_args("SENDEVENT", Command::SendEvent),
        "RSVP" => no_args("RSVP", Command::Rsvp),
        "RESPOND" => no_args("RESPOND", Command::Rsvp),
        "FREEBUSY" => no_args("FREEBUSY", Command::FreeBusy),
        "HELP" => Ok(Command::Help),
        "QUIT" => no_args("QUIT", Command::Quit),
        "LOGOUT" => no_args("LOGOUT", Command::Quit),
        "NOOP" => no_args("NOOP", Command::Noop),
        "AUTHENTICATE" => {
            // The password may legitimately end in '+', so use the raw arguments here. Blanks
            // before a stray CR/LF end are trimmed too, as they are at the end of any line.
            let raw = args.trim_end_matches(['\r', '\n', ' ', '\t']);
            let usage = || {
                CommandError::BadArguments("Usage: AUTHENTICATE LOGIN <identity> <password>".into())
            };
            let (_, (mechanism, identity, password)) = login_args(raw).map_err(|_| usage())?;
            if !mechanism.eq_ignore_ascii_case("LOGIN") {
                return Err(CommandError::UnknownMechanism(
                    mechanism.chars().take(40).collect(),
                ));
            }
            match (identity, password) {
                (Some(id), Some(pw)) if !pw.is_empty() => Ok(Command::Login {
                    identity: id.to_owned(),
                    password: Secret::new(pw.to_owned()),
                }),
                _ => Err(usage()),
            }
        }
        _ => Err(CommandError::UnknownVerb(name.chars().take(40).collect())),
    }
}

/// Skips leading blanks (exposed for the session's tolerance of blank lines).
pub fn is_blank(line: &str) -> bool {
    take_while::<_, &str, ()>(|c: char| is_wsp(c))
        .parse(line)
        .map(|(rest, _)| rest.is_empty())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(id: &str, pw: &str) -> Command {
        Command::Login {
            identity: id.into(),
            password: Secret::new(pw.into()),
        }
    }

    #[test]
    fn table() {
        let ok: &[(&str, Command)] = &[
            ("SENDEVENT +", Command::SendEvent),
            ("SENDEVENT+", Command::SendEvent),
            ("sendevent   +  ", Command::SendEvent),
            ("RSVP +", Command::Rsvp),
            ("Respond+", Command::Rsvp),
            ("FREEBUSY +", Command::FreeBusy),
            ("  HELP", Command::Help),
            ("help me", Command::Help),
            ("QUIT", Command::Quit),
            ("logout", Command::Quit),
            ("NOOP", Command::Noop),
            (
                "AUTHENTICATE LOGIN a.com PASSWORD_A",
                login("a.com", "PASSWORD_A"),
            ),
            (
                "authenticate login alice alicepw",
                login("alice", "alicepw"),
            ),
            (
                "AUTHENTICATE LOGIN alice pass with spaces",
                login("alice", "pass with spaces"),
            ),
            ("AUTHENTICATE LOGIN alice ends+", login("alice", "ends+")),
            ("AUTHENTICATE\tLOGIN\talice\tpw", login("alice", "pw")),
        ];
        for (line, want) in ok {
            assert_eq!(parse(line).as_ref(), Ok(want), "{line:?}");
        }
        let bad: &[(&str, CommandError)] = &[
            ("", CommandError::Empty),
            ("   ", CommandError::Empty),
            ("SENDEVENT", CommandError::NeedsData("SENDEVENT")),
            ("FREEBUSY", CommandError::NeedsData("FREEBUSY")),
            ("QUIT +", CommandError::UnexpectedData("QUIT")),
            (
                "SELECT SERVER a.com",
                CommandError::UnknownVerb("SELECT".into()),
            ),
            (
                "SENDEVENTS +",
                CommandError::UnknownVerb("SENDEVENTS".into()),
            ),
            ("SEND3VENT +", CommandError::UnknownVerb("SEND3VENT".into())),
            ("123", CommandError::UnknownVerb("123".into())),
            (
                "AUTHENTICATE CRAM-MD5 x y",
                CommandError::UnknownMechanism("CRAM-MD5".into()),
            ),
        ];
        for (line, want) in bad {
            assert_eq!(parse(line).as_ref(), Err(want), "{line:?}");
        }
        for line in [
            "AUTHENTICATE",
            "AUTHENTICATE LOGIN",
            "AUTHENTICATE LOGIN alice",
            "SENDEVENT x +",
        ] {
            assert!(
                matches!(parse(line), Err(CommandError::BadArguments(_))),
                "{line:?}"
            );
        }
    }

    /// Found by the `cip_command` fuzz target: `pw \r` gave the password `pw ` (the line's
    /// blanks were trimmed before the CR was), while `pw ` and `pw` give `pw`.
    #[test]
    fn password_ignores_blanks_before_a_stray_line_end() {
        for line in [
            "AUTHENTICATE LOGIN alice pw \r",
            "AUTHENTICATE LOGIN alice pw\t\r\n",
        ] {
            assert_eq!(parse(line), Ok(login("alice", "pw")), "{line:?}");
        }
        assert!(matches!(
            parse("AUTHENTICATE LOGIN alice \r"),
            Err(CommandError::BadArguments(_))
        ));
    }

    #[test]
    fn password_never_in_debug() {
        let c = parse("AUTHENTICATE LOGIN alice s3cr3t").unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn arbitrary_lines_do_not_panic() {
        for line in [
            "\u{0}",
            "é+",
            "+",
            "++",
            "AUTHENTICATE ",
            "A\u{7f}",
            "AUTHENTICATE LOGIN é é",
        ] {
            let _ = parse(line);
        }
        assert!(is_blank(" \t"));
        assert!(!is_blank(" x"));
    }
}
