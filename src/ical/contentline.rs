//! iCalendar content lines: unfolding, parsing, serialising and folding.
//!
//! Implements RFC 5545 §3.1 (content lines, folding and unfolding), §3.1.1
//! (multiple values), §3.2 (property parameters, quoted parameter values) and
//! the TEXT escaping of §3.3.11.
//!
//! The parser works on **one already-unfolded logical line** (use [`unfold`]
//! first) with `nom::bytes::complete` / `nom::character::complete` parsers, so
//! it never sees `Incomplete`. Values are kept **raw** (not unescaped); use
//! [`unescape_text`] when the text itself is needed.
//!
//! Tolerances beyond RFC 5545, all harmless for valid input:
//! - property and parameter names may contain `_` (seen in Lotus Notes
//!   vendor names such as `X-LOTUS-CHILD_UID`);
//! - bare LF is accepted as a line end by [`unfold`];
//! - any character other than DQUOTE is accepted inside a quoted parameter
//!   value, and any character other than DQUOTE `;` `:` `,` in an unquoted
//!   one.
//!
//! On output ([`ContentLine::to_line`]) names are reduced to their legal
//! characters and parameter values that contain DQUOTE, CR or LF are encoded
//! with RFC 6868 caret escapes, so a line built from untrusted data can never
//! inject a line break or break out of a quoted string.

use nom::{
    IResult, Parser,
    bytes::complete::{take_till, take_while1},
    character::complete::char,
    multi::separated_list1,
    sequence::delimited,
};
use std::borrow::Cow;
use thiserror::Error;

/// Longest physical line RFC 5545 §3.1 allows, in octets, excluding CRLF.
pub const MAX_LINE_OCTETS: usize = 75;

/// Why a logical line is not a valid content line.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ContentLineError {
    /// The line is empty.
    #[error("empty content line")]
    Empty,
    /// The line does not start with a property name.
    #[error("content line has no property name before {found:?}: {line:?}")]
    EmptyName {
        /// The character found where the name should start.
        found: char,
        /// The line (shortened).
        line: String,
    },
    /// There is no `:` outside quotes.
    #[error("content line has no ':' between name and value: {line:?}")]
    MissingColon {
        /// The line (shortened).
        line: String,
    },
    /// A `;` is not followed by a parameter name.
    #[error("parameter {index} of property {property} has no name")]
    EmptyParamName {
        /// The property name.
        property: String,
        /// 1-based position of the parameter.
        index: usize,
    },
    /// A parameter name is not followed by `=`.
    #[error("parameter {param} of property {property} has no '=' and no value")]
    MissingEquals {
        /// The property name.
        property: String,
        /// The parameter name.
        param: String,
    },
    /// A quoted parameter value has no closing DQUOTE.
    #[error("unterminated quoted value in parameter {param} of property {property}")]
    UnterminatedQuote {
        /// The property name.
        property: String,
        /// The parameter name.
        param: String,
    },
    /// A character that cannot appear at this place.
    #[error("unexpected {found:?} in the parameters of property {property}")]
    UnexpectedChar {
        /// The property name.
        property: String,
        /// The offending character.
        found: char,
    },
    /// The value or a parameter value contains a raw CR or LF (it must have been unfolded).
    #[error("value of property {property} contains a raw CR or LF")]
    LineBreakInValue {
        /// The property name.
        property: String,
    },
}

/// One property parameter (RFC 5545 §3.2): `NAME=value[,value…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Upper-cased parameter name.
    pub name: String,
    /// The values, with surrounding DQUOTEs removed (otherwise raw).
    pub values: Vec<String>,
}

impl Param {
    /// A parameter with a single value; the name is upper-cased.
    pub fn new(name: &str, value: &str) -> Self {
        Param {
            name: name.to_ascii_uppercase(),
            values: vec![value.to_string()],
        }
    }

    /// The first value, if any.
    pub fn value(&self) -> Option<&str> {
        self.values.first().map(String::as_str)
    }
}

