//! The CAP listener end to end: golden transcripts from `protocols/cap/transcripts/` replayed
//! over TCP against the live gateway in front of the real upstream; STARTTLS with a rustls
//! client; latency, CONTINUE and ABORT against a deliberately slow upstream; limits.

mod common;

use common::cap_client::*;
use common::tls::{cert_files, connector as tls_connector};
use common::transcript::{self, Transcript};
use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};

/// The configuration transcripts run under: STARTTLS configured, small limits so the limit
/// transcripts stay short, a short login-failure delay.
fn cap_config() -> calgate::config::Config {
    let mut c = config();
    c.cip.enabled = false;
    let (cert, key) = cert_files();
    c.cap.tls_cert = Some(cert.clone());
    c.cap.tls_key = Some(key.clone());
    c.auth.failure_delay_ms = 10;
    c.limits.max_payload_bytes = 4096;
    c
}

/// One gateway shared by the transcript tests of this binary.
fn gateway() -> SocketAddr {
    static GW: OnceLock<calgate::server::Running> = OnceLock::new();
    GW.get_or_init(|| spawn_gateway(cap_config()))
        .cap_addr
        .expect("CAP enabled")
}

fn load(name: &str, vars: &HashMap<String, String>) -> Transcript {
    transcript::load_in("cap", name, vars)
}

async fn replay(name: &str) -> (Vec<String>, HashMap<String, String>) {
    let vars = transcript::vars(name.split('-').next().unwrap_or("cap"));
    let seen = transcript::replay(&load(name, &vars), gateway()).await;
    (seen, vars)
}

#[test]
fn every_transcript_has_a_test() {
    // The SENDDATA scheduling and calendar transcripts are replayed by tests/cap_scheduling.rs.
    let sources = [include_str!("cap.rs"), include_str!("cap_scheduling.rs")].concat();
    transcript::assert_all_replayed("cap", &sources);
}

#[tokio::test]
async fn t001_greeting_capability() {
    replay("001-greeting-capability.txt").await;
}

#[tokio::test]
async fn t002_noop_unknown_wrong_state() {
    replay("002-noop-unknown-wrong-state.txt").await;
}

#[tokio::test]
async fn t010_authenticate_plain() {
    replay("010-authenticate-plain.txt").await;
}

#[tokio::test]
async fn t011_authenticate_plain_initial_response() {
    replay("011-authenticate-plain-initial-response.txt").await;
}

#[tokio::test]
async fn t012_authenticate_wrong_password() {
    replay("012-authenticate-wrong-password.txt").await;
}

#[tokio::test]
async fn t013_authenticate_mechanisms_and_cancel() {
    replay("013-authenticate-mechanisms-and-cancel.txt").await;
}

#[tokio::test]
async fn t014_authenticate_authzid() {
    replay("014-authenticate-authzid.txt").await;
}

#[tokio::test]
async fn t015_authenticate_anonymous() {
    replay("015-authenticate-anonymous.txt").await;
}

#[tokio::test]
async fn t016_authenticate_anonymous_initial_response() {
    replay("016-authenticate-anonymous-initial-response.txt").await;
}

#[tokio::test]
async fn t017_authenticate_twice() {
    replay("017-authenticate-twice.txt").await;
}

#[tokio::test]
async fn t018_starttls_after_authenticate() {
    replay("018-starttls-after-authenticate.txt").await;
}

#[tokio::test]
async fn t020_senddata_noop() {
    replay("020-senddata-noop.txt").await;
}

#[tokio::test]
async fn t021_senddata_eager_client() {
    replay("021-senddata-eager-client.txt").await;
}

#[tokio::test]
async fn t022_senddata_tagged() {
    replay("022-senddata-tagged.txt").await;
}

#[tokio::test]
async fn t023_generateuid() {
    let (seen, _) = replay("023-generateuid.txt").await;
    let uids: Vec<&String> = seen.iter().filter(|l| l.starts_with("UID:")).collect();
    assert_eq!(uids.len(), 2);
    assert_ne!(uids[0], uids[1], "generated UIDs are unique");
    // All four (two from the command line, two from the payload): calgate-<32 hex digits>,
    // pairwise distinct.
    let all: Vec<&str> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("UID:").or(Some(l.as_str())))
        .filter_map(|l| l.strip_prefix("calgate-"))
        .collect();
    assert_eq!(all.len(), 4, "{seen:?}");
    for hex in &all {
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{hex}"
        );
    }
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 4, "{all:?}");
}

#[tokio::test]
async fn t025_senddata_errors() {
    replay("025-senddata-errors.txt").await;
}

#[tokio::test]
async fn t026_senddata_itip_request() {
    let (_, vars) = replay("026-senddata-itip-request.txt").await;
    let uid = &vars["UID"];
    let stored = objects_with_uid("alice", uid).await;
    assert_eq!(stored.len(), 1, "the organizer's copy is stored once");
    assert!(
        unfold(&stored[0].data).contains("DESCRIPTION:agenda..in two parts"),
        "the folded line arrived whole: {}",
        stored[0].data
    );
    let bob = eventually(|| find("bob", uid)).await;
    assert!(
        bob.is_some(),
        "the upstream delivered the invitation to bob"
    );
}

#[tokio::test]
async fn t030_identify() {
    replay("030-identify.txt").await;
}

#[tokio::test]
async fn t031_identify_service_account() {
    replay("031-identify-service-account.txt").await;
}

#[tokio::test]
async fn t032_expand() {
    replay("032-expand.txt").await;
}

#[tokio::test]
async fn t040_line_limits_and_bare_lf() {
    replay("040-line-limits-and-bare-lf.txt").await;
}

