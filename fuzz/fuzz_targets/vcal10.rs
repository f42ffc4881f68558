//! The vCalendar 1.0 / CIP normaliser (src/ical/vcal10.rs), with every combination of quirk
//! flags, fed as the CIP session feeds it (UTF-8 when valid, else ISO 8859-1).
//!
//! Input: two header bytes (bits 0..9: the ten `Quirks` flags in `Quirks::NAMES` order, bit 10:
//! wrap a bare property list in VFREEBUSY instead of VEVENT), then the calendar text.
//!
//! Checks: no panic; a result is a VCALENDAR with one VERSION (2.0), one PRODID, at most one
//! METHOD and CALSCALE (RFC 5545 §3.6); it reports only known quirk/conversion names, never one
//! that is switched off; `to_ics` gives lines of at most 75 octets that parse back to the same
//! calendar, up to the documented escaping of `ContentLine::to_line` (what goes upstream is
//! what was checked).
#![no_main]

use calgate::ical::vcal10::{CONVERSIONS, Quirks};
use calgate::ical::{Component, DateTime, NormaliseOptions, normalise_with_wrapper};
use calgate_fuzz::wire_form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((head, body)) = input.split_at_checked(2) else {
        return;
    };
    let bits = u16::from_le_bytes([head[0], head[1]]);
    let mut quirks = Quirks::strict();
    for (i, name) in Quirks::NAMES.iter().enumerate() {
        assert!(quirks.set(name, bits & (1 << i) != 0));
    }
    let wrapper = if bits & (1 << 10) != 0 {
        "VFREEBUSY"
    } else {
        "VEVENT"
    };
    let now = DateTime::from_unix_seconds(2_000_000_000).expect("a valid instant");
    let opts = NormaliseOptions {
        quirks,
        ..NormaliseOptions::new(now)
    };
    let text = calgate::cip::session::decode_data(body);
    let Ok(n) = normalise_with_wrapper(&text, &opts, wrapper) else {
        return;
    };
    assert_eq!(n.calendar.name, "VCALENDAR");
    assert_eq!(n.calendar.value("VERSION"), Some("2.0"), "{n:?}");
    assert_eq!(n.calendar.properties("VERSION").count(), 1, "{n:?}");
    assert_eq!(n.calendar.properties("PRODID").count(), 1, "{n:?}");
    assert!(n.calendar.properties("METHOD").count() <= 1, "{n:?}");
    assert!(n.calendar.properties("CALSCALE").count() <= 1, "{n:?}");
    for applied in &n.applied {
        let known = Quirks::NAMES.contains(applied) || CONVERSIONS.contains(applied);
        assert!(known, "unknown name {applied}");
        assert_ne!(
            quirks.get(applied),
            Some(false),
            "{applied} fired while off"
        );
    }
    let ics = n.to_ics();
    for physical in ics.split_terminator("\r\n") {
        assert!(physical.len() <= 75, "{physical:?}");
    }
    assert_eq!(
        Component::parse(&ics).as_ref(),
        Ok(&wire_form(&n.calendar)),
        "{ics}"
    );
});
