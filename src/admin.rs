//! The admin listener: a small HTTP/1.1 server for orchestrators and Prometheus, meant to be
//! bound to loopback (or a private management network), never to clients.
//!
//! # Endpoints
//!
//! | request | answer | meaning for an operator |
//! |---|---|---|
//! | `GET /healthz` | `200 ok` | The process is alive and its runtime is scheduling tasks. Use it as a liveness probe: if it fails, restart the process. It does not look at the upstream. |
//! | `GET /readyz` | `200 ready` or `503 not ready: <reason>` | The gateway can do useful work: the integrator's readiness check (typically "the CalDAV upstream answers") passed. Use it as a readiness probe: while it fails, route no clients here, but do not restart. During shutdown it answers `503 not ready: shutting down`. |
//! | `GET /metrics` | `200` with the Prometheus text format 0.0.4 | Scrape target; see [`crate::metrics`] for the families. |
//!
//! `HEAD` works on each path and answers the same status and headers without the body. Another
//! method on one of these paths gets `405 Method Not Allowed` with `Allow: GET, HEAD`; any other
//! path gets `404 Not Found`. A query string is ignored.
//!
//! The readiness check runs at most once per [`AdminLimits::readiness_cache`] (2 s by default),
//! however often `/readyz` is asked, so a tight probe loop does not load the upstream; requests
//! arriving while a check runs wait for its result. A check that takes longer than
//! [`AdminLimits::readiness_timeout`] (5 s) counts as `503 not ready: readiness check timed out`.
//!
//! # HTTP/1.1 as implemented (RFC 9112)
//!
//! One request per connection: every response carries `Connection: close` and the server closes
//! after it (§9.6), first shutting down its sending side and briefly draining what the client
//! still sends so the response is not lost to a TCP reset (§9.6, "lingering close").
//!
//! - Message parsing (§2.2): the head ends at the first empty line; lines end in CRLF or a bare
//!   LF; empty lines before the request-line are ignored; a bare CR anywhere is rejected.
//! - Request-line (§3): `method SP request-target SP HTTP-version` with exactly single spaces.
//!   The method is a token and case-sensitive. The target may be in origin-form (`/metrics`),
//!   absolute-form (`http://host/metrics`, §3.2.2) or asterisk-form (`*`, which matches no path).
//!   `HTTP/1.0` and `HTTP/1.1` are served; another major version gets 505 (§2.3).
//! - Host (§3.2): an HTTP/1.1 request without exactly one `Host` field, or with an invalid one,
//!   gets 400.
//! - Field lines (§5): a field name is a token with no whitespace before the colon (§5.1);
//!   obsolete line folding is rejected with 400 (§5.2); values with control characters are
//!   rejected.
//! - Bodies (§6): none are accepted. `Transfer-Encoding`, or a `Content-Length` other than 0,
//!   gets 400; an invalid or conflicting `Content-Length` gets 400 (§6.3).
//! - Every response carries `Content-Length` (§6.2, also for HEAD, RFC 9110 §9.3.2), a
//!   `Date` (RFC 9110 §6.6.1) and `Cache-Control: no-store`.
//!
//! # Limits ([`AdminLimits`])
//!
//! - The request head is at most 8 KiB; beyond that, 431 (RFC 6585 §5), or 414 when the
//!   request-line alone is that long (RFC 9112 §3).
//! - The whole head must arrive within 10 s of the connection (slow-loris protection); a client
//!   that sent part of a request hears 408, a silent one is just closed.
//! - At most 64 connections are served at once; one over that hears 503 and is closed.
//! - When the shutdown token is cancelled the listener closes at once; requests being answered
//!   finish, connections still waiting for a request head are closed.

use crate::metrics::Metrics;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

/// What a readiness check returns: `Ok` when ready, else the reason it is not.
pub type ReadinessFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The check behind `/readyz`, supplied by the integrator (e.g. "the upstream answers OPTIONS").
///
/// It is called at most once per [`AdminLimits::readiness_cache`], runs in its own task, and is
/// abandoned after [`AdminLimits::readiness_timeout`]. The `Err` text is shown to the prober
/// after `not ready: ` (control characters replaced by spaces, cut at 500 characters), so it
/// must hold no secrets.
#[derive(Clone)]
pub struct Readiness(Arc<dyn Fn() -> ReadinessFuture + Send + Sync>);

impl Readiness {
    /// A readiness check from a closure returning a future, e.g.
    /// `Readiness::new(move || { let g = gateway.clone(); async move { g.ping().await } })`.
    pub fn new<F, Fut>(check: F) -> Readiness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Readiness(Arc::new(move || Box::pin(check())))
    }

    /// A check that always passes.
    pub fn always_ready() -> Readiness {
        Readiness::new(|| async { Ok(()) })
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readiness(..)")
    }
}

