//! Upstream resilience of the CalDAV client over real TCP: what is retried when (safe methods
//! on 5xx/429 and transport errors; side-effecting methods only when the server provably did
//! not process the request), `Retry-After`, and the circuit breaker.
//!
//! A real Cyrus cannot be made to answer 429 or 503 with `Retry-After`, so those cases use a
//! small scripted HTTP/1.1 server on loopback that answers the statuses it is given, in order,
//! and records every request it reads. The breaker is also exercised against the real upstream
//! behind a proxy that can be switched off and on again.

mod common;

use calgate::caldav::request::RESOURCETYPE;
use calgate::caldav::{
    CaldavClient, CaldavError, CircuitState, Depth, QueryFilter, Resilience, TransportKind,
    WriteCondition,
};
use common::*;
use reqwest::Url;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Bounds a test that would otherwise hang if a wait were not skipped; not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// What the scripted server does with one request.
#[derive(Debug, Clone)]
enum Act {
    /// Answer with this status, these headers and this body.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Read the request, then close the connection without answering.
    Close,
}

fn status(status: u16) -> Act {
    Act::Answer {
        status,
        headers: Vec::new(),
        body: String::new(),
    }
}

fn retry_after(code: u16, value: &str) -> Act {
    Act::Answer {
        status: code,
        headers: vec![("retry-after", value.to_owned())],
        body: String::new(),
    }
}

fn xml(code: u16, body: &str) -> Act {
    Act::Answer {
        status: code,
        headers: vec![("content-type", "application/xml; charset=utf-8".into())],
        body: body.to_owned(),
    }
}

const PROPFIND_207: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>/cal/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#;

fn report_207(uid: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/cal/{uid}.ics</D:href><D:propstat><D:prop><D:getetag>"e1"</D:getetag><C:calendar-data>BEGIN:VCALENDAR&#13;
VERSION:2.0&#13;
PRODID:-//mock//EN&#13;
BEGIN:VEVENT&#13;
UID:{uid}&#13;
DTSTAMP:20300101T000000Z&#13;
DTSTART:20300101T100000Z&#13;
END:VEVENT&#13;
END:VCALENDAR&#13;
</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#
    )
}

/// One request as the scripted server read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    at: Instant,
}

/// A scripted HTTP/1.1 server on an ephemeral loopback port. Requests are answered with the
/// script's acts in order; once the script is exhausted, with 500.
struct Mock {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
}

impl Mock {
    async fn start(script: Vec<Act>) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (s, a) = (seen.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                a.fetch_add(1, SeqCst);
                tokio::spawn(serve(stream, script.clone(), s.clone()));
            }
        });
        Mock {
            addr,
            seen,
            accepted,
        }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// The client for this server, with `resilience`.
    fn client(&self, resilience: Resilience) -> CaldavClient {
        let mut cfg = config();
        cfg.upstream.url = self.url("/").to_string();
        CaldavClient::from_config(&cfg)
            .unwrap()
            .with_resilience(resilience)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn methods(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.method).collect()
    }
}

