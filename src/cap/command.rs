//! The CSTP command line (spec §2.2, the GW consolidation of every form the drafts use).
//!
//! ```text
//! command-line = [tag SP] verb [sep args] [SP ";" SP cmdid-or-text] CRLF
//! sep          = ":" / 1*SP          ; "SENDDATA:10" (CONTINUE examples) and "SENDDATA 10"
//! tag          = 1*(ALPHA / DIGIT)   ; the 1999 IMC examples: "10 SENDDATA"
//! ```
//!
//! Verbs match case-insensitively (spec Q12). A first token that is not a verb but is followed
//! by one is a tag, echoed on the status lines of the reply (spec §2.2, Q14). The text after a
//! lone `;` is a CMDID for ABORT and CONTINUE (cap-04 §9.2.2 writes `ABORT ; xyz12346`) and
//! debug text otherwise. nom parses one complete line; the codec has already split lines.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{space0, space1};
use nom::combinator::{all_consuming, opt, rest};
use nom::multi::fold_many0;
use nom::sequence::preceded;
use nom::{IResult, Parser};

/// A CSTP verb (cap-04 §7.1; NOOP from cap-05 §7.1.12; GENERATEUID is a GW extension, §2.6.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// CAPABILITY (cap-04 §7.1.5).
    Capability,
    /// AUTHENTICATE (cap-04 §7.1.3).
    Authenticate,
    /// STARTTLS (cap-04 §7.1.10).
    StartTls,
    /// IDENTIFY (cap-04 §7.1.8).
    Identify,
    /// CALIDEXPAND (cap-04 §7.1.4).
    CalidExpand,
    /// UPNEXPAND (cap-04 §7.1.8.1).
    UpnExpand,
    /// SENDDATA (cap-04 §7.1.8).
    SendData,
    /// ABORT (cap-04 §7.1.2).
    Abort,
    /// CONTINUE (cap-04 §7.1.6).
    Continue,
    /// DISCONNECT (cap-04 §7.1.7).
    Disconnect,
    /// NOOP (cap-05 §7.1.12).
    Noop,
    /// GENERATEUID (spec §2.6.11).
    GenerateUid,
}

impl Verb {
    /// The verb for a token, ignoring case.
    pub fn from_token(token: &str) -> Option<Verb> {
        const VERBS: [(&str, Verb); 14] = [
            ("CAPABILITY", Verb::Capability),
            // The drafts' own misspellings: cap-04 §9.1.1 "CAPABILTY", cap-02..05 §7.1.5
            // "CAPABILTIY". A client copied from them still gets its capabilities.
            ("CAPABILTY", Verb::Capability),
            ("CAPABILTIY", Verb::Capability),
            ("AUTHENTICATE", Verb::Authenticate),
            ("STARTTLS", Verb::StartTls),
            ("IDENTIFY", Verb::Identify),
            ("CALIDEXPAND", Verb::CalidExpand),
            ("UPNEXPAND", Verb::UpnExpand),
            ("SENDDATA", Verb::SendData),
            ("ABORT", Verb::Abort),
            ("CONTINUE", Verb::Continue),
            ("DISCONNECT", Verb::Disconnect),
            ("NOOP", Verb::Noop),
            ("GENERATEUID", Verb::GenerateUid),
        ];
        VERBS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .map(|(_, v)| *v)
    }

    /// The verb as written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Capability => "CAPABILITY",
            Verb::Authenticate => "AUTHENTICATE",
            Verb::StartTls => "STARTTLS",
            Verb::Identify => "IDENTIFY",
            Verb::CalidExpand => "CALIDEXPAND",
            Verb::UpnExpand => "UPNEXPAND",
            Verb::SendData => "SENDDATA",
            Verb::Abort => "ABORT",
            Verb::Continue => "CONTINUE",
            Verb::Disconnect => "DISCONNECT",
            Verb::Noop => "NOOP",
            Verb::GenerateUid => "GENERATEUID",
        }
    }
}

