//! Shared test setup: the real upstream CalDAV server, started (or reused) through
//! `scripts/upstream`, and helpers to build a gateway configuration for it.
//!
//! `CALGATE_UPSTREAM=davical` runs the suite against DAViCal instead of Cyrus.
#![allow(dead_code)]

use calgate::caldav::{CaldavClient, Credentials, Discovery};
use calgate::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which upstream server the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Cyrus,
    Davical,
}

pub fn server() -> Server {
    match std::env::var("CALGATE_UPSTREAM").as_deref() {
        Ok("davical") => Server::Davical,
        _ => Server::Cyrus,
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the upstream once per test binary (idempotent: a running server is only re-checked).
/// `CALGATE_UPSTREAM_URL` (with `CALGATE_PRINCIPAL_TEMPLATE`) points the suite at a server that
/// is already running instead; it must have the same users.
pub fn upstream() -> &'static UpstreamInfo {
    static INFO: OnceLock<UpstreamInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        if let Ok(url) = std::env::var("CALGATE_UPSTREAM_URL") {
            return UpstreamInfo {
                url,
                principal_template: std::env::var("CALGATE_PRINCIPAL_TEMPLATE")
                    .unwrap_or_else(|_| "/dav/principals/user/{user}/".into()),
            };
        }
        let name = match server() {
            Server::Cyrus => "cyrus",
            Server::Davical => "davical",
        };
        let out = Command::new(repo().join("scripts/upstream"))
            .args(["--server", name, "start"])
            .output()
            .expect("run scripts/upstream");
        assert!(
            out.status.success(),
            "scripts/upstream start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match server() {
            Server::Cyrus => UpstreamInfo {
                url: "http://127.0.0.1:8008/".into(),
                principal_template: "/dav/principals/user/{user}/".into(),
            },
            Server::Davical => UpstreamInfo {
                url: "http://127.0.0.1:8082/caldav.php/".into(),
                principal_template: "/caldav.php/{user}/".into(),
            },
        }
    })
}

#[derive(Debug)]
pub struct UpstreamInfo {
    pub url: String,
    pub principal_template: String,
}

/// A gateway configuration for the test upstream (listeners on ephemeral ports).
pub fn config() -> Config {
    config_with("")
}

/// Like [`config`], with extra TOML appended inside the file (later tables may override).
pub fn config_with(extra: &str) -> Config {
    let up = upstream();
    config_at(&up.url, &up.principal_template, extra)
}

/// The test configuration for an upstream of the suite's kind at `url` that the suite does not
/// start itself (a private Cyrus, say), with `extra` TOML appended as in [`config_with`].
pub fn config_at(url: &str, principal_template: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[gateway]
server_id = "example.com"
[cap]
listen = "127.0.0.1:0"
[cip]
listen = "127.0.0.1:0"
[upstream]
url = "{url}"
domain = "example.com"
principal_template = "{principal_template}"
{}
request_timeout_secs = 20
[upstream.service_account]
user = "calgate"
password = "calgatepw"
{extra}
"#,
        match server() {
            Server::Cyrus => "calendar_template = \"/dav/calendars/user/{user}/Default/\"",
            Server::Davical => "calendar_template = \"/caldav.php/{user}/calendar/\"",
        }
    );
    Config::from_toml(&text, Path::new("test-config.toml")).expect("test config is valid")
}

pub fn creds(user: &str) -> Credentials {
    Credentials::new(user, format!("{user}pw"))
}

pub fn client() -> CaldavClient {
    CaldavClient::from_config(&config()).expect("client")
}

pub fn discovery() -> Discovery {
    let c = config();
    Discovery::new(CaldavClient::from_config(&c).expect("client"), &c)
}

