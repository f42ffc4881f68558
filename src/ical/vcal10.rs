//! vCalendar 1.0 (and draft-ietf-calsch-cip-00 spelling) → iCalendar 2.0
//! normaliser.
//!
//! Sources: the vCalendar 1.0 specification (Versit, 1996: §2.1 property
//! syntax, QUOTED-PRINTABLE and CHARSET, attendee STATUS/ROLE/RSVP/EXPECT,
//! TRANSP 0/1, DCREATED), draft-ietf-calsch-cip-00 §1.3, §2.2, §2.3 and §3.0
//! (the examples), and the gateway decisions of `shared/spec/cap-cstp.md`
//! §7.3 #7, #8, #9, #11, #12, #13 and #14. Output follows RFC 5545 (§3.1
//! folding, §3.3.11 TEXT escaping, §3.6 components, §3.7.4 VERSION, §3.7.3
//! PRODID, §3.8.7.2 DTSTAMP) and RFC 5546 (ORGANIZER/ATTENDEE roles).
//!
//! Every tolerance is gated by a named flag of [`Quirks`]; with
//! [`Quirks::strict`] the input must already be well-formed, and quirky input
//! yields an error or passes through unconverted.
//!
//! # Dialects
//!
//! An input that declares `VERSION:2.0` is treated as iCalendar: it is
//! unfolded per RFC 5545 and parsed strictly, and passes through with minimal
//! changes (QP decoding, legacy date-times, legacy attendee forms, DTSTAMP
//! and PRODID when missing). Anything else (VERSION:1.0, a bare VEVENT, a
//! bare property list) is treated as vCalendar 1.0 / CIP, where the line
//! rules of §7.3 #7–#9 apply and TEXT values get RFC 5545 escaping.
//!
//! # Pipeline
//!
//! 1. QP soft line breaks are joined (`quoted_printable`), before any other
//!    line rule.
//! 2. Physical lines become logical lines: empty lines are ignored, a line
//!    starting with SP/HTAB continues the previous one, then #9
//!    (`missing_colon`) and #8(c) (`broken_line_rejoin`).
//! 3. Each logical line is parsed (tolerantly under `relaxed_spacing`).
//! 4. BEGIN/END nesting; a bare list is wrapped (`bare_property_list`).
//! 5. Property conversions (QP/CHARSET, names, date-times, attendees,
//!    escaping), component conversions (owner → ORGANIZER, STATUS,
//!    DTSTAMP) and calendar conversions (VERSION, PRODID).

use std::borrow::Cow;

use nom::{
    IResult, Parser,
    character::complete::{char, space0},
    combinator::{all_consuming, opt, rest},
    multi::{many0, separated_list1},
    sequence::preceded,
};
use thiserror::Error;

use crate::ical::component::{Component, ComponentError, Item, MAX_LINES, build_items};
use crate::ical::contentline::{
    ContentLine, ContentLineError, Param, escape_text_unescaped, is_name_char, name, param_value,
    shorten, unfold_lines,
};
use crate::ical::datetime::{DateOrDateTime, DateTime, DateTimeError, Duration, Zone};
use crate::ical::scheduling::Address;

/// Named compatibility flags, one per tolerance (cap-cstp.md §7.3). All on by
/// default; [`Quirks::strict`] turns all off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quirks {
    /// §7.3 #7: trim whitespace around names, `;`, parameter names, `=`,
    /// parameter values and the start of values (`PROP: value`,
    /// `ATTENDEE; ROLE = OWNER: …`). Also accepts vCalendar 1.0 value-less
    /// parameters (`;QUOTED-PRINTABLE` becomes `ENCODING=QUOTED-PRINTABLE`,
    /// other bare parameters are dropped).
    pub relaxed_spacing: bool,
    /// §7.3 #8(c): a line with no `:` (or whose text before the first `:`/`;`
    /// is not a property name), not starting with a known property name and
    /// whitespace, continues the previous logical line (word-processor wraps
    /// such as `bill@ab` / `c.com`). It is appended as is, except that one
    /// space is restored when the continued piece has whitespace inside its
    /// value but not at its end (the wrap ate a space: `The Big` / `2000!`
    /// as the lines appear in the seed copy of cip-00).
    pub broken_line_rejoin: bool,
    /// §7.3 #9: `UID unique identifier of event` (a known upper-case property
    /// name, whitespace, value, no colon) is split into name and value.
    pub missing_colon: bool,
    /// §7.3 #11: loose properties without BEGIN/END are wrapped in one VEVENT
    /// (or the wrapper given to [`normalise_with_wrapper`]) inside a VCALENDAR.
    pub bare_property_list: bool,
    /// §7.3 #12: `YYYYMMDDTHHMM[SS]` with `Z`, `±HHMM`, `±HH:MM` or nothing,
    /// with whitespace; offsets converted to UTC. Applies to DTSTART, DTEND,
    /// DUE, DTSTAMP, CREATED, LAST-MODIFIED, RECURRENCE-ID, EXDATE, RDATE and
    /// COMPLETED (vCalendar `;`-separated EXDATE/RDATE lists too).
    pub legacy_datetime: bool,
    /// §7.3 #13: `SUBJECT` → SUMMARY, `RESPONSE-SEQUENCE` →
    /// X-CIP-RESPONSE-SEQUENCE, vCalendar `DCREATED` → CREATED, TRANSP `0`/`1`
    /// → OPAQUE/TRANSPARENT, CLASS and TRANSP upper-cased; a vCalendar 1.0
    /// RRULE/EXRULE (no `FREQ=`) is not converted but renamed X-VCAL-RRULE /
    /// X-VCAL-EXRULE so the event is still accepted upstream (the recurrence
    /// is lost; reported as `vcal_rrule_to_x_vcal`).
    pub legacy_names: bool,
    /// §7.3 #13: attendee `STATUS=` → `PARTSTAT=` (vCalendar values mapped),
    /// `RSVP=YES/NO` → TRUE/FALSE, `ROLE=ATTENDEE`/`DELEGATE` →
    /// REQ-PARTICIPANT, `EXPECT=` → ROLE; a STATUS property that is not a
    /// valid status of its component becomes `X-CIP-STATUS` (see
    /// [`responder_status`]).
    pub attendee_status: bool,
    /// §7.3 #14: ATTENDEE/ORGANIZER values `Name <addr>`, `addr`, `<addr>`,
    /// `MAILTO:addr` become `;CN=Name:mailto:addr` (domain lower-cased).
    pub attendee_value_forms: bool,
    /// vCalendar 1.0 §2.1.3: `ENCODING=QUOTED-PRINTABLE` values are decoded
    /// (soft line breaks joined first) using `CHARSET` (UTF-8, US-ASCII,
    /// ISO-8859-1/Latin-1, windows-1252; unknown → error); ENCODING and
    /// CHARSET parameters are dropped.
    pub quoted_printable: bool,
    /// cip-00 §1.3: the `ATTENDEE;ROLE=OWNER` (vCalendar also
    /// `ROLE=ORGANIZER`) becomes ORGANIZER when there is none, and stays as
    /// `ATTENDEE;ROLE=CHAIR;PARTSTAT=ACCEPTED` (an explicit status is kept).
    pub owner_to_organizer: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            relaxed_spacing: true,
            broken_line_rejoin: true,
            missing_colon: true,
            bare_property_list: true,
            legacy_datetime: true,
            legacy_names: true,
            attendee_status: true,
            attendee_value_forms: true,
            quoted_printable: true,
            owner_to_organizer: true,
        }
    }
}

impl Quirks {
    /// Every flag's name, as reported in [`Normalised::applied`].
    pub const NAMES: [&'static str; 10] = [
        "relaxed_spacing",
        "broken_line_rejoin",
        "missing_colon",
        "bare_property_list",
        "legacy_datetime",
        "legacy_names",
        "attendee_status",
        "attendee_value_forms",
        "quoted_printable",
        "owner_to_organizer",
    ];

    /// All flags off.
    pub fn strict() -> Self {
        Quirks {
            relaxed_spacing: false,
            broken_line_rejoin: false,
            missing_colon: false,
            bare_property_list: false,
            legacy_datetime: false,
            legacy_names: false,
            attendee_status: false,
            attendee_value_forms: false,
            quoted_printable: false,
            owner_to_organizer: false,
        }
    }

    fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "relaxed_spacing" => &mut self.relaxed_spacing,
            "broken_line_rejoin" => &mut self.broken_line_rejoin,
            "missing_colon" => &mut self.missing_colon,
            "bare_property_list" => &mut self.bare_property_list,
            "legacy_datetime" => &mut self.legacy_datetime,
            "legacy_names" => &mut self.legacy_names,
            "attendee_status" => &mut self.attendee_status,
            "attendee_value_forms" => &mut self.attendee_value_forms,
            "quoted_printable" => &mut self.quoted_printable,
            "owner_to_organizer" => &mut self.owner_to_organizer,
            _ => return None,
        })
    }

    /// Set a flag by its name (for configuration); `false` if unknown.
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        match self.flag_mut(name) {
            Some(f) => {
                *f = on;
                true
            }
            None => false,
        }
    }

    /// Read a flag by its name; `None` if unknown.
    pub fn get(&self, name: &str) -> Option<bool> {
        let mut copy = *self;
        copy.flag_mut(name).map(|f| *f)
    }
}

/// PRODID used by [`NormaliseOptions::new`].
pub const DEFAULT_PRODID: &str = "-//calgate//calgate//EN";

/// Conversions that are not quirks but are reported in
/// [`Normalised::applied`] too.
pub const CONVERSIONS: [&str; 7] = [
    "version_2_0",
    "added_version",
    "added_prodid",
    "added_dtstamp",
    "wrapped_in_vcalendar",
    "status_to_x_cip_status",
    "vcal_rrule_to_x_vcal",
];

/// Options of [`normalise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormaliseOptions {
    /// Which tolerances are enabled.
    pub quirks: Quirks,
    /// The current time (UTC), used for DTSTAMP when absent.
    pub now: DateTime,
    /// PRODID added when the input has none.
    pub prodid: String,
}

impl NormaliseOptions {
    /// Default quirks and [`DEFAULT_PRODID`].
    pub fn new(now: DateTime) -> Self {
        NormaliseOptions {
            quirks: Quirks::default(),
            now,
            prodid: DEFAULT_PRODID.to_string(),
        }
    }
}

/// Result of [`normalise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// A VCALENDAR with VERSION:2.0 and PRODID.
    pub calendar: Component,
    /// Names of the quirks ([`Quirks::NAMES`]) and conversions
    /// ([`CONVERSIONS`]) that fired, in first-fired order, without repeats.
    pub applied: Vec<&'static str>,
}

impl Normalised {
    /// The calendar as folded iCalendar text.
    pub fn to_ics(&self) -> String {
        self.calendar.to_ics()
    }
}

