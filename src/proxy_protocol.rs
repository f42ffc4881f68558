//! The PROXY protocol (haproxy's `proxy-protocol.txt`), receiver side: a load balancer in TCP
//! mode puts one header in front of each connection it opens to a gateway instance, naming the
//! client it relays, so that the per-IP connection limit and the logs see the real client
//! instead of the balancer.
//!
//! - Version 2, the binary header (§2.2), is what `send-proxy-v2` sends and the main format.
//! - Version 1, the text line `PROXY TCP4 …\r\n` (§2.1), is accepted too: the spec recommends
//!   that v2 receivers also take v1 (§2), it costs little, and some balancers send only v1.
//!
//! Which one arrives is told apart as §2.2 describes: the 12-byte v2 signature, or `PROXY`.
//! The receiver must not guess whether a header is present (§2): on a listener with the flag
//! set, every connection must start with one, and anything else is an error.
//!
//! [`parse`] is sans-I/O (it looks at a buffer and says what it found or how much more it
//! needs); [`read_header`] drives it over an async stream, reading exactly the header's bytes
//! so that nothing the client sent after it is consumed. The caller bounds `read_header` with a
//! timeout (§2: "at least 3 seconds to cover a TCP retransmit").
//!
//! What comes out is a [`ProxyHeader`]: the client (source) and the address it connected to
//! (destination), or `None` for both when the connection's own endpoints are to be used: the
//! LOCAL command (the balancer's own health checks, §2.2), the AF_UNSPEC and AF_UNIX families,
//! transports other than STREAM, and v1 `UNKNOWN`. TLVs (§2.2.1–§2.2.8) are checked for shape
//! and otherwise skipped; nothing in them is used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte v2 signature (§2.2); it contains a NUL and is never a C string.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a v2 header: signature, version/command, family/transport, length (§2.2).
pub const V2_FIXED_LEN: usize = 16;

/// The largest v2 header accepted, fixed part included: 536 bytes, the smallest TCP segment
/// every host must accept (576 − 40), which the spec says both formats are designed to fit
/// in (§2). That leaves 304 bytes of TLVs after the largest (AF_UNIX) address block.
pub const V2_MAX_LEN: usize = 536;

/// The longest v1 line, CRLF included (§2.1: the worst `UNKNOWN` form is 107 characters; "if
/// the CRLF sequence is not found in the first 107 characters, the receiver should declare
/// the line invalid").
pub const V1_MAX_LEN: usize = 107;

/// The v1 line's first six bytes (§2.1).
const V1_PREFIX: &[u8] = b"PROXY ";

/// The shortest header of either version: `PROXY UNKNOWN\r\n` (15 bytes, §2.1); a v2 header
/// is at least 16.
const MIN_HEADER_LEN: usize = 15;

/// Address block sizes (§2.2): two addresses and, for IP, two ports.
const INET_LEN: usize = 4 + 4 + 2 + 2;
const INET6_LEN: usize = 16 + 16 + 2 + 2;
const UNIX_LEN: usize = 108 + 108;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client the balancer relays (`getpeername()` on the balancer's side); `None` when the
    /// connection's own peer address stands (LOCAL, AF_UNSPEC, AF_UNIX, a non-STREAM transport,
    /// v1 `UNKNOWN`).
    pub source: Option<SocketAddr>,
    /// The address the client connected to on the balancer; `None` exactly when `source` is.
    pub destination: Option<SocketAddr>,
}

impl ProxyHeader {
    /// A header that leaves the connection's own endpoints in place.
    const LOCAL: ProxyHeader = ProxyHeader {
        source: None,
        destination: None,
    };
}

/// The outcome of [`parse`] on a buffer that holds the start of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The buffer is a valid beginning of a header, but not all of it. `needed` is a lower
    /// bound, always at least 1: at least that many more bytes are needed, and no valid header
    /// ends sooner, so reading exactly `needed` more bytes never reads past the header.
    Incomplete { needed: usize },
    /// A whole header: it is `buf[..consumed]`; whatever follows belongs to the application.
    Complete {
        header: ProxyHeader,
        consumed: usize,
    },
}

