//! SENDDATA's MIME envelope: reads the entity a CAP client sends after `SENDDATA`
//! (cap-04 §7.1.8; spec §2.6.7 "GW tolerance" and §3.1).
//!
//! The codec ([`crate::framing`]) has already cut the block at its terminating `.` line and
//! removed the dot-stuffing. [`parse`] turns that block, bytes with CRLF (or bare LF) line ends,
//! into an [`Entity`]: the parsed `Content-Type` ([`ContentType`]), the headers as sent, and the
//! body as text with CRLF line ends, ready for [`crate::ical`].
//!
//! What it does (the tolerances are spec §2.6.7's, or marked GW where this module decides):
//!
//! - **Headers** (RFC 2045 §3, RFC 5322 §2.2): names are case-insensitive (the drafts write
//!   `CONTENT-TYPE`, `Content-Type` and `Content-type`); a line starting with a space or tab
//!   continues the previous header (RFC 5322 §2.2.3); and a header whose value ends in `;`
//!   continues on the next line even without leading whitespace, as the -02/-04 examples fold
//!   `Optinfo=VERSION:2.1`. The headers end at the first empty line. GW: a line of only spaces
//!   or tabs counts as empty (telnet users), empty lines before the headers are skipped, and a
//!   `BEGIN:` line also ends the headers when the client forgot the empty line.
//! - **No headers**: if the first non-empty line starts with `BEGIN:` (any case), the whole
//!   block is the body and the type is `text/calendar` with no parameters (spec §2.6.7).
//! - **Content-Type** (RFC 2045 §5.1): `type/subtype` then `;`-separated `name=value` or
//!   `name="quoted value"` parameters (backslash escapes inside quotes), whitespace tolerated.
//!   Missing → `text/calendar`. Accepted types: see [`CALENDAR_TYPES`]; anything else, notably
//!   `multipart/*` (RFC 2046 §5.1, which CAP only uses server → client, cap-04 §9.2.1), is an
//!   error.
//! - **Content-Transfer-Encoding** (RFC 2045 §6): `7bit` (default), `8bit`, `binary`,
//!   `quoted-printable` (§6.7) and `base64` (§6.8); see [`TransferEncoding`].
//! - **charset** (RFC 2046 §4.1.2; default UTF-8 per cap-02 §12.2 and RFC 5545 §8.1): see
//!   [`Charset`].
//! - **Line ends**: the body comes back with every line ending in CRLF, including the last.
//!
//! What it does not do: multipart bodies, RFC 2047 encoded words and RFC 2231 parameter
//! continuations in headers, header comments, dot-unstuffing and the size limit (the codec's),
//! iCalendar parsing ([`crate::ical`]), or any I/O. It never panics, whatever the input, and
//! allocates at most a small multiple of the input's size (latin-1/windows-1252 text can grow
//! up to three times in UTF-8).
//!
//! Line numbers in errors count the lines of the block, starting at 1 with the first line the
//! client sent after `SENDDATA`, so a telnet user can find the line; a UTF-8 error inside a
//! quoted-printable or base64 body gives the line of the decoded text instead ([`LineRef`]).

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

/// The media types read as calendar data. `text/calendar` is RFC 5545 §8.1's; GW also accepts
/// `text/x-calendar`, `text/x-vcalendar` (vCalendar 1.0's type) and `application/calendar`,
/// which pre-standard clients sent for the same content. [`ContentType::mime_type`] keeps the
/// one the client sent (lower-cased).
pub const CALENDAR_TYPES: [&str; 4] = [
    "text/calendar",
    "text/x-calendar",
    "text/x-vcalendar",
    "application/calendar",
];

/// A decoded SENDDATA entity (cap-04 §7.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// The `Content-Type`, or `text/calendar` without parameters when none was sent.
    pub content_type: ContentType,
    /// How the body was transferred (RFC 2045 §6.1).
    pub transfer_encoding: TransferEncoding,
    /// The character set the body was decoded from.
    pub charset: Charset,
    /// The decoded text. Every line ends in CRLF (a final CRLF is added if missing); CRLF, bare
    /// LF and bare CR in the input all count as line ends. A leading UTF-8 byte-order mark is
    /// removed. Never empty or only whitespace.
    pub body: String,
    /// The headers as received, in order: names as sent, values unfolded and trimmed. Empty when
    /// the block had no headers.
    pub headers: Vec<(String, String)>,
    /// The tolerances the reader applied, in order, for logging (each at most once):
    /// `headerless`, `leading_blank_lines`, `missing_blank_line`, `semicolon_fold`,
    /// `missing_content_type`, `content_type_alias`, `eight_bit_in_7bit`,
    /// `ascii_label_on_utf8`, `ascii_label_on_latin1`, `qp_malformed_escape`,
    /// `base64_unpadded`, `base64_stray_padding`.
    pub quirks: Vec<&'static str>,
}

impl Entity {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed `Content-Type` value (RFC 2045 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower-cased; for a parsed [`Entity`] one of [`CALENDAR_TYPES`].
    pub mime_type: String,
    /// The parameters in order: names lower-cased, values unquoted and trimmed.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// `text/calendar` without parameters: what a block without `Content-Type` means.
    pub fn calendar() -> Self {
        Self {
            mime_type: "text/calendar".to_string(),
            params: Vec::new(),
        }
    }

    /// Parses a `Content-Type` header value. Lenient: it never fails, an empty type stays empty
    /// (callers decide), a parameter without `=` is dropped, an unterminated quoted value runs
    /// to the end, and text after the type but before the first `;` is read as a parameter
    /// (`text/calendar method=READ`).
    pub fn parse(value: &str) -> Self {
        let mut segments = split_unquoted(value).into_iter();
        let first = segments.next().unwrap_or_default().trim();
        let (ty, extra) = match first.find(char::is_whitespace) {
            Some(i) => first.split_at(i),
            None => (first, ""),
        };
        let params = std::iter::once(extra)
            .chain(segments)
            .filter_map(parse_param)
            .collect();
        Self {
            mime_type: ty.to_ascii_lowercase(),
            params,
        }
    }

    /// The first parameter called `name` (case-insensitive), as sent (possibly empty).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `method` parameter (cap-04 §7.2: CREATE, READ, …), if present and not empty.
    pub fn method(&self) -> Option<&str> {
        self.non_empty("method")
    }

    /// The `component` parameter (VCOMMAND, VQUERY, VEVENT, …), if present and not empty.
    pub fn component(&self) -> Option<&str> {
        self.non_empty("component")
    }

    /// The `charset` parameter, if present and not empty.
    pub fn charset(&self) -> Option<&str> {
        self.non_empty("charset")
    }

    fn non_empty(&self, name: &str) -> Option<&str> {
        self.param(name).filter(|v| !v.is_empty())
    }
}

/// A `Content-Transfer-Encoding` (RFC 2045 §6.1); names are case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEncoding {
    /// `7bit`, the default. GW: 8-bit bytes are tolerated and decoded per the charset.
    SevenBit,
    /// `8bit`.
    EightBit,
    /// `binary`, read as `8bit`.
    Binary,
    /// `quoted-printable` (RFC 2045 §6.7): `=XX` in either case, soft line breaks (`=` at the
    /// end of a line, transport padding after it allowed). GW: a malformed `=` is kept
    /// literally, and trailing whitespace on a hard line is kept rather than deleted (a direct
    /// TCP client adds none, and a client that labels plain text quoted-printable loses
    /// nothing).
    QuotedPrintable,
    /// `base64` (RFC 2045 §6.8): whitespace and line breaks ignored, missing padding tolerated,
    /// the URL-safe `-` and `_` accepted; any other character outside the alphabet is an error.
    Base64,
}

