//! Fixtures shared by unit tests: components written as indented text, and a fixed clock.

use crate::ical::component::{Component, parse_components};
use crate::ical::contentline::ContentLine;
use crate::ical::datetime::{DateTime, Zone};

/// 2025-06-01T12:00:00Z, the `now` of tests that set DTSTAMP or LAST-MODIFIED.
pub(crate) fn now() -> DateTime {
    DateTime::new(2025, 6, 1, 12, 0, 0, Zone::Utc).unwrap()
}

/// `text` with every line trimmed, blank lines dropped, and CRLF between lines, so that a
/// fixture can be indented like the code around it.
fn unindent(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The one component written (indented) in `text`.
pub(crate) fn comp(text: &str) -> Component {
    Component::parse(&unindent(text)).unwrap()
}

/// The components written (indented) in `text`, in order.
pub(crate) fn comps(text: &str) -> Vec<Component> {
    parse_components(&unindent(text)).unwrap()
}

/// Every `name` line of `c`, as written out.
pub(crate) fn lines(c: &Component, name: &str) -> Vec<String> {
    c.properties(name).map(ContentLine::to_line).collect()
}
