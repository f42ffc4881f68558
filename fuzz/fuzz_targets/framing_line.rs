//! `DotCodec` (src/framing.rs) in line mode only, as both listeners use it for command lines.
//!
//! Input: a 5-byte header (flags, limits, chunk seed; see `CodecSetup::from_input`), then the
//! bytes a client sends. Checks: no panic; the frames equal the whole-input model whatever the
//! chunk splits; no line over `max_line`; bounded buffering; and the reply encoder never puts a
//! CR or LF inside a line (a reply line decodes back as one line with CR/LF turned to spaces).
#![no_main]

use bytes::BytesMut;
use calgate::framing::{DotCodec, Frame, Limits};
use calgate_fuzz::{CodecSetup, Switch, assert_bounded, model_frames, run_codec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|input: &[u8]| {
    let Some(mut setup) = CodecSetup::from_input(input) else {
        return;
    };
    // Line mode only: the header's "start in block mode" flag is ignored here.
    setup.start_in_block = false;
    let frames = run_codec(&setup, Switch::Never);
    assert_eq!(frames, model_frames(&setup, Switch::Never), "{setup:?}");
    assert_bounded(&frames, setup.limits);
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, Frame::Block(_) | Frame::BlockTooLarge))
    );

    // Reply lines: whatever text (here each received line, ISO 8859-1 decoded, as the CIP
    // session reads it) goes out as exactly one CRLF-terminated line.
    for f in &frames {
        let Frame::Line(line) = f else { continue };
        let text = calgate::cip::session::latin1(line);
        let mut codec = DotCodec::new(setup.limits);
        let mut wire = BytesMut::new();
        codec
            .encode(text.clone(), &mut wire)
            .expect("encode never fails");
        assert!(wire.ends_with(b"\r\n"));
        let body = &wire[..wire.len() - 2];
        assert!(!body.contains(&b'\r') && !body.contains(&b'\n'), "{wire:?}");
        let mut reader = DotCodec::new(Limits {
            max_line: body.len(),
            ..setup.limits
        });
        let back = reader.decode(&mut wire).expect("decode never fails");
        let want = text.replace(['\r', '\n'], " ").into_bytes();
        assert_eq!(back, Some(Frame::Line(want)));
        assert!(wire.is_empty());
    }
});
