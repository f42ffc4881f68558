//! Golden transcript replay against the live gateway.
//!
//! Format (one file per behaviour under `protocols/<proto>/transcripts/`):
//!
//! ```text
//! # title: what the transcript shows        (lines starting with # are comments)
//! S: OK CIP 1.0 example.com                  a line the server must send, exactly
//! S: OK 000 *                                a trailing * matches the rest of the line
//! C: SENDEVENT +                             a line the client sends
//! C: UID:${UID}                              ${NAME} is replaced by a per-replay value
//! C: <raw>ATTENDEE:bob@example.com\n         <raw> sends the text as is (\n, \r, \t escapes;
//!                                            no CRLF is added)
//! S: <closed>                                the server closes the connection here
//! S: <...>                                   skip server lines up to one matching the next S:
//! S[davical]: * PERMDENIED zed@example.com     a line for one upstream only (cyrus, davical):
//!                                            where the servers differ in what they can know
//! ```
//!
//! Consecutive `C:` lines are written at once (CRLF added to each, unless `<raw>`); each `S:`
//! line then reads one line from the server. `${UID}`, `${UID2}` … are unique per replay, so
//! replays never collide with each other or with earlier runs.

use super::LineClient;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One step of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes the client sends.
    Send(Vec<u8>),
    /// A line the server must send (`*` at the end: prefix match).
    Expect(String),
    /// The server closes the connection.
    Closed,
    /// Skip lines until one matches the next expectation (which it then satisfies).
    Skip,
}

/// A parsed transcript.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub path: PathBuf,
    pub steps: Vec<Step>,
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('r') => out.push(b'\r'),
                Some('t') => out.push(b'\t'),
                Some('\\') => out.push(b'\\'),
                Some(other) => {
                    out.push(b'\\');
                    out.extend(other.to_string().bytes());
                }
                None => out.push(b'\\'),
            }
        } else {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
    }
    out
}

/// Loads a transcript, substituting `vars`.
pub fn load(path: &Path, vars: &HashMap<String, String>) -> Transcript {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut steps: Vec<Step> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let mut line = raw.to_owned();
        for (k, v) in vars {
            line = line.replace(&format!("${{{k}}}"), v);
        }
        assert!(
            !line.contains("${"),
            "{}:{}: unknown variable in {line:?}",
            path.display(),
            n + 1
        );
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        // `X[server]: …` lines apply to one upstream only.
        if let Some(rest) = line.strip_prefix("S[").or_else(|| line.strip_prefix("C[")) {
            let Some((server, tail)) = rest.split_once("]:") else {
                panic!("{}:{}: bad server tag in {line:?}", path.display(), n + 1);
            };
            let this = match super::server() {
                super::Server::Cyrus => "cyrus",
                super::Server::Davical => "davical",
            };
            if server != this {
                continue;
            }
            line = format!("{}:{tail}", &line[..1]);
        }
        if let Some(c) = line.strip_prefix("C: ").or_else(|| line.strip_prefix("C:")) {
            let bytes = match c.strip_prefix("<raw>") {
                Some(r) => unescape(r),
                None => {
                    let mut b = c.as_bytes().to_vec();
                    b.extend_from_slice(b"\r\n");
                    b
                }
            };
            match steps.last_mut() {
                Some(Step::Send(prev)) => prev.extend_from_slice(&bytes),
                _ => steps.push(Step::Send(bytes)),
            }
        } else if let Some(s) = line.strip_prefix("S: ").or_else(|| line.strip_prefix("S:")) {
            if s == "<closed>" {
                steps.push(Step::Closed);
            } else if s == "<...>" {
                steps.push(Step::Skip);
            } else {
                steps.push(Step::Expect(s.to_owned()));
            }
        } else {
            panic!("{}:{}: not a C:/S: line: {line:?}", path.display(), n + 1);
        }
    }
    Transcript {
        path: path.to_owned(),
        steps,
    }
}

fn matches(pattern: &str, got: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => got.starts_with(prefix),
        None => pattern == got,
    }
}