/// Why an input could not be normalised.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NormaliseError {
    /// Nothing but whitespace.
    #[error("empty calendar data")]
    Empty,
    /// No property line at all.
    #[error("no recognisable calendar properties")]
    NoProperties,
    /// More than [`MAX_LINES`] lines.
    #[error("calendar data too large: more than {limit} lines")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A logical line is not a property line.
    #[error("line {line_no}: {source}")]
    Line {
        /// 1-based logical line number (after unfolding and rejoining).
        line_no: usize,
        /// Why.
        source: ContentLineError,
    },
    /// BEGIN/END do not balance (or nest too deep).
    #[error("unbalanced BEGIN/END: {0}")]
    Unbalanced(ComponentError),
    /// Loose properties while `bare_property_list` is off.
    #[error(
        "property {property} is outside any BEGIN/END block (bare property lists are disabled)"
    )]
    BareProperties {
        /// The first loose property.
        property: String,
    },
    /// A component that cannot be placed in a VCALENDAR.
    #[error("unexpected top-level component {name}")]
    UnexpectedComponent {
        /// Its name.
        name: String,
    },
    /// A date-time property whose value cannot be parsed.
    #[error("invalid date-time in {property}: {value:?} ({reason})")]
    DateTime {
        /// The property name.
        property: String,
        /// The value (shortened).
        value: String,
        /// Why.
        reason: DateTimeError,
    },
    /// A CHARSET that the decoder does not know.
    #[error("unknown charset {charset:?} in property {property}")]
    UnknownCharset {
        /// The property name.
        property: String,
        /// The charset as given.
        charset: String,
    },
}

/// Normalise vCalendar 1.0 / CIP / iCalendar text into an iCalendar 2.0
/// VCALENDAR. A bare property list is wrapped in a VEVENT.
pub fn normalise(text: &str, opts: &NormaliseOptions) -> Result<Normalised, NormaliseError> {
    normalise_with_wrapper(text, opts, "VEVENT")
}

/// Like [`normalise`], but a bare property list is wrapped in a component
/// called `wrapper` (e.g. `VFREEBUSY` for a CIP FREEBUSY request,
/// cap-cstp.md §7.3 #6).
pub fn normalise_with_wrapper(
    text: &str,
    opts: &NormaliseOptions,
    wrapper: &str,
) -> Result<Normalised, NormaliseError> {
    let q = &opts.quirks;
    let mut applied = Applied::default();
    if text.trim().is_empty() {
        return Err(NormaliseError::Empty);
    }
    let physical: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if physical.len() > MAX_LINES {
        return Err(NormaliseError::TooLarge { limit: MAX_LINES });
    }
    let dialect = detect_dialect(&physical);
    let physical: Vec<Cow<'_, str>> = if q.quoted_printable {
        join_qp_soft_breaks(&physical, &mut applied)
    } else {
        physical.into_iter().map(Cow::Borrowed).collect()
    };
    let joined;
    let logical: Vec<Cow<'_, str>> = match dialect {
        Dialect::ICal20 => {
            joined = physical.join("\n");
            // Borrowed logical lines: only folded ones are copied.
            unfold_lines(&joined).collect()
        }
        Dialect::VCal10 => assemble_lines(&physical, q, &mut applied)
            .into_iter()
            .map(Cow::Owned)
            .collect(),
    };
    let mut lines = Vec::with_capacity(logical.len());
    let mut first_error = None;
    for (i, l) in logical.iter().enumerate() {
        let parsed = if dialect == Dialect::VCal10 && q.relaxed_spacing {
            parse_relaxed(l, &mut applied)
        } else {
            ContentLine::parse(l)
        };
        match parsed {
            Ok(line) => lines.push(line),
            Err(source) => {
                first_error.get_or_insert(NormaliseError::Line {
                    line_no: i + 1,
                    source,
                });
            }
        }
    }
    if lines.is_empty() {
        return Err(NormaliseError::NoProperties);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let items = build_items(lines).map_err(NormaliseError::Unbalanced)?;
    let mut calendar = structure(items, q, wrapper, &mut applied)?;
    let mut ctx = Ctx {
        opts,
        dialect,
        applied: &mut applied,
    };
    convert_component(&mut calendar, &mut ctx)?;
    convert_calendar(&mut calendar, &mut ctx);
    Ok(Normalised {
        calendar,
        applied: applied.0,
    })
}

// ------------------------------------------------------------ line rules --

#[derive(Debug, Default)]
struct Applied(Vec<&'static str>);

impl Applied {
    fn add(&mut self, name: &'static str) {
        if !self.0.contains(&name) {
            self.0.push(name);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    ICal20,
    VCal10,
}

/// `VERSION:2.0` anywhere (whitespace-tolerant) means iCalendar.
fn detect_dialect(physical: &[&str]) -> Dialect {
    let is_v2 = |l: &&str| {
        let Some((n, v)) = l.split_once(':') else {
            return false;
        };
        n.trim().eq_ignore_ascii_case("VERSION") && v.trim() == "2.0"
    };
    if physical.iter().any(is_v2) {
        Dialect::ICal20
    } else {
        Dialect::VCal10
    }
}

/// The text before the first `:` (ignoring quoted parameter values).
fn header_part(line: &str) -> &str {
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => return line.get(..i).unwrap_or(line),
            _ => {}
        }
    }
    line
}

/// Whether the line declares QUOTED-PRINTABLE in its parameters.
fn is_qp_header(line: &str) -> bool {
    // A case-insensitive search, without an upper-cased copy of every line.
    header_part(line)
        .as_bytes()
        .windows(b"QUOTED-PRINTABLE".len())
        .any(|w| w.eq_ignore_ascii_case(b"QUOTED-PRINTABLE"))
}

/// vCalendar 1.0 §2.1.3: a QP value ending in `=` continues on the next
/// physical line (not indented). Joined before any other line rule. An
/// indented line is an RFC 5545 fold instead: it is kept for unfolding and
/// the QP value (and its soft breaks) goes on through it.
fn join_qp_soft_breaks<'a>(physical: &[&'a str], applied: &mut Applied) -> Vec<Cow<'a, str>> {
    let mut out: Vec<Cow<'a, str>> = Vec::with_capacity(physical.len());
    let mut in_qp = false;
    for &line in physical {
        let folded = line.starts_with([' ', '\t']) && !out.is_empty();
        if !folded
            && in_qp
            && let Some(last) = out.last_mut()
            && last.ends_with('=')
        {
            let joined = last.to_mut();
            joined.pop();
            joined.push_str(line);
            applied.add("quoted_printable");
            continue;
        }
        if !folded {
            in_qp = is_qp_header(line);
        }
        out.push(Cow::Borrowed(line));
    }
    out
}

/// Names known to vCalendar 1.0 and CIP beyond the iCalendar properties of
/// [`crate::ical::property::PROPERTIES`] (for #8(c) and #9), and BEGIN/END.
const VCAL10_NAMES: &[&str] = &[
    "AALARM",
    "BEGIN",
    "DALARM",
    "DAYLIGHT",
    "DCREATED",
    "END",
    "EXRULE",
    "MALARM",
    "PALARM",
    "RESPONSE-SEQUENCE",
    "RNUM",
    "SUBJECT",
    "TZ",
];

/// Whether `n` is an upper-case property name known to vCalendar 1.0, iCalendar 2.0 or CIP.
fn is_known_name(n: &str) -> bool {
    !n.bytes().any(|b| b.is_ascii_lowercase())
        && (VCAL10_NAMES.contains(&n) || crate::ical::property::known_property(n).is_some())
}

/// #9: `NAME<whitespace>rest` with NAME a known upper-case property name.
fn split_known_name(line: &str) -> Option<(&str, &str)> {
    let end = line.find(|c: char| !is_name_char(c))?;
    let (n, rest) = line.split_at_checked(end)?;
    if !rest.starts_with([' ', '\t']) || !is_known_name(n) {
        return None;
    }
    Some((n, rest.trim_start()))
}

/// Whether the text before the first `;` or `:` is a property name (letters
/// first; surrounding whitespace allowed).
fn plausible_header(line: &str) -> bool {
    let n = line.split([';', ':']).next().unwrap_or_default().trim();
    n.starts_with(|c: char| c.is_ascii_alphabetic()) && n.chars().all(is_name_char)
}

/// The value part of a fresh logical line (after the first `:`), used by the
/// word-wrap heuristic.
fn value_part(line: &str) -> &str {
    let h = header_part(line);
    line.get(h.len() + 1..).unwrap_or_default()
}

/// cap-cstp.md §7.3 #8 and #9: physical → logical lines (vCalendar dialect).
///
/// Raw continuations (#8(c)) are appended without inserting anything, with
/// one exception: when the piece being continued has whitespace inside its
/// value but not at its end, the word processor replaced a space with the
/// line break (a word is only broken mid-word when it fills a whole line), so
/// one space is restored. This rebuilds `The Big 2000!` and
/// `Pete O'Leary <poleary@clearblue.com>` whether or not the copy of the
/// draft kept the trailing space, and `bill@abc.com` from `…:bill@ab` /
/// `c.com`.
fn assemble_lines(physical: &[Cow<'_, str>], q: &Quirks, applied: &mut Applied) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // The last piece appended to the current logical line.
    let mut last_piece = String::new();
    for phys in physical {
        let phys: &str = phys;
        // (a) empty data lines are ignored.
        if phys.trim().is_empty() {
            continue;
        }
        // (b) RFC 2425 / vCalendar folding.
        if let Some(cont) = phys.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(cont);
            cont.clone_into(&mut last_piece);
            continue;
        }
        let broken = !phys.contains(':') || !plausible_header(phys);
        if broken {
            // #9 runs before #8(c).
            if q.missing_colon
                && let Some((n, v)) = split_known_name(phys)
            {
                applied.add("missing_colon");
                out.push(format!("{n}:{v}"));
                v.clone_into(&mut last_piece);
                continue;
            }
            if q.broken_line_rejoin
                && split_known_name(phys).is_none()
                && let Some(last) = out.last_mut()
            {
                applied.add("broken_line_rejoin");
                let lp = last_piece.as_str();
                if !lp.ends_with(char::is_whitespace) && lp.trim().contains(char::is_whitespace) {
                    last.push(' ');
                }
                last.push_str(phys);
                phys.clone_into(&mut last_piece);
                continue;
            }
        }
        out.push(phys.to_string());
        value_part(phys).clone_into(&mut last_piece);
    }
    out
}

// -------------------------------------------------------- relaxed parser --

type RawParam<'a> = (&'a str, Option<Vec<&'a str>>);

/// One relaxed parameter value: a quoted-string (kept as is) or paramtext
/// with surrounding whitespace trimmed.
///
/// ```abnf
/// rvalue = (quoted-string / paramtext) *WSP
/// ```
fn rvalue(input: &str) -> IResult<&str, &str> {
    let (rest, v) = param_value(input)?;
    let v = if input.starts_with('"') { v } else { v.trim() };
    let (rest, _) = space0(rest)?;
    Ok((rest, v))
}

/// One relaxed parameter (after `;`); the value part is optional (vCalendar
/// 1.0 §2.1.3 bare parameters such as `QUOTED-PRINTABLE`).
///
/// ```abnf
/// rparam = *WSP name *WSP ["=" *WSP rvalue *("," *WSP rvalue)]
/// ```
fn rparam(input: &str) -> IResult<&str, RawParam<'_>> {
    (
        space0,
        name,
        space0,
        opt(preceded(
            (char('='), space0),
            separated_list1((char(','), space0), rvalue),
        )),
    )
        .map(|(_, n, _, v)| (n, v))
        .parse(input)
}

