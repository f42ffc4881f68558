//! Production hardening, end to end over real TCP against the real upstream: connection caps
//! for CAP, the pre-authentication deadline against trickling clients, the pre-login command
//! limit, failed-login delays kept per client address, the implicit-TLS listeners, a TLS
//! ClientHello on a plaintext port, and a shutdown that lets a running command finish.

mod common;

use common::cap_client::{self, ALICE};
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything the server sends until it closes the connection, as text.
async fn rest(stream: &mut tokio::net::TcpStream) -> String {
    String::from_utf8_lossy(&until_closed(stream).await).into_owned()
}

// ---- connection caps (limits.max_connections, limits.max_connections_per_ip) ----

/// CAP over the global cap: `8.1` in the two-dot framing, then the close (cap-04 §7.1.1).
#[tokio::test]
async fn cap_over_the_connection_cap_hears_8_1() {
    for (global, per_ip) in [(1, 1), (10, 1)] {
        let mut cfg = config();
        cfg.cip.enabled = false;
        cfg.limits.max_connections = global;
        cfg.limits.max_connections_per_ip = per_ip;
        let gw = start_gateway(cfg).await;
        let addr = gw.cap_addr.unwrap();
        let mut first = cap_client::connect(addr).await;
        assert_eq!(cap_client::reply(&mut first).await[0], "2.0");
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            rest(&mut second).await,
            "8.1 ; Too many connections, try again later\r\n.\r\n.\r\n",
            "max_connections {global}, per IP {per_ip}"
        );
        let reason = if global == 1 {
            "global_limit"
        } else {
            "per_ip_limit"
        };
        assert_metrics(
            &gw,
            &[&format!(
                "calgate_connections_refused_total{{protocol=\"cap\",reason=\"{reason}\"}} 1"
            )],
        );
    }
}

// ---- the pre-authentication deadline (limits.preauth_timeout_secs) ----