#[tokio::test]
async fn t050_disconnect() {
    replay("050-disconnect.txt").await;
}

// ---- a slow upstream: latency, CONTINUE, ABORT (cap-04 §4.5, §7.1.2, §7.1.6) ----

/// How long the proxy holds each PUT.
const HOLD: Duration = Duration::from_secs(4);

async fn slow_gateway(
    extra: impl FnOnce(&mut calgate::config::Config),
) -> (DelayingProxy, SocketAddr, calgate::server::Running) {
    let proxy = DelayingProxy::start("PUT", HOLD).await;
    let mut c = cap_config();
    c.upstream.url = proxy.url();
    extra(&mut c);
    let running = start_gateway(c).await;
    let addr = running.cap_addr.expect("CAP enabled");
    (proxy, addr, running)
}

#[tokio::test]
async fn t060_latency_abort() {
    let (proxy, addr, _gw) = slow_gateway(|_| {}).await;
    let vars = transcript::vars("t060");
    transcript::replay(&load("060-latency-abort.txt", &vars), addr).await;
    // The ABORT dropped the PUT while the proxy held it: it never reached the upstream.
    let dropped = eventually(|| async { (proxy.dropped.load(SeqCst) == 1).then_some(()) }).await;
    assert!(
        dropped.is_some(),
        "the held PUT was abandoned by the gateway"
    );
    tokio::time::sleep(HOLD + Duration::from_secs(1)).await;
    assert_eq!(proxy.forwarded.load(SeqCst), 0);
    assert!(objects_with_uid("alice", &vars["UID"]).await.is_empty());
}

#[tokio::test]
async fn t061_latency_continue() {
    let (proxy, addr, _gw) = slow_gateway(|_| {}).await;
    let vars = transcript::vars("t061");
    transcript::replay(&load("061-latency-continue.txt", &vars), addr).await;
    assert_eq!(proxy.forwarded.load(SeqCst), 1);
    assert_eq!(objects_with_uid("alice", &vars["UID"]).await.len(), 1);
}

#[tokio::test]
async fn t062_disconnect_in_receive_wait() {
    let (proxy, addr, _gw) = slow_gateway(|_| {}).await;
    let vars = transcript::vars("t062");
    transcript::replay(&load("062-disconnect-in-receive-wait.txt", &vars), addr).await;
    // The DISCONNECT may come before the PUT left the gateway or while the proxy held it;
    // either way the PUT never reaches the upstream. Long enough for a PUT that a broken
    // gateway started late to have been held and passed on.
    tokio::time::sleep(2 * HOLD + Duration::from_secs(1)).await;
    assert_eq!(proxy.forwarded.load(SeqCst), 0, "no PUT was passed on");
    assert_eq!(
        proxy.arrived.load(SeqCst),
        proxy.dropped.load(SeqCst),
        "every PUT that reached the proxy was abandoned by the gateway"
    );
    assert!(objects_with_uid("alice", &vars["UID"]).await.is_empty());
}

#[tokio::test]
async fn t063_compat_draft_examples() {
    let (proxy, addr, _gw) = slow_gateway(|c| {
        c.cap.response_framing = calgate::config::ResponseFraming::SingleDot;
        c.cap.senddata_goahead = false;
        c.cap.pending_code = calgate::config::PendingCode::Timeout;
        c.cap.leading_dot_on_pending = true;
        c.cap.abort_code = calgate::config::AbortCode::Aborted;
    })
    .await;
    let vars = transcript::vars("t063");
    transcript::replay(&load("063-compat-draft-examples.txt", &vars), addr).await;
    let dropped = eventually(|| async { (proxy.dropped.load(SeqCst) == 1).then_some(()) }).await;
    assert!(dropped.is_some());
    assert!(objects_with_uid("alice", &vars["UID"]).await.is_empty());
}

// ---- STARTTLS (cap-04 §7.1.10) ----

/// Connects, reads the greeting, sends STARTTLS and completes the handshake.
async fn starttls(
    addr: SocketAddr,
) -> BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut tcp = connect(addr).await;
    let greeting = reply(&mut tcp).await;
    assert!(greeting.contains(&"X-CALGATE-STARTTLS=1".to_owned()));
    tcp.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    assert_eq!(read_line(&mut tcp).await.as_deref(), Some("2.0.12"));
    assert!(tcp.buffer().is_empty());
    let tls = tls_connector()
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp.into_inner(),
        )
        .await
        .expect("TLS handshake");
    let mut tls = BufReader::new(tls);
    assert_eq!(reply(&mut tls).await, ["2.0", ".", "."]);
    tls
}

#[tokio::test]
async fn starttls_then_authenticate_plain() {
    let mut tls = starttls(gateway()).await;
    send(tls.get_mut(), "CAPABILITY").await;
    let caps = reply(&mut tls).await;
    assert!(caps.contains(&"AUTH=PLAIN".to_owned()));
    assert!(
        !caps.iter().any(|l| l.starts_with("X-CALGATE-STARTTLS")),
        "fresh capabilities after STARTTLS no longer offer it"
    );
    send(tls.get_mut(), "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=").await;
    let ok = reply(&mut tls).await;
    assert_eq!(ok[0], "2.0");
    assert_eq!(ok[2], "IDENTITY=alice@example.com");
    send(tls.get_mut(), "NOOP").await;
    assert_eq!(reply(&mut tls).await, ["2.0", ".", "."]);
    send(tls.get_mut(), "DISCONNECT").await;
    assert_eq!(reply(&mut tls).await, ["2.0", ".", "."]);
    assert_eq!(read_line(&mut tls).await, None);
}