impl TransferEncoding {
    /// Reads a header value (trimmed, case-insensitive, quotes ignored); empty means `7bit`.
    pub fn from_label(label: &str) -> Option<Self> {
        let label = label.trim().trim_matches('"').trim();
        Some(match label.to_ascii_lowercase().as_str() {
            "" | "7bit" => Self::SevenBit,
            "8bit" => Self::EightBit,
            "binary" => Self::Binary,
            "quoted-printable" => Self::QuotedPrintable,
            "base64" => Self::Base64,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevenBit => "7bit",
            Self::EightBit => "8bit",
            Self::Binary => "binary",
            Self::QuotedPrintable => "quoted-printable",
            Self::Base64 => "base64",
        }
    }
}

/// The character sets a body may be in (RFC 2046 §4.1.2 `charset`). Default UTF-8 (cap-02
/// §12.2 CHARSET, RFC 5545 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `UTF-8` (also `utf8`). Invalid UTF-8 is an error naming the line.
    Utf8,
    /// `US-ASCII` (also `ascii`). GW: a body with 8-bit bytes despite the label is read as
    /// UTF-8 if it is valid UTF-8, else as ISO-8859-1 (clients mislabel; neither loses data).
    UsAscii,
    /// `ISO-8859-1` (also `latin1`, `iso8859-1`, …): each byte is the code point of that value.
    Latin1,
    /// `windows-1252` (also `cp1252`): ISO-8859-1 with printable characters in 0x80–0x9F.
    Windows1252,
}

impl Charset {
    /// Reads a charset label (case-insensitive, quotes and whitespace ignored).
    pub fn from_label(label: &str) -> Option<Self> {
        let label = label.trim().trim_matches('"').trim();
        Some(match label.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Self::Utf8,
            "us-ascii" | "ascii" | "us" | "ansi_x3.4-1968" | "iso646-us" => Self::UsAscii,
            "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "iso_8859-1:1987" | "latin1"
            | "latin-1" | "l1" | "cp819" | "ibm819" | "iso-ir-100" => Self::Latin1,
            "windows-1252" | "cp1252" | "x-cp1252" => Self::Windows1252,
            _ => return None,
        })
    }

    /// The canonical (IANA) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::UsAscii => "US-ASCII",
            Self::Latin1 => "ISO-8859-1",
            Self::Windows1252 => "windows-1252",
        }
    }
}

/// Where in the input a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRef {
    /// A line of the block as sent (1 = the first line after `SENDDATA`).
    Entity(usize),
    /// A line of the body after quoted-printable or base64 decoding (1 = its first line).
    Decoded(usize),
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entity(n) => write!(f, "line {n}"),
            Self::Decoded(n) => write!(f, "line {n} of the decoded body"),
        }
    }
}

/// Why a SENDDATA entity cannot be read. The texts are meant for the person at the other end
/// (often at telnet): one line, printable ASCII only (client-supplied names are shown with
/// control and non-ASCII characters replaced by `?` and cut at 40 characters), saying what to
/// send instead. A caller answers all of them with the parse-error status (spec §3.6, `8.0`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MimeError {
    /// A header line without `:` (often: calendar data without the empty line before it).
    #[error(
        "header line {line} has no ':' (end the headers with an empty line before the calendar data)"
    )]
    HeaderWithoutColon {
        /// Line number in the block.
        line: usize,
    },
    /// A header line that starts with `:`.
    #[error("header line {line} has no name before ':'")]
    EmptyHeaderName {
        /// Line number in the block.
        line: usize,
    },
    /// A `Content-Type` other than the [`CALENDAR_TYPES`].
    #[error("Content-Type {mime_type} is not supported (send text/calendar)")]
    UnsupportedContentType {
        /// The type as sent, lower-cased.
        mime_type: String,
    },
    /// A `Content-Transfer-Encoding` other than those of [`TransferEncoding`].
    #[error(
        "unknown Content-Transfer-Encoding '{encoding}' (use 7bit, 8bit, quoted-printable or base64)"
    )]
    UnknownTransferEncoding {
        /// The value as sent.
        encoding: String,
    },
    /// A `charset` other than those of [`Charset`].
    #[error("charset '{charset}' is not supported (use UTF-8, US-ASCII or ISO-8859-1)")]
    UnsupportedCharset {
        /// The value as sent.
        charset: String,
    },
    /// A base64 body with a character outside the alphabet, or one that stops after a single
    /// character of a four-character group.
    #[error("body is not valid base64 (line {line}: {detail})")]
    InvalidBase64 {
        /// Line number in the block.
        line: usize,
        /// What is wrong there.
        detail: String,
    },
    /// A body declared (or defaulted to) UTF-8 that is not UTF-8.
    #[error(
        "body is not valid UTF-8 ({at}); send UTF-8 or declare the charset, e.g. charset=ISO-8859-1"
    )]
    InvalidUtf8 {
        /// The first line with an invalid sequence.
        at: LineRef,
    },
    /// Nothing but whitespace after the headers (or an empty block).
    #[error(
        "no body (after the headers send an empty line, then the calendar data: BEGIN:VCAP ...)"
    )]
    NoBody,
}

/// Reads one SENDDATA entity (cap-04 §7.1.8): `block` is the data the client sent between
/// `SENDDATA` and the `.` line, dot-unstuffed, lines ending in CRLF or LF. See the module docs
/// for the rules and tolerances.
pub fn parse(block: &[u8]) -> Result<Entity, MimeError> {
    let mut quirks = Quirks::default();
    let block = block.strip_prefix(UTF8_BOM).unwrap_or(block);
    let head = read_head(block, &mut quirks)?;

    let content_type = match find(&head.headers, "content-type") {
        Some(value) => {
            let mut ct = ContentType::parse(value);
            if ct.mime_type.is_empty() {
                ct.mime_type = "text/calendar".to_string();
            }
            ct
        }
        None => {
            if !head.headers.is_empty() {
                quirks.add("missing_content_type");
            }
            ContentType::calendar()
        }
    };
    if !CALENDAR_TYPES.contains(&content_type.mime_type.as_str()) {
        return Err(MimeError::UnsupportedContentType {
            mime_type: shown(&content_type.mime_type),
        });
    }
    if content_type.mime_type != "text/calendar" {
        quirks.add("content_type_alias");
    }
    let transfer_encoding = match find(&head.headers, "content-transfer-encoding") {
        Some(value) => TransferEncoding::from_label(value).ok_or_else(|| {
            MimeError::UnknownTransferEncoding {
                encoding: shown(value),
            }
        })?,
        None => TransferEncoding::SevenBit,
    };
    let charset = match content_type.charset() {
        Some(label) => Charset::from_label(label).ok_or_else(|| MimeError::UnsupportedCharset {
            charset: shown(label),
        })?,
        None => Charset::Utf8,
    };

    let raw = block.get(head.body_start..).unwrap_or_default();
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(MimeError::NoBody);
    }
    let (bytes, transformed): (Cow<'_, [u8]>, bool) = match transfer_encoding {
        TransferEncoding::SevenBit => {
            if !raw.is_ascii() {
                quirks.add("eight_bit_in_7bit");
            }
            (Cow::Borrowed(raw), false)
        }
        TransferEncoding::EightBit | TransferEncoding::Binary => (Cow::Borrowed(raw), false),
        TransferEncoding::QuotedPrintable => (Cow::Owned(qp_decode(raw, &mut quirks)), true),
        TransferEncoding::Base64 => (
            Cow::Owned(base64_decode(raw, head.body_line, &mut quirks)?),
            true,
        ),
    };
    let locate = |decoded_line: usize| {
        if transformed {
            LineRef::Decoded(decoded_line)
        } else {
            LineRef::Entity(
                head.body_line
                    .saturating_add(decoded_line.saturating_sub(1)),
            )
        }
    };
    let text = decode_charset(&bytes, charset, locate, &mut quirks)?;
    let body = normalise_line_ends(&text);
    if body.trim().is_empty() {
        return Err(MimeError::NoBody);
    }
    Ok(Entity {
        content_type,
        transfer_encoding,
        charset,
        body,
        headers: head
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        quirks: quirks.0,
    })
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The tolerances applied so far, each recorded once.
#[derive(Debug, Default)]
struct Quirks(Vec<&'static str>);

impl Quirks {
    fn add(&mut self, name: &'static str) {
        if !self.0.contains(&name) {
            self.0.push(name);
        }
    }
}

/// One physical line of the input.
#[derive(Debug, Clone, Copy)]
struct RawLine<'a> {
    /// 1-based line number.
    no: usize,
    /// Offset of the line's first byte.
    start: usize,
    /// The line without its LF and without trailing CRs.
    text: &'a [u8],
    /// Offset just after the line end.
    next: usize,
    /// Whether an LF ended the line (false only for an unterminated last line).
    terminated: bool,
}