/// A UID no other test or earlier run uses.
pub fn unique_uid(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "calgate-test-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Asserts that a finished process exited 0 (showing both streams if not) and returns its
/// standard output, which must be UTF-8.
pub fn succeeded(out: &std::process::Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A CIP SENDEVENT block by alice (the organizer) inviting `attendees`, on `day` (YYYYMMDD)
/// from 10:00 to 11:00 UTC, with `SUMMARY:event <uid>`. Lines 2–4 are SEQUENCE, DTSTART and
/// DTEND, the last is the terminating `.`.
pub fn cip_sendevent(uid: &str, seq: u32, day: &str, attendees: &[&str]) -> Vec<String> {
    let mut lines = vec![
        "SENDEVENT +".to_owned(),
        format!("UID:{uid}"),
        format!("SEQUENCE:{seq}"),
        format!("DTSTART:{day}T100000Z"),
        format!("DTEND:{day}T110000Z"),
        format!("SUMMARY:event {uid}"),
        "ATTENDEE;ROLE=OWNER:alice@example.com".to_owned(),
    ];
    lines.extend(attendees.iter().map(|a| format!("ATTENDEE:{a}")));
    lines.push(".".to_owned());
    lines
}

/// Unfolds iCalendar text (for assertions on whole logical lines).
pub fn unfold(text: &str) -> String {
    text.replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
        .replace("\n\t", "")
}

/// Server lines as one unfolded text (a folded REQUEST-STATUS read whole).
pub fn unfolded(lines: &[String]) -> String {
    unfold(&lines.join("\r\n"))
}

/// A VEVENT with the given organizer and attendees (addresses without `mailto:`), one hour long
/// at `start` (UTC `YYYYMMDDTHHMMSSZ`).
pub fn event(
    uid: &str,
    start: &str,
    end: &str,
    organizer: Option<&str>,
    attendees: &[&str],
) -> String {
    let mut ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calgate//tests//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n\
         SUMMARY:calgate test {uid}\r\nSEQUENCE:0\r\n"
    );
    if let Some(o) = organizer {
        ics.push_str(&format!("ORGANIZER:mailto:{o}\r\n"));
        ics.push_str(&format!(
            "ATTENDEE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{o}\r\n"
        ));
    }
    for a in attendees {
        ics.push_str(&format!(
            "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{a}\r\n"
        ));
    }
    ics.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    ics
}

/// How long [`eventually`] polls. Generous on purpose: a cold upstream on a loaded 2-core CI
/// machine once took longer than 5 s to deliver an invitation. Not a timing assertion: the
/// bound only stops a broken test from hanging.
pub const EVENTUALLY: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `f` until it returns `Some` or [`EVENTUALLY`] has passed, with a short pause between
/// tries: implicit scheduling may complete just after the PUT returns.
pub async fn eventually<T, F, Fut>(mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub mod cap_client;
pub mod http;
pub mod imap;
pub mod tls;
pub mod transcript;

/// Starts an in-process gateway for `config` (listeners on ephemeral loopback ports).
pub async fn start_gateway(config: Config) -> calgate::server::Running {
    calgate::server::start(config)
        .await
        .expect("gateway starts")
}

/// Starts a gateway on its own runtime thread, which lives as long as the test binary: a
/// gateway shared by several `#[tokio::test]`s must not die with the first test's runtime.
pub fn spawn_gateway(config: Config) -> calgate::server::Running {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let running = calgate::server::start(config)
                .await
                .expect("gateway starts");
            let _ = tx.send(running);
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("gateway started")
}

/// A line-oriented CIP client, as a legacy client would talk over TCP.
pub struct LineClient {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl LineClient {
    pub async fn connect(addr: std::net::SocketAddr) -> LineClient {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        LineClient {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        }
    }

    /// Connects and reads the CIP greeting.
    pub async fn greeted(addr: std::net::SocketAddr) -> LineClient {
        let mut c = LineClient::connect(addr).await;
        assert_eq!(c.line().await.as_deref(), Some("OK CIP 1.0 example.com"));
        c
    }

    /// Connects, reads the greeting and logs in as `user` (password `<user>pw`).
    pub async fn logged_in(addr: std::net::SocketAddr, user: &str) -> LineClient {
        let mut c = LineClient::greeted(addr).await;
        assert_eq!(
            c.command(&[format!("AUTHENTICATE LOGIN {user} {user}pw")])
                .await,
            [format!("OK 000 Logged in as {user}@example.com")]
        );
        c
    }

    /// A NOOP, answered `OK 000 NOOP`: the session is still usable.
    pub async fn noop(&mut self) {
        assert_eq!(self.command(&["NOOP"]).await, ["OK 000 NOOP"]);
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Sends lines, each with CRLF, in one write.
    pub async fn send<S: AsRef<str>>(&mut self, lines: &[S]) {
        let mut buf = String::new();
        for l in lines {
            buf.push_str(l.as_ref());
            buf.push_str("\r\n");
        }
        self.send_raw(buf.as_bytes()).await;
    }

    /// Reads one line (without CRLF); `None` at EOF. Fails the test after 60 s of silence.
    pub async fn line(&mut self) -> Option<String> {
        use tokio::io::AsyncBufReadExt;
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            self.reader.read_until(b'\n', &mut buf),
        )
        .await
        .expect("the gateway answered within 60 s")
        .expect("read");
        if n == 0 {
            return None;
        }
        assert!(buf.ends_with(b"\r\n"), "every line ends in CRLF: {buf:?}");
        buf.truncate(buf.len() - 2);
        Some(buf.iter().map(|b| char::from(*b)).collect())
    }

    /// Reads lines up to and including a CIP completion (`OK nnn` / `NO nnn`).
    pub async fn until_completion(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await.expect("completion before EOF");
            let done = l.starts_with("OK ") || l.starts_with("NO ");
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    /// Sends lines and returns the reply up to the completion.
    pub async fn command<S: AsRef<str>>(&mut self, lines: &[S]) -> Vec<String> {
        self.send(lines).await;
        self.until_completion().await
    }
}

/// What a [`Proxy`] does with the requests passing through it.
///
/// Method matching: an HTTP/1.1 client (the gateway's reqwest) never pipelines, so a request
/// always begins a fresh read from the connection, and its request line is written in one go.
/// A request "with method `M`" is therefore a read that *begins* with `M ` (method, one space);
/// later reads of the same request (the rest of a body) do not begin with a method and pass
/// as they are. Data that merely contains `PUT ` somewhere (an event body) never matches.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Pass everything (the proxy is cut only by [`Proxy::cut`]).
    Pass,
    /// Cut the proxy when the `n`-th request with the method arrives (counted over all
    /// connections, from 1): that request never reaches the upstream.
    CutAt(&'static str, usize),
    /// Hold every request with the method for the duration before passing it on; a held
    /// request whose client connection closes meanwhile is dropped, never forwarded.
    Hold(&'static str, std::time::Duration),
}

impl Rule {
    /// The method the rule looks for, if any.
    fn method(&self) -> Option<&'static str> {
        match self {
            Rule::Pass => None,
            Rule::CutAt(m, _) | Rule::Hold(m, _) => Some(m),
        }
    }
}

/// True when `chunk` (one read from the client) begins a request with `method`.
pub fn begins_request(chunk: &[u8], method: &str) -> bool {
    chunk.starts_with(method.as_bytes()) && chunk.get(method.len()) == Some(&b' ')
}

/// A TCP proxy in front of the real upstream, applying a [`Rule`] to the requests it carries.
/// Cutting it ([`Proxy::cut`], or [`Rule::CutAt`]) drops every connection and refuses new
/// ones, as when the upstream server stops. [`CuttableProxy`] and [`DelayingProxy`] are the
/// two uses the tests name.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    /// Requests with the rule's method that reached the proxy (held, cut or passed).
    pub arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Held requests that were passed on to the upstream after the hold.
    pub forwarded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Held requests dropped because the gateway closed the connection first.
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Client connections accepted (each gets its own upstream connection).
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    cut: tokio_util::sync::CancellationToken,
}

/// The counters one proxy's connections share.
#[derive(Clone)]
struct ProxyState {
    rule: Rule,
    arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    cut: tokio_util::sync::CancellationToken,
}

impl Proxy {
    /// Starts a proxy to the test upstream on an ephemeral loopback port.
    pub async fn start(rule: Rule) -> Proxy {
        let target = upstream_socket();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ProxyState {
            rule,
            arrived: Default::default(),
            forwarded: Default::default(),
            dropped: Default::default(),
            cut: tokio_util::sync::CancellationToken::new(),
        };
        let proxy = Proxy {
            addr,
            arrived: state.arrived.clone(),
            forwarded: state.forwarded.clone(),
            dropped: state.dropped.clone(),
            connections: Default::default(),
            cut: state.cut.clone(),
        };
        let connections = proxy.connections.clone();
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => break },
                    _ = state.cut.cancelled() => break,
                };
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(Self::carry(inbound, target, state.clone()));
            }
        });
        proxy
    }

    /// One client connection: a fresh upstream connection, the rule applied upward, the
    /// answers copied down as they are.
    async fn carry(
        inbound: tokio::net::TcpStream,
        target: std::net::SocketAddr,
        state: ProxyState,
    ) {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
            return;
        };
        let (mut ci, mut co) = inbound.into_split();
        let (mut ui, mut uo) = outbound.into_split();
        let upward = async {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match ci.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut chunk = buf[..n].to_vec();
                if state
                    .rule
                    .method()
                    .is_some_and(|m| begins_request(&chunk, m))
                {
                    let nth = state.arrived.fetch_add(1, SeqCst) + 1;
                    match state.rule {
                        Rule::CutAt(_, at) if nth >= at => {
                            state.cut.cancel();
                            return;
                        }
                        Rule::Hold(_, delay) => {
                            let sleep = tokio::time::sleep(delay);
                            tokio::pin!(sleep);
                            loop {
                                tokio::select! {
                                    _ = &mut sleep => break,
                                    r = ci.read(&mut buf) => match r {
                                        Ok(0) | Err(_) => {
                                            state.dropped.fetch_add(1, SeqCst);
                                            return;
                                        }
                                        Ok(m) => chunk.extend_from_slice(&buf[..m]),
                                    },
                                }
                            }
                            state.forwarded.fetch_add(1, SeqCst);
                        }
                        _ => {}
                    }
                }
                if uo.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        };
        let downward = tokio::io::copy(&mut ui, &mut co);
        tokio::select! {
            _ = upward => {}
            _ = downward => {}
            _ = state.cut.cancelled() => {}
        }
    }

    /// The upstream URL through the proxy (same path as the real one).
    pub fn url(&self) -> String {
        url_via(self.addr)
    }

    /// Drops every connection and stops accepting: the upstream is gone.
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// Whether the proxy has been cut (by [`Proxy::cut`] or by its [`Rule::CutAt`]).
    pub fn is_cut(&self) -> bool {
        self.cut.is_cancelled()
    }
}

