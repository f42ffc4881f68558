//! Line and dot-terminated block framing shared by CIP and CAP's CSTP.
//!
//! Both protocols send commands as single lines and data as a block of lines ending with a line
//! holding a lone `.` (cip-00 §1.4, cap-04 §7.1.8; the SMTP DATA convention of RFC 5321 §4.5.2).
//! [`DotCodec`] turns bytes into [`Frame`]s in one of two modes, switched by the session:
//!
//! - **Line mode**: one frame per line. CRLF ends a line; a bare LF is accepted when the
//!   `bare_lf` quirk is on (telnet and libical send it) — the same rule applies everywhere, so no
//!   two parsers disagree about where a line ends.
//! - **Block mode**: lines are collected until a lone `.`; a line starting with `..` loses one
//!   dot (cip-00 only doubles a lone `.`, SMTP every leading dot; this rule decodes both, see
//!   spec §7.3 #5).
//!
//! Limits keep memory bounded whatever the peer sends: an overlong command line is discarded up
//! to its end and reported as [`Frame::LineTooLong`]; a block over its size (or with an overlong
//! line) is read through to its dot without being kept, then reported as
//! [`Frame::BlockTooLarge`]. A connection that ends inside a block yields nothing from it, so a
//! half-sent event never reaches the upstream.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder, Framed};

/// Room of the read buffer while a data block arrives or commands are pipelined, and the reply
/// size at which the write buffer is flushed: `Framed::new`'s 8 KiB.
pub const WORKING_BUFFER: usize = 8 * 1024;

/// A connection's codec over `stream` with both buffers empty: they are allocated on first use,
/// and [`tend_buffers`] gives them back while the session is idle. `Framed::new` would keep
/// 8 KiB + 8 KiB for the life of every connection, three quarters of an idle session's memory
/// (BENCHMARKS.md, idle sessions).
pub fn framed<S>(stream: S, limits: Limits) -> Framed<S, DotCodec> {
    let mut framed = Framed::with_capacity(stream, DotCodec::new(limits), 0);
    framed.set_backpressure_boundary(WORKING_BUFFER);
    framed
}

/// Sizes the buffers for what comes next, called after each turn of a connection loop: while a
/// block is expected (`in_block`) or bytes are waiting, the read buffer gets [`WORKING_BUFFER`]
/// of room, so large blocks and bursts are read in large chunks; when the session is `idle` (no
/// command running) both buffers are given back if empty.
pub fn tend_buffers<S>(framed: &mut Framed<S, DotCodec>, in_block: bool, idle: bool) {
    if in_block || !framed.read_buffer().is_empty() {
        reserve_working_buffer(framed);
    } else if idle {
        release_idle_buffers(framed);
    }
}

/// Gives back both buffers where they are empty (a grown read buffer would otherwise stay with
/// the session for as long as it is open). Only empty buffers are replaced, so no byte is ever
/// lost; the next read allocates a small buffer again.
fn release_idle_buffers<S>(framed: &mut Framed<S, DotCodec>) {
    if framed.read_buffer().is_empty() && framed.read_buffer().capacity() > 0 {
        *framed.read_buffer_mut() = BytesMut::new();
    }
    if framed.write_buffer().is_empty() && framed.write_buffer().capacity() > 0 {
        *framed.write_buffer_mut() = BytesMut::new();
    }
}

/// Gives the read buffer [`WORKING_BUFFER`] of room.
fn reserve_working_buffer<S>(framed: &mut Framed<S, DotCodec>) {
    let read = framed.read_buffer_mut();
    if read.capacity() < WORKING_BUFFER {
        read.reserve(WORKING_BUFFER - read.len());
    }
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A command line, without its line end.
    Line(Vec<u8>),
    /// A complete data block: its lines joined with CRLF (and a final CRLF), dot-unstuffed.
    Block(Vec<u8>),
    /// A command line longer than the limit (it was discarded).
    LineTooLong,
    /// A block over the size limit, or with a line over the data-line limit (read to its dot
    /// and discarded).
    BlockTooLarge,
    /// A line ended in a bare LF while the `bare_lf` quirk is off.
    BareLf,
}

/// Sizes and quirks of one codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line (octets, without the line end).
    pub max_line: usize,
    /// Longest line inside a block.
    pub max_data_line: usize,
    /// Largest block (octets after unstuffing, CRLF line ends counted).
    pub max_block: usize,
    /// Accept a bare LF as a line end.
    pub bare_lf: bool,
}