/// The admin listener's limits; [`Default`] gives the documented values.
#[derive(Debug, Clone)]
pub struct AdminLimits {
    /// The largest request head (request-line, fields and the empty line), in bytes. 8 KiB.
    pub max_head_bytes: usize,
    /// How long a client has to send its whole request head, from the connection. 10 s.
    pub read_timeout: Duration,
    /// How long writing the response may take. 10 s.
    pub write_timeout: Duration,
    /// Connections served at once. 64.
    pub max_connections: usize,
    /// How long the readiness check may run before it counts as failed. 5 s.
    pub readiness_timeout: Duration,
    /// How long a readiness result is reused. 2 s; zero runs the check on every request.
    pub readiness_cache: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_head_bytes: 8 * 1024,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 64,
            readiness_timeout: Duration::from_secs(5),
            readiness_cache: Duration::from_secs(2),
        }
    }
}

/// How long the server keeps draining a client's input after answering (lingering close).
const LINGER: Duration = Duration::from_secs(1);
/// How much client input the lingering close drains at most.
const LINGER_BYTES: usize = 64 * 1024;

/// Serves the admin endpoints on `listener` with [`AdminLimits::default`] until `shutdown` is
/// cancelled; see [`serve_with_limits`].
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: CancellationToken,
) {
    serve_with_limits(listener, metrics, ready, AdminLimits::default(), shutdown).await;
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled. Then the listener is
/// closed, and this returns once the connections in progress have ended (each is bounded by the
/// write timeout, the readiness timeout and a short lingering close).
pub async fn serve_with_limits(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    limits: AdminLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let state = Arc::new(State {
        metrics,
        ready,
        limits,
        shutdown: shutdown.clone(),
        cache: tokio::sync::Mutex::new(None),
    });
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin listener: too many connections");
            // Best effort and without waiting: the fresh socket's send buffer is empty.
            let busy = Response::text(503, "too many admin connections\n");
            let _ = stream.try_write(&busy.to_bytes(false));
            continue;
        };
        let state = state.clone();
        tracker.spawn(async move {
            let _permit = permit;
            connection(stream, &state).await;
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// What every connection shares.
struct State {
    metrics: Arc<Metrics>,
    ready: Readiness,
    limits: AdminLimits,
    shutdown: CancellationToken,
    /// The last readiness result and when it was taken; the lock makes the check single-flight.
    cache: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl State {
    /// The readiness result, from the cache or a fresh, bounded check.
    async fn readiness(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".to_owned());
        }
        let mut cache = self.cache.lock().await;
        if let Some((at, result)) = &*cache
            && at.elapsed() < self.limits.readiness_cache
        {
            return result.clone();
        }
        let check = AbortOnDropHandle::new(tokio::spawn((self.ready.0)()));
        let result = match tokio::time::timeout(self.limits.readiness_timeout, check).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) if e.is_panic() => Err("readiness check panicked".to_owned()),
            Ok(Err(_)) => Err("readiness check was cancelled".to_owned()),
            // Dropping the handle aborted the check.
            Err(_) => Err("readiness check timed out".to_owned()),
        };
        *cache = Some((Instant::now(), result.clone()));
        result
    }
}

/// One connection: read one request head, answer it, close.
async fn connection(mut stream: TcpStream, state: &State) {
    let limits = &state.limits;
    let mut buf = Vec::with_capacity(1024);
    let read = tokio::select! {
        () = state.shutdown.cancelled() => return,
        read = tokio::time::timeout(
            limits.read_timeout,
            read_head(&mut stream, &mut buf, limits.max_head_bytes),
        ) => read,
    };
    let (response, head_only) = match read {
        Err(_elapsed) if buf.iter().all(|b| matches!(b, b'\r' | b'\n')) => return,
        Err(_elapsed) => (
            Response::text(408, "request head not received in time\n"),
            false,
        ),
        Ok(Err(_io)) => return,
        Ok(Ok(HeadRead::Closed)) if buf.iter().all(|b| matches!(b, b'\r' | b'\n')) => return,
        Ok(Ok(HeadRead::Closed)) => (Response::text(400, "incomplete request head\n"), false),
        Ok(Ok(HeadRead::TooLarge)) => {
            let start = skip_empty_lines(&buf);
            if buf[start..].contains(&b'\n') {
                (Response::text(431, "request head too large\n"), false)
            } else {
                (Response::text(414, "request-line too long\n"), false)
            }
        }
        Ok(Ok(HeadRead::Complete(end))) => match parse_request(&buf[..end]) {
            Ok(request) => {
                let head_only = request.method == "HEAD";
                (route(&request, state).await, head_only)
            }
            Err(rejection) => (Response::text(rejection.status, rejection.message), false),
        },
    };
    tracing::debug!(status = response.status, "admin request answered");
    let write = async {
        stream.write_all(&response.to_bytes(head_only)).await?;
        stream.shutdown().await
    };
    if !matches!(
        tokio::time::timeout(limits.write_timeout, write).await,
        Ok(Ok(()))
    ) {
        return;
    }
    // Lingering close (RFC 9112 §9.6): drain what the client still sends, so that closing with
    // unread input does not reset the connection before the client has read the response.
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    tokio::select! {
        () = state.shutdown.cancelled() => {}
        _ = tokio::time::timeout(LINGER, drain) => {}
    }
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
enum HeadRead {
    /// The head is `buf[..end]`, including its empty line.
    Complete(usize),
    /// The client closed its side before the head was complete.
    Closed,
    /// More than the limit arrived without the head ending.
    TooLarge,
}

/// Reads into `buf` until it holds a complete head, the client closes, or `max` is passed.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<HeadRead> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(buf) {
            return Ok(if end <= max {
                HeadRead::Complete(end)
            } else {
                HeadRead::TooLarge
            });
        }
        if buf.len() > max {
            return Ok(HeadRead::TooLarge);
        }
        // Never hold more than max + 1 bytes: enough to tell "too large".
        let room = (max + 1 - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Ok(HeadRead::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The index of the first byte that is not part of an empty line before the request-line
/// (RFC 9112 §2.2).
fn skip_empty_lines(buf: &[u8]) -> usize {
    buf.iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(buf.len())
}

/// Where the head in `buf` ends (just past its empty line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let start = skip_empty_lines(buf);
    let rest = &buf[start..];
    rest.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match rest.get(i + 1..) {
            Some([b'\n', ..]) => Some(start + i + 2),
            Some([b'\r', b'\n', ..]) => Some(start + i + 3),
            _ => None,
        }
    })
}

