//! The SQL-MIN reader of CAP VQUERY (src/cap/vquery.rs `parse`) and what READ does with a
//! query: `pushdown`, `matches`, `project`, `sort`.
//!
//! Checks: no panic, no deep recursion; `Display` prints SQL-MIN that parses back to the same
//! query; the pushdown is a safe superset on fixed sample components: whatever `matches`
//! accepts has the pushed-down UID, overlaps the pushed-down time range (RFC 4791 §9.9) and,
//! for a booked entry (METHOD CREATE), is not filtered out as "scheduled only"; a projection
//! keeps the component's name and UID.
#![no_main]

use std::sync::OnceLock;

use calgate::cap::vquery::{MAX_QUERY_OCTETS, MethodFilter, parse};
use calgate::ical::{Component, DateTime, unescape_text};
use libfuzzer_sys::fuzz_target;

const SAMPLES: [&str; 4] = [
    "BEGIN:VEVENT\r\nUID:a@example.com\r\nDTSTAMP:20310101T000000Z\r\nDTSTART:20310203T100000Z\r\n\
     DTEND:20310203T110000Z\r\nSUMMARY:Bravo\r\nLOCATION:Room 2\r\nSEQUENCE:2\r\nSTATUS:CONFIRMED\r\n\
     CATEGORIES:Meeting,Work\r\nORGANIZER;CN=Alice:mailto:alice@example.com\r\n\
     ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n\
     TRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n",
    "BEGIN:VEVENT\r\nUID:b@example.com\r\nDTSTART;VALUE=DATE:20310204\r\nSUMMARY:All day\r\n\
     CLASS:PRIVATE\r\nEND:VEVENT\r\n",
    "BEGIN:VTODO\r\nUID:c@example.com\r\nDTSTART:20310203T093000Z\r\nDUE:20310203T170000Z\r\n\
     PRIORITY:1\r\nPERCENT-COMPLETE:50\r\nSUMMARY:Delta\r\nEND:VTODO\r\n",
    "BEGIN:VEVENT\r\nUID:d@example.com\r\nDTSTART;TZID=Europe/Paris:20310205T090000\r\n\
     DURATION:PT1H\r\nSUMMARY:Zoned\\, escaped\r\nEND:VEVENT\r\n",
];

/// The first sample's DTSTART and DTEND as Unix seconds.
const FIRST_START: i64 = 1_927_879_200;
const FIRST_END: i64 = FIRST_START + 3600;

fn samples() -> &'static [Component] {
    static CELL: OnceLock<Vec<Component>> = OnceLock::new();
    CELL.get_or_init(|| {
        let parsed: Vec<Component> = SAMPLES
            .iter()
            .map(|s| Component::parse(s).expect("sample parses"))
            .collect();
        let first = DateTime::from_unix_seconds(FIRST_START).expect("valid");
        assert_eq!(parsed[0].value("DTSTART"), Some(first.to_ical().as_str()));
        parsed
    })
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let Ok(query) = parse(&text) else {
        return;
    };
    let printed = query.to_string();
    if printed.len() <= MAX_QUERY_OCTETS {
        assert_eq!(
            parse(&printed).as_ref(),
            Ok(&query),
            "{text:?} -> {printed:?}"
        );
    }

    let pd = query.pushdown();
    let only_vevent = query.from.len() == 1 && query.from[0] == "VEVENT";
    for (i, c) in samples().iter().enumerate() {
        for method in ["CREATE", "REQUEST", "CANCEL"] {
            if !query.matches(c, method) {
                continue;
            }
            if let Some(uid) = &pd.uid {
                let have = c.value("UID").map(unescape_text);
                assert_eq!(have.as_deref(), Some(uid.as_str()), "{query} {pd:?}");
            }
            if method == "CREATE" {
                assert_ne!(pd.entries, MethodFilter::Scheduled, "{query}");
            }
            if i == 0 && only_vevent {
                if let Some(start) = &pd.start {
                    assert!(start.wall_seconds() < FIRST_END, "{query} {pd:?}");
                }
                if let Some(end) = &pd.end {
                    assert!(end.wall_seconds() > FIRST_START, "{query} {pd:?}");
                }
            }
        }
        let projected = query.project(c);
        assert_eq!(projected.name, c.name);
        assert_eq!(projected.value("UID"), c.value("UID"));
    }
    let mut sorted = samples().to_vec();
    query.sort(&mut sorted);
    assert_eq!(sorted.len(), SAMPLES.len());
});
