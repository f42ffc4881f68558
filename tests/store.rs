//! The calendar store of CAP SENDDATA (`translate::store`) against the real upstream (Cyrus by
//! default, DAViCal with `CALGATE_UPSTREAM=davical`): objects created, found, updated and
//! deleted with preconditions, scheduled entries read from the inbox, calendars created,
//! deleted and moved. Every test uses its own UIDs and calendar names and removes the
//! calendars it creates, so the tests run in parallel with each other and with other suites.

mod common;

use calgate::caldav::{CalendarObject, WriteCondition};
use calgate::ical::component::Component;
use calgate::ical::contentline::ContentLine;
use calgate::ical::datetime::DateTime;
use calgate::translate::calid::CalId;
use calgate::translate::store::{Entries, Selection, StoredObject};
use calgate::translate::{Gateway, Identity, TranslateError};
use common::*;

fn gateway() -> Gateway {
    Gateway::new(&config()).expect("gateway")
}

fn user(name: &str) -> Identity {
    Identity::User {
        creds: creds(name),
        address: format!("{name}@example.com"),
    }
}

/// The service account, which may write every user's default calendar (see
/// `protocols/upstreams.md`, "Service account").
fn service() -> Identity {
    Identity::User {
        creds: calgate::caldav::Credentials::new("calgate", "calgatepw"),
        address: "calgate@example.com".into(),
    }
}

fn home(user: &str) -> CalId {
    CalId {
        user: user.into(),
        calendar: None,
    }
}

fn named(user: &str, calendar: &str) -> CalId {
    CalId {
        user: user.into(),
        calendar: Some(calendar.into()),
    }
}

fn parse(ics: &str) -> Component {
    Component::parse(ics).expect("test data parses")
}

fn utc(value: &str) -> DateTime {
    DateTime::parse(value, None).unwrap()
}

fn by_uid(uid: &str) -> Selection {
    Selection {
        entries: Entries::Booked,
        component: Some("VEVENT".into()),
        uid: Some(uid.into()),
        start: None,
        end: None,
    }
}

fn summary(c: &Component) -> String {
    c.find("VEVENT")
        .and_then(|e| e.value("SUMMARY"))
        .unwrap_or_default()
        .to_owned()
}

/// A copy of the VCALENDAR with the VEVENT's `name` set to `value`.
fn with(c: &Component, name: &str, value: &str) -> Component {
    let mut c = c.clone();
    c.find_mut("VEVENT")
        .expect("a VEVENT")
        .set_property(ContentLine::new(name, value));
    c
}

/// The only object with `uid` in `calid`, as `who` finds it through the store.
async fn the_one(gw: &Gateway, who: &Identity, calid: &CalId, uid: &str) -> StoredObject {
    let mut found = gw
        .find_objects(who, calid, &by_uid(uid))
        .await
        .expect("find by UID");
    assert_eq!(found.len(), 1, "exactly one object with UID {uid}");
    found.pop().unwrap()
}

/// A new event in alice's default calendar, created through the store (its UID made from
/// `tag`; 10:00 to 11:00 UTC on `day`): the UID and the object as the store finds it.
async fn alices_new_event(gw: &Gateway, tag: &str, day: &str) -> (String, StoredObject) {
    let alice = user("alice");
    let uid = unique_uid(tag);
    let ics = event(
        &uid,
        &format!("{day}T100000Z"),
        &format!("{day}T110000Z"),
        None,
        &[],
    );
    gw.create_object(&alice, &home("alice"), &parse(&ics))
        .await
        .expect("create");
    let found = the_one(gw, &alice, &home("alice"), &uid).await;
    (uid, found)
}

/// The name of a user's default calendar on the upstream under test.
fn default_calendar() -> &'static str {
    match server() {
        Server::Cyrus => "Default",
        Server::Davical => "calendar",
    }
}

/// Changes an object behind the store's back: a direct conditional PUT of the stored copy with
/// DESCRIPTION set, as another client would.
async fn change_behind_the_back(who: &str, url: &reqwest::Url, description: &str) {
    let c = client();
    let obj: CalendarObject = c.get(url, &creds(who)).await.expect("GET");
    let changed = with(&parse(&obj.data), "DESCRIPTION", description);
    c.put(
        url,
        changed.to_ics(),
        WriteCondition::for_object(&obj).expect("a validator"),
        &creds(who),
    )
    .await
    .expect("concurrent PUT");
}

