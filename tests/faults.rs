//! Faults of the real upstream, seen from both legacy protocols: an upstream that is slow (a
//! delaying proxy between the gateway and Cyrus), one that goes away in the middle of a
//! command (a proxy that is cut), and the errors the real Cyrus answers when it is made to
//! (a read-only calendar through its ACL, an exhausted storage quota, a UID it already holds,
//! data it rejects, a calendar that does not exist). Every test asserts two things: what the
//! CIP or CAP client hears, and what the upstream then holds, read directly over CalDAV:
//! exactly what the client was told was stored, once, and nothing the client was told failed,
//! unless the reply left the outcome open.
//!
//! Each test runs its own gateway (so a circuit breaker opened by one cannot affect another),
//! with unique UIDs and calendars, and puts back whatever it changes upstream in a drop guard.
//! The assertions hold with or without the CalDAV client's retries: they are about replies and
//! stored state, not about how many requests went through a proxy, except where that count is
//! what proves a request reached (or never reached) the upstream.
//!
//! Four tests (their doc comments begin "Was a bug") found false claims in the gateway; each
//! fix landed with its test, which now guards it.
//!
//! Stopping the real Cyrus process is in `tests/upstream_stop.rs`, which runs a private Cyrus.

mod common;

use calgate::caldav::request::RESOURCETYPE;
use calgate::caldav::{CalendarObject, QueryFilter};
use common::cap_client::{self, ALICE, status_of, target_status, vcap};
use common::imap::ImapUser;
use common::*;
use reqwest::Url;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

// ------------------------------------------------------------------------------------------
// Gateways

/// The test configuration pointed at `url` (a proxy in front of the upstream), with a short
/// connect timeout so that a cut proxy is noticed at once.
fn config_via(url: &str) -> calgate::config::Config {
    let mut cfg = config();
    cfg.upstream.url = url.to_owned();
    cfg.upstream.connect_timeout_secs = 2;
    cfg
}

/// Whether the suite runs against Cyrus (the error tests use Cyrus's own ways to refuse).
fn on_cyrus(test: &str) -> bool {
    if server() == Server::Cyrus {
        return true;
    }
    eprintln!("{test}: Cyrus only (it provokes errors through Cyrus's ACLs, quotas and rules)");
    false
}

// ------------------------------------------------------------------------------------------
// CIP

// ------------------------------------------------------------------------------------------
// CAP

/// A VEVENT on `day` (YYYYMMDD), 10:00 to 11:00 UTC.
fn vevent(uid: &str, day: &str) -> String {
    format!(
        "BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\nDTSTART:{day}T100000Z\n\
         DTEND:{day}T110000Z\nSUMMARY:event {uid}\nEND:VEVENT\n"
    )
}

fn create(cmdid: &str, target: &str, uids: &[&str], day: &str) -> String {
    let body: String = uids.iter().map(|u| vevent(u, day)).collect();
    vcap(cmdid, "CREATE", target, &body)
}

/// A VQUERY selecting the VEVENTs with these UIDs.
fn by_uids(uids: &[&str]) -> String {
    let cond: Vec<String> = uids.iter().map(|u| format!("UID = '{u}'")).collect();
    format!(
        "BEGIN:VQUERY\nQUERY:SELECT * FROM VEVENT WHERE {}\nEND:VQUERY\n",
        cond.join(" OR ")
    )
}

fn read(cmdid: &str, target: &str, uids: &[&str]) -> String {
    vcap(cmdid, "READ", target, &by_uids(uids))
}

fn delete(cmdid: &str, target: &str, uids: &[&str]) -> String {
    vcap(cmdid, "DELETE", target, &by_uids(uids))
}

/// A MODIFY of the event's SUMMARY.
fn modify_summary(cmdid: &str, target: &str, uid: &str, summary: &str) -> String {
    vcap(
        cmdid,
        "MODIFY",
        target,
        &format!(
            "BEGIN:VEVENT\nUID:{uid}\nEND:VEVENT\nBEGIN:VEVENT\nUID:{uid}\nSUMMARY:{summary}\n\
             END:VEVENT\n"
        ),
    )
}

/// The UIDs of the components a READ returned.
fn uids_in(reply: &[String]) -> Vec<String> {
    unfolded(reply)
        .lines()
        .filter_map(|l| l.strip_prefix("UID:"))
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------------------------------------------
// The upstream, read directly

/// alice's (or `who`'s) calendar home.
async fn home(who: &str) -> Url {
    discovery()
        .principal(&creds(who))
        .await
        .expect("principal")
        .home
        .clone()
}

/// The objects holding `uid` in the calendar at `calendar`, read as `who`.
async fn objects_in(calendar: &Url, who: &str, uid: &str) -> Vec<CalendarObject> {
    client()
        .calendar_query(
            calendar,
            &QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: uid.to_owned(),
            },
            &creds(who),
        )
        .await
        .expect("calendar-query")
}

/// The PARTSTAT of `attendee` in `who`'s copy of `uid`.
async fn partstat(who: &str, uid: &str, attendee: &str) -> Option<String> {
    let objects = objects_with_uid(who, uid).await;
    assert_eq!(objects.len(), 1, "one copy of {uid} in {who}'s calendar");
    unfold(&objects[0].data)
        .lines()
        .filter(|l| l.starts_with("ATTENDEE") && l.to_ascii_lowercase().ends_with(attendee))
        .find_map(|l| {
            l.split([';', ':'])
                .find_map(|p| p.strip_prefix("PARTSTAT="))
                .map(str::to_owned)
        })
}