/// A content line with the whitespace of cap-cstp.md §7.3 #7.
///
/// ```abnf
/// relaxed-line = *WSP name *WSP *(";" rparam) ":" *WSP value
/// ```
fn relaxed_line(input: &str) -> IResult<&str, (&str, Vec<RawParam<'_>>, &str)> {
    all_consuming((
        space0,
        name,
        space0,
        many0(preceded(char(';'), rparam)),
        char(':'),
        space0,
        rest,
    ))
    .map(|(_, n, _, ps, _, _, v)| (n, ps, v))
    .parse(input)
}

const ENCODINGS: [&str; 4] = ["QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT"];

/// Parse with the #7 rules; falls back to the strict parser's error.
fn parse_relaxed(line: &str, applied: &mut Applied) -> Result<ContentLine, ContentLineError> {
    let strict = ContentLine::parse(line);
    // When the strict parse succeeded, the relaxed one differs from it only by trimming: the
    // start of the value (SP/HTAB) and unquoted parameter values. Without such whitespace the
    // two are equal, so the relaxed parse (and the comparison) can be skipped.
    if let Ok(cl) = &strict
        && !cl.value.starts_with([' ', '\t'])
        && cl
            .params
            .iter()
            .flat_map(|p| &p.values)
            .all(|v| v.trim().len() == v.len())
    {
        return strict;
    }
    let Ok((_, (n, raw_params, value))) = relaxed_line(line) else {
        return strict;
    };
    let mut params = Vec::with_capacity(raw_params.len());
    for (pn, pv) in raw_params {
        match pv {
            Some(values) => params.push(Param {
                name: pn.to_ascii_uppercase(),
                values: values.into_iter().map(str::to_string).collect(),
            }),
            None => {
                let up = pn.to_ascii_uppercase();
                if ENCODINGS.contains(&up.as_str()) {
                    params.push(Param::new("ENCODING", &up));
                }
            }
        }
    }
    let relaxed = ContentLine {
        name: n.to_ascii_uppercase(),
        params,
        value: value.to_string(),
    };
    if strict.as_ref() != Ok(&relaxed) {
        if relaxed.has_raw_line_break() {
            return Err(ContentLineError::LineBreakInValue {
                property: relaxed.name,
            });
        }
        applied.add("relaxed_spacing");
    }
    Ok(relaxed)
}

// ------------------------------------------------------------- structure --

/// Properties that belong to the VCALENDAR when found in a bare list.
const CALENDAR_PROPS: [&str; 6] = ["VERSION", "PRODID", "METHOD", "CALSCALE", "TZ", "DAYLIGHT"];

/// Components that may be wrapped in a new VCALENDAR.
fn is_calendar_child(name: &str) -> bool {
    matches!(
        name,
        "VEVENT" | "VTODO" | "VJOURNAL" | "VFREEBUSY" | "VTIMEZONE"
    ) || name.starts_with("X-")
}

fn structure(
    items: Vec<Item>,
    q: &Quirks,
    wrapper: &str,
    applied: &mut Applied,
) -> Result<Component, NormaliseError> {
    let mut loose = Vec::new();
    let mut comps = Vec::new();
    for item in items {
        match item {
            Item::Property { line, .. } => loose.push(line),
            Item::Component(c) => comps.push(c),
        }
    }
    if loose.is_empty() {
        let calendars = comps.iter().filter(|c| c.name == "VCALENDAR").count();
        if calendars == 1 && comps.len() == 1 {
            return comps.pop().ok_or(NormaliseError::NoProperties);
        }
        if let Some(bad) = comps
            .iter()
            .find(|c| calendars > 0 || !is_calendar_child(&c.name))
        {
            return Err(NormaliseError::UnexpectedComponent {
                name: bad.name.clone(),
            });
        }
        if comps.is_empty() {
            return Err(NormaliseError::NoProperties);
        }
        applied.add("wrapped_in_vcalendar");
        let mut cal = Component::new("VCALENDAR");
        cal.components = comps;
        return Ok(cal);
    }
    if !q.bare_property_list {
        return Err(NormaliseError::BareProperties {
            property: loose.first().map(|l| l.name.clone()).unwrap_or_default(),
        });
    }
    if let Some(bad) = comps.iter().find(|c| c.name == "VCALENDAR") {
        return Err(NormaliseError::UnexpectedComponent {
            name: bad.name.clone(),
        });
    }
    applied.add("bare_property_list");
    let mut cal = Component::new("VCALENDAR");
    let (cal_props, ev_props): (Vec<_>, Vec<_>) = loose
        .into_iter()
        .partition(|l| CALENDAR_PROPS.contains(&l.name.as_str()));
    cal.properties = cal_props;
    let (siblings, children): (Vec<_>, Vec<_>) =
        comps.into_iter().partition(|c| is_calendar_child(&c.name));
    if !ev_props.is_empty() || !children.is_empty() {
        let mut ev = Component::new(wrapper);
        ev.properties = ev_props;
        ev.components = children;
        cal.components.push(ev);
    }
    cal.components.extend(siblings);
    Ok(cal)
}

// ----------------------------------------------------------- conversions --

struct Ctx<'a> {
    opts: &'a NormaliseOptions,
    dialect: Dialect,
    applied: &'a mut Applied,
}

/// Date-valued properties handled by `legacy_datetime`.
const DATE_PROPS: [&str; 10] = [
    "DTSTART",
    "DTEND",
    "DUE",
    "DTSTAMP",
    "CREATED",
    "LAST-MODIFIED",
    "RECURRENCE-ID",
    "EXDATE",
    "RDATE",
    "COMPLETED",
];

/// Single TEXT properties (RFC 5545 §3.8.1, §3.8.4).
const TEXT_PROPS: [&str; 7] = [
    "SUMMARY",
    "DESCRIPTION",
    "LOCATION",
    "COMMENT",
    "CONTACT",
    "RELATED-TO",
    "UID",
];

/// Multi-valued TEXT properties (vCalendar separates with `;`).
const TEXT_LIST_PROPS: [&str; 2] = ["CATEGORIES", "RESOURCES"];

/// vCalendar 1.0 attendee STATUS (and iCalendar PARTSTAT) → PARTSTAT.
pub fn partstat_from_vcal(status: &str) -> Option<&'static str> {
    let key: String = status
        .trim()
        .to_ascii_uppercase()
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(match key.as_str() {
        "ACCEPTED" | "CONFIRMED" => "ACCEPTED",
        "NEEDS ACTION" | "SENT" => "NEEDS-ACTION",
        "TENTATIVE" => "TENTATIVE",
        "DECLINED" => "DECLINED",
        "COMPLETED" => "COMPLETED",
        "DELEGATED" => "DELEGATED",
        "IN PROCESS" => "IN-PROCESS",
        _ => return None,
    })
}

/// The responder's participation status in an RSVP (cap-cstp.md §7.3 #13):
/// from an ATTENDEE's PARTSTAT (or vCalendar STATUS) parameter first —
/// preferring attendees that are not the CHAIR/OWNER — then from an
/// `X-CIP-STATUS` or `STATUS` property, mapped to an iCalendar PARTSTAT.
pub fn responder_status(component: &Component) -> Option<String> {
    let attendees: Vec<&ContentLine> = component.properties("ATTENDEE").collect();
    let is_owner = |l: &&ContentLine| {
        l.param("ROLE").is_some_and(|r| {
            matches!(
                r.trim().to_ascii_uppercase().as_str(),
                "CHAIR" | "OWNER" | "ORGANIZER"
            )
        })
    };
    let others: Vec<&ContentLine> = attendees.iter().copied().filter(|l| !is_owner(l)).collect();
    let pool = if others.is_empty() { attendees } else { others };
    for l in pool {
        if let Some(v) = l.param("PARTSTAT").or_else(|| l.param("STATUS")) {
            let v = v.trim();
            if let Some(p) = partstat_from_vcal(v) {
                return Some(p.to_string());
            }
            if !v.is_empty() {
                return Some(v.to_ascii_uppercase());
            }
        }
    }
    ["X-CIP-STATUS", "STATUS"]
        .iter()
        .filter_map(|n| component.value(n))
        .find_map(partstat_from_vcal)
        .map(str::to_string)
}

/// Decode quoted-printable (vCalendar 1.0 §2.1.3, RFC 2045 §6.7). A bad
/// escape is kept literally; a trailing `=` (soft break) is dropped.
fn qp_decode(s: &str) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b != b'=' {
            out.push(b);
            continue;
        }
        let mut look = bytes.clone();
        match (look.next().and_then(hex), look.next().and_then(hex)) {
            (Some(h), Some(l)) => {
                out.push(h * 16 + l);
                bytes.next();
                bytes.next();
            }
            _ if bytes.peek().is_none() => {}
            _ => out.push(b'='),
        }
    }
    out
}

/// windows-1252 code points for 0x80–0x9F (undefined ones map to C1).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// Windows-1252 bytes as text (0x80–0x9F per the code page, the rest as Latin-1).
pub(crate) fn decode_cp1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252_HIGH
                .get(usize::from(b - 0x80))
                .copied()
                .unwrap_or(char::REPLACEMENT_CHARACTER),
            _ => char::from(b),
        })
        .collect()
}

/// Decode bytes in `charset`. ISO-8859-1 and US-ASCII are read as
/// windows-1252 (its superset, as browsers do); no charset means UTF-8 if
/// valid, else windows-1252. `Err` for an unknown charset.
fn decode_charset(bytes: Vec<u8>, charset: Option<&str>) -> Result<String, ()> {
    let Some(cs) = charset.map(|c| c.trim().to_ascii_uppercase()) else {
        return Ok(String::from_utf8(bytes).unwrap_or_else(|e| decode_cp1252(e.as_bytes())));
    };
    match cs.as_str() {
        "UTF-8" | "UTF8" => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        "US-ASCII" | "ASCII" | "ISO-8859-1" | "ISO8859-1" | "ISO_8859-1" | "ISO-LATIN-1"
        | "LATIN1" | "LATIN-1" | "L1" | "CP819" | "IBM819" | "WINDOWS-1252" | "CP1252"
        | "X-CP1252" => Ok(decode_cp1252(&bytes)),
        _ => Err(()),
    }
}

/// QP and CHARSET (`quoted_printable`). Returns whether the value was decoded.
fn convert_encoding(line: &mut ContentLine, ctx: &mut Ctx<'_>) -> Result<bool, NormaliseError> {
    if !ctx.opts.quirks.quoted_printable {
        return Ok(false);
    }
    let encoding = line
        .param("ENCODING")
        .map(|e| e.trim().to_ascii_uppercase());
    let mut decoded = false;
    match encoding.as_deref() {
        Some("QUOTED-PRINTABLE") => {
            let bytes = qp_decode(&line.value);
            let charset = line.param("CHARSET");
            line.value =
                decode_charset(bytes, charset).map_err(|()| NormaliseError::UnknownCharset {
                    property: line.name.clone(),
                    charset: charset.unwrap_or_default().to_string(),
                })?;
            line.remove_param("ENCODING");
            decoded = true;
        }
        Some("7BIT") => {
            line.remove_param("ENCODING");
        }
        _ => {}
    }
    if line.remove_param("CHARSET") || decoded || encoding.as_deref() == Some("7BIT") {
        ctx.applied.add("quoted_printable");
    }
    Ok(decoded)
}