/// A calendar name no other test or run uses (no `.`: Cyrus refuses it in collection names).
fn unique_calendar(tag: &str) -> String {
    unique_uid(tag).replace("calgate-test-", "cal-")
}

#[tokio::test]
async fn create_then_find_by_uid_and_by_time_range() {
    let gw = gateway();
    let alice = user("alice");
    let uid = unique_uid("store-find");
    let ics = event(&uid, "20300204T100000Z", "20300204T110000Z", None, &[]);
    let url = gw
        .create_object(&alice, &home("alice"), &parse(&ics))
        .await
        .expect("create");
    assert!(url.path().ends_with(".ics"), "{url}");

    let found = the_one(&gw, &alice, &home("alice"), &uid).await;
    assert_eq!(found.url, url);
    assert_eq!(summary(&found.calendar), format!("calgate test {uid}"));
    assert!(found.etag.is_some() || found.schedule_tag.is_some());

    // Any component type: the UID is applied by the store.
    let any = Selection {
        component: None,
        ..by_uid(&uid)
    };
    let all = gw.find_objects(&alice, &home("alice"), &any).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");

    // The same calendar named explicitly, and by address.
    the_one(&gw, &alice, &named("alice", default_calendar()), &uid).await;
    the_one(&gw, &alice, &home("alice@example.com"), &uid).await;

    // Time ranges: overlapping (either bound open) finds it, a range next to it does not.
    let range = |start: Option<&str>, end: Option<&str>| Selection {
        entries: Entries::Booked,
        component: Some("VEVENT".into()),
        uid: None,
        start: start.map(utc),
        end: end.map(utc),
    };
    let urls = |v: Vec<StoredObject>| v.into_iter().map(|o| o.url).collect::<Vec<_>>();
    for (start, end) in [
        (Some("20300204T103000Z"), Some("20300204T120000Z")),
        (None, Some("20300204T100100Z")),
        (Some("20300204T105900Z"), None),
    ] {
        let hits = gw
            .find_objects(&alice, &home("alice"), &range(start, end))
            .await
            .unwrap();
        assert!(urls(hits).contains(&url), "{start:?}..{end:?}");
    }
    // Right after it: no overlap (RFC 4791 §9.9). DAViCal also returns an event that ends
    // exactly where the range starts, so the range begins a minute later.
    let after_it = gw
        .find_objects(
            &alice,
            &home("alice"),
            &range(Some("20300204T110100Z"), Some("20300204T120000Z")),
        )
        .await
        .unwrap();
    assert!(!urls(after_it).contains(&url));
    if server() == Server::Cyrus {
        let next_to_it = gw
            .find_objects(
                &alice,
                &home("alice"),
                &range(Some("20300204T110000Z"), Some("20300204T120000Z")),
            )
            .await
            .unwrap();
        assert!(!urls(next_to_it).contains(&url));
    }

    gw.delete_object(&alice, &found).await.expect("delete");
    assert!(
        gw.find_objects(&alice, &home("alice"), &by_uid(&uid))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn creating_a_uid_twice_is_exists_and_keeps_the_first_copy() {
    let gw = gateway();
    let alice = user("alice");
    let uid = unique_uid("store-twice");
    let first = parse(&event(
        &uid,
        "20300205T100000Z",
        "20300205T110000Z",
        None,
        &[],
    ));
    gw.create_object(&alice, &home("alice"), &first)
        .await
        .expect("create");
    let second = with(&first, "SUMMARY", "the second copy");
    match gw.create_object(&alice, &home("alice"), &second).await {
        Err(TranslateError::Exists(text)) => {
            assert!(text.contains(&uid), "{text}");
            assert!(text.contains("cap://example.com/alice"), "{text}");
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    let stored = the_one(&gw, &alice, &home("alice"), &uid).await;
    assert_eq!(summary(&stored.calendar), format!("calgate test {uid}"));

    // The UID under another resource name (as another client names its objects): DAViCal
    // would store a second copy, so the store asks for the UID first.
    let other = unique_uid("store-twice-other");
    let beside = unique_uid("store-twice-beside");
    let d = discovery();
    let pa = d.principal(&creds("alice")).await.unwrap();
    let other_url = pa.default_calendar.join(&format!("{other}.ics")).unwrap();
    d.client()
        .put(
            &other_url,
            event(&other, "20300205T120000Z", "20300205T130000Z", None, &[]),
            WriteCondition::Create,
            &creds("alice"),
        )
        .await
        .unwrap();
    let renamed = parse(
        &event(&other, "20300205T120000Z", "20300205T130000Z", None, &[]).replace(
            &format!("SUMMARY:calgate test {other}"),
            &format!("SUMMARY:{beside}"),
        ),
    );
    assert!(matches!(
        gw.create_object(&alice, &home("alice"), &renamed).await,
        Err(TranslateError::Exists(_))
    ));
    assert_eq!(count("alice", &other).await, 1);
    d.client()
        .delete(&other_url, None, &creds("alice"))
        .await
        .unwrap();

    // The same UID in another calendar of the same home: Cyrus keeps each UID once per home
    // (403 unique-scheduling-object-resource, RFC 6638 §3.2.4.1); DAViCal stores it.
    let name = unique_calendar("store-twice");
    gw.create_calendar(&alice, "alice", &name, None)
        .await
        .expect("create calendar");
    let elsewhere = gw
        .create_object(&alice, &named("alice", &name), &second)
        .await;
    match (server(), &elsewhere) {
        (Server::Cyrus, Err(TranslateError::Exists(text))) => {
            assert!(text.contains("another calendar of alice"), "{text}");
            assert!(text.contains(&uid), "{text}");
        }
        (Server::Davical, Ok(_)) => {}
        (_, other) => panic!("unexpected answer: {other:?}"),
    }
    let stored_again = the_one(&gw, &alice, &home("alice"), &uid).await;
    assert_eq!(
        summary(&stored_again.calendar),
        format!("calgate test {uid}")
    );

    gw.delete_calendar(&alice, &named("alice", &name))
        .await
        .expect("delete calendar");
    gw.delete_object(&alice, &stored_again)
        .await
        .expect("delete");
}

#[tokio::test]
async fn objects_without_a_uid_are_bad_input() {
    let gw = gateway();
    let no_uid = parse(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART:20300101T100000Z\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    assert!(matches!(
        gw.create_object(&user("alice"), &home("alice"), &no_uid)
            .await,
        Err(TranslateError::BadInput(_))
    ));
}

#[tokio::test]
async fn updates_write_changes_and_skip_non_changes() {
    let gw = gateway();
    let alice = user("alice");
    let (uid, obj) = alices_new_event(&gw, "store-update", "20300206").await;

    let done = gw
        .update_object(&alice, &obj, &|c| Ok(Some(with(c, "SUMMARY", "changed"))))
        .await
        .expect("update");
    assert!(done.written);
    assert_eq!(summary(&done.calendar), "changed");
    let stored = the_one(&gw, &alice, &home("alice"), &uid).await;
    assert_eq!(summary(&stored.calendar), "changed");

    let same = gw
        .update_object(&alice, &stored, &|_| Ok(None))
        .await
        .expect("no change");
    assert!(!same.written);
    assert_eq!(summary(&same.calendar), "changed");
    let after = the_one(&gw, &alice, &home("alice"), &uid).await;
    assert_eq!(after.etag, stored.etag, "nothing was written");

    // A change that cannot be applied is reported as it is, nothing written.
    let refused = gw
        .update_object(&alice, &after, &|_| {
            Err(TranslateError::BadInput("no such instance".into()))
        })
        .await;
    assert!(matches!(refused, Err(TranslateError::BadInput(t)) if t == "no such instance"));

    gw.delete_object(&alice, &after).await.unwrap();
}

#[tokio::test]
async fn a_stale_tag_is_re_read_and_the_change_re_applied() {
    let gw = gateway();
    let alice = user("alice");
    let (uid, read) = alices_new_event(&gw, "store-stale", "20300207").await;

    // Another client changes it after the store read it: the first PUT gets 412.
    change_behind_the_back("alice", &read.url, "written by someone else").await;

    let calls = std::sync::atomic::AtomicUsize::new(0);
    let done = gw
        .update_object(&alice, &read, &|c| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(with(c, "SUMMARY", "ours")))
        })
        .await
        .expect("update after a re-read");
    assert!(done.written);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    let stored = the_one(&gw, &alice, &home("alice"), &uid).await;
    let event = stored.calendar.find("VEVENT").unwrap();
    assert_eq!(event.value("SUMMARY"), Some("ours"));
    assert_eq!(
        event.value("DESCRIPTION"),
        Some("written by someone else"),
        "the concurrent change is kept: ours was applied to the re-read copy"
    );
    gw.delete_object(&alice, &stored).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stale_tag_is_a_conflict_and_nothing_is_written() {
    let gw = gateway();
    let alice = user("alice");
    let (uid, read) = alices_new_event(&gw, "store-conflict", "20300208").await;
    let url = read.url.clone();

    // Every time the store applies its change, another client writes first.
    let rounds = std::sync::atomic::AtomicUsize::new(0);
    let outcome = gw
        .update_object(&alice, &read, &|c| {
            let n = rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let url = url.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(change_behind_the_back(
                        "alice",
                        &url,
                        &format!("concurrent {n}"),
                    ))
            })
            .join()
            .unwrap();
            Ok(Some(with(c, "SUMMARY", "ours")))
        })
        .await;
    match outcome {
        Err(TranslateError::Conflict(text)) => assert!(text.contains("nothing"), "{text}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(rounds.load(std::sync::atomic::Ordering::SeqCst), 2);
    let stored = the_one(&gw, &alice, &home("alice"), &uid).await;
    let event = stored.calendar.find("VEVENT").unwrap();
    assert_eq!(event.value("DESCRIPTION"), Some("concurrent 2"));
    assert_ne!(event.value("SUMMARY"), Some("ours"));
    gw.delete_object(&alice, &stored).await.unwrap();
}

#[tokio::test]
async fn deletes_are_conditional() {
    let gw = gateway();
    let alice = user("alice");
    let (uid, read) = alices_new_event(&gw, "store-delete", "20300209").await;

    change_behind_the_back("alice", &read.url, "changed meanwhile").await;
    match gw.delete_object(&alice, &read).await {
        Err(TranslateError::Conflict(text)) => assert!(text.contains("nothing"), "{text}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let current = the_one(&gw, &alice, &home("alice"), &uid).await;
    gw.delete_object(&alice, &current)
        .await
        .expect("delete with the current tag");
    assert_eq!(count("alice", &uid).await, 0);
    assert!(matches!(
        gw.delete_object(&alice, &current).await,
        Err(TranslateError::NotFound(_) | TranslateError::Conflict(_))
    ));
}

#[tokio::test]
async fn unknown_calendars_and_users_are_not_found() {
    let gw = gateway();
    let alice = user("alice");
    let missing = named("alice", &unique_calendar("store-missing"));
    match gw.find_objects(&alice, &missing, &by_uid("x")).await {
        Err(TranslateError::NotFound(text)) => assert!(text.contains("No calendar"), "{text}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        gw.calendar_url(&alice, &missing).await,
        Err(TranslateError::NotFound(_))
    ));
    assert!(matches!(
        gw.find_objects(&alice, &home("nobody@elsewhere.example"), &by_uid("x"))
            .await,
        Err(TranslateError::NotFound(_))
    ));
    // The scheduling inbox is a collection, but not a calendar.
    let inbox = match server() {
        Server::Cyrus => "Inbox",
        Server::Davical => ".in",
    };
    assert!(matches!(
        gw.calendar_url(&alice, &named("alice", inbox)).await,
        Err(TranslateError::NotFound(_))
    ));
}

/// Anonymous and peer sessions have no upstream credentials of their own, and the store never
/// lends them the service account: every operation is refused.
#[tokio::test]
async fn anonymous_and_peer_sessions_have_no_credentials_for_the_store() {
    let gw = gateway();
    let ics = parse(&event(
        "x",
        "20300210T100000Z",
        "20300210T110000Z",
        None,
        &[],
    ));
    // An object as a find would have returned it (never read: nobody may reach it).
    let object = StoredObject {
        url: reqwest::Url::parse(&format!("{}calgate-never-read.ics", upstream().url)).unwrap(),
        etag: Some("\"1\"".into()),
        schedule_tag: None,
        calendar: ics.clone(),
    };
    for who in [
        Identity::Anonymous,
        Identity::Peer {
            id: "a.example".into(),
        },
    ] {
        let denied =
            |r: &Result<(), TranslateError>| matches!(r, Err(TranslateError::AccessDenied(_)));
        assert!(denied(
            &gw.calendar_url(&who, &home("alice")).await.map(|_| ())
        ));
        assert!(denied(
            &gw.find_objects(&who, &home("alice"), &by_uid("x"))
                .await
                .map(|_| ())
        ));
        assert!(denied(
            &gw.create_object(&who, &home("alice"), &ics)
                .await
                .map(|_| ())
        ));
        assert!(denied(
            &gw.create_calendar(&who, "alice", "x", None)
                .await
                .map(|_| ())
        ));
        assert!(denied(
            &gw.delete_calendar(&who, &named("alice", "x")).await
        ));
        assert!(denied(
            &gw.move_calendar(&who, &named("alice", "x"), "bob")
                .await
                .map(|_| ())
        ));
        assert!(denied(
            &gw.update_object(&who, &object, &|c| Ok(Some(with(c, "SUMMARY", "x"))))
                .await
                .map(|_| ())
        ));
        assert!(denied(&gw.delete_object(&who, &object).await));
    }
}

#[tokio::test]
async fn calendars_are_created_refused_when_taken_and_deleted() {
    let gw = gateway();
    let alice = user("alice");
    // A name with a space: percent-encoded in the URL and in the CalID.
    let name = format!("Work {}", unique_calendar("store-cal"));
    let id = gw
        .create_calendar(&alice, "alice", &name, Some("Work & Play"))
        .await
        .expect("create calendar");
    assert_eq!(
        id,
        format!("cap://example.com/alice/{}", name.replace(' ', "%20"))
    );
    let calid = calgate::translate::calid::parse(&id, "example.com").unwrap();
    assert!(
        gw.find_objects(&alice, &calid, &by_uid("x"))
            .await
            .unwrap()
            .is_empty()
    );

    // An object in it, found there and not in the default calendar.
    let uid = unique_uid("store-cal-obj");
    let ics = event(&uid, "20300211T100000Z", "20300211T110000Z", None, &[]);
    gw.create_object(&alice, &calid, &parse(&ics))
        .await
        .unwrap();
    the_one(&gw, &alice, &calid, &uid).await;
    assert_eq!(count("alice", &uid).await, 0);

    match gw
        .create_calendar(&alice, "alice@example.com", &name, None)
        .await
    {
        Err(TranslateError::Exists(text)) => assert!(text.contains(&id), "{text}"),
        other => panic!("expected Exists, got {other:?}"),
    }
    // The default calendar's name is taken too.
    assert!(matches!(
        gw.create_calendar(&alice, "alice", default_calendar(), None)
            .await,
        Err(TranslateError::Exists(_))
    ));

    // The bare-user form names the default calendar, which is never deleted.
    match gw.delete_calendar(&alice, &home("alice")).await {
        Err(TranslateError::AccessDenied(text)) => {
            assert!(text.contains("default calendar"), "{text}");
            assert!(text.contains("alice/<calendar>"), "{text}");
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }

    gw.delete_calendar(&alice, &calid)
        .await
        .expect("delete calendar");
    assert!(matches!(
        gw.find_objects(&alice, &calid, &by_uid(&uid)).await,
        Err(TranslateError::NotFound(_))
    ));
    assert!(matches!(
        gw.delete_calendar(&alice, &calid).await,
        Err(TranslateError::NotFound(_))
    ));
}

#[tokio::test]
async fn bad_calendar_names_and_other_homes_are_refused() {
    let gw = gateway();
    let alice = user("alice");
    for bad in ["", "a/b", "..", "."] {
        assert!(
            matches!(
                gw.create_calendar(&alice, "alice", bad, None).await,
                Err(TranslateError::BadInput(_))
            ),
            "{bad:?}"
        );
    }
    // bob's home is closed to alice on both servers (Cyrus 403
    // calendar-collection-location-ok, DAViCal 403 need-privileges).
    let name = unique_calendar("store-other-home");
    match gw.create_calendar(&alice, "bob", &name, None).await {
        Err(TranslateError::AccessDenied(text)) => assert!(text.contains("alice"), "{text}"),
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn other_users_calendars_as_the_caller_reaches_them() {
    let gw = gateway();
    // alice has no rights on bob's calendar.
    assert!(matches!(
        gw.find_objects(&user("alice"), &home("bob"), &by_uid("x"))
            .await,
        Err(TranslateError::AccessDenied(_))
    ));
    // The service account has (Cyrus: through its shared view of bob's calendar).
    let svc = service();
    let uid = unique_uid("store-service");
    let ics = event(&uid, "20300212T100000Z", "20300212T110000Z", None, &[]);
    let url = gw
        .create_object(&svc, &home("bob"), &parse(&ics))
        .await
        .expect("the service account writes bob's calendar");
    assert_eq!(
        gw.calendar_url(&svc, &home("bob")).await.unwrap(),
        url.join("./").unwrap()
    );
    let found = the_one(&gw, &svc, &home("bob@example.com"), &uid).await;
    assert_eq!(found.url, url);
    // bob sees it in his own calendar.
    assert_eq!(count("bob", &uid).await, 1);
    // Scheduled entries are their owner's only.
    let scheduled = Selection {
        entries: Entries::Scheduled,
        ..by_uid(&uid)
    };
    match gw.find_objects(&svc, &home("bob"), &scheduled).await {
        Err(TranslateError::AccessDenied(text)) => assert!(text.contains("owner"), "{text}"),
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    gw.delete_object(&svc, &found).await.unwrap();
    assert_eq!(count("bob", &uid).await, 0);
}

#[tokio::test]
async fn scheduled_entries_are_read_from_the_owners_inbox() {
    let gw = gateway();
    let d = discovery();
    let alice = creds("alice");
    let pa = d.principal(&alice).await.unwrap();
    let uid = unique_uid("store-inbox");
    let url = pa.default_calendar.join(&format!("{uid}.ics")).unwrap();
    let ics = event(
        &uid,
        "20300213T100000Z",
        "20300213T110000Z",
        Some("alice@example.com"),
        &["bob@example.com"],
    );
    d.client()
        .put(&url, ics, WriteCondition::Create, &alice)
        .await
        .expect("alice invites bob");

    let bob = user("bob");
    let scheduled = Selection {
        entries: Entries::Scheduled,
        ..by_uid(&uid)
    };
    let found = eventually(|| async {
        let v = gw.find_objects(&bob, &home("bob"), &scheduled).await.ok()?;
        (!v.is_empty()).then_some(v)
    })
    .await
    .expect("the invitation reaches bob's inbox");
    assert_eq!(found.len(), 1, "{found:?}");
    let request = &found[0];
    assert_eq!(request.calendar.value("METHOD"), Some("REQUEST"));
    let ev = request.calendar.find("VEVENT").unwrap();
    assert_eq!(ev.value("UID"), Some(uid.as_str()));
    assert!(
        ev.value("ORGANIZER")
            .is_some_and(|o| o.eq_ignore_ascii_case("mailto:alice@example.com"))
    );
    // Booked entries: bob's calendar copy, which has no METHOD.
    let booked = eventually(|| async {
        gw.find_objects(&bob, &home("bob"), &by_uid(&uid))
            .await
            .ok()?
            .pop()
    })
    .await
    .expect("bob's copy");
    assert!(booked.calendar.value("METHOD").is_none());
    // Any component type, by time range, in the inbox too.
    let in_range = Selection {
        entries: Entries::Scheduled,
        component: Some("VEVENT".into()),
        uid: None,
        start: Some(utc("20300213T103000Z")),
        end: Some(utc("20300213T104500Z")),
    };
    let hits = gw
        .find_objects(&bob, &home("bob"), &in_range)
        .await
        .unwrap();
    assert!(hits.iter().any(|o| o.url == request.url));

    // Only the owner reads them.
    assert!(matches!(
        gw.find_objects(&user("alice"), &home("bob"), &scheduled)
            .await,
        Err(TranslateError::AccessDenied(_))
    ));

    // bob removes the request from his inbox; alice removes her event.
    gw.delete_object(&bob, request)
        .await
        .expect("delete inbox item");
    assert!(
        gw.find_objects(&bob, &home("bob"), &scheduled)
            .await
            .unwrap()
            .is_empty()
    );
    let alices = the_one(&gw, &user("alice"), &home("alice"), &uid).await;
    gw.delete_object(&user("alice"), &alices).await.unwrap();
}

#[tokio::test]
async fn moves_are_reported_as_the_upstream_answers() {
    let gw = gateway();
    let alice = user("alice");
    let name = unique_calendar("store-move");
    gw.create_calendar(&alice, "alice", &name, None)
        .await
        .unwrap();
    let calid = named("alice", &name);
    let uid = unique_uid("store-move-obj");
    let ics = event(&uid, "20300214T100000Z", "20300214T110000Z", None, &[]);
    gw.create_object(&alice, &calid, &parse(&ics))
        .await
        .unwrap();

    // Into bob's home: both servers refuse alice (Cyrus refuses every move between homes,
    // DAViCal wants write rights in bob's home); the calendar stays where it was.
    match gw.move_calendar(&alice, &calid, "bob").await {
        Err(TranslateError::AccessDenied(text)) => {
            assert!(text.contains("403"), "{text}");
            assert!(text.contains("stays where it was"), "{text}");
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    the_one(&gw, &alice, &calid, &uid).await;

    // To its own owner: nothing to do.
    assert_eq!(
        gw.move_calendar(&alice, &calid, "alice@example.com")
            .await
            .unwrap(),
        format!("cap://example.com/alice/{name}")
    );
    the_one(&gw, &alice, &calid, &uid).await;

    // The default calendar does not move.
    assert!(matches!(
        gw.move_calendar(&alice, &home("alice"), "bob").await,
        Err(TranslateError::AccessDenied(_))
    ));
    // Nor does a calendar that does not exist.
    assert!(matches!(
        gw.move_calendar(
            &alice,
            &named("alice", &unique_calendar("store-nomove")),
            "bob"
        )
        .await,
        Err(TranslateError::NotFound(_))
    ));

    gw.delete_calendar(&alice, &calid).await.unwrap();
}

/// Gives `grantee` rights on `owner`'s calendar `name` with IMAP SETACL, as the owner (Cyrus
/// only: WebDAV ACL cannot name a user there, see `protocols/upstreams.md`).
fn cyrus_grant(owner: &str, name: &str, grantee: &str, rights: &str) {
    let port = std::env::var("CALGATE_CYRUS_IMAP_PORT").unwrap_or_else(|_| "1143".into());
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-u",
            &format!("{owner}:{owner}pw"),
            &format!("imap://127.0.0.1:{port}/"),
            "-X",
            &format!("SETACL \"#calendars/{name}\" {grantee} {rights}"),
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "SETACL failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_calendar_shared_by_its_owner_is_used_but_not_deleted_through_the_shared_view() {
    if server() != Server::Cyrus || std::env::var("CALGATE_UPSTREAM_URL").is_ok() {
        return; // needs IMAP access to the test Cyrus
    }
    let gw = gateway();
    let (alice, bob) = (user("alice"), user("bob"));
    let name = unique_calendar("store-shared");
    gw.create_calendar(&bob, "bob", &name, None).await.unwrap();
    let calid = named("bob", &name);
    // Before the grant, alice cannot see it.
    assert!(matches!(
        gw.calendar_url(&alice, &calid).await,
        Err(TranslateError::AccessDenied(_))
    ));
    cyrus_grant("bob", &name, "alice", "lrswipkxtecdn");

    // alice reaches it through her shared view and writes into it.
    let url = gw.calendar_url(&alice, &calid).await.unwrap();
    assert!(
        url.path().ends_with(&format!("/alice/bob.{name}/")),
        "{url}"
    );
    let uid = unique_uid("store-shared-obj");
    let ics = event(&uid, "20300215T100000Z", "20300215T110000Z", None, &[]);
    gw.create_object(&alice, &calid, &parse(&ics))
        .await
        .unwrap();
    the_one(&gw, &bob, &calid, &uid).await;

    // Nor can she move it into her own home, all rights on it notwithstanding.
    match gw.move_calendar(&alice, &calid, "alice").await {
        Err(TranslateError::AccessDenied(text)) => assert!(text.contains("403"), "{text}"),
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    the_one(&gw, &bob, &calid, &uid).await;

    // Cyrus answers alice's DELETE with 204 but keeps the calendar: reported as refused.
    match gw.delete_calendar(&alice, &calid).await {
        Err(TranslateError::AccessDenied(text)) => {
            assert!(text.contains("still there"), "{text}")
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    the_one(&gw, &bob, &calid, &uid).await;

    gw.delete_calendar(&bob, &calid)
        .await
        .expect("the owner deletes it");
    assert!(matches!(
        gw.calendar_url(&bob, &calid).await,
        Err(TranslateError::NotFound(_))
    ));
}