/// Waits until `who`'s calendar holds exactly `n` objects with `uid` (a scheduling delivery
/// lands just after the organizer's PUT returns); fails at once on more than `n`.
async fn settles_at(who: &str, uid: &str, n: usize) {
    let got = eventually(|| async move {
        let found = count(who, uid).await;
        assert!(
            found <= n,
            "{who}'s calendar holds {found} objects with {uid}"
        );
        (found == n).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "{who}'s calendar holds {n} object(s) with {uid}"
    );
}

/// A calendar name no other test or run uses (no `.`: Cyrus refuses it in collection names).
fn unique_calendar(tag: &str) -> String {
    unique_uid(tag).replace("calgate-test-", "faults-")
}

/// A calendar of alice's made for one test, deleted (with whatever it holds) when the test
/// ends, also when it fails; the IMAP commands in `restore` run first (to give alice her
/// rights back, to lift a quota).
struct TempCalendar {
    url: Url,
    name: String,
    restore: Vec<(ImapUser, String)>,
}

impl TempCalendar {
    async fn new(tag: &str) -> TempCalendar {
        let name = unique_calendar(tag);
        let url = home("alice").await.join(&format!("{name}/")).unwrap();
        client()
            .mkcalendar(&url, &name, &creds("alice"))
            .await
            .expect("MKCALENDAR");
        TempCalendar {
            url,
            name,
            restore: Vec::new(),
        }
    }

    /// The CAP TARGET for this calendar.
    fn target(&self) -> String {
        format!("alice/{}", self.name)
    }
}

impl Drop for TempCalendar {
    fn drop(&mut self) {
        let (url, restore) = (self.url.clone(), std::mem::take(&mut self.restore));
        // A fresh runtime on its own thread: this may run while the test's runtime unwinds.
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    for (who, cmd) in &restore {
                        if let Err(e) = imap(*who, cmd).await {
                            eprintln!("restoring {url}: {cmd}: {e}");
                        }
                    }
                    if let Err(e) = client().delete(&url, None, &creds("alice")).await {
                        eprintln!("deleting {url}: {e}");
                    }
                })
        })
        .join();
        if done.is_err() {
            eprintln!("cleanup of a test calendar panicked");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Cyrus's IMAP side: ACLs and quotas (what the DAV side of Cyrus 3.6 cannot change)

/// Runs one IMAP command on the test Cyrus as `who` (alice for her own ACLs, the admin of
/// `scripts/upstream` for quotas).
async fn imap(who: ImapUser, cmd: &str) -> Result<Vec<String>, String> {
    let port = std::env::var("CALGATE_CYRUS_IMAP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1143u16);
    common::imap::run(port, who, cmd).await
}

// ------------------------------------------------------------------------------------------
// A proxy that is late with the answers (the upstream did the work, the answer is slow)

/// A TCP proxy in front of the upstream that passes every request on at once but holds the
/// upstream's answer to each request with `method` for `delay`: the upstream has already done
/// the work when the gateway gives up waiting. (The shared `DelayingProxy` holds the request
/// instead, so the upstream never sees it.)
struct LateAnswerProxy {
    addr: std::net::SocketAddr,
    /// Requests with the method passed on to the upstream.
    passed: Arc<AtomicUsize>,
}

impl LateAnswerProxy {
    async fn start(method: &'static str, delay: Duration) -> LateAnswerProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let passed: Arc<AtomicUsize> = Arc::default();
        let counter = passed.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(Self::carry(inbound, method, delay, counter.clone()));
            }
        });
        LateAnswerProxy { addr, passed }
    }

    async fn carry(
        inbound: tokio::net::TcpStream,
        method: &'static str,
        delay: Duration,
        passed: Arc<AtomicUsize>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(outbound) = tokio::net::TcpStream::connect(upstream_socket()).await else {
            return;
        };
        let (mut ci, mut co) = inbound.into_split();
        let (mut ui, mut uo) = outbound.into_split();
        let hold = Arc::new(AtomicBool::new(false));
        let hold_up = hold.clone();
        let upward = async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match ci.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if begins_request(&buf[..n], method) {
                    // Set before the request goes on: its answer cannot overtake the flag.
                    hold_up.store(true, SeqCst);
                    passed.fetch_add(1, SeqCst);
                }
                if uo.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        let downward = async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match ui.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if hold.swap(false, SeqCst) {
                    tokio::time::sleep(delay).await;
                }
                if co.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = upward => {}
            _ = downward => {}
        }
    }

    fn url(&self) -> String {
        url_via(self.addr)
    }
}

// ==========================================================================================
// A slow upstream

/// The upstream is slower than usual (every PUT held 1.5 s by the proxy) but well within the
/// command timeout: both protocols succeed, and each object is stored once.
#[tokio::test]
async fn slow_upstream_within_the_command_timeout_stores_once() {
    const HOLD: Duration = Duration::from_millis(1500);
    let proxy = DelayingProxy::start("PUT", HOLD).await;
    let mut cfg = config_via(&proxy.url());
    cfg.limits.command_timeout_secs = 30;
    let gw = start_gateway(cfg).await;

    let (cip_uid, cap_uid) = (unique_uid("slow-cip"), unique_uid("slow-cap"));
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let started = tokio::time::Instant::now();
    let reply = c
        .command(&cip_sendevent(
            &cip_uid,
            1,
            "20370801",
            &["bob@example.com"],
        ))
        .await;
    assert_eq!(
        reply,
        vec!["* TENTATIVE bob@example.com", "OK 000 Event delivered"]
    );
    assert!(started.elapsed() >= HOLD, "the PUT was held");

    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("s1", "alice", &[&cap_uid], "20370801")).await;
    assert_eq!(r[0], "2.0 s1", "{r:?}");
    assert_eq!(status_of(&r, &cap_uid), "REQUEST-STATUS:2.0;Success");
    assert_eq!(
        proxy.forwarded.load(SeqCst),
        2,
        "both PUTs went through, late"
    );

    assert_eq!(count("alice", &cip_uid).await, 1);
    settles_at("bob", &cip_uid, 1).await;
    assert_eq!(count("alice", &cap_uid).await, 1);
    c.noop().await;
    cap_client::noop(&mut s).await;
}