#[tokio::test]
async fn starttls_twice_closes() {
    let mut tls = starttls(gateway()).await;
    send(tls.get_mut(), "STARTTLS").await;
    assert_eq!(read_line(&mut tls).await, None);
}

/// CVE-2011-0411: a command pipelined after STARTTLS in the same plaintext write must never
/// run, neither before nor after the handshake. The gateway drops the connection.
#[tokio::test]
async fn starttls_injection_is_dropped() {
    let mut tcp = connect(gateway()).await;
    reply(&mut tcp).await;
    tcp.get_mut()
        .write_all(b"STARTTLS\r\nAUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_line(&mut tcp).await,
        None,
        "no 2.0.12 and no answer to the injected command: the connection is closed"
    );
}

#[tokio::test]
async fn passwords_need_tls_when_plaintext_is_off() {
    let mut c = cap_config();
    c.auth.plaintext_passwords = calgate::config::PlaintextPolicy::Never;
    let gw = start_gateway(c).await;
    let addr = gw.cap_addr.unwrap();
    let mut tcp = connect(addr).await;
    let greeting = reply(&mut tcp).await;
    assert!(!greeting.contains(&"AUTH=PLAIN".to_owned()));
    send(tcp.get_mut(), "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=").await;
    let refused = reply(&mut tcp).await;
    assert!(refused[0].starts_with("6.7 ; "), "{refused:?}");
    drop(tcp);
    let mut tls = starttls(addr).await;
    send(tls.get_mut(), "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=").await;
    assert_eq!(reply(&mut tls).await[2], "IDENTITY=alice@example.com");
}

#[tokio::test]
async fn starttls_not_configured_is_6_5() {
    let mut c = cap_config();
    c.cap.tls_cert = None;
    c.cap.tls_key = None;
    let gw = start_gateway(c).await;
    let mut tcp = connect(gw.cap_addr.unwrap()).await;
    let greeting = reply(&mut tcp).await;
    assert!(!greeting.iter().any(|l| l.starts_with("X-CALGATE-STARTTLS")));
    send(tcp.get_mut(), "STARTTLS").await;
    assert_eq!(
        reply(&mut tcp).await,
        ["6.5 ; STARTTLS is not configured on this gateway", ".", "."]
    );
}

// ---- limits and shutdown ----

#[tokio::test]
async fn connection_limit_is_8_1() {
    let mut c = cap_config();
    c.limits.max_connections = 1;
    let gw = start_gateway(c).await;
    let addr = gw.cap_addr.unwrap();
    let mut first = connect(addr).await;
    assert_eq!(reply(&mut first).await[0], "2.0");
    let mut second = connect(addr).await;
    assert_eq!(
        reply(&mut second).await,
        ["8.1 ; Too many connections, try again later", ".", "."]
    );
    assert_eq!(read_line(&mut second).await, None);
    send(first.get_mut(), "NOOP").await;
    assert_eq!(
        reply(&mut first).await,
        ["2.0", ".", "."],
        "the first session is unaffected"
    );
}

#[tokio::test]
async fn shutdown_is_10_2() {
    let gw = start_gateway(cap_config()).await;
    let mut tcp = connect(gw.cap_addr.unwrap()).await;
    reply(&mut tcp).await;
    gw.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        reply(&mut tcp).await,
        [
            "10.2 ; The gateway is shutting down; reconnect later",
            ".",
            "."
        ]
    );
    assert_eq!(read_line(&mut tcp).await, None);
}

#[tokio::test]
async fn preauth_idle_limit_drops_the_connection() {
    let mut c = cap_config();
    c.limits.preauth_timeout_secs = 1;
    let gw = start_gateway(c).await;
    let mut tcp = connect(gw.cap_addr.unwrap()).await;
    reply(&mut tcp).await;
    assert_eq!(
        read_line(&mut tcp).await,
        None,
        "an idle unauthenticated connection is dropped"
    );
}

#[tokio::test]
async fn autologout_applies_after_login() {
    let mut c = cap_config();
    c.limits.preauth_timeout_secs = 60;
    c.limits.idle_timeout_secs = 1;
    let gw = start_gateway(c).await;
    let mut tcp = connect(gw.cap_addr.unwrap()).await;
    reply(&mut tcp).await;
    send(tcp.get_mut(), "AUTHENTICATE ANONYMOUS =").await;
    let ok = reply(&mut tcp).await;
    assert!(ok.contains(&"AUTOLOGOUTTIME=1".to_owned()));
    assert_eq!(read_line(&mut tcp).await, None, "AUTOLOGOUTTIME elapsed");
    assert_metrics(&gw, &["calgate_limit_hits_total{limit=\"idle_timeout\"} 1"]);
}

// ---- SCRAM-SHA-256 for gateway-local accounts ----

/// A SCRAM-SHA-256 client: rsasl's client side (RFC 5802 §3), which also checks the server's
/// signature in the server-final message.
struct ScramClient {
    session: rsasl::prelude::Session,
}

impl ScramClient {
    fn new(user: &str, password: &str) -> ScramClient {
        use rsasl::prelude::{Mechname, SASLClient, SASLConfig};
        let config = SASLConfig::with_credentials(None, user.into(), password.into()).unwrap();
        let mech = Mechname::parse(b"SCRAM-SHA-256").unwrap();
        let session = SASLClient::new(config).start_suggested(&[mech]).unwrap();
        ScramClient { session }
    }

    /// Runs one client step on `input` (base64) and returns the client's message, base64.
    fn step(&mut self, input: Option<&str>) -> Result<String, rsasl::prelude::SessionError> {
        let input = input.map(unb64);
        let mut out = Vec::new();
        self.session.step(input.as_deref(), &mut out)?;
        Ok(b64(&out))
    }