/// A command with its arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// CAPABILITY.
    Capability,
    /// AUTHENTICATE mechanism [initial-response].
    Authenticate {
        /// The SASL mechanism name, upper-cased.
        mechanism: String,
        /// The base64 initial response, if given on the command line (`=` means empty).
        initial: Option<String>,
    },
    /// STARTTLS.
    StartTls,
    /// IDENTIFY upn.
    Identify {
        /// The UPN.
        upn: String,
    },
    /// CALIDEXPAND calid.
    CalidExpand {
        /// The CalID.
        calid: String,
    },
    /// UPNEXPAND upn.
    UpnExpand {
        /// The UPN.
        upn: String,
    },
    /// SENDDATA [latency].
    SendData {
        /// Seconds within which the client wants an answer (cap-04 §4.5).
        latency: Option<u64>,
    },
    /// ABORT [cmdid].
    Abort {
        /// The command to abort.
        cmdid: Option<String>,
    },
    /// CONTINUE [latency] [; cmdid].
    Continue {
        /// The next deadline, in seconds.
        latency: Option<u64>,
        /// The command to continue.
        cmdid: Option<String>,
    },
    /// DISCONNECT.
    Disconnect,
    /// NOOP.
    Noop,
    /// GENERATEUID [n].
    GenerateUid {
        /// How many UIDs (1 when not given).
        count: u32,
    },
}

impl Command {
    /// The command's verb.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Capability => Verb::Capability,
            Command::Authenticate { .. } => Verb::Authenticate,
            Command::StartTls => Verb::StartTls,
            Command::Identify { .. } => Verb::Identify,
            Command::CalidExpand { .. } => Verb::CalidExpand,
            Command::UpnExpand { .. } => Verb::UpnExpand,
            Command::SendData { .. } => Verb::SendData,
            Command::Abort { .. } => Verb::Abort,
            Command::Continue { .. } => Verb::Continue,
            Command::Disconnect => Verb::Disconnect,
            Command::Noop => Verb::Noop,
            Command::GenerateUid { .. } => Verb::GenerateUid,
        }
    }
}

/// A parsed line: the optional tag and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// The client's tag, echoed on status lines.
    pub tag: Option<String>,
    /// The command.
    pub command: Command,
}

/// Why a line is not a command. The tag, when one was recognised, is kept for the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Nothing on the line (ignored by the session, spec §2.2).
    #[error("empty line")]
    Empty,
    /// Bytes outside US-ASCII on a command line (spec §2.1).
    #[error("command lines must be US-ASCII")]
    NotAscii,
    /// The first token is no verb (wire `9.0`).
    #[error("unknown command {0:?}")]
    UnknownVerb(String),
    /// A known verb with unusable arguments (wire `9.0` with the reason, spec §2.8).
    #[error("{verb}: {reason}")]
    BadArguments {
        /// The tag, if any.
        tag: Option<String>,
        /// The verb.
        verb: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The largest SENDDATA/CONTINUE latency accepted (one day); more is surely a typo.
pub const MAX_LATENCY_SECS: u64 = 86_400;
/// The most UIDs one GENERATEUID hands out.
pub const MAX_GENERATED_UIDS: u32 = 100;

fn is_token_char(c: char) -> bool {
    !c.is_ascii_whitespace() && c != ':' && c != ';'
}

fn is_arg_char(c: char) -> bool {
    !c.is_ascii_whitespace() && c != ';'
}

/// `token` followed by optional `:`/space-separated arguments and an optional `; trailer`.
struct RawLine<'a> {
    first: &'a str,
    /// The tokens after `first`, in order (one vector, allocated only when there is one).
    args: Vec<&'a str>,
    trailer: Option<&'a str>,
}

