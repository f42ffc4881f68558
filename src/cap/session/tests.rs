//! Table tests: one per row of spec §2.5 and per SASL / SENDDATA path.

use super::*;
use crate::caldav::Credentials;
use crate::cap::status::Status;

/// A successful outcome naming `targets`.
fn outcome(targets: Vec<String>) -> crate::cap::senddata::Outcome {
    crate::cap::senddata::Outcome {
        targets: vec![TargetReply {
            targets,
            status: Some(Status::success()),
            properties: Vec::new(),
            components: Vec::new(),
        }],
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        plaintext_allowed: true,
        tls_available: true,
        implicit_tls: false,
        auth_retries: 0,
        max_sasl_steps: 8,
        max_preauth_commands: 5,
        max_object_size: 4096,
        autologout_secs: 900,
        framing: ResponseFraming::TwoDot,
        senddata_goahead: true,
        pending_code: PendingCode::ReplyPending,
        leading_dot_on_pending: false,
        abort_code: AbortCode::Ok,
        max_line: 1000,
        server_id: "example.com".into(),
    }
}

fn session_with(config: SessionConfig) -> Session {
    Session::new(config, Sasl::without_accounts().unwrap())
}

fn session() -> Session {
    session_with(config())
}

fn line(s: &mut Session, text: &str) -> Vec<Action> {
    s.handle(Input::Frame(Frame::Line(text.as_bytes().to_vec())))
}

/// The lines sent, in order.
fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

fn status(actions: &[Action]) -> String {
    sent(actions)
        .into_iter()
        .find(|l| l != "." && l != "+")
        .unwrap_or_default()
}

fn closes(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Close))
}

fn alice() -> Identity {
    Identity::User {
        creds: Credentials::new("alice", "pw"),
        address: "alice@example.com".into(),
    }
}

/// A session logged in as alice.
fn identified() -> Session {
    let mut s = session();
    let a = line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3");
    assert!(
        matches!(a.as_slice(), [Action::Run(Work::Login { .. })]),
        "{a:?}"
    );
    let a = s.handle(Input::Done(Done::Login(Ok(alice()))));
    assert_eq!(status(&a), "2.0");
    s
}

fn block(text: &str) -> Input {
    Input::Frame(Frame::Block(text.replace('\n', "\r\n").into_bytes()))
}

const NOOP: &str = "Content-Type: text/calendar; method=NOOP; component=VCOMMAND\n\nBEGIN:VCAP\nVERSION:2.0\nCMDID:n1\nBEGIN:VCOMMAND\nMETHOD:NOOP\nEND:VCOMMAND\nEND:VCAP\n";

const REQUEST: &str = "Content-Type: text/calendar; method=REQUEST; component=VEVENT\n\nBEGIN:VCAP\nVERSION:2.0\nCMDID:r1\nBEGIN:VCOMMAND\nMETHOD:REQUEST\nTARGET:bob\nBEGIN:VEVENT\nUID:u1\nDTSTART:20300101T100000Z\nORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:bob@example.com\nEND:VEVENT\nEND:VCOMMAND\nEND:VCAP\n";

#[test]
fn greeting_lists_connected_capabilities() {
    let g = session().greeting();
    assert_eq!(g[0], "2.0");
    assert_eq!(g[1], ".");
    assert!(g.contains(&"CAPVERSION=1.0".to_owned()));
    assert!(g.contains(&"AUTH=PLAIN".to_owned()));
    assert!(g.contains(&"X-CALGATE-STARTTLS=1".to_owned()));
    assert!(!g.iter().any(|l| l.starts_with("IDENTITY=")));
    assert_eq!(g.last().unwrap(), ".");
}

#[test]
fn single_dot_greeting() {
    let mut c = config();
    c.framing = ResponseFraming::SingleDot;
    let g = session_with(c).greeting();
    assert_eq!(g[0], "2.0");
    assert_eq!(g[1], "CAPVERSION=1.0");
}

// ---- Connected column ----

#[test]
fn connected_capability_noop_abort() {
    let mut s = session();
    assert_eq!(status(&line(&mut s, "CAPABILITY")), "2.0");
    assert_eq!(sent(&line(&mut s, "NOOP")), ["2.0", ".", "."]);
    assert!(status(&line(&mut s, "ABORT")).starts_with("2.2"));
}