    fn first(&mut self) -> String {
        self.step(None).expect("client-first")
    }

    fn final_message(&mut self, server_first_b64: &str) -> String {
        self.step(Some(server_first_b64)).expect("client-final")
    }

    fn verify_server_final(&mut self, server_final_b64: &str) {
        assert!(
            self.step(Some(server_final_b64)).is_ok(),
            "the server proved the key: {server_final_b64}"
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    calgate::cap::scram::base64_encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    calgate::cap::scram::base64_decode(text).unwrap_or_else(|| panic!("base64: {text:?}"))
}

/// [`cap_config`] with local accounts: alice (SCRAM password "s3cret-local", the real upstream
/// password) and bob (an upstream password the upstream refuses).
fn scram_config() -> calgate::config::Config {
    use calgate::cap::scram::StoredKeys;
    use calgate::config::LocalAccount;
    let mut c = cap_config();
    for (user, scram, upstream) in [
        ("alice", "s3cret-local", "alicepw"),
        ("bob", "bob-local", "not-bobs"),
    ] {
        c.auth.local_accounts.push(LocalAccount {
            user: user.into(),
            scram_sha256: calgate::secret::Secret::new(
                StoredKeys::generate(scram.as_bytes(), 4096)
                    .unwrap()
                    .encode(),
            ),
            upstream_password: calgate::secret::Secret::new(upstream.into()),
        });
    }
    c
}

/// One gateway with [`scram_config`] shared by the SCRAM tests.
fn scram_gateway() -> SocketAddr {
    static GW: OnceLock<calgate::server::Running> = OnceLock::new();
    GW.get_or_init(|| spawn_gateway(scram_config()))
        .cap_addr
        .expect("CAP enabled")
}

#[tokio::test]
async fn scram_sha256_local_account_logs_in_upstream() {
    let mut s = connect(scram_gateway()).await;
    let greeting = reply(&mut s).await;
    assert!(
        greeting.contains(&"AUTH=SCRAM-SHA-256".to_owned()),
        "{greeting:?}"
    );
    let mut client = ScramClient::new("alice", "s3cret-local");
    send(
        s.get_mut(),
        &format!("AUTHENTICATE SCRAM-SHA-256 {}", client.first()),
    )
    .await;
    let server_first = read_line(&mut s).await.unwrap();
    send(s.get_mut(), &client.final_message(&server_first)).await;
    let server_final = read_line(&mut s).await.unwrap();
    client.verify_server_final(&server_final);
    send(s.get_mut(), "").await;
    let ok = reply(&mut s).await;
    assert_eq!(
        ok[..3],
        ["2.0", ".", "IDENTITY=alice@example.com"],
        "{ok:?}"
    );
    // The session acts upstream as alice.
    send(s.get_mut(), "CALIDEXPAND alice").await;
    let expanded = reply(&mut s).await;
    assert!(expanded[0].starts_with("2.0"), "{expanded:?}");
    send(s.get_mut(), "DISCONNECT").await;
    assert_eq!(reply(&mut s).await, ["2.0", ".", "."]);
}

#[tokio::test]
async fn scram_sha256_after_a_prompt_with_a_domain() {
    let mut s = connect(scram_gateway()).await;
    reply(&mut s).await;
    let mut client = ScramClient::new("alice@example.com", "s3cret-local");
    send(s.get_mut(), "AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(read_line(&mut s).await.as_deref(), Some("+"));
    send(s.get_mut(), &client.first()).await;
    let server_first = read_line(&mut s).await.unwrap();
    send(s.get_mut(), &client.final_message(&server_first)).await;
    client.verify_server_final(&read_line(&mut s).await.unwrap());
    send(s.get_mut(), "=").await;
    assert_eq!(
        reply(&mut s).await[..3],
        ["2.0", ".", "IDENTITY=alice@example.com"]
    );
}

#[tokio::test]
async fn scram_sha256_failures() {
    // Wrong SCRAM password, unknown user, and an account whose upstream password is refused:
    // the same answer.
    for (user, password) in [
        ("alice", "wrong"),
        ("mallory", "s3cret-local"),
        ("bob", "bob-local"),
    ] {
        let mut s = connect(scram_gateway()).await;
        reply(&mut s).await;
        let mut client = ScramClient::new(user, password);
        send(
            s.get_mut(),
            &format!("AUTHENTICATE SCRAM-SHA-256 {}", client.first()),
        )
        .await;
        let server_first = read_line(&mut s).await.unwrap();
        send(s.get_mut(), &client.final_message(&server_first)).await;
        if user == "bob" {
            // The proof was right: the server signs, then the upstream refuses.
            client.verify_server_final(&read_line(&mut s).await.unwrap());
            send(s.get_mut(), "").await;
        }
        assert_eq!(read_line(&mut s).await.as_deref(), Some("."), "{user}");
        assert_eq!(
            reply(&mut s).await,
            ["6.0 ; Authentication failed", ".", "."],
            "{user}"
        );
    }
    // Without local accounts SCRAM is neither offered nor accepted.
    let mut s = connect(gateway()).await;
    assert!(
        !reply(&mut s)
            .await
            .contains(&"AUTH=SCRAM-SHA-256".to_owned())
    );
    send(s.get_mut(), "AUTHENTICATE SCRAM-SHA-256").await;
    assert!(reply(&mut s).await[0].starts_with("6.3 ; "));
}

/// `limits.max_sasl_steps` over TCP: SCRAM needs two client messages; with one allowed, the
/// second is refused as a failed login (the SASL exchange ends with `.`, then `6.0`) and
/// counted, and with `cap.auth_retries` the session may log in again with a one-step PLAIN.
#[tokio::test]
async fn a_sasl_exchange_over_the_step_limit_fails_the_login() {
    let mut c = scram_config();
    c.limits.max_sasl_steps = 1;
    c.cap.auth_retries = 1;
    let gw = start_gateway(c).await;
    let mut s = connect(gw.cap_addr.unwrap()).await;
    reply(&mut s).await;
    let mut client = ScramClient::new("alice", "s3cret-local");
    send(
        s.get_mut(),
        &format!("AUTHENTICATE SCRAM-SHA-256 {}", client.first()),
    )
    .await;
    let server_first = read_line(&mut s).await.unwrap();
    send(s.get_mut(), &client.final_message(&server_first)).await;
    assert_eq!(read_line(&mut s).await.as_deref(), Some("."));
    assert_eq!(
        reply(&mut s).await,
        ["6.0 ; Authentication failed: too many SASL steps", ".", "."]
    );
    assert_metrics(
        &gw,
        &[
            "calgate_limit_hits_total{limit=\"sasl_steps\"} 1",
            "calgate_auth_failures_total{protocol=\"cap\"} 1",
        ],
    );
    send(s.get_mut(), &format!("AUTHENTICATE PLAIN {ALICE}")).await;
    assert_eq!(
        reply(&mut s).await[..3],
        ["2.0", ".", "IDENTITY=alice@example.com"]
    );
}

// ---- end to end: what the profile claims beyond the transcripts ----

/// A SENDDATA iTIP REQUEST from `organizer` inviting bob, as the client sends it (CRLF lines,
/// the terminating dot included).
fn request(cmdid: &str, uid: &str, organizer: &str) -> String {
    [
        "Content-Type: text/calendar; method=REQUEST; component=VEVENT",
        "",
        "BEGIN:VCAP",
        "VERSION:2.0",
        &format!("CMDID:{cmdid}"),
        "BEGIN:VCOMMAND",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20300101T000000Z",
        "DTSTART:20300312T090000Z",
        "DTEND:20300312T100000Z",
        "SUMMARY:calgate CAP test",
        &format!("ORGANIZER:mailto:{organizer}"),
        &format!("ATTENDEE;PARTSTAT=ACCEPTED:mailto:{organizer}"),
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "END:VEVENT",
        "END:VCOMMAND",
        "END:VCAP",
        ".",
        "",
    ]
    .join("\r\n")
}

/// SENDDATA with `request(cmdid, uid, organizer)`, after the `2.0.1` go-ahead.
async fn send_request(s: &mut Conn, cmdid: &str, uid: &str, organizer: &str) {
    send(s.get_mut(), "SENDDATA").await;
    assert_eq!(read_line(s).await.as_deref(), Some("2.0.1"));
    s.get_mut()
        .write_all(request(cmdid, uid, organizer).as_bytes())
        .await
        .unwrap();
}

#[tokio::test]
async fn request_for_another_organizer_is_refused_with_4_1() {
    let uid = unique_uid("cap-not-organizer");
    let mut s = logged_in(gateway(), ALICE).await;
    send_request(&mut s, "n1", &uid, "bob@example.com").await;
    assert_eq!(
        reply(&mut s).await,
        [
            "4.1 n1 ; Only bob@example.com may send this event as its organizer",
            ".",
            "."
        ]
    );
    assert!(objects_with_uid("alice", &uid).await.is_empty());
    assert!(objects_with_uid("bob", &uid).await.is_empty());
}

#[tokio::test]
async fn overlong_payload_line_is_8_2_and_nothing_is_stored() {
    let uid = unique_uid("cap-long-line");
    let mut s = logged_in(gateway(), ALICE).await;
    send(s.get_mut(), "SENDDATA").await;
    assert_eq!(read_line(&mut s).await.as_deref(), Some("2.0.1"));
    // A DESCRIPTION line over limits.max_data_line_bytes (8192), in an object under
    // MAXICALOBJECTSIZE... of the default; the transcript gateway caps objects at 4096, so this
    // gateway's line limit is what trips first only if the line alone is over 8192.
    let long = format!("DESCRIPTION:{}\r\n", "x".repeat(9000));
    let payload = request("n2", &uid, "alice@example.com").replace(
        "SUMMARY:calgate CAP test\r\n",
        &format!("SUMMARY:calgate CAP test\r\n{long}"),
    );
    s.get_mut().write_all(payload.as_bytes()).await.unwrap();
    let r = reply(&mut s).await;
    assert!(r[0].starts_with("8.2 ; "), "{r:?}");
    send(s.get_mut(), "NOOP").await;
    assert_eq!(
        reply(&mut s).await,
        ["2.0", ".", "."],
        "the session goes on"
    );
    assert!(objects_with_uid("alice", &uid).await.is_empty());
}

#[tokio::test]
async fn peer_servers_log_in_with_plain() {
    let mut c = cap_config();
    c.auth.peers.push(calgate::config::PeerAccount {
        id: "a.com".into(),
        password: calgate::secret::Secret::new("PASSWORD_A".into()),
    });
    let gw = start_gateway(c).await;
    // \0a.com\0PASSWORD_A
    let mut s = logged_in(gw.cap_addr.unwrap(), "AGEuY29tAFBBU1NXT1JEX0E=").await;
    send(s.get_mut(), "CAPABILITY").await;
    assert_eq!(reply(&mut s).await[2], "IDENTITY=@a.com");
    send(s.get_mut(), "UPNEXPAND alice@example.com").await;
    assert!(reply(&mut s).await[0].starts_with("2.1 alice@example.com ; "));
}

#[tokio::test]
async fn auth_retries_allow_a_second_attempt_over_tcp() {
    let mut c = cap_config();
    c.cap.auth_retries = 1;
    let gw = start_gateway(c).await;
    let mut s = connect(gw.cap_addr.unwrap()).await;
    reply(&mut s).await;
    send(s.get_mut(), "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n").await;
    assert_eq!(
        reply(&mut s).await,
        ["6.0 ; Authentication failed", ".", "."]
    );
    send(s.get_mut(), &format!("AUTHENTICATE PLAIN {ALICE}")).await;
    let ok = reply(&mut s).await;
    assert_eq!(ok[..3], ["2.0", ".", "IDENTITY=alice@example.com"]);
    // Authenticated: another AUTHENTICATE still closes, retries or not.
    send(s.get_mut(), &format!("AUTHENTICATE PLAIN {ALICE}")).await;
    assert_eq!(read_line(&mut s).await, None);
}

#[tokio::test]
async fn upstream_failures_are_reported_not_swallowed() {
    let proxy = CuttableProxy::start().await;
    let mut c = cap_config();
    c.upstream.url = proxy.url();
    let gw = start_gateway(c).await;
    let addr = gw.cap_addr.unwrap();
    let mut s = logged_in(addr, ALICE).await;
    proxy.cut();
    // An expansion needs the upstream: 2.4 with the reason.
    send(s.get_mut(), "UPNEXPAND alice@example.com").await;
    let r = reply(&mut s).await;
    assert!(
        r[0].starts_with("2.4 alice@example.com ; Upstream error: "),
        "{r:?}"
    );
    // A REQUEST: 8.0, nothing claimed.
    let uid = unique_uid("cap-upstream-down");
    send_request(&mut s, "d1", &uid, "alice@example.com").await;
    let r = reply(&mut s).await;
    assert!(r[0].starts_with("8.0 d1 ; Upstream unavailable: "), "{r:?}");
    // A new login cannot be checked: 6.4, a temporary failure.
    let mut s2 = connect(addr).await;
    reply(&mut s2).await;
    send(s2.get_mut(), "AUTHENTICATE PLAIN AGJvYgBib2Jwdw==").await;
    let r = reply(&mut s2).await;
    assert!(
        r[0].starts_with("6.4 ; The calendar server cannot check passwords right now"),
        "{r:?}"
    );
}

#[tokio::test]
async fn command_timeout_is_reported_and_nothing_is_stored() {
    let (proxy, addr, gw) = slow_gateway(|c| c.limits.command_timeout_secs = 1).await;
    let uid = unique_uid("cap-command-timeout");
    let mut s = logged_in(addr, ALICE).await;
    send_request(&mut s, "t1", &uid, "alice@example.com").await;
    let r = reply(&mut s).await;
    assert!(
        r[0].starts_with("8.0 t1 ; Upstream unavailable: ") && r[0].contains("timed out"),
        "{r:?}"
    );
    tokio::time::sleep(HOLD + Duration::from_secs(1)).await;
    assert_eq!(
        proxy.forwarded.load(SeqCst),
        0,
        "the timed-out PUT was dropped"
    );
    assert!(objects_with_uid("alice", &uid).await.is_empty());
    assert_metrics(
        &gw,
        &["calgate_limit_hits_total{limit=\"command_timeout\"} 1"],
    );
}

#[tokio::test]
async fn a_client_that_just_closes_does_not_abort() {
    let (proxy, addr, _gw) = slow_gateway(|_| {}).await;
    let uid = unique_uid("cap-client-gone");
    let mut s = logged_in(addr, ALICE).await;
    send_request(&mut s, "g1", &uid, "alice@example.com").await;
    drop(s);
    // The command finishes without its client: the held PUT goes through and is stored.
    let stored = eventually(|| async {
        let n = objects_with_uid("alice", &uid).await.len();
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(stored, Some(1));
    assert_eq!(proxy.forwarded.load(SeqCst), 1);
}

#[tokio::test]
async fn shutdown_lets_a_running_command_answer_first() {
    let (proxy, addr, gw) = slow_gateway(|_| {}).await;
    let uid = unique_uid("cap-shutdown-running");
    let mut s = logged_in(addr, ALICE).await;
    send_request(&mut s, "s1", &uid, "alice@example.com").await;
    // Shut down once the PUT is held upstream: the command is running.
    let held = eventually(|| async { (proxy.arrived.load(SeqCst) == 1).then_some(()) }).await;
    assert!(held.is_some(), "the PUT reached the slow upstream");
    tokio::spawn(gw.shutdown(Duration::from_secs(30)));
    let result = reply(&mut s).await;
    assert_eq!(result[0], "2.0 s1", "{result:?}");
    assert_eq!(
        reply(&mut s).await,
        [
            "10.2 ; The gateway is shutting down; reconnect later",
            ".",
            "."
        ]
    );
    assert_eq!(objects_with_uid("alice", &uid).await.len(), 1);
}

/// IDENTIFY changes whom the session speaks for, not whose account writes upstream: the
/// service account may write alice's calendar, but the upstream schedules only for alice's own
/// account, so a REQUEST organized by alice is refused (4.1) and nothing is stored anywhere.
#[tokio::test]
async fn identify_then_request_needs_the_organizers_own_login() {
    let uid = unique_uid("cap-identify-request");
    let mut s = logged_in(gateway(), "AGNhbGdhdGUAY2FsZ2F0ZXB3").await;
    send(s.get_mut(), "IDENTIFY alice@example.com").await;
    assert_eq!(reply(&mut s).await, ["2.0", ".", "."]);
    send_request(&mut s, "i1", &uid, "alice@example.com").await;
    assert_eq!(
        reply(&mut s).await,
        [
            "4.1 i1 ; Scheduling as alice@example.com needs alice@example.com's own login: the \
             calendar server sends invitations only for the organizer's own account, and this \
             session is logged in as calgate",
            ".",
            "."
        ]
    );
    for who in ["alice", "calgate", "bob"] {
        assert!(objects_with_uid(who, &uid).await.is_empty(), "{who}");
    }
}

// ---- SENDDATA on objects: CREATE, READ, MODIFY, DELETE (transcripts 070-079) ----

/// The property lines (unfolded) of the stored object's first component named `comp`.
fn stored_lines(data: &str, comp: &str) -> Vec<String> {
    let text = unfold(data);
    let begin = format!("BEGIN:{comp}");
    let end = format!("END:{comp}");
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .map(str::to_owned)
        .collect()
}

/// The value of the first line named `name` (parameters ignored) in `lines`.
fn value_of<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let (head, value) = l.split_once(':')?;
        let prop = head.split(';').next()?;
        prop.eq_ignore_ascii_case(name).then_some(value)
    })
}

#[tokio::test]
async fn t070_create_event() {
    let (_, vars) = replay("070-create-event.txt").await;
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1, "one copy in alice's calendar");
    let lines = stored_lines(&stored[0].data, "VEVENT");
    assert_eq!(
        value_of(&lines, "ORGANIZER"),
        Some("mailto:alice@example.com"),
        "the CAP address became alice's mail address: {lines:?}"
    );
    assert_eq!(value_of(&lines, "SUMMARY"), Some("Important Meeting"));
    assert_eq!(value_of(&lines, "DTSTART"), Some("20310307T180000Z"));
}

#[tokio::test]
async fn t071_create_uid_in_use() {
    let (seen, vars) = replay("071-create-uid-in-use.txt").await;
    let reply = unfolded(&seen);
    assert!(
        reply.contains(&format!(
            "REQUEST-STATUS:8.5;UID {} is already in use in cap://example.com/alice\\, nothing \
             was stored\r\n",
            vars["UID"]
        )),
        "{reply}"
    );
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1, "still one copy");
    let lines = stored_lines(&stored[0].data, "VEVENT");
    assert_eq!(value_of(&lines, "SUMMARY"), Some("First copy"));
    assert_eq!(value_of(&lines, "DTSTART"), Some("20310308T090000Z"));
    assert_eq!(objects_with_uid("alice", &vars["UID2"]).await.len(), 1);
}