/// Replays a transcript over a fresh connection; panics with the position and both lines on
/// the first difference. Returns every server line read.
pub async fn replay(t: &Transcript, addr: std::net::SocketAddr) -> Vec<String> {
    let mut client = LineClient::connect(addr).await;
    let mut seen = Vec::new();
    let mut skipping = false;
    for (i, step) in t.steps.iter().enumerate() {
        match step {
            Step::Send(bytes) => client.send_raw(bytes).await,
            Step::Skip => skipping = true,
            Step::Expect(want) if skipping => {
                skipping = false;
                loop {
                    let got = client.line().await.unwrap_or_else(|| {
                        panic!(
                            "{} step {i}: skipped to {want:?} but the connection closed\nseen so far:\n{}",
                            t.path.display(),
                            seen.join("\n")
                        )
                    });
                    let hit = matches(want, &got);
                    seen.push(got);
                    if hit {
                        break;
                    }
                }
            }
            Step::Expect(want) => {
                let got = client.line().await.unwrap_or_else(|| {
                    panic!(
                        "{} step {i}: expected {want:?}, connection closed\nseen so far:\n{}",
                        t.path.display(),
                        seen.join("\n")
                    )
                });
                assert!(
                    matches(want, &got),
                    "{} step {i}: expected {want:?}\n got {got:?}\nseen so far:\n{}",
                    t.path.display(),
                    seen.join("\n")
                );
                seen.push(got);
            }
            Step::Closed => {
                let got = client.line().await;
                assert!(
                    got.is_none(),
                    "{} step {i}: expected the server to close, got {got:?}",
                    t.path.display()
                );
            }
        }
    }
    seen
}

/// Fresh unique values for `${UID}`, `${UID2}`, `${UID3}`.
pub fn vars(tag: &str) -> HashMap<String, String> {
    let mut v = HashMap::new();
    v.insert("UID".to_owned(), super::unique_uid(tag));
    v.insert("UID2".to_owned(), super::unique_uid(&format!("{tag}-2")));
    v.insert("UID3".to_owned(), super::unique_uid(&format!("{tag}-3")));
    v
}

/// The transcript directory of a protocol.
pub fn dir(protocol: &str) -> PathBuf {
    super::repo()
        .join("protocols")
        .join(protocol)
        .join("transcripts")
}

/// Loads `name` from the transcript directory of `protocol`, substituting `vars`.
pub fn load_in(protocol: &str, name: &str, vars: &HashMap<String, String>) -> Transcript {
    load(&dir(protocol).join(name), vars)
}

/// The transcript files of `protocol` whose names do not appear quoted (`"name.txt"`) in
/// `test_source`, sorted.
pub fn unreplayed(protocol: &str, test_source: &str) -> Vec<String> {
    let dir = dir(protocol);
    let mut missing: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !test_source.contains(&format!("\"{name}\"")))
        .collect();
    missing.sort();
    missing
}

/// Panics naming every transcript file of `protocol` whose name does not appear quoted
/// (`"name.txt"`) in `test_source`, the text of the test file that replays them (pass
/// `include_str!("<this file>.rs")`): every transcript must be replayed by a test.
pub fn assert_all_replayed(protocol: &str, test_source: &str) {
    let missing = unreplayed(protocol, test_source);
    assert!(
        missing.is_empty(),
        "transcripts under {} that no test replays: {}",
        dir(protocol).display(),
        missing.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("OK 000 *", "OK 000 Logged in"));
        assert!(!matches("OK 000 *", "NO 000 x"));
        assert!(matches("OK 000", "OK 000"));
        assert!(!matches("OK 000", "OK 000 x"));
        assert_eq!(unescape("a\\nb\\r\\\\"), b"a\nb\r\\");
    }

    #[test]
    fn every_transcript_needs_a_quoted_name() {
        let mut names: Vec<String> = std::fs::read_dir(dir("cip"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let all: String = names.iter().map(|n| format!("\"{n}\"\n")).collect();
        assert!(unreplayed("cip", &all).is_empty());
        assert_all_replayed("cip", &all);
        // Unquoted, or missing: reported by name.
        let bare = all.replacen(&format!("\"{}\"", names[0]), &names[0], 1);
        assert_eq!(unreplayed("cip", &bare), vec![names[0].clone()]);
        assert_eq!(unreplayed("cip", ""), names);
    }
}