/// Why a connection's first bytes are not an acceptable PROXY header. Every error means the
/// connection is to be closed (§2.1: "must be discarded and cause the receiver to abort the
/// connection"; §2.2: "receivers must drop connections presenting unexpected values").
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Neither the v2 signature nor `PROXY ` (§2.2, "the protocol is not covered by this
    /// specification and the connection must be dropped").
    #[error("not a PROXY protocol header (no v2 signature and no \"PROXY \" line)")]
    BadSignature,
    /// The v2 version nibble is not 2 (§2.2: "the receiver must only accept this value").
    #[error("PROXY protocol v2 header with version {0}; only version 2 is accepted")]
    UnsupportedVersion(u8),
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1) (§2.2).
    #[error("PROXY protocol v2 header with unknown command {0:#x} (only LOCAL and PROXY exist)")]
    UnknownCommand(u8),
    /// The v2 address family nibble is above AF_UNIX (3) (§2.2: "must be rejected as invalid").
    #[error("PROXY protocol v2 header with unknown address family {0:#x}")]
    UnknownFamily(u8),
    /// The v2 transport nibble is above DGRAM (2) (§2.2: "must be rejected as invalid").
    #[error("PROXY protocol v2 header with unknown transport protocol {0:#x}")]
    UnknownTransport(u8),
    /// The announced length cannot hold the addresses of the announced family (§2.2).
    #[error(
        "PROXY protocol v2 header announces {len} address bytes; {family} needs at least {needed}"
    )]
    AddressTooShort {
        family: &'static str,
        len: usize,
        needed: usize,
    },
    /// The header is longer than a receiver has to accept ([`V2_MAX_LEN`]).
    #[error("PROXY protocol v2 header of {len} bytes; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    /// A TLV after the addresses runs past the end of the header (§2.2).
    #[error("PROXY protocol v2 header with a malformed TLV at byte {offset}")]
    BadTlv { offset: usize },
    /// No CRLF within the first [`V1_MAX_LEN`] bytes of a v1 line (§2.1).
    #[error("PROXY protocol v1 line without CRLF in its first {max} bytes", max = V1_MAX_LEN)]
    V1TooLong,
    /// A v1 line that does not match §2.1 exactly.
    #[error("malformed PROXY protocol v1 line: {0}")]
    V1Malformed(&'static str),
    /// The peer closed the connection before a whole header arrived.
    #[error("connection closed before a complete PROXY protocol header")]
    Closed,
    /// Reading the header failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[source] std::io::Error),
}

/// Parses the PROXY header (v2, §2.2, or v1, §2.1) at the start of `buf`.
///
/// Never reads beyond what a header can hold: a v2 header announcing more than
/// [`V2_MAX_LEN`] bytes, or a v1 line without CRLF within [`V1_MAX_LEN`] bytes, is an error as
/// soon as that is known. An incomplete buffer is rejected early when what is there already
/// cannot begin a valid header.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.is_empty() {
        // One byte tells the versions (and most garbage) apart.
        return Ok(Parsed::Incomplete { needed: 1 });
    }
    if buf[0] == V2_SIGNATURE[0] {
        parse_v2(buf)
    } else if buf[0] == V1_PREFIX[0] {
        parse_v1(buf)
    } else {
        Err(ProxyError::BadSignature)
    }
}

