//! The real Cyrus process stopped, and frozen, in the middle of CIP and CAP sessions.
//!
//! Stopping the upstream every other test binary uses would break whatever runs beside this
//! one (another `cargo test` on a shared machine, or a runner that runs test binaries in
//! parallel), so this test starts a private Cyrus of its own through `scripts/upstream`
//! (another state directory, other ports: same packages, same configuration, same users) and
//! stops, starts, pauses and resumes that one. A drop guard resumes and stops it and removes
//! its state even when the test fails.
//!
//! One `#[test]`, in phases:
//! 1. `scripts/upstream stop` while both sessions are logged in: every command is answered
//!    with a truthful failure (CIP `NO 000 Upstream unavailable`, CAP `5.1`), never OK; the
//!    sessions stay usable; after `scripts/upstream start` the same commands succeed, and the
//!    upstream holds exactly the events that were answered OK, each once.
//! 2. `scripts/upstream pause` (SIGSTOP of Cyrus's process group: connections are accepted,
//!    nothing answers) with a short `limits.command_timeout_secs`: (a) frozen before the
//!    command, (b) frozen just as SENDEVENT's PUT goes out, (c) the same for CAP CREATE. The
//!    clients hear the timeout failure; after `resume` the upstream holds nothing for (a) and
//!    the event once for (b) and (c) (Cyrus carries out the PUT it had received), the replies
//!    did not claim otherwise, and sending again does not store a second copy.
//! 3. Refusals that need the upstream to itself (they would disturb other tests on the shared
//!    one): carol's whole account over quota (the admin's IMAP SETQUOTA on `user/carol`), so
//!    Cyrus cannot deliver to her (SCHEDULE-STATUS 5.1) while bob gets the invitation; and the
//!    service account's grant on carol's calendar withdrawn (her IMAP DELETEACL), so a peer's
//!    delivery to her is refused. The replies name exactly who got the event, and the
//!    calendars hold exactly that.

mod common;

use calgate::config::Config;
use common::cap_client::{self, ALICE, status_of, target_status};
use common::imap::{self, ImapUser};
use common::{
    LineClient, Server, begins_request, cip_sendevent, config_at, objects_with_uid_at, server,
    unfolded, unique_uid,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------
// A private Cyrus

/// A Cyrus of this test's own, run by `scripts/upstream` with its own state and ports;
/// resumed, stopped and removed when dropped.
struct PrivateCyrus(Instance);

/// Where the private Cyrus lives, for `scripts/upstream` (`CALGATE_CYRUS_*`).
#[derive(Debug, Clone)]
struct Instance {
    base: PathBuf,
    http_port: u16,
    imap_port: u16,
}

impl std::ops::Deref for PrivateCyrus {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.0
    }
}

/// Two loopback ports nobody listens on right now (both held while they are picked, so they
/// differ).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (bind(), bind());
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

impl PrivateCyrus {
    fn start() -> PrivateCyrus {
        let (http_port, imap_port) = free_ports();
        let cyrus = PrivateCyrus(Instance {
            base: PathBuf::from(format!(
                "/var/tmp/calgate-cyrus-stop-test-{}",
                std::process::id()
            )),
            http_port,
            imap_port,
        });
        let took = cyrus.run("start");
        eprintln!("private cyrus on {} ready in {took:?}", cyrus.url());
        cyrus
    }
}

impl Instance {
    /// Runs `scripts/upstream --server cyrus <cmd>` for this instance; fails the test if it
    /// fails. Returns how long it took.
    fn run(&self, cmd: &str) -> Duration {
        let started = Instant::now();
        let out = self.command(cmd).output().expect("run scripts/upstream");
        assert!(
            out.status.success(),
            "scripts/upstream {cmd} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    }

    /// [`Instance::run`] off the async worker threads.
    async fn script(&self, cmd: &'static str) -> Duration {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.run(cmd))
            .await
            .expect("scripts/upstream")
    }

    fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/upstream"));
        c.args(["--server", "cyrus", cmd])
            .env("CALGATE_CYRUS_BASE", &self.base)
            .env("CALGATE_CYRUS_HTTP_PORT", self.http_port.to_string())
            .env("CALGATE_CYRUS_IMAP_PORT", self.imap_port.to_string());
        c
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http_port)
    }

