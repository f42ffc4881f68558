//! CAP SENDDATA against the real upstream: calendars (CREATE of a VCALENDAR, DELETE and MOVE of
//! calendars) and the iTIP methods (PUBLISH, ADD, CANCEL, REPLY, REFRESH/COUNTER/DECLINECOUNTER,
//! VFREEBUSY), each replayed from its transcript under `protocols/cap/transcripts/` and then
//! checked by reading the upstream directly. (tests/cap.rs checks that every transcript has a
//! test in one of the two files.)

mod common;

use calgate::caldav::multistatus::{CALDAV, DAV};
use calgate::caldav::request::{DISPLAYNAME, RESOURCETYPE};
use calgate::caldav::{CalendarObject, Depth, QueryFilter, WriteCondition};
use common::transcript;
use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// One gateway shared by the tests of this binary (CAP only).
fn gateway() -> SocketAddr {
    static GW: OnceLock<calgate::server::Running> = OnceLock::new();
    GW.get_or_init(|| {
        let mut c = config();
        c.cip.enabled = false;
        c.auth.failure_delay_ms = 10;
        spawn_gateway(c)
    })
    .cap_addr
    .expect("CAP enabled")
}

/// `${UID}`, `${UID2}`, `${UID3}`: unique per replay, as [`transcript::vars`] makes them, but
/// short and of one fixed length (`cg<nnn>-` and 12 hex digits). They name calendars too, and
/// REQUEST-STATUS texts that quote a CalID are folded at 75 octets: with a fixed length every
/// replay folds them at the same place, so the transcripts can show the folded lines exactly.
/// The digits are this process's start time in nanoseconds (mixed with its id) plus a
/// counter, so they differ between replays, processes and runs.
fn vars(tag: &str) -> HashMap<String, String> {
    static BASE: OnceLock<u64> = OnceLock::new();
    static N: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 40)
    });
    let next = || {
        let n = base.wrapping_add(N.fetch_add(1, Ordering::Relaxed)) & 0xffff_ffff_ffff;
        format!("cg{tag}-{n:012x}")
    };
    ["UID", "UID2", "UID3"]
        .into_iter()
        .map(|k| (k.to_owned(), next()))
        .collect()
}

async fn replay(name: &str) -> (Vec<String>, HashMap<String, String>) {
    let vars = vars(name.split('-').next().unwrap_or("cap"));
    let seen = replay_with(name, &vars).await;
    (seen, vars)
}

/// Replays `name` with the variables of an earlier replay (a second session in the same test).
async fn replay_with(name: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let t = transcript::load_in("cap", name, vars);
    transcript::replay(&t, gateway()).await
}

/// The tests that make the upstream schedule for bob take turns on DAViCal: 1.1.12 deadlocks in
/// its database when two of alice's scheduling PUTs for the same attendee run at once (PostgreSQL
/// 40P01, answered 500), a limitation of the upstream, not of the gateway. On Cyrus they run in
/// parallel.
async fn scheduling_turn() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static TURN: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    match server() {
        Server::Davical => Some(TURN.get_or_init(Default::default).lock().await),
        Server::Cyrus => None,
    }
}

/// The calendars in `user`'s calendar home, as PROPFIND shows them to the owner: the last path
/// segment and the displayname.
async fn calendars(user: &str) -> Vec<(String, Option<String>)> {
    let d = discovery();
    let who = creds(user);
    let p = d.principal(&who).await.expect("principal");
    let ms = d
        .client()
        .propfind(&p.home, Depth::One, &[RESOURCETYPE, DISPLAYNAME], &who)
        .await
        .expect("PROPFIND of the calendar home");
    ms.responses
        .iter()
        .filter(|r| r.is_resource_type(CALDAV, "calendar"))
        .map(|r| {
            let name = r
                .href
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let display = r.prop(DAV, "displayname").map(|p| p.text.clone());
            (name, display)
        })
        .collect()
}

/// Deletes `user`'s calendar `name` directly upstream (cleanup).
async fn remove_calendar(user: &str, name: &str) {
    let d = discovery();
    let who = creds(user);
    let p = d.principal(&who).await.expect("principal");
    let url = p.home.join(&format!("{name}/")).expect("calendar URL");
    d.client()
        .delete(&url, None, &who)
        .await
        .unwrap_or_else(|e| panic!("deleting {url}: {e}"));
}

