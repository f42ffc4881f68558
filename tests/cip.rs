//! The CIP listener end to end: golden transcripts from `protocols/cip/transcripts/` replayed
//! over TCP against the live gateway in front of the real upstream, then the upstream read
//! directly to check that what the gateway said is what it stored.

mod common;

use calgate::caldav::WriteCondition;
use common::transcript;
use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// The configuration transcripts run under: small limits so the limit transcripts stay short,
/// a short login-failure delay.
fn cip_config() -> calgate::config::Config {
    let mut c = config_with(
        r#"
[[auth.peers]]
id = "a.com"
password = "PASSWORD_A"
[[auth.peers]]
id = "b.com"
password = "PASSWORD_B"
"#,
    );
    c.cap.enabled = false;
    c.auth.failure_delay_ms = 10;
    c.limits.max_line_bytes = 200;
    c.limits.max_data_line_bytes = 1000;
    c.limits.max_payload_bytes = 2048;
    c
}

/// One gateway shared by the tests of this binary.
async fn gateway() -> SocketAddr {
    static GW: OnceLock<calgate::server::Running> = OnceLock::new();
    GW.get_or_init(|| spawn_gateway(cip_config()))
        .cip_addr
        .expect("CIP enabled")
}

async fn replay(name: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let addr = gateway().await;
    transcript::replay(&transcript::load_in("cip", name, vars), addr).await
}

fn attendee_line(data: &str, addr: &str) -> Option<String> {
    unfold(data)
        .lines()
        .find(|l| {
            l.starts_with("ATTENDEE") && l.to_ascii_lowercase().contains(&format!("mailto:{addr}"))
        })
        .map(str::to_owned)
}

#[tokio::test]
async fn t001_greeting_help_quit() {
    replay("001-greeting-help-quit.txt", &transcript::vars("t001")).await;
}

#[tokio::test]
async fn t010_login() {
    replay("010-login.txt", &transcript::vars("t010")).await;
}

#[tokio::test]
async fn t011_too_many_login_failures_close_the_connection() {
    replay("011-login-too-many-failures.txt", &transcript::vars("t011")).await;
}

#[tokio::test]
async fn t020_sendevent_local_organizer_delivers_through_the_upstream() {
    let vars = transcript::vars("t020");
    let uid = &vars["UID"];
    replay("020-sendevent-local-organizer.txt", &vars).await;
    // alice's copy is stored; bob and carol have theirs, NEEDS-ACTION; zed does not exist.
    let org = find("alice", uid).await.expect("organizer copy stored");
    let text = unfold(&org.data);
    assert!(
        text.contains("SUMMARY:Project X review"),
        "SUBJECT became SUMMARY: {text}"
    );
    assert!(
        text.contains("DTSTART:20351126T203000Z"),
        "offset converted to UTC: {text}"
    );
    assert!(text.contains("ORGANIZER"), "{text}");
    for who in ["bob", "carol"] {
        // Delivered by the upstream's implicit scheduling, which may land just after the PUT.
        let copy = eventually(|| find(who, uid))
            .await
            .unwrap_or_else(|| panic!("{who} got the event"));
        let line = attendee_line(&copy.data, &format!("{who}@example.com")).unwrap();
        assert!(line.contains("PARTSTAT=NEEDS-ACTION"), "{line}");
    }
}

#[tokio::test]
async fn t021_sendevent_versioning_updates_in_place() {
    let vars = transcript::vars("t021");
    let uid = &vars["UID"];
    replay("021-sendevent-versioning.txt", &vars).await;
    assert_eq!(
        count("alice", uid).await,
        1,
        "no duplicate in the organizer's calendar"
    );
    let org = unfold(&find("alice", uid).await.unwrap().data);
    assert!(org.contains("SUMMARY:Version two"), "{org}");
    assert!(org.contains("SEQUENCE:2"), "{org}");
    // The update reaches bob through implicit scheduling, which may land just after the PUT:
    // wait (bounded) for it, then check the copy and that it is the only one.
    let updated = eventually(|| async {
        let text = unfold(&find("bob", uid).await?.data);
        text.contains("SUMMARY:Version two").then_some(text)
    })
    .await;
    let bob = match updated {
        Some(text) => text,
        None => unfold(&find("bob", uid).await.expect("bob's copy").data),
    };
    assert!(
        bob.contains("SUMMARY:Version two"),
        "the update reached bob: {bob}"
    );
    assert_eq!(count("bob", uid).await, 1, "no duplicate for the attendee");
}

#[tokio::test]
async fn t022_sendevent_for_another_organizer_is_refused() {
    let vars = transcript::vars("t022");
    replay("022-sendevent-not-the-organizer.txt", &vars).await;
    assert!(find("alice", &vars["UID"]).await.is_none());
    assert!(find("carol", &vars["UID"]).await.is_none());
}