#[tokio::test]
async fn t072_read_vquery() {
    let (_, vars) = replay("072-read-vquery.txt").await;
    // The READs changed nothing upstream.
    for (uid, summary) in [
        (vars["UID"].clone(), "Bravo"),
        (vars["UID2"].clone(), "Alpha"),
        (format!("{}-late", vars["UID"]), "Charlie"),
    ] {
        let stored = objects_with_uid("alice", &uid).await;
        assert_eq!(stored.len(), 1, "{uid}");
        let lines = stored_lines(&stored[0].data, "VEVENT");
        assert_eq!(value_of(&lines, "SUMMARY"), Some(summary));
    }
    // The VTODO was stored as a VTODO (what SELECT * FROM VTODO returned).
    let d = discovery();
    let p = d.principal(&creds("alice")).await.expect("principal");
    let todos = d
        .client()
        .calendar_query(
            &p.default_calendar,
            &calgate::caldav::QueryFilter::Uid {
                component: "VTODO".into(),
                uid: vars["UID3"].clone(),
            },
            &creds("alice"),
        )
        .await
        .expect("calendar-query");
    assert_eq!(todos.len(), 1);
    let lines = stored_lines(&todos[0].data, "VTODO");
    assert_eq!(value_of(&lines, "DUE"), Some("20310203T170000Z"));
}

