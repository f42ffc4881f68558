//! The admin listener over real TCP on 127.0.0.1: the three endpoints, HEAD, 404/405, the
//! request limits, garbage, the connection cap and shutdown. No upstream: readiness is a closure
//! the tests control.

mod common;

use calgate::admin::{AdminLimits, Readiness, serve_with_limits};
use calgate::metrics::{CommandResult, Limit, Metrics, Protocol, RefusedReason, StatusClass};
use common::http::{Reply, exchange, parse_reply, request};
use common::until_closed;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running admin listener.
struct Admin {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Limits for tests: no readiness cache (so flips show at once) and short timeouts.
fn limits() -> AdminLimits {
    AdminLimits {
        read_timeout: Duration::from_secs(3),
        readiness_cache: Duration::ZERO,
        readiness_timeout: Duration::from_secs(2),
        ..AdminLimits::default()
    }
}

async fn start(limits: AdminLimits, ready: Readiness) -> Admin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_with_limits(
        listener,
        metrics.clone(),
        ready,
        limits,
        shutdown.clone(),
    ));
    Admin {
        addr,
        metrics,
        shutdown,
        task,
    }
}

fn assert_common_headers(reply: &Reply) {
    assert_eq!(
        reply.header("Content-Length"),
        Some(reply.body.len().to_string().as_str()),
        "{reply:?}"
    );
    assert_eq!(reply.header("Connection"), Some("close"));
    assert!(reply.header("Date").is_some_and(|d| d.ends_with(" GMT")));
}

#[tokio::test]
async fn healthz_answers_ok() {
    let admin = start(limits(), Readiness::always_ready()).await;
    let reply = request(admin.addr, "GET", "/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok\n");
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_common_headers(&reply);
}

#[tokio::test]
async fn readyz_follows_the_check_and_shows_the_reason() {
    let ready = Arc::new(AtomicBool::new(true));
    let flag = ready.clone();
    let check = Readiness::new(move || {
        let up = flag.load(Ordering::SeqCst);
        async move {
            if up {
                Ok(())
            } else {
                Err("upstream unreachable:\nconnection refused".to_owned())
            }
        }
    });
    let admin = start(limits(), check).await;

    let reply = request(admin.addr, "GET", "/readyz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ready\n"));
    assert_common_headers(&reply);

    ready.store(false, Ordering::SeqCst);
    let reply = request(admin.addr, "GET", "/readyz").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "not ready: upstream unreachable: connection refused\n")
    );
    assert_common_headers(&reply);

    ready.store(true, Ordering::SeqCst);
    let reply = request(admin.addr, "GET", "/readyz").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn readyz_reuses_a_recent_result() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let check = Readiness::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err("down".to_owned()) }
    });
    let admin = start(
        AdminLimits {
            readiness_cache: Duration::from_millis(700),
            ..limits()
        },
        check,
    )
    .await;
    for _ in 0..5 {
        let reply = request(admin.addr, "GET", "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: down\n")
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    request(admin.addr, "HEAD", "/readyz").await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn readyz_bounds_a_slow_check() {
    let check = Readiness::new(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    });
    let admin = start(
        AdminLimits {
            readiness_timeout: Duration::from_millis(200),
            ..limits()
        },
        check,
    )
    .await;
    let started = Instant::now();
    let reply = request(admin.addr, "GET", "/readyz").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "not ready: readiness check timed out\n")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn readyz_survives_a_panicking_check() {
    let check = Readiness::new(|| async { panic!("check exploded") });
    let admin = start(limits(), check).await;
    let reply = request(admin.addr, "GET", "/readyz").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "not ready: readiness check panicked\n")
    );
    assert_eq!(request(admin.addr, "GET", "/healthz").await.status, 200);
}