/// Deletes, when dropped, the calendars of `user` a test may have left behind: those named in
/// `names` and those whose displayname is in `displaynames` (a transcript that fails half-way
/// stops before its own DELETE). Runs on a thread of its own: a `Drop` cannot await.
struct LeftBehind {
    user: &'static str,
    names: Vec<String>,
    displaynames: Vec<String>,
}

impl Drop for LeftBehind {
    fn drop(&mut self) {
        let (user, names, displaynames) = (
            self.user,
            std::mem::take(&mut self.names),
            std::mem::take(&mut self.displaynames),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for (name, display) in calendars(user).await {
                    if names.contains(&name) || display.is_some_and(|d| displaynames.contains(&d)) {
                        remove_calendar(user, &name).await;
                    }
                }
            });
        })
        .join();
    }
}

/// The objects with `uid` in `who`'s scheduling inbox, read directly from the upstream.
async fn inbox_with_uid(who: &str, uid: &str) -> Vec<CalendarObject> {
    let d = discovery();
    let p = d.principal(&creds(who)).await.expect("principal");
    let inbox = p.inbox.clone().expect("a scheduling inbox");
    d.client()
        .calendar_query(
            &inbox,
            &QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: uid.to_owned(),
            },
            &creds(who),
        )
        .await
        .expect("calendar-query on the inbox")
}

/// The ATTENDEE line of `who` in an object's data, unfolded.
fn attendee_line(data: &str, who: &str) -> Option<String> {
    unfold(data)
        .lines()
        .find(|l| l.starts_with("ATTENDEE") && l.to_ascii_lowercase().contains(who))
        .map(str::to_owned)
}

/// Replays 089 (alice invites bob) and waits for the invitation to reach bob's calendar and
/// inbox; the replay's variables (`UID` is the invitation's).
async fn invite_bob() -> HashMap<String, String> {
    let (_, vars) = replay("089-itip-invite-bob.txt").await;
    let uid = &vars["UID"];
    let delivered = eventually(|| async {
        (find("bob", uid).await.is_some() && !inbox_with_uid("bob", uid).await.is_empty())
            .then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "the upstream delivered {uid} to bob's calendar and inbox; alice's copy: {:?}",
        find("alice", uid).await.map(|o| o.data)
    );
    vars
}

#[tokio::test]
async fn t080_create_calendar() {
    let vars = vars("080");
    let (named, generated_display) = (&vars["UID"], format!("Team, {}", vars["UID2"]));
    let _cleanup = LeftBehind {
        user: "alice",
        names: vec![named.clone()],
        displaynames: vec![generated_display.clone()],
    };
    let seen = replay_with("080-create-calendar.txt", &vars).await;
    let text = unfolded(&seen);
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("CALID:cap://example.com/alice/cal-"))
        .map(|rest| format!("cal-{rest}"))
        .expect("the generated calendar's CALID");
    assert!(
        text.contains(&format!("RELCALID:alice/{generated}")),
        "the generated RELCALID is returned: {text}"
    );

    let cals = calendars("alice").await;
    // NAME became the displayname (TEXT: "\," is a comma).
    assert!(
        cals.contains(&(generated.clone(), Some(generated_display.clone()))),
        "{generated} with displayname {generated_display:?} in {cals:?}"
    );
    // The named calendar was created and deleted again; the second CREATE made no other.
    assert!(
        !cals
            .iter()
            .any(|(n, d)| n == named || d.as_deref().is_some_and(|d| d.contains(named.as_str()))),
        "{named} is gone: {cals:?}"
    );
    // The default calendar is still there.
    let d = discovery();
    let p = d.principal(&creds("alice")).await.unwrap();
    let ms = d
        .client()
        .propfind(
            &p.default_calendar,
            Depth::Zero,
            &[RESOURCETYPE],
            &creds("alice"),
        )
        .await
        .expect("alice's default calendar");
    assert!(ms.responses[0].is_resource_type(CALDAV, "calendar"));

    remove_calendar("alice", &generated).await;
    assert!(
        !calendars("alice")
            .await
            .iter()
            .any(|(n, _)| *n == generated)
    );
}