/// One logical iCalendar line: `name *(";" param) ":" value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLine {
    /// Upper-cased property name.
    pub name: String,
    /// Parameters in their original order.
    pub params: Vec<Param>,
    /// The raw value (not unescaped).
    pub value: String,
}

/// Whether `c` may appear in a property or parameter name.
///
/// ```abnf
/// iana-token = 1*(ALPHA / DIGIT / "-")
/// x-name     = "X-" [vendorid "-"] 1*(ALPHA / DIGIT / "-")
/// ```
/// Tolerance: `_` is accepted as well.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Property or parameter name.
///
/// ```abnf
/// name       = iana-token / x-name      ; RFC 5545 §3.1
/// param-name = iana-token / x-name
/// iana-token = 1*(ALPHA / DIGIT / "-")  ; plus "_" (tolerance)
/// ```
pub fn name(input: &str) -> IResult<&str, &str> {
    take_while1(is_name_char).parse(input)
}

/// Quoted parameter value; returns the text between the quotes.
///
/// ```abnf
/// quoted-string = DQUOTE *QSAFE-CHAR DQUOTE
/// QSAFE-CHAR    = WSP / %x21 / %x23-7E / NON-US-ASCII   ; any char except CTLs and DQUOTE
/// ```
pub fn quoted_string(input: &str) -> IResult<&str, &str> {
    delimited(char('"'), take_till(|c| c == '"'), char('"')).parse(input)
}

/// Unquoted parameter value (may be empty).
///
/// ```abnf
/// paramtext = *SAFE-CHAR
/// SAFE-CHAR = WSP / %x21 / %x23-2B / %x2D-39 / %x3C-7E / NON-US-ASCII
///           ; any char except CTLs, DQUOTE, ";", ":", ","
/// ```
pub fn paramtext(input: &str) -> IResult<&str, &str> {
    take_till(|c| matches!(c, '"' | ';' | ':' | ',')).parse(input)
}

/// One parameter value.
///
/// ```abnf
/// param-value = paramtext / quoted-string
/// ```
///
/// A value that starts with DQUOTE must be a complete quoted-string (an
/// unterminated quote is an error, not an empty paramtext).
pub fn param_value(input: &str) -> IResult<&str, &str> {
    if input.starts_with('"') {
        quoted_string(input)
    } else {
        paramtext(input)
    }
}

/// One parameter (without the leading `;`).
///
/// ```abnf
/// param = param-name "=" param-value *("," param-value)
/// ```
pub fn param(input: &str) -> IResult<&str, Param> {
    // The values are made owned as they are parsed: no intermediate `Vec<&str>`.
    (
        name,
        char('='),
        separated_list1(char(','), param_value.map(str::to_string)),
    )
        .map(|(n, _, values): (&str, char, Vec<String>)| Param {
            name: n.to_ascii_uppercase(),
            values,
        })
        .parse(input)
}

/// Shorten `s` for an error message, on a char boundary.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_string(),
    }
}

impl ContentLine {
    /// Whether the value or a parameter value holds a raw CR or LF, which is never data: the
    /// line must have been unfolded, and in a parameter value `to_line` would write it as an
    /// RFC 6868 `^n`, so the line would not survive parse -> to_line -> parse. Such a line is
    /// [`ContentLineError::LineBreakInValue`].
    pub(crate) fn has_raw_line_break(&self) -> bool {
        self.value.contains(['\r', '\n'])
            || self
                .params
                .iter()
                .flat_map(|p| &p.values)
                .any(|v| v.contains(['\r', '\n']))
    }

    /// A line without parameters; the name is upper-cased.
    pub fn new(name: &str, value: &str) -> Self {
        ContentLine {
            name: name.to_ascii_uppercase(),
            params: Vec::new(),
            value: value.to_string(),
        }
    }