/// CAP CREATE whose PUT the proxy holds past the command timeout: the command fails as a
/// whole with `8.0 … Upstream unavailable`, never `2.0`; the gateway drops the held request,
/// so the upstream never sees it and holds nothing; the session goes on. (CIP's SENDEVENT in
/// the same situation is `cip_faults::command_timeout_answers_and_stores_nothing`.)
#[tokio::test]
async fn cap_create_held_past_the_command_timeout_fails_and_stores_nothing() {
    const HOLD: Duration = Duration::from_secs(5);
    let proxy = DelayingProxy::start("PUT", HOLD).await;
    let mut cfg = config_via(&proxy.url());
    cfg.limits.command_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    let uid = unique_uid("cap-held");
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("h1", "alice", &[&uid], "20370802")).await;
    assert!(
        r[0].starts_with("8.0 h1 ; Upstream unavailable"),
        "the command failed as a whole: {r:?}"
    );
    assert_eq!(
        proxy.arrived.load(SeqCst),
        1,
        "the PUT was held at the proxy"
    );
    cap_client::noop(&mut s).await;
    tokio::time::sleep(HOLD + Duration::from_secs(1)).await;
    assert_eq!(proxy.forwarded.load(SeqCst), 0, "the held PUT was dropped");
    assert_eq!(count("alice", &uid).await, 0);
}

/// Cyrus stores the event at once, but its answer to the PUT comes after the command
/// timeout: the request was not lost, the answer was. The clients hear a failure without a
/// claim about the outcome — CIP `NO 000 Upstream unavailable`, CAP `8.0 … Upstream
/// unavailable: … timed out` — and the upstream holds the event once. What a client does next
/// is safe: CIP's re-sent SENDEVENT (same SEQUENCE) is answered "unchanged" and CAP's re-sent
/// CREATE "UID in use", and neither writes a second copy.
#[tokio::test]
async fn answer_to_a_put_later_than_the_command_timeout() {
    // The gateway gives up after 4 s (ample for the requests before the PUT, also on a
    // loaded machine), long before the held answer would come.
    let proxy = LateAnswerProxy::start("PUT", Duration::from_secs(30)).await;
    let mut cfg = config_via(&proxy.url());
    cfg.limits.command_timeout_secs = 4;
    let gw = start_gateway(cfg).await;
    let (cip_uid, cap_uid) = (unique_uid("late-cip"), unique_uid("late-cap"));

    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let event = cip_sendevent(&cip_uid, 1, "20370803", &["bob@example.com"]);
    let reply = c.command(&event).await;
    eprintln!("CIP: {reply:?}");
    assert_eq!(reply, vec!["NO 000 Upstream unavailable"]);
    c.noop().await;

    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("l1", "alice", &[&cap_uid], "20370803")).await;
    eprintln!("CAP: {r:?}");
    assert!(r[0].starts_with("8.0 l1 ; Upstream unavailable"), "{r:?}");
    assert!(
        !r[0].contains("nothing was"),
        "no claim about the outcome: {r:?}"
    );
    cap_client::noop(&mut s).await;
    assert_eq!(
        proxy.passed.load(SeqCst),
        2,
        "both PUTs reached the upstream"
    );

    // The PUTs were carried out: the upstream holds each event once.
    assert_eq!(count("alice", &cip_uid).await, 1);
    settles_at("bob", &cip_uid, 1).await;
    assert_eq!(count("alice", &cap_uid).await, 1);

    // The clients try again, directly: no second copy, and the answers say why.
    let direct = start_gateway(config()).await;
    let mut c = LineClient::logged_in(direct.cip_addr.unwrap(), "alice").await;
    assert_eq!(
        c.command(&event).await,
        vec![
            "* TENTATIVE bob@example.com",
            "OK 000 Event unchanged: SEQUENCE 1 is already stored"
        ]
    );
    let mut s = cap_client::logged_in(direct.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("l2", "alice", &[&cap_uid], "20370803")).await;
    assert!(
        status_of(&r, &cap_uid).starts_with("REQUEST-STATUS:8.5;"),
        "{r:?}"
    );
    assert_eq!(count("alice", &cip_uid).await, 1);
    assert_eq!(count("bob", &cip_uid).await, 1);
    assert_eq!(count("alice", &cap_uid).await, 1);
}

/// Was a bug (CAP, `src/cap/status.rs` `of_upstream`): a PUT that reached the upstream but whose
/// answer did not come within `upstream.request_timeout_secs` is reported per object as
/// `5.1;Upstream unavailable, nothing was done: … timed out`, while the upstream has stored
/// the object. A timeout (or a connection broken after the request was sent) leaves the
/// outcome of a PUT/DELETE unknown; the status must not say that nothing was done.
#[tokio::test]
async fn cap_create_timing_out_after_the_put_reached_the_upstream_claims_nothing() {
    let proxy = LateAnswerProxy::start("PUT", Duration::from_secs(30)).await;
    let mut cfg = config_via(&proxy.url());
    cfg.upstream.request_timeout_secs = 3;
    cfg.limits.command_timeout_secs = 30;
    let gw = start_gateway(cfg).await;
    let uid = unique_uid("late-request");
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("t1", "alice", &[&uid], "20370804")).await;
    eprintln!("CAP: {r:?}");
    assert_eq!(r[0], "2.0 t1", "{r:?}");
    let status = status_of(&r, &uid);
    assert_eq!(proxy.passed.load(SeqCst), 1, "the PUT reached the upstream");
    assert_eq!(count("alice", &uid).await, 1, "and the upstream stored it");
    assert!(
        !status.starts_with("REQUEST-STATUS:2.0"),
        "the gateway cannot know it succeeded: {status}"
    );
    assert!(
        !status.contains("nothing was done"),
        "the reply claims nothing was done, but the upstream stored the object: {status}"
    );
    cap_client::noop(&mut s).await;
}