#[tokio::test]
async fn t081_move_calendar() {
    let vars = vars("081");
    let name = &vars["UID"];
    let _cleanup = LeftBehind {
        user: "alice",
        names: vec![name.clone()],
        displaynames: Vec::new(),
    };
    let seen = replay_with("081-move-calendar.txt", &vars).await;
    let text = unfolded(&seen);
    assert!(
        text.contains("HTTP 403") && text.contains("it stays where it was"),
        "the upstream's refusal is reported: {text}"
    );
    // Still alice's, with its displayname; nothing arrived in bob's home.
    let alices = calendars("alice").await;
    assert!(
        alices.contains(&(name.clone(), Some(format!("Moving {name}")))),
        "{name} is still in alice's home: {alices:?}"
    );
    let bobs = calendars("bob").await;
    assert!(
        !bobs.iter().any(|(n, _)| n == name),
        "nothing moved to bob: {bobs:?}"
    );
    remove_calendar("alice", name).await;
}

#[tokio::test]
async fn t082_itip_publish() {
    let (_, vars) = replay("082-itip-publish.txt").await;
    let stored = objects_with_uid("alice", &vars["UID"]).await;
    assert_eq!(stored.len(), 1, "one copy in alice's calendar");
    let data = unfold(&stored[0].data);
    assert!(data.contains("SUMMARY:Office hours (longer)"), "{data}");
    assert!(data.contains("SEQUENCE:1"), "{data}");
    assert!(data.contains("DTEND:20320308T110000Z"), "{data}");
    assert!(
        !data.lines().any(|l| l.starts_with("METHOD")),
        "a stored calendar object has no METHOD (RFC 4791 §4.1): {data}"
    );
    assert_eq!(count("alice", &vars["UID2"]).await, 0);
}

#[tokio::test]
async fn t083_itip_add_cancel() {
    let _turn = scheduling_turn().await;
    let (_, vars) = replay("083-itip-add-cancel.txt").await;
    let uid = &vars["UID"];
    let alice = unfold(&find("alice", uid).await.expect("alice's copy").data);
    assert!(alice.contains("EXDATE:20320313T080000Z"), "{alice}");
    match server() {
        Server::Cyrus => {
            assert!(alice.contains("RDATE:20320318T080000Z"), "{alice}");
            assert!(alice.contains("RECURRENCE-ID:20320318T080000Z"), "{alice}");
            assert!(alice.contains("SUMMARY:Stand-up (extra)"), "{alice}");
            assert!(alice.contains("SEQUENCE:2"), "ADD and CANCEL: {alice}");
        }
        Server::Davical => {
            // The ADD failed upstream and wrote nothing.
            assert!(!alice.contains("RDATE"), "{alice}");
            assert!(!alice.contains("RECURRENCE-ID"), "{alice}");
            assert!(alice.contains("SEQUENCE:1"), "CANCEL only: {alice}");
        }
    }
    // bob's copy follows.
    let bob = eventually(|| async {
        let data = unfold(&find("bob", uid).await?.data);
        let done = match server() {
            Server::Cyrus => data.contains("EXDATE:20320313T080000Z"),
            Server::Davical => data.contains("SEQUENCE:1"),
        };
        done.then_some(data)
    })
    .await;
    let Some(bob) = bob else {
        panic!(
            "bob's copy was not updated; it is {:?}",
            find("bob", uid).await.map(|o| o.data)
        );
    };
    match server() {
        Server::Cyrus => {
            assert!(bob.contains("RDATE:20320318T080000Z"), "{bob}");
            assert!(bob.contains("SUMMARY:Stand-up (extra)"), "{bob}");
        }
        // DAViCal sends bob the new SEQUENCE but leaves the EXDATE out of what it sends: his
        // copy still has the cancelled instance (an upstream limitation calgate cannot fix:
        // alice's copy, which it wrote, is right).
        Server::Davical => assert!(!bob.contains("EXDATE"), "{bob}"),
    }

    replay_with("088-itip-cancel-event.txt", &vars).await;
    assert_eq!(count("alice", uid).await, 0, "alice's copy is deleted");
    match server() {
        Server::Cyrus => {
            let cancelled = eventually(|| async {
                let data = unfold(&find("bob", uid).await?.data);
                data.contains("STATUS:CANCELLED").then_some(data)
            })
            .await;
            assert!(
                cancelled.is_some(),
                "Cyrus marks bob's copy cancelled: {:?}",
                find("bob", uid).await.map(|o| o.data)
            );
        }
        Server::Davical => {
            let removed =
                eventually(|| async { (count("bob", uid).await == 0).then_some(()) }).await;
            assert!(removed.is_some(), "DAViCal removes bob's copy");
            let cancel = inbox_with_uid("bob", uid).await;
            assert!(
                cancel.iter().any(|o| o.data.contains("METHOD:CANCEL")),
                "the CANCEL is in bob's inbox: {cancel:?}"
            );
        }
    }
}