/// A request the server can route.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    /// The method, case-sensitive.
    method: String,
    /// The path of the target, without query.
    path: String,
}

/// Why a request head was rejected: the status and a one-line body.
#[derive(Debug, PartialEq, Eq)]
struct Rejection {
    status: u16,
    message: &'static str,
}

fn bad(message: &'static str) -> Rejection {
    Rejection {
        status: 400,
        message,
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().copied().all(is_tchar)
}

/// Parses a complete request head (RFC 9112 §2–§6; see the module docs).
fn parse_request(head: &[u8]) -> Result<Request, Rejection> {
    let head = &head[skip_empty_lines(head)..];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    if lines.clone().any(|line| line.contains(&b'\r')) {
        return Err(bad("bare CR in request head\n"));
    }

    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&[u8]> = request_line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(bad("malformed request-line\n"));
    };
    if !is_token(method) {
        return Err(bad("malformed method\n"));
    }
    let minor = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err(Rejection {
                    status: 505,
                    message: "only HTTP/1.x is supported\n",
                });
            }
            *minor
        }
        _ => return Err(bad("malformed HTTP version\n")),
    };
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad("malformed request-target\n"));
    }
    let target = std::str::from_utf8(target).map_err(|_| bad("malformed request-target\n"))?;
    let path = target_path(target).ok_or_else(|| bad("malformed request-target\n"))?;

    let mut hosts = 0;
    let mut content_length: Option<&[u8]> = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            return Err(bad("obsolete line folding is not accepted\n"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(bad("malformed field line\n"));
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if !is_token(name) {
            return Err(bad("malformed field name\n"));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad("control character in field value\n"));
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if !value.iter().all(|&b| is_host_byte(b)) {
                return Err(bad("invalid Host\n"));
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(bad("invalid Content-Length\n"));
            }
            let value = trim_leading_zeros(value);
            if content_length.is_some_and(|previous| previous != value) {
                return Err(bad("conflicting Content-Length\n"));
            }
            content_length = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(bad("request bodies are not accepted\n"));
        }
    }
    if hosts > 1 || (hosts == 0 && minor != b'0') {
        return Err(bad("a request needs exactly one Host\n"));
    }
    if content_length.is_some_and(|v| !v.is_empty()) {
        return Err(bad("request bodies are not accepted\n"));
    }
    Ok(Request {
        method: String::from_utf8_lossy(method).into_owned(),
        path: path.to_owned(),
    })
}

/// Optional whitespace trimmed from both ends of a field value (RFC 9112 §5.1).
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// `digits` without leading zeros (`0` becomes empty).
fn trim_leading_zeros(digits: &[u8]) -> &[u8] {
    let first = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    &digits[first..]
}

/// A byte of `uri-host [ ":" port ]` (RFC 3986: reg-name, IP literal, IPv4, port).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