#[test]
fn connected_refuses_identified_commands_with_9_1() {
    for cmd in [
        "IDENTIFY bob@example.com",
        "CALIDEXPAND alice",
        "UPNEXPAND alice@example.com",
        "SENDDATA",
        "CONTINUE",
        "GENERATEUID 2",
    ] {
        let mut s = session();
        let a = line(&mut s, cmd);
        assert!(status(&a).starts_with("9.1 ; "), "{cmd}: {a:?}");
        assert!(!closes(&a));
    }
}

#[test]
fn unknown_verb_is_9_0_and_session_stays_usable() {
    let mut s = session();
    assert!(status(&line(&mut s, "FROB")).starts_with("9.0 ; Unknown command FROB"));
    assert!(status(&line(&mut s, "SENDDATA soon")).starts_with("9.0 ; SENDDATA"));
    assert_eq!(status(&line(&mut s, "NOOP")), "2.0");
    assert!(line(&mut s, "").is_empty());
    let a = s.handle(Input::Frame(Frame::LineTooLong));
    assert!(status(&a).starts_with("9.0 ; Command line too long"));
}

#[test]
fn disconnect_anywhere() {
    let mut s = session();
    let a = line(&mut s, "DISCONNECT");
    assert_eq!(sent(&a), ["2.0", ".", "."]);
    assert!(closes(&a) && s.is_closed());
    let mut s = identified();
    assert!(closes(&line(&mut s, "DISCONNECT")));
}

#[test]
fn tags_are_echoed_on_status_lines() {
    let mut s = session();
    assert_eq!(sent(&line(&mut s, "a1 NOOP")), ["a1 2.0", ".", "."]);
    let mut s = identified();
    let a = line(&mut s, "10 SENDDATA");
    assert_eq!(sent(&a), ["10 2.0.1"]);
    let a = s.handle(block(NOOP));
    assert_eq!(status(&a), "10 2.0 n1");
}

// ---- AUTHENTICATE ----