/// A READ whose REPORT is slow answers with everything or not at all: within the command
/// timeout it returns all three events with `2.0;Success (3 matched)`; past it, the command
/// fails as a whole (`8.0 … Upstream unavailable`) and no component is returned: never a
/// `2.0` with part of the answer.
#[tokio::test]
async fn slow_read_returns_everything_or_fails_as_a_whole() {
    let uids: Vec<String> = (0..3)
        .map(|i| unique_uid(&format!("slow-read-{i}")))
        .collect();
    let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    let direct = start_gateway(config()).await;
    let mut s = cap_client::logged_in(direct.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("c1", "alice", &refs, "20370805")).await;
    for u in &refs {
        assert_eq!(status_of(&r, u), "REQUEST-STATUS:2.0;Success");
    }

    // Slow, within the limit.
    let proxy = DelayingProxy::start("REPORT", Duration::from_millis(1500)).await;
    let mut cfg = config_via(&proxy.url());
    cfg.limits.command_timeout_secs = 30;
    let gw = start_gateway(cfg).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &read("r1", "alice", &refs)).await;
    assert_eq!(r[0], "2.0 r1", "{r:?}");
    assert_eq!(
        target_status(&r).as_deref(),
        Some("REQUEST-STATUS:2.0;Success (3 matched)")
    );
    let mut got = uids_in(&r);
    got.sort();
    assert_eq!(got, uids);
    assert!(proxy.forwarded.load(SeqCst) >= 1);

    // Slower than the limit.
    let proxy = DelayingProxy::start("REPORT", Duration::from_secs(5)).await;
    let mut cfg = config_via(&proxy.url());
    cfg.limits.command_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &read("r2", "alice", &refs)).await;
    assert!(r[0].starts_with("8.0 r2 ; Upstream unavailable"), "{r:?}");
    assert!(uids_in(&r).is_empty(), "no partial answer: {r:?}");
    cap_client::noop(&mut s).await;
    for u in &refs {
        assert_eq!(count("alice", u).await, 1, "a READ changes nothing");
    }
}

/// Free-busy (CIP FREEBUSY and CAP's iTIP REQUEST of a VFREEBUSY, both one POST to the
/// outbox) from a slow upstream: within the timeout both return bob's busy time; past it both
/// fail as a whole (CIP `NO 000 Upstream unavailable`, CAP `8.0`), with no busy time at all
/// rather than an empty (all free) answer.
#[tokio::test]
async fn slow_free_busy_answers_or_fails_never_all_free() {
    let uid = unique_uid("slow-fb");
    let direct = start_gateway(config()).await;
    let mut c = LineClient::logged_in(direct.cip_addr.unwrap(), "alice").await;
    let reply = c
        .command(&cip_sendevent(&uid, 1, "20370806", &["bob@example.com"]))
        .await;
    assert_eq!(reply.last().unwrap(), "OK 000 Event delivered", "{reply:?}");
    settles_at("bob", &uid, 1).await;
    let busy = "FREEBUSY;FBTYPE=BUSY:20370806T100000Z/20370806T110000Z";
    let cip_fb: Vec<String> = [
        "FREEBUSY +",
        "ATTENDEE:bob@example.com",
        "DTSTART:20370806T000000Z",
        "DTEND:20370807T000000Z",
        ".",
    ]
    .map(String::from)
    .to_vec();
    let cap_fb = vcap(
        "f1",
        "REQUEST",
        "bob",
        &format!(
            "BEGIN:VFREEBUSY\nUID:{uid}-fb\nDTSTAMP:20260101T000000Z\nDTSTART:20370806T000000Z\n\
             DTEND:20370807T000000Z\nORGANIZER:mailto:alice@example.com\n\
             ATTENDEE:mailto:bob@example.com\nEND:VFREEBUSY\n"
        ),
    )
    .replace("component=VCOMMAND", "component=VFREEBUSY");

    for (hold, timeout, answers) in [
        (Duration::from_millis(1500), 30, true),
        (Duration::from_secs(5), 2, false),
    ] {
        let proxy = DelayingProxy::start("POST", hold).await;
        let mut cfg = config_via(&proxy.url());
        cfg.limits.command_timeout_secs = timeout;
        let gw = start_gateway(cfg).await;
        let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
        let reply = c.command(&cip_fb).await;
        let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
        let r = cap_client::senddata(&mut s, &cap_fb).await;
        eprintln!("hold {hold:?}: CIP {reply:?}\nCAP {r:?}");
        if answers {
            assert_eq!(
                reply.last().unwrap(),
                "OK 000 Free/busy returned",
                "{reply:?}"
            );
            assert!(reply.iter().any(|l| l == busy), "{reply:?}");
            assert_eq!(r[0], "2.0 f1", "{r:?}");
            assert!(unfolded(&r).contains(busy), "{r:?}");
        } else {
            assert_eq!(reply, vec!["NO 000 Upstream unavailable"]);
            assert!(r[0].starts_with("8.0 f1 ; Upstream unavailable"), "{r:?}");
            assert!(!unfolded(&r).contains("FREEBUSY"), "{r:?}");
        }
        c.noop().await;
        cap_client::noop(&mut s).await;
    }
}

// ==========================================================================================
// The upstream going away in the middle of a command