/// One connection: requests read in turn (keep-alive), each answered by the next act.
async fn serve(stream: TcpStream, script: Arc<Mutex<VecDeque<Act>>>, seen: Arc<Mutex<Vec<Seen>>>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut request_line = String::new();
        match r.read_line(&mut request_line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        seen.lock().unwrap().push(Seen {
            method: parts.next().unwrap_or_default().to_owned(),
            path: parts.next().unwrap_or_default().to_owned(),
            at: Instant::now(),
        });
        let act = script.lock().unwrap().pop_front().unwrap_or(status(500));
        match act {
            Act::Close => return,
            Act::Answer {
                status,
                headers,
                body,
            } => {
                let mut head = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                head.push_str(&body);
                if w.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Fast retries, no breaker: the retry rules alone.
fn retries_only() -> Resilience {
    Resilience {
        backoff_base: Duration::from_millis(10),
        breaker_failures: 0,
        ..Resilience::default()
    }
}

fn ics(uid: &str) -> String {
    event(uid, "20300101T100000Z", "20300101T110000Z", None, &[])
}

fn assert_status(e: &CaldavError, code: u16) {
    assert_eq!(e.status(), Some(code), "{e}");
}

#[tokio::test]
async fn propfind_is_retried_after_503_with_retry_after() {
    let mock = Mock::start(vec![retry_after(503, "1"), xml(207, PROPFIND_207)]).await;
    let c = mock.client(retries_only());
    let alice = creds("alice");
    let ms = c
        .propfind(&mock.url("/cal/"), Depth::Zero, &[RESOURCETYPE], &alice)
        .await
        .expect("the retry succeeds");
    assert_eq!(ms.responses.len(), 1);
    let seen = mock.seen();
    assert_eq!(mock.methods(), ["PROPFIND", "PROPFIND"]);
    assert!(seen.iter().all(|s| s.path == "/cal/"));
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "the client waited the Retry-After second, not the 10 ms backoff: {gap:?}"
    );
}

#[tokio::test]
async fn put_answered_500_is_not_retried() {
    let mock = Mock::start(vec![status(500), status(201)]).await;
    let c = mock.client(retries_only());
    let e = c
        .put(
            &mock.url("/cal/a.ics"),
            ics("a"),
            WriteCondition::Create,
            &creds("alice"),
        )
        .await
        .expect_err("500 is reported");
    assert_status(&e, 500);
    assert_eq!(mock.methods(), ["PUT"]);
}

#[tokio::test]
async fn put_answered_503_with_retry_after_is_retried() {
    let mock = Mock::start(vec![retry_after(503, "1"), status(201)]).await;
    let c = mock.client(retries_only());
    let outcome = c
        .put(
            &mock.url("/cal/b.ics"),
            ics("b"),
            WriteCondition::Create,
            &creds("alice"),
        )
        .await
        .expect("the server said it did not handle it; the retry is stored");
    assert!(outcome.created);
    assert_eq!(mock.methods(), ["PUT", "PUT"]);
    let seen = mock.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(950));
}

#[tokio::test]
async fn put_answered_503_without_retry_after_is_not_retried() {
    let mock = Mock::start(vec![status(503), status(201)]).await;
    let c = mock.client(retries_only());
    let e = c
        .put(
            &mock.url("/cal/c.ics"),
            ics("c"),
            WriteCondition::Create,
            &creds("alice"),
        )
        .await
        .expect_err("503 without Retry-After is reported");
    assert_status(&e, 503);
    assert!(e.is_unavailable());
    assert_eq!(mock.methods(), ["PUT"]);
}

#[tokio::test]
async fn side_effecting_methods_are_not_retried_on_5xx_without_retry_after() {
    let mock = Mock::start(vec![status(502), status(504), status(503), status(503)]).await;
    let c = mock.client(retries_only());
    let alice = creds("alice");
    let e = c
        .delete(&mock.url("/cal/d.ics"), Some("\"e1\""), &alice)
        .await
        .unwrap_err();
    assert_status(&e, 502);
    let e = c
        .mkcalendar(&mock.url("/cal/new/"), "New", &alice)
        .await
        .unwrap_err();
    assert_status(&e, 504);
    let e = c
        .move_to(
            &mock.url("/cal/d.ics"),
            &mock.url("/cal/e.ics"),
            false,
            &alice,
        )
        .await
        .unwrap_err();
    assert_status(&e, 503);
    let e = c
        .post_schedule(&mock.url("/outbox/"), ics("fb"), &alice)
        .await
        .unwrap_err();
    assert_status(&e, 503);
    assert_eq!(mock.methods(), ["DELETE", "MKCALENDAR", "MOVE", "POST"]);
}

#[tokio::test]
async fn a_long_retry_after_is_not_waited_for() {
    let mock = Mock::start(vec![retry_after(503, "3600"), xml(207, PROPFIND_207)]).await;
    let c = mock.client(retries_only());
    let e = tokio::time::timeout(
        HANG_GUARD,
        c.propfind(
            &mock.url("/cal/"),
            Depth::Zero,
            &[RESOURCETYPE],
            &creds("alice"),
        ),
    )
    .await
    .expect("an hour-long Retry-After is not waited for")
    .expect_err("the 503 is reported");
    assert_status(&e, 503);
    assert_eq!(mock.methods(), ["PROPFIND"]);
}

#[tokio::test]
async fn report_answered_429_is_retried() {
    let uid = "mock-429";
    let mock = Mock::start(vec![status(429), xml(207, &report_207(uid))]).await;
    let c = mock.client(retries_only());
    let objects = c
        .calendar_query(
            &mock.url("/cal/"),
            &QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: uid.into(),
            },
            &creds("alice"),
        )
        .await
        .expect("the retry succeeds");
    assert_eq!(objects.len(), 1);
    assert_eq!(mock.methods(), ["REPORT", "REPORT"]);
}

/// The error is the last attempt's, and no more than `max_retries` retries are made.
#[tokio::test]
async fn retries_stop_at_max_retries_and_report_the_last_answer() {
    let mock = Mock::start(vec![status(502), status(503), status(504), status(200)]).await;
    let c = mock.client(retries_only());
    let e = c
        .get(&mock.url("/cal/x.ics"), &creds("alice"))
        .await
        .unwrap_err();
    assert_status(&e, 504);
    assert_eq!(mock.methods(), ["GET", "GET", "GET"]);
}

/// A connection broken after the request was sent: a GET is retried, a PUT is not (the server
/// may have stored it and sent invitations).
#[tokio::test]
async fn broken_connection_retries_get_but_not_put() {
    let mock = Mock::start(vec![Act::Close, Act::Close, status(200), Act::Close]).await;
    let c = mock.client(retries_only());
    let alice = creds("alice");
    c.get(&mock.url("/cal/x.ics"), &alice)
        .await
        .expect("the third GET is answered");
    assert_eq!(mock.methods(), ["GET", "GET", "GET"]);
    let e = c
        .put(
            &mock.url("/cal/x.ics"),
            ics("x"),
            WriteCondition::Create,
            &alice,
        )
        .await
        .unwrap_err();
    match &e {
        CaldavError::Transport { kind, .. } => assert_ne!(*kind, TransportKind::Connect, "{e}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(mock.methods(), ["GET", "GET", "GET", "PUT"]);
}

/// With no connection possible, a PUT is retried too (nothing was sent) and the error says
/// so. Port 9 of loopback has no listener here.
#[tokio::test]
async fn connect_failures_are_retried_for_any_method() {
    let mut cfg = config();
    cfg.upstream.url = "http://127.0.0.1:9/".into();
    let c = CaldavClient::from_config(&cfg)
        .unwrap()
        .with_resilience(retries_only());
    let started = Instant::now();
    let e = c
        .put(
            &c.base().join("a.ics").unwrap(),
            ics("a"),
            WriteCondition::Create,
            &creds("alice"),
        )
        .await
        .unwrap_err();
    match &e {
        CaldavError::Transport { kind, .. } => assert_eq!(*kind, TransportKind::Connect, "{e}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    // Two backoffs of at least 5 ms and 10 ms (half of 10 ms and 20 ms) were waited.
    assert!(started.elapsed() >= Duration::from_millis(15));
}

#[tokio::test]
async fn breaker_opens_on_5xx_not_on_4xx_and_fails_fast() {
    let mut script = vec![status(404); 10];
    script.extend(vec![status(500); 3]);
    let mock = Mock::start(script).await;
    let c = mock.client(Resilience {
        max_retries: 0,
        breaker_failures: 3,
        breaker_cooldown: Duration::from_secs(60),
        ..Resilience::default()
    });
    let alice = creds("alice");
    let url = mock.url("/cal/x.ics");
    for _ in 0..10 {
        assert!(c.get(&url, &alice).await.unwrap_err().is_not_found());
    }
    assert_eq!(c.circuit(), CircuitState::Closed, "4xx are not failures");
    for _ in 0..3 {
        assert_status(&c.get(&url, &alice).await.unwrap_err(), 500);
    }
    assert!(
        matches!(c.circuit(), CircuitState::Open { remaining } if remaining > Duration::from_secs(30)),
        "{:?}",
        c.circuit()
    );
    let (accepted, requests) = (mock.accepted.load(SeqCst), mock.seen().len());
    let e = c.get(&url, &alice).await.unwrap_err();
    match &e {
        CaldavError::Transport { kind, detail, .. } => {
            assert_eq!(*kind, TransportKind::Connect);
            assert!(
                detail.starts_with(
                    "circuit open after 3 consecutive upstream failures; next try in "
                ),
                "{detail}"
            );
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(e.is_unavailable());
    assert_eq!(mock.seen().len(), requests, "no request was sent");
    assert_eq!(
        mock.accepted.load(SeqCst),
        accepted,
        "no connection was made"
    );
}

/// Whether [`SwitchProxy`] passes connections to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Down,
}

/// A TCP proxy to the real upstream that can be switched off (existing connections dropped,
/// new ones accepted and closed at once) and on again; it counts accepted connections.
struct SwitchProxy {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    link: tokio::sync::watch::Sender<Link>,
}

impl SwitchProxy {
    async fn start() -> SwitchProxy {
        let target = upstream_socket();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let (link, _) = tokio::sync::watch::channel(Link::Up);
        let (a, l) = (accepted.clone(), link.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                a.fetch_add(1, SeqCst);
                let mut watch = l.subscribe();
                if *watch.borrow_and_update() == Link::Down {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|l| *l == Link::Down) => {}
                    }
                });
            }
        });
        SwitchProxy {
            addr,
            accepted,
            link,
        }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    fn url(&self) -> String {
        let mut url = Url::parse(&upstream().url).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }
}

/// Against the real upstream: it goes away, the circuit opens after three failures, the next
/// request fails at once without a connection attempt; the upstream comes back, and after the
/// cooldown a request goes through and closes the circuit. Clones share the breaker.
#[tokio::test]
async fn breaker_opens_fails_fast_and_recovers_with_the_real_upstream() {
    const COOLDOWN: Duration = Duration::from_secs(1);
    let proxy = SwitchProxy::start().await;
    let mut cfg = config();
    cfg.upstream.url = proxy.url();
    let c = CaldavClient::from_config(&cfg)
        .unwrap()
        .with_resilience(Resilience {
            max_retries: 0,
            breaker_failures: 3,
            breaker_cooldown: COOLDOWN,
            ..Resilience::default()
        });
    let clone = c.clone();
    let alice = creds("alice");
    let principal = c
        .base()
        .join(&upstream().principal_template.replace("{user}", "alice"))
        .unwrap();
    let propfind = |c: CaldavClient| {
        let (url, alice) = (principal.clone(), alice.clone());
        async move { c.propfind(&url, Depth::Zero, &[RESOURCETYPE], &alice).await }
    };
    propfind(c.clone()).await.expect("the upstream is up");
    assert_eq!(c.circuit(), CircuitState::Closed);

    proxy.set(Link::Down);
    for n in 1..=3 {
        let e = propfind(c.clone()).await.expect_err("the upstream is down");
        assert!(e.is_unavailable(), "{e}");
        assert!(
            !e.to_string().contains("circuit open"),
            "attempt {n} reached the proxy: {e}"
        );
    }
    assert!(
        matches!(clone.circuit(), CircuitState::Open { .. }),
        "{:?}",
        clone.circuit()
    );
    let accepted = proxy.accepted.load(SeqCst);
    let e = propfind(clone.clone())
        .await
        .expect_err("the circuit is open");
    assert!(e.is_unavailable());
    assert!(
        e.to_string()
            .contains("circuit open after 3 consecutive upstream failures"),
        "{e}"
    );
    assert!(!e.to_string().contains("alicepw"), "{e}");
    assert_eq!(
        proxy.accepted.load(SeqCst),
        accepted,
        "no connection was attempted"
    );

    proxy.set(Link::Up);
    tokio::time::sleep(COOLDOWN).await;
    assert_eq!(c.circuit(), CircuitState::HalfOpen);
    propfind(c.clone())
        .await
        .expect("the trial request goes through");
    assert!(proxy.accepted.load(SeqCst) > accepted);
    assert_eq!(c.circuit(), CircuitState::Closed);
    assert_eq!(clone.circuit(), CircuitState::Closed);
}

/// A log sink for [`retries_are_logged_in_spans_without_credentials`].
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn retries_are_logged_in_spans_without_credentials() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mock = Mock::start(vec![status(503), xml(207, PROPFIND_207)]).await;
    let c = mock.client(retries_only());
    let secret = calgate::caldav::Credentials::new("alice", "s3cret-pw");
    c.propfind(&mock.url("/cal/"), Depth::Zero, &[RESOURCETYPE], &secret)
        .await
        .expect("retried");
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("retrying upstream request"), "{log}");
    assert!(log.contains("reason=HTTP 503"), "{log}");
    assert!(
        log.contains(r#"upstream{method=PROPFIND path="/cal/" attempt=1"#),
        "{log}"
    );
    assert!(
        log.contains(r#"upstream{method=PROPFIND path="/cal/" attempt=2"#),
        "{log}"
    );
    assert!(
        log.contains("status=207}"),
        "the span records the status: {log}"
    );
    assert!(!log.contains("s3cret-pw"), "{log}");
    assert!(!log.to_ascii_lowercase().contains("authorization"), "{log}");
    assert!(!log.contains("Basic "), "{log}");
    assert!(!log.contains("resourcetype"), "no bodies in the log: {log}");
}