    fn socket(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }
}

impl Drop for PrivateCyrus {
    fn drop(&mut self) {
        // Whatever state the test left it in (paused, stopped, running): resume, stop, remove.
        for cmd in ["resume", "stop"] {
            match self.command(cmd).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "scripts/upstream {cmd} (cleanup): {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("scripts/upstream {cmd} (cleanup): {e}"),
            }
        }
        let _ = std::fs::remove_dir_all(&self.base);
        let _ = std::fs::remove_file(self.base.with_extension("lock"));
    }
}

/// The gateway configuration for the private Cyrus (as `common::config`, another URL), with
/// peer a.com.
fn config_for(url: &str) -> Config {
    let mut cfg = config_at(
        url,
        "/dav/principals/user/{user}/",
        "[[auth.peers]]\nid = \"a.com\"\npassword = \"PASSWORD_A\"\n",
    );
    cfg.upstream.connect_timeout_secs = 2;
    cfg
}

/// How many objects hold `uid` in `who`'s default calendar on the private Cyrus.
async fn count(cyrus: &PrivateCyrus, who: &str, uid: &str) -> usize {
    objects_with_uid_at(&config_for(&cyrus.url()), who, uid)
        .await
        .len()
}

/// Polls until `who`'s calendar holds `n` objects with `uid` (a delivery or a PUT Cyrus
/// carries out after SIGCONT lands a moment later); false after 30 s.
async fn settles_at(cyrus: &PrivateCyrus, who: &str, uid: &str, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if count(cyrus, who, uid).await == n {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ------------------------------------------------------------------------------------------
// A proxy that freezes Cyrus just as a PUT goes out

/// A TCP proxy to the private Cyrus that passes everything, except that when armed it runs
/// `scripts/upstream pause` on the next request with `method` *before* passing that request
/// on: the request then sits in the frozen server's socket buffer, sent but unanswered, and
/// Cyrus carries it out once resumed.
struct FreezingProxy {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
    froze: Arc<AtomicUsize>,
}

impl FreezingProxy {
    async fn start(cyrus: &Instance, method: &'static str) -> FreezingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed: Arc<AtomicBool> = Arc::default();
        let froze: Arc<AtomicUsize> = Arc::default();
        let target = cyrus.socket();
        let cyrus = Arc::new(cyrus.clone());
        let (a, f) = (armed.clone(), froze.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(carry(
                    inbound,
                    target,
                    method,
                    a.clone(),
                    f.clone(),
                    cyrus.clone(),
                ));
            }
        });
        FreezingProxy { addr, armed, froze }
    }

    fn arm(&self) {
        self.armed.store(true, SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

async fn carry(
    inbound: tokio::net::TcpStream,
    target: std::net::SocketAddr,
    method: &'static str,
    armed: Arc<AtomicBool>,
    froze: Arc<AtomicUsize>,
    cyrus: Arc<Instance>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut ci, mut co) = inbound.into_split();
    let (mut ui, mut uo) = outbound.into_split();
    let upward = async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match ci.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if begins_request(chunk, method) && armed.swap(false, SeqCst) {
                cyrus.script("pause").await;
                froze.fetch_add(1, SeqCst);
            }
            if uo.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downward = tokio::io::copy(&mut ui, &mut co);
    tokio::select! {
        _ = upward => {}
        _ = downward => {}
    }
}

// ------------------------------------------------------------------------------------------
// The clients

const FREEBUSY: [&str; 5] = [
    "FREEBUSY +",
    "ATTENDEE:bob@example.com",
    "DTSTART:20370901T000000Z",
    "DTEND:20370902T000000Z",
    ".",
];

/// A SENDDATA entity with one VCOMMAND on alice's calendar.
fn vcap(cmdid: &str, method: &str, body: &str) -> String {
    cap_client::vcap(cmdid, method, "alice", body)
}

fn create(cmdid: &str, uid: &str, day: &str) -> String {
    vcap(
        cmdid,
        "CREATE",
        &format!(
            "BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\nDTSTART:{day}T100000Z\n\
             DTEND:{day}T110000Z\nSUMMARY:stop {uid}\nEND:VEVENT\n"
        ),
    )
}

fn query(cmdid: &str, method: &str, uid: &str) -> String {
    vcap(
        cmdid,
        method,
        &format!("BEGIN:VQUERY\nQUERY:SELECT * FROM VEVENT WHERE UID = '{uid}'\nEND:VQUERY\n"),
    )
}

// ------------------------------------------------------------------------------------------

#[test]
fn cyrus_stopped_and_frozen_mid_session() {
    if server() != Server::Cyrus {
        eprintln!("cyrus_stopped_and_frozen_mid_session: Cyrus only");
        return;
    }
    let started = Instant::now();
    let cyrus = PrivateCyrus::start();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            stopped(&cyrus).await;
            frozen(&cyrus).await;
            refusing(&cyrus).await;
        });
    drop(cyrus);
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Phase 1: `scripts/upstream stop` and `start` between commands of live sessions.
async fn stopped(cyrus: &PrivateCyrus) {
    let gw = calgate::server::start(config_for(&cyrus.url()))
        .await
        .expect("gateway starts");
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let (before_cip, before_cap) = (unique_uid("stop-before-cip"), unique_uid("stop-before-cap"));
    let (during_cip, during_cap) = (unique_uid("stop-during-cip"), unique_uid("stop-during-cap"));

    // Up: both work.
    assert_eq!(
        c.command(&cip_sendevent(
            &before_cip,
            1,
            "20370901",
            &["bob@example.com"]
        ))
        .await,
        vec!["* TENTATIVE bob@example.com", "OK 000 Event delivered"]
    );
    let r = cap_client::senddata(&mut s, &create("c1", &before_cap, "20370901")).await;
    assert_eq!(status_of(&r, &before_cap), "REQUEST-STATUS:2.0;Success");

    let took = cyrus.script("stop").await;
    eprintln!("scripts/upstream stop: {took:?}");

    // Down: truthful failures, never OK, and the sessions go on.
    assert_eq!(
        c.command(&cip_sendevent(
            &during_cip,
            1,
            "20370901",
            &["bob@example.com"]
        ))
        .await,
        vec!["NO 000 Upstream unavailable"]
    );
    assert_eq!(
        c.command(&FREEBUSY).await,
        vec!["NO 000 Upstream unavailable"]
    );
    c.noop().await;
    let r = cap_client::senddata(&mut s, &create("c2", &during_cap, "20370901")).await;
    assert_eq!(r[0], "2.0 c2", "{r:?}");
    let st = status_of(&r, &during_cap);
    assert!(
        st.starts_with("REQUEST-STATUS:5.1;Upstream unavailable"),
        "{st}"
    );
    let r = cap_client::senddata(&mut s, &query("d1", "DELETE", &before_cap)).await;
    assert!(
        target_status(&r).is_some_and(|t| t.starts_with("REQUEST-STATUS:5.1;Upstream unavailable")),
        "{r:?}"
    );
    let r = cap_client::senddata(&mut s, &query("r1", "READ", &before_cap)).await;
    assert!(
        target_status(&r).is_some_and(|t| t.starts_with("REQUEST-STATUS:5.1;Upstream unavailable")),
        "{r:?}"
    );
    assert!(
        !unfolded(&r).contains(&format!("UID:{before_cap}")),
        "no stale data: {r:?}"
    );
    cap_client::noop(&mut s).await;

    let took = cyrus.script("start").await;
    eprintln!("scripts/upstream start: {took:?}");

    // Up again. The gateway may have opened its circuit breaker while Cyrus was down; it
    // answers "unavailable" until its cooldown is over, so wait for a READ to succeed.
    let back = Instant::now();
    loop {
        let r = cap_client::senddata(&mut s, &query("r2", "READ", &before_cap)).await;
        let st = target_status(&r).unwrap_or_default();
        if st == "REQUEST-STATUS:2.0;Success (1 matched)" {
            break;
        }
        assert!(st.starts_with("REQUEST-STATUS:5.1;"), "{r:?}");
        assert!(back.elapsed() < Duration::from_secs(30), "not back: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("gateway usable again {:?} after the start", back.elapsed());
    assert_eq!(
        c.command(&cip_sendevent(
            &during_cip,
            1,
            "20370901",
            &["bob@example.com"]
        ))
        .await,
        vec!["* TENTATIVE bob@example.com", "OK 000 Event delivered"]
    );
    let r = cap_client::senddata(&mut s, &create("c3", &during_cap, "20370901")).await;
    assert_eq!(status_of(&r, &during_cap), "REQUEST-STATUS:2.0;Success");
    c.noop().await;
    cap_client::noop(&mut s).await;

    // Exactly what was answered OK, once each.
    for uid in [&before_cip, &before_cap, &during_cip, &during_cap] {
        assert_eq!(count(cyrus, "alice", uid).await, 1, "{uid}");
    }
    for uid in [&before_cip, &during_cip] {
        assert!(settles_at(cyrus, "bob", uid, 1).await, "bob has {uid} once");
    }
    assert_eq!(count(cyrus, "bob", &before_cap).await, 0);
}

/// Phase 2: `scripts/upstream pause` (SIGSTOP) with a 3 s command timeout.
async fn frozen(cyrus: &PrivateCyrus) {
    const TIMEOUT: u64 = 3;
    let proxy = FreezingProxy::start(cyrus, "PUT").await;
    let mut cfg = config_for(&proxy.url());
    cfg.limits.command_timeout_secs = TIMEOUT;
    let gw = calgate::server::start(cfg).await.expect("gateway starts");
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let (before, at_put, cap_at_put) = (
        unique_uid("frozen-before"),
        unique_uid("frozen-at-put"),
        unique_uid("frozen-cap-at-put"),
    );

    // (a) Frozen before the command: its first request (the UID lookup) hangs; nothing else
    // is sent.
    let took = cyrus.script("pause").await;
    eprintln!("scripts/upstream pause: {took:?}");
    let t = Instant::now();
    assert_eq!(
        c.command(&cip_sendevent(&before, 1, "20370902", &["bob@example.com"]))
            .await,
        vec!["NO 000 Upstream unavailable"]
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(TIMEOUT - 1) && waited < Duration::from_secs(TIMEOUT + 10),
        "answered at the command timeout: {waited:?}"
    );
    c.noop().await;
    cyrus.script("resume").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(cyrus, "alice", &before).await, 0);
    assert_eq!(count(cyrus, "bob", &before).await, 0);

    // (b) Frozen just as the PUT goes out: the client hears the timeout failure; Cyrus, once
    // resumed, carries out the PUT it had received (and delivers to bob).
    proxy.arm();
    let reply = c
        .command(&cip_sendevent(&at_put, 1, "20370902", &["bob@example.com"]))
        .await;
    assert_eq!(proxy.froze.load(SeqCst), 1, "Cyrus was frozen at the PUT");
    eprintln!("CIP, frozen at the PUT: {reply:?}");
    assert_eq!(reply, vec!["NO 000 Upstream unavailable"]);
    assert!(
        !reply[0].contains("nothing"),
        "no claim that nothing was stored"
    );
    c.noop().await;
    cyrus.script("resume").await;
    assert!(
        settles_at(cyrus, "alice", &at_put, 1).await,
        "the PUT in flight was carried out after SIGCONT"
    );
    assert!(settles_at(cyrus, "bob", &at_put, 1).await);
    // Sending again is harmless: the stored SEQUENCE is recognised, nothing is written twice.
    assert_eq!(
        c.command(&cip_sendevent(&at_put, 1, "20370902", &["bob@example.com"]))
            .await,
        vec![
            "* TENTATIVE bob@example.com",
            "OK 000 Event unchanged: SEQUENCE 1 is already stored"
        ]
    );

    // (c) CAP CREATE, frozen at its PUT.
    proxy.arm();
    let r = cap_client::senddata(&mut s, &create("f1", &cap_at_put, "20370902")).await;
    assert_eq!(proxy.froze.load(SeqCst), 2, "Cyrus was frozen at the PUT");
    eprintln!("CAP, frozen at the PUT: {r:?}");
    assert!(r[0].starts_with("8.0 f1 ; Upstream unavailable"), "{r:?}");
    assert!(
        !unfolded(&r).contains("nothing was"),
        "no claim that nothing was stored: {r:?}"
    );
    cap_client::noop(&mut s).await;
    cyrus.script("resume").await;
    assert!(
        settles_at(cyrus, "alice", &cap_at_put, 1).await,
        "the PUT in flight was carried out after SIGCONT"
    );
    let r = cap_client::senddata(&mut s, &create("f2", &cap_at_put, "20370902")).await;
    let st = status_of(&r, &cap_at_put);
    assert!(st.starts_with("REQUEST-STATUS:8.5;"), "{st}");

    for uid in [&at_put, &cap_at_put] {
        assert_eq!(count(cyrus, "alice", uid).await, 1, "{uid} once");
    }
    assert_eq!(count(cyrus, "bob", &at_put).await, 1);
}

/// Runs one IMAP command on the private Cyrus as `who`; fails the test if Cyrus refuses it.
async fn imap(cyrus: &Instance, who: ImapUser, cmd: &str) {
    if let Err(e) = imap::run(cyrus.imap_port, who, cmd).await {
        panic!("IMAP {cmd} as {}: {e}", who.user);
    }
}

/// Phase 3: carol cannot receive (over quota), then may not receive from the service account.
async fn refusing(cyrus: &PrivateCyrus) {
    let gw = calgate::server::start(config_for(&cyrus.url()))
        .await
        .expect("gateway starts");
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let (cip_uid, cap_uid, peer_uid) = (
        unique_uid("quota-cip"),
        unique_uid("quota-cap"),
        unique_uid("acl-peer"),
    );
    // SEQUENCE n starts at 09:00 + n hours: Cyrus re-schedules a changed event, not one
    // whose only change is its SEQUENCE.
    let with_carol = |uid: &str, seq: u32| -> Vec<String> {
        let mut lines = cip_sendevent(
            uid,
            seq,
            "20370903",
            &["bob@example.com", "carol@example.com"],
        );
        lines[3] = format!("DTSTART:20370903T{:02}0000Z", 9 + seq);
        lines[4] = format!("DTEND:20370903T{:02}3000Z", 9 + seq);
        lines
    };

    // carol's account over quota: Cyrus stores alice's copy, delivers to bob, not to carol.
    imap(cyrus, imap::ADMIN, "SETQUOTA \"user/carol\" (STORAGE 0)").await;
    let reply = c.command(&with_carol(&cip_uid, 1)).await;
    eprintln!("CIP, carol over quota: {reply:?}");
    assert_eq!(reply.len(), 3, "{reply:?}");
    assert_eq!(reply[0], "* TENTATIVE bob@example.com");
    assert!(
        reply[1].starts_with("* FAILED carol@example.com "),
        "{reply:?}"
    );
    assert_eq!(reply[2], "OK 003 Not all attendees received the event");
    let r = cap_client::senddata(
        &mut s,
        &vcap(
            "q1",
            "REQUEST",
            &format!(
                "BEGIN:VEVENT\nUID:{cap_uid}\nDTSTAMP:20260101T000000Z\n\
                 DTSTART:20370903T120000Z\nDTEND:20370903T130000Z\nSUMMARY:quota\n\
                 ORGANIZER:mailto:alice@example.com\n\
                 ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\n\
                 ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\n\
                 ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.com\nEND:VEVENT\n"
            ),
        )
        .replace("component=VCOMMAND", "component=VEVENT"),
    )
    .await;
    eprintln!("CAP, carol over quota: {r:?}");
    let text = unfolded(&r);
    let of = |who: &str| {
        text.lines()
            .find(|l| l.starts_with("REQUEST-STATUS:") && l.ends_with(&format!("mailto:{who}")))
            .unwrap_or_else(|| panic!("a status for {who}: {text}"))
            .to_owned()
    };
    assert_eq!(
        of("bob@example.com"),
        "REQUEST-STATUS:2.0;Success;mailto:bob@example.com"
    );
    assert!(
        of("carol@example.com").starts_with("REQUEST-STATUS:5.1;"),
        "{text}"
    );
    for uid in [&cip_uid, &cap_uid] {
        assert_eq!(count(cyrus, "alice", uid).await, 1, "{uid}");
        assert!(settles_at(cyrus, "bob", uid, 1).await, "bob has {uid}");
        assert_eq!(count(cyrus, "carol", uid).await, 0, "carol has no {uid}");
    }
    // Quota lifted, the organizer sends a new SEQUENCE: now carol gets it too, once.
    imap(cyrus, imap::ADMIN, "SETQUOTA \"user/carol\" ()").await;
    assert_eq!(
        c.command(&with_carol(&cip_uid, 2)).await,
        vec![
            "* TENTATIVE bob@example.com",
            "* TENTATIVE carol@example.com",
            "OK 000 Event delivered"
        ]
    );
    assert!(settles_at(cyrus, "carol", &cip_uid, 1).await);
    assert_eq!(count(cyrus, "alice", &cip_uid).await, 1);
    assert_eq!(count(cyrus, "bob", &cip_uid).await, 1);

    // The service account may no longer write carol's calendar: a peer's event reaches bob
    // and is refused for carol.
    imap(
        cyrus,
        imap::user("carol"),
        "DELETEACL \"#calendars/Default\" calgate",
    )
    .await;
    let mut peer = LineClient::greeted(gw.cip_addr.unwrap()).await;
    assert_eq!(
        peer.command(&["AUTHENTICATE LOGIN a.com PASSWORD_A"]).await,
        vec!["OK 000 Logged in as peer a.com"]
    );
    let uid_line = format!("UID:{peer_uid}");
    let reply = peer
        .command(&[
            "SENDEVENT +",
            &uid_line,
            "SEQUENCE:1",
            "DTSTART:20370903T140000Z",
            "DTEND:20370903T150000Z",
            "ATTENDEE;ROLE=OWNER:pete@a.com",
            "ATTENDEE:bob@example.com",
            "ATTENDEE:carol@example.com",
            ".",
        ])
        .await;
    eprintln!("CIP peer, carol's grant withdrawn: {reply:?}");
    assert_eq!(reply.len(), 3, "{reply:?}");
    assert_eq!(reply[0], "* TENTATIVE bob@example.com");
    assert_eq!(reply[1], "* PERMDENIED carol@example.com");
    assert_eq!(reply[2], "OK 003 Not all attendees received the event");
    assert_eq!(count(cyrus, "bob", &peer_uid).await, 1);
    assert_eq!(count(cyrus, "carol", &peer_uid).await, 0);
    assert_eq!(peer.command(&["NOOP"]).await, vec!["OK 000 NOOP"]);
}