#[tokio::test]
async fn t073_read_query_errors() {
    let (_, vars) = replay("073-read-query-errors.txt").await;
    assert_eq!(objects_with_uid("alice", &vars["UID"]).await.len(), 1);
}

#[tokio::test]
async fn t074_modify() {
    let (_, vars) = replay("074-modify.txt").await;
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1);
    let lines = stored_lines(&stored[0].data, "VEVENT");
    // 1. SUMMARY replaced; 4. LOCATION replaced again, DTSTART/DTEND moved; 2. DESCRIPTION gone.
    assert_eq!(
        value_of(&lines, "SUMMARY"),
        Some("Budget review (with finance)"),
        "{lines:?}"
    );
    assert_eq!(value_of(&lines, "LOCATION"), Some("Room 8"), "{lines:?}");
    assert_eq!(value_of(&lines, "DTSTART"), Some("20310212T140000Z"));
    assert_eq!(value_of(&lines, "DTEND"), Some("20310212T150000Z"));
    assert_eq!(value_of(&lines, "DESCRIPTION"), None, "{lines:?}");
    // SEQUENCE: bumped once, by the time change only (cap::modify); DTSTAMP and LAST-MODIFIED
    // are the gateway's (now), not the client's 2031 DTSTAMP.
    assert_eq!(value_of(&lines, "SEQUENCE"), Some("1"), "{lines:?}");
    assert_ne!(value_of(&lines, "DTSTAMP"), Some("20310101T000000Z"));
    let modified = value_of(&lines, "LAST-MODIFIED").expect("LAST-MODIFIED set");
    assert!(modified.ends_with('Z') && modified < "2031", "{modified}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("UID:")).count(), 1);
    // The other event, selected by the VQUERY of 4. but not by its OLD, and whose UID merely
    // contains ${UID} in 2., is as created.
    let copy = objects_with_uid("alice", &format!("{}-copy", vars["UID"])).await;
    assert_eq!(copy.len(), 1);
    let lines = stored_lines(&copy[0].data, "VEVENT");
    assert_eq!(value_of(&lines, "SUMMARY"), Some("Budget review"));
    assert_eq!(value_of(&lines, "DESCRIPTION"), Some("Bring the numbers"));
    assert_eq!(value_of(&lines, "LOCATION"), None);
    assert_eq!(value_of(&lines, "DTSTART"), Some("20310212T100000Z"));
    assert_eq!(value_of(&lines, "DTSTAMP"), Some("20310101T000000Z"));
}