#[tokio::test]
async fn t084_itip_reply() {
    let _turn = scheduling_turn().await;
    let vars = invite_bob().await;
    let uid = &vars["UID"];
    replay_with("084-itip-reply.txt", &vars).await;
    let accepted = |data: &str| {
        attendee_line(data, "mailto:bob@example.com")
            .is_some_and(|l| l.contains("PARTSTAT=ACCEPTED"))
    };
    let bob = find("bob", uid).await.expect("bob's copy");
    assert!(accepted(&bob.data), "bob's copy: {}", bob.data);
    let alice = eventually(|| async {
        let o = find("alice", uid).await?;
        accepted(&o.data).then_some(o)
    })
    .await;
    assert!(
        alice.is_some(),
        "the upstream recorded bob's answer in alice's copy: {:?}",
        find("alice", uid).await.map(|o| o.data)
    );
    assert_eq!(count("bob", &vars["UID2"]).await, 0);
}

#[tokio::test]
async fn t085_itip_unsupported() {
    let (_, vars) = replay("085-itip-unsupported.txt").await;
    for uid in [&vars["UID"], &vars["UID2"]] {
        for who in ["alice", "bob"] {
            assert_eq!(count(who, uid).await, 0, "nothing stored for {who}");
            assert!(
                inbox_with_uid(who, uid).await.is_empty(),
                "nothing sent to {who}"
            );
        }
    }
}

#[tokio::test]
async fn t086_itip_freebusy() {
    let d = discovery();
    let bob = creds("bob");
    let calendar = d.principal(&bob).await.unwrap().default_calendar.clone();
    // The window is this test's alone; clear what an earlier, interrupted run may have left.
    let window = QueryFilter::TimeRange {
        component: "VEVENT".into(),
        start: Some("20320615T000000Z".into()),
        end: Some("20320616T000000Z".into()),
    };
    for old in d
        .client()
        .calendar_query(&calendar, &window, &bob)
        .await
        .unwrap()
    {
        d.client().delete(&old.url, None, &bob).await.unwrap();
    }
    let busy = unique_uid("086-busy");
    let url = calendar.join(&format!("{busy}.ics")).unwrap();
    let ics = event(&busy, "20320615T100000Z", "20320615T113000Z", None, &[]);
    d.client()
        .put(&url, ics, WriteCondition::Create, &bob)
        .await
        .expect("bob's busy event");

    let (_, vars) = replay("086-itip-freebusy.txt").await;
    // The question itself is not stored anywhere.
    assert_eq!(count("alice", &vars["UID"]).await, 0);
    d.client().delete(&url, None, &bob).await.unwrap();
}

#[tokio::test]
async fn t087_read_scheduled() {
    let _turn = scheduling_turn().await;
    let vars = invite_bob().await;
    replay_with("087-read-scheduled.txt", &vars).await;
}

#[tokio::test]
async fn t090_itip_cancel_by_attendee() {
    let _turn = scheduling_turn().await;
    let vars = invite_bob().await;
    let uid = &vars["UID"];
    let before = find("bob", uid).await.expect("bob's copy");
    replay_with("090-itip-cancel-by-attendee.txt", &vars).await;
    let after = find("bob", uid).await.expect("bob's copy is still there");
    assert_eq!(after.etag, before.etag, "bob's copy was not written");
    assert_eq!(after.data, before.data);
    let alice = find("alice", uid).await.expect("alice's copy");
    let bob_line = attendee_line(&alice.data, "mailto:bob@example.com").expect("bob invited");
    assert!(
        bob_line.contains("PARTSTAT=NEEDS-ACTION"),
        "bob has not answered: {bob_line}"
    );
}