impl Limits {
    /// The limits of `[limits]` for both listeners: bare LF accepted (telnet, nc and libical
    /// send it; cip-00 §1.4 and cap-04 §4.3 ask for CRLF), command lines at
    /// `max_line_bytes`, block lines at `max_data_line_bytes`, blocks at `max_payload_bytes`.
    pub fn from_config(config: &crate::config::LimitsConfig) -> Limits {
        Limits {
            max_line: config.max_line_bytes,
            max_data_line: config.max_data_line_bytes,
            max_block: config.max_payload_bytes,
            bare_lf: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Line,
    Block,
}

/// The codec: bytes to [`Frame`]s, and reply lines to bytes.
#[derive(Debug)]
pub struct DotCodec {
    limits: Limits,
    mode: Mode,
    /// Inside an overlong line: drop bytes up to the next LF.
    discarding: bool,
    /// Inside a block that went over a limit: keep reading to the dot, keep nothing.
    overflow: bool,
    block: Vec<u8>,
    /// How far `src` was already searched for a line end.
    scanned: usize,
}

impl DotCodec {
    /// A codec in line mode.
    pub fn new(limits: Limits) -> DotCodec {
        DotCodec {
            limits,
            mode: Mode::Line,
            discarding: false,
            overflow: false,
            block: Vec::new(),
            scanned: 0,
        }
    }

    /// Switches to block mode: the following lines, up to a lone `.`, form one [`Frame::Block`].
    pub fn expect_block(&mut self) {
        self.mode = Mode::Block;
        self.overflow = false;
        self.block.clear();
    }

    fn limit(&self) -> usize {
        match self.mode {
            Mode::Line => self.limits.max_line,
            Mode::Block => self.limits.max_data_line,
        }
    }

    /// Takes one raw line (without its end) from `src`, or `None` when none is complete.
    /// `Err(())` reports an overlong line that was discarded; `Ok(Some((line, bare)))` says
    /// whether it ended in a bare LF.
    fn next_line(&mut self, src: &mut BytesMut) -> Result<Option<(Vec<u8>, bool)>, ()> {
        let start = self.scanned.min(src.len());
        match src[start..].iter().position(|b| *b == b'\n') {
            Some(pos) => {
                let end = start + pos;
                self.scanned = 0;
                // Copy the line out and advance past its LF: no `split_to`, which would turn
                // the buffer into a shared one (an allocation and reference counting per line).
                let raw = src.get(..end).unwrap_or_default();
                let bare = !raw.ends_with(b"\r");
                let line = if bare {
                    raw
                } else {
                    raw.get(..end - 1).unwrap_or_default()
                };
                let result = if std::mem::take(&mut self.discarding) || line.len() > self.limit() {
                    Err(())
                } else {
                    Ok(Some((line.to_vec(), bare)))
                };
                src.advance(end + 1);
                result
            }
            None => {
                if self.discarding || src.len() > self.limit() + 1 {
                    // Over the limit and still no line end: drop what we have and keep
                    // dropping until the line ends.
                    self.discarding = true;
                    src.clear();
                    self.scanned = 0;
                } else {
                    self.scanned = src.len();
                }
                Ok(None)
            }
        }
    }
}

impl Decoder for DotCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        loop {
            let next = self.next_line(src);
            match self.mode {
                Mode::Line => {
                    return Ok(match next {
                        Err(()) => Some(Frame::LineTooLong),
                        Ok(None) => None,
                        Ok(Some((_, true))) if !self.limits.bare_lf => Some(Frame::BareLf),
                        Ok(Some((line, _))) => Some(Frame::Line(line)),
                    });
                }
                Mode::Block => match next {
                    Ok(None) => return Ok(None),
                    Err(()) => self.overflow = true,
                    Ok(Some((line, bare))) => {
                        if bare && !self.limits.bare_lf {
                            // One rule for line ends everywhere: a bare LF is not a line end
                            // here, so it cannot end the block either; the block is refused.
                            self.overflow = true;
                            continue;
                        }
                        if line == b"." {
                            self.mode = Mode::Line;
                            let block = std::mem::take(&mut self.block);
                            return Ok(Some(if std::mem::take(&mut self.overflow) {
                                Frame::BlockTooLarge
                            } else {
                                Frame::Block(block)
                            }));
                        }
                        if self.overflow {
                            continue;
                        }
                        let data = if line.starts_with(b"..") {
                            &line[1..]
                        } else {
                            &line[..]
                        };
                        if self.block.len() + data.len() + 2 > self.limits.max_block {
                            self.overflow = true;
                            self.block = Vec::new();
                            continue;
                        }
                        self.block.extend_from_slice(data);
                        self.block.extend_from_slice(b"\r\n");
                    }
                },
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        // A partial line or an unfinished block at EOF is dropped: never acted upon.
        src.advance(src.len());
        self.block.clear();
        Ok(None)
    }
}

/// Outgoing lines: each gets CRLF. A CR or LF inside a line would split it on the wire, so they
/// are replaced by spaces: the gateway never emits a bare LF.
impl Encoder<String> for DotCodec {
    type Error = std::io::Error;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.reserve(line.len() + 2);
        let bytes = line.as_bytes();
        if bytes.contains(&b'\r') || bytes.contains(&b'\n') {
            dst.extend(
                bytes
                    .iter()
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        } else {
            // The usual case: one copy of the whole line.
            dst.extend_from_slice(bytes);
        }
        dst.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Dot-stuffs data lines for sending (SMTP style: every line starting with `.` gets another).
pub fn stuff(line: &str) -> String {
    if line.starts_with('.') {
        format!(".{line}")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits {
            max_line: 40,
            max_data_line: 40,
            max_block: 120,
            bare_lf: true,
        }
    }

    /// Feeds `input` in the given chunk sizes, switching to block mode after a line ending in
    /// `+`, and returns the frames.
    fn run(input: &[u8], chunks: &[usize], l: Limits) -> Vec<Frame> {
        let mut codec = DotCodec::new(l);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut rest = input;
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                if matches!(&f, Frame::Line(l) if l.ends_with(b"+")) {
                    codec.expect_block();
                }
                out.push(f);
            }
        }
        while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_and_blocks() {
        let input = b"AUTHENTICATE LOGIN a b\r\nSENDEVENT +\r\nUID:1\r\n..x\r\n.\r\nHELP\n";
        assert_eq!(
            run(input, &[1000], limits()),
            vec![
                line("AUTHENTICATE LOGIN a b"),
                line("SENDEVENT +"),
                Frame::Block(b"UID:1\r\n.x\r\n".to_vec()),
                line("HELP"),
            ]
        );
    }

    #[test]
    fn overlong_line_is_discarded_and_session_continues() {
        let mut input = vec![b'A'; 500];
        input.extend_from_slice(b"\r\nHELP\r\n");
        assert_eq!(
            run(&input, &[7], limits()),
            vec![Frame::LineTooLong, line("HELP")]
        );
    }

    #[test]
    fn overlong_block_is_read_to_its_dot() {
        let mut input = b"SENDEVENT +\r\n".to_vec();
        for _ in 0..20 {
            input.extend_from_slice(b"DESCRIPTION:0123456789\r\n");
        }
        input.extend_from_slice(b".\r\nHELP\r\n");
        assert_eq!(
            run(&input, &[13], limits()),
            vec![line("SENDEVENT +"), Frame::BlockTooLarge, line("HELP")]
        );
        // A single overlong data line also rejects the block, but not the session.
        let mut input = b"SENDEVENT +\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 200]);
        input.extend_from_slice(b"\r\n.\r\nHELP\r\n");
        assert_eq!(
            run(&input, &[5], limits()),
            vec![line("SENDEVENT +"), Frame::BlockTooLarge, line("HELP")]
        );
    }

    #[test]
    fn eof_inside_a_block_yields_nothing() {
        let input = b"SENDEVENT +\r\nUID:1\r\nSUMMARY:half";
        assert_eq!(run(input, &[3], limits()), vec![line("SENDEVENT +")]);
    }

    #[test]
    fn bare_lf_policy() {
        let strict = Limits {
            bare_lf: false,
            ..limits()
        };
        assert_eq!(run(b"HELP\n", &[100], strict), vec![Frame::BareLf]);
        // With the quirk off, "\n.\n" inside a block does not end it (no smuggling).
        let input = b"SENDEVENT +\r\nUID:1\r\n.\nQUIT\r\n.\r\n";
        assert_eq!(
            run(input, &[100], strict),
            vec![line("SENDEVENT +"), Frame::BlockTooLarge]
        );
        assert_eq!(
            run(b"SENDEVENT +\nUID:1\n.\n", &[100], limits()),
            vec![line("SENDEVENT +"), Frame::Block(b"UID:1\r\n".to_vec())]
        );
    }

    #[test]
    fn encoder_never_emits_bare_line_ends() {
        let mut codec = DotCodec::new(limits());
        let mut dst = BytesMut::new();
        codec.encode("OK 000 a\nb\rc".to_owned(), &mut dst).unwrap();
        assert_eq!(&dst[..], b"OK 000 a b c\r\n");
        assert_eq!(stuff(".x"), "..x");
        assert_eq!(stuff("x."), "x.");
    }

    proptest! {
        /// Splitting the same bytes at any points gives the same frames.
        #[test]
        fn chunking_does_not_change_frames(
            body in proptest::collection::vec("[A-Z.:; ]{0,40}", 0..8),
            chunks in proptest::collection::vec(1usize..17, 1..10),
        ) {
            let mut input = b"NOOP\r\nSENDEVENT +\r\n".to_vec();
            for l in &body {
                input.extend_from_slice(l.as_bytes());
                input.extend_from_slice(b"\r\n");
            }
            input.extend_from_slice(b".\r\nQUIT\r\n");
            let whole = run(&input, &[input.len()], limits());
            prop_assert_eq!(run(&input, &chunks, limits()), whole);
        }

        /// Arbitrary bytes never panic and never produce a frame over the limits.
        #[test]
        fn arbitrary_input_is_bounded(input in proptest::collection::vec(any::<u8>(), 0..600),
                                      chunks in proptest::collection::vec(1usize..64, 1..8)) {
            for f in run(&input, &chunks, limits()) {
                match f {
                    Frame::Line(l) => prop_assert!(l.len() <= limits().max_line),
                    Frame::Block(b) => prop_assert!(b.len() <= limits().max_block),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;

    fn limits() -> Limits {
        Limits {
            max_line: 1000,
            max_data_line: 8192,
            max_block: 1 << 20,
            bare_lf: true,
        }
    }

    #[tokio::test]
    async fn buffers_are_released_when_empty_and_bytes_are_never_lost() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut framed = framed(server, limits());
        client.write_all(b"NOOP\r\nSENDEVENT").await.unwrap();
        assert_eq!(
            framed.next().await.unwrap().unwrap(),
            Frame::Line(b"NOOP".to_vec())
        );
        // Pipelined bytes are waiting (as much as the small first reads took): nothing is
        // released, and there is room to read.
        let waiting = framed.read_buffer().to_vec();
        assert!(!waiting.is_empty() && b"SENDEVENT".starts_with(&waiting));
        release_idle_buffers(&mut framed);
        assert_eq!(framed.read_buffer().as_ref(), waiting);
        reserve_working_buffer(&mut framed);
        assert!(framed.read_buffer().capacity() >= WORKING_BUFFER);
        assert_eq!(framed.read_buffer().as_ref(), waiting);
        client.write_all(b"\r\n").await.unwrap();
        assert_eq!(
            framed.next().await.unwrap().unwrap(),
            Frame::Line(b"SENDEVENT".to_vec())
        );
        framed.send("OK".to_owned()).await.unwrap();
        // Idle with nothing buffered: both buffers go.
        release_idle_buffers(&mut framed);
        assert_eq!(framed.read_buffer().capacity(), 0);
        assert_eq!(framed.write_buffer().capacity(), 0);
        // A block after the release arrives whole, line ends and dot-unstuffing included.
        framed.codec_mut().expect_block();
        reserve_working_buffer(&mut framed);
        let line = "x".repeat(100);
        let mut sent = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..500 {
            sent.extend_from_slice(format!("{line}\r\n").as_bytes());
            expected.extend_from_slice(format!("{line}\r\n").as_bytes());
        }
        sent.extend_from_slice(b"..dot\r\n.\r\n");
        expected.extend_from_slice(b".dot\r\n");
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client
        });
        assert_eq!(
            framed.next().await.unwrap().unwrap(),
            Frame::Block(expected)
        );
        let _client = writer.await.unwrap();
        assert!(framed.read_buffer().is_empty());
    }
}