/// `legacy_names`.
fn convert_names(line: &mut ContentLine, ctx: &mut Ctx<'_>) {
    if !ctx.opts.quirks.legacy_names {
        return;
    }
    let renamed = match line.name.as_str() {
        "SUBJECT" => Some("SUMMARY"),
        "RESPONSE-SEQUENCE" => Some("X-CIP-RESPONSE-SEQUENCE"),
        "DCREATED" => Some("CREATED"),
        _ => None,
    };
    if let Some(n) = renamed {
        line.name = n.to_string();
        ctx.applied.add("legacy_names");
    }
    // vCalendar 1.0 §2.3.12 recurrence grammar (`W1 TU TH #10`) is not
    // RFC 5545 RRULE syntax, and upstream servers reject the whole object
    // for it: keep the rule for reference only.
    if matches!(line.name.as_str(), "RRULE" | "EXRULE")
        && !line.value.to_ascii_uppercase().contains("FREQ=")
    {
        line.name = format!("X-VCAL-{}", line.name);
        ctx.applied.add("legacy_names");
        ctx.applied.add("vcal_rrule_to_x_vcal");
    }
    let new_value = match line.name.as_str() {
        "CLASS" => Some(line.value.trim().to_ascii_uppercase()),
        "TRANSP" => Some(match line.value.trim() {
            "0" => "OPAQUE".to_string(),
            "1" => "TRANSPARENT".to_string(),
            v if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                "TRANSPARENT".to_string()
            }
            v => v.to_ascii_uppercase(),
        }),
        _ => None,
    };
    if let Some(v) = new_value
        && v != line.value
    {
        line.value = v;
        ctx.applied.add("legacy_names");
    }
}

fn date_error(line: &ContentLine, value: &str, reason: DateTimeError) -> NormaliseError {
    NormaliseError::DateTime {
        property: line.name.clone(),
        value: shorten(value),
        reason,
    }
}

/// Convert one element of a date list: kept verbatim when strictly valid,
/// else (with `legacy`) re-rendered from the tolerant parse.
fn convert_date_element(
    line: &ContentLine,
    element: &str,
    tzid: Option<&str>,
    legacy: bool,
) -> Result<(String, DateOrDateTime), NormaliseError> {
    match DateOrDateTime::parse_strict(element, tzid) {
        Ok(v) => Ok((element.to_string(), v)),
        Err(strict_err) if !legacy => Err(date_error(line, element, strict_err)),
        Err(_) => {
            let v =
                DateOrDateTime::parse(element, tzid).map_err(|e| date_error(line, element, e))?;
            Ok((v.to_ical(), v))
        }
    }
}

/// `legacy_datetime` (and validation of date-time values in every mode).
fn convert_dates(line: &mut ContentLine, ctx: &mut Ctx<'_>) -> Result<(), NormaliseError> {
    if !DATE_PROPS.contains(&line.name.as_str()) {
        return Ok(());
    }
    let legacy = ctx.opts.quirks.legacy_datetime;
    let is_list = matches!(line.name.as_str(), "EXDATE" | "RDATE");
    let seps: &[char] = if is_list && legacy && ctx.dialect == Dialect::VCal10 {
        &[',', ';']
    } else {
        &[',']
    };
    let tzid = line.param("TZID").map(str::to_string);
    let elements: Vec<&str> = if is_list {
        line.value
            .split(seps)
            .filter(|e| !e.trim().is_empty())
            .collect()
    } else {
        vec![line.value.as_str()]
    };
    let mut out = Vec::with_capacity(elements.len());
    let mut kinds = Vec::with_capacity(elements.len());
    for element in elements {
        // RDATE;VALUE=PERIOD: start "/" (end / duration).
        let (text, kind) = match element.split_once('/') {
            Some((start, end)) => {
                let (s, kind) = convert_date_element(line, start, tzid.as_deref(), legacy)?;
                let e = if end.trim_start().starts_with(['P', 'p', '+', '-']) {
                    Duration::parse(end)
                        .map_err(|err| date_error(line, end, err))?
                        .to_ical()
                } else {
                    convert_date_element(line, end, tzid.as_deref(), legacy)?.0
                };
                (format!("{s}/{e}"), kind)
            }
            None => convert_date_element(line, element, tzid.as_deref(), legacy)?,
        };
        out.push(text);
        kinds.push(kind);
    }
    if !legacy || kinds.is_empty() {
        return Ok(());
    }
    let joined = out.join(",");
    let mut changed = joined != line.value;
    line.value = joined;
    let all_utc = kinds
        .iter()
        .all(|k| matches!(k, DateOrDateTime::DateTime(d) if d.zone == Zone::Utc));
    if all_utc && line.remove_param("TZID") {
        changed = true;
    }
    if kinds.iter().all(DateOrDateTime::is_date) && !line.has_param("VALUE") {
        line.set_param("VALUE", "DATE");
        changed = true;
    }
    if changed {
        ctx.applied.add("legacy_datetime");
    }
    Ok(())
}

/// `attendee_value_forms` on ATTENDEE and ORGANIZER.
fn convert_address(line: &mut ContentLine, ctx: &mut Ctx<'_>) {
    if !ctx.opts.quirks.attendee_value_forms
        || !matches!(line.name.as_str(), "ATTENDEE" | "ORGANIZER")
    {
        return;
    }
    let v = line.value.trim();
    if v.starts_with("mailto:") && !v.contains('<') {
        return; // already iCalendar form
    }
    let Some(addr) = Address::parse(v) else {
        return;
    };
    if !addr.is_mailto() {
        return;
    }
    line.value = addr.to_uri();
    if let Some(cn) = addr.cn
        && !line.has_param("CN")
    {
        line.params.insert(0, Param::new("CN", &cn));
    }
    ctx.applied.add("attendee_value_forms");
}

/// `attendee_status` on an ATTENDEE line's parameters.
fn convert_attendee_params(line: &mut ContentLine, ctx: &mut Ctx<'_>) {
    if !ctx.opts.quirks.attendee_status || line.name != "ATTENDEE" {
        return;
    }
    let mut changed = false;
    if let Some(status) = line.param("STATUS").map(str::to_string) {
        if line.has_param("PARTSTAT") {
            line.remove_param("STATUS");
        } else {
            let mapped = partstat_from_vcal(&status)
                .map(str::to_string)
                .unwrap_or_else(|| status.trim().to_ascii_uppercase());
            for p in line.params.iter_mut().filter(|p| p.name == "STATUS") {
                p.name = "PARTSTAT".to_string();
                p.values = vec![mapped.clone()];
            }
        }
        changed = true;
    }
    if let Some(rsvp) = line.param("RSVP").map(|r| r.trim().to_ascii_uppercase()) {
        let mapped = match rsvp.as_str() {
            "YES" => Some("TRUE"),
            "NO" => Some("FALSE"),
            _ => None,
        };
        if let Some(m) = mapped {
            line.set_param("RSVP", m);
            changed = true;
        }
    }
    let role = line.param("ROLE").map(|r| r.trim().to_ascii_uppercase());
    if let Some(expect) = line.param("EXPECT").map(|e| e.trim().to_ascii_uppercase()) {
        if role.is_none() || role.as_deref() == Some("ATTENDEE") {
            let mapped = match expect.as_str() {
                "FYI" => "NON-PARTICIPANT",
                "REQUEST" => "OPT-PARTICIPANT",
                _ => "REQ-PARTICIPANT",
            };
            line.set_param("ROLE", mapped);
        }
        line.remove_param("EXPECT");
        changed = true;
    } else if matches!(role.as_deref(), Some("ATTENDEE" | "DELEGATE")) {
        line.set_param("ROLE", "REQ-PARTICIPANT");
        changed = true;
    }
    if changed {
        ctx.applied.add("attendee_status");
    }
}

/// Split a vCalendar list on unescaped `;` or `,`.
fn split_vcal_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' | ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// TEXT escaping (vCalendar dialect, or any QP-decoded value).
fn convert_text(line: &mut ContentLine, dialect: Dialect, decoded: bool) {
    if line
        .param("ENCODING")
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("QUOTED-PRINTABLE"))
    {
        return; // still encoded (quoted_printable is off): leave it alone
    }
    let name = line.name.as_str();
    let vcal = dialect == Dialect::VCal10;
    if TEXT_PROPS.contains(&name) && (vcal || decoded) {
        line.value = escape_text_unescaped(&line.value);
    } else if TEXT_LIST_PROPS.contains(&name) && vcal {
        line.value = split_vcal_list(&line.value)
            .iter()
            .map(|s| escape_text_unescaped(s))
            .collect::<Vec<_>>()
            .join(",");
    } else if decoded {
        // A decoded non-TEXT value cannot hold line breaks.
        line.value = line.value.replace("\r\n", " ").replace(['\r', '\n'], " ");
    }
}

fn convert_property(line: &mut ContentLine, ctx: &mut Ctx<'_>) -> Result<(), NormaliseError> {
    let decoded = convert_encoding(line, ctx)?;
    convert_names(line, ctx);
    convert_dates(line, ctx)?;
    convert_address(line, ctx);
    convert_attendee_params(line, ctx);
    convert_text(line, ctx.dialect, decoded);
    Ok(())
}

/// `owner_to_organizer` on one VEVENT/VTODO/VJOURNAL.
fn convert_owner(c: &mut Component, ctx: &mut Ctx<'_>) {
    if !ctx.opts.quirks.owner_to_organizer {
        return;
    }
    let is_owner = |l: &ContentLine| {
        l.name == "ATTENDEE"
            && l.param("ROLE").is_some_and(|r| {
                matches!(
                    r.trim().to_ascii_uppercase().as_str(),
                    "OWNER" | "ORGANIZER"
                )
            })
    };
    let Some(first) = c.properties.iter().position(is_owner) else {
        return;
    };
    ctx.applied.add("owner_to_organizer");
    let organizer = if c.property("ORGANIZER").is_none() {
        c.properties
            .get(first)
            .and_then(Address::from_line)
            .map(|a| a.to_content_line("ORGANIZER"))
    } else {
        None
    };
    for (i, line) in c.properties.iter_mut().enumerate() {
        if !is_owner(line) {
            continue;
        }
        line.set_param("ROLE", "CHAIR");
        if i == first && !line.has_param("PARTSTAT") {
            line.set_param("PARTSTAT", "ACCEPTED");
        }
    }
    if let Some(org) = organizer {
        c.properties.insert(first, org);
    }
}