fn raw_line(input: &str) -> IResult<&str, RawLine<'_>> {
    let (input, _) = space0(input)?;
    let (input, first) = take_while1(is_token_char)(input)?;
    // `fold_many0` from an empty vector: a line without arguments allocates nothing.
    let (input, args) = fold_many0(
        preceded(alt((tag(":"), space1)), take_while1(is_arg_char)),
        Vec::new,
        |mut acc: Vec<&str>, arg| {
            acc.push(arg);
            acc
        },
    )
    .parse(input)?;
    let (input, _) = space0(input)?;
    let (input, trailer) = opt(preceded((tag(";"), space0), rest)).parse(input)?;
    let (input, _) = space0(input)?;
    Ok((
        input,
        RawLine {
            first,
            args,
            // ASCII blanks only, as between arguments: `ABORT ; x\x0b` and `ABORT x\x0b` name
            // the same command id.
            trailer: trailer.map(str::trim_ascii).filter(|t| !t.is_empty()),
        },
    ))
}

/// Parses one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Tagged, LineError> {
    // US-ASCII first (one fast scan); ASCII is valid UTF-8, so the conversion cannot fail.
    if !line.is_ascii() {
        return Err(LineError::NotAscii);
    }
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotAscii)?;
    if text.trim().is_empty() {
        return Err(LineError::Empty);
    }
    let (_, raw) = all_consuming(raw_line)
        .parse(text)
        .map_err(|_| LineError::UnknownVerb(first_word(text)))?;
    // "SENDDATA:10": the verb token stops at ':'; "10 SENDDATA": a tag before a verb.
    let (tag, verb, args) = match Verb::from_token(raw.first) {
        Some(verb) => (None, verb, raw.args.as_slice()),
        None => match raw.args.split_first() {
            Some((second, rest)) => match Verb::from_token(second) {
                Some(verb) if raw.first.chars().all(|c| c.is_ascii_alphanumeric()) => {
                    (Some(raw.first.to_owned()), verb, rest)
                }
                _ => return Err(LineError::UnknownVerb(raw.first.to_owned())),
            },
            None => return Err(LineError::UnknownVerb(raw.first.to_owned())),
        },
    };
    let bad = |reason: String| LineError::BadArguments {
        tag: tag.clone(),
        verb: verb.name(),
        reason,
    };
    let no_args = |args: &[&str]| -> Result<(), LineError> {
        if args.is_empty() {
            Ok(())
        } else {
            Err(bad(format!(
                "takes no arguments (got {:?})",
                args.join(" ")
            )))
        }
    };
    let one_arg = |args: &[&str], what: &str| -> Result<String, LineError> {
        match args {
            [one] => Ok((*one).to_owned()),
            [] => Err(bad(format!("needs a {what}"))),
            _ => Err(bad(format!("takes one {what}, got {}", args.len()))),
        }
    };
    let command = match verb {
        Verb::Capability => no_args(args).map(|_| Command::Capability)?,
        Verb::StartTls => no_args(args).map(|_| Command::StartTls)?,
        Verb::Disconnect => no_args(args).map(|_| Command::Disconnect)?,
        Verb::Noop => no_args(args).map(|_| Command::Noop)?,
        Verb::Authenticate => match args {
            [mech] => Command::Authenticate {
                mechanism: mech.to_ascii_uppercase(),
                initial: None,
            },
            [mech, ir] => Command::Authenticate {
                mechanism: mech.to_ascii_uppercase(),
                initial: Some((*ir).to_owned()),
            },
            [] => return Err(bad("needs a SASL mechanism, e.g. AUTHENTICATE PLAIN".into())),
            _ => {
                return Err(bad(
                    "takes a mechanism and at most one base64 initial response".into(),
                ));
            }
        },
        Verb::Identify => Command::Identify {
            upn: one_arg(args, "UPN (user@realm)")?,
        },
        Verb::CalidExpand => Command::CalidExpand {
            calid: one_arg(args, "CalID")?,
        },
        Verb::UpnExpand => Command::UpnExpand {
            upn: one_arg(args, "UPN (user@realm)")?,
        },
        Verb::SendData => match args {
            [] => Command::SendData { latency: None },
            [n] => Command::SendData {
                latency: Some(latency(n).map_err(bad)?),
            },
            _ => return Err(bad("takes at most a latency in seconds".into())),
        },
        Verb::Abort => match (args, raw.trailer) {
            ([], cmdid) => Command::Abort {
                cmdid: cmdid.map(str::to_owned),
            },
            ([id], None) => Command::Abort {
                cmdid: Some((*id).to_owned()),
            },
            _ => return Err(bad("takes at most a command id".into())),
        },
        Verb::Continue => match args {
            [] => Command::Continue {
                latency: None,
                cmdid: raw.trailer.map(str::to_owned),
            },
            [n] if n.bytes().all(|b| b.is_ascii_digit()) => Command::Continue {
                latency: Some(latency(n).map_err(bad)?),
                cmdid: raw.trailer.map(str::to_owned),
            },
            [id] if raw.trailer.is_none() => Command::Continue {
                latency: None,
                cmdid: Some((*id).to_owned()),
            },
            [n, id] if raw.trailer.is_none() => Command::Continue {
                latency: Some(latency(n).map_err(bad)?),
                cmdid: Some((*id).to_owned()),
            },
            _ => return Err(bad("takes [latency] [; command id]".into())),
        },
        Verb::GenerateUid => match args {
            [] => Command::GenerateUid { count: 1 },
            [n] => match n.parse::<u32>() {
                Ok(c) if (1..=MAX_GENERATED_UIDS).contains(&c) => Command::GenerateUid { count: c },
                _ => {
                    return Err(bad(format!(
                        "the count must be a number from 1 to {MAX_GENERATED_UIDS}, not {n:?}"
                    )));
                }
            },
            _ => return Err(bad("takes at most a count".into())),
        },
    };
    Ok(Tagged { tag, command })
}

