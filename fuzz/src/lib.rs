//! Helpers shared by calgate's fuzz targets (see `../FUZZING.md`).
//!
//! - [`CodecSetup`]: reads limits, mode and chunk sizes for the [`DotCodec`] targets from the
//!   first bytes of the input, feeds the rest in chunks, and compares the frames with
//!   [`model_frames`], a whole-input (non-incremental) reading of the framing rules of
//!   `src/framing.rs`.
//! - [`render_cap`] and [`render_cip`]: canonical command lines for parsed commands. calgate
//!   only *parses* client commands, so the encoders of the command round-trip checks live here.

use bytes::BytesMut;
use calgate::cap::command::{Command as CapCommand, Tagged};
use calgate::cip::command::Command as CipCommand;
use calgate::framing::{DotCodec, Frame, Limits};
use calgate::ical::Component;
use tokio_util::codec::Decoder;

/// Bytes of the input used by [`CodecSetup::from_input`] before the data itself.
pub const CODEC_HEADER: usize = 5;

/// When the harness switches the codec to block mode (as a session would on `Action::ExpectBlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Never: pure line mode.
    Never,
    /// After a command line that asks for data: a CIP line ending in `+` (blanks after it
    /// allowed) or a CAP line whose first or second word is `SENDDATA`.
    OnDataCommand,
}

impl Switch {
    /// Whether this line switches the codec to block mode.
    pub fn switches(self, line: &[u8]) -> bool {
        match self {
            Switch::Never => false,
            Switch::OnDataCommand => {
                let trimmed = line.trim_ascii_end();
                trimmed.ends_with(b"+")
                    || trimmed
                        .split(|b| *b == b' ' || *b == b':')
                        .take(2)
                        .any(|w| w.eq_ignore_ascii_case(b"SENDDATA"))
            }
        }
    }
}

/// The codec configuration and the data, read from a fuzz input.
#[derive(Debug, Clone)]
pub struct CodecSetup<'a> {
    /// The limits.
    pub limits: Limits,
    /// Start in block mode (as after `SENDEVENT +` / `SENDDATA`).
    pub start_in_block: bool,
    /// Seed of the chunk sizes.
    pub chunk_seed: u8,
    /// The bytes to frame.
    pub data: &'a [u8],
}

impl<'a> CodecSetup<'a> {
    /// Header: flags (bit 0 `bare_lf`, bit 1 start in block mode), `max_line` (0..=255),
    /// `max_data_line` (0..=255), `max_block` / 16 (0..=4080), chunk seed. `None` when the
    /// input is shorter than the header.
    pub fn from_input(input: &'a [u8]) -> Option<Self> {
        let (h, data) = input.split_at_checked(CODEC_HEADER)?;
        Some(CodecSetup {
            limits: Limits {
                max_line: usize::from(h[1]),
                max_data_line: usize::from(h[2]),
                max_block: usize::from(h[3]) * 16,
                bare_lf: h[0] & 1 == 1,
            },
            start_in_block: h[0] & 2 == 2,
            chunk_seed: h[4],
            data,
        })
    }

    /// Chunk sizes from the seed: 0 means "all at once", else a xorshift sequence of sizes in
    /// `1..=max` where `max` is 1, 2, 3, 7, 16 or 64.
    pub fn chunks(&self) -> impl Iterator<Item = usize> {
        let seed = self.chunk_seed;
        let max = [usize::MAX, 1, 2, 3, 7, 16, 64, 64][usize::from(seed & 7)];
        let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
        std::iter::from_fn(move || {
            if max == usize::MAX {
                return Some(usize::MAX);
            }
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            Some(1 + (state as usize) % max)
        })
    }
}