    /// Builder form of [`ContentLine::set_param`].
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        self.set_param(name, value);
        self
    }

    /// Parse one unfolded logical line.
    ///
    /// ```abnf
    /// contentline = name *(";" param) ":" value   ; RFC 5545 §3.1, without CRLF
    /// value       = *VALUE-CHAR                    ; the rest of the line, may hold ":"
    /// ```
    ///
    /// The first `:` outside a quoted parameter value starts the value.
    pub fn parse(line: &str) -> Result<ContentLine, ContentLineError> {
        let Some(first) = line.chars().next() else {
            return Err(ContentLineError::Empty);
        };
        let (mut rest, prop) = name(line).map_err(|_| {
            if line.contains(':') {
                ContentLineError::EmptyName {
                    found: first,
                    line: shorten(line),
                }
            } else {
                ContentLineError::MissingColon {
                    line: shorten(line),
                }
            }
        })?;
        let prop = prop.to_ascii_uppercase();
        let mut params = Vec::new();
        loop {
            if let Some(after) = rest.strip_prefix(';') {
                match param(after) {
                    Ok((r, p)) => {
                        params.push(p);
                        rest = r;
                    }
                    Err(_) => return Err(param_error(&prop, params.len() + 1, after, line)),
                }
            } else if let Some(value) = rest.strip_prefix(':') {
                let parsed = ContentLine {
                    name: prop,
                    params,
                    value: value.to_string(),
                };
                // Only a line holding a CR or LF somewhere can hold one in a value: two
                // memchr scans of the line instead of a char walk of every value.
                let bytes = line.as_bytes();
                if (bytes.contains(&b'\r') || bytes.contains(&b'\n')) && parsed.has_raw_line_break()
                {
                    return Err(ContentLineError::LineBreakInValue {
                        property: parsed.name,
                    });
                }
                return Ok(parsed);
            } else {
                if let Some(pname) = unterminated_quote(rest, &params) {
                    return Err(ContentLineError::UnterminatedQuote {
                        property: prop,
                        param: pname,
                    });
                }
                return Err(match rest.chars().next() {
                    None => ContentLineError::MissingColon {
                        line: shorten(line),
                    },
                    Some(_) if !rest.contains(':') => ContentLineError::MissingColon {
                        line: shorten(line),
                    },
                    Some(c) => ContentLineError::UnexpectedChar {
                        property: prop,
                        found: c,
                    },
                });
            }
        }
    }

    /// The first value of the first parameter called `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .and_then(Param::value)
    }

    /// All values of the first parameter called `name` (case-insensitive).
    pub fn param_values(&self, name: &str) -> Option<&[String]> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.values.as_slice())
    }

    /// Whether a parameter called `name` is present.
    pub fn has_param(&self, name: &str) -> bool {
        self.params
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Set a parameter to one value: replaces the first parameter with that
    /// name (and removes any further ones), or appends a new one.
    pub fn set_param(&mut self, name: &str, value: &str) {
        let mut seen = false;
        self.params.retain_mut(|p| {
            if !p.name.eq_ignore_ascii_case(name) {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            p.values = vec![value.to_string()];
            true
        });
        if !seen {
            self.params.push(Param::new(name, value));
        }
    }

    /// Remove every parameter called `name`; returns whether any was removed.
    pub fn remove_param(&mut self, name: &str) -> bool {
        let before = self.params.len();
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.params.len()
    }

    /// Serialise without folding and without CRLF.
    ///
    /// A parameter value is quoted when it contains `:`, `;` or `,`; DQUOTE,
    /// CR, LF and (then) `^` are encoded per RFC 6868. Raw CR/LF in the value
    /// become the TEXT escape `\n` so the output is always one line.
    pub fn to_line(&self) -> String {
        let mut out = String::with_capacity(self.name.len() + self.value.len() + 16);
        push_name(&mut out, &self.name);
        for p in &self.params {
            out.push(';');
            push_name(&mut out, &p.name);
            out.push('=');
            for (i, v) in p.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_param_value(&mut out, v);
            }
        }
        out.push(':');
        let mut chars = self.value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    out.push_str("\\n");
                }
                '\n' => out.push_str("\\n"),
                _ => out.push(c),
            }
        }
        out
    }
}