/// A [`Proxy`] that a test can cut: existing connections are dropped and new ones refused, as
/// when the upstream server stops.
pub struct CuttableProxy {
    pub addr: std::net::SocketAddr,
    proxy: Proxy,
}

impl CuttableProxy {
    /// Starts a proxy to the test upstream on an ephemeral loopback port.
    pub async fn start() -> CuttableProxy {
        Self::start_cutting_at(None).await
    }

    /// Like [`CuttableProxy::start`], but the proxy cuts itself when the client sends the
    /// `n`-th request with `method` (see [`Rule`] for the matching); that request never
    /// reaches the upstream.
    pub async fn start_cutting_at(rule: Option<(&'static str, usize)>) -> CuttableProxy {
        let proxy = Proxy::start(match rule {
            Some((method, n)) => Rule::CutAt(method, n),
            None => Rule::Pass,
        })
        .await;
        CuttableProxy {
            addr: proxy.addr,
            proxy,
        }
    }

    /// The upstream URL through the proxy (same path as the real one).
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// Drops every connection and stops accepting: the upstream is gone.
    pub fn cut(&self) {
        self.proxy.cut();
    }

    /// Whether the proxy has been cut, by [`CuttableProxy::cut`] or by reaching the request
    /// given to [`CuttableProxy::start_cutting_at`].
    pub fn is_cut(&self) -> bool {
        self.proxy.is_cut()
    }
}

/// A [`Proxy`] that holds every request with `method` for `delay` before passing it on: a
/// slow upstream, for CAP latency, CONTINUE and ABORT and for command timeouts. A held request
/// whose client connection closes meanwhile is never forwarded (the gateway dropped it), and
/// the proxy counts both outcomes.
pub struct DelayingProxy {
    pub addr: std::net::SocketAddr,
    /// Requests with the method that reached the proxy: once this moves, a request is being
    /// held (or has been).
    pub arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Held requests that were passed on to the upstream.
    pub forwarded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Held requests dropped because the gateway closed the connection first.
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    proxy: Proxy,
}

impl DelayingProxy {
    pub async fn start(method: &'static str, delay: std::time::Duration) -> DelayingProxy {
        let proxy = Proxy::start(Rule::Hold(method, delay)).await;
        DelayingProxy {
            addr: proxy.addr,
            arrived: proxy.arrived.clone(),
            forwarded: proxy.forwarded.clone(),
            dropped: proxy.dropped.clone(),
            proxy,
        }
    }