#[tokio::test]
async fn metrics_exposes_recorded_values() {
    let admin = start(limits(), Readiness::always_ready()).await;
    let m = &admin.metrics;
    let _open = m.connection_opened(Protocol::Cip);
    m.connection_refused(Protocol::Cap, RefusedReason::GlobalLimit);
    m.command(Protocol::Cip, "SENDEVENT", CommandResult::Ok);
    m.command(Protocol::Cap, "CREATE", CommandResult::Error);
    m.upstream_request(
        "PUT",
        StatusClass::from_status(201),
        Duration::from_millis(40),
    );
    m.upstream_retry("PUT");
    m.set_upstream_circuit_open(true);
    m.auth_failure(Protocol::Cap);
    m.limit_hit(Limit::PayloadSize);

    let reply = request(admin.addr, "GET", "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_common_headers(&reply);
    for family in [
        "calgate_auth_failures_total",
        "calgate_build_info",
        "calgate_commands_total",
        "calgate_connections_open",
        "calgate_connections_refused_total",
        "calgate_connections_total",
        "calgate_limit_hits_total",
        "calgate_upstream_circuit_open",
        "calgate_upstream_request_duration_seconds",
        "calgate_upstream_retries_total",
    ] {
        assert!(
            reply.body.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    for line in [
        "calgate_connections_open{protocol=\"cip\"} 1",
        "calgate_connections_total{protocol=\"cip\"} 1",
        "calgate_connections_refused_total{protocol=\"cap\",reason=\"global_limit\"} 1",
        "calgate_commands_total{protocol=\"cip\",verb=\"SENDEVENT\",result=\"ok\"} 1",
        "calgate_commands_total{protocol=\"cap\",verb=\"CREATE\",result=\"error\"} 1",
        "calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.05\"} 1",
        "calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"+Inf\"} 1",
        "calgate_upstream_request_duration_seconds_count{method=\"PUT\",status_class=\"2xx\"} 1",
        "calgate_upstream_retries_total{method=\"PUT\"} 1",
        "calgate_upstream_circuit_open 1",
        "calgate_auth_failures_total{protocol=\"cap\"} 1",
        "calgate_limit_hits_total{limit=\"payload_size\"} 1",
        "calgate_limit_hits_total{limit=\"connections\"} 1",
    ] {
        assert!(
            reply.body.lines().any(|l| l == line),
            "{line} missing from\n{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn head_answers_headers_only() {
    let admin = start(limits(), Readiness::always_ready()).await;
    for (path, length) in [("/healthz", "3"), ("/readyz", "6")] {
        let reply = request(admin.addr, "HEAD", path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("Content-Length"), Some(length), "{path}");
        assert_eq!(reply.body, "", "{path}");
    }
    let get = request(admin.addr, "GET", "/metrics").await;
    let head = request(admin.addr, "HEAD", "/metrics").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert_eq!(
        head.header("Content-Length"),
        Some(get.body.len().to_string().as_str())
    );
    assert_eq!(head.header("Content-Type"), get.header("Content-Type"));
}

#[tokio::test]
async fn unknown_paths_and_other_methods() {
    let admin = start(limits(), Readiness::always_ready()).await;
    for path in ["/", "/metrics/", "/healthz/x", "/HEALTHZ", "/favicon.ico"] {
        let reply = request(admin.addr, "GET", path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_common_headers(&reply);
    }
    for (method, path) in [
        ("POST", "/metrics"),
        ("PUT", "/readyz"),
        ("DELETE", "/healthz"),
        ("OPTIONS", "/metrics"),
        ("get", "/healthz"),
    ] {
        let reply = request(admin.addr, method, path).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("Allow"), Some("GET, HEAD"));
        assert_common_headers(&reply);
    }
    // A query string is ignored; the absolute form is accepted (RFC 9112 §3.2.2).
    let reply = request(admin.addr, "GET", "/healthz?probe=1").await;
    assert_eq!(reply.status, 200);
    let reply = request(admin.addr, "GET", "http://127.0.0.1/healthz").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn http10_without_host_and_one_response_per_connection() {
    let admin = start(limits(), Readiness::always_ready()).await;
    let reply = parse_reply(&exchange(admin.addr, b"GET /healthz HTTP/1.0\r\n\r\n").await);
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));

    // HTTP/1.1 needs a Host (RFC 9112 §3.2).
    let reply = parse_reply(&exchange(admin.addr, b"GET /healthz HTTP/1.1\r\n\r\n").await);
    assert_eq!(reply.status, 400);

    // Pipelined requests: the first is answered, then the connection closes.
    let raw = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    let bytes = exchange(admin.addr, raw).await;
    let reply = parse_reply(&bytes);
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn request_bodies_are_refused() {
    let admin = start(limits(), Readiness::always_ready()).await;
    for raw in [
        "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".as_bytes(),
        b"POST /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let reply = parse_reply(&exchange(admin.addr, raw).await);
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(raw));
        assert_common_headers(&reply);
    }
}

#[tokio::test]
async fn over_long_heads_are_refused() {
    let admin = start(limits(), Readiness::always_ready()).await;
    // A head over 8 KiB: 431, and the rest of what the client sent does not reset the answer.
    let raw = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(20_000)
    );
    let reply = parse_reply(&exchange(admin.addr, raw.as_bytes()).await);
    assert_eq!(reply.status, 431);
    assert_common_headers(&reply);

    // Just under the limit is fine.
    let head = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Padding: \r\n\r\n";
    let raw = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(8 * 1024 - head.len())
    );
    assert_eq!(raw.len(), 8 * 1024);
    let reply = parse_reply(&exchange(admin.addr, raw.as_bytes()).await);
    assert_eq!(reply.status, 200);

    // A request-line alone over the limit: 414 (RFC 9112 §3).
    let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(9_000));
    let reply = parse_reply(&exchange(admin.addr, raw.as_bytes()).await);
    assert_eq!(reply.status, 414);
}

#[tokio::test]
async fn a_trickled_request_is_cut_off() {
    let admin = start(
        AdminLimits {
            read_timeout: Duration::from_millis(400),
            ..limits()
        },
        Readiness::always_ready(),
    )
    .await;
    let stream = TcpStream::connect(admin.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for &b in b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" {
            if writer.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let reply = parse_reply(&until_closed(&mut reader).await);
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 408);
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    trickle.abort();

    // A connection that sends nothing is closed without an answer.
    let mut silent = TcpStream::connect(admin.addr).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
}

#[tokio::test]
async fn garbage_gets_400_and_the_server_lives_on() {
    let admin = start(limits(), Readiness::always_ready()).await;
    let mut junk: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    junk.extend_from_slice(b"\r\n\r\n");
    let inputs: Vec<Vec<u8>> = vec![
        junk,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n\xff\xfe: x\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n".to_vec(),
        b"\0\0\0\0\r\n\r\n".to_vec(),
    ];
    for input in &inputs {
        let bytes = exchange(admin.addr, input).await;
        let reply = parse_reply(&bytes);
        assert!(
            matches!(reply.status, 400 | 505),
            "{:?} -> {}",
            String::from_utf8_lossy(input),
            reply.status
        );
        assert_common_headers(&reply);
    }

    // A client that sends half a head and then closes its side.
    let mut stream = TcpStream::connect(admin.addr).await.unwrap();
    stream.write_all(b"GET /healthz HT").await.unwrap();
    stream.shutdown().await.unwrap();
    let reply = parse_reply(&until_closed(&mut stream).await);
    assert_eq!(reply.status, 400);

    assert_eq!(request(admin.addr, "GET", "/healthz").await.status, 200);
    assert!(!admin.task.is_finished());
}

#[tokio::test]
async fn connections_over_the_cap_hear_503() {
    let admin = start(
        AdminLimits {
            max_connections: 1,
            ..limits()
        },
        Readiness::always_ready(),
    )
    .await;
    let holder = TcpStream::connect(admin.addr).await.unwrap();
    // Let the server accept the holder before the next connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = request(admin.addr, "GET", "/healthz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "too many admin connections\n");

    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = request(admin.addr, "GET", "/healthz").await;
        if reply.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mut admin = start(limits(), Readiness::always_ready()).await;
    assert_eq!(request(admin.addr, "GET", "/healthz").await.status, 200);
    // A connection waiting for its head is closed by the shutdown, not by the read timeout.
    let mut idle = TcpStream::connect(admin.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    admin.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), &mut admin.task)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(until_closed(&mut idle).await.is_empty());
    assert!(TcpStream::connect(admin.addr).await.is_err());
}