fn push_name(out: &mut String, name: &str) {
    out.extend(name.chars().filter(|c| is_name_char(*c)));
}

fn push_param_value(out: &mut String, v: &str) {
    let caret = v.contains(['"', '\r', '\n']);
    let quote = caret || v.contains([':', ';', ',']);
    if quote {
        out.push('"');
    }
    if caret {
        let mut chars = v.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '^' => out.push_str("^^"),
                '"' => out.push_str("^'"),
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    out.push_str("^n");
                }
                '\n' => out.push_str("^n"),
                _ => out.push(c),
            }
        }
    } else {
        out.push_str(v);
    }
    if quote {
        out.push('"');
    }
}

/// After a parameter list stopped at `rest`: is `rest` a further value of the
/// last parameter that opens a quote and never closes it?
fn unterminated_quote(rest: &str, params: &[Param]) -> Option<String> {
    let q = rest.strip_prefix(',')?.strip_prefix('"')?;
    if q.contains('"') {
        return None;
    }
    params.last().map(|p| p.name.clone())
}

/// Turn a failed [`param`] parse into a readable error.
fn param_error(prop: &str, index: usize, after: &str, line: &str) -> ContentLineError {
    let Ok((rest, pname)) = name(after) else {
        return ContentLineError::EmptyParamName {
            property: prop.to_string(),
            index,
        };
    };
    let pname = pname.to_ascii_uppercase();
    let Some(rest) = rest.strip_prefix('=') else {
        if !line.contains(':') {
            return ContentLineError::MissingColon {
                line: shorten(line),
            };
        }
        return ContentLineError::MissingEquals {
            property: prop.to_string(),
            param: pname,
        };
    };
    // Walk the values to find the first that fails; only an unterminated
    // quote can make `separated_list1(param_value)` fail after "=".
    let mut rest = rest;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            match q.find('"') {
                Some(end) => rest = q.get(end + 1..).unwrap_or_default(),
                None => {
                    return ContentLineError::UnterminatedQuote {
                        property: prop.to_string(),
                        param: pname,
                    };
                }
            }
        } else {
            rest = paramtext(rest).map(|(r, _)| r).unwrap_or(rest);
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None => break,
        }
    }
    ContentLineError::UnexpectedChar {
        property: prop.to_string(),
        found: rest.chars().next().unwrap_or(';'),
    }
}

/// Split `text` into logical lines (RFC 5545 §3.1 unfolding).
///
/// CRLF and bare LF both end a physical line. A physical line that starts with
/// SP or HTAB continues the previous logical line (that one character is
/// dropped). Empty physical lines are dropped and do not interrupt a
/// continuation. A continuation line with nothing before it starts a logical
/// line of its own, unchanged.
pub fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let cont = line.strip_prefix([' ', '\t']);
        match (cont, out.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// [`unfold`] without copying: a logical line that was not folded is borrowed from `text`,
/// only a folded one is assembled in a new `String`.
pub fn unfold_lines(text: &str) -> UnfoldLines<'_> {
    UnfoldLines {
        physical: text.split('\n').peekable(),
    }
}

/// The iterator of [`unfold_lines`].
#[derive(Debug, Clone)]
pub struct UnfoldLines<'a> {
    physical: std::iter::Peekable<std::str::Split<'a, char>>,
}

/// A physical line without its CR.
fn strip_cr(raw: &str) -> &str {
    raw.strip_suffix('\r').unwrap_or(raw)
}

impl<'a> Iterator for UnfoldLines<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        // The first non-empty physical line starts a logical line (even when indented: then
        // nothing precedes it, and it is kept unchanged).
        let first = loop {
            let line = strip_cr(self.physical.next()?);
            if !line.is_empty() {
                break line;
            }
        };
        let mut out = Cow::Borrowed(first);
        // Continuations (indented lines, skipping empty ones) are appended without the
        // indent character.
        while let Some(raw) = self.physical.peek() {
            let line = strip_cr(raw);
            if line.is_empty() {
                self.physical.next();
                continue;
            }
            let Some(rest) = line.strip_prefix([' ', '\t']) else {
                break;
            };
            out.to_mut().push_str(rest);
            self.physical.next();
        }
        Some(out)
    }
}