/// `attendee_status` on the STATUS property of a component.
fn convert_status_property(c: &mut Component, ctx: &mut Ctx<'_>) {
    if !ctx.opts.quirks.attendee_status {
        return;
    }
    let component = c.name.clone();
    for line in c.properties.iter_mut().filter(|l| l.name == "STATUS") {
        let v = line.value.trim().to_ascii_uppercase();
        let valid: Option<String> = match component.as_str() {
            "VEVENT" => {
                matches!(v.as_str(), "TENTATIVE" | "CONFIRMED" | "CANCELLED").then(|| v.clone())
            }
            "VTODO" => match partstat_from_vcal(&v) {
                Some(p @ ("NEEDS-ACTION" | "COMPLETED" | "IN-PROCESS")) => Some(p.to_string()),
                _ => (v == "CANCELLED").then(|| v.clone()),
            },
            "VJOURNAL" => matches!(v.as_str(), "DRAFT" | "FINAL" | "CANCELLED").then(|| v.clone()),
            _ => Some(line.value.clone()),
        };
        match valid {
            Some(ok) => {
                if ok != line.value {
                    line.value = ok;
                    ctx.applied.add("attendee_status");
                }
            }
            None => {
                line.name = "X-CIP-STATUS".to_string();
                line.value = v;
                ctx.applied.add("attendee_status");
                ctx.applied.add("status_to_x_cip_status");
            }
        }
    }
}

fn convert_component(c: &mut Component, ctx: &mut Ctx<'_>) -> Result<(), NormaliseError> {
    for line in c.properties.iter_mut() {
        convert_property(line, ctx)?;
    }
    if matches!(c.name.as_str(), "VEVENT" | "VTODO" | "VJOURNAL") {
        convert_owner(c, ctx);
        convert_status_property(c, ctx);
    }
    if matches!(
        c.name.as_str(),
        "VEVENT" | "VTODO" | "VJOURNAL" | "VFREEBUSY"
    ) && c.property("DTSTAMP").is_none()
    {
        c.properties
            .push(ContentLine::new("DTSTAMP", &ctx.opts.now.to_ical()));
        ctx.applied.add("added_dtstamp");
    }
    for child in c.components.iter_mut() {
        convert_component(child, ctx)?;
    }
    Ok(())
}