    /// The upstream URL through the proxy (same path as the real one).
    pub fn url(&self) -> String {
        self.proxy.url()
    }
}

/// The test upstream's URL with `proxy`'s port: the same paths, through a proxy on loopback.
pub fn url_via(proxy: std::net::SocketAddr) -> String {
    let mut url = reqwest::Url::parse(&upstream().url).unwrap();
    url.set_port(Some(proxy.port())).unwrap();
    url.to_string()
}

/// The objects with `uid` in `who`'s default calendar, read directly from the upstream.
pub async fn objects_with_uid(who: &str, uid: &str) -> Vec<calgate::caldav::CalendarObject> {
    objects_with_uid_at(&config(), who, uid).await
}

/// Like [`objects_with_uid`], on the upstream `config` names.
pub async fn objects_with_uid_at(
    config: &Config,
    who: &str,
    uid: &str,
) -> Vec<calgate::caldav::CalendarObject> {
    let d = Discovery::new(CaldavClient::from_config(config).expect("client"), config);
    let p = d.principal(&creds(who)).await.expect("principal");
    d.client()
        .calendar_query(
            &p.default_calendar,
            &calgate::caldav::QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: uid.to_owned(),
            },
            &creds(who),
        )
        .await
        .expect("calendar-query")
}

/// The object with `uid` in `who`'s default calendar, if any, read directly from the upstream.
pub async fn find(who: &str, uid: &str) -> Option<calgate::caldav::CalendarObject> {
    objects_with_uid(who, uid).await.into_iter().next()
}

/// How many objects have `uid` in `who`'s default calendar (to prove there are no duplicates,
/// or that nothing was stored).
pub async fn count(who: &str, uid: &str) -> usize {
    objects_with_uid(who, uid).await.len()
}

/// The upstream's socket address.
pub fn upstream_socket() -> std::net::SocketAddr {
    let url = reqwest::Url::parse(&upstream().url).expect("upstream url");
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
    .parse()
    .expect("socket address")
}

/// Everything the peer sends until it closes the connection (a reset after the data counts as
/// a close); fails the test if the connection is still open after 30 s.
pub async fn until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the peer closed the connection within 30 s");
    out
}

/// Asserts that `gateway`'s metrics hold each of `samples` (whole exposition lines, value
/// included).
pub fn assert_metrics(gateway: &calgate::server::Running, samples: &[&str]) {
    let metrics = gateway.metrics.render();
    for sample in samples {
        assert!(
            metrics.lines().any(|l| l == *sample),
            "{sample} in\n{metrics}"
        );
    }
}

/// The sum of `gateway`'s metric samples whose line starts with `prefix` (a metric name and
/// `{` for every label set of it).
pub fn metric_total(gateway: &calgate::server::Running, prefix: &str) -> f64 {
    gateway
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