/// The path of a request-target without its query: origin-form as is, absolute-form without
/// scheme and authority, asterisk-form as `*`. `None` for anything else.
fn target_path(target: &str) -> Option<&str> {
    fn without_query(target: &str) -> &str {
        target.split_once('?').map_or(target, |(path, _)| path)
    }
    if target.starts_with('/') {
        return Some(without_query(target));
    }
    if target == "*" {
        return Some("*");
    }
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let rest = without_query(rest);
    Some(rest.find('/').map_or("/", |slash| &rest[slash..]))
}

/// The answer to a well-formed request.
async fn route(request: &Request, state: &State) -> Response {
    let path = request.path.as_str();
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return Response::text(404, "not found\n");
    }
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        let mut response = Response::text(405, "method not allowed\n");
        response.headers.push(("Allow", "GET, HEAD".to_owned()));
        return response;
    }
    match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => match state.readiness().await {
            Ok(()) => Response::text(200, "ready\n"),
            Err(reason) => Response::text(503, format!("not ready: {}\n", one_line(&reason))),
        },
        _ => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: state.metrics.render().into_bytes(),
        },
    }
}

/// `text` on one line, control characters replaced by spaces, at most 500 characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

/// A response, always with `Connection: close`.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    /// The response on the wire; without the body for HEAD (the Content-Length stays the one
    /// GET would have, RFC 9110 §9.3.2).
    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status),
            http_date(SystemTime::now()),
            self.content_type,
            self.body.len(),
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `time` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`), days ≥ 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[((days + 4) % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Request, Rejection> {
        parse_request(head.as_bytes())
    }

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }

    fn status(head: &str) -> u16 {
        parse(head).map_or_else(|r| r.status, |_| 200)
    }

    #[test]
    fn parses_origin_and_absolute_forms() {
        assert_eq!(
            parse("GET /metrics HTTP/1.1\r\nHost: localhost:9090\r\n\r\n"),
            Ok(req("GET", "/metrics"))
        );
        assert_eq!(
            parse("HEAD /readyz?verbose=1 HTTP/1.1\r\nHost: [::1]:9\r\nAccept: */*\r\n\r\n"),
            Ok(req("HEAD", "/readyz"))
        );
        assert_eq!(
            parse("GET http://127.0.0.1:9/healthz HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"),
            Ok(req("GET", "/healthz"))
        );
        assert_eq!(
            parse("GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n"),
            Ok(req("GET", "/"))
        );
        assert_eq!(
            parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
            Ok(req("OPTIONS", "*"))
        );
    }

    #[test]
    fn accepts_lf_only_leading_empty_lines_http10_and_zero_length() {
        assert_eq!(
            parse("\r\n\nGET /healthz HTTP/1.1\nHost: h\n\n"),
            Ok(req("GET", "/healthz"))
        );
        assert_eq!(
            parse("GET /healthz HTTP/1.0\r\n\r\n"),
            Ok(req("GET", "/healthz"))
        );
        assert_eq!(
            parse(
                "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\ncontent-length: 00\r\n\r\n"
            ),
            Ok(req("GET", "/healthz"))
        );
        assert_eq!(
            parse(
                "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\ncontent-length: 1\r\n\r\n"
            ),
            Err(bad("conflicting Content-Length\n"))
        );
        assert_eq!(
            parse("GET /healthz HTTP/1.1\r\nhost:h\r\nContent-Length:  0 \r\n\r\n"),
            Ok(req("GET", "/healthz"))
        );
        assert_eq!(
            parse("GET /healthz HTTP/1.1\r\nHost:\r\nX-Empty:\r\n\r\n"),
            Ok(req("GET", "/healthz"))
        );
    }

    #[test]
    fn rejects_malformed_heads() {
        for head in [
            "GET /healthz\r\n\r\n",
            "GET  /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /healthz HTTP/1.1 \r\nHost: h\r\n\r\n",
            "G(T /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /healthz http/1.1\r\nHost: h\r\n\r\n",
            "GET /healthz HTTP/1.10\r\nHost: h\r\n\r\n",
            "GET healthz HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET ftp://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /health\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /healthz HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost : h\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            "\u{1}\u{2}\u{3}\r\n\r\n",
        ] {
            assert_eq!(status(head), 400, "{head:?}");
        }
        assert_eq!(status("GET /healthz HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status("PRI * HTTP/2.0\r\n\r\n"), 505);
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nextra"),
            Some(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: h\n\n"), Some(24));
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(22));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn responses_have_length_date_and_close() {
        let r = Response::text(503, "not ready: x\n");
        let text = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\nDate: "));
        assert!(text.contains("\r\nContent-Length: 13\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nnot ready: x\n"));
        let head_only = String::from_utf8(r.to_bytes(true)).unwrap();
        assert!(head_only.contains("\r\nContent-Length: 13\r\n"));
        assert!(head_only.ends_with("\r\n\r\n"));
    }

    #[test]
    fn formats_http_dates() {
        let at = |secs| http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
        assert_eq!(one_line(&"x".repeat(600)).len(), 500);
    }
}
