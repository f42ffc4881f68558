//! A minimal CAP client for tests that drive the gateway by hand (transcripts cover the rest):
//! connect, read two-dot replies, log in, send a SENDDATA payload and read the statuses of its
//! reply.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A CAP connection.
pub type Conn = BufReader<tokio::net::TcpStream>;

/// Connects to a CAP listener (the greeting is not read).
pub async fn connect(addr: SocketAddr) -> Conn {
    BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap())
}

/// One CRLF line without its line end; `None` at EOF.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<String> {
    let mut buf = String::new();
    let n = tokio::time::timeout(Duration::from_secs(30), r.read_line(&mut buf))
        .await
        .expect("the gateway answered")
        .ok()?;
    if n == 0 {
        return None;
    }
    assert!(buf.ends_with("\r\n"), "CRLF line ends: {buf:?}");
    buf.truncate(buf.len() - 2);
    Some(buf)
}

/// Lines up to a reply's final `.` (two-dot form).
pub async fn reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Vec<String> {
    let mut lines = Vec::new();
    let mut dots = 0;
    while dots < 2 {
        let l = read_line(r).await.expect("a reply line before EOF");
        if l == "." {
            dots += 1;
        }
        lines.push(l);
    }
    lines
}

/// Sends one line (CRLF added).
pub async fn send<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, line: &str) {
    w.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    w.flush().await.unwrap();
}

/// A NOOP, answered `2.0`: the session is still usable.
pub async fn noop(s: &mut Conn) {
    send(s.get_mut(), "NOOP").await;
    assert_eq!(reply(s).await[0], "2.0");
}

/// Connects, reads the greeting, logs in with PLAIN `b64`.
pub async fn logged_in(addr: SocketAddr, b64: &str) -> Conn {
    let mut s = connect(addr).await;
    reply(&mut s).await;
    send(s.get_mut(), &format!("AUTHENTICATE PLAIN {b64}")).await;
    let ok = reply(&mut s).await;
    assert_eq!(ok[0], "2.0", "{ok:?}");
    s
}

/// SENDDATA with `entity` (lines joined with CRLF, dot-stuffed, `.` appended); returns the
/// reply.
pub async fn senddata(s: &mut Conn, entity: &str) -> Vec<String> {
    send(s.get_mut(), "SENDDATA").await;
    assert_eq!(read_line(s).await.as_deref(), Some("2.0.1"));
    let mut block = String::new();
    for l in entity.lines() {
        if l.starts_with('.') {
            block.push('.');
        }
        block.push_str(l);
        block.push_str("\r\n");
    }
    block.push_str(".\r\n");
    s.get_mut().write_all(block.as_bytes()).await.unwrap();
    reply(s).await
}

/// alice's PLAIN initial response (`\0alice\0alicepw`).
pub const ALICE: &str = "AGFsaWNlAGFsaWNlcHc=";
/// bob's.
pub const BOB: &str = "AGJvYgBib2Jwdw==";

/// A SENDDATA entity with one VCOMMAND (LF line ends: [`senddata`] sends CRLF).
pub fn vcap(cmdid: &str, method: &str, target: &str, body: &str) -> String {
    format!(
        "Content-Type: text/calendar; method={method}; component=VCOMMAND\n\n\
         BEGIN:VCAP\nVERSION:2.0\nCMDID:{cmdid}\nBEGIN:VCOMMAND\nMETHOD:{method}\n\
         TARGET:{target}\n{body}END:VCOMMAND\nEND:VCAP\n"
    )
}

/// The REQUEST-STATUS given for the object with `uid` in a SENDDATA reply.
pub fn status_of(reply: &[String], uid: &str) -> String {
    let text = super::unfolded(reply);
    let at = text
        .find(&format!("UID:{uid}\r\n"))
        .unwrap_or_else(|| panic!("{uid} is reported: {text}"));
    text[at..]
        .lines()
        .take_while(|l| !l.starts_with("END:"))
        .find(|l| l.starts_with("REQUEST-STATUS:"))
        .unwrap_or_else(|| panic!("{uid} has a REQUEST-STATUS: {text}"))
        .to_owned()
}

/// The calendar-level REQUEST-STATUS of a one-TARGET SENDDATA reply (before any component).
pub fn target_status(reply: &[String]) -> Option<String> {
    let text = super::unfolded(reply);
    text.lines()
        .take_while(|l| !l.starts_with("BEGIN:V") || l.starts_with("BEGIN:VCAP"))
        .find(|l| l.starts_with("REQUEST-STATUS:"))
        .map(str::to_owned)
}