#[tokio::test]
async fn t075_delete_vquery() {
    let (_, vars) = replay("075-delete-vquery.txt").await;
    let uid = &vars["UID"];
    assert!(
        objects_with_uid("alice", &format!("{uid}-a"))
            .await
            .is_empty()
    );
    assert!(
        objects_with_uid("alice", &format!("{uid}-c"))
            .await
            .is_empty()
    );
    let kept = objects_with_uid("alice", &format!("{uid}-b")).await;
    assert_eq!(kept.len(), 1, "the event the query did not select stays");
    let lines = stored_lines(&kept[0].data, "VEVENT");
    assert_eq!(value_of(&lines, "SUMMARY"), Some("Stand-up B"));
}

#[tokio::test]
async fn t076_multi_target() {
    let (seen, vars) = replay("076-multi-target.txt").await;
    // One boundary throughout, declared in the header, closing the entity.
    let declared = seen
        .iter()
        .find_map(|l| l.strip_prefix("Content-Type: multipart/mixed; boundary=\""))
        .and_then(|b| b.strip_suffix('"'))
        .expect("a multipart reply");
    let delimiters: Vec<&String> = seen.iter().filter(|l| l.starts_with("--")).collect();
    assert_eq!(delimiters.len(), 5, "four parts and the close: {seen:?}");
    for d in &delimiters[..4] {
        assert_eq!(**d, format!("--{declared}"));
    }
    assert_eq!(*delimiters[4], format!("--{declared}--"));
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1, "alice's copy is stored");
    assert_eq!(
        value_of(&stored_lines(&stored[0].data, "VEVENT"), "SUMMARY"),
        Some("Everywhere at once")
    );
    assert!(
        objects_with_uid("bob", &vars["UID"]).await.is_empty(),
        "nothing in bob's calendar"
    );
}