fn latency(n: &str) -> Result<u64, String> {
    match n.parse::<u64>() {
        Ok(s) if (1..=MAX_LATENCY_SECS).contains(&s) => Ok(s),
        _ => Err(format!(
            "the latency must be whole seconds from 1 to {MAX_LATENCY_SECS}, not {n:?}"
        )),
    }
}

fn first_word(text: &str) -> String {
    text.split_ascii_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Tagged {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn cmd(line: &str) -> Command {
        ok(line).command
    }

    #[test]
    fn verbs_ignore_case() {
        assert_eq!(cmd("CAPABILITY"), Command::Capability);
        assert_eq!(cmd("capability"), Command::Capability);
        assert_eq!(cmd("  Noop  "), Command::Noop);
        assert_eq!(cmd("DISCONNECT"), Command::Disconnect);
        assert_eq!(cmd("starttls"), Command::StartTls);
        assert_eq!(cmd("CAPABILTY"), Command::Capability);
        assert_eq!(cmd("CAPABILTIY"), Command::Capability);
    }

    #[test]
    fn latency_forms_of_the_drafts() {
        assert_eq!(cmd("SENDDATA"), Command::SendData { latency: None });
        assert_eq!(cmd("SENDDATA:10"), Command::SendData { latency: Some(10) });
        assert_eq!(cmd("SENDDATA 3"), Command::SendData { latency: Some(3) });
        assert_eq!(
            cmd("CONTINUE:10"),
            Command::Continue {
                latency: Some(10),
                cmdid: None
            }
        );
        assert_eq!(
            cmd("CONTINUE 10 ; xyz12346"),
            Command::Continue {
                latency: Some(10),
                cmdid: Some("xyz12346".into())
            }
        );
        assert_eq!(
            cmd("CONTINUE"),
            Command::Continue {
                latency: None,
                cmdid: None
            }
        );
        assert!(matches!(
            parse(b"SENDDATA 0"),
            Err(LineError::BadArguments { .. })
        ));
        assert!(matches!(
            parse(b"SENDDATA soon"),
            Err(LineError::BadArguments { .. })
        ));
    }

    #[test]
    fn abort_forms_of_the_drafts() {
        assert_eq!(cmd("ABORT"), Command::Abort { cmdid: None });
        assert_eq!(
            cmd("ABORT xyz"),
            Command::Abort {
                cmdid: Some("xyz".into())
            }
        );
        assert_eq!(
            cmd("ABORT ; xyz12346"),
            Command::Abort {
                cmdid: Some("xyz12346".into())
            }
        );
    }

    /// Found by the `cap_command` fuzz target: the trailer was trimmed with Unicode rules
    /// (which strip a vertical tab) while arguments end at ASCII blanks only, so one command
    /// id read differently in its two forms.
    #[test]
    fn command_id_is_the_same_in_both_forms() {
        let id = Some("x\u{b}".to_owned());
        assert_eq!(cmd("ABORT x\u{b}"), Command::Abort { cmdid: id.clone() });
        assert_eq!(cmd("ABORT ; x\u{b}"), Command::Abort { cmdid: id.clone() });
        assert_eq!(
            cmd("CONTINUE ; x\u{b} "),
            Command::Continue {
                latency: None,
                cmdid: id
            }
        );
    }

    #[test]
    fn tags_of_the_imc_examples() {
        let t = ok("10 SENDDATA");
        assert_eq!(t.tag.as_deref(), Some("10"));
        assert_eq!(t.command, Command::SendData { latency: None });
        let t = ok("a1 capability");
        assert_eq!(t.tag.as_deref(), Some("a1"));
        // A tag must precede a verb.
        assert_eq!(parse(b"10 FROB"), Err(LineError::UnknownVerb("10".into())));
        // Bad arguments keep the tag for the reply.
        match parse(b"7 SENDDATA x") {
            Err(LineError::BadArguments { tag, .. }) => assert_eq!(tag.as_deref(), Some("7")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn authenticate() {
        assert_eq!(
            cmd("AUTHENTICATE plain"),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: None
            }
        );
        assert_eq!(
            cmd("AUTHENTICATE PLAIN AGJpbGwAc2VjcmV0"),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGJpbGwAc2VjcmV0".into())
            }
        );
        assert!(matches!(
            parse(b"AUTHENTICATE"),
            Err(LineError::BadArguments { .. })
        ));
    }

    #[test]
    fn one_argument_commands() {
        assert_eq!(
            cmd("IDENTIFY team@example.com"),
            Command::Identify {
                upn: "team@example.com".into()
            }
        );
        assert_eq!(
            cmd("CALIDEXPAND cap://cal.example.com/calid14"),
            Command::CalidExpand {
                calid: "cap://cal.example.com/calid14".into()
            }
        );
        assert_eq!(
            cmd("UPNEXPAND group@example.com"),
            Command::UpnExpand {
                upn: "group@example.com".into()
            }
        );
        assert!(matches!(
            parse(b"IDENTIFY"),
            Err(LineError::BadArguments { .. })
        ));
        assert!(matches!(
            parse(b"CAPABILITY now"),
            Err(LineError::BadArguments { .. })
        ));
    }

    #[test]
    fn generateuid() {
        assert_eq!(cmd("GENERATEUID"), Command::GenerateUid { count: 1 });
        assert_eq!(cmd("GENERATEUID 5"), Command::GenerateUid { count: 5 });
        assert!(parse(b"GENERATEUID 0").is_err());
        assert!(parse(b"GENERATEUID 1000").is_err());
    }

    #[test]
    fn junk() {
        assert_eq!(parse(b""), Err(LineError::Empty));
        assert_eq!(parse(b"   "), Err(LineError::Empty));
        assert_eq!(parse(b"FROB"), Err(LineError::UnknownVerb("FROB".into())));
        assert_eq!(
            parse(b"CAPABILTIES"),
            Err(LineError::UnknownVerb("CAPABILTIES".into()))
        );
        assert_eq!(parse("NOOP \u{e9}".as_bytes()), Err(LineError::NotAscii));
        assert_eq!(parse(b"\xff"), Err(LineError::NotAscii));
        assert!(matches!(parse(b";;;"), Err(LineError::UnknownVerb(_))));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse(&line);
        }
    }
}
