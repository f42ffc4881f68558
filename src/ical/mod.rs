//! iCalendar for the gateway: content lines, components, date-times,
//! scheduling helpers and the vCalendar 1.0 normaliser.
//!
//! | module | implements |
//! |---|---|
//! | [`contentline`] | RFC 5545 §3.1 content lines, folding/unfolding; §3.2 parameters (quoted values); §3.3.11 TEXT escaping; RFC 6868 on output |
//! | [`component`] | RFC 5545 §3.4/§3.6 BEGIN/END components, bounded nesting |
//! | [`datetime`] | RFC 5545 §3.3.4 DATE, §3.3.5 DATE-TIME, §3.3.6 DURATION; legacy forms of `cap-cstp.md` §7.3 #12 |
//! | [`property`] | RFC 5545 §3.7/§3.8 property names and how their values compare |
//! | [`scheduling`] | RFC 5546 / RFC 6638 helpers: addresses (§7.3 #14), ORGANIZER/ATTENDEE, PARTSTAT, SCHEDULE-STATUS |
//! | [`vcal10`] | vCalendar 1.0 and draft-ietf-calsch-cip-00 data → iCalendar 2.0 (`cap-cstp.md` §7.3 #7–#14) |
//!
//! Everything here works on `&str` that is already one decoded text (the
//! transport decides the charset); parsers never panic and are bounded
//! ([`component::MAX_DEPTH`], [`component::MAX_LINES`]).
//!
//! Typical flow for a CIP `SENDEVENT` body:
//!
//! ```
//! use calgate::ical::{DateTime, NormaliseOptions, normalise, first_schedulable};
//! let opts = NormaliseOptions::new(DateTime::from_unix_seconds(0).unwrap());
//! let body = "UID: 4711@a.com\r\nDTSTART: 19961231T2000-0500\r\nATTENDEE; ROLE=OWNER: Pete <p@a.com>";
//! let n = normalise(body, &opts).unwrap();
//! let ev = first_schedulable(&n.calendar).unwrap();
//! assert_eq!(ev.uid(), Some("4711@a.com"));
//! assert_eq!(ev.organizer().unwrap().to_uri(), "mailto:p@a.com");
//! assert_eq!(ev.value("DTSTART"), Some("19970101T010000Z"));
//! let ics: String = n.to_ics(); // folded, CRLF, ready for a CalDAV PUT/POST
//! # assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"));
//! ```

pub mod component;
pub mod contentline;
pub mod datetime;
pub mod property;
pub mod scheduling;
pub mod vcal10;

#[cfg(test)]
pub(crate) mod testing;

pub use component::{Component, ComponentError, parse_components};
pub use contentline::{
    ContentLine, ContentLineError, Param, escape_text, fold, unescape_text, unfold,
};
pub use datetime::{Date, DateOrDateTime, DateTime, DateTimeError, Duration, Zone};
pub use scheduling::{
    Address, Attendee, ScheduleStatus, calendar_address, calendar_method, first_schedulable,
    first_schedulable_mut,
};
pub use vcal10::{
    NormaliseError, NormaliseOptions, Normalised, Quirks, normalise, normalise_with_wrapper,
    responder_status,
};