/// VERSION and PRODID on the VCALENDAR.
fn convert_calendar(cal: &mut Component, ctx: &mut Ctx<'_>) {
    // RFC 5545 §3.6: each at most once. A repeat keeps the first (the one `value()` reads),
    // so a second `VERSION:1.0` or `PRODID` never reaches the upstream.
    for name in ["VERSION", "PRODID", "CALSCALE", "METHOD"] {
        let mut seen = false;
        cal.properties
            .retain(|p| p.name != name || !std::mem::replace(&mut seen, true));
    }
    match cal.property_mut("VERSION") {
        Some(v) => {
            // The output is iCalendar 2.0 whatever the input claimed.
            if v.value.trim() != "2.0" {
                ctx.applied.add("version_2_0");
            }
            v.value = "2.0".to_string();
            v.params.clear();
        }
        None => {
            cal.properties.insert(0, ContentLine::new("VERSION", "2.0"));
            ctx.applied.add("added_version");
        }
    }
    if cal.property("PRODID").is_none() {
        let at = cal
            .properties
            .iter()
            .position(|p| p.name == "VERSION")
            .map_or(0, |i| i + 1);
        cal.properties
            .insert(at, ContentLine::new("PRODID", &ctx.opts.prodid));
        ctx.applied.add("added_prodid");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::component::parse_components;
    use crate::ical::contentline::{MAX_LINE_OCTETS, unfold};
    use proptest::prelude::*;

    const DTSTAMP: &str = "DTSTAMP:20240102T030405Z";

    fn opts_with(quirks: Quirks) -> NormaliseOptions {
        NormaliseOptions {
            quirks,
            now: DateTime::new(2024, 1, 2, 3, 4, 5, Zone::Utc).unwrap(),
            prodid: "-//test//EN".to_string(),
        }
    }

    fn opts() -> NormaliseOptions {
        opts_with(Quirks::default())
    }

    fn run(lines: &[&str], quirks: Quirks) -> Result<Normalised, NormaliseError> {
        normalise(&lines.join("\r\n"), &opts_with(quirks))
    }

    /// Found by the `vcal10` fuzz target: a bare property list with two PRODID lines gave a
    /// VCALENDAR with two PRODIDs, and a repeated VERSION:1.0 stayed next to VERSION:2.0.
    #[test]
    fn repeated_calendar_properties_keep_the_first() {
        let bare = [
            "METHOD:REQUEST",
            "PRODID:-//a//EN",
            "UID:1",
            "PRODID:-//b//EN",
            "METHOD:CANCEL",
        ];
        let wrapped = [
            "BEGIN:VCALENDAR",
            "VERSION:1.0",
            "VERSION:1.0",
            "PRODID:-//a//EN",
            "PRODID:-//b//EN",
            "BEGIN:VEVENT",
            "UID:1",
            "END:VEVENT",
            "END:VCALENDAR",
        ];
        for lines in [&bare[..], &wrapped[..]] {
            let n = run(lines, Quirks::default()).unwrap();
            let cal = &n.calendar;
            for name in ["VERSION", "PRODID", "METHOD"] {
                assert!(cal.properties(name).count() <= 1, "{name}: {lines:?}");
            }
            assert_eq!(cal.value("VERSION"), Some("2.0"));
            assert_eq!(cal.value("PRODID"), Some("-//a//EN"));
        }
    }

    /// The `contentline_roundtrip` fuzz finding seen through the normaliser: a lone CR in a
    /// parameter value is refused like one in the value, with or without `relaxed_spacing`
    /// (it used to reach the upstream as an RFC 6868 `^n`).
    #[test]
    fn raw_cr_in_parameter_value_is_refused() {
        for quirks in [Quirks::default(), Quirks::strict()] {
            let lines = ["BEGIN:VEVENT", "UID:1", "X-A;CN=a\rb:v", "END:VEVENT"];
            match run(&lines, quirks) {
                Err(NormaliseError::Line {
                    source: ContentLineError::LineBreakInValue { property },
                    ..
                }) => assert_eq!(property, "X-A"),
                other => panic!("{other:?}"),
            }
        }
    }

    /// The folded output as logical lines.
    fn out_lines(n: &Normalised) -> Vec<String> {
        unfold(&n.to_ics())
    }

    /// The property lines of the first VEVENT/VTODO/VFREEBUSY.
    fn event_lines(n: &Normalised) -> Vec<String> {
        let c = n.calendar.components.first().expect("a component");
        c.properties.iter().map(ContentLine::to_line).collect()
    }

    fn wrap_vcal(body: &[&str]) -> Vec<String> {
        let mut v = vec![
            "BEGIN:VCALENDAR".to_string(),
            "VERSION:1.0".to_string(),
            "BEGIN:VEVENT".to_string(),
        ];
        v.extend(body.iter().map(|s| s.to_string()));
        v.push("END:VEVENT".into());
        v.push("END:VCALENDAR".into());
        v
    }

    fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
        v.sort_unstable();
        v
    }

    // ---------------------------------------------- cip-00 examples ----

    /// cip-00 §2.2 SENDEVENT, with the trailing spaces of the original .txt
    /// as quoted in cap-cstp.md §7.3 #8.
    const SENDEVENT_2_2: &[&str] = &[
        "DTSTART: 19961231T2000-0500",
        "DTEND: 19970101T0600-0500",
        "DESCRIPTION: New year's eve party in New York. The Big ",
        "2000!",
        "ATTENDEE; ROLE=OWNER: Pete O'Leary ",
        "<poleary@clearblue.com>",
        "ATTENDEE: Bill Clinton <president@whitehouse.gov>",
        "ATTENDEE: Jen Yip <jen@yip.com>",
        "SEQUENCE: 1",
        "UID: 23454321abcdabcd@clearblue.com",
    ];

    /// The same lines as in shared/seeds/002 (trailing spaces stripped).
    const SENDEVENT_2_2_SEED: &[&str] = &[
        "DTSTART: 19961231T2000-0500",
        "DTEND: 19970101T0600-0500",
        "DESCRIPTION: New year's eve party in New York. The Big",
        "2000!",
        "ATTENDEE; ROLE=OWNER: Pete O'Leary",
        "<poleary@clearblue.com>",
        "ATTENDEE: Bill Clinton <president@whitehouse.gov>",
        "ATTENDEE: Jen Yip <jen@yip.com>",
        "SEQUENCE: 1",
        "UID: 23454321abcdabcd@clearblue.com",
    ];

    #[test]
    fn cip_2_2_sendevent() {
        let want = vec![
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//EN",
            "BEGIN:VEVENT",
            "DTSTART:19970101T010000Z",
            "DTEND:19970101T110000Z",
            "DESCRIPTION:New year's eve party in New York. The Big 2000!",
            "ORGANIZER;CN=Pete O'Leary:mailto:poleary@clearblue.com",
            "ATTENDEE;CN=Pete O'Leary;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:poleary@clearblue.com",
            "ATTENDEE;CN=Bill Clinton:mailto:president@whitehouse.gov",
            "ATTENDEE;CN=Jen Yip:mailto:jen@yip.com",
            "SEQUENCE:1",
            "UID:23454321abcdabcd@clearblue.com",
            DTSTAMP,
            "END:VEVENT",
            "END:VCALENDAR",
        ];
        for input in [SENDEVENT_2_2, SENDEVENT_2_2_SEED] {
            let n = run(input, Quirks::default()).unwrap();
            assert_eq!(out_lines(&n), want);
            assert_eq!(
                sorted(n.applied.clone()),
                sorted(vec![
                    "broken_line_rejoin",
                    "relaxed_spacing",
                    "bare_property_list",
                    "legacy_datetime",
                    "attendee_value_forms",
                    "owner_to_organizer",
                    "added_dtstamp",
                    "added_version",
                    "added_prodid",
                ])
            );
        }
        // Strict: "2000!" is not a content line.
        let e = run(SENDEVENT_2_2, Quirks::strict()).unwrap_err();
        assert_eq!(
            e,
            NormaliseError::Line {
                line_no: 4,
                source: ContentLineError::MissingColon {
                    line: "2000!".into()
                }
            }
        );
        assert_eq!(
            e.to_string(),
            "line 4: content line has no ':' between name and value: \"2000!\""
        );
    }

    #[test]
    fn cip_2_3_rsvp() {
        let input = [
            "DTSTART: 19961231T2000-0500",
            "DTEND: 19970101T0600-0500",
            "DESCRIPTION: New year's eve party in New York. The Big",
            "2000!>",
            "ATTENDEE; STATUS=ACCEPTED: Jen Yip",
            "<jen@yip.com>",
        ];
        let n = run(&input, Quirks::default()).unwrap();
        assert_eq!(
            event_lines(&n),
            vec![
                "DTSTART:19970101T010000Z",
                "DTEND:19970101T110000Z",
                "DESCRIPTION:New year's eve party in New York. The Big 2000!>",
                "ATTENDEE;CN=Jen Yip;PARTSTAT=ACCEPTED:mailto:jen@yip.com",
                DTSTAMP,
            ]
        );
        let ev = &n.calendar.components[0];
        assert_eq!(responder_status(ev).as_deref(), Some("ACCEPTED"));
        assert!(n.applied.contains(&"attendee_status"));
    }

    #[test]
    fn cip_3_0_bob_rsvp() {
        let input = [
            "UID unique identifier of event",
            "SEQUENCE: 1",
            "RESPONSE-SEQUENCE: 1",
            "ATTENDEE: Bob SystemB <bob@b.com>",
            "STATUS:  CONFIRMED",
        ];
        let n = run(&input, Quirks::default()).unwrap();
        assert_eq!(
            event_lines(&n),
            vec![
                "UID:unique identifier of event",
                "SEQUENCE:1",
                "X-CIP-RESPONSE-SEQUENCE:1",
                "ATTENDEE;CN=Bob SystemB:mailto:bob@b.com",
                "STATUS:CONFIRMED",
                DTSTAMP,
            ]
        );
        let ev = &n.calendar.components[0];
        // No PARTSTAT on the attendee: the STATUS property answers.
        assert_eq!(responder_status(ev).as_deref(), Some("ACCEPTED"));
        assert!(n.applied.contains(&"missing_colon"));
        assert!(n.applied.contains(&"legacy_names"));
        // Strict: the missing colon is an error.
        assert!(matches!(
            run(&input, Quirks::strict()),
            Err(NormaliseError::Line { line_no: 1, .. })
        ));
    }

    /// cip-00 §3.0, Bill's SENDEVENT (the "C:" lines are empty data lines).
    const BILL: &[&str] = &[
        "CATEGORIES: Meeting",
        "DTSTART: 19961126T1530-0500",
        "DTEND:  19961126T1630-0500",
        "SUBJECT: Important Meeting",
        "DESCRIPTION: We need to talk about important stuff.",
        "CLASS: Private",
        "UID: 0289AF8G7DD@abc.com",
        "SEQUENCE: 1",
        "",
        "ATTENDEE;ROLE=OWNER;STATUS=CONFIRMED:bill@ab",
        "c.com",
        "",
        "ATTENDEE;ROLE=ATTENDEE;STATUS=TENTATIVE:mary",
        "@xyz.com",
    ];

    #[test]
    fn cip_3_0_bill_sendevent() {
        let n = run(BILL, Quirks::default()).unwrap();
        assert_eq!(
            event_lines(&n),
            vec![
                "CATEGORIES:Meeting",
                "DTSTART:19961126T203000Z",
                "DTEND:19961126T213000Z",
                "SUMMARY:Important Meeting",
                "DESCRIPTION:We need to talk about important stuff.",
                "CLASS:PRIVATE",
                "UID:0289AF8G7DD@abc.com",
                "SEQUENCE:1",
                "ORGANIZER:mailto:bill@abc.com",
                "ATTENDEE;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:bill@abc.com",
                "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=TENTATIVE:mailto:mary@xyz.com",
                DTSTAMP,
            ]
        );
        assert!(matches!(
            run(BILL, Quirks::strict()),
            Err(NormaliseError::Line { .. })
        ));
    }

    #[test]
    fn cip_3_0_mary_rsvp() {
        let input = [
            "UID: 0289AF8G7DD@abc.com",
            "SEQUENCE: 1",
            "",
            "ATTENDEE;ROLE=ATTENDEE;STATUS=CONFIRMED:mar",
            "y@xyz.com",
        ];
        let n = run(&input, Quirks::default()).unwrap();
        assert_eq!(
            event_lines(&n),
            vec![
                "UID:0289AF8G7DD@abc.com",
                "SEQUENCE:1",
                "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:mary@xyz.com",
                DTSTAMP,
            ]
        );
        assert_eq!(
            responder_status(&n.calendar.components[0]).as_deref(),
            Some("ACCEPTED")
        );
    }

    #[test]
    fn cip_3_0_placeholder_datetime_is_an_error() {
        let input = [
            "UID: unique identifier for event",
            "SEQUENCE: 1",
            "DTSTART: start date and time",
            "DTEND: end date and time",
            "DESCRIPTION: Project X review meeting",
            "ATTENDEE; ROLE=OWNER: Pete O'Leary",
            "<poleary@a.com>",
            "ATTENDEE: Alex SystemA <alex@a.com>",
            "ATTENDEE: Bob SystemB <bob@b.com>",
        ];
        let e = run(&input, Quirks::default()).unwrap_err();
        assert!(
            matches!(&e, NormaliseError::DateTime { property, value, .. }
            if property == "DTSTART" && value == "start date and time")
        );
        assert!(
            e.to_string()
                .starts_with("invalid date-time in DTSTART: \"start date and time\"")
        );
    }

    // ------------------------------------------------ per-quirk tables ----

    /// (quirk, VEVENT body, output with all quirks, output with only this
    /// quirk off: `Ok(lines)` or `Err(())`).
    type QuirkCase = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        Result<&'static [&'static str], ()>,
    );

    const QUIRK_CASES: &[QuirkCase] = &[
        (
            "relaxed_spacing",
            &["SUMMARY: Hello", "LOCATION:\tRoom 1"],
            &["SUMMARY:Hello", "LOCATION:Room 1", DTSTAMP],
            Ok(&["SUMMARY: Hello", "LOCATION:\tRoom 1", DTSTAMP]),
        ),
        (
            "relaxed_spacing",
            &["ATTENDEE; RSVP = YES ; CN = \" Doe, J \" ; ROLE = CHAIR : mailto:a@b.com"],
            &[
                "ATTENDEE;RSVP=TRUE;CN=\" Doe, J \";ROLE=CHAIR:mailto:a@b.com",
                DTSTAMP,
            ],
            Err(()),
        ),
        (
            "relaxed_spacing",
            &["DTSTART :19961231T200000Z"],
            &["DTSTART:19961231T200000Z", DTSTAMP],
            Err(()),
        ),
        (
            "relaxed_spacing",
            &["DESCRIPTION;QUOTED-PRINTABLE;X-UNKNOWN-BARE:Caf=C3=A9"],
            &["DESCRIPTION:Café", DTSTAMP],
            Err(()),
        ),
        (
            "broken_line_rejoin",
            &["ATTENDEE;ROLE=ATTENDEE;STATUS=TENTATIVE:mary", "@xyz.com"],
            &[
                "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=TENTATIVE:mailto:mary@xyz.com",
                DTSTAMP,
            ],
            Err(()),
        ),
        (
            "broken_line_rejoin",
            &["DESCRIPTION:Meeting at", "10:30 in room 5", "SUMMARY:x"],
            &[
                "DESCRIPTION:Meeting at 10:30 in room 5",
                "SUMMARY:x",
                DTSTAMP,
            ],
            Ok(&[
                "DESCRIPTION:Meeting at",
                "10:30 in room 5",
                "SUMMARY:x",
                DTSTAMP,
            ]),
        ),
        (
            "broken_line_rejoin",
            &["DESCRIPTION:Keep stray chars ", "2000!>"],
            &["DESCRIPTION:Keep stray chars 2000!>", DTSTAMP],
            Err(()),
        ),
        (
            "missing_colon",
            &["UID unique identifier of event", "SEQUENCE 2"],
            &["UID:unique identifier of event", "SEQUENCE:2", DTSTAMP],
            Err(()),
        ),
        (
            "legacy_datetime",
            &["DTSTART:19961231T2000-0500"],
            &["DTSTART:19970101T010000Z", DTSTAMP],
            Err(()),
        ),
        (
            "legacy_datetime",
            &[
                "DTEND:19961126T1630-05:00",
                "DUE:19961231",
                "COMPLETED:19961126T1630Z",
            ],
            &[
                "DTEND:19961126T213000Z",
                "DUE;VALUE=DATE:19961231",
                "COMPLETED:19961126T163000Z",
                DTSTAMP,
            ],
            Err(()),
        ),
        (
            "legacy_datetime",
            &[
                "EXDATE:19961231T2000-0500;19970107T2000-0500",
                "RDATE;VALUE=PERIOD:19961231T2000Z/PT1H",
            ],
            &[
                "EXDATE:19970101T010000Z,19970108T010000Z",
                "RDATE;VALUE=PERIOD:19961231T200000Z/PT1H",
                DTSTAMP,
            ],
            Err(()),
        ),
        (
            "legacy_datetime",
            &[
                "DTSTART;TZID=America/New_York:19961231T2000",
                "DTSTAMP:19961231T2000-0500",
            ],
            &[
                "DTSTART;TZID=America/New_York:19961231T200000",
                "DTSTAMP:19970101T010000Z",
            ],
            Err(()),
        ),
        (
            "legacy_names",
            &[
                "SUBJECT:Important Meeting",
                "RESPONSE-SEQUENCE:1",
                "CLASS:Private",
                "TRANSP:0",
                "DCREATED:19960401T073000Z",
                "RRULE:W1 TU TH #10",
                "EXRULE:FREQ=DAILY;COUNT=2",
            ],
            &[
                "SUMMARY:Important Meeting",
                "X-CIP-RESPONSE-SEQUENCE:1",
                "CLASS:PRIVATE",
                "TRANSP:OPAQUE",
                "CREATED:19960401T073000Z",
                "X-VCAL-RRULE:W1 TU TH #10",
                "EXRULE:FREQ=DAILY;COUNT=2",
                DTSTAMP,
            ],
            Ok(&[
                "SUBJECT:Important Meeting",
                "RESPONSE-SEQUENCE:1",
                "CLASS:Private",
                "TRANSP:0",
                "DCREATED:19960401T073000Z",
                "RRULE:W1 TU TH #10",
                "EXRULE:FREQ=DAILY;COUNT=2",
                DTSTAMP,
            ]),
        ),
        (
            "attendee_status",
            &[
                "ATTENDEE;STATUS=NEEDS ACTION;RSVP=YES;ROLE=ATTENDEE:mailto:a@b.com",
                "ATTENDEE;STATUS=SENT;RSVP=NO;EXPECT=FYI:mailto:c@b.com",
                "ATTENDEE;STATUS=DELEGATED;PARTSTAT=DECLINED;ROLE=DELEGATE:mailto:d@b.com",
                "STATUS:ACCEPTED",
            ],
            &[
                "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;ROLE=REQ-PARTICIPANT:mailto:a@b.com",
                "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=FALSE;ROLE=NON-PARTICIPANT:mailto:c@b.com",
                "ATTENDEE;PARTSTAT=DECLINED;ROLE=REQ-PARTICIPANT:mailto:d@b.com",
                "X-CIP-STATUS:ACCEPTED",
                DTSTAMP,
            ],
            Ok(&[
                "ATTENDEE;STATUS=NEEDS ACTION;RSVP=YES;ROLE=ATTENDEE:mailto:a@b.com",
                "ATTENDEE;STATUS=SENT;RSVP=NO;EXPECT=FYI:mailto:c@b.com",
                "ATTENDEE;STATUS=DELEGATED;PARTSTAT=DECLINED;ROLE=DELEGATE:mailto:d@b.com",
                "STATUS:ACCEPTED",
                DTSTAMP,
            ]),
        ),
        (
            "attendee_status",
            &["STATUS: confirmed "],
            &["STATUS:CONFIRMED", DTSTAMP],
            Ok(&["STATUS:confirmed ", DTSTAMP]),
        ),
        (
            "attendee_value_forms",
            &[
                "ATTENDEE:Name <Addr@Example.COM>",
                "ATTENDEE:bare@X.org",
                "ATTENDEE:<br@X.org>",
                "ORGANIZER:MAILTO:boss@X.org",
                "ATTENDEE;CN=Keep:Other Name <k@x.org>",
                "ATTENDEE:\"Doe, Jane\" <jd@x.org>",
                "ATTENDEE:urn:uuid:abc",
                "ATTENDEE:mailto:Already@Fine.org",
            ],
            &[
                "ATTENDEE;CN=Name:mailto:Addr@example.com",
                "ATTENDEE:mailto:bare@x.org",
                "ATTENDEE:mailto:br@x.org",
                "ORGANIZER:mailto:boss@x.org",
                "ATTENDEE;CN=Keep:mailto:k@x.org",
                "ATTENDEE;CN=\"Doe, Jane\":mailto:jd@x.org",
                "ATTENDEE:urn:uuid:abc",
                "ATTENDEE:mailto:Already@Fine.org",
                DTSTAMP,
            ],
            Ok(&[
                "ATTENDEE:Name <Addr@Example.COM>",
                "ATTENDEE:bare@X.org",
                "ATTENDEE:<br@X.org>",
                "ORGANIZER:MAILTO:boss@X.org",
                "ATTENDEE;CN=Keep:Other Name <k@x.org>",
                "ATTENDEE:\"Doe, Jane\" <jd@x.org>",
                "ATTENDEE:urn:uuid:abc",
                "ATTENDEE:mailto:Already@Fine.org",
                DTSTAMP,
            ]),
        ),
        (
            "quoted_printable",
            &[
                "SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:Caf=E9",
                "LOCATION;CHARSET=UTF-8:Salle 1",
                "COMMENT;ENCODING=QUOTED-PRINTABLE;CHARSET=windows-1252:=93Hi=94 =80",
            ],
            &[
                "SUMMARY:Café",
                "LOCATION:Salle 1",
                "COMMENT:“Hi” €",
                DTSTAMP,
            ],
            Ok(&[
                "SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:Caf=E9",
                "LOCATION;CHARSET=UTF-8:Salle 1",
                "COMMENT;ENCODING=QUOTED-PRINTABLE;CHARSET=windows-1252:=93Hi=94 =80",
                DTSTAMP,
            ]),
        ),
        (
            "quoted_printable",
            &[
                "DESCRIPTION;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Line one=0D=0ALine =",
                "two, caf=C3=A9=",
                "; done",
                "SUMMARY;ENCODING=QUOTED-PRINTABLE:Caf=E9 (no charset, not UTF-8)",
            ],
            &[
                "DESCRIPTION:Line one\\nLine two\\, café\\; done",
                "SUMMARY:Café (no charset\\, not UTF-8)",
                DTSTAMP,
            ],
            // Unconverted: the soft breaks become raw continuations (#8(c)).
            Ok(&[
                "DESCRIPTION;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Line one=0D=0ALine = two, caf=C3=A9= ; done",
                "SUMMARY;ENCODING=QUOTED-PRINTABLE:Caf=E9 (no charset, not UTF-8)",
                DTSTAMP,
            ]),
        ),
        (
            "owner_to_organizer",
            &[
                "ATTENDEE;ROLE=OWNER:Pete <p@x.org>",
                "ATTENDEE;ROLE=ORGANIZER;PARTSTAT=TENTATIVE:q@x.org",
            ],
            &[
                "ORGANIZER;CN=Pete:mailto:p@x.org",
                "ATTENDEE;CN=Pete;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:p@x.org",
                "ATTENDEE;ROLE=CHAIR;PARTSTAT=TENTATIVE:mailto:q@x.org",
                DTSTAMP,
            ],
            Ok(&[
                "ATTENDEE;CN=Pete;ROLE=OWNER:mailto:p@x.org",
                "ATTENDEE;ROLE=ORGANIZER;PARTSTAT=TENTATIVE:mailto:q@x.org",
                DTSTAMP,
            ]),
        ),
        (
            "owner_to_organizer",
            &[
                "ORGANIZER:mailto:boss@x.org",
                "ATTENDEE;ROLE=OWNER;STATUS=TENTATIVE:p@x.org",
            ],
            &[
                "ORGANIZER:mailto:boss@x.org",
                "ATTENDEE;ROLE=CHAIR;PARTSTAT=TENTATIVE:mailto:p@x.org",
                DTSTAMP,
            ],
            Ok(&[
                "ORGANIZER:mailto:boss@x.org",
                "ATTENDEE;ROLE=OWNER;PARTSTAT=TENTATIVE:mailto:p@x.org",
                DTSTAMP,
            ]),
        ),
    ];

    #[test]
    fn quirk_table() {
        for (quirk, body, on, off) in QUIRK_CASES {
            let input = wrap_vcal(body).join("\r\n");
            let n = normalise(&input, &opts()).unwrap_or_else(|e| panic!("{quirk} {body:?}: {e}"));
            assert_eq!(event_lines(&n), *on, "{quirk} on: {body:?}");
            assert!(
                n.applied.contains(quirk),
                "{quirk} not reported: {:?}",
                n.applied
            );
            let mut q = Quirks::default();
            assert!(q.set(quirk, false));
            let got = normalise(&input, &opts_with(q));
            match off {
                Ok(lines) => {
                    let n = got.unwrap_or_else(|e| panic!("{quirk} off {body:?}: {e}"));
                    assert_eq!(event_lines(&n), *lines, "{quirk} off: {body:?}");
                    assert!(!n.applied.contains(quirk), "{quirk} off but reported");
                }
                Err(()) => assert!(got.is_err(), "{quirk} off should fail: {body:?} → {got:?}"),
            }
        }
    }

    #[test]
    fn bare_property_list_quirk() {
        let n = run(&["SUMMARY:x", "VERSION:1.0"], Quirks::default()).unwrap();
        assert_eq!(
            out_lines(&n),
            vec![
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//test//EN",
                "BEGIN:VEVENT",
                "SUMMARY:x",
                DTSTAMP,
                "END:VEVENT",
                "END:VCALENDAR",
            ]
        );
        assert!(n.applied.contains(&"bare_property_list"));
        assert!(n.applied.contains(&"version_2_0"));
        let q = Quirks {
            bare_property_list: false,
            ..Quirks::default()
        };
        let e = run(&["SUMMARY:x"], q).unwrap_err();
        assert_eq!(
            e,
            NormaliseError::BareProperties {
                property: "SUMMARY".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "property SUMMARY is outside any BEGIN/END block (bare property lists are disabled)"
        );
    }

    #[test]
    fn unknown_charset_is_an_error() {
        let input = wrap_vcal(&["SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=KOI8-R:=C1"]);
        let e = normalise(&input.join("\n"), &opts()).unwrap_err();
        assert_eq!(
            e,
            NormaliseError::UnknownCharset {
                property: "SUMMARY".into(),
                charset: "KOI8-R".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "unknown charset \"KOI8-R\" in property SUMMARY"
        );
    }

    #[test]
    fn qp_soft_break_versus_rfc_fold() {
        // An indented line after "=" is an RFC 5545 fold, not a soft break.
        let input = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n\
SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Caf=\r\n C3=A9 =\r\nau lait\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";
        let n = normalise(input, &opts()).unwrap();
        assert_eq!(event_lines(&n)[0], "SUMMARY:Café au lait");
    }

    #[test]
    fn qp_soft_break_needs_the_quirk() {
        let body = ["DESCRIPTION;ENCODING=QUOTED-PRINTABLE:a=", "b"];
        let strict = normalise(&wrap_vcal(&body).join("\n"), &opts_with(Quirks::strict()));
        assert!(strict.is_err());
        let n = normalise(&wrap_vcal(&body).join("\n"), &opts()).unwrap();
        assert_eq!(event_lines(&n)[0], "DESCRIPTION:ab");
    }

    #[test]
    fn qp_decoder() {
        assert_eq!(qp_decode("a=3Db=\r"), b"a=b=\r".to_vec());
        assert_eq!(qp_decode("=E9=e9=ZZ="), vec![0xE9, 0xE9, b'=', b'Z', b'Z']);
        assert_eq!(qp_decode("=4"), b"=4".to_vec());
        assert_eq!(decode_charset(vec![0xC3, 0xA9], None), Ok("é".to_string()));
        assert_eq!(decode_charset(vec![0xE9], None), Ok("é".to_string()));
        assert_eq!(
            decode_charset(vec![0xE9], Some("latin1")),
            Ok("é".to_string())
        );
        assert_eq!(
            decode_charset(vec![0x80, 0x81], Some("US-ASCII")),
            Ok("€\u{81}".to_string())
        );
        assert_eq!(
            decode_charset(vec![0xFF], Some("utf-8")),
            Ok("\u{FFFD}".to_string())
        );
        assert_eq!(decode_charset(vec![], Some("EBCDIC")), Err(()));
    }

    #[test]
    fn partstat_mapping_table() {
        let cases = [
            ("ACCEPTED", "ACCEPTED"),
            ("NEEDS ACTION", "NEEDS-ACTION"),
            ("needs-action", "NEEDS-ACTION"),
            ("SENT", "NEEDS-ACTION"),
            ("TENTATIVE", "TENTATIVE"),
            ("CONFIRMED", "ACCEPTED"),
            ("DECLINED", "DECLINED"),
            ("COMPLETED", "COMPLETED"),
            ("DELEGATED", "DELEGATED"),
            (" in-process ", "IN-PROCESS"),
        ];
        for (vcal, ical) in cases {
            assert_eq!(partstat_from_vcal(vcal), Some(ical), "{vcal}");
        }
        assert_eq!(partstat_from_vcal("CANCELLED"), None);
        assert_eq!(partstat_from_vcal(""), None);
    }

    #[test]
    fn responder_status_rules() {
        let ev = |body: &str| {
            parse_components(&format!("BEGIN:VEVENT\n{body}END:VEVENT\n"))
                .unwrap()
                .remove(0)
        };
        // The attendee parameter wins over the property.
        assert_eq!(
            responder_status(&ev("ATTENDEE;STATUS=DECLINED:a@b\nSTATUS:CONFIRMED\n")).as_deref(),
            Some("DECLINED")
        );
        // The CHAIR is skipped when there is anyone else.
        assert_eq!(
            responder_status(&ev(
                "ATTENDEE;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:o@b\nATTENDEE;PARTSTAT=TENTATIVE:mailto:a@b\n"
            ))
            .as_deref(),
            Some("TENTATIVE")
        );
        assert_eq!(
            responder_status(&ev("ATTENDEE:mailto:a@b\nX-CIP-STATUS:NEEDS ACTION\n")).as_deref(),
            Some("NEEDS-ACTION")
        );
        assert_eq!(
            responder_status(&ev("STATUS:TENTATIVE\n")).as_deref(),
            Some("TENTATIVE")
        );
        assert_eq!(responder_status(&ev("STATUS:CANCELLED\n")), None);
        assert_eq!(
            responder_status(&ev("ATTENDEE;PARTSTAT=X-MAYBE:a@b\n")).as_deref(),
            Some("X-MAYBE")
        );
        assert_eq!(responder_status(&ev("SUMMARY:x\n")), None);
    }

    #[test]
    fn strict_quirks_accept_clean_vcalendar() {
        let input = [
            "BEGIN:VCALENDAR",
            "VERSION:1.0",
            "PRODID:-//Old//EN",
            "BEGIN:VEVENT",
            "DTSTART:19961231T200000Z",
            "SUMMARY:Party, with friends",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@b.com",
            "END:VEVENT",
            "END:VCALENDAR",
        ];
        let n = run(&input, Quirks::strict()).unwrap();
        assert_eq!(
            out_lines(&n),
            vec![
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//Old//EN",
                "BEGIN:VEVENT",
                "DTSTART:19961231T200000Z",
                "SUMMARY:Party\\, with friends",
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@b.com",
                DTSTAMP,
                "END:VEVENT",
                "END:VCALENDAR",
            ]
        );
        assert_eq!(n.applied, vec!["added_dtstamp", "version_2_0"]);
    }

    #[test]
    fn strict_quirks_reject_or_keep_every_example() {
        for input in [SENDEVENT_2_2, SENDEVENT_2_2_SEED, BILL] {
            assert!(run(input, Quirks::strict()).is_err());
        }
        // Wrapped in a calendar, the spacing and names survive unconverted.
        let body = ["SUBJECT: Important Meeting", "CLASS: Private"];
        let n = normalise(&wrap_vcal(&body).join("\n"), &opts_with(Quirks::strict())).unwrap();
        assert_eq!(
            event_lines(&n),
            vec!["SUBJECT: Important Meeting", "CLASS: Private", DTSTAMP]
        );
    }

    #[test]
    fn icalendar_passes_through_unchanged() {
        let input = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//Example//EN\r\n\
METHOD:REQUEST\r\n\
BEGIN:VEVENT\r\n\
UID:1@example.com\r\n\
DTSTAMP:20240101T000000Z\r\n\
DTSTART;TZID=Europe/Paris:20240101T100000\r\n\
DURATION:PT1H\r\n\
SUMMARY: leading space\\, escaped comma\\; and a long line that must be refol\r\n\
\x20ded at 75 octets\r\n\
ORGANIZER;CN=\"Doe, Jane\":mailto:Jane@Example.com\r\n\
ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";
        let n = normalise(input, &opts()).unwrap();
        assert_eq!(n.to_ics(), input);
        assert!(n.applied.is_empty(), "{:?}", n.applied);
    }

    #[test]
    fn icalendar_gets_dtstamp_prodid_and_fixes() {
        let input = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:1\n\
DTSTART:19961231T2000-0500\n\
SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:Caf=E9=0D=0Aau lait, 2\n\
ATTENDEE:Jen <jen@Yip.com>\nEND:VEVENT\nEND:VCALENDAR\n";
        let n = normalise(input, &opts()).unwrap();
        assert_eq!(
            out_lines(&n),
            vec![
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//test//EN",
                "BEGIN:VEVENT",
                "UID:1",
                "DTSTART:19970101T010000Z",
                "SUMMARY:Café\\nau lait\\, 2",
                "ATTENDEE;CN=Jen:mailto:jen@yip.com",
                DTSTAMP,
                "END:VEVENT",
                "END:VCALENDAR",
            ]
        );
        // Strict iCalendar: the legacy date-time is an error.
        assert!(matches!(
            normalise(input, &opts_with(Quirks::strict())),
            Err(NormaliseError::DateTime { .. })
        ));
    }

    #[test]
    fn bare_vevent_and_vfreebusy() {
        let n = normalise(
            "BEGIN:VEVENT\nUID:1\nDTSTAMP:19970101T000000Z\nEND:VEVENT\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(n.calendar.components[0].name, "VEVENT");
        assert!(n.applied.contains(&"wrapped_in_vcalendar"));
        let fb = "BEGIN:VCALENDAR\nBEGIN:VFREEBUSY\nATTENDEE:bob@b.com\n\
DTSTART:19961126T080000Z\nDTEND:19961126T200000Z\nEND:VFREEBUSY\nEND:VCALENDAR\n";
        let n = normalise(fb, &opts()).unwrap();
        assert_eq!(
            out_lines(&n),
            vec![
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//test//EN",
                "BEGIN:VFREEBUSY",
                "ATTENDEE:mailto:bob@b.com",
                "DTSTART:19961126T080000Z",
                "DTEND:19961126T200000Z",
                DTSTAMP,
                "END:VFREEBUSY",
                "END:VCALENDAR",
            ]
        );
        // cap-cstp.md §7.3 #6(a): a bare FREEBUSY request.
        let req = "ATTENDEE:bob@b.com\nDTSTART:19961126T080000Z\nDTEND:19961126T200000Z\n";
        let n = normalise_with_wrapper(req, &opts(), "VFREEBUSY").unwrap();
        assert_eq!(n.calendar.components[0].name, "VFREEBUSY");
        assert_eq!(n.calendar.components[0].properties.len(), 4);
    }

    #[test]
    fn structural_errors() {
        let o = opts();
        assert_eq!(normalise("", &o), Err(NormaliseError::Empty));
        assert_eq!(normalise(" \r\n\r\n\t", &o), Err(NormaliseError::Empty));
        assert_eq!(
            normalise("fill in example here", &o),
            Err(NormaliseError::NoProperties)
        );
        let e = normalise("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n", &o).unwrap_err();
        assert!(matches!(
            e,
            NormaliseError::Unbalanced(ComponentError::MismatchedEnd { .. })
        ));
        assert_eq!(
            e.to_string(),
            "unbalanced BEGIN/END: line 3: END:VCALENDAR does not match BEGIN:VEVENT"
        );
        let e = normalise("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\n", &o).unwrap_err();
        assert_eq!(
            e,
            NormaliseError::Unbalanced(ComponentError::MissingEnd {
                name: "VEVENT".into()
            })
        );
        assert!(matches!(
            normalise("UID:1\nEND:VEVENT\n", &o),
            Err(NormaliseError::Unbalanced(
                ComponentError::UnexpectedEnd { .. }
            ))
        ));
        assert!(matches!(
            normalise(
                "BEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VCALENDAR\nEND:VCALENDAR\n",
                &o
            ),
            Err(NormaliseError::UnexpectedComponent { .. })
        ));
        assert!(matches!(
            normalise("BEGIN:VALARM\nEND:VALARM\n", &o),
            Err(NormaliseError::UnexpectedComponent { .. })
        ));
        let deep: String = (0..20).map(|_| "BEGIN:X\n").collect();
        assert!(matches!(
            normalise(&deep, &o),
            Err(NormaliseError::Unbalanced(ComponentError::TooDeep { .. }))
        ));
        let big = "X:1\n".repeat(MAX_LINES + 1);
        assert_eq!(
            normalise(&big, &o),
            Err(NormaliseError::TooLarge { limit: MAX_LINES })
        );
    }

    #[test]
    fn output_is_folded() {
        let long = format!("DESCRIPTION: {}", "é".repeat(100));
        let n = run(&[long.as_str()], Quirks::default()).unwrap();
        let ics = n.to_ics();
        for phys in ics.split("\r\n") {
            assert!(phys.len() <= MAX_LINE_OCTETS);
        }
        assert_eq!(
            n.calendar.components[0].properties[0].value,
            "é".repeat(100)
        );
    }

    #[test]
    fn quirk_names() {
        let mut q = Quirks::strict();
        for name in Quirks::NAMES {
            assert_eq!(q.get(name), Some(false));
            assert!(q.set(name, true));
        }
        assert_eq!(q, Quirks::default());
        assert!(!q.set("nope", true));
        assert_eq!(q.get("nope"), None);
        assert_eq!(
            NormaliseOptions::new(DateTime::now_utc()).prodid,
            DEFAULT_PRODID
        );
    }

    fn check_output(n: &Normalised) {
        assert_eq!(n.calendar.name, "VCALENDAR");
        assert_eq!(n.calendar.value("VERSION"), Some("2.0"));
        assert!(n.calendar.property("PRODID").is_some());
        let ics = n.to_ics();
        for phys in ics.split_terminator("\r\n") {
            assert!(phys.len() <= MAX_LINE_OCTETS);
            assert!(!phys.contains(['\r', '\n']));
        }
        // The output is valid input for the strict parser, unchanged.
        assert_eq!(parse_components(&ics), Ok(vec![n.calendar.clone()]));
    }

    const PLAUSIBLE: &[&str] = &[
        "BEGIN:VCALENDAR",
        "END:VCALENDAR",
        "BEGIN:VEVENT",
        "END:VEVENT",
        "VERSION:1.0",
        "VERSION:2.0",
        "",
        " continued",
        "c.com",
        "<a@b.com>",
        "UID unique id",
        "DTSTART: 19961231T2000-0500",
        "DTEND:  19961126T1630-05:00",
        "DTSTART:garbage",
        "ATTENDEE; ROLE=OWNER: Pete O'Leary",
        "ATTENDEE;STATUS=CONFIRMED:bill@ab",
        "ATTENDEE;CN=\"x:y\":mailto:z@q",
        "ATTENDEE;CN=\"open:x",
        "STATUS:  CONFIRMED",
        "SUBJECT: Hi",
        "RESPONSE-SEQUENCE: 1",
        "SUMMARY;ENCODING=QUOTED-PRINTABLE:a=",
        "SUMMARY;QUOTED-PRINTABLE;CHARSET=UTF-8:=C3=A9=",
        "=E9",
        "CHARSET=X:y",
        "EXDATE:19961231T2000Z;19970101",
        "RDATE;VALUE=PERIOD:19961231T2000Z/PT1H",
        "RDATE:1/2",
        "CATEGORIES:A;B,C\\;D",
        "TRANSP:1",
        "CLASS: private",
        "X-FOO;Y = 1 :v",
        ";;;",
        ":::",
        "BEGIN:",
        "END:",
        "ORGANIZER:MAILTO:Boss@X",
        "DUE:20240230",
    ];

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,300}") {
            if let Ok(n) = normalise(&s, &opts()) {
                check_output(&n);
            }
            let _ = normalise(&s, &opts_with(Quirks::strict()));
        }

        #[test]
        fn never_panics_on_plausible_lines(
            picks in proptest::collection::vec(0..PLAUSIBLE.len(), 0..30),
            crlf: bool,
            strict: bool,
        ) {
            let lines: Vec<&str> = picks.iter().filter_map(|i| PLAUSIBLE.get(*i).copied()).collect();
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            let q = if strict { Quirks::strict() } else { Quirks::default() };
            if let Ok(n) = normalise(&text, &opts_with(q)) {
                check_output(&n);
            }
        }

        #[test]
        fn never_panics_on_random_bytes_as_lines(
            lines in proptest::collection::vec("[A-Z;:=\" <>@.,\\-0-9a-z\t]{0,30}", 0..20),
        ) {
            if let Ok(n) = normalise(&lines.join("\n"), &opts()) {
                check_output(&n);
            }
        }
    }
}