/// §2.2, the binary header.
fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err(ProxyError::BadSignature);
    }
    // The 13th byte: version (high nibble) and command (low nibble).
    if let Some(&ver_cmd) = buf.get(12) {
        let version = ver_cmd >> 4;
        if version != 2 {
            return Err(ProxyError::UnsupportedVersion(version));
        }
        let command = ver_cmd & 0x0f;
        if command > 1 {
            return Err(ProxyError::UnknownCommand(command));
        }
    }
    if buf.len() < V2_FIXED_LEN {
        return Ok(Parsed::Incomplete {
            needed: V2_FIXED_LEN - buf.len(),
        });
    }
    let local = buf[12] & 0x0f == 0;
    // The 14th byte: address family (high nibble) and transport (low nibble). LOCAL ignores
    // it: "discard the protocol block including the family which is ignored".
    let family = buf[13] >> 4;
    let transport = buf[13] & 0x0f;
    if !local {
        if family > 3 {
            return Err(ProxyError::UnknownFamily(family));
        }
        if transport > 2 {
            return Err(ProxyError::UnknownTransport(transport));
        }
    }
    // The 15th and 16th bytes: the length of the rest, network byte order.
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = V2_FIXED_LEN + len;
    if total > V2_MAX_LEN {
        return Err(ProxyError::TooLong {
            len: total,
            max: V2_MAX_LEN,
        });
    }
    // "The receiver must not start to parse an address before the whole address block is
    // received", but the announced length can already be checked against the family.
    let (family_name, address_len) = match (local, transport, family) {
        // LOCAL, or an UNSPEC transport: the receiver "should ignore address information".
        (true, _, _) | (false, 0, _) | (false, _, 0) => ("AF_UNSPEC", 0),
        (false, _, 1) => ("AF_INET", INET_LEN),
        (false, _, 2) => ("AF_INET6", INET6_LEN),
        (false, _, _) => ("AF_UNIX", UNIX_LEN),
    };
    if len < address_len {
        return Err(ProxyError::AddressTooShort {
            family: family_name,
            len,
            needed: address_len,
        });
    }
    if buf.len() < total {
        return Ok(Parsed::Incomplete {
            needed: total - buf.len(),
        });
    }
    let block = &buf[V2_FIXED_LEN..total];
    if address_len > 0 {
        check_tlvs(&block[address_len..], V2_FIXED_LEN + address_len)?;
    }
    // Addresses are used for STREAM over AF_INET / AF_INET6 only. DGRAM is valid but means
    // nothing to a TCP gateway; like AF_UNIX it falls back to the connection's own endpoints,
    // which §2.2 allows ("provided that it automatically falls back to the UNSPEC mode").
    let header = match (local, transport, family) {
        (false, 1, 1) => {
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&block[0..4]).expect("4 bytes"));
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&block[4..8]).expect("4 bytes"));
            let sport = u16::from_be_bytes([block[8], block[9]]);
            let dport = u16::from_be_bytes([block[10], block[11]]);
            ProxyHeader {
                source: Some(SocketAddr::new(IpAddr::V4(src), sport)),
                destination: Some(SocketAddr::new(IpAddr::V4(dst), dport)),
            }
        }
        (false, 1, 2) => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&block[0..16]).expect("16 bytes"));
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&block[16..32]).expect("16 bytes"));
            let sport = u16::from_be_bytes([block[32], block[33]]);
            let dport = u16::from_be_bytes([block[34], block[35]]);
            ProxyHeader {
                source: Some(SocketAddr::new(IpAddr::V6(src), sport)),
                destination: Some(SocketAddr::new(IpAddr::V6(dst), dport)),
            }
        }
        _ => ProxyHeader::LOCAL,
    };
    Ok(Parsed::Complete {
        header,
        consumed: total,
    })
}

/// Walks the TLVs after the address block (§2.2: type, 16-bit length, value) and checks that
/// they tile it exactly. Their content is not used. The walk is bounded by the header length
/// (at most [`V2_MAX_LEN`]), and each step advances at least 3 bytes.
fn check_tlvs(mut tlvs: &[u8], mut offset: usize) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some(&[_, hi, lo]) = tlvs.get(..3) else {
            return Err(ProxyError::BadTlv { offset });
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        if end > tlvs.len() {
            return Err(ProxyError::BadTlv { offset });
        }
        tlvs = &tlvs[end..];
        offset += end;
    }
    Ok(())
}

/// §2.1, the text line: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or
/// `PROXY UNKNOWN[ anything]\r\n`.
fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = buf.len().min(V1_PREFIX.len());
    if buf[..prefix] != V1_PREFIX[..prefix] {
        return Err(ProxyError::BadSignature);
    }
    // A lone CR or LF never ends the line (§2.1: "must not tolerate a single CR or LF").
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let end = match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if window[i] == b'\n' => return Err(ProxyError::V1Malformed("LF without CR")),
        Some(i) => match window.get(i + 1) {
            Some(b'\n') => Some(i),
            Some(_) => return Err(ProxyError::V1Malformed("CR without LF")),
            None if i + 1 < V1_MAX_LEN => None,
            None => return Err(ProxyError::V1TooLong),
        },
        None if window.len() >= V1_MAX_LEN => return Err(ProxyError::V1TooLong),
        None => None,
    };
    // What has arrived of the line, without the CRLF (or a CR that may begin it).
    let line_end = end.unwrap_or(buf.len() - usize::from(buf.ends_with(b"\r")));
    let line = &buf[V1_PREFIX.len().min(line_end)..line_end];
    check_v1_prefix(line, end.is_some())?;
    let Some(end) = end else {
        return Ok(Parsed::Incomplete {
            needed: MIN_HEADER_LEN.saturating_sub(buf.len()).max(1),
        });
    };
    let header = parse_v1_line(line)?;
    Ok(Parsed::Complete {
        header,
        consumed: end + 2,
    })
}

