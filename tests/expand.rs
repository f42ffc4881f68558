//! CAP IDENTIFY, CALIDEXPAND and UPNEXPAND in the translation layer, against the real upstream
//! (Cyrus by default, DAViCal with `CALGATE_UPSTREAM=davical`). Expected CalIDs are checked
//! against literal names (`Default` on Cyrus, `calendar` on DAViCal) and against what a direct
//! PROPFIND of the owner's home shows.

mod common;

use calgate::caldav::Depth;
use calgate::caldav::multistatus::{CALDAV, CALSERVER};
use calgate::caldav::request::RESOURCETYPE;
use calgate::secret::Secret;
use calgate::translate::{Expansion, Gateway, Identity, TranslateError};
use common::*;

fn gateway() -> Gateway {
    Gateway::new(&config()).expect("gateway")
}

async fn login(gw: &Gateway, user: &str, password: &str) -> Identity {
    gw.login(user, &Secret::new(password.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("login {user}: {e}"))
}

async fn user(gw: &Gateway, name: &str) -> Identity {
    login(gw, name, &format!("{name}pw")).await
}

/// The name of every user's default calendar on the test upstream.
fn default_name() -> &'static str {
    match server() {
        Server::Cyrus => "Default",
        Server::Davical => "calendar",
    }
}

fn default_id(user: &str) -> String {
    format!("cap://example.com/{user}/{}", default_name())
}

/// The CalIDs of `who`'s calendars as a PROPFIND Depth 1 of their home, with their own
/// credentials, shows them (calendar-typed, not shared in from others), sorted.
async fn calendars_by_propfind(who: &str) -> Vec<String> {
    let d = discovery();
    let p = d.principal(&creds(who)).await.expect("principal");
    let ms = d
        .client()
        .propfind(&p.home, Depth::One, &[RESOURCETYPE], &creds(who))
        .await
        .expect("home listing");
    let mut ids: Vec<String> = ms
        .responses
        .iter()
        .filter(|r| r.is_resource_type(CALDAV, "calendar"))
        .filter(|r| !r.is_resource_type(CALSERVER, "shared"))
        .map(|r| {
            let name = r.href.trim_end_matches('/').rsplit('/').next().unwrap();
            format!("cap://example.com/{who}/{name}")
        })
        .collect();
    ids.sort();
    ids
}