/// Feeds `setup.data` to a [`DotCodec`] in the chunks of [`CodecSetup::chunks`], switching to
/// block mode as `switch` says, and returns every frame (including those of `decode_eof`).
///
/// Also asserts that the codec never holds more than a line limit (+1 for a CR) of unread
/// input after it asked for more: an endless line cannot grow memory.
pub fn run_codec(setup: &CodecSetup<'_>, switch: Switch) -> Vec<Frame> {
    let limits = setup.limits;
    let mut codec = DotCodec::new(limits);
    if setup.start_in_block {
        codec.expect_block();
    }
    let bound = limits.max_line.max(limits.max_data_line) + 1;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = setup.data;
    let mut chunks = setup.chunks();
    let take = |frame: Frame, codec: &mut DotCodec, out: &mut Vec<Frame>| {
        if let Frame::Line(l) = &frame
            && switch.switches(l)
        {
            codec.expect_block();
        }
        out.push(frame);
    };
    while !rest.is_empty() {
        let n = chunks.next().unwrap_or(1).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = codec
            .decode(&mut buf)
            .expect("DotCodec::decode never fails")
        {
            take(frame, &mut codec, &mut out);
        }
        assert!(
            buf.len() <= bound,
            "codec keeps {} unread octets, limits {limits:?}",
            buf.len()
        );
    }
    while let Some(frame) = codec
        .decode_eof(&mut buf)
        .expect("DotCodec::decode_eof never fails")
    {
        take(frame, &mut codec, &mut out);
    }
    out
}

/// The framing rules of `src/framing.rs` applied to the whole input at once: LF ends a line
/// (one CR before it is part of the line end); in line mode a line over `max_line` is
/// `LineTooLong`, a bare-LF line without the quirk is `BareLf`; in block mode lines up to a
/// lone `.` form a block (leading `..` loses a dot), and an overlong line, a bare-LF line
/// without the quirk or a block over `max_block` (CRLF counted) makes it `BlockTooLarge`. A
/// partial line or block at the end yields nothing.
pub fn model_frames(setup: &CodecSetup<'_>, switch: Switch) -> Vec<Frame> {
    let l = setup.limits;
    let mut out = Vec::new();
    let mut in_block = setup.start_in_block;
    let mut block: Vec<u8> = Vec::new();
    let mut overflow = false;
    let mut rest = setup.data;
    while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
        let raw = &rest[..pos];
        rest = &rest[pos + 1..];
        let (line, bare) = match raw.strip_suffix(b"\r") {
            Some(line) => (line, false),
            None => (raw, true),
        };
        if !in_block {
            if line.len() > l.max_line {
                out.push(Frame::LineTooLong);
            } else if bare && !l.bare_lf {
                out.push(Frame::BareLf);
            } else {
                out.push(Frame::Line(line.to_vec()));
                if switch.switches(line) {
                    in_block = true;
                    block.clear();
                    overflow = false;
                }
            }
            continue;
        }
        if line.len() > l.max_data_line || (bare && !l.bare_lf) {
            overflow = true;
            continue;
        }
        if line == b"." {
            in_block = false;
            out.push(if overflow {
                Frame::BlockTooLarge
            } else {
                Frame::Block(std::mem::take(&mut block))
            });
            block.clear();
            overflow = false;
            continue;
        }
        if overflow {
            continue;
        }
        let data = if line.starts_with(b"..") {
            &line[1..]
        } else {
            line
        };
        if block.len() + data.len() + 2 > l.max_block {
            overflow = true;
            block.clear();
            continue;
        }
        block.extend_from_slice(data);
        block.extend_from_slice(b"\r\n");
    }
    out
}

/// Checks the frames against the limits: no line over `max_line`, no block over `max_block`,
/// no block line over `max_data_line` (a line may have lost one stuffing dot), every block
/// ends in CRLF, no frame holds an LF.
pub fn assert_bounded(frames: &[Frame], limits: Limits) {
    for f in frames {
        match f {
            Frame::Line(l) => {
                assert!(l.len() <= limits.max_line, "line over the limit: {f:?}");
                assert!(!l.contains(&b'\n'), "LF inside a line: {f:?}");
            }
            Frame::Block(b) => {
                assert!(b.len() <= limits.max_block, "block over the limit");
                if !b.is_empty() {
                    assert!(b.ends_with(b"\r\n"), "block without a final CRLF");
                }
                for line in block_lines(b) {
                    assert!(
                        line.len() <= limits.max_data_line,
                        "block line over the limit"
                    );
                    assert!(!line.contains(&b'\n'), "LF inside a block line");
                }
            }
            Frame::LineTooLong | Frame::BlockTooLarge | Frame::BareLf => {}
        }
    }
}