/// Rejects a v1 line early when what has arrived so far (`line`, after `PROXY `, without the
/// CRLF) cannot begin a valid one: the protocol word, then only the characters addresses and
/// ports are written with. `UNKNOWN` may be followed by anything (§2.1: "the receiver must
/// ignore anything presented before the CRLF").
fn check_v1_prefix(line: &[u8], whole: bool) -> Result<(), ProxyError> {
    const WORDS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
    let word_end = line.iter().position(|&b| b == b' ');
    let word = &line[..word_end.unwrap_or(line.len())];
    let known = if word_end.is_some() || whole {
        WORDS.contains(&word)
    } else {
        WORDS.iter().any(|w| w.starts_with(word))
    };
    if !known {
        return Err(ProxyError::V1Malformed(
            "the protocol is not TCP4, TCP6 or UNKNOWN",
        ));
    }
    if word != b"UNKNOWN"
        && let Some(i) = word_end
        && !line[i..]
            .iter()
            .all(|&b| b == b' ' || b == b'.' || b == b':' || b.is_ascii_hexdigit())
    {
        return Err(ProxyError::V1Malformed(
            "unexpected character in the addresses or ports",
        ));
    }
    Ok(())
}

/// A whole v1 line after `PROXY ` and before the CRLF.
fn parse_v1_line(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    if line == b"UNKNOWN" || line.starts_with(b"UNKNOWN ") {
        return Ok(ProxyHeader::LOCAL);
    }
    // check_v1_prefix let only ASCII through for TCP4 / TCP6.
    let text = std::str::from_utf8(line).map_err(|_| ProxyError::V1Malformed("not ASCII"))?;
    // Exactly one space between fields: split(' ') yields an empty field for two spaces.
    let fields: Vec<&str> = text.split(' ').collect();
    let [proto, src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::V1Malformed(
            "expected five fields separated by single spaces",
        ));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            src.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::V1Malformed("bad IPv4 source address"))?
                .into(),
            dst.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::V1Malformed("bad IPv4 destination address"))?
                .into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::V1Malformed("bad IPv6 source address"))?
                .into(),
            dst.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::V1Malformed("bad IPv6 destination address"))?
                .into(),
        ),
        _ => return Err(ProxyError::V1Malformed("unknown protocol")),
    };
    Ok(ProxyHeader {
        source: Some(SocketAddr::new(src, v1_port(sport)?)),
        destination: Some(SocketAddr::new(dst, v1_port(dport)?)),
    })
}

/// A v1 port: decimal, 0..=65535, no leading zero (§2.1).
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let well_formed = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    well_formed
        .then(|| s.parse::<u16>().ok())
        .flatten()
        .ok_or(ProxyError::V1Malformed("bad port"))
}

