//! CIP under failure and at its limits: the upstream going away mid-session, connection caps,
//! idle limits, the plaintext-password policy. Each test runs its own gateway with the
//! configuration it needs, in front of the real upstream (through a proxy the test can cut
//! where the upstream must disappear).

mod common;

use calgate::config::PlaintextPolicy;
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// The test configuration with only the CIP listener.
fn cip_only() -> calgate::config::Config {
    let mut cfg = config();
    cfg.cap.enabled = false;
    cfg
}

/// The upstream stops mid-session, just as a SENDEVENT writes: the gateway has looked the UID
/// up (REPORT through the proxy) and sends its PUT, and the proxy dies with that PUT instead of
/// passing it on. The command is answered "Upstream unavailable", nothing is claimed, later
/// commands say the same, the session stays usable, and the upstream holds nothing.
#[tokio::test]
async fn upstream_stopping_mid_session_is_reported_not_swallowed() {
    let proxy = CuttableProxy::start_cutting_at(Some(("PUT", 1))).await;
    let mut cfg = cip_only();
    cfg.upstream.url = proxy.url();
    cfg.upstream.connect_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    assert!(
        !proxy.is_cut(),
        "the upstream is up until the SENDEVENT writes"
    );
    let uid = unique_uid("cut");
    assert_eq!(
        c.command(&cip_sendevent(&uid, 1, "20351210", &["bob@example.com"]))
            .await,
        vec!["NO 000 Upstream unavailable"]
    );
    // The cut happened at the PUT: everything before it (login, the UID lookup) went through,
    // so the write was one step from happening, and the checks below are not vacuous.
    assert!(proxy.is_cut(), "the SENDEVENT got as far as its PUT");
    // Free-busy too, and the session still answers.
    let fb = c
        .command(&[
            "FREEBUSY +",
            "ATTENDEE:bob@example.com",
            "DTSTART:20351210T000000Z",
            "DTEND:20351211T000000Z",
            ".",
        ])
        .await;
    assert_eq!(fb, vec!["NO 000 Upstream unavailable"]);
    c.noop().await;
    // A login that cannot be checked says so (no failure delay, no reason about the password).
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN bob bobpw"]).await,
        vec!["NO 000 Upstream unavailable, try again later"]
    );
    assert_eq!(count("alice", &uid).await, 0);
    assert_eq!(count("bob", &uid).await, 0);
}

#[tokio::test]
async fn unreachable_upstream_at_login() {
    let mut cfg = cip_only();
    cfg.upstream.url = "http://127.0.0.1:9/".into();
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN alice alicepw"]).await,
        vec!["NO 000 Upstream unavailable, try again later"]
    );
}

#[tokio::test]
async fn connection_cap_answers_and_closes() {
    let mut cfg = cip_only();
    cfg.limits.max_connections = 2;
    cfg.limits.max_connections_per_ip = 2;
    let gw = start_gateway(cfg).await;
    let addr = gw.cip_addr.unwrap();
    let _a = LineClient::greeted(addr).await;
    let mut b = LineClient::greeted(addr).await;
    let mut third = LineClient::connect(addr).await;
    assert_eq!(
        third.line().await.as_deref(),
        Some("NO 000 Too many connections")
    );
    assert_eq!(third.line().await, None, "closed after the refusal");
    // Slots come back when a connection ends (the server notices the close a moment later:
    // retry, within a generous bound).
    assert_eq!(b.command(&["QUIT"]).await, vec!["OK 000 Goodbye"]);
    drop(b);
    let again = eventually(|| async move {
        let mut c = LineClient::connect(addr).await;
        let first = c.line().await;
        (first.as_deref() == Some("OK CIP 1.0 example.com")).then_some(c)
    })
    .await;
    assert!(again.is_some(), "a freed slot is reused");
}

/// A client that just closes the connection (no QUIT) gives its slot back at once, not at the
/// idle limit.
#[tokio::test]
async fn closing_without_quit_frees_the_slot() {
    let mut cfg = cip_only();
    cfg.limits.max_connections = 1;
    cfg.limits.max_connections_per_ip = 1;
    cfg.limits.preauth_timeout_secs = 600;
    let gw = start_gateway(cfg).await;
    let addr = gw.cip_addr.unwrap();
    drop(LineClient::greeted(addr).await);
    // Well before the 600 s idle limit (the bound only stops a broken test from hanging).
    let greeting = eventually(|| async move {
        let mut c = LineClient::connect(addr).await;
        c.line().await.filter(|g| g == "OK CIP 1.0 example.com")
    })
    .await;
    assert_eq!(greeting.as_deref(), Some("OK CIP 1.0 example.com"));
}

#[tokio::test]
async fn per_ip_cap() {
    let mut cfg = cip_only();
    cfg.limits.max_connections = 10;
    cfg.limits.max_connections_per_ip = 1;
    let gw = start_gateway(cfg).await;
    let addr = gw.cip_addr.unwrap();
    let _a = LineClient::greeted(addr).await;
    let mut second = LineClient::connect(addr).await;
    assert_eq!(
        second.line().await.as_deref(),
        Some("NO 000 Too many connections")
    );
    assert_eq!(second.line().await, None, "closed after the refusal");
    assert_metrics(
        &gw,
        &["calgate_connections_refused_total{protocol=\"cip\",reason=\"per_ip_limit\"} 1"],
    );
}

