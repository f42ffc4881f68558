//! The legacy clients the tool plays: a line connection and the CAP and CIP logins, shared by
//! `load` and `idle`.

use crate::gateway::BoxError;
use base64::Engine as _;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// A line-oriented client connection.
#[derive(Debug)]
pub struct Line {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    buf: String,
}

impl Line {
    /// Connects to `addr`, from `source` when given (many connections need several source
    /// addresses: about 28,000 ephemeral ports each).
    pub async fn connect(addr: SocketAddr, source: Option<Ipv4Addr>) -> Result<Line, BoxError> {
        let s = match source {
            None => TcpStream::connect(addr).await?,
            Some(source) => {
                let socket = TcpSocket::new_v4()?;
                socket
                    .bind(SocketAddr::new(source.into(), 0))
                    .map_err(|e| format!("bind {source}: {e}"))?;
                socket.connect(addr).await?
            }
        };
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Line {
            r: BufReader::new(r),
            w,
            buf: String::new(),
        })
    }

    /// The socket again, for holding it idle; an error if the gateway sent more than was read.
    pub fn into_stream(self) -> Result<TcpStream, BoxError> {
        if !self.r.buffer().is_empty() {
            return Err(format!(
                "unexpected bytes after the reply: {:?}",
                String::from_utf8_lossy(self.r.buffer())
            )
            .into());
        }
        Ok(self.r.into_inner().reunite(self.w)?)
    }

    pub async fn line(&mut self) -> Result<String, BoxError> {
        self.buf.clear();
        if self.r.read_line(&mut self.buf).await? == 0 {
            return Err("the gateway closed the connection".into());
        }
        Ok(self.buf.trim_end_matches(['\r', '\n']).to_owned())
    }

    pub async fn send(&mut self, text: &str) -> Result<(), BoxError> {
        self.w.write_all(text.as_bytes()).await?;
        Ok(())
    }

    /// A CAP reply: status line, then `.`, data lines, `.` (two-dot framing).
    pub async fn cap_reply(&mut self) -> Result<(String, Vec<String>), BoxError> {
        let status = self.line().await?;
        let dot = self.line().await?;
        if dot != "." {
            return Err(format!("CAP reply {status:?} not followed by '.': {dot:?}").into());
        }
        let mut data = Vec::new();
        loop {
            let l = self.line().await?;
            if l == "." {
                return Ok((status, data));
            }
            data.push(l);
        }
    }

    /// A CIP reply: `*` lines, a `+` data block up to `.`, and the `OK`/`NO` completion.
    pub async fn cip_reply(&mut self) -> Result<(String, Vec<String>), BoxError> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await?;
            if l == "+" {
                loop {
                    let d = self.line().await?;
                    if d == "." {
                        break;
                    }
                    lines.push(d);
                }
            } else if l.starts_with("OK ") || l.starts_with("NO ") {
                return Ok((l, lines));
            } else {
                lines.push(l);
            }
        }
    }
}

/// Logs in on a fresh CIP connection: the greeting, `AUTHENTICATE LOGIN`, `OK 000`.
pub async fn cip_login(mut c: Line, user: &str, password: &str) -> Result<Line, BoxError> {
    let greeting = c.line().await?;
    if !greeting.starts_with("OK CIP 1.0") {
        return Err(format!("CIP greeting: {greeting:?}").into());
    }
    c.send(&format!("AUTHENTICATE LOGIN {user} {password}\r\n"))
        .await?;
    let (done, _) = c.cip_reply().await?;
    if !done.starts_with("OK 000") {
        return Err(format!("CIP login: {done:?}").into());
    }
    Ok(c)
}

/// Logs in on a fresh CAP connection: the greeting, `AUTHENTICATE PLAIN` with an initial
/// response, `2.0` with an `IDENTITY=` line.
pub async fn cap_login(mut c: Line, user: &str, password: &str) -> Result<Line, BoxError> {
    let (greeting, _) = c.cap_reply().await?;
    if greeting != "2.0" {
        return Err(format!("CAP greeting: {greeting:?}").into());
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    c.send(&format!("AUTHENTICATE PLAIN {token}\r\n")).await?;
    let (status, data) = c.cap_reply().await?;
    if status != "2.0" || !data.iter().any(|l| l.starts_with("IDENTITY=")) {
        return Err(format!("CAP login: {status:?} {}", data.join(" | ")).into());
    }
    Ok(c)
}