/// Splits bytes at LF (a CR before it is dropped), numbering the lines from `first_no`.
#[derive(Debug)]
struct RawLines<'a> {
    bytes: &'a [u8],
    pos: usize,
    no: usize,
}

impl<'a> RawLines<'a> {
    fn new(bytes: &'a [u8], first_no: usize) -> Self {
        Self {
            bytes,
            pos: 0,
            no: first_no,
        }
    }
}

impl<'a> Iterator for RawLines<'a> {
    type Item = RawLine<'a>;

    fn next(&mut self) -> Option<RawLine<'a>> {
        let rest = self.bytes.get(self.pos..).filter(|r| !r.is_empty())?;
        let (text, used, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.split_at(i).0, i + 1, true),
            None => (rest, rest.len(), false),
        };
        let mut text = text;
        while let Some((b'\r', init)) = text.split_last() {
            text = init;
        }
        let line = RawLine {
            no: self.no,
            start: self.pos,
            text,
            next: self.pos + used,
            terminated,
        };
        self.pos += used;
        self.no += 1;
        Some(line)
    }
}

/// One (unfolded) header.
#[derive(Debug)]
struct Header {
    name: String,
    value: String,
}

/// The header section and where the body starts.
#[derive(Debug)]
struct Head {
    headers: Vec<Header>,
    /// Offset of the body's first byte.
    body_start: usize,
    /// Line number of the body's first line.
    body_line: usize,
}

fn is_blank(text: &[u8]) -> bool {
    text.iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\r' | 0x0B | 0x0C))
}

fn starts_with_begin(text: &[u8]) -> bool {
    text.get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"BEGIN:"))
}

/// Header text: UTF-8 if valid, else ISO-8859-1 (every byte a character).
fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Whether `line` continues a header whose value ends in `;` (spec §2.6.7): it does unless it
/// looks like a header of its own, i.e. unless it has a `:` with no `=` before it
/// (`Optinfo=VERSION:2.1` continues, `Content-Transfer-Encoding: 7bit` does not).
fn continues_parameters(line: &str) -> bool {
    match (line.find(':'), line.find('=')) {
        (None, _) => true,
        (Some(colon), Some(eq)) => eq < colon,
        (Some(_), None) => false,
    }
}

/// Reads the header section (RFC 2045 §3 with the spec §2.6.7 tolerances).
fn read_head(block: &[u8], quirks: &mut Quirks) -> Result<Head, MimeError> {
    // (first line number, unfolded text) of each logical header line.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut started = false;
    let mut end = None;
    let mut last_no = 0;
    for line in RawLines::new(block, 1) {
        last_no = line.no;
        let blank = is_blank(line.text);
        if !started {
            if blank {
                quirks.add("leading_blank_lines");
                continue;
            }
            started = true;
            if starts_with_begin(line.text) {
                quirks.add("headerless");
                return Ok(Head {
                    headers: Vec::new(),
                    body_start: line.start,
                    body_line: line.no,
                });
            }
        }
        if blank {
            end = Some((line.next, line.no + 1));
            break;
        }
        if starts_with_begin(line.text) {
            quirks.add("missing_blank_line");
            end = Some((line.start, line.no));
            break;
        }
        let text = header_text(line.text);
        match logical.last_mut() {
            // RFC 5322 §2.2.3: a line starting with whitespace continues the header.
            Some((_, prev)) if text.starts_with([' ', '\t']) => prev.push_str(&text),
            // Spec §2.6.7: a value ending in `;` continues without leading whitespace.
            Some((_, prev)) if prev.trim_end().ends_with(';') && continues_parameters(&text) => {
                quirks.add("semicolon_fold");
                prev.truncate(prev.trim_end().len());
                prev.push(' ');
                prev.push_str(text.trim());
            }
            _ => logical.push((line.no, text)),
        }
    }
    let (body_start, body_line) = end.unwrap_or((block.len(), last_no + 1));
    let mut headers = Vec::with_capacity(logical.len());
    for (line, text) in logical {
        let (name, value) = text
            .split_once(':')
            .ok_or(MimeError::HeaderWithoutColon { line })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(MimeError::EmptyHeaderName { line });
        }
        headers.push(Header {
            name: name.to_string(),
            value: value.trim().to_string(),
        });
    }
    Ok(Head {
        headers,
        body_start,
        body_line,
    })
}

/// The value of the first header called `name` (case-insensitive); the first one wins when a
/// client repeats a header.
fn find<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Splits a header value at the `;`s outside double quotes (a backslash escapes inside quotes).
fn split_unquoted(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quote && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if c == ';' && !in_quote {
            parts.push(value.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    parts.push(value.get(start..).unwrap_or_default());
    parts
}

/// `name=value` or `name="quoted value"`; `None` for an empty segment or one without `=`.
fn parse_param(segment: &str) -> Option<(String, String)> {
    let (name, value) = segment.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let value = value.trim();
    let value = match value.strip_prefix('"') {
        Some(quoted) => unquote(quoted),
        None => value.to_string(),
    };
    Some((name.to_ascii_lowercase(), value))
}

/// The inside of a quoted string (RFC 2045 §5.1, RFC 5322 §3.2.4), after its opening quote:
/// up to the closing quote (or the end), with backslash escapes resolved.
fn unquote(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A client-supplied name made safe for an error text: printable ASCII only, at most 40
/// characters.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let value = value.trim();
    let mut out: String = value
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 §6.7), line by line: `=XX` (either case) is a byte, `=` at the end
/// of a line (optionally followed by spaces or tabs) is a soft line break, any other `=` is kept
/// as is. Hard line breaks become LF (normalised to CRLF later).
fn qp_decode(raw: &[u8], quirks: &mut Quirks) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in RawLines::new(raw, 1) {
        let mut trimmed = line.text;
        while let Some((b' ' | b'\t', init)) = trimmed.split_last() {
            trimmed = init;
        }
        let (content, soft) = match trimmed.split_last() {
            Some((b'=', init)) => (init, true),
            _ => (line.text, false),
        };
        let mut i = 0;
        while let Some(&b) = content.get(i) {
            if b == b'=' {
                let hi = content.get(i + 1).copied().and_then(hex_value);
                let lo = content.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 3;
                    continue;
                }
                quirks.add("qp_malformed_escape");
            }
            out.push(b);
            i += 1;
        }
        if line.terminated && !soft {
            out.push(b'\n');
        }
    }
    out
}

