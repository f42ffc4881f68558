//! One IMAP command against Cyrus's IMAP side, which changes what its DAV side cannot: ACLs
//! (SETACL, DELETEACL) and quotas (SETQUOTA, by the admin of `scripts/upstream`).

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Who runs an IMAP command.
#[derive(Debug, Clone, Copy)]
pub struct ImapUser {
    pub user: &'static str,
    pub password: &'static str,
}

/// The Cyrus admin of `scripts/upstream` (imapd.conf `admins:`).
pub const ADMIN: ImapUser = ImapUser {
    user: "calgate-admin",
    password: "calgate-adminpw",
};

/// A test user (password `<user>pw`).
pub fn user(name: &'static str) -> ImapUser {
    let password = match name {
        "alice" => "alicepw",
        "bob" => "bobpw",
        "carol" => "carolpw",
        other => panic!("no IMAP password known for {other}"),
    };
    ImapUser {
        user: name,
        password,
    }
}

/// Logs in as `who` on the IMAP port `port` of 127.0.0.1, runs `cmd`, logs out; returns the
/// untagged lines, or the server's refusal (of the login or the command) as the error.
pub async fn run(port: u16, who: ImapUser, cmd: &str) -> Result<Vec<String>, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("IMAP connect: {e}"))?;
    let mut s = BufReader::new(stream);
    let mut untagged = Vec::new();
    let mut line = String::new();
    s.read_line(&mut line).await.map_err(|e| e.to_string())?;
    for (tag, text) in [
        ("l", format!("LOGIN {} {}", who.user, who.password)),
        ("c", cmd.to_owned()),
        ("q", "LOGOUT".to_owned()),
    ] {
        s.get_mut()
            .write_all(format!("{tag} {text}\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            line.clear();
            let n = tokio::time::timeout(Duration::from_secs(20), s.read_line(&mut line))
                .await
                .map_err(|_| "IMAP: no answer".to_owned())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("IMAP closed during {text}"));
            }
            let l = line.trim_end().to_owned();
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                if !rest.starts_with("OK") {
                    return Err(format!(
                        "IMAP {tag} {}: {rest}",
                        text.split(' ').next().unwrap_or("")
                    ));
                }
                break;
            }
            untagged.push(l);
        }
    }
    Ok(untagged)
}