#[tokio::test]
async fn t077_payload_forms() {
    let (_, vars) = replay("077-payload-forms.txt").await;
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1, "the IMC-form CREATE stored the event once");
    let lines = stored_lines(&stored[0].data, "VEVENT");
    assert_eq!(value_of(&lines, "SUMMARY"), Some("IMC form"));
    // No METHOD in a calendar object resource (RFC 4791 §4.1): the IMC form's METHOD line
    // belonged to the command.
    assert!(
        !unfold(&stored[0].data).contains("METHOD:"),
        "{}",
        stored[0].data
    );
}

#[tokio::test]
async fn t078_create_defaults() {
    let (seen, vars) = replay("078-create-defaults.txt").await;
    // 1. The generated UID: calgate-<32 hex digits>, stored with a DTSTAMP of now.
    let generated = seen
        .iter()
        .filter_map(|l| l.strip_prefix("UID:calgate-"))
        .find(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|hex| format!("calgate-{hex}"))
        .expect("a generated UID in the reply");
    let stored = objects_with_uid("alice", &generated).await;
    assert_eq!(stored.len(), 1);
    let lines = stored_lines(&stored[0].data, "VEVENT");
    assert_eq!(
        value_of(&lines, "SUMMARY"),
        Some(format!("No UID {}", vars["UID"]).as_str())
    );
    let stamp = value_of(&lines, "DTSTAMP").expect("DTSTAMP filled in");
    assert!(stamp.ends_with('Z') && stamp < "2031", "{stamp}");
    // 2. Nothing stored without DTSTART.
    assert!(
        objects_with_uid("alice", &format!("{}-nostart", vars["UID"]))
            .await
            .is_empty()
    );
    // 3. Stored by DAViCal, refused by Cyrus with the reason.
    let moment = objects_with_uid("alice", &vars["UID2"]).await.len();
    match server() {
        Server::Davical => assert_eq!(moment, 1),
        Server::Cyrus => {
            assert_eq!(moment, 0);
            let reply = unfolded(&seen);
            assert!(
                reply.contains(&format!(
                    "REQUEST-STATUS:3.1;The calendar server refused the data: upstream PUT \
                     /dav/calendars/user/alice/Default/{}.ics: HTTP 403 \
                     (CALDAV:valid-calendar-data)\r\n",
                    vars["UID2"]
                )),
                "{reply}"
            );
        }
    }
}

#[tokio::test]
async fn t079_delete_instance() {
    let (_, vars) = replay("079-delete-instance.txt").await;
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1, "the series is still there");
    let data = unfold(&stored[0].data);
    assert_eq!(
        data.matches("BEGIN:VEVENT").count(),
        1,
        "the override is gone: {data}"
    );
    assert!(!data.contains("RECURRENCE-ID"), "{data}");
    let lines = stored_lines(&stored[0].data, "VEVENT");
    assert_eq!(
        value_of(&lines, "EXDATE"),
        Some("20310225T090000Z"),
        "{lines:?}"
    );
    assert_eq!(value_of(&lines, "RRULE"), Some("FREQ=DAILY;COUNT=3"));
    assert_eq!(value_of(&lines, "SEQUENCE"), Some("1"));
}
