//! iCalendar content lines and components (src/ical/contentline.rs, src/ical/component.rs):
//! `unfold`, `ContentLine::parse` on every logical line, `parse_components` on the whole text.
//!
//! Checks: no panic; unfolded lines are non-empty and hold no LF; a parsed line has an
//! upper-cased legal name, legal parameter names and a value without CR/LF; parsed components
//! serialise (`to_ics`) to lines of at most 75 octets that parse back to the same components.
#![no_main]

use calgate::ical::component::{MAX_DEPTH, parse_components};
use calgate::ical::contentline::{MAX_LINE_OCTETS, is_name_char, unescape_text};
use calgate::ical::{Component, ContentLine, unfold};
use libfuzzer_sys::fuzz_target;

fn legal_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(is_name_char) && n == n.to_ascii_uppercase()
}

fn depth(c: &Component) -> usize {
    1 + c.components.iter().map(depth).max().unwrap_or(0)
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    for line in unfold(&text) {
        assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
        let Ok(cl) = ContentLine::parse(&line) else {
            continue;
        };
        assert!(legal_name(&cl.name), "{cl:?}");
        assert!(cl.params.iter().all(|p| legal_name(&p.name)), "{cl:?}");
        assert!(cl.params.iter().all(|p| !p.values.is_empty()), "{cl:?}");
        assert!(!cl.value.contains(['\r', '\n']), "{cl:?}");
        let _ = unescape_text(&cl.value);
    }
    let Ok(components) = parse_components(&text) else {
        return;
    };
    for c in &components {
        assert!(depth(c) <= MAX_DEPTH);
        let ics = c.to_ics();
        for physical in ics.split_terminator("\r\n") {
            assert!(physical.len() <= MAX_LINE_OCTETS, "{physical:?}");
            assert!(!physical.contains(['\r', '\n']), "{physical:?}");
        }
        assert_eq!(Component::parse(&ics).as_ref(), Ok(c), "{ics:?}");
    }
});