/// Was a bug (CIP, `src/translate/sendevent.rs` `organizer_put_in` + `src/cip/reply.rs`
/// `sendevent`): the upstream goes away just after it stored a SENDEVENT (the PUT is
/// answered 201, the proxy dies at the GET that reads the organizer's copy back). Cyrus has
/// stored alice's copy and, by implicit scheduling within that PUT, delivered bob's. The
/// client hears `* FAILED bob@example.com stored, but its delivery status could not be read`
/// and then `NO 000 No attendee received the event`: a definite claim that is false. The
/// completion must leave the delivery open (the outcome is unknown, not failed).
#[tokio::test]
async fn sendevent_stored_then_upstream_gone_leaves_the_delivery_open() {
    let proxy = CuttableProxy::start_cutting_at(Some(("GET", 1))).await;
    let gw = start_gateway(config_via(&proxy.url())).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let uid = unique_uid("gone-after-put");
    let reply = c
        .command(&cip_sendevent(&uid, 1, "20370807", &["bob@example.com"]))
        .await;
    eprintln!("CIP: {reply:?}");
    assert!(proxy.is_cut(), "the upstream went away at the read-back");
    c.noop().await;
    // What the upstream holds: alice's copy, and bob's (delivered by the PUT itself).
    assert_eq!(count("alice", &uid).await, 1);
    settles_at("bob", &uid, 1).await;
    assert!(
        reply[0].starts_with("* UNKNOWN bob@example.com stored"),
        "the attendee line says the event was stored: {reply:?}"
    );
    let completion = reply.last().unwrap();
    assert!(
        !completion.contains("No attendee received"),
        "bob did receive the event; the completion claims he did not: {reply:?}"
    );
}

/// RSVP while the upstream goes away at its PUT: bob hears `NO 000 Upstream unavailable`,
/// his copy and alice's still show him NEEDS-ACTION (nothing half-recorded), the session is
/// usable; the same RSVP through a working gateway is then recorded and reaches alice.
#[tokio::test]
async fn rsvp_with_the_upstream_gone_at_its_put_changes_nothing() {
    let uid = unique_uid("rsvp-cut");
    let direct = start_gateway(config()).await;
    let mut alice = LineClient::logged_in(direct.cip_addr.unwrap(), "alice").await;
    let reply = alice
        .command(&cip_sendevent(&uid, 1, "20370808", &["bob@example.com"]))
        .await;
    assert_eq!(reply.last().unwrap(), "OK 000 Event delivered", "{reply:?}");
    settles_at("bob", &uid, 1).await;
    let rsvp: Vec<String> = [
        "RSVP +".to_owned(),
        format!("UID:{uid}"),
        "SEQUENCE:1".into(),
        "ATTENDEE;STATUS=CONFIRMED:bob@example.com".into(),
        ".".into(),
    ]
    .to_vec();

    let proxy = CuttableProxy::start_cutting_at(Some(("PUT", 1))).await;
    let gw = start_gateway(config_via(&proxy.url())).await;
    let mut bob = LineClient::logged_in(gw.cip_addr.unwrap(), "bob").await;
    assert_eq!(
        bob.command(&rsvp).await,
        vec!["NO 000 Upstream unavailable"]
    );
    assert!(proxy.is_cut(), "the RSVP got as far as its PUT");
    bob.noop().await;
    assert_eq!(
        partstat("bob", &uid, "bob@example.com").await.as_deref(),
        Some("NEEDS-ACTION")
    );
    assert_eq!(
        partstat("alice", &uid, "bob@example.com").await.as_deref(),
        Some("NEEDS-ACTION")
    );

    let mut bob = LineClient::logged_in(direct.cip_addr.unwrap(), "bob").await;
    assert_eq!(
        bob.command(&rsvp).await,
        vec![
            "* CONFIRMED alice@example.com",
            "OK 000 RSVP recorded: bob@example.com is ACCEPTED"
        ]
    );
    let accepted = eventually(|| async {
        (partstat("alice", &uid, "bob@example.com").await.as_deref() == Some("ACCEPTED"))
            .then_some(())
    })
    .await;
    assert!(
        accepted.is_some(),
        "the organizer's copy shows bob ACCEPTED"
    );
    assert_eq!(count("bob", &uid).await, 1);
    assert_eq!(count("alice", &uid).await, 1);
}

/// CAP DELETE of two objects while the upstream goes away at the second DELETE: the first is
/// reported deleted and is gone, the second is reported failed (5.1) and is still there; a
/// READ and a second DELETE once the upstream is back confirm it.
#[tokio::test]
async fn cap_delete_with_the_upstream_gone_half_way() {
    let (a, b) = (unique_uid("del-cut-a"), unique_uid("del-cut-b"));
    let direct = start_gateway(config()).await;
    let mut s = cap_client::logged_in(direct.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("c1", "alice", &[&a, &b], "20370809")).await;
    assert_eq!(status_of(&r, &a), "REQUEST-STATUS:2.0;Success");
    assert_eq!(status_of(&r, &b), "REQUEST-STATUS:2.0;Success");

    let proxy = CuttableProxy::start_cutting_at(Some(("DELETE", 2))).await;
    let gw = start_gateway(config_via(&proxy.url())).await;
    let mut cut = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut cut, &delete("d1", "alice", &[&a, &b])).await;
    eprintln!("CAP: {r:?}");
    assert_eq!(r[0], "2.0 d1", "{r:?}");
    assert!(proxy.is_cut());
    let (sa, sb) = (status_of(&r, &a), status_of(&r, &b));
    let (done, failed, gone, kept) = if sa.starts_with("REQUEST-STATUS:2.0") {
        (sa, sb, &a, &b)
    } else {
        (sb, sa, &b, &a)
    };
    assert_eq!(done, "REQUEST-STATUS:2.0;Success");
    // The connection broke with the DELETE sent: the gateway cannot know whether it was
    // carried out, and says so (here the proxy never passed it on, so the object is kept).
    assert!(
        failed.starts_with(
            "REQUEST-STATUS:5.1;No answer from the calendar server (the change may or may not \
             have been made)"
        ),
        "{failed}"
    );
    assert!(
        target_status(&r).is_some_and(|t| t.contains("1 of 2 matching objects deleted")),
        "{r:?}"
    );
    cap_client::noop(&mut cut).await;
    assert_eq!(count("alice", gone).await, 0);
    assert_eq!(count("alice", kept).await, 1);

    let r = cap_client::senddata(&mut s, &delete("d2", "alice", &[&a, &b])).await;
    assert_eq!(status_of(&r, kept), "REQUEST-STATUS:2.0;Success");
    assert_eq!(count("alice", kept).await, 0);
}