/// Reads one PROXY header (v2 or v1) from the start of `stream`, and exactly its bytes: the
/// 16-byte v2 fixed part and then the announced length, or a v1 line up to its CRLF (the
/// first 15 bytes, the shortest line, then byte by byte, at most [`V1_MAX_LEN`]). Whatever the client
/// sent after the header stays unread in `stream`. The first byte is read alone, so a client
/// that speaks first without a header is refused at once.
///
/// There is no timeout here; the caller wraps the call in one (§2 suggests a few seconds, at
/// least 3). An error means the connection is to be closed without a word.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ProxyHeader, ProxyError> {
    let mut buf = [0u8; V2_MAX_LEN];
    let mut filled = 0;
    loop {
        match parse(&buf[..filled])? {
            Parsed::Complete { header, consumed } => {
                debug_assert_eq!(consumed, filled, "read_header read past the header");
                return Ok(header);
            }
            Parsed::Incomplete { needed } => {
                // parse keeps v2 within V2_MAX_LEN and v1 within V1_MAX_LEN, so this fits.
                let end = filled + needed;
                stream
                    .read_exact(&mut buf[filled..end])
                    .await
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => ProxyError::Closed,
                        _ => ProxyError::Io(e),
                    })?;
                filled = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Test-only v2 encoder: `command` 0 (LOCAL) or 1 (PROXY), the family/transport byte, the
    /// address block and TLVs as given.
    fn v2_raw(command: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(fam);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// Test-only v2 encoder for a PROXY command over TCP with `tlvs` (type, value) appended.
    fn encode_v2(src: SocketAddr, dst: SocketAddr, tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut block = Vec::new();
        let fam = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                block.extend_from_slice(&s.octets());
                block.extend_from_slice(&d.octets());
                0x11
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                block.extend_from_slice(&s.octets());
                block.extend_from_slice(&d.octets());
                0x21
            }
            _ => panic!("mixed families"),
        };
        block.extend_from_slice(&src.port().to_be_bytes());
        block.extend_from_slice(&dst.port().to_be_bytes());
        for (t, v) in tlvs {
            block.push(*t);
            block.extend_from_slice(&u16::try_from(v.len()).unwrap().to_be_bytes());
            block.extend_from_slice(v);
        }
        v2_raw(1, fam, &block)
    }

    /// Test-only v1 encoder.
    fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
        format!(
            "PROXY {proto} {} {} {} {}\r\n",
            src.ip(),
            dst.ip(),
            src.port(),
            dst.port()
        )
        .into_bytes()
    }

    fn complete(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { header, consumed }) => (header, consumed),
            other => panic!("expected a complete header, got {other:?}"),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// What haproxy 2.6 `send-proxy-v2` sent for 127.0.0.2:52261 → 127.0.0.1:39555, with the
    /// first application bytes after it.
    const HAPROXY_V4: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x02\x7f\x00\x00\x01\xcc\x25\x9a\x83hello\r\n";

    /// What haproxy 2.6 sends for a `check` with `send-proxy-v2`: LOCAL, AF_UNSPEC, no address.
    const HAPROXY_CHECK: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

    #[test]
    fn v2_ipv4_from_haproxy() {
        let (h, n) = complete(HAPROXY_V4);
        assert_eq!(n, 28);
        assert_eq!(&HAPROXY_V4[n..], b"hello\r\n");
        assert_eq!(h.source, Some(sa("127.0.0.2:52261")));
        assert_eq!(h.destination, Some(sa("127.0.0.1:39555")));
    }

    #[test]
    fn v2_ipv6() {
        let src = sa("[2001:db8::1]:40000");
        let dst = sa("[2001:db8::2]:5230");
        let buf = encode_v2(src, dst, &[]);
        assert_eq!(buf.len(), 16 + 36);
        let (h, n) = complete(&buf);
        assert_eq!(n, buf.len());
        assert_eq!(h.source, Some(src));
        assert_eq!(h.destination, Some(dst));
    }

    #[test]
    fn v2_local_is_the_connection_itself() {
        let (h, n) = complete(HAPROXY_CHECK);
        assert_eq!(n, 16);
        assert_eq!(h, ProxyHeader::LOCAL);
        // LOCAL with an address block and an unknown family byte: skipped, family ignored.
        let buf = v2_raw(0, 0xff, &[1, 2, 3, 4, 5]);
        let (h, n) = complete(&buf);
        assert_eq!((h, n), (ProxyHeader::LOCAL, 21));
    }

    #[test]
    fn v2_unspec_unix_and_dgram_fall_back_to_the_connection() {
        // AF_UNSPEC with some bytes: ignored.
        assert_eq!(complete(&v2_raw(1, 0x00, &[9; 7])).0, ProxyHeader::LOCAL);
        // AF_UNSPEC over STREAM.
        assert_eq!(complete(&v2_raw(1, 0x01, &[])).0, ProxyHeader::LOCAL);
        // AF_INET with an UNSPEC transport: address information ignored, no length needed.
        assert_eq!(complete(&v2_raw(1, 0x10, &[])).0, ProxyHeader::LOCAL);
        // AF_UNIX stream, 216 bytes of paths.
        assert_eq!(
            complete(&v2_raw(1, 0x31, &[b'/'; 216])).0,
            ProxyHeader::LOCAL
        );
        // UDP over IPv4: well formed, but not a TCP client.
        assert_eq!(complete(&v2_raw(1, 0x12, &[1; 12])).0, ProxyHeader::LOCAL);
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let src = sa("192.0.2.7:1234");
        let dst = sa("192.0.2.1:5229");
        let tlvs = vec![
            (0x01, b"h2".to_vec()),                                    // PP2_TYPE_ALPN
            (0x04, vec![0; 5]),                                        // PP2_TYPE_NOOP
            (0x05, b"unique-id-123".to_vec()),                         // PP2_TYPE_UNIQUE_ID
            (0x20, vec![1, 0, 0, 0, 0, 0x21, 0, 3, b'1', b'.', b'3']), // PP2_TYPE_SSL
            (0xe0, Vec::new()),                                        // custom, empty
        ];
        let mut buf = encode_v2(src, dst, &tlvs);
        let len = buf.len();
        buf.extend_from_slice(b"OK CIP");
        let (h, n) = complete(&buf);
        assert_eq!(n, len);
        assert_eq!(h.source, Some(src));
        assert_eq!(h.destination, Some(dst));
    }

    #[test]
    fn v2_malformed_tlv() {
        let mut block = vec![127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2];
        block.extend_from_slice(&[0x04, 0x00, 0x05, 0, 0]); // NOOP announcing 5, has 2
        let err = parse(&v2_raw(1, 0x11, &block)).unwrap_err();
        assert!(matches!(err, ProxyError::BadTlv { offset: 28 }), "{err}");
        block.truncate(12);
        block.extend_from_slice(&[0x04, 0x00]); // a TLV cut inside its length
        let err = parse(&v2_raw(1, 0x11, &block)).unwrap_err();
        assert!(matches!(err, ProxyError::BadTlv { offset: 28 }), "{err}");
    }

    #[test]
    fn v2_rejections() {
        let mut bad_version = HAPROXY_V4.to_vec();
        bad_version[12] = 0x11;
        assert!(matches!(
            parse(&bad_version[..13]),
            Err(ProxyError::UnsupportedVersion(1))
        ));
        let mut bad_command = HAPROXY_V4.to_vec();
        bad_command[12] = 0x22;
        assert!(matches!(
            parse(&bad_command),
            Err(ProxyError::UnknownCommand(2))
        ));
        assert!(matches!(
            parse(&v2_raw(1, 0x41, &[0; 12])),
            Err(ProxyError::UnknownFamily(4))
        ));
        assert!(matches!(
            parse(&v2_raw(1, 0x13, &[0; 12])),
            Err(ProxyError::UnknownTransport(3))
        ));
        let err = parse(&v2_raw(1, 0x11, &[0; 11])).unwrap_err();
        assert!(
            matches!(
                err,
                ProxyError::AddressTooShort {
                    family: "AF_INET",
                    len: 11,
                    needed: 12
                }
            ),
            "{err}"
        );
        assert!(matches!(
            parse(&v2_raw(1, 0x21, &[0; 12])),
            Err(ProxyError::AddressTooShort { needed: 36, .. })
        ));
        assert!(matches!(
            parse(&v2_raw(1, 0x32, &[0; 200])),
            Err(ProxyError::AddressTooShort { needed: 216, .. })
        ));
        // The length is judged from the fixed part alone, before the block arrives.
        let mut short = v2_raw(1, 0x11, &[0; 11]);
        short.truncate(16);
        assert!(matches!(
            parse(&short),
            Err(ProxyError::AddressTooShort { .. })
        ));
    }

    #[test]
    fn v2_over_long_length_is_rejected_from_the_fixed_part() {
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let err = parse(&fixed).unwrap_err();
        assert!(
            matches!(
                err,
                ProxyError::TooLong {
                    len: 65551,
                    max: 536
                }
            ),
            "{err}"
        );
        // The largest accepted: 520 bytes after the fixed part.
        let ok = v2_raw(0, 0, &[0; 520]);
        assert_eq!(complete(&ok).1, 536);
        assert!(matches!(
            parse(&v2_raw(0, 0, &[0; 521])),
            Err(ProxyError::TooLong { len: 537, .. })
        ));
    }

    #[test]
    fn v1_forms() {
        let (h, n) = complete(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
        assert_eq!(n, 47);
        assert_eq!(h.source, Some(sa("192.168.0.1:56324")));
        assert_eq!(h.destination, Some(sa("192.168.0.11:443")));
        let (h, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
        assert_eq!(h.source, Some(sa("[2001:db8::1]:65535")));
        assert_eq!(h.destination, Some(sa("[::1]:0")));
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (ProxyHeader::LOCAL, 15));
        let worst = format!(
            "PROXY UNKNOWN {0} {0} 65535 65535\r\n",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(worst.len(), V1_MAX_LEN);
        assert_eq!(complete(worst.as_bytes()), (ProxyHeader::LOCAL, 107));
        // "The receiver must ignore anything presented before the CRLF" for UNKNOWN.
        assert_eq!(complete(b"PROXY UNKNOWN ??\r\n").0, ProxyHeader::LOCAL);
    }

    #[test]
    fn v1_rejections() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..], // LF alone
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", // two spaces
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", // leading zero
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", // leading zero
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXYTCP4",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} was accepted: {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
        let long = format!("PROXY UNKNOWN {}", "x".repeat(200));
        assert!(matches!(parse(long.as_bytes()), Err(ProxyError::V1TooLong)));
        // The CR as the 107th byte: the LF would be the 108th.
        let cr_last = format!("PROXY UNKNOWN {}\r", "x".repeat(V1_MAX_LEN - 15));
        assert_eq!(cr_last.len(), V1_MAX_LEN);
        assert!(matches!(
            parse(cr_last.as_bytes()),
            Err(ProxyError::V1TooLong)
        ));
    }

    #[test]
    fn garbage_is_rejected_at_once() {
        for bad in [
            &b"OK CIP 1.0"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00", // a TLS ClientHello
            b"\r\n\r\n\0\r\nQUIX",
            b"\r\r",
            b"AUTHENTICATE LOGIN alice alicepw\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::BadSignature)),
                "{bad:?}"
            );
        }
        assert!(matches!(parse(b"PROX!"), Err(ProxyError::BadSignature)));
        assert!(matches!(
            parse(b"PROXY FOO"),
            Err(ProxyError::V1Malformed(_))
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 z"),
            Err(ProxyError::V1Malformed(_))
        ));
    }

    #[test]
    fn every_prefix_is_incomplete_with_a_safe_lower_bound() {
        let mut samples = vec![
            HAPROXY_V4[..28].to_vec(),
            HAPROXY_CHECK.to_vec(),
            encode_v2(sa("[::1]:1"), sa("[::2]:2"), &[(0x05, vec![7; 40])]),
            v2_raw(1, 0x31, &[0; 216]),
            b"PROXY UNKNOWN\r\n".to_vec(),
            b"PROXY TCP4 10.1.2.3 10.0.0.1 65535 5230\r\n".to_vec(),
            encode_v1(sa("[fe80::1:2:3]:9"), sa("[::]:80")),
        ];
        samples.push(v2_raw(0, 0, &[0; 520]));
        for full in samples {
            for cut in 0..full.len() {
                match parse(&full[..cut]) {
                    Ok(Parsed::Incomplete { needed }) => {
                        assert!(needed >= 1);
                        assert!(
                            cut + needed <= full.len(),
                            "prefix {cut} of {full:?} asks for {needed}"
                        );
                    }
                    other => panic!("prefix {cut} of {full:?}: {other:?}"),
                }
            }
            assert_eq!(complete(&full).1, full.len());
        }
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            ProxyError::TooLong { len: 600, max: 536 }.to_string(),
            "PROXY protocol v2 header of 600 bytes; at most 536 are accepted"
        );
        assert_eq!(
            ProxyError::V1TooLong.to_string(),
            "PROXY protocol v1 line without CRLF in its first 107 bytes"
        );
        assert_eq!(
            ProxyError::UnknownCommand(2).to_string(),
            "PROXY protocol v2 header with unknown command 0x2 (only LOCAL and PROXY exist)"
        );
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn read_header_leaves_the_application_bytes() {
        block_on(async {
            let mut input: &[u8] = HAPROXY_V4;
            let h = read_header(&mut input).await.unwrap();
            assert_eq!(h.source, Some(sa("127.0.0.2:52261")));
            assert_eq!(input, b"hello\r\n");

            let mut input: &[u8] = b"PROXY TCP4 10.0.0.9 10.0.0.1 4000 5230\r\nQUIT\r\n";
            let h = read_header(&mut input).await.unwrap();
            assert_eq!(h.source, Some(sa("10.0.0.9:4000")));
            assert_eq!(input, b"QUIT\r\n");

            let mut input: &[u8] = b"PROXY UNKNOWN\r\nX";
            assert_eq!(read_header(&mut input).await.unwrap(), ProxyHeader::LOCAL);
            assert_eq!(input, b"X");
        });
    }

    #[test]
    fn read_header_over_a_trickle() {
        block_on(async {
            use tokio::io::AsyncWriteExt;
            let (mut client, mut server) = tokio::io::duplex(64);
            let mut bytes = encode_v2(
                sa("198.51.100.4:777"),
                sa("203.0.113.5:5229"),
                &[(0x04, vec![0; 3])],
            );
            bytes.extend_from_slice(b"after");
            let writer = tokio::spawn(async move {
                for b in bytes {
                    client.write_all(&[b]).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client
            });
            let h = read_header(&mut server).await.unwrap();
            assert_eq!(h.source, Some(sa("198.51.100.4:777")));
            drop(writer.await.unwrap());
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"after");
        });
    }

    #[test]
    fn read_header_errors() {
        block_on(async {
            let mut input: &[u8] = &HAPROXY_V4[..20];
            assert!(matches!(
                read_header(&mut input).await,
                Err(ProxyError::Closed)
            ));
            let mut input: &[u8] = b"";
            assert!(matches!(
                read_header(&mut input).await,
                Err(ProxyError::Closed)
            ));
            let mut input: &[u8] = b"HELO example.com\r\n";
            assert!(matches!(
                read_header(&mut input).await,
                Err(ProxyError::BadSignature)
            ));
            // An over-long header is refused after the fixed part: the rest is not read.
            let mut input: &[u8] = &[
                0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
                0x02, 0x19, 0xaa,
            ];
            assert!(matches!(
                read_header(&mut input).await,
                Err(ProxyError::TooLong { len: 553, .. })
            ));
            assert_eq!(input, [0xaa]);
        });
    }

    fn socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            (
                any::<[u8; 4]>(),
                any::<u16>(),
                any::<[u8; 4]>(),
                any::<u16>()
            )
                .prop_map(|(s, sp, d, dp)| (
                    SocketAddr::new(IpAddr::V4(s.into()), sp),
                    SocketAddr::new(IpAddr::V4(d.into()), dp)
                )),
            (
                any::<[u8; 16]>(),
                any::<u16>(),
                any::<[u8; 16]>(),
                any::<u16>()
            )
                .prop_map(|(s, sp, d, dp)| (
                    SocketAddr::new(IpAddr::V6(s.into()), sp),
                    SocketAddr::new(IpAddr::V6(d.into()), dp)
                )),
        ]
    }

    fn tlvs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..60)),
            0..5,
        )
    }

    proptest! {
        #[test]
        fn v2_round_trips(
            (src, dst) in socket_pair(),
            tlvs in tlvs(),
            tail in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let header = encode_v2(src, dst, &tlvs);
            let mut buf = header.clone();
            buf.extend_from_slice(&tail);
            let (h, n) = complete(&buf);
            prop_assert_eq!(n, header.len());
            prop_assert_eq!(h.source, Some(src));
            prop_assert_eq!(h.destination, Some(dst));
            let mut input: &[u8] = &buf;
            let read = block_on(read_header(&mut input)).unwrap();
            prop_assert_eq!(read, h);
            prop_assert_eq!(input, &tail[..]);
            for cut in 0..header.len() {
                let is_incomplete =
                    matches!(parse(&header[..cut]), Ok(Parsed::Incomplete { needed }) if cut + needed <= header.len());
                prop_assert!(is_incomplete, "prefix {}", cut);
            }
        }

        #[test]
        fn v1_round_trips((src, dst) in socket_pair(), tail in "[ -~]{0,20}") {
            let header = encode_v1(src, dst);
            let mut buf = header.clone();
            buf.extend_from_slice(tail.as_bytes());
            let (h, n) = complete(&buf);
            prop_assert_eq!(n, header.len());
            prop_assert_eq!(h.source, Some(src));
            prop_assert_eq!(h.destination, Some(dst));
            let mut input: &[u8] = &buf;
            prop_assert_eq!(block_on(read_header(&mut input)).unwrap(), h);
            prop_assert_eq!(input, tail.as_bytes());
            for cut in 0..header.len() {
                let is_incomplete = matches!(
                    parse(&header[..cut]),
                    Ok(Parsed::Incomplete { needed }) if cut + needed <= header.len()
                );
                prop_assert!(is_incomplete, "prefix {}", cut);
            }
        }

        /// Arbitrary bytes, and arbitrary bytes after a valid signature: never a panic, and a
        /// complete header never claims more than the buffer or the caps.
        #[test]
        fn arbitrary_input_never_panics(
            start in prop_oneof![
                Just(Vec::new()),
                Just(V2_SIGNATURE.to_vec()),
                Just(b"PROXY ".to_vec()),
                Just(b"PROXY TCP4 ".to_vec()),
            ],
            rest in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut buf = start;
            buf.extend_from_slice(&rest);
            match parse(&buf) {
                Ok(Parsed::Complete { consumed, .. }) => {
                    prop_assert!(consumed <= buf.len() && consumed <= V2_MAX_LEN);
                }
                Ok(Parsed::Incomplete { needed }) => {
                    prop_assert!(needed >= 1 && buf.len() + needed <= V2_MAX_LEN);
                }
                Err(_) => {}
            }
            // read_header agrees with parse and reads nothing past a header.
            let mut input: &[u8] = &buf;
            match (block_on(read_header(&mut input)), parse(&buf)) {
                (Ok(h), Ok(Parsed::Complete { header, consumed })) => {
                    prop_assert_eq!(h, header);
                    prop_assert_eq!(input.len(), buf.len() - consumed);
                }
                (Err(ProxyError::Closed), Ok(Parsed::Incomplete { .. })) => {}
                (Err(_), Err(_)) => {}
                (read, parsed) => prop_assert!(false, "read_header {:?}, parse {:?}", read, parsed),
            }
        }
    }
}