/// A client sending one byte a second never completes a line; it is cut off at the
/// pre-authentication limit, on both protocols.
#[tokio::test]
async fn a_client_trickling_one_byte_a_second_is_cut_off() {
    let mut cfg = config();
    cfg.limits.preauth_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    for addr in [gw.cip_addr.unwrap(), gw.cap_addr.unwrap()] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut sent = 0;
        // "AUTHENTICATE ..." one byte at a time: a line the gateway would have to wait for.
        for b in b"AUTHENTICATE LOGIN alice alicepw and more bytes than two seconds allow".iter() {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut probe = [0u8; 4096];
            // Drain the greeting; a read of 0 means the gateway closed the connection.
            match tokio::time::timeout(Duration::from_millis(10), s.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
        assert!(
            sent < 10,
            "{addr}: still open after {sent} bytes and {:?}",
            started.elapsed()
        );
    }
    assert_metrics(
        &gw,
        &["calgate_limit_hits_total{limit=\"preauth_timeout\"} 2"],
    );
}

/// Complete lines do not extend the deadline either: NOOPs every half second before login
/// are cut off at the limit.
#[tokio::test]
async fn noops_before_login_do_not_extend_the_deadline() {
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.limits.preauth_timeout_secs = 2;
    cfg.limits.max_preauth_commands = 1000;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    let mut answered = 0;
    loop {
        c.send(&["NOOP"]).await;
        match c.line().await.as_deref() {
            Some("OK 000 NOOP") => answered += 1,
            Some("NO 000 Idle timeout; closing the connection") | None => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(answered < 20, "NOOPs kept the connection open");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(answered >= 1);
}

// ---- the pre-login command limit (limits.max_preauth_commands) ----

#[tokio::test]
async fn too_many_commands_before_login_close_the_connection() {
    let mut cfg = config();
    cfg.limits.max_preauth_commands = 3;
    let gw = start_gateway(cfg).await;

    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    for _ in 0..3 {
        assert_eq!(c.command(&["NOOP"]).await, ["OK 000 NOOP"]);
    }
    assert_eq!(
        c.command(&["HELP"]).await,
        ["NO 000 Too many commands without logging in; closing the connection"]
    );
    assert_eq!(c.line().await, None, "closed");

    let mut cap = cap_client::connect(gw.cap_addr.unwrap()).await;
    cap_client::reply(&mut cap).await;
    for _ in 0..3 {
        cap_client::send(cap.get_mut(), "NOOP").await;
        assert_eq!(cap_client::reply(&mut cap).await[0], "2.0");
    }
    cap_client::send(cap.get_mut(), "CAPABILITY").await;
    assert_eq!(
        cap_client::reply(&mut cap).await[0],
        "9.1 ; Too many commands without logging in; closing the connection"
    );
    assert_eq!(cap_client::read_line(&mut cap).await, None, "closed");

    // Once logged in, commands are not counted.
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    for _ in 0..5 {
        assert_eq!(c.command(&["NOOP"]).await, ["OK 000 NOOP"]);
    }
    assert_metrics(
        &gw,
        &["calgate_limit_hits_total{limit=\"preauth_commands\"} 2"],
    );
}

// ---- failed-login delays per client address (auth_penalty) ----

/// The delay is kept per address, not per connection: a second connection's failure waits
/// twice the first one's. The reply never says why, and each failure is counted.
#[tokio::test]
async fn failed_login_delays_grow_per_address_across_connections() {
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.auth.failure_delay_ms = 400;
    cfg.auth.failure_delay_max_ms = 10_000;
    let gw = start_gateway(cfg).await;
    let addr = gw.cip_addr.unwrap();
    let mut waited = Vec::new();
    for guess in ["wrong-one", "wrong-two"] {
        let mut c = LineClient::greeted(addr).await;
        let started = Instant::now();
        assert_eq!(
            c.command(&[&format!("AUTHENTICATE LOGIN alice {guess}")])
                .await,
            ["NO 000 Authentication failed"]
        );
        waited.push(started.elapsed());
        // A wrong user name reads the same: no reason is ever given.
        drop(c);
    }
    assert!(waited[0] >= Duration::from_millis(400), "{waited:?}");
    assert!(
        waited[1] >= Duration::from_millis(800),
        "the second connection's failure waits the doubled delay: {waited:?}"
    );
    let mut c = LineClient::greeted(addr).await;
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN nosuchuser whatever"]).await,
        ["NO 000 Authentication failed"]
    );
    // A correct login from the same address is not delayed by the history (no lower bound
    // to check; it simply succeeds).
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN alice alicepw"]).await,
        ["OK 000 Logged in as alice@example.com"]
    );
    assert_metrics(&gw, &["calgate_auth_failures_total{protocol=\"cip\"} 3"]);
}

// ---- TLS: implicit-TLS listeners, a ClientHello on a plaintext port ----

fn tls_config() -> calgate::config::Config {
    let (cert, key) = tls::cert_files();
    let mut cfg = config();
    cfg.auth.plaintext_passwords = calgate::config::PlaintextPolicy::Never;
    cfg.cap.tls_cert = Some(cert.clone());
    cfg.cap.tls_key = Some(key.clone());
    cfg.cap.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.cip.tls_cert = Some(cert.clone());
    cfg.cip.tls_key = Some(key.clone());
    cfg.cip.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg
}

/// Both protocols over TLS from the first byte: passwords are accepted there even where the
/// policy refuses them in plaintext, and CAP does not offer STARTTLS inside TLS.
#[tokio::test]
async fn implicit_tls_listeners_serve_both_protocols() {
    let gw = start_gateway(tls_config()).await;

    let mut cap = tls::connect(gw.cap_tls_addr.unwrap()).await;
    let greeting = cap_client::reply(&mut cap).await;
    assert_eq!(greeting[0], "2.0");
    assert!(greeting.contains(&"AUTH=PLAIN".to_owned()), "{greeting:?}");
    assert!(
        !greeting.iter().any(|l| l.contains("STARTTLS")),
        "{greeting:?}"
    );
    cap_client::send(&mut cap, &format!("AUTHENTICATE PLAIN {ALICE}")).await;
    let ok = cap_client::reply(&mut cap).await;
    assert_eq!(ok[0], "2.0", "{ok:?}");
    assert!(ok.contains(&"IDENTITY=alice@example.com".to_owned()));

    let mut cip = tls::connect(gw.cip_tls_addr.unwrap()).await;
    assert_eq!(
        cap_client::read_line(&mut cip).await.as_deref(),
        Some("OK CIP 1.0 example.com")
    );
    cap_client::send(&mut cip, "AUTHENTICATE LOGIN alice alicepw").await;
    assert_eq!(
        cap_client::read_line(&mut cip).await.as_deref(),
        Some("OK 000 Logged in as alice@example.com")
    );

    // The plaintext CIP port of the same gateway still refuses the password.
    let mut plain = LineClient::greeted(gw.cip_addr.unwrap()).await;
    let refused = plain.command(&["AUTHENTICATE LOGIN alice alicepw"]).await;
    assert!(refused[0].starts_with("NO 002 "), "{refused:?}");
}

/// A TLS client pointed at a plaintext port: after the greeting it hears one readable line,
/// and the connection closes (the binary handshake never reaches the command parser).
#[tokio::test]
async fn a_client_hello_on_a_plaintext_port_gets_one_line() {
    let gw = start_gateway(tls_config()).await;
    // The start of a TLS 1.2/1.3 ClientHello record.
    let hello = [
        0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03,
    ];
    for (addr, expected) in [
        (
            gw.cip_addr.unwrap(),
            "OK CIP 1.0 example.com\r\nNO 000 TLS handshake on a plaintext CIP port: use the TLS port\r\n",
        ),
        (
            gw.cap_addr.unwrap(),
            "9.0 ; TLS handshake on a plaintext CSTP port: use STARTTLS here, or the implicit-TLS port\r\n",
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        let text = rest(&mut s).await;
        assert!(text.ends_with(expected), "{addr}: {text:?}");
    }
    // A real TLS client fails its handshake instead of hanging.
    let tcp = tokio::net::TcpStream::connect(gw.cip_addr.unwrap())
        .await
        .unwrap();
    let handshake = tokio::time::timeout(
        Duration::from_secs(30),
        tls::connector().connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        ),
    )
    .await
    .expect("the handshake ends");
    assert!(handshake.is_err());
}

// ---- graceful shutdown ----

/// A shutdown while a SENDEVENT is in flight upstream: the command finishes and is answered,
/// then the session hears the shutdown notice and closes; the upstream holds the event once.
#[tokio::test]
async fn shutdown_lets_a_running_command_finish() {
    let proxy = DelayingProxy::start("PUT", Duration::from_secs(2)).await;
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.upstream.url = proxy.url();
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let uid = unique_uid("shutdown");
    c.send(&cip_sendevent(&uid, 1, "20351210", &[])).await;
    // Wait until the PUT is held upstream, then shut down.
    let held = eventually(|| async { (proxy.arrived.load(SeqCst) >= 1).then_some(()) }).await;
    assert!(held.is_some(), "the PUT reached the upstream");
    let shutdown = tokio::spawn(gw.shutdown(Duration::from_secs(30)));
    let answer = c.until_completion().await;
    assert!(answer.last().unwrap().starts_with("OK "), "{answer:?}");
    assert_eq!(
        c.line().await.as_deref(),
        Some("NO 000 Server shutting down")
    );
    assert_eq!(c.line().await, None, "closed after the notice");
    tokio::time::timeout(Duration::from_secs(30), shutdown)
        .await
        .expect("shutdown ends once the session closed")
        .unwrap();
    assert_eq!(count("alice", &uid).await, 1);
}

/// A command still running when the grace runs out is not waited for: the shutdown ends at
/// the grace, long before the held PUT would be answered.
#[tokio::test]
async fn shutdown_stops_waiting_at_the_grace() {
    const HOLD: Duration = Duration::from_secs(20);
    const GRACE: Duration = Duration::from_secs(1);
    let proxy = DelayingProxy::start("PUT", HOLD).await;
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.upstream.url = proxy.url();
    cfg.limits.command_timeout_secs = 600;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    c.send(&cip_sendevent(
        &unique_uid("shutdown-grace"),
        1,
        "20351210",
        &[],
    ))
    .await;
    let held = eventually(|| async { (proxy.arrived.load(SeqCst) >= 1).then_some(()) }).await;
    assert!(held.is_some(), "the PUT reached the upstream");
    let started = Instant::now();
    tokio::time::timeout(HOLD / 2, gw.shutdown(GRACE))
        .await
        .expect("the shutdown ends at its grace, not with the command");
    assert!(
        started.elapsed() >= GRACE,
        "the running command was waited for, up to the grace: {:?}",
        started.elapsed()
    );
    assert_eq!(proxy.forwarded.load(SeqCst), 0, "the PUT is still held");
}

// ---- the admin listener ----

/// `/healthz`, `/readyz` (the upstream reachable and discovery working, through the service
/// account) and `/metrics` after a session; `/readyz` turns 503 when the upstream goes away.
#[tokio::test]
async fn admin_reports_health_readiness_and_metrics() {
    let proxy = CuttableProxy::start().await;
    let mut cfg = config();
    cfg.upstream.url = proxy.url();
    cfg.upstream.connect_timeout_secs = 2;
    cfg.admin.enabled = true;
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    let gw = start_gateway(cfg).await;
    let admin = gw.admin_addr.unwrap();
    assert_eq!(http::get(admin, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http::get(admin, "/readyz").await, (200, "ready\n".into()));

    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN alice wrong"]).await,
        ["NO 000 Authentication failed"]
    );
    let (status, metrics) = http::get(admin, "/metrics").await;
    assert_eq!(status, 200);
    for sample in [
        "calgate_connections_total{protocol=\"cip\"} 1",
        "calgate_connections_open{protocol=\"cip\"} 1",
        "calgate_commands_total{protocol=\"cip\",verb=\"AUTHENTICATE\",result=\"ok\"} 1",
        "calgate_commands_total{protocol=\"cip\",verb=\"AUTHENTICATE\",result=\"refused\"} 1",
        "calgate_auth_failures_total{protocol=\"cip\"} 1",
    ] {
        assert!(metrics.contains(sample), "{sample} in\n{metrics}");
    }
    assert!(
        metrics.contains("calgate_upstream_request_duration_seconds_count{method=\"PROPFIND\""),
        "{metrics}"
    );

    proxy.cut();
    let not_ready = eventually(|| async move {
        let (status, body) = http::get(admin, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await
    .expect("/readyz turns 503 without the upstream");
    assert!(not_ready.starts_with("not ready: "), "{not_ready}");
}

// ---- upstream timeouts (upstream.connect_timeout_secs, upstream.request_timeout_secs) ----

/// An upstream that never completes the TCP handshake: a listener whose accept queue is full
/// (Linux then drops further SYNs). The login is answered "upstream unavailable" once the
/// connect timeout (and its retries) run out, not at the command timeout.
#[tokio::test]
async fn upstream_connect_timeout_is_reported() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (never accepted).
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.upstream.url = format!("http://{addr}/");
    cfg.upstream.connect_timeout_secs = 1;
    cfg.limits.command_timeout_secs = 600;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    let started = Instant::now();
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN alice alicepw"]).await,
        ["NO 000 Upstream unavailable, try again later"]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the connect timeout was waited for"
    );
    drop(listener);
}

/// An upstream that accepts a PUT but does not answer within the request timeout: the
/// SENDEVENT is answered with an upstream error (never OK), the PUT is not retried (it may have
/// been processed), and — the gateway having dropped it before the proxy passed it on — the
/// upstream holds nothing.
#[tokio::test]
async fn upstream_request_timeout_is_reported_and_the_write_not_retried() {
    let proxy = DelayingProxy::start("PUT", Duration::from_secs(4)).await;
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.upstream.url = proxy.url();
    cfg.upstream.request_timeout_secs = 1;
    cfg.limits.command_timeout_secs = 600;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let uid = unique_uid("request-timeout");
    let answer = c.command(&cip_sendevent(&uid, 1, "20351210", &[])).await;
    let last = answer.last().unwrap();
    assert!(last.starts_with("NO "), "{answer:?}");
    assert!(!answer.iter().any(|l| l.starts_with("OK ")), "{answer:?}");
    assert_eq!(proxy.arrived.load(SeqCst), 1, "the PUT was sent once");
    // Let the proxy's hold run out: the dropped PUT is never passed on.
    let settled = eventually(|| async {
        (proxy.dropped.load(SeqCst) + proxy.forwarded.load(SeqCst) == 1).then_some(())
    })
    .await;
    assert!(settled.is_some());
    assert_eq!(proxy.forwarded.load(SeqCst), 0);
    assert_eq!(count("alice", &uid).await, 0);
}

// ---- limit hits, counted (calgate_limit_hits_total) ----

/// The line, payload and idle limits of a logged-in CIP session: each refusal is answered as
/// the profile says and counted once under its own name.
#[tokio::test]
async fn line_payload_and_idle_limits_are_answered_and_counted() {
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.limits.max_line_bytes = 200;
    cfg.limits.max_payload_bytes = 2048;
    cfg.limits.idle_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    assert_eq!(
        c.command(&[format!("NOOP {}", "x".repeat(300))]).await,
        ["NO 001 Command line too long (the limit is 200 octets)"]
    );
    let uid = unique_uid("too-large");
    let mut block = cip_sendevent(&uid, 1, "20351210", &[]);
    let comment = format!("COMMENT:{}", "a".repeat(150));
    for _ in 0..20 {
        block.insert(block.len() - 1, comment.clone());
    }
    assert_eq!(
        c.command(&block).await,
        ["NO 001 Data too large or a data line too long; nothing was done"]
    );
    c.noop().await;
    // Silent past idle_timeout_secs: told, then closed.
    assert_eq!(
        c.line().await.as_deref(),
        Some("NO 000 Idle timeout; closing the connection")
    );
    assert_eq!(c.line().await, None, "closed after the notice");
    assert_metrics(
        &gw,
        &[
            "calgate_limit_hits_total{limit=\"line_length\"} 1",
            "calgate_limit_hits_total{limit=\"payload_size\"} 1",
            "calgate_limit_hits_total{limit=\"idle_timeout\"} 1",
        ],
    );
    assert_eq!(count("alice", &uid).await, 0);
}

// ---- upstream retries and the circuit breaker (upstream.max_retries, upstream.breaker_*) ----

/// The upstream goes away under a logged-in session. Each command is retried, fails and is
/// answered "Upstream unavailable", never OK; the failures open the circuit, which `/metrics`
/// and `/readyz` (with its reason) report. With the circuit open a command gets the same
/// truthful answer without a single request to the upstream, and a login cannot be checked.
#[tokio::test]
async fn the_circuit_opens_through_the_gateway_and_fails_commands_fast() {
    let proxy = CuttableProxy::start().await;
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg.upstream.url = proxy.url();
    cfg.upstream.connect_timeout_secs = 2;
    cfg.upstream.max_retries = 1;
    cfg.upstream.retry_backoff_ms = 10;
    cfg.upstream.breaker_failures = 2;
    cfg.upstream.breaker_cooldown_secs = 600;
    cfg.admin.enabled = true;
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    let gw = start_gateway(cfg).await;
    let admin = gw.admin_addr.unwrap();
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    assert_metrics(&gw, &["calgate_upstream_circuit_open 0"]);

    proxy.cut();
    let uid = unique_uid("breaker");
    let mut failed = 0;
    while gw
        .metrics
        .render()
        .lines()
        .all(|l| l != "calgate_upstream_circuit_open 1")
    {
        assert_eq!(
            c.command(&cip_sendevent(&uid, 1, "20351210", &[])).await,
            ["NO 000 Upstream unavailable"]
        );
        failed += 1;
        assert!(failed < 5, "the circuit never opened");
    }
    assert!(
        metric_total(&gw, "calgate_upstream_retries_total{") >= 1.0,
        "the failed requests were retried:\n{}",
        gw.metrics.render()
    );

    // Open: answered at once, no attempt reaches the network.
    let attempts = metric_total(&gw, "calgate_upstream_request_duration_seconds_count{");
    assert_eq!(
        c.command(&cip_sendevent(&uid, 1, "20351210", &[])).await,
        ["NO 000 Upstream unavailable"]
    );
    let (status, body) = http::get(admin, "/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body.starts_with("not ready: upstream circuit breaker open after repeated failures"),
        "{body}"
    );
    let mut other = LineClient::greeted(gw.cip_addr.unwrap()).await;
    assert_eq!(
        other.command(&["AUTHENTICATE LOGIN bob bobpw"]).await,
        ["NO 000 Upstream unavailable, try again later"]
    );
    assert_eq!(
        metric_total(&gw, "calgate_upstream_request_duration_seconds_count{"),
        attempts,
        "no request went out while the circuit was open"
    );
    c.noop().await;
    assert_eq!(count("alice", &uid).await, 0);
}