/// A client that says nothing is cut off at the pre-authentication idle limit.
#[tokio::test]
async fn idle_client_is_closed_at_the_preauth_limit() {
    let mut cfg = cip_only();
    cfg.limits.preauth_timeout_secs = 1;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    assert_eq!(
        c.line().await.as_deref(),
        Some("NO 000 Idle timeout; closing the connection")
    );
    assert_eq!(c.line().await, None);
}

#[tokio::test]
async fn plaintext_passwords_can_be_refused() {
    let mut cfg = cip_only();
    cfg.auth.plaintext_passwords = PlaintextPolicy::Never;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    let reply = c.command(&["AUTHENTICATE LOGIN alice alicepw"]).await;
    assert!(
        reply[0].starts_with("NO 002 Passwords are not accepted"),
        "{reply:?}"
    );
    assert_eq!(c.command(&["NOOP"]).await, vec!["OK 000 NOOP"]);
}

/// Shutdown tells an idle session and closes it.
#[tokio::test]
async fn shutdown_tells_idle_sessions() {
    let cfg = cip_only();
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    let stop = tokio::spawn(gw.shutdown(Duration::from_secs(5)));
    assert_eq!(
        c.line().await.as_deref(),
        Some("NO 000 Server shutting down")
    );
    assert_eq!(c.line().await, None);
    stop.await.unwrap();
}

/// The upstream fails half way through a peer's delivery to two local attendees: bob's copy is
/// written, then the upstream goes away before carol's. The peer hears exactly that (OK 003,
/// bob TENTATIVE, carol FAILED), and the upstream holds bob's copy only.
#[tokio::test]
async fn partial_delivery_reports_who_got_it() {
    let proxy = CuttableProxy::start_cutting_at(Some(("PUT", 2))).await;
    let mut cfg = cip_only();
    cfg.auth.peers = vec![calgate::config::PeerAccount {
        id: "a.com".into(),
        password: "PASSWORD_A".into(),
    }];
    cfg.upstream.url = proxy.url();
    cfg.upstream.connect_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    assert_eq!(
        c.command(&["AUTHENTICATE LOGIN a.com PASSWORD_A"]).await,
        vec!["OK 000 Logged in as peer a.com"]
    );
    let uid = unique_uid("partial");
    let uid_line = format!("UID:{uid}");
    let reply = c
        .command(&[
            "SENDEVENT +",
            &uid_line,
            "SEQUENCE:1",
            "DTSTART:20351211T100000Z",
            "DTEND:20351211T110000Z",
            "ATTENDEE;ROLE=OWNER:pete@a.com",
            "ATTENDEE:bob@example.com",
            "ATTENDEE:carol@example.com",
            ".",
        ])
        .await;
    assert_eq!(reply.len(), 3, "{reply:?}");
    assert_eq!(reply[0], "* TENTATIVE bob@example.com");
    assert!(
        reply[1].starts_with("* FAILED carol@example.com "),
        "{reply:?}"
    );
    assert_eq!(reply[2], "OK 003 Not all attendees received the event");
    assert_eq!(count("bob", &uid).await, 1);
    assert_eq!(count("carol", &uid).await, 0);
}

/// `limits.command_timeout_secs` ends a command whose upstream hangs: the proxy holds the
/// SENDEVENT's PUT for 4 s, the gateway gives up after 1 s and answers "Upstream unavailable"
/// (a command timeout is a transport timeout, reported like an unreachable upstream), drops
/// the request so the proxy never passes it on, and nothing is stored once the hold is over.
#[tokio::test]
async fn command_timeout_answers_and_stores_nothing() {
    const HOLD: Duration = Duration::from_secs(4);
    let proxy = DelayingProxy::start("PUT", HOLD).await;
    let mut cfg = cip_only();
    cfg.upstream.url = proxy.url();
    cfg.limits.command_timeout_secs = 1;
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let uid = unique_uid("command-timeout");
    assert_eq!(
        c.command(&cip_sendevent(&uid, 1, "20351210", &["bob@example.com"]))
            .await,
        vec!["NO 000 Upstream unavailable"]
    );
    assert_eq!(
        proxy.arrived.load(SeqCst),
        1,
        "the PUT reached the proxy and was held when the command timed out"
    );
    // The gateway dropped the held PUT (its connection closed) rather than leaving it to run.
    let dropped = eventually(|| async { (proxy.dropped.load(SeqCst) == 1).then_some(()) }).await;
    assert!(
        dropped.is_some(),
        "the timed-out PUT was abandoned by the gateway"
    );
    c.noop().await;
    tokio::time::sleep(HOLD + Duration::from_secs(1)).await;
    assert_eq!(
        proxy.forwarded.load(SeqCst),
        0,
        "the held PUT was never passed on"
    );
    assert_eq!(count("alice", &uid).await, 0);
    assert_eq!(count("bob", &uid).await, 0);
    assert_metrics(
        &gw,
        &[
            "calgate_limit_hits_total{limit=\"command_timeout\"} 1",
            "calgate_commands_total{protocol=\"cip\",verb=\"SENDEVENT\",result=\"timeout\"} 1",
        ],
    );
}