#[tokio::test]
async fn t030_rsvp_updates_the_attendee_and_the_organizer_copy() {
    let vars = transcript::vars("t030");
    let uid = &vars["UID"];
    replay("030-rsvp-local-attendee.txt", &vars).await;
    let bob = find("bob", uid).await.unwrap();
    assert!(
        attendee_line(&bob.data, "bob@example.com")
            .unwrap()
            .contains("PARTSTAT=ACCEPTED")
    );
    let shows = eventually(|| async {
        let org = find("alice", uid).await?;
        attendee_line(&org.data, "bob@example.com")?
            .contains("PARTSTAT=ACCEPTED")
            .then_some(())
    })
    .await;
    assert!(shows.is_some(), "alice's copy shows bob ACCEPTED");
    let carol = eventually(|| find("carol", uid)).await.unwrap();
    assert!(
        attendee_line(&carol.data, "carol@example.com")
            .unwrap()
            .contains("NEEDS-ACTION")
    );
}

#[tokio::test]
async fn t031_rsvp_errors_change_nothing() {
    let vars = transcript::vars("t031");
    let uid = &vars["UID"];
    replay("031-rsvp-errors.txt", &vars).await;
    // The unknown UID stays unknown: the refused RSVP created nothing.
    assert!(find("bob", &vars["UID2"]).await.is_none());
    assert!(find("alice", &vars["UID2"]).await.is_none());
    // The event the refused RSVPs were aimed at is as alice sent it: both attendees still
    // NEEDS-ACTION in their own copies and in the organizer's.
    for who in ["bob", "carol"] {
        let addr = format!("{who}@example.com");
        let copy = eventually(|| find(who, uid))
            .await
            .unwrap_or_else(|| panic!("{who} got the event"));
        let line = attendee_line(&copy.data, &addr).expect("the attendee's own line");
        assert!(
            line.contains("PARTSTAT=NEEDS-ACTION"),
            "{who}'s copy: {line}"
        );
        let org = find("alice", uid).await.expect("alice's copy");
        let line = attendee_line(&org.data, &addr).expect("the attendee's line at alice");
        assert!(
            line.contains("PARTSTAT=NEEDS-ACTION"),
            "alice's copy: {line}"
        );
    }
    assert_eq!(count("bob", uid).await, 1);
    assert_eq!(count("carol", uid).await, 1);
}

/// carol is busy 2035-12-04 10:00-11:00Z: that event is put in her calendar once per upstream.
async fn carol_busy() {
    let c = client();
    let d = discovery();
    let carol = creds("carol");
    let p = d.principal(&carol).await.unwrap();
    let uid = "calgate-test-t040-busy";
    let url = p.default_calendar.join(&format!("{uid}.ics")).unwrap();
    let put = c
        .put(
            &url,
            event(uid, "20351204T100000Z", "20351204T110000Z", None, &[]),
            WriteCondition::Create,
            &carol,
        )
        .await;
    if let Err(e) = put {
        assert!(
            e.is_precondition_failed(),
            "already there from an earlier run, or: {e}"
        );
    }
    replay("040-freebusy.txt", &transcript::vars("t040")).await;
}

#[tokio::test]
async fn t041_anonymous_freebusy_through_the_service_account() {
    carol_busy().await;
    replay("041-freebusy-anonymous.txt", &transcript::vars("t041")).await;
}

/// An anonymous FREEBUSY for carol on a gateway with `cfg`.
async fn anonymous_freebusy(cfg: calgate::config::Config) -> Vec<String> {
    let gw = start_gateway(cfg).await;
    let mut c = LineClient::greeted(gw.cip_addr.unwrap()).await;
    c.command(&[
        "FREEBUSY +",
        "ATTENDEE:carol@example.com",
        "DTSTART:20351204T000000Z",
        "DTEND:20351205T000000Z",
        ".",
    ])
    .await
}