/// CAP's iTIP REQUEST makes the same requests as SENDEVENT (PUT into alice's calendar, then a
/// GET for what the upstream recorded per attendee). With the upstream gone at that GET, the
/// event is stored and delivered, and the reply must not say otherwise for bob.
#[tokio::test]
async fn cap_itip_request_stored_then_upstream_gone_leaves_the_delivery_open() {
    let proxy = CuttableProxy::start_cutting_at(Some(("GET", 1))).await;
    let gw = start_gateway(config_via(&proxy.url())).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let uid = unique_uid("itip-gone-after-put");
    let entity = vcap(
        "i1",
        "REQUEST",
        "bob",
        &format!(
            "BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\nDTSTART:20370810T100000Z\n\
             DTEND:20370810T110000Z\nSUMMARY:faults\nORGANIZER:mailto:alice@example.com\n\
             ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\n\
             ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\nEND:VEVENT\n"
        ),
    )
    .replace("component=VCOMMAND", "component=VEVENT");
    let r = cap_client::senddata(&mut s, &entity).await;
    eprintln!("CAP: {r:?}");
    assert!(proxy.is_cut(), "the upstream went away at the read-back");
    cap_client::noop(&mut s).await;
    assert_eq!(count("alice", &uid).await, 1);
    settles_at("bob", &uid, 1).await;
    let text = unfolded(&r);
    let bob = text
        .lines()
        .find(|l| l.starts_with("REQUEST-STATUS:") && l.contains("bob@example.com"))
        .unwrap_or_else(|| panic!("a status for bob: {text}"));
    assert!(
        !bob.contains("Could not deliver"),
        "bob did receive the event; the reply says it could not be delivered: {bob}"
    );
}

// ==========================================================================================
// Errors the real Cyrus answers

/// A calendar made read-only with Cyrus's ACL (IMAP SETACL: alice keeps only `lrxa` on her own
/// calendar; Cyrus keeps `a` for the owner, so she can give the rights back). Cyrus answers
/// 403 `DAV:need-privileges` to every write: CAP CREATE, MODIFY and DELETE are each `3.8`
/// for the object, READ still works, and the calendar holds exactly the one event it held
/// before, unchanged. The session stays usable throughout.
#[tokio::test]
async fn read_only_calendar_refuses_every_write_and_keeps_its_event() {
    if !on_cyrus("read_only_calendar") {
        return;
    }
    let mut cal = TempCalendar::new("ro").await;
    let target = cal.target();
    let (kept, refused) = (unique_uid("ro-kept"), unique_uid("ro-new"));
    let gw = start_gateway(config()).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("c1", &target, &[&kept], "20370811")).await;
    assert_eq!(status_of(&r, &kept), "REQUEST-STATUS:2.0;Success", "{r:?}");

    let mailbox = format!("\"#calendars/{}\"", cal.name);
    cal.restore.push((
        imap::user("alice"),
        format!("SETACL {mailbox} alice lrswipkxtecdan"),
    ));
    imap(imap::user("alice"), &format!("SETACL {mailbox} alice lrxa"))
        .await
        .expect("SETACL");

    let r = cap_client::senddata(&mut s, &create("c2", &target, &[&refused], "20370811")).await;
    eprintln!("CREATE: {r:?}");
    assert_eq!(r[0], "2.0 c2", "{r:?}");
    let st = status_of(&r, &refused);
    assert!(
        st.starts_with("REQUEST-STATUS:3.8;The calendar server refused access"),
        "{st}"
    );
    let r = cap_client::senddata(&mut s, &modify_summary("m1", &target, &kept, "changed")).await;
    eprintln!("MODIFY: {r:?}");
    let st = status_of(&r, &kept);
    assert!(
        st.starts_with("REQUEST-STATUS:3.8;The calendar server refused access"),
        "{st}"
    );
    let r = cap_client::senddata(&mut s, &delete("d1", &target, &[&kept])).await;
    eprintln!("DELETE: {r:?}");
    let st = status_of(&r, &kept);
    assert!(
        st.starts_with("REQUEST-STATUS:3.8;The calendar server refused access"),
        "{st}"
    );
    assert!(
        target_status(&r).is_some_and(|t| t.contains("0 of 1")),
        "nothing deleted: {r:?}"
    );
    let r = cap_client::senddata(&mut s, &read("r1", &target, &[&kept, &refused])).await;
    assert_eq!(
        target_status(&r).as_deref(),
        Some("REQUEST-STATUS:2.0;Success (1 matched)"),
        "{r:?}"
    );
    assert!(
        unfolded(&r).contains(&format!("SUMMARY:event {kept}")),
        "{r:?}"
    );
    cap_client::noop(&mut s).await;

    let stored = objects_in(&cal.url, "alice", &kept).await;
    assert_eq!(stored.len(), 1);
    assert!(unfold(&stored[0].data).contains(&format!("SUMMARY:event {kept}")));
    assert!(objects_in(&cal.url, "alice", &refused).await.is_empty());
}