#[test]
fn plain_with_a_prompt() {
    let mut s = session();
    let a = line(&mut s, "AUTHENTICATE PLAIN");
    assert_eq!(sent(&a), ["+"]);
    let a = line(&mut s, "AGFsaWNlAHB3");
    match a.as_slice() {
        [Action::Run(Work::Login { user, password })] => {
            assert_eq!(user, "alice");
            assert_eq!(password.expose(), "pw");
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.wants_input(), "no reading while the login is checked");
    let a = s.handle(Input::Done(Done::Login(Ok(alice()))));
    let l = sent(&a);
    assert_eq!(l[0], "2.0");
    assert_eq!(l[2], "IDENTITY=alice@example.com");
    assert!(s.is_authenticated());
}

#[test]
fn wrong_password_after_a_prompt_ends_the_exchange_with_a_dot() {
    let mut s = session();
    line(&mut s, "AUTHENTICATE PLAIN");
    line(&mut s, "AGFsaWNlAHdyb25n");
    let a = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
    assert!(matches!(a[0], Action::LoginFailed));
    assert_eq!(
        sent(&a)[..2],
        [".".to_owned(), "6.0 ; Authentication failed".to_owned()]
    );
    assert!(!s.is_authenticated());
    // A second AUTHENTICATE closes the connection (cap-00..05 §7.1.3).
    let a = line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3");
    assert!(closes(&a) && sent(&a).is_empty());
}

#[test]
fn initial_response_failure_has_no_leading_dot() {
    let mut s = session();
    line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n");
    let a = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
    assert!(sent(&a)[0].starts_with("6.0"));
}

#[test]
fn auth_retries_allow_another_attempt_with_a_longer_pause() {
    let mut c = config();
    c.auth_retries = 1;
    let mut s = session_with(c);
    line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n");
    let first = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
    line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n");
    let second = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
    assert!(matches!(first[0], Action::LoginFailed), "{first:?}");
    assert!(matches!(second[0], Action::LoginFailed), "{second:?}");
    assert!(closes(&line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3")));
}

#[test]
fn sasl_codes() {
    let mut s = session();
    assert!(status(&line(&mut s, "AUTHENTICATE KERBEROS_V4")).starts_with("6.3 ; "));
    assert!(status(&line(&mut s, "AUTHENTICATE DIGEST_MD5")).starts_with("6.3 ; "));
    // 6.3 starts no exchange, so the client may still authenticate.
    let a = line(&mut s, "AUTHENTICATE PLAIN");
    assert_eq!(sent(&a), ["+"]);
    let a = line(&mut s, ".");
    assert!(status(&a).starts_with("6.2 ; "), "{a:?}");

    let mut s = session();
    line(&mut s, "AUTHENTICATE PLAIN");
    let a = line(&mut s, "bWFsbG9yeQBhbGljZQBwdw=="); // mallory\0alice\0pw
    assert_eq!(sent(&a)[0], ".");
    assert!(sent(&a)[1].starts_with("6.1 ; "));

    let mut s = session();
    line(&mut s, "AUTHENTICATE PLAIN");
    let a = line(&mut s, "*");
    assert!(status(&a).starts_with("6.2"));

    let mut s = session();
    let a = line(&mut s, "AUTHENTICATE PLAIN !!!");
    assert!(status(&a).starts_with("6.0 ; Authentication failed: "));

    let mut s = session();
    line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3");
    let a = s.handle(Input::Done(Done::Login(Err(LoginError::Unavailable(
        crate::caldav::CaldavError::Status {
            method: "PROPFIND".into(),
            path: "/".into(),
            status: 503,
            condition: None,
        },
    )))));
    assert!(status(&a).starts_with("6.4 ; "));
}

#[test]
fn plain_needs_tls_unless_plaintext_is_allowed() {
    let mut c = config();
    c.plaintext_allowed = false;
    let mut s = session_with(c);
    assert!(!s.greeting().contains(&"AUTH=PLAIN".to_owned()));
    let a = line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3");
    assert!(status(&a).starts_with("6.7 ; "));
    // STARTTLS is still allowed (6.7 started no exchange), and afterwards PLAIN is offered.
    let a = line(&mut s, "STARTTLS");
    assert!(matches!(a.as_slice(), [Action::StartTls(l)] if l == "2.0.12"));
    let a = s.handle(Input::TlsEstablished);
    assert_eq!(sent(&a), ["2.0", ".", "."]);
    let caps = sent(&line(&mut s, "CAPABILITY"));
    assert!(caps.contains(&"AUTH=PLAIN".to_owned()));
    assert!(!caps.iter().any(|l| l.starts_with("X-CALGATE-STARTTLS")));
    assert!(matches!(
        line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3").as_slice(),
        [Action::Run(Work::Login { .. })]
    ));
}

#[test]
fn anonymous_with_and_without_initial_response() {
    let mut s = session();
    assert_eq!(sent(&line(&mut s, "AUTHENTICATE ANONYMOUS")), ["+"]);
    let l = sent(&line(&mut s, "Z3Vlc3Q="));
    assert_eq!(l[0], "2.0");
    assert_eq!(l[2], "IDENTITY=@");
    let mut s = session();
    let l = sent(&line(&mut s, "AUTHENTICATE ANONYMOUS ="));
    assert_eq!(l[0], "2.0");
    assert!(s.is_authenticated());
}

// ---- SCRAM-SHA-256 (gateway-local accounts) ----

fn scram_session(mut c: SessionConfig) -> Session {
    c.plaintext_allowed = false;
    let accounts = vec![super::super::sasl::ScramAccount {
        user: "alice".into(),
        keys: super::super::scram::StoredKeys::derive(b"s3cret-local", b"0123456789abcdef", 4096),
        upstream_password: Secret::new("alicepw-upstream".into()),
    }];
    Session::new(c, Sasl::new(accounts.into(), "example.com").unwrap())
}

use super::super::scram::TestClient;

/// AUTHENTICATE SCRAM-SHA-256 with the client-first as initial response, then the
/// client-final; returns the session's answer to the client-final.
fn scram_exchange(s: &mut Session, client: &mut TestClient) -> Vec<Action> {
    let a = line(s, &format!("AUTHENTICATE SCRAM-SHA-256 {}", client.first()));
    let server_first = sent(&a).remove(0);
    line(s, &client.final_message(&server_first))
}

#[test]
fn scram_is_offered_only_with_accounts_and_without_tls() {
    let s = scram_session(config());
    let g = s.greeting();
    assert!(g.contains(&"AUTH=SCRAM-SHA-256".to_owned()));
    assert!(!g.contains(&"AUTH=PLAIN".to_owned()));
    assert!(
        !session()
            .greeting()
            .contains(&"AUTH=SCRAM-SHA-256".to_owned())
    );
    let mut s = session();
    let a = line(&mut s, "AUTHENTICATE SCRAM-SHA-256");
    assert!(status(&a).starts_with("6.3 ; "), "{a:?}");
    assert!(status(&a).ends_with("use PLAIN or ANONYMOUS"), "{a:?}");
    let mut s = scram_session(config());
    let a = line(&mut s, "AUTHENTICATE DIGEST-MD5");
    assert!(status(&a).starts_with("6.3 ; "), "{a:?}");
    assert!(
        status(&a).ends_with("use SCRAM-SHA-256 or ANONYMOUS, or STARTTLS then PLAIN"),
        "{a:?}"
    );
}

#[test]
fn scram_with_initial_response_and_the_extra_final_line() {
    let mut s = scram_session(config());
    let mut client = TestClient::new("n,,", "alice", "s3cret-local");
    let a = line(
        &mut s,
        &format!("AUTHENTICATE SCRAM-SHA-256 {}", client.first()),
    );
    let [Action::Send(server_first)] = a.as_slice() else {
        panic!("{a:?}")
    };
    let a = line(&mut s, &client.final_message(server_first));
    let [Action::Send(server_final)] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert!(client.server_final_ok(server_final));
    assert!(s.wants_input(), "the empty response is read");
    assert!(!format!("{s:?}").contains("alicepw-upstream"));
    let a = line(&mut s, "");
    match a.as_slice() {
        [Action::Run(w @ Work::Login { user, password })] => {
            assert_eq!(user, "alice");
            assert_eq!(password.expose(), "alicepw-upstream");
            assert!(!format!("{w:?}").contains("alicepw-upstream"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.wants_input());
    let l = sent(&s.handle(Input::Done(Done::Login(Ok(alice())))));
    assert_eq!(l[..3], ["2.0", ".", "IDENTITY=alice@example.com"]);
    assert!(s.is_authenticated());
}

#[test]
fn scram_after_a_prompt_accepts_equals_as_the_empty_response() {
    let mut s = scram_session(config());
    let mut client = TestClient::new("n,,", "alice@example.com", "s3cret-local");
    assert_eq!(sent(&line(&mut s, "AUTHENTICATE SCRAM-SHA-256")), ["+"]);
    let server_first = sent(&line(&mut s, &client.first())).remove(0);
    let server_final = sent(&line(&mut s, &client.final_message(&server_first))).remove(0);
    assert!(client.server_final_ok(&server_final));
    assert!(matches!(
        line(&mut s, "=").as_slice(),
        [Action::Run(Work::Login { user, .. })] if user == "alice"
    ));
    // The upstream refusing the account's own password is the usual failure.
    let a = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
    assert_eq!(sent(&a)[..2], [".", "6.0 ; Authentication failed"]);
}

#[test]
fn scram_wrong_password_and_unknown_user_fail_alike() {
    for (user, password) in [("alice", "wrong"), ("mallory", "s3cret-local")] {
        let mut s = scram_session(config());
        let mut client = TestClient::new("n,,", user, password);
        let a = scram_exchange(&mut s, &mut client);
        assert!(matches!(a[0], Action::LoginFailed), "{a:?}");
        assert_eq!(
            sent(&a),
            [".", "6.0 ; Authentication failed", ".", "."],
            "{user}"
        );
        assert!(!s.is_authenticated());
        assert!(closes(&line(&mut s, "AUTHENTICATE SCRAM-SHA-256")));
    }
}

#[test]
fn scram_final_line_must_be_empty() {
    let run = |answer: &str| {
        let mut s = scram_session(config());
        let mut client = TestClient::new("n,,", "alice", "s3cret-local");
        scram_exchange(&mut s, &mut client);
        let a = line(&mut s, answer);
        (s, a)
    };
    let (s, a) = run("dj1mb28=");
    assert_eq!(sent(&a)[0], ".");
    assert!(sent(&a)[1].starts_with("6.0 ; Authentication failed: expected an empty"));
    assert!(!s.is_authenticated());
    let (_, a) = run("*");
    assert!(status(&a).starts_with("6.2 ; "));
    // An authzid other than the user: 6.1 after the exchange.
    let mut s = scram_session(config());
    let mut client = TestClient::new("n,a=bob,", "alice", "s3cret-local");
    scram_exchange(&mut s, &mut client);
    let a = line(&mut s, "");
    assert!(sent(&a)[1].starts_with("6.1 ; "), "{a:?}");
}

// ---- STARTTLS ----

#[test]
fn starttls_rules() {
    let mut c = config();
    c.tls_available = false;
    let mut s = session_with(c);
    assert!(status(&line(&mut s, "STARTTLS")).starts_with("6.5 ; "));

    let mut s = session();
    line(&mut s, "STARTTLS");
    assert!(!s.wants_input(), "nothing is read during the handshake");
    s.handle(Input::TlsEstablished);
    assert!(
        closes(&line(&mut s, "STARTTLS")),
        "a second STARTTLS terminates"
    );

    let mut s = identified();
    assert!(
        closes(&line(&mut s, "STARTTLS")),
        "STARTTLS after AUTHENTICATE terminates"
    );

    let mut s = session();
    line(&mut s, "AUTHENTICATE PLAIN");
    line(&mut s, ".");
    assert!(
        closes(&line(&mut s, "STARTTLS")),
        "even after a cancelled AUTHENTICATE"
    );
}

// ---- Identified column ----

#[test]
fn identified_commands() {
    let mut s = identified();
    assert!(closes(&line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3")));

    let mut s = identified();
    let caps = sent(&line(&mut s, "CAPABILITY"));
    assert_eq!(caps[2], "IDENTITY=alice@example.com");
    assert!(status(&line(&mut s, "ABORT")).starts_with("2.2"));
    assert!(status(&line(&mut s, "CONTINUE")).starts_with("9.1"));
    let uids = sent(&line(&mut s, "GENERATEUID 3"));
    assert_eq!(uids.len(), 6);
    assert_ne!(uids[2], uids[3]);

    let a = line(&mut s, "IDENTIFY team@example.com");
    assert!(
        matches!(&a[..], [Action::Run(Work::Identify { upn, .. })] if upn == "team@example.com")
    );
    let a = s.handle(Input::Done(Done::Identify(Err(
        TranslateError::AccessDenied("no".into()),
    ))));
    assert_eq!(sent(&a), ["6.4 ; no", ".", "."]);

    let a = line(&mut s, "UPNEXPAND alice@example.com");
    assert!(matches!(&a[..], [Action::Run(Work::UpnExpand { .. })]));
    let a = s.handle(Input::Done(Done::Expand(Ok(Expansion {
        ids: vec!["cap://example.com/alice/Default".into()],
        truncated: false,
    }))));
    assert_eq!(
        sent(&a),
        [
            "2.0 alice@example.com",
            ".",
            "cap://example.com/alice/Default",
            "."
        ]
    );
    line(&mut s, "CALIDEXPAND nobody");
    let a = s.handle(Input::Done(Done::Expand(Err(TranslateError::NotFound(
        "no such calendar".into(),
    )))));
    assert_eq!(status(&a), "2.2 nobody ; no such calendar");
    line(&mut s, "CALIDEXPAND big");
    let a = s.handle(Input::Done(Done::Expand(Ok(Expansion {
        ids: vec!["x".into()],
        truncated: true,
    }))));
    assert!(status(&a).starts_with("2.3 big ; "));
}

// ---- SENDDATA, Receive-Data and Receive-Wait ----

#[test]
fn senddata_noop_and_generateuid() {
    let mut s = identified();
    let a = line(&mut s, "SENDDATA");
    assert_eq!(sent(&a), ["2.0.1"]);
    assert!(matches!(a.last(), Some(Action::ExpectBlock)));
    let l = sent(&s.handle(block(NOOP)));
    assert_eq!(l[0], "2.0 n1");
    assert_eq!(l[1], ".");
    assert_eq!(
        l[2],
        "Content-Type: text/calendar; method=RESPONSE; optinfo=\"CMDID:n1\""
    );
    assert!(l.contains(&"REQUEST-STATUS:2.0;Success".to_owned()));
    assert!(l.contains(&"CMDID:n1".to_owned()));

    line(&mut s, "SENDDATA");
    let l = sent(&s.handle(block(
        "BEGIN:VCAP\nBEGIN:VCOMMAND\nMETHOD:GENERATEUID\nMAXRESULTS:2\nEND:VCOMMAND\nEND:VCAP\n",
    )));
    assert_eq!(l.iter().filter(|x| x.starts_with("UID:")).count(), 2);
}

#[test]
fn senddata_without_goahead() {
    let mut c = config();
    c.senddata_goahead = false;
    let mut s = session_with(c);
    line(&mut s, "AUTHENTICATE ANONYMOUS =");
    let a = line(&mut s, "SENDDATA");
    assert!(sent(&a).is_empty());
    assert!(matches!(a.as_slice(), [Action::ExpectBlock]));
}

#[test]
fn senddata_errors_leave_the_session_usable() {
    let mut s = identified();
    line(&mut s, "SENDDATA");
    let a = s.handle(Input::Frame(Frame::BlockTooLarge));
    assert!(status(&a).starts_with("8.2 ; "));
    line(&mut s, "SENDDATA");
    let a = s.handle(block("Content-Type: image/png\n\nxyz\n"));
    assert!(status(&a).starts_with("8.0 ; "), "{a:?}");
    // Readable MIME, but no calendar object: 2.0 and the object's status says why (spec §2.8).
    line(&mut s, "SENDDATA");
    let l = sent(&s.handle(block("BEGIN:VEVENT\nUID:x\nEND:VEVENT\n")));
    assert_eq!(l[0], "2.0");
    assert!(
        l.iter().any(|x| x.starts_with("REQUEST-STATUS:3.11;")),
        "{l:?}"
    );
    // Every other method goes to the upstream.
    line(&mut s, "SENDDATA");
    let a = s.handle(block("BEGIN:VCAP\nMETHOD:CREATE\nCMDID:c9\nEND:VCAP\n"));
    assert!(matches!(a[0], Action::Run(Work::Command { .. })), "{a:?}");
    s.handle(Input::Done(Done::Command(Ok(outcome(vec![])))));
    assert_eq!(status(&line(&mut s, "NOOP")), "2.0");
}

#[test]
fn latency_pending_continue_and_result() {
    let mut s = identified();
    line(&mut s, "SENDDATA:3");
    let a = s.handle(block(REQUEST));
    assert!(matches!(a[0], Action::Run(Work::Command { .. })));
    assert!(matches!(a[1], Action::Latency(Some(d)) if d == Duration::from_secs(3)));
    assert!(s.in_receive_wait() && s.wants_input());
    // Other commands are refused while the reply is pending (spec Q13).
    assert!(status(&line(&mut s, "NOOP")).starts_with("9.1"));
    // CONTINUE before a 2.0.2 is unexpected.
    assert!(status(&line(&mut s, "CONTINUE")).starts_with("9.1"));
    let a = s.handle(Input::LatencyExpired);
    assert_eq!(
        sent(&a)[0],
        "2.0.2 r1 ; Reply pending; send CONTINUE [seconds] or ABORT"
    );
    let a = line(&mut s, "CONTINUE 10 ; r1");
    assert!(sent(&a).is_empty(), "CONTINUE has no reply of its own");
    assert!(matches!(a[0], Action::Latency(Some(d)) if d == Duration::from_secs(10)));
    let a = s.handle(Input::Done(Done::Command(Ok(outcome(vec![
        "cap://x/bob".into(),
    ])))));
    let l = sent(&a);
    assert_eq!(l[0], "2.0 r1");
    assert!(l.contains(&"TARGET:cap://x/bob".to_owned()), "{l:?}");
    assert!(!s.in_receive_wait());
}

#[test]
fn pending_code_and_leading_dot_switches() {
    let mut c = config();
    c.pending_code = PendingCode::Timeout;
    c.leading_dot_on_pending = true;
    let mut s = session_with(c);
    line(&mut s, "AUTHENTICATE PLAIN AGFsaWNlAHB3");
    s.handle(Input::Done(Done::Login(Ok(alice()))));
    line(&mut s, "SENDDATA 1");
    s.handle(block(REQUEST));
    let l = sent(&s.handle(Input::LatencyExpired));
    assert_eq!(l[0], ".");
    assert!(l[1].starts_with("7.0 r1"));
}

#[test]
fn abort_cancels_the_work() {
    let mut s = identified();
    line(&mut s, "SENDDATA 3");
    s.handle(block(REQUEST));
    s.handle(Input::LatencyExpired);
    let a = line(&mut s, "ABORT other");
    assert!(
        status(&a).starts_with("2.2 other"),
        "a different cmdid aborts nothing"
    );
    let a = line(&mut s, "ABORT ; r1");
    assert!(matches!(a[0], Action::CancelWork));
    assert_eq!(
        status(&a),
        "2.0 r1 ; Aborted; the upstream request was abandoned"
    );
    assert!(!s.in_receive_wait());
    assert!(status(&line(&mut s, "ABORT")).starts_with("2.2"));

    let mut c = config();
    c.abort_code = AbortCode::Aborted;
    let mut s = session_with(c);
    line(&mut s, "AUTHENTICATE ANONYMOUS =");
    line(&mut s, "SENDDATA");
    s.handle(block(REQUEST));
    assert!(status(&line(&mut s, "ABORT")).starts_with("2.0.3"));
}

#[test]
fn disconnect_in_receive_wait_abandons_the_work() {
    let mut s = identified();
    line(&mut s, "SENDDATA");
    s.handle(block(REQUEST));
    let a = line(&mut s, "DISCONNECT");
    assert!(matches!(a[0], Action::CancelWork));
    assert!(closes(&a));
}

#[test]
fn upstream_failure_is_reported() {
    let mut s = identified();
    line(&mut s, "SENDDATA");
    s.handle(block(REQUEST));
    let a = s.handle(Input::Done(Done::Command(Err(TranslateError::Upstream(
        crate::caldav::CaldavError::Status {
            method: "PUT".into(),
            path: "/x".into(),
            status: 503,
            condition: None,
        },
    )))));
    assert!(status(&a).starts_with("8.0 r1 ; Upstream"), "{a:?}");
}

#[test]
fn shutdown_reply() {
    assert_eq!(
        session().shutdown_reply()[0],
        "10.2 ; The gateway is shutting down; reconnect later"
    );
}

use proptest::strategy::Strategy as _;

/// What must hold for any batch of actions: every line sent is one line of printable ASCII or
/// UTF-8 text without CR or LF (the framing depends on it), status lines keep their debug text
/// within 300 characters, and nothing follows a Close.
fn check_actions(actions: &[Action]) -> Result<(), String> {
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Send(l) | Action::StartTls(l) => {
                if l.contains(['\r', '\n']) {
                    return Err(format!("line with CR/LF: {l:?}"));
                }
                if let Some((_, text)) = l.split_once(" ; ")
                    && text.chars().count() > 303
                {
                    return Err(format!("debug text over 300 characters: {l:?}"));
                }
            }
            Action::Close if i + 1 != actions.len() => {
                return Err(format!("actions after Close: {actions:?}"));
            }
            _ => {}
        }
    }
    Ok(())
}

proptest::proptest! {
    /// No input sequence, with logins failing and latencies running out along the way,
    /// panics the session or breaks the reply framing; a closed session stays silent, and
    /// at most one piece of work starts at a time (PIPELINE=1).
    #[test]
    fn never_panics(frames in proptest::collection::vec(
        proptest::prop_oneof![
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)
                .prop_map(Frame::Line),
            proptest::sample::select(vec![
                "AUTHENTICATE PLAIN", "AUTHENTICATE ANONYMOUS =", "SENDDATA 1", "ABORT",
                "CONTINUE 2", "STARTTLS", "NOOP", "CAPABILITY", "GENERATEUID 3", ".", "*",
                "AGFsaWNlAHB3", "IDENTIFY a@b", "10 SENDDATA", "DISCONNECT",
            ]).prop_map(|s| Frame::Line(s.as_bytes().to_vec())),
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)
                .prop_map(Frame::Block),
            proptest::strategy::Just(Frame::BlockTooLarge),
            proptest::strategy::Just(Frame::LineTooLong),
        ],
        0..30,
    )) {
        let mut s = session();
        for f in frames {
            let was_closed = s.is_closed();
            let actions = s.handle(Input::Frame(f));
            proptest::prop_assert!(!was_closed || actions.is_empty(), "a closed session acts");
            check_actions(&actions).map_err(proptest::test_runner::TestCaseError::fail)?;
            let runs = actions.iter().filter(|a| matches!(a, Action::Run(_))).count();
            proptest::prop_assert!(runs <= 1, "two pieces of work at once: {actions:?}");
            for a in &actions {
                let more = match a {
                    Action::Run(Work::Login { .. }) => {
                        s.handle(Input::Done(Done::Login(Err(LoginError::Refused))))
                    }
                    Action::StartTls(_) => s.handle(Input::TlsEstablished),
                    _ => Vec::new(),
                };
                check_actions(&more).map_err(proptest::test_runner::TestCaseError::fail)?;
            }
            if s.in_receive_wait() {
                let pending = s.handle(Input::LatencyExpired);
                check_actions(&pending).map_err(proptest::test_runner::TestCaseError::fail)?;
            }
        }
    }
}

proptest::proptest! {
    /// SCRAM messages built from SCRAM-like pieces (base64 or not) never panic the session
    /// (rsasl's parser would on some: `Exchange` screens them).
    #[test]
    fn scram_never_panics(messages in proptest::collection::vec(
        (
            proptest::collection::vec(
                proptest::sample::select(vec![
                    "n", "y", "p=tls-unique", "a=", "a", "n=alice", "n=", "r=", "r=abc", "c=biws",
                    "c=", "p=", "p=AAAA", "s=", "i=4096", "m=x", "x", "", "=", "é",
                ]),
                0..8,
            ),
            proptest::prelude::any::<bool>(),
        ),
        1..5,
    )) {
        let mut s = scram_session(config());
        line(&mut s, "AUTHENTICATE SCRAM-SHA-256");
        for (parts, encode) in messages {
            let text = parts.join(",");
            let frame = if encode {
                super::super::scram::base64_encode(text.as_bytes())
            } else {
                text
            };
            let actions = line(&mut s, &frame);
            check_actions(&actions).map_err(proptest::test_runner::TestCaseError::fail)?;
            for a in actions {
                if let Action::Run(Work::Login { .. }) = a {
                    let failed = s.handle(Input::Done(Done::Login(Err(LoginError::Refused))));
                    proptest::prop_assert!(
                        sent(&failed).iter().any(|l| l.starts_with("6.")),
                        "a refused login is answered 6.x: {failed:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_tagged_senddata_keeps_its_tag_through_receive_wait() {
    let mut s = identified();
    line(&mut s, "10 SENDDATA 1");
    s.handle(block(REQUEST));
    let pending = sent(&s.handle(Input::LatencyExpired));
    assert!(pending[0].starts_with("10 2.0.2 r1 ; "), "{pending:?}");
    // CONTINUE and a refused command carry their own tags, not the SENDDATA's.
    assert!(status(&line(&mut s, "11 NOOP")).starts_with("11 9.1 ; "));
    assert!(sent(&line(&mut s, "12 CONTINUE")).is_empty());
    let a = s.handle(Input::Frame(Frame::LineTooLong));
    assert!(status(&a).starts_with("9.0 ; Command line too long (the limit is 1000"));
    let l = sent(&s.handle(Input::Done(Done::Command(Ok(outcome(vec!["bob".into()]))))));
    assert_eq!(l[0], "10 2.0 r1");
    assert!(l.contains(&"TARGET:bob".to_owned()), "{l:?}");
}

#[test]
fn equals_is_an_empty_response_after_a_prompt_too() {
    let mut s = session();
    assert_eq!(sent(&line(&mut s, "AUTHENTICATE ANONYMOUS")), ["+"]);
    let l = sent(&line(&mut s, "="));
    assert_eq!(l[..3], ["2.0", ".", "IDENTITY=@"]);
}

#[test]
fn same_bad_arguments_text_in_every_state() {
    let mut s = identified();
    let idle = status(&line(&mut s, "ABORT a b"));
    line(&mut s, "SENDDATA");
    s.handle(block(REQUEST));
    assert_eq!(status(&line(&mut s, "ABORT a b")), idle);
}

#[test]
fn too_many_commands_before_login_close_the_connection() {
    let mut s = session();
    for _ in 0..5 {
        assert_eq!(sent(&line(&mut s, "NOOP"))[0], "2.0");
    }
    // A blank line is not a command.
    assert!(line(&mut s, "").is_empty());
    let a = line(&mut s, "CAPABILITY");
    assert_eq!(
        sent(&a)[0],
        "9.1 ; Too many commands without logging in; closing the connection"
    );
    assert!(closes(&a) && s.is_closed());
}

#[test]
fn commands_after_login_are_not_limited() {
    let mut s = identified();
    for _ in 0..10 {
        assert_eq!(sent(&line(&mut s, "NOOP"))[0], "2.0");
    }
}

#[test]
fn sasl_exchange_is_cut_at_the_step_limit() {
    // SCRAM needs two client messages (client-first, client-final); with one allowed, the
    // second is refused as a failed login.
    let mut c = config();
    c.max_sasl_steps = 1;
    let mut s = scram_session(c);
    let mut client = TestClient::new("n,,", "alice", "s3cret-local");
    let a = line(&mut s, "AUTHENTICATE SCRAM-SHA-256");
    assert_eq!(sent(&a), ["+"]);
    let a = line(&mut s, &client.first());
    let server_first = sent(&a).remove(0);
    let a = line(&mut s, &client.final_message(&server_first));
    assert!(matches!(a[0], Action::LoginFailed), "{a:?}");
    assert_eq!(
        sent(&a)[..2],
        [
            ".".to_owned(),
            "6.0 ; Authentication failed: too many SASL steps".to_owned()
        ]
    );
    assert!(!s.is_authenticated());
}