#[tokio::test]
async fn anonymous_freebusy_is_refused_by_policy() {
    let mut cfg = cip_config();
    cfg.policy.anonymous_freebusy = false;
    assert_eq!(
        anonymous_freebusy(cfg).await,
        vec!["NO 002 Log in to ask for free/busy time"]
    );
    // Without a service account, anonymous free-busy cannot work at all.
    let mut cfg = cip_config();
    cfg.upstream.service_account = None;
    let reply = anonymous_freebusy(cfg).await;
    assert!(
        reply[0]
            .starts_with("NO 002 Free/busy without a login needs the gateway's service account"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn t050_bad_input_keeps_the_session() {
    let vars = transcript::vars("t050");
    replay("050-bad-input.txt", &vars).await;
    assert!(
        find("alice", &vars["UID"]).await.is_none(),
        "the oversized event was not stored"
    );
    // Both refused events are complete alice -> bob invitations: only their size stopped them.
    assert!(find("bob", &vars["UID"]).await.is_none());
    assert!(
        find("alice", &vars["UID2"]).await.is_none(),
        "the event with an overlong data line was not stored"
    );
    assert!(find("bob", &vars["UID2"]).await.is_none());
}

#[tokio::test]
async fn t051_early_commands_are_not_executed() {
    let vars = transcript::vars("t051");
    replay("051-lock-step.txt", &vars).await;
    assert!(
        find("alice", &vars["UID"]).await.is_none(),
        "the early SENDEVENT never ran"
    );
    assert!(find("bob", &vars["UID"]).await.is_none());
}

#[tokio::test]
async fn t052_bare_lf_quirk() {
    replay("052-bare-lf.txt", &transcript::vars("t052")).await;
}

#[tokio::test]
async fn t060_draft_session_bill() {
    let vars = transcript::vars("t060");
    let uid = &vars["UID"];
    replay("060-draft-session-bill.txt", &vars).await;
    let org = unfold(&find("alice", uid).await.expect("alice's copy").data);
    assert!(org.contains("SUMMARY:Important Meeting"), "{org}");
    assert!(
        org.contains("CLASS:PRIVATE") || org.contains("CLASS:Private"),
        "{org}"
    );
    assert!(org.contains("DTSTART:20361126T203000Z"), "{org}");
    let bob = find("bob", uid).await.expect("bob got it");
    assert!(attendee_line(&bob.data, "bob@example.com").is_some());
}

#[tokio::test]
async fn t061_undelivered_event_is_not_reported_delivered() {
    let vars = transcript::vars("t061");
    replay("061-sendevent-in-the-past.txt", &vars).await;
    let got = find("bob", &vars["UID"]).await.is_some();
    assert_eq!(
        got,
        server() == Server::Davical,
        "the reply matched what bob really has"
    );
}

#[tokio::test]
async fn t062_draft_session_mary_rsvp() {
    let vars = transcript::vars("t062");
    let uid = &vars["UID"];
    replay("062-draft-session-mary-rsvp.txt", &vars).await;
    let bob = find("bob", uid).await.unwrap();
    assert!(
        attendee_line(&bob.data, "bob@example.com")
            .unwrap()
            .contains("PARTSTAT=ACCEPTED")
    );
}

#[tokio::test]
async fn t070_peer_delivers_a_foreign_organizers_event() {
    let vars = transcript::vars("t070");
    let uid = &vars["UID"];
    replay("070-draft-session-peer-sendevent.txt", &vars).await;
    assert_eq!(
        count("bob", uid).await,
        1,
        "one copy, the replay did not duplicate it"
    );
    let bob = find("bob", uid).await.unwrap();
    let text = unfold(&bob.data);
    assert!(
        text.to_ascii_lowercase().contains("mailto:poleary@a.com"),
        "{text}"
    );
    assert!(
        attendee_line(&bob.data, "bob@example.com")
            .unwrap()
            .contains("NEEDS-ACTION")
    );
    assert!(
        find("bob", &vars["UID2"]).await.is_none(),
        "the refused event was not written"
    );
}

#[tokio::test]
async fn t071_peer_records_a_foreign_attendees_answer() {
    let vars = transcript::vars("t071");
    let uid = &vars["UID"];
    replay("071-draft-session-peer-rsvp.txt", &vars).await;
    let org = find("alice", uid).await.unwrap();
    let line = attendee_line(&org.data, "dave@b.com").expect("dave's line");
    assert!(line.contains("PARTSTAT=ACCEPTED"), "{line}");
}

#[tokio::test]
async fn disconnect_mid_body_sends_nothing_upstream() {
    let addr = gateway().await;
    let uid = unique_uid("midbody");
    let mut c = LineClient::logged_in(addr, "alice").await;
    c.send(&[
        "SENDEVENT +",
        &format!("UID:{uid}"),
        "SEQUENCE:1",
        "DTSTART:20351207T100000Z",
        "DTEND:20351207T110000Z",
        "ATTENDEE;ROLE=OWNER:alice@example.com",
        "ATTENDEE:bob@example.com",
    ])
    .await;
    drop(c); // gone before the terminating dot
    // A later session proves the gateway is still serving, and nothing was stored.
    LineClient::greeted(addr).await.noop().await;
    assert!(find("alice", &uid).await.is_none());
    assert!(find("bob", &uid).await.is_none());
}

/// Every transcript in the directory is replayed by one of the tests above.
#[test]
fn every_cip_transcript_has_a_test() {
    transcript::assert_all_replayed("cip", include_str!("cip.rs"));
}