fn denied(r: Result<Expansion, TranslateError>) -> String {
    match r {
        Err(TranslateError::AccessDenied(text)) => text,
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}

fn not_found(r: Result<Expansion, TranslateError>) -> String {
    match r {
        Err(TranslateError::NotFound(text)) => text,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn ids(r: Result<Expansion, TranslateError>) -> Vec<String> {
    let e = r.unwrap_or_else(|e| panic!("expansion failed: {e:?}"));
    assert!(!e.truncated, "{e:?}");
    e.ids
}

#[tokio::test]
async fn own_upn_and_home_expand_to_the_calendars_of_the_home() {
    let gw = gateway();
    let alice = user(&gw, "alice").await;
    let before = calendars_by_propfind("alice").await;
    assert!(
        before.contains(&default_id("alice")),
        "{before:?} has the default calendar"
    );
    let by_upn = ids(gw.upn_expand(&alice, "alice@example.com", 0).await);
    let by_home = ids(gw.calid_expand(&alice, "cap://example.com/alice", 0).await);
    let by_relative = ids(gw.calid_expand(&alice, "alice", 0).await);
    let by_case = ids(gw.upn_expand(&alice, "ALICE@Example.COM", 0).await);
    let after = calendars_by_propfind("alice").await;
    for got in [&by_upn, &by_home, &by_relative, &by_case] {
        // Another test binary may add a calendar meanwhile; either listing is right.
        assert!(
            *got == before || *got == after,
            "{got:?} vs {before:?} / {after:?}"
        );
        assert!(got.contains(&default_id("alice")), "{got:?}");
        assert!(
            !got.iter().any(|id| id.contains("Inbox")
                || id.contains("Outbox")
                || id.ends_with("/.in")
                || id.ends_with("/.out")),
            "scheduling collections are not calendars: {got:?}"
        );
    }
}

#[tokio::test]
async fn one_calendar_expands_to_itself_in_canonical_form() {
    let gw = gateway();
    let alice = user(&gw, "alice").await;
    let id = default_id("alice");
    let name = default_name();
    for form in [
        id.clone(),
        format!("{id}/"),
        format!("CAP://EXAMPLE.COM/alice/{name}"),
        format!("alice/{name}"),
        format!("/alice/{name}/"),
        format!("alice@example.com/{name}"),
    ] {
        assert_eq!(
            gw.calid_expand(&alice, &form, 0).await.unwrap(),
            Expansion {
                ids: vec![id.clone()],
                truncated: false
            },
            "{form}"
        );
    }
    // A limit of one is not exceeded by one calendar.
    assert!(!gw.calid_expand(&alice, &id, 1).await.unwrap().truncated);
}

#[tokio::test]
async fn truncation_and_names_that_need_escaping() {
    let gw = gateway();
    let carol = user(&gw, "carol").await;
    let d = discovery();
    let p = d.principal(&creds("carol")).await.unwrap();
    // A second calendar whose name has a space: shown percent-encoded, usable as an argument.
    let name = format!("calgate exp {}", unique_uid("cal"));
    let mut url = p.home.clone();
    url.path_segments_mut()
        .unwrap()
        .pop_if_empty()
        .push(&name)
        .push("");
    d.client()
        .mkcalendar(&url, "expand test", &creds("carol"))
        .await
        .expect("MKCALENDAR");
    let shown = format!("cap://example.com/carol/{}", name.replace(' ', "%20"));

    let all = ids(gw.upn_expand(&carol, "carol@example.com", 0).await);
    let n = all.len();
    let one = gw.upn_expand(&carol, "carol@example.com", 1).await.unwrap();
    let exact = gw.upn_expand(&carol, "carol@example.com", n).await.unwrap();
    let itself = gw.calid_expand(&carol, &shown, 0).await;
    let listed_home = gw.calid_expand(&carol, "carol", n - 1).await.unwrap();

    d.client()
        .delete(&url, None, &creds("carol"))
        .await
        .expect("DELETE of the test calendar");

    assert!(all.contains(&shown), "{shown} in {all:?}");
    assert!(all.contains(&default_id("carol")), "{all:?}");
    assert!(n >= 2);
    assert_eq!(one.ids, all[..1].to_vec());
    assert!(one.truncated);
    assert_eq!(exact.ids, all);
    assert!(!exact.truncated);
    assert_eq!(listed_home.ids, all[..n - 1].to_vec());
    assert!(listed_home.truncated);
    assert_eq!(ids(itself), vec![shown.clone()]);
    // Gone upstream → not found.
    not_found(gw.calid_expand(&carol, &shown, 0).await);
}

#[tokio::test]
async fn what_is_not_there_is_not_found() {
    let gw = gateway();
    let alice = user(&gw, "alice").await;
    let text = not_found(
        gw.calid_expand(&alice, "cap://example.com/alice/no-such-calendar", 0)
            .await,
    );
    assert!(
        text.contains("cap://example.com/alice/no-such-calendar"),
        "{text}"
    );
    let text = not_found(
        gw.calid_expand(&alice, "cap://cal.other.example/alice/Default", 0)
            .await,
    );
    assert!(text.contains("not on this calendar store"), "{text}");
    let inbox = match server() {
        Server::Cyrus => "alice/Inbox",
        Server::Davical => "alice/.in",
    };
    let text = not_found(gw.calid_expand(&alice, inbox, 0).await);
    assert!(text.contains("not a calendar"), "{text}");
    for bad in [
        "cap://example.com/alice/Default/x",
        "",
        "http://example.com/alice",
    ] {
        not_found(gw.calid_expand(&alice, bad, 0).await);
    }
    for upn in ["bob@other.example", "bob@", "bob", "@example.com"] {
        not_found(gw.upn_expand(&alice, upn, 0).await);
    }
    // An unknown local user: Cyrus answers 404 for the principal; DAViCal 403, as for a user
    // whose calendars are closed, so there it is access denied.
    let by_upn = gw.upn_expand(&alice, "nosuchuser@example.com", 0).await;
    let by_calid = gw
        .calid_expand(&alice, "cap://example.com/nosuchuser", 0)
        .await;
    match server() {
        Server::Cyrus => {
            not_found(by_upn);
            not_found(by_calid);
        }
        Server::Davical => {
            denied(by_upn);
            denied(by_calid);
        }
    }
}

#[tokio::test]
async fn other_users_calendars_follow_the_upstream_acl() {
    let gw = gateway();
    let alice = user(&gw, "alice").await;
    // alice has no rights on bob's calendars.
    let text = denied(gw.calid_expand(&alice, &default_id("bob"), 0).await);
    assert!(text.contains("alice"), "{text}");
    denied(gw.upn_expand(&alice, "bob@example.com", 0).await);
    denied(gw.calid_expand(&alice, "cap://example.com/bob", 0).await);

    // The service account holds read and write on bob's default calendar (scripts/upstream),
    // and nothing else of bob's: that calendar is what it sees.
    let calgate = login(&gw, "calgate", "calgatepw").await;
    assert_eq!(
        ids(gw.upn_expand(&calgate, "bob@example.com", 0).await),
        vec![default_id("bob")]
    );
    assert_eq!(
        ids(gw.calid_expand(&calgate, "cap://example.com/bob", 0).await),
        vec![default_id("bob")]
    );
    assert_eq!(
        ids(gw.calid_expand(&calgate, &default_id("bob"), 0).await),
        vec![default_id("bob")]
    );
    not_found(
        gw.calid_expand(&calgate, "cap://example.com/bob/no-such-calendar", 0)
            .await,
    );
}

#[tokio::test]
async fn anonymous_and_peer_sessions_may_not_expand() {
    let gw = gateway();
    let peer = Identity::Peer { id: "a.com".into() };
    for identity in [&Identity::Anonymous, &peer] {
        let text = denied(gw.upn_expand(identity, "alice@example.com", 0).await);
        assert!(text.contains("Log in"), "{text}");
        let text = denied(gw.calid_expand(identity, &default_id("alice"), 0).await);
        assert!(text.contains("Log in"), "{text}");
    }
}

#[tokio::test]
async fn identify_follows_write_rights() {
    let gw = gateway();
    let alice = user(&gw, "alice").await;
    let calgate = login(&gw, "calgate", "calgatepw").await;

    // The service account may write alice's default calendar: it may act as alice.
    match gw.identify(&calgate, "alice@example.com").await {
        Ok(Identity::User { creds, address }) => {
            assert_eq!(creds.user, "calgate");
            assert_eq!(address, "alice@example.com");
        }
        other => panic!("calgate IDENTIFY alice: {other:?}"),
    }
    // alice may be alice (any case), but not bob.
    match gw.identify(&alice, "ALICE@Example.com").await {
        Ok(Identity::User { creds, address }) => {
            assert_eq!(creds.user, "alice");
            assert_eq!(address, "alice@example.com");
        }
        other => panic!("alice IDENTIFY alice: {other:?}"),
    }
    match gw.identify(&alice, "bob@example.com").await {
        Err(TranslateError::AccessDenied(text)) => {
            assert!(text.contains("bob@example.com"), "{text}")
        }
        other => panic!("alice IDENTIFY bob: {other:?}"),
    }
    for upn in ["bob@other.example", "nosuchuser@example.com"] {
        assert!(
            matches!(
                gw.identify(&calgate, upn).await,
                Err(TranslateError::AccessDenied(_))
            ),
            "{upn}"
        );
    }
    for upn in ["bob@", "bob", "@example.com", "a b@example.com"] {
        assert!(
            matches!(
                gw.identify(&alice, upn).await,
                Err(TranslateError::BadInput(_))
            ),
            "{upn}"
        );
    }
    let peer = Identity::Peer { id: "a.com".into() };
    for identity in [&Identity::Anonymous, &peer] {
        assert!(matches!(
            gw.identify(identity, "alice@example.com").await,
            Err(TranslateError::AccessDenied(_))
        ));
    }
    // "@" is the anonymous UPN: giving up the identity is always allowed.
    assert_eq!(gw.identify(&alice, "@").await.unwrap(), Identity::Anonymous);
}

#[tokio::test]
async fn a_mailto_login_id_acts_as_the_plain_address() {
    let gw = gateway();
    for id in ["MAILTO:alice@example.com", "mailto:alice@example.com"] {
        let alice = login(&gw, id, "alicepw").await;
        match &alice {
            Identity::User { creds, address } => {
                assert_eq!(creds.user, "alice", "{id}");
                assert_eq!(address, "alice@example.com", "{id}");
            }
            other => panic!("{id}: {other:?}"),
        }
        // The address is one of alice's own, so she may take it.
        assert_eq!(
            gw.identify(&alice, "alice@example.com").await.unwrap(),
            alice
        );
    }
}

#[tokio::test]
async fn groups_expand_to_their_members_calendars() {
    let gw = gateway();
    let calgate = login(&gw, "calgate", "calgatepw").await;
    let alice = user(&gw, "alice").await;
    match server() {
        Server::Cyrus => {
            // Cyrus 3.6 has no group principals over DAV.
            not_found(gw.upn_expand(&calgate, "team@example.com", 0).await);
        }
        Server::Davical => {
            // team = alice, bob (scripts/upstream); calgate sees each one's default calendar.
            let members = vec![default_id("alice"), default_id("bob")];
            assert_eq!(
                ids(gw.upn_expand(&calgate, "team@example.com", 0).await),
                members
            );
            assert_eq!(
                ids(gw.calid_expand(&calgate, "cap://example.com/team", 0).await),
                members
            );
            let one = gw
                .upn_expand(&calgate, "team@example.com", 1)
                .await
                .unwrap();
            assert_eq!(one.ids, members[..1].to_vec());
            assert!(one.truncated);
            // alice may see her own calendars but not bob's: the expansion is incomplete,
            // which counts as a failure (cap-02 §2.4.3).
            denied(gw.upn_expand(&alice, "team@example.com", 0).await);
        }
    }
}