/// The lines of a decoded block (it is lines joined with CRLF plus a final CRLF; lines hold no
/// LF, so splitting at CRLF is unambiguous).
pub fn block_lines(block: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = block;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        lines.push(&rest[..pos]);
        rest = &rest[pos + 2..];
    }
    assert!(rest.is_empty(), "block does not end in CRLF");
    lines
}

/// A block as a sender puts it on the wire: every line dot-stuffed, CRLF, then `.` CRLF.
pub fn encode_block(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + 8);
    for line in block_lines(block) {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Decodes `wire` with a fresh codec that starts in block mode; every frame.
pub fn decode_block(wire: &[u8], limits: Limits) -> Vec<Frame> {
    let mut codec = DotCodec::new(limits);
    codec.expect_block();
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Some(f) = codec.decode_eof(&mut buf).expect("decode_eof never fails") {
        out.push(f);
    }
    out
}

/// The canonical CIP command line for a parsed command.
pub fn render_cip(command: &CipCommand) -> String {
    match command {
        CipCommand::Login { identity, password } => {
            format!("AUTHENTICATE LOGIN {identity} {}", password.expose())
        }
        CipCommand::SendEvent => "SENDEVENT +".into(),
        CipCommand::Rsvp => "RSVP +".into(),
        CipCommand::FreeBusy => "FREEBUSY +".into(),
        CipCommand::Help => "HELP".into(),
        CipCommand::Quit => "QUIT".into(),
        CipCommand::Noop => "NOOP".into(),
    }
}

/// The canonical CSTP command line for a parsed command (tag first, the verb's canonical
/// spelling, arguments separated by one space, a command id after ` ; `).
pub fn render_cap(tagged: &Tagged) -> String {
    let mut out = String::new();
    if let Some(tag) = &tagged.tag {
        out.push_str(tag);
        out.push(' ');
    }
    out.push_str(tagged.command.verb().name());
    let arg = |out: &mut String, a: &str| {
        out.push(' ');
        out.push_str(a);
    };
    let cmdid = |out: &mut String, id: &Option<String>| {
        if let Some(id) = id {
            out.push_str(" ; ");
            out.push_str(id);
        }
    };
    match &tagged.command {
        CapCommand::Capability
        | CapCommand::StartTls
        | CapCommand::Disconnect
        | CapCommand::Noop => {}
        CapCommand::Authenticate { mechanism, initial } => {
            arg(&mut out, mechanism);
            if let Some(ir) = initial {
                arg(&mut out, ir);
            }
        }
        CapCommand::Identify { upn } | CapCommand::UpnExpand { upn } => arg(&mut out, upn),
        CapCommand::CalidExpand { calid } => arg(&mut out, calid),
        CapCommand::SendData { latency } => {
            if let Some(n) = latency {
                arg(&mut out, &n.to_string());
            }
        }
        CapCommand::Abort { cmdid: id } => cmdid(&mut out, id),
        CapCommand::Continue { latency, cmdid: id } => {
            if let Some(n) = latency {
                arg(&mut out, &n.to_string());
            }
            cmdid(&mut out, id);
        }
        CapCommand::GenerateUid { count } => arg(&mut out, &count.to_string()),
    }
    out
}

/// `ContentLine::to_line`'s documented value escaping: CRLF, CR and LF become `\n`.
pub fn escaped_value(v: &str) -> String {
    v.replace("\r\n", "\n").replace(['\r', '\n'], "\\n")
}

/// `ContentLine::to_line`'s documented RFC 6868 parameter-value encoding, applied only when
/// the value holds DQUOTE, CR or LF (`ContentLine::parse` does not decode it).
pub fn encoded_param(v: &str) -> String {
    if !v.contains(['"', '\r', '\n']) {
        return v.to_owned();
    }
    v.replace('^', "^^")
        .replace('"', "^'")
        .replace("\r\n", "\n")
        .replace(['\r', '\n'], "^n")
}

/// A component as `to_ics` → `parse_components` gives it back: values and parameter values
/// in the escaped forms `to_line` writes.
pub fn wire_form(c: &Component) -> Component {
    let mut out = c.clone();
    for p in &mut out.properties {
        p.value = escaped_value(&p.value);
        for param in &mut p.params {
            for v in &mut param.values {
                *v = encoded_param(v);
            }
        }
    }
    out.components = c.components.iter().map(wire_form).collect();
    out
}
