//! `DotCodec` (src/framing.rs) switching between line and block mode the way the sessions do:
//! block mode after a data command (`SENDEVENT +`, `RSVP +`, `SENDDATA`), or from the start
//! (header flag), back to line mode after the lone `.`.
//!
//! Input: a 5-byte header (flags, limits, chunk seed; see `CodecSetup::from_input`), then the
//! bytes a client sends. Checks: no panic; the frames equal the whole-input model whatever the
//! chunk splits (no smuggled `.` line, no lost or extra frame); no line, block or block line
//! over its limit; bounded buffering; and every block survives dot-stuffing → decoding
//! unchanged (the sender side of RFC 5321 §4.5.2 and our decoder agree).
#![no_main]

use calgate::framing::{Frame, Limits};
use calgate_fuzz::{
    CodecSetup, Switch, assert_bounded, decode_block, encode_block, model_frames, run_codec,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some(setup) = CodecSetup::from_input(input) else {
        return;
    };
    let frames = run_codec(&setup, Switch::OnDataCommand);
    assert_eq!(
        frames,
        model_frames(&setup, Switch::OnDataCommand),
        "{setup:?}"
    );
    assert_bounded(&frames, setup.limits);

    for f in &frames {
        let Frame::Block(block) = f else { continue };
        // Stuffing adds at most one octet to a line.
        let limits = Limits {
            max_data_line: setup.limits.max_data_line + 1,
            ..setup.limits
        };
        let wire = encode_block(block);
        assert_eq!(
            decode_block(&wire, limits),
            vec![Frame::Block(block.clone())],
            "block does not survive stuffing: {block:?}"
        );
        // The crate's own stuffer agrees with the byte-level one on text lines.
        if let Ok(text) = std::str::from_utf8(block) {
            let mut via_stuff = String::new();
            for line in text.split_terminator("\r\n") {
                via_stuff.push_str(&calgate::framing::stuff(line));
                via_stuff.push_str("\r\n");
            }
            via_stuff.push_str(".\r\n");
            assert_eq!(via_stuff.as_bytes(), &wire[..]);
        }
    }
});