/// A calendar whose storage quota is used up (IMAP SETQUOTA by the Cyrus admin of
/// `scripts/upstream` on the calendar's own quota root, so nothing else is affected). Cyrus
/// 3.6 does not answer RFC 4918's 507 to a PUT over quota but **500** with an HTML body "Over
/// quota", so `status.rs`'s 507 → `10.4` never applies and the client hears the 5xx class:
/// `5.1;Upstream unavailable, nothing was done`. That is true here (Cyrus refuses before
/// storing), though a client will take "unavailable" as worth retrying. CREATE and MODIFY
/// fail, a DELETE (which frees space) succeeds, and the calendar holds exactly what the
/// replies say. A Cyrus started before `scripts/upstream` had the admin account fails the test
/// with a message (it needs a restart to get the account).
#[tokio::test]
async fn calendar_over_quota_refuses_writes_and_allows_delete() {
    if !on_cyrus("calendar_over_quota") {
        return;
    }
    if let Err(e) = imap(imap::ADMIN, "NOOP").await {
        panic!(
            "IMAP as the Cyrus admin: {e}; a Cyrus started before scripts/upstream had the admin \
             account needs a restart (scripts/upstream stop; scripts/upstream start)"
        );
    }
    let mut cal = TempCalendar::new("quota").await;
    let target = cal.target();
    let (kept, gone, refused) = (
        unique_uid("quota-kept"),
        unique_uid("quota-gone"),
        unique_uid("quota-new"),
    );
    let gw = start_gateway(config()).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("c1", &target, &[&kept, &gone], "20370812")).await;
    assert_eq!(status_of(&r, &kept), "REQUEST-STATUS:2.0;Success", "{r:?}");
    assert_eq!(status_of(&r, &gone), "REQUEST-STATUS:2.0;Success", "{r:?}");

    let root = format!("\"user/alice/#calendars/{}\"", cal.name);
    cal.restore
        .push((imap::ADMIN, format!("SETQUOTA {root} ()")));
    imap(imap::ADMIN, &format!("SETQUOTA {root} (STORAGE 0)"))
        .await
        .expect("SETQUOTA");

    let r = cap_client::senddata(&mut s, &create("c2", &target, &[&refused], "20370812")).await;
    eprintln!("CREATE: {r:?}");
    assert_eq!(r[0], "2.0 c2", "{r:?}");
    let st = status_of(&r, &refused);
    assert!(
        st.starts_with("REQUEST-STATUS:5.1;Upstream unavailable\\, nothing was done: ")
            && st.ends_with("HTTP 500"),
        "{st}"
    );
    let r = cap_client::senddata(&mut s, &modify_summary("m1", &target, &kept, "changed")).await;
    eprintln!("MODIFY: {r:?}");
    let st = status_of(&r, &kept);
    assert!(st.starts_with("REQUEST-STATUS:5.1;"), "{st}");
    let r = cap_client::senddata(&mut s, &delete("d1", &target, &[&gone])).await;
    eprintln!("DELETE: {r:?}");
    assert_eq!(status_of(&r, &gone), "REQUEST-STATUS:2.0;Success");
    cap_client::noop(&mut s).await;

    let stored = objects_in(&cal.url, "alice", &kept).await;
    assert_eq!(stored.len(), 1);
    assert!(
        unfold(&stored[0].data).contains(&format!("SUMMARY:event {kept}")),
        "the MODIFY that failed changed nothing"
    );
    assert!(objects_in(&cal.url, "alice", &gone).await.is_empty());
    assert!(objects_in(&cal.url, "alice", &refused).await.is_empty());
}

/// A UID Cyrus already holds in another calendar of alice's home: Cyrus keeps a UID once per
/// home and refuses the PUT with 403 `CALDAV:unique-scheduling-object-resource`. CAP CREATE
/// into her default calendar says `8.5` and names where the UID is; CIP SENDEVENT says
/// `NO` (nothing claimed delivered; its wording is `cip_sendevent_refused_for_its_data_says_so`);
/// bob gets nothing, the default calendar gets nothing, and the original stays as it was.
#[tokio::test]
async fn uid_held_in_another_calendar_is_refused_by_both_protocols() {
    if !on_cyrus("uid_held_in_another_calendar") {
        return;
    }
    let cal = TempCalendar::new("uid").await;
    let uid = unique_uid("uid-elsewhere");
    let gw = start_gateway(config()).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r = cap_client::senddata(&mut s, &create("c1", &cal.target(), &[&uid], "20370813")).await;
    assert_eq!(status_of(&r, &uid), "REQUEST-STATUS:2.0;Success", "{r:?}");

    let r = cap_client::senddata(&mut s, &create("c2", "alice", &[&uid], "20370813")).await;
    eprintln!("CAP: {r:?}");
    let st = status_of(&r, &uid);
    assert!(st.starts_with("REQUEST-STATUS:8.5;"), "{st}");
    assert!(
        st.contains(&cal.name),
        "names the calendar holding it: {st}"
    );
    cap_client::noop(&mut s).await;

    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;
    let reply = c
        .command(&cip_sendevent(&uid, 1, "20370813", &["bob@example.com"]))
        .await;
    eprintln!("CIP: {reply:?}");
    assert!(reply.last().unwrap().starts_with("NO "), "{reply:?}");
    c.noop().await;

    assert_eq!(count("alice", &uid).await, 0);
    assert_eq!(count("bob", &uid).await, 0);
    let there = objects_in(&cal.url, "alice", &uid).await;
    assert_eq!(there.len(), 1);
    assert!(unfold(&there[0].data).contains(&format!("SUMMARY:event {uid}")));
}

