//! The CIP command-line parser (src/cip/command.rs), fed as the CIP session feeds it: a line
//! without its line end, ISO 8859-1 decoded.
//!
//! Checks: no panic; `is_blank` agrees with `CommandError::Empty`; a parsed command, written
//! back as its canonical line (`calgate_fuzz::render_cip`), parses to the same command
//! (calgate has no CIP command encoder, so the canonical form lives in the fuzz crate).
#![no_main]

use calgate::cip::command::{CommandError, is_blank, parse};
use calgate::cip::session::latin1;
use calgate_fuzz::render_cip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let line = latin1(input);
    let parsed = parse(&line);
    if is_blank(&line) {
        assert_eq!(parsed, Err(CommandError::Empty), "{line:?}");
    }
    if let Ok(command) = parsed {
        let canonical = render_cip(&command);
        assert_eq!(parse(&canonical), Ok(command), "{line:?} -> {canonical:?}");
    }
});
