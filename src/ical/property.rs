//! The iCalendar properties calgate knows by name (RFC 5545 §3.7, §3.8) and how their values
//! compare.

/// The properties of RFC 5545 §3.7 and §3.8 (METHOD included, also CAP's pseudo-column,
/// cap-cstp.md §3.3), with how their values compare. One table for CAP VQUERY (its fold repair
/// trusts these column names; `cap::vquery`), for MODIFY's value comparison (`cap::modify`)
/// and, with the vCalendar 1.0 names, for the normaliser's name checks (`super::vcal10`); a
/// name not listed is [`ValueKind::Other`].
pub const PROPERTIES: [(&str, ValueKind); 46] = [
    ("ACTION", ValueKind::Enumerated),
    ("ATTACH", ValueKind::Text),
    ("ATTENDEE", ValueKind::CalAddress),
    ("CALSCALE", ValueKind::Enumerated),
    ("CATEGORIES", ValueKind::Text),
    ("CLASS", ValueKind::Enumerated),
    ("COMMENT", ValueKind::Text),
    ("COMPLETED", ValueKind::DateTime),
    ("CONTACT", ValueKind::Text),
    ("CREATED", ValueKind::DateTime),
    ("DESCRIPTION", ValueKind::Text),
    ("DTEND", ValueKind::DateTime),
    ("DTSTAMP", ValueKind::DateTime),
    ("DTSTART", ValueKind::DateTime),
    ("DUE", ValueKind::DateTime),
    ("DURATION", ValueKind::Other),
    ("EXDATE", ValueKind::DateTime),
    ("FREEBUSY", ValueKind::Other),
    ("GEO", ValueKind::Text),
    ("LAST-MODIFIED", ValueKind::DateTime),
    ("LOCATION", ValueKind::Text),
    ("METHOD", ValueKind::Enumerated),
    ("ORGANIZER", ValueKind::CalAddress),
    ("PERCENT-COMPLETE", ValueKind::Integer),
    ("PRIORITY", ValueKind::Integer),
    ("PRODID", ValueKind::Text),
    ("RDATE", ValueKind::Other),
    ("RECURRENCE-ID", ValueKind::DateTime),
    ("RELATED-TO", ValueKind::Text),
    ("REPEAT", ValueKind::Integer),
    ("REQUEST-STATUS", ValueKind::Text),
    ("RESOURCES", ValueKind::Text),
    ("RRULE", ValueKind::Text),
    ("SEQUENCE", ValueKind::Integer),
    ("STATUS", ValueKind::Enumerated),
    ("SUMMARY", ValueKind::Text),
    ("TRANSP", ValueKind::Enumerated),
    ("TRIGGER", ValueKind::Other),
    ("TZID", ValueKind::Text),
    ("TZNAME", ValueKind::Text),
    ("TZOFFSETFROM", ValueKind::Other),
    ("TZOFFSETTO", ValueKind::Other),
    ("TZURL", ValueKind::Other),
    ("UID", ValueKind::Text),
    ("URL", ValueKind::Text),
    ("VERSION", ValueKind::Text),
];

/// How values of a property compare (cap-cstp.md §3.4 evaluation rules; CAP MODIFY's OLD
/// values use the same kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Instants.
    DateTime,
    /// Integers (text if a side is not one).
    Integer,
    /// CAL-ADDRESS: `mailto:` and case ignored.
    CalAddress,
    /// Enumerated: case-insensitive.
    Enumerated,
    /// TEXT: exact on the unescaped value.
    Text,
    /// Unknown: instants, else durations, else integers, else text.
    Other,
}

/// The entry of `property` (any case) in [`PROPERTIES`].
pub fn known_property(property: &str) -> Option<ValueKind> {
    PROPERTIES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(property))
        .map(|&(_, kind)| kind)
}

/// How values of `property` compare: its entry in [`PROPERTIES`], else [`ValueKind::Other`].
pub fn kind_of(property: &str) -> ValueKind {
    known_property(property).unwrap_or(ValueKind::Other)
}

/// Properties whose value is a comma-separated list (RFC 5545 §3.1.1).
pub fn is_multi_valued(property: &str) -> bool {
    ["CATEGORIES", "RESOURCES", "EXDATE", "RDATE"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(property))
}