/// Fold one logical line (RFC 5545 §3.1).
///
/// Every physical line holds at most [`MAX_LINE_OCTETS`] octets excluding
/// CRLF, continuation lines start with one SP (counted in the 75), a UTF-8
/// sequence is never split, and every physical line ends in CRLF. The input
/// should not contain CR or LF (see [`ContentLine::to_line`]).
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut used = 0usize;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
    out
}

/// Undo RFC 5545 §3.3.11 TEXT escaping: `\\` `\;` `\,` `\n` `\N`.
///
/// An unknown escape or a trailing lone backslash is kept as it is.
pub fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(e @ ('\\' | ';' | ',')) => {
                out.push(e);
                chars.next();
            }
            Some('n' | 'N') => {
                out.push('\n');
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// Apply RFC 5545 §3.3.11 TEXT escaping: `\` `;` `,` and line breaks
/// (CRLF, LF or a lone CR all become `\n`).
pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Escape TEXT that may already be partly escaped: existing escape pairs
/// (`\\` `\;` `\,` `\n` `\N`) are kept, everything else is escaped as by
/// [`escape_text`]. Idempotent: escaping twice gives the same result.
pub fn escape_text_unescaped(s: &str) -> String {
    escape(s, true)
}

/// TEXT escaping; with `keep_escapes`, escape pairs already present are left alone.
fn escape(s: &str, keep_escapes: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(e @ ('\\' | ';' | ',' | 'n' | 'N')) if keep_escapes => {
                    out.push('\\');
                    out.push(e);
                    chars.next();
                }
                _ => out.push_str("\\\\"),
            },
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(name: &str, values: &[&str]) -> Param {
        Param {
            name: name.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn parse_table() {
        let cases: Vec<(&str, &str, Vec<Param>, &str)> = vec![
            ("SUMMARY:Hello", "SUMMARY", vec![], "Hello"),
            (
                "summary:lower case name",
                "SUMMARY",
                vec![],
                "lower case name",
            ),
            ("DESCRIPTION:", "DESCRIPTION", vec![], ""),
            (
                "ATTENDEE;CN=\"Doe, Jane\":mailto:jane@example.com",
                "ATTENDEE",
                vec![p("CN", &["Doe, Jane"])],
                "mailto:jane@example.com",
            ),
            (
                "ATTENDEE;CN=\"a:b;c,d\";ROLE=CHAIR:mailto:x@y",
                "ATTENDEE",
                vec![p("CN", &["a:b;c,d"]), p("ROLE", &["CHAIR"])],
                "mailto:x@y",
            ),
            (
                "ATTENDEE;DELEGATED-TO=\"mailto:a@x\",\"mailto:b@x\":mailto:c@x",
                "ATTENDEE",
                vec![p("DELEGATED-TO", &["mailto:a@x", "mailto:b@x"])],
                "mailto:c@x",
            ),
            (
                "X-FOO;x-bar=a,b,,c:v",
                "X-FOO",
                vec![p("X-BAR", &["a", "b", "", "c"])],
                "v",
            ),
            (
                "DTSTART;TZID=Europe/Paris:20240101T100000",
                "DTSTART",
                vec![p("TZID", &["Europe/Paris"])],
                "20240101T100000",
            ),
            ("X-LOTUS-CHILD_UID:abc", "X-LOTUS-CHILD_UID", vec![], "abc"),
            (
                "URL:http://example.com:8080/a;b",
                "URL",
                vec![],
                "http://example.com:8080/a;b",
            ),
            ("X-EMPTY;CN=:v", "X-EMPTY", vec![p("CN", &[""])], "v"),
            (
                "SUMMARY;LANGUAGE=fr:Café ☕",
                "SUMMARY",
                vec![p("LANGUAGE", &["fr"])],
                "Café ☕",
            ),
            (
                "SUMMARY;CN=\"日本\":x",
                "SUMMARY",
                vec![p("CN", &["日本"])],
                "x",
            ),
            (
                "SUMMARY: leading space kept",
                "SUMMARY",
                vec![],
                " leading space kept",
            ),
        ];
        for (line, name, params, value) in cases {
            let cl = ContentLine::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(cl.name, name, "{line}");
            assert_eq!(cl.params, params, "{line}");
            assert_eq!(cl.value, value, "{line}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases: Vec<(&str, ContentLineError)> = vec![
            ("", ContentLineError::Empty),
            (
                "SUMMARY Hello",
                ContentLineError::MissingColon {
                    line: "SUMMARY Hello".into(),
                },
            ),
            (
                "SUMMARY",
                ContentLineError::MissingColon {
                    line: "SUMMARY".into(),
                },
            ),
            (
                ":value",
                ContentLineError::EmptyName {
                    found: ':',
                    line: ":value".into(),
                },
            ),
            (
                " X:y",
                ContentLineError::EmptyName {
                    found: ' ',
                    line: " X:y".into(),
                },
            ),
            (
                "ATTENDEE;:x",
                ContentLineError::EmptyParamName {
                    property: "ATTENDEE".into(),
                    index: 1,
                },
            ),
            (
                "ATTENDEE; ROLE=OWNER:x",
                ContentLineError::EmptyParamName {
                    property: "ATTENDEE".into(),
                    index: 1,
                },
            ),
            (
                "ATTENDEE;RSVP:x",
                ContentLineError::MissingEquals {
                    property: "ATTENDEE".into(),
                    param: "RSVP".into(),
                },
            ),
            (
                "ATTENDEE;CN=\"Doe, Jane:mailto:x",
                ContentLineError::UnterminatedQuote {
                    property: "ATTENDEE".into(),
                    param: "CN".into(),
                },
            ),
            (
                "ATTENDEE;DELEGATED-TO=\"mailto:a@x\",\"mailto:b:x",
                ContentLineError::UnterminatedQuote {
                    property: "ATTENDEE".into(),
                    param: "DELEGATED-TO".into(),
                },
            ),
            (
                "ATTENDEE;CN=ab\"c\":x",
                ContentLineError::UnexpectedChar {
                    property: "ATTENDEE".into(),
                    found: '"',
                },
            ),
            (
                "ATTENDEE;CN=\"x\"y:z",
                ContentLineError::UnexpectedChar {
                    property: "ATTENDEE".into(),
                    found: 'y',
                },
            ),
            (
                "DTSTART :x",
                ContentLineError::UnexpectedChar {
                    property: "DTSTART".into(),
                    found: ' ',
                },
            ),
            (
                "SUMMARY:a\rb",
                ContentLineError::LineBreakInValue {
                    property: "SUMMARY".into(),
                },
            ),
        ];
        for (line, err) in cases {
            assert_eq!(ContentLine::parse(line), Err(err), "{line:?}");
        }
        // Messages are readable.
        let e = ContentLine::parse("ATTENDEE;CN=\"Doe:x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unterminated quoted value in parameter CN of property ATTENDEE"
        );
    }

    #[test]
    fn param_access_and_mutation() {
        let mut cl =
            ContentLine::parse("ATTENDEE;partstat=NEEDS-ACTION;RSVP=TRUE;PARTSTAT=X:mailto:a@b")
                .unwrap();
        assert_eq!(cl.param("PartStat"), Some("NEEDS-ACTION"));
        assert_eq!(cl.param("cn"), None);
        cl.set_param("PARTSTAT", "ACCEPTED");
        assert_eq!(
            cl.to_line(),
            "ATTENDEE;PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:a@b"
        );
        cl.set_param("cn", "Doe, Jane");
        assert_eq!(
            cl.to_line(),
            "ATTENDEE;PARTSTAT=ACCEPTED;RSVP=TRUE;CN=\"Doe, Jane\":mailto:a@b"
        );
        assert!(cl.remove_param("rsvp"));
        assert!(!cl.remove_param("rsvp"));
        assert_eq!(
            cl.to_line(),
            "ATTENDEE;PARTSTAT=ACCEPTED;CN=\"Doe, Jane\":mailto:a@b"
        );
        let built = ContentLine::new("x-test", "v").with_param("a", "1");
        assert_eq!(built.to_line(), "X-TEST;A=1:v");
    }

    #[test]
    fn to_line_is_injection_safe() {
        let mut cl = ContentLine::new("SUMMARY", "a\r\nb\nc");
        cl.set_param("CN", "say \"hi\"\n^");
        cl.name = "SUM\r\nMARY:".into();
        assert_eq!(cl.to_line(), "SUMMARY;CN=\"say ^'hi^'^n^^\":a\\nb\\nc");
    }

    #[test]
    fn round_trip_parse_to_line() {
        for line in [
            "ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED:mailto:jane@example.com",
            "X-A;X-B=1,2,3:v:w",
            "DTSTART;TZID=America/New_York:19970714T133000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
        ] {
            assert_eq!(ContentLine::parse(line).unwrap().to_line(), line);
        }
    }

    /// Found by the `contentline_roundtrip` fuzz target: a lone CR inside a parameter value
    /// was accepted, and `to_line` wrote it as `^n`, so parse -> to_line -> parse changed it.
    #[test]
    fn raw_line_break_in_parameter_value_is_rejected() {
        for line in [
            "X;CN=a\rb:v",
            "X;CN=\"a\rb\":v",
            "X;CN=a,b\n:v",
            "X;A=1;CN=a\r:v",
        ] {
            assert_eq!(
                ContentLine::parse(line),
                Err(ContentLineError::LineBreakInValue {
                    property: "X".into()
                }),
                "{line:?}"
            );
        }
    }

    #[test]
    fn unfold_table() {
        assert_eq!(unfold("A:1\r\nB:2\r\n"), vec!["A:1", "B:2"]);
        assert_eq!(unfold("A:1\nB:2"), vec!["A:1", "B:2"]);
        assert_eq!(
            unfold("A:lo\r\n ng\r\n\ter\r\nB:2"),
            vec!["A:longer", "B:2"]
        );
        assert_eq!(unfold("A:1\r\n\r\n\r\nB:2\r\n\r\n"), vec!["A:1", "B:2"]);
        assert_eq!(unfold("A:x\r\n  y"), vec!["A:x y"]);
        assert_eq!(unfold(" lead"), vec![" lead"]);
        assert_eq!(unfold(""), Vec::<String>::new());
        assert_eq!(unfold("\r\n\n"), Vec::<String>::new());
        // The borrowing form gives the same lines.
        for text in [
            "A:1\r\nB:2\r\n",
            "A:lo\r\n ng\r\n\r\n\ter\r\nB:2",
            " lead\r\n more\nX:y\r\r\n z\n\n",
            "",
            "\r\n \r\n",
        ] {
            assert_eq!(
                unfold_lines(text).collect::<Vec<_>>(),
                unfold(text),
                "{text:?}"
            );
        }
    }

    fn assert_folded_ok(folded: &str) {
        assert!(folded.ends_with("\r\n"));
        let body = folded.strip_suffix("\r\n").unwrap();
        for (i, phys) in body.split("\r\n").enumerate() {
            assert!(
                phys.len() <= MAX_LINE_OCTETS,
                "line {i} has {} octets",
                phys.len()
            );
            assert!(!phys.contains(['\r', '\n']));
            if i > 0 {
                assert!(phys.starts_with(' '));
            }
        }
    }

    #[test]
    fn fold_ascii() {
        let line = format!("DESCRIPTION:{}", "x".repeat(200));
        let f = fold(&line);
        assert_folded_ok(&f);
        let phys: Vec<&str> = f.trim_end_matches("\r\n").split("\r\n").collect();
        assert_eq!(phys[0].len(), 75);
        assert_eq!(phys[1].len(), 75);
        assert_eq!(unfold(&f), vec![line.clone()]);
        assert_eq!(fold("SHORT:x"), "SHORT:x\r\n");
        assert_eq!(fold(&"y".repeat(75)), format!("{}\r\n", "y".repeat(75)));
        assert_eq!(
            fold(&"y".repeat(76)),
            format!("{}\r\n y\r\n", "y".repeat(75))
        );
        assert_eq!(fold(""), "\r\n");
    }

    #[test]
    fn fold_multibyte_never_splits() {
        for unit in ["é", "日本", "😀", "aé", "a😀b日"] {
            for prefix in ["", "S:", "SUMMARY:", "X"] {
                let line = format!("{prefix}{}", unit.repeat(90));
                let f = fold(&line);
                assert_folded_ok(&f);
                // Every physical line is valid UTF-8 on its own.
                for phys in f.split("\r\n") {
                    assert!(std::str::from_utf8(phys.as_bytes()).is_ok());
                }
                assert_eq!(unfold(&f), vec![line.clone()], "{unit} {prefix}");
            }
        }
        // A 4-octet char that would straddle octet 75 moves to the next line.
        let line = format!("{}😀", "a".repeat(73));
        assert_eq!(fold(&line), format!("{}\r\n 😀\r\n", "a".repeat(73)));
    }

    #[test]
    fn text_escaping() {
        let cases = [
            ("a\\b;c,d\ne", "a\\\\b\\;c\\,d\\ne"),
            ("x\r\ny", "x\\ny"),
            ("plain", "plain"),
        ];
        for (raw, esc) in cases {
            assert_eq!(escape_text(raw), esc);
            assert_eq!(unescape_text(esc), raw.replace("\r\n", "\n"));
        }
        assert_eq!(unescape_text("A\\Nb\\x\\"), "A\nb\\x\\");
        assert_eq!(
            escape_text_unescaped("a\\,b,c;d\\;e\\q\n"),
            "a\\,b\\,c\\;d\\;e\\\\q\\n"
        );
        let once = escape_text_unescaped("x, y; z\\ \\n");
        assert_eq!(escape_text_unescaped(&once), once);
    }

    proptest! {
        #[test]
        fn fold_unfold_round_trip(s in "[^\r\n]{1,400}") {
            let f = fold(&s);
            assert_folded_ok(&f);
            prop_assert_eq!(unfold(&f), vec![s]);
        }

        #[test]
        fn unfold_lines_matches_unfold(s in "[A: \t\r\nb]{0,60}") {
            prop_assert_eq!(unfold_lines(&s).collect::<Vec<_>>(), unfold(&s));
        }

        #[test]
        fn fold_unfold_round_trip_multibyte(s in "[a é日😀\t]{1,300}") {
            let f = fold(&s);
            assert_folded_ok(&f);
            prop_assert_eq!(unfold(&f), vec![s]);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = ContentLine::parse(&s);
        }

        #[test]
        fn parse_to_line_round_trip(
            name in "[A-Z][A-Z0-9-]{0,10}",
            pname in "[A-Z][A-Z0-9-]{0,8}",
            pval in "[^\"\r\n\u{0}-\u{1f}]{0,20}",
            value in "[^\r\n]{0,40}",
        ) {
            let cl = ContentLine::new(&name, &value).with_param(&pname, &pval);
            let again = ContentLine::parse(&cl.to_line());
            prop_assert_eq!(again, Ok(cl));
        }

        #[test]
        fn escape_round_trip(s in "[^\r]{0,100}") {
            prop_assert_eq!(unescape_text(&escape_text(&s)), s.clone());
            let once = escape_text_unescaped(&s);
            prop_assert_eq!(escape_text_unescaped(&once), once);
        }
    }
}