fn base64_value(b: u8) -> Option<u32> {
    let v = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// A byte for an error text: `':'` if printable ASCII, else `byte 0xNN`.
fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// Base64 (RFC 2045 §6.8). Whitespace is ignored; `=` ends a four-character group (so
/// concatenated encodings decode too); a group cut short by the end of the data or by `=` still
/// yields its whole bytes. Errors: a character outside the alphabet, or a group of one
/// character (six bits cannot make a byte). `first_line` numbers the body's first line.
fn base64_decode(raw: &[u8], first_line: usize, quirks: &mut Quirks) -> Result<Vec<u8>, MimeError> {
    let mut out = Vec::with_capacity(raw.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut n = 0u8;
    // `=`s still expected to pad the group just ended.
    let mut padding_left = 0u8;
    let mut line = first_line;
    let mut data_line = first_line;
    let single = |line: usize| MimeError::InvalidBase64 {
        line,
        detail: "a group of four characters stops after its first one".to_string(),
    };
    for &b in raw {
        match b {
            b'\n' => line += 1,
            b' ' | b'\t' | b'\r' | 0x0B | 0x0C => {}
            b'=' => {
                match n {
                    0 if padding_left > 0 => padding_left -= 1,
                    0 => quirks.add("base64_stray_padding"),
                    1 => return Err(single(line)),
                    2 => {
                        out.push((acc >> 4) as u8);
                        padding_left = 1;
                    }
                    _ => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
                }
                n = 0;
                acc = 0;
            }
            _ => {
                let v = base64_value(b).ok_or_else(|| MimeError::InvalidBase64 {
                    line,
                    detail: format!("{} is not a base64 character", describe_byte(b)),
                })?;
                data_line = line;
                padding_left = 0;
                acc = (acc << 6) | v;
                n += 1;
                if n == 4 {
                    out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
                    n = 0;
                    acc = 0;
                }
            }
        }
    }
    match n {
        0 => {}
        1 => return Err(single(data_line)),
        2 => {
            quirks.add("base64_unpadded");
            out.push((acc >> 4) as u8);
        }
        _ => {
            quirks.add("base64_unpadded");
            out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
        }
    }
    Ok(out)
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Bytes to text in `charset`; `locate` turns a 1-based line of `bytes` into a [`LineRef`].
fn decode_charset(
    bytes: &[u8],
    charset: Charset,
    locate: impl Fn(usize) -> LineRef,
    quirks: &mut Quirks,
) -> Result<String, MimeError> {
    Ok(match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => s.strip_prefix('\u{FEFF}').unwrap_or(s).to_string(),
            Err(e) => {
                let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
                return Err(MimeError::InvalidUtf8 { at: locate(line) });
            }
        },
        Charset::UsAscii if bytes.is_ascii() => latin1(bytes),
        Charset::UsAscii => match std::str::from_utf8(bytes) {
            Ok(s) => {
                quirks.add("ascii_label_on_utf8");
                s.strip_prefix('\u{FEFF}').unwrap_or(s).to_string()
            }
            Err(_) => {
                quirks.add("ascii_label_on_latin1");
                latin1(bytes)
            }
        },
        Charset::Latin1 => latin1(bytes),
        Charset::Windows1252 => crate::ical::vcal10::decode_cp1252(bytes),
    })
}

/// CRLF, bare LF and bare CR all become CRLF (CRs directly before an LF are one line end:
/// `\r\r\n` comes from a client converting line ends twice); a final CRLF is added to
/// non-empty text.
fn normalise_line_ends(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16 + 2);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                let mut run = 1;
                while chars.next_if_eq(&'\r').is_some() {
                    run += 1;
                }
                if chars.next_if_eq(&'\n').is_some() {
                    run = 1;
                }
                for _ in 0..run {
                    out.push_str("\r\n");
                }
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    if !out.is_empty() && !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(block: &str) -> Entity {
        parse(block.as_bytes()).unwrap_or_else(|e| panic!("{e}: {block:?}"))
    }

    fn err(block: &[u8]) -> MimeError {
        match parse(block) {
            Ok(e) => panic!("unexpectedly parsed: {e:?}"),
            Err(e) => e,
        }
    }

    /// The VCAP body of spec §5.4.
    const CREATE_BODY: &str = "BEGIN:VCAP\r\nVERSION:2.0\r\nCMDID:abcde\r\nBEGIN:VCOMMAND\r\n\
        METHOD:CREATE\r\nTARGET:cap://cal.example.com/relcal1\r\nBEGIN:VEVENT\r\n\
        UID:abcd12345\r\nDTSTAMP:20010301T120000Z\r\nDTSTART:20010307T180000Z\r\n\
        DTEND:20010307T190000Z\r\nSUMMARY:Important Meeting\r\n\
        ORGANIZER:cap://cal.example.com/relcal1\r\nEND:VEVENT\r\nEND:VCOMMAND\r\nEND:VCAP\r\n";

    const SMALL_BODY: &str = "BEGIN:VCAP\r\nVERSION:2.0\r\nEND:VCAP\r\n";

    // ---- spec §5 example shapes -------------------------------------------------------

    #[test]
    fn spec_5_4_create() {
        let block = format!(
            "Content-Type: text/calendar; method=CREATE; component=VCOMMAND; charset=US-ASCII\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n{CREATE_BODY}"
        );
        let e = ok(&block);
        assert_eq!(e.content_type.mime_type, "text/calendar");
        assert_eq!(e.content_type.method(), Some("CREATE"));
        assert_eq!(e.content_type.component(), Some("VCOMMAND"));
        assert_eq!(e.content_type.charset(), Some("US-ASCII"));
        assert_eq!(e.charset, Charset::UsAscii);
        assert_eq!(e.transfer_encoding, TransferEncoding::SevenBit);
        assert_eq!(e.body, CREATE_BODY);
        assert_eq!(
            e.headers,
            vec![
                (
                    "Content-Type".to_string(),
                    "text/calendar; method=CREATE; component=VCOMMAND; charset=US-ASCII"
                        .to_string()
                ),
                ("Content-Transfer-Encoding".to_string(), "7bit".to_string()),
            ]
        );
        assert!(e.quirks.is_empty(), "{:?}", e.quirks);
    }

    #[test]
    fn spec_5_5_read_without_transfer_encoding() {
        let body = "BEGIN:VCAP\r\nVERSION:2.0\r\nCMDID:xyz12346\r\nBEGIN:VCOMMAND\r\n\
            METHOD:READ\r\nTARGET:opaqueid101\r\nBEGIN:VQUERY\r\nQUERY:SELECT DTSTART,DTEND,\
            SUMMARY,UID FROM VEVENT WHERE DTEND >= '19990714T080000Z' AND DTSTART <= \
            '19990715T080000Z'\r\nEND:VQUERY\r\nEND:VCOMMAND\r\nEND:VCAP\r\n";
        let e = ok(&format!(
            "Content-Type: text/calendar; method=READ; component=VQUERY\r\n\r\n{body}"
        ));
        assert_eq!(e.content_type.method(), Some("READ"));
        assert_eq!(e.content_type.component(), Some("VQUERY"));
        assert_eq!(e.content_type.charset(), None);
        assert_eq!(e.charset, Charset::Utf8);
        assert_eq!(e.transfer_encoding, TransferEncoding::SevenBit);
        assert_eq!(e.body, body);
    }

    /// cap-04 §7.1.6 (the spec §5.6 draft shape): no space after the colon.
    #[test]
    fn spec_5_6_continue_request_no_space_after_colon() {
        let e = ok(&format!(
            "Content-Type:text/calendar; method=READ; component=VEVENT\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.mime_type, "text/calendar");
        assert_eq!(e.content_type.method(), Some("READ"));
        assert_eq!(e.content_type.component(), Some("VEVENT"));
        assert_eq!(e.body, SMALL_BODY);
    }

    /// cap-04 §9.2.2: `Content-type`, capitalised parameter names, trailing space.
    #[test]
    fn cap04_timeout_example_mixed_case() {
        let e = ok(&format!(
            "Content-type:text/calendar; Method=READ; Component=VQUERY \r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(
            e.content_type.params,
            vec![
                ("method".to_string(), "READ".to_string()),
                ("component".to_string(), "VQUERY".to_string())
            ]
        );
        assert_eq!(e.header("content-type"), e.header("CONTENT-TYPE"));
        assert_eq!(e.headers[0].0, "Content-type");
    }

    /// cap-02/-04 §9.2.1: a `;`-ended line continued by `Optinfo=VERSION:2.1` without
    /// leading whitespace, then a real header.
    #[test]
    fn semicolon_folded_header() {
        let e = ok(&format!(
            "Content-type:text/calendar; Method=RESPONSE; \r\nOptinfo=VERSION:2.1 \r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("RESPONSE"));
        assert_eq!(e.content_type.param("OPTINFO"), Some("VERSION:2.1"));
        assert_eq!(e.header("Content-Transfer-Encoding"), Some("7bit"));
        assert_eq!(e.headers.len(), 2);
        assert_eq!(
            e.header("content-type"),
            Some("text/calendar; Method=RESPONSE; Optinfo=VERSION:2.1")
        );
        assert!(e.quirks.contains(&"semicolon_fold"));
        assert_eq!(e.body, SMALL_BODY);
    }

    /// cap-04 §7.1.6 reply: RFC 5322 folding and `;` folding in one header.
    #[test]
    fn whitespace_and_semicolon_folding_together() {
        let e = ok(&format!(
            "Content-type:text/calendar; \r\n  Method=RESPONSE;Component=VDATA; \r\n\
             Optinfo=VERSION:2.1 \r\n \r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("RESPONSE"));
        assert_eq!(e.content_type.component(), Some("VDATA"));
        assert_eq!(e.content_type.param("optinfo"), Some("VERSION:2.1"));
        assert_eq!(e.headers.len(), 1);
        assert_eq!(e.body, SMALL_BODY);
    }

    /// The IMC 1999 examples: `CONTENT-TYPE` in capitals.
    #[test]
    fn imc_upper_case_header_name() {
        let e = ok(&format!(
            "CONTENT-TYPE: text/calendar; method=READ; component=VCOMMAND\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("READ"));
        assert_eq!(e.content_type.component(), Some("VCOMMAND"));
    }

    /// Spec §3.1/§5.4 reply shape: a quoted value keeps its inner colon.
    #[test]
    fn quoted_optinfo() {
        let e = ok(&format!(
            "Content-Type: text/calendar; method=RESPONSE; optinfo=\"CMDID:abcde\"\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.param("optinfo"), Some("CMDID:abcde"));
        assert_eq!(e.content_type.method(), Some("RESPONSE"));
    }

    #[test]
    fn quoted_params_with_escapes_and_semicolons() {
        let ct = ContentType::parse(
            "Text/Calendar ;  X-Note = \"a; b \\\"c\\\" \\\\ d\" ; METHOD=\"CREATE\";bare;=x;empty=",
        );
        assert_eq!(ct.mime_type, "text/calendar");
        assert_eq!(
            ct.params,
            vec![
                ("x-note".to_string(), "a; b \"c\" \\ d".to_string()),
                ("method".to_string(), "CREATE".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        assert_eq!(ct.param("X-NOTE"), Some("a; b \"c\" \\ d"));
        assert_eq!(ct.param("empty"), Some(""));
        assert_eq!(ct.method(), Some("CREATE"));
        assert_eq!(ct.component(), None);
        // Unterminated quote runs to the end; a missing `;` after the type is tolerated.
        let ct = ContentType::parse("text/calendar method=READ; optinfo=\"CMDID:a");
        assert_eq!(ct.method(), Some("READ"));
        assert_eq!(ct.param("optinfo"), Some("CMDID:a"));
        // The first of a repeated parameter wins.
        let ct = ContentType::parse("text/calendar; method=READ; method=CREATE");
        assert_eq!(ct.method(), Some("READ"));
    }

    // ---- headers ----------------------------------------------------------------------

    #[test]
    fn headerless_begin_body() {
        let e = ok(SMALL_BODY);
        assert_eq!(e.content_type, ContentType::calendar());
        assert!(e.headers.is_empty());
        assert_eq!(e.body, SMALL_BODY);
        assert_eq!(e.quirks, vec!["headerless"]);
        // Any case, after leading empty lines, with bare LF.
        let e = ok("\r\n  \n\nbegin:vcap\nVERSION:2.0\nend:vcap\n");
        assert_eq!(e.body, "begin:vcap\r\nVERSION:2.0\r\nend:vcap\r\n");
        assert_eq!(e.quirks, vec!["leading_blank_lines", "headerless"]);
    }

    #[test]
    fn leading_blank_lines_before_headers_and_bom() {
        let e = ok(&format!(
            "\u{FEFF}\r\n\r\nContent-Type: text/calendar; method=NOOP\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("NOOP"));
        assert_eq!(e.body, SMALL_BODY);
    }

    #[test]
    fn bare_lf_and_missing_final_line_end() {
        let e = ok(
            "Content-Type: text/calendar\nContent-Transfer-Encoding: 8bit\n\n\
                    BEGIN:VCAP\nVERSION:2.0\r\nEND:VCAP",
        );
        assert_eq!(e.transfer_encoding, TransferEncoding::EightBit);
        assert_eq!(e.body, SMALL_BODY);
        // Bare CR inside the body is a line end too; CRs before an LF are one line end.
        let e = ok("BEGIN:VCAP\rVERSION:2.0\r\r\nEND:VCAP\r\n");
        assert_eq!(e.body, SMALL_BODY);
        let e = ok("BEGIN:VCAP\r\rX:1\r\r\r\nEND:VCAP");
        assert_eq!(e.body, "BEGIN:VCAP\r\n\r\nX:1\r\nEND:VCAP\r\n");
    }

    #[test]
    fn begin_line_ends_headers_without_blank_line() {
        let e = ok(&format!(
            "Content-Type: text/calendar; method=READ\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("READ"));
        assert_eq!(e.body, SMALL_BODY);
        assert!(e.quirks.contains(&"missing_blank_line"));
    }

    #[test]
    fn other_headers_kept_and_missing_content_type_defaults() {
        let e = ok(&format!(
            "MIME-Version: 1.0\r\nX-Client: telnet\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type, ContentType::calendar());
        assert_eq!(e.header("mime-version"), Some("1.0"));
        assert_eq!(e.header("x-client"), Some("telnet"));
        assert_eq!(e.header("Content-Type"), None);
        assert!(e.quirks.contains(&"missing_content_type"));
    }

    #[test]
    fn semicolon_line_followed_by_real_header_is_not_folded() {
        let e = ok(&format!(
            "Content-Type: text/calendar; method=READ;\r\nX-Other: a=b\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.headers.len(), 2);
        assert_eq!(e.header("x-other"), Some("a=b"));
        // `;` fold with a line that has no colon at all.
        let e = ok(&format!(
            "Content-Type: text/calendar;\r\nmethod=READ;\r\ncomponent=VQUERY\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("READ"));
        assert_eq!(e.content_type.component(), Some("VQUERY"));
    }

    #[test]
    fn calendar_type_aliases_and_empty_type() {
        for ty in [
            "text/x-vcalendar",
            "TEXT/X-CALENDAR",
            "application/calendar",
        ] {
            let e = ok(&format!("Content-Type: {ty}\r\n\r\n{SMALL_BODY}"));
            assert_eq!(e.content_type.mime_type, ty.to_ascii_lowercase());
            assert!(e.quirks.contains(&"content_type_alias"));
        }
        let e = ok(&format!("Content-Type: ; method=READ\r\n\r\n{SMALL_BODY}"));
        assert_eq!(e.content_type.mime_type, "text/calendar");
        assert_eq!(e.content_type.method(), Some("READ"));
    }

    #[test]
    fn repeated_header_first_wins() {
        let e = ok(&format!(
            "Content-Type: text/calendar; method=READ\r\nContent-Type: text/plain\r\n\r\n{SMALL_BODY}"
        ));
        assert_eq!(e.content_type.method(), Some("READ"));
        assert_eq!(e.headers.len(), 2);
    }

    #[test]
    fn body_blank_lines_are_kept() {
        let body = "BEGIN:VCAP\r\n\r\nVERSION:2.0\r\nEND:VCAP\r\n\r\n";
        let e = ok(&format!("Content-Type: text/calendar\r\n\r\n\r\n{body}"));
        assert_eq!(e.body, format!("\r\n{body}"));
    }

    // ---- transfer encodings -----------------------------------------------------------

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        let block = "Content-Type: text/calendar; charset=utf-8\r\n\
                     Content-Transfer-Encoding: Quoted-Printable\r\n\r\n\
                     BEGIN:VCAP\r\n\
                     SUMMARY:Caf=C3=A9 =e2=82=ac 1=3D1 long =\r\n\
                     line joined =  \t\r\n\
                     here\r\n\
                     END:VCAP\r\n";
        let e = ok(block);
        assert_eq!(e.transfer_encoding, TransferEncoding::QuotedPrintable);
        assert_eq!(
            e.body,
            "BEGIN:VCAP\r\nSUMMARY:Café € 1=1 long line joined here\r\nEND:VCAP\r\n"
        );
        assert!(e.quirks.is_empty(), "{:?}", e.quirks);
    }

    #[test]
    fn quoted_printable_malformed_escapes_kept() {
        let block = "Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                     BEGIN:VCAP\r\nX-A:a=ZZb =4 =\u{e9}\r\nX-B:trailing  \r\nX-C:=0D=0Ax\r\nEND:VCAP";
        let e = ok(block);
        assert_eq!(
            e.body,
            "BEGIN:VCAP\r\nX-A:a=ZZb =4 =\u{e9}\r\nX-B:trailing  \r\nX-C:\r\nx\r\nEND:VCAP\r\n"
        );
        assert!(e.quirks.contains(&"qp_malformed_escape"));
        assert!(e.quirks.contains(&"missing_content_type"));
    }

    #[test]
    fn base64_with_line_breaks() {
        // "BEGIN:VCAP\r\nSUMMARY:Café\r\nEND:VCAP\r\n" in base64, wrapped at 16 characters.
        let block = "Content-Type: text/calendar; method=CREATE\r\n\
                     Content-Transfer-Encoding: BASE64\r\n\r\n\
                     QkVHSU46VkNBUA0K\r\nU1VNTUFSWTpDYWbD\r\n  qQ0KRU5EOlZDQVAN\r\nCg==\r\n";
        let e = ok(block);
        assert_eq!(e.transfer_encoding, TransferEncoding::Base64);
        assert_eq!(e.body, "BEGIN:VCAP\r\nSUMMARY:Café\r\nEND:VCAP\r\n");
        assert!(e.quirks.is_empty(), "{:?}", e.quirks);
    }

    #[test]
    fn base64_missing_padding_and_concatenation() {
        // "BEGIN:VCAP\n" is QkVHSU46VkNBUAo= ; without padding:
        let e = ok("Content-Transfer-Encoding: base64\r\n\r\nQkVHSU46VkNBUAo\r\n");
        assert_eq!(e.body, "BEGIN:VCAP\r\n");
        assert!(e.quirks.contains(&"base64_unpadded"));
        // Two encodings back to back: "BEGIN:VCAP\n" + "X:1\n" (WDoxCg==).
        let e = ok("Content-Transfer-Encoding: base64\r\n\r\nQkVHSU46VkNBUAo=WDoxCg==\r\n");
        assert_eq!(e.body, "BEGIN:VCAP\r\nX:1\r\n");
        assert_eq!(e.quirks, vec!["missing_content_type"]);
        // `=` after a complete group is ignored.
        let e = ok("Content-Transfer-Encoding: base64\r\n\r\nQkVHSU46=VkNBUAo=\r\n");
        assert_eq!(e.body, "BEGIN:VCAP\r\n");
        assert_eq!(
            e.quirks,
            vec!["missing_content_type", "base64_stray_padding"]
        );
    }

    #[test]
    fn binary_is_eight_bit() {
        let e = ok(
            "Content-Transfer-Encoding: binary\r\n\r\nBEGIN:VCAP\r\nSUMMARY:Caf\u{e9}\r\nEND:VCAP\r\n",
        );
        assert_eq!(e.transfer_encoding, TransferEncoding::Binary);
        assert!(e.body.contains("Café"));
    }

    #[test]
    fn eight_bit_under_7bit_is_tolerated() {
        let e =
            ok("Content-Transfer-Encoding: 7bit\r\n\r\nBEGIN:VCAP\r\nSUMMARY:Café\r\nEND:VCAP\r\n");
        assert!(e.body.contains("Café"));
        assert!(e.quirks.contains(&"eight_bit_in_7bit"));
        // An empty value means 7bit.
        let e = ok(&format!("Content-Transfer-Encoding:\r\n\r\n{SMALL_BODY}"));
        assert_eq!(e.transfer_encoding, TransferEncoding::SevenBit);
    }

    // ---- charsets ---------------------------------------------------------------------

    #[test]
    fn latin1_charset() {
        for label in ["ISO-8859-1", "latin1", "iso8859-1"] {
            let mut block =
                format!("Content-Type: text/calendar; charset={label}\r\n\r\n").into_bytes();
            block.extend_from_slice(b"BEGIN:VCAP\r\nSUMMARY:Caf\xe9 \x80\r\nEND:VCAP\r\n");
            let e = parse(&block).unwrap();
            assert_eq!(e.charset, Charset::Latin1);
            assert_eq!(
                e.body,
                "BEGIN:VCAP\r\nSUMMARY:Caf\u{e9} \u{80}\r\nEND:VCAP\r\n"
            );
        }
    }

    #[test]
    fn windows_1252_charset() {
        let block = b"Content-Type: text/calendar; charset=\"Windows-1252\"\r\n\r\n\
                      BEGIN:VCAP\r\nSUMMARY:\x93caf\xe9\x94 \x80\r\nEND:VCAP\r\n";
        let e = parse(block).unwrap();
        assert_eq!(e.charset, Charset::Windows1252);
        assert!(e.body.contains("SUMMARY:\u{201C}café\u{201D} €"));
    }

    #[test]
    fn us_ascii_label_on_8bit_text() {
        let utf8 = "Content-Type: text/calendar; charset=us-ascii\r\n\r\nBEGIN:VCAP\r\nX:é\r\n";
        let e = ok(utf8);
        assert_eq!(e.charset, Charset::UsAscii);
        assert_eq!(e.body, "BEGIN:VCAP\r\nX:é\r\n");
        assert!(e.quirks.contains(&"ascii_label_on_utf8"));
        let latin = b"Content-Type: text/calendar; charset=ASCII\r\n\r\nBEGIN:VCAP\r\nX:\xe9\r\n";
        let e = parse(latin).unwrap();
        assert_eq!(e.body, "BEGIN:VCAP\r\nX:é\r\n");
        assert!(e.quirks.contains(&"ascii_label_on_latin1"));
    }

    #[test]
    fn utf8_default_and_bom_in_body() {
        let e =
            ok("Content-Type: text/calendar; charset=UTF8\r\n\r\n\u{FEFF}BEGIN:VCAP\r\nX:é\r\n");
        assert_eq!(e.charset, Charset::Utf8);
        assert_eq!(e.body, "BEGIN:VCAP\r\nX:é\r\n");
    }

    #[test]
    fn qp_latin1() {
        let e = ok("Content-Type: text/calendar; charset=latin1\r\n\
                    Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                    BEGIN:VCAP\r\nX:Caf=E9\r\nEND:VCAP\r\n");
        assert_eq!(e.body, "BEGIN:VCAP\r\nX:Café\r\nEND:VCAP\r\n");
    }

    // ---- errors, each with its text ---------------------------------------------------

    #[test]
    fn error_header_without_colon() {
        let e = err(b"\r\nContent-Type: text/calendar\r\nhello there\r\n\r\nBEGIN:VCAP\r\n");
        assert_eq!(e, MimeError::HeaderWithoutColon { line: 3 });
        assert_eq!(
            e.to_string(),
            "header line 3 has no ':' (end the headers with an empty line before the calendar data)"
        );
    }

    #[test]
    fn error_empty_header_name() {
        let e = err(b"Content-Type: text/calendar\r\n : x\r\n");
        // A line starting with whitespace is a fold, so this one is fine ...
        assert_eq!(e, MimeError::NoBody);
        // ... but one starting with ':' is not.
        let e = err(b"Content-Type: text/calendar\r\n: x\r\n\r\nBEGIN:VCAP\r\n");
        assert_eq!(e, MimeError::EmptyHeaderName { line: 2 });
        assert_eq!(e.to_string(), "header line 2 has no name before ':'");
    }

    #[test]
    fn error_unsupported_content_type() {
        let e = err(b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n");
        assert_eq!(
            e.to_string(),
            "Content-Type multipart/mixed is not supported (send text/calendar)"
        );
        let e = err(b"Content-Type: Text/Plain\r\n\r\nBEGIN:VCAP\r\n");
        assert_eq!(
            e,
            MimeError::UnsupportedContentType {
                mime_type: "text/plain".to_string()
            }
        );
    }

    #[test]
    fn error_unknown_transfer_encoding() {
        let e = err(b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n");
        assert_eq!(
            e.to_string(),
            "unknown Content-Transfer-Encoding 'x-uuencode' (use 7bit, 8bit, quoted-printable or base64)"
        );
    }

    #[test]
    fn error_unsupported_charset() {
        let e = err(b"Content-Type: text/calendar; charset=koi8-r\r\n\r\nBEGIN:VCAP\r\n");
        assert_eq!(
            e.to_string(),
            "charset 'koi8-r' is not supported (use UTF-8, US-ASCII or ISO-8859-1)"
        );
        // Client text in an error is made printable and cut.
        let e = err(
            "Content-Type: text/calendar; charset=\"\u{e9}\u{7}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\r\n\r\nBEGIN:VCAP\r\n"
                .as_bytes(),
        );
        assert_eq!(
            e.to_string(),
            "charset '??xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not supported (use UTF-8, US-ASCII or ISO-8859-1)"
        );
    }

    #[test]
    fn error_invalid_base64() {
        let e = err(
            b"Content-Type: text/calendar\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                      QkVHSU46VkNBUA0K\r\nBEGIN:VCAP\r\n",
        );
        assert_eq!(
            e,
            MimeError::InvalidBase64 {
                line: 5,
                detail: "':' is not a base64 character".to_string()
            }
        );
        assert_eq!(
            e.to_string(),
            "body is not valid base64 (line 5: ':' is not a base64 character)"
        );
        let e = err(b"Content-Transfer-Encoding: base64\r\n\r\nQkVH\r\n\xff\r\n");
        assert_eq!(
            e.to_string(),
            "body is not valid base64 (line 4: byte 0xFF is not a base64 character)"
        );
        let e = err(b"Content-Transfer-Encoding: base64\r\n\r\nQkVH\r\nQ\r\n\r\n");
        assert_eq!(
            e.to_string(),
            "body is not valid base64 (line 4: a group of four characters stops after its first one)"
        );
        let e = err(b"Content-Transfer-Encoding: base64\r\n\r\nQ=\r\n");
        assert!(matches!(e, MimeError::InvalidBase64 { line: 3, .. }));
    }

    #[test]
    fn error_invalid_utf8() {
        let e = err(
            b"Content-Type: text/calendar\r\n\r\nBEGIN:VCAP\r\nSUMMARY:Caf\xe9\r\nEND:VCAP\r\n",
        );
        assert_eq!(
            e,
            MimeError::InvalidUtf8 {
                at: LineRef::Entity(4)
            }
        );
        assert_eq!(
            e.to_string(),
            "body is not valid UTF-8 (line 4); send UTF-8 or declare the charset, e.g. charset=ISO-8859-1"
        );
        // Headerless: the body's lines are the entity's lines.
        let e = err(b"\r\nBEGIN:VCAP\r\nX:\xff\r\n");
        assert_eq!(
            e,
            MimeError::InvalidUtf8 {
                at: LineRef::Entity(3)
            }
        );
        // After decoding, the decoded line is named.
        let e = err(
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\nBEGIN:VCAP\r\nX:=\r\n=E9\r\nY\r\n",
        );
        assert_eq!(
            e.to_string(),
            "body is not valid UTF-8 (line 2 of the decoded body); send UTF-8 or declare the charset, e.g. charset=ISO-8859-1"
        );
    }

    #[test]
    fn error_no_body() {
        for block in [
            &b""[..],
            b"\r\n\r\n",
            b"Content-Type: text/calendar; method=READ\r\n",
            b"Content-Type: text/calendar; method=READ\r\n\r\n",
            b"Content-Type: text/calendar\r\n\r\n \r\n\t\r\n\r\n",
            b"Content-Transfer-Encoding: base64\r\n\r\nICAg\r\n",
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=20=\r\n",
        ] {
            assert_eq!(
                err(block),
                MimeError::NoBody,
                "{:?}",
                String::from_utf8_lossy(block)
            );
        }
        assert_eq!(
            MimeError::NoBody.to_string(),
            "no body (after the headers send an empty line, then the calendar data: BEGIN:VCAP ...)"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(
            TransferEncoding::from_label(" \"Base64\" "),
            Some(TransferEncoding::Base64)
        );
        assert_eq!(TransferEncoding::from_label("x-token"), None);
        assert_eq!(
            TransferEncoding::QuotedPrintable.as_str(),
            "quoted-printable"
        );
        assert_eq!(Charset::from_label("ISO_8859-1"), Some(Charset::Latin1));
        assert_eq!(Charset::from_label("utf-16"), None);
        assert_eq!(Charset::Windows1252.as_str(), "windows-1252");
    }

    // ---- property tests ---------------------------------------------------------------

    /// Base64 with CRLF every `width` characters (0: one line), padded or not.
    fn b64_encode(bytes: &[u8], width: usize, pad: bool) -> String {
        let mut chars = crate::cap::scram::base64_encode(bytes);
        if !pad {
            chars.truncate(chars.trim_end_matches('=').len());
        }
        if width == 0 {
            return chars;
        }
        let v: Vec<char> = chars.chars().collect();
        v.chunks(width)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    /// Quoted-printable of `bytes` whose line ends are CRLF: lines stay lines, `=XX` for
    /// anything but printable ASCII (and for `=` and trailing blanks), soft breaks at `width`.
    fn qp_encode(bytes: &[u8], width: usize, lower: bool) -> String {
        let text_lines: Vec<&[u8]> = split_crlf(bytes);
        let mut out = Vec::new();
        for line in text_lines {
            let mut cur = String::new();
            for (i, &b) in line.iter().enumerate() {
                let last = i + 1 == line.len();
                let token = if (b.is_ascii_graphic() && b != b'=')
                    || (matches!(b, b' ' | b'\t') && !last)
                {
                    char::from(b).to_string()
                } else if lower {
                    format!("={b:02x}")
                } else {
                    format!("={b:02X}")
                };
                if cur.len() + token.len() > width.max(4) - 1 {
                    out.push(format!("{cur}="));
                    cur.clear();
                }
                cur.push_str(&token);
            }
            out.push(cur);
        }
        out.join("\r\n")
    }

    fn split_crlf(bytes: &[u8]) -> Vec<&[u8]> {
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            if bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
                lines.push(&bytes[start..i]);
                i += 2;
                start = i;
            } else {
                i += 1;
            }
        }
        lines.push(&bytes[start..]);
        lines
    }

    fn body_from(lines: &[String]) -> String {
        let mut body = String::from("BEGIN:VCAP\r\n");
        for l in lines {
            body.push_str(l);
            body.push_str("\r\n");
        }
        body
    }

    /// Pieces that exercise the reader's branches when glued together at random.
    const FRAGMENTS: &[&[u8]] = &[
        b"Content-Type:",
        b"content-transfer-encoding:",
        b"text/calendar",
        b"multipart/mixed",
        b"text/x-vcalendar",
        b";",
        b"=",
        b"\"",
        b"\\",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b"method=READ",
        b"charset=",
        b"utf-8",
        b"latin1",
        b"windows-1252",
        b"us-ascii",
        b"koi8-r",
        b"base64",
        b"quoted-printable",
        b"7bit",
        b"BEGIN:",
        b"VCAP",
        b"=3D",
        b"=\r\n",
        b"=E9",
        b"=z",
        b"QkVH",
        b"==",
        b"Optinfo=VERSION:2.1",
        b"\xff",
        b"\xc3",
        b"\xa9",
        b"\xef\xbb\xbf",
        b":",
        b"X",
        b"\r\n\r\n",
    ];

    fn check_ok_invariants(input: &[u8], entity: &Entity) -> Result<(), TestCaseError> {
        let body = &entity.body;
        prop_assert!(body.ends_with("\r\n"));
        prop_assert!(!body.trim().is_empty());
        let b = body.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' {
                prop_assert!(i > 0 && b[i - 1] == b'\r');
            }
            if c == b'\r' {
                prop_assert_eq!(b.get(i + 1), Some(&b'\n'));
            }
        }
        prop_assert!(CALENDAR_TYPES.contains(&entity.content_type.mime_type.as_str()));
        prop_assert!(body.len() <= 3 * input.len() + 2);
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(e) = parse(&input) {
                check_ok_invariants(&input, &e)?;
            }
        }

        #[test]
        fn fragment_soup_never_panics(
            picks in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80)
        ) {
            let input = picks.concat();
            if let Ok(e) = parse(&input) {
                check_ok_invariants(&input, &e)?;
            }
            let _ = ContentType::parse(&String::from_utf8_lossy(&input));
        }

        /// A valid entity with bytes inserted at arbitrary split points.
        #[test]
        fn split_and_insert_never_panics(
            cuts in prop::collection::vec(
                (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..4)),
                0..8,
            ),
            encoding in prop::sample::select(vec!["7bit", "base64", "quoted-printable"]),
        ) {
            let body = match encoding {
                "base64" => b64_encode(SMALL_BODY.as_bytes(), 8, true),
                "quoted-printable" => qp_encode(SMALL_BODY.as_bytes(), 10, false),
                _ => SMALL_BODY.to_string(),
            };
            let mut input = format!(
                "Content-type:text/calendar; Method=READ;\r\nOptinfo=\"VERSION:2.1\"\r\n\
                 Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n"
            ).into_bytes();
            for (at, bytes) in cuts {
                let i = at.index(input.len() + 1);
                input.splice(i..i, bytes);
            }
            if let Ok(e) = parse(&input) {
                check_ok_invariants(&input, &e)?;
            }
        }

        #[test]
        fn base64_round_trip(
            lines in prop::collection::vec("[^\r\n]{0,60}", 0..8),
            width in prop::sample::select(vec![0usize, 4, 60, 76]),
            pad: bool,
        ) {
            let body = body_from(&lines);
            let block = format!(
                "Content-Type: text/calendar; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                b64_encode(body.as_bytes(), width, pad)
            );
            let e = parse(block.as_bytes());
            prop_assert_eq!(e.map(|e| e.body), Ok(body));
        }

        #[test]
        fn quoted_printable_round_trip(
            lines in prop::collection::vec("[^\r\n]{0,60}", 0..8),
            width in prop::sample::select(vec![8usize, 20, 76]),
            lower: bool,
        ) {
            let body = body_from(&lines);
            let block = format!(
                "Content-Type: text/calendar\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}",
                qp_encode(body.as_bytes(), width, lower)
            );
            let e = parse(block.as_bytes());
            prop_assert_eq!(e.map(|e| e.body), Ok(body));
        }

        #[test]
        fn latin1_quoted_printable_round_trip(
            lines in prop::collection::vec("[ -~\u{a0}-\u{ff}\t]{0,60}", 0..8),
        ) {
            let body = body_from(&lines);
            let bytes: Vec<u8> = body.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
            let block = format!(
                "Content-Type: text/calendar; charset=ISO-8859-1\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\n{}",
                qp_encode(&bytes, 76, false)
            );
            let e = parse(block.as_bytes());
            prop_assert_eq!(e.map(|e| e.body), Ok(body));
        }

        /// 8bit text with LF line ends comes back with CRLF.
        #[test]
        fn eight_bit_lf_round_trip(lines in prop::collection::vec("[^\r\n]{0,60}", 0..8)) {
            let body = body_from(&lines);
            let block = format!(
                "Content-Transfer-Encoding: 8bit\n\n{}",
                body.replace("\r\n", "\n")
            );
            let e = parse(block.as_bytes());
            prop_assert_eq!(e.map(|e| e.body), Ok(body));
        }
    }
}
