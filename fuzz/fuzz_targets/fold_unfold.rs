//! Folding and TEXT escaping (src/ical/contentline.rs).
//!
//! - `unfold(fold(s)) == [s]` for any non-empty `s` without CR/LF (the input with CR and LF
//!   removed); every physical line holds at most 75 octets, is valid UTF-8 on its own (no
//!   split character) and every continuation starts with one SP.
//! - `unescape_text(escape_text(s)) == s` with line breaks normalised to LF; escaped text
//!   holds no CR/LF; `escape_text_unescaped` is idempotent.
#![no_main]

use calgate::ical::contentline::{MAX_LINE_OCTETS, escape_text_unescaped};
use calgate::ical::{escape_text, fold, unescape_text, unfold};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);

    let line: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if !line.is_empty() {
        let folded = fold(&line);
        let body = folded.strip_suffix("\r\n").expect("fold ends in CRLF");
        for (i, physical) in body.split("\r\n").enumerate() {
            assert!(physical.len() <= MAX_LINE_OCTETS, "{physical:?}");
            assert!(!physical.is_empty());
            assert!(!physical.contains(['\r', '\n']));
            if i > 0 {
                assert!(physical.starts_with(' '), "{physical:?}");
            }
        }
        assert_eq!(unfold(&folded), vec![line.clone()], "{folded:?}");
    }

    let escaped = escape_text(&text);
    assert!(!escaped.contains(['\r', '\n']), "{escaped:?}");
    let plain = text.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(unescape_text(&escaped), plain);
    let once = escape_text_unescaped(&text);
    assert!(!once.contains(['\r', '\n']));
    assert_eq!(escape_text_unescaped(&once), once);
});
