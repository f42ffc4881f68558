//! The benchmark tool (`examples/calgate-bench`, BENCHMARKS.md) against the real upstream, in
//! miniature: every answer it checks comes back right, so its figures mean what they say. No
//! speed is asserted. `scripts/test` builds the example (`cargo build --example calgate-bench`)
//! before the tests run.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/calgate-bench, next to this test's deps directory.
fn tool() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/calgate-bench");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --example calgate-bench` (scripts/test does)",
        bin.display()
    );
    bin
}

fn run(args: &[&str]) -> String {
    let up = upstream();
    let calendar = match server() {
        Server::Cyrus => "/dav/calendars/user/{user}/Default/",
        Server::Davical => "/caldav.php/{user}/calendar/",
    };
    let out = Command::new(tool())
        .args(args)
        .args(["--gateway-bin", env!("CARGO_BIN_EXE_calgate")])
        .args(["--upstream-url", &up.url])
        .args(["--principal-template", &up.principal_template])
        .args(["--calendar-template", calendar])
        .output()
        .expect("calgate-bench runs");
    succeeded(&out)
}

/// One session per mode and protocol for a second a round: both summary rows are there, with
/// operations on both sides, no error on either, and the same upstream requests per command.
#[test]
fn load_runs_both_mixes_without_errors() {
    if server() != Server::Cyrus {
        // The direct client reads Cyrus's Schedule-Tag and SCHEDULE-STATUS=1.2; the tool and
        // BENCHMARKS.md are about Cyrus.
        eprintln!(
            "calgate-bench load targets Cyrus; not run against {:?}",
            server()
        );
        return;
    }
    let out = run(&["load", "--n", "1", "--seconds", "1", "--pairs", "1"]);
    for protocol in ["CIP", "CAP"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("| {protocol} | 1 | ")) && l.contains('/'))
            .unwrap_or_else(|| panic!("no {protocol} summary row in:\n{out}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | protocol | N | calgate ops/s | direct ops/s | ratio | … | errors G/D | req/op G/D | …
        let ops = |i: usize| cells[i].parse::<f64>().unwrap();
        assert!(ops(3) > 0.0 && ops(4) > 0.0, "{row}");
        assert_eq!(cells[9], "0/0", "errors in {row}");
        let (g, d) = cells[10].split_once('/').unwrap();
        let (g, d): (f64, f64) = (g.parse().unwrap(), d.parse().unwrap());
        assert!(
            (g - d).abs() <= 0.5,
            "upstream requests per command differ: {row}"
        );
    }
}

/// Twenty idle CAP sessions: all logged in, all open, and a memory figure per session.
#[test]
fn idle_holds_logged_in_sessions() {
    let out = run(&["idle", "--steps", "20", "--settle-secs", "1"]);
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("20 "))
        .unwrap_or_else(|| panic!("no row for 20 sessions in:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // sessions failed open alive login/s RSS0 RSS KiB/session …
    assert_eq!(&cells[..4], ["20", "0", "20", "20"], "{row}");
    assert!(cells[7].parse::<f64>().unwrap() > 0.0, "{row}");
}