/// Data Cyrus rejects although the gateway passes it on: an event that ends where it starts
/// (Cyrus 403 `CALDAV:valid-calendar-data`, "DTEND must occur after DTSTART"). CAP says
/// `3.1` (the data, not the client's rights); nothing is stored.
#[tokio::test]
async fn event_cyrus_rejects_as_invalid_is_reported_as_bad_data() {
    if !on_cyrus("event_cyrus_rejects") {
        return;
    }
    let uid = unique_uid("invalid");
    let gw = start_gateway(config()).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let entity = create("v1", "alice", &[&uid], "20370814")
        .replace("DTEND:20370814T110000Z", "DTEND:20370814T100000Z");
    let r = cap_client::senddata(&mut s, &entity).await;
    eprintln!("CAP: {r:?}");
    let st = status_of(&r, &uid);
    assert!(
        st.starts_with("REQUEST-STATUS:3.1;The calendar server refused the data: ")
            && st.contains("CALDAV:valid-calendar-data"),
        "{st}"
    );
    cap_client::noop(&mut s).await;
    assert_eq!(count("alice", &uid).await, 0);
}

/// Was a bug (CIP, `src/cip/reply.rs` `error`): CIP answers every upstream 403 with `NO 002 The
/// calendar server refused access` — code 002 is "not allowed by access control" (cip-00
/// §1.4) — also when Cyrus refused the *data* with a CalDAV precondition, which CAP's
/// `status.rs` tells apart:
/// - an event that ends where it starts: Cyrus 403 `CALDAV:valid-calendar-data` ("DTEND must
///   occur after DTSTART"); CAP says `3.1`, CIP should say `NO 001` (bad parameters);
/// - a UID alice already has in another calendar: Cyrus 403
///   `CALDAV:unique-scheduling-object-resource`; CAP says `8.5` UID in use, CIP should say
///   so too (`NO 000 …` like any UID in use), not that alice lacks rights she has.
///
/// Nothing is stored in either case (checked first: that part holds).
#[tokio::test]
async fn cip_sendevent_refused_for_its_data_says_so() {
    if !on_cyrus("cip_sendevent_refused_for_its_data") {
        return;
    }
    let gw = start_gateway(config()).await;
    let mut c = LineClient::logged_in(gw.cip_addr.unwrap(), "alice").await;

    let invalid = unique_uid("invalid-cip");
    let mut event = cip_sendevent(&invalid, 1, "20370815", &["bob@example.com"]);
    for l in &mut event {
        if l.starts_with("DTEND:") {
            *l = "DTEND:20370815T100000Z".into();
        }
    }
    let invalid_reply = c.command(&event).await;
    c.noop().await;

    let cal = TempCalendar::new("uid-cip").await;
    let in_use = unique_uid("in-use-cip");
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let r =
        cap_client::senddata(&mut s, &create("c1", &cal.target(), &[&in_use], "20370815")).await;
    assert_eq!(
        status_of(&r, &in_use),
        "REQUEST-STATUS:2.0;Success",
        "{r:?}"
    );
    let in_use_reply = c
        .command(&cip_sendevent(&in_use, 1, "20370815", &["bob@example.com"]))
        .await;
    c.noop().await;
    eprintln!("CIP: {invalid_reply:?} {in_use_reply:?}");

    for uid in [&invalid, &in_use] {
        assert_eq!(count("alice", uid).await, 0);
        assert_eq!(count("bob", uid).await, 0);
    }
    assert_eq!(objects_in(&cal.url, "alice", &in_use).await.len(), 1);
    let mut wrong = Vec::new();
    if !(invalid_reply.len() == 1 && invalid_reply[0].starts_with("NO 001 ")) {
        wrong.push(format!("invalid data: {invalid_reply:?}, expected NO 001"));
    }
    if !(in_use_reply.len() == 1
        && in_use_reply[0].starts_with("NO 000 ")
        && in_use_reply[0].contains("in use"))
    {
        wrong.push(format!(
            "UID in another calendar: {in_use_reply:?}, expected NO 000 … in use …"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("; "));
}

/// A TARGET calendar that does not exist: CREATE, READ and DELETE each say `6.1` (not found)
/// at the calendar level, and the CREATE does not make the calendar (nor an object) appear.
#[tokio::test]
async fn missing_calendar_is_not_found_and_is_not_created() {
    let name = unique_calendar("missing");
    let target = format!("alice/{name}");
    let uid = unique_uid("missing");
    let gw = start_gateway(config()).await;
    let mut s = cap_client::logged_in(gw.cap_addr.unwrap(), ALICE).await;
    for (what, entity) in [
        ("CREATE", create("n1", &target, &[&uid], "20370816")),
        ("READ", read("n2", &target, &[&uid])),
        ("DELETE", delete("n3", &target, &[&uid])),
    ] {
        let r = cap_client::senddata(&mut s, &entity).await;
        eprintln!("{what}: {r:?}");
        assert!(r[0].starts_with("2.0 n"), "{r:?}");
        let text = unfolded(&r);
        let st = text
            .lines()
            .find(|l| l.starts_with("REQUEST-STATUS:"))
            .unwrap_or_else(|| panic!("{what} has a status: {text}"));
        assert!(st.starts_with("REQUEST-STATUS:6.1;"), "{what}: {st}");
        assert!(uids_in(&r).iter().all(|u| u == &uid), "{r:?}");
    }
    cap_client::noop(&mut s).await;
    let url = home("alice").await.join(&format!("{name}/")).unwrap();
    let err = client()
        .propfind(
            &url,
            calgate::caldav::Depth::Zero,
            &[RESOURCETYPE],
            &creds("alice"),
        )
        .await
        .expect_err("no such calendar upstream");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(count("alice", &uid).await, 0);
}
