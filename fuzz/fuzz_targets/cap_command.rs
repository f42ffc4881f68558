//! The CSTP command-line parser (src/cap/command.rs), fed raw bytes as the CAP session feeds
//! it (a line without its line end).
//!
//! Checks: no panic; a parsed command is US-ASCII throughout; a parsed command, written back as
//! its canonical line (`calgate_fuzz::render_cap`: tag, canonical verb, single spaces,
//! ` ; cmdid`), parses to the same tag and command (calgate has no CSTP command encoder, so
//! the canonical form lives in the fuzz crate); latencies and counts stay in their ranges.
#![no_main]

use calgate::cap::command::{Command, MAX_GENERATED_UIDS, MAX_LATENCY_SECS, parse};
use calgate_fuzz::render_cap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(tagged) = parse(input) else {
        return;
    };
    assert!(input.is_ascii());
    match &tagged.command {
        Command::SendData { latency: Some(n) }
        | Command::Continue {
            latency: Some(n), ..
        } => {
            assert!((1..=MAX_LATENCY_SECS).contains(n));
        }
        Command::GenerateUid { count } => assert!((1..=MAX_GENERATED_UIDS).contains(count)),
        _ => {}
    }
    let canonical = render_cap(&tagged);
    assert_eq!(
        parse(canonical.as_bytes()),
        Ok(tagged),
        "{:?} -> {canonical:?}",
        String::from_utf8_lossy(input)
    );
});
