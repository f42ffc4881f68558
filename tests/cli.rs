//! The `calgate` binary: check-config and probe, run as an operator would.

mod common;

use common::*;
use std::process::Command;

fn calgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calgate"))
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let out = calgate()
        .args(["check-config", "gateway.toml"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("calgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "unknown.toml",
            "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\ncolour = 1\n",
            "colour",
        ),
        (
            "badurl.toml",
            "[upstream]\nurl = \"ftp://h/\"\ndomain = \"example.com\"\n",
            "upstream.url",
        ),
        (
            "limit.toml",
            "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n[limits]\nmax_connections = 0\n",
            "limits.max_connections",
        ),
    ];
    for (name, text, key) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = calgate().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{name}: {err}");
    }
    let out = calgate()
        .args(["check-config", "/nonexistent/calgate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// The probe against the real upstream, with the shipped gateway.toml adjusted to the test
/// upstream (identical for Cyrus).
#[test]
fn probe_reports_what_the_upstream_supports() {
    let up = upstream();
    let dir = std::env::temp_dir().join(format!("calgate-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("gateway.toml");
    let shipped = std::fs::read_to_string(repo().join("gateway.toml")).unwrap();
    let text = shipped
        .replace(
            "url = \"http://127.0.0.1:8008/\"",
            &format!("url = \"{}\"", up.url),
        )
        .replace(
            "principal_template = \"/dav/principals/user/{user}/\"",
            &format!("principal_template = \"{}\"", up.principal_template),
        );
    std::fs::write(&cfg, text).unwrap();
    let out = calgate()
        .args([
            "probe",
            "--user",
            "alice",
            "--other",
            "bob@example.com",
            "--config",
        ])
        .arg(&cfg)
        .env("CALGATE_PASSWORD", "alicepw")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "calendar-access:       yes",
        "calendar-auto-schedule: yes",
        "free-busy for others:  works: bob@example.com answered 2.0",
        "mailto:alice@example.com",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let expected_tag = match server() {
        Server::Cyrus => "Schedule-Tag:          sent",
        Server::Davical => "Schedule-Tag:          not sent",
    };
    assert!(stdout.contains(expected_tag), "{stdout}");
    assert!(!stdout.contains("alicepw"));

    // A wrong password is a clear failure, not a report.
    let out = calgate()
        .args(["probe", "--user", "alice", "--config"])
        .arg(&cfg)
        .env("CALGATE_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
}
