//! iCalendar components: `BEGIN:<name>` … `END:<name>` blocks (RFC 5545 §3.4,
//! §3.6) built from content lines (RFC 5545 §3.1).
//!
//! [`parse_components`] unfolds the text, parses each logical line with
//! [`ContentLine::parse`] and checks the BEGIN/END nesting. It is bounded so
//! that untrusted input can neither panic nor exhaust memory or stack:
//! at most [`MAX_DEPTH`] nested components and [`MAX_LINES`] logical lines.
//! [`Component::to_ics`] serialises with [`fold`] and CRLF.

use thiserror::Error;

use crate::ical::contentline::{ContentLine, ContentLineError, fold, unfold_lines};

/// Deepest component nesting accepted (VCALENDAR > VEVENT > VALARM is 3).
pub const MAX_DEPTH: usize = 16;
/// Most logical lines accepted in one parse.
pub const MAX_LINES: usize = 100_000;

/// Why a text is not a well-formed sequence of components.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ComponentError {
    /// A logical line is not a content line.
    #[error("line {line_no}: {source}")]
    Line {
        /// 1-based logical line number.
        line_no: usize,
        /// The content-line error.
        source: ContentLineError,
    },
    /// `BEGIN:` with an empty component name.
    #[error("line {line_no}: BEGIN without a component name")]
    EmptyBegin {
        /// 1-based logical line number.
        line_no: usize,
    },
    /// `END:X` closes a component other than the open one.
    #[error("line {line_no}: END:{found} does not match BEGIN:{expected}")]
    MismatchedEnd {
        /// 1-based logical line number.
        line_no: usize,
        /// The open component.
        expected: String,
        /// The name in the END line.
        found: String,
    },
    /// `END:X` with no open component.
    #[error("line {line_no}: END:{found} without a matching BEGIN")]
    UnexpectedEnd {
        /// 1-based logical line number.
        line_no: usize,
        /// The name in the END line.
        found: String,
    },
    /// The text ends while a component is open.
    #[error("BEGIN:{name} is never closed (missing END:{name})")]
    MissingEnd {
        /// The open component.
        name: String,
    },
    /// A property line outside any component.
    #[error("line {line_no}: property {name} outside any BEGIN/END block")]
    PropertyOutsideComponent {
        /// 1-based logical line number.
        line_no: usize,
        /// The property name.
        name: String,
    },
    /// [`Component::parse`] found no or several top-level components.
    #[error("expected exactly one top-level component, found {found}")]
    ExpectedOne {
        /// How many were found.
        found: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("components nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More than [`MAX_LINES`] logical lines.
    #[error("more than {limit} lines")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
}

/// One component with its properties (in order) and sub-components.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// Upper-cased component name (`VCALENDAR`, `VEVENT`, …).
    pub name: String,
    /// Properties in their original order.
    pub properties: Vec<ContentLine>,
    /// Sub-components in their original order.
    pub components: Vec<Component>,
}

/// One item of a component body, before nesting is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A component (already complete).
    Component(Component),
    /// A property outside any component.
    Property {
        /// 1-based position in the input sequence.
        line_no: usize,
        /// The property.
        line: ContentLine,
    },
}

/// Parse every top-level component of an iCalendar text.
///
/// ```abnf
/// stream    = *component                     ; RFC 5545 §3.4 / §3.6
/// component = "BEGIN" ":" name CRLF *(property / component) "END" ":" name CRLF
/// ```
/// Property lines outside any component are an error.
pub fn parse_components(text: &str) -> Result<Vec<Component>, ComponentError> {
    // Borrowed logical lines: only folded ones are copied.
    let lines: Vec<_> = unfold_lines(text).collect();
    if lines.len() > MAX_LINES {
        return Err(ComponentError::TooManyLines { limit: MAX_LINES });
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let cl = ContentLine::parse(l).map_err(|source| ComponentError::Line {
            line_no: i + 1,
            source,
        })?;
        parsed.push(cl);
    }
    let mut out = Vec::new();
    for item in build_items(parsed)? {
        match item {
            Item::Component(c) => out.push(c),
            Item::Property { line_no, line } => {
                return Err(ComponentError::PropertyOutsideComponent {
                    line_no,
                    name: line.name,
                });
            }
        }
    }
    Ok(out)
}

/// Nest a flat sequence of content lines by BEGIN/END.
///
/// Returns the top-level items: complete components and loose properties (a
/// caller that accepts bare property lists, such as the vCalendar normaliser,
/// wraps those itself). Bounded by [`MAX_DEPTH`] and [`MAX_LINES`].
pub fn build_items(
    lines: impl IntoIterator<Item = ContentLine>,
) -> Result<Vec<Item>, ComponentError> {
    let mut top: Vec<Item> = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        let line_no = i + 1;
        if line_no > MAX_LINES {
            return Err(ComponentError::TooManyLines { limit: MAX_LINES });
        }
        if line.name == "BEGIN" {
            let name = line.value.trim().to_ascii_uppercase();
            if name.is_empty() {
                return Err(ComponentError::EmptyBegin { line_no });
            }
            if stack.len() >= MAX_DEPTH {
                return Err(ComponentError::TooDeep { limit: MAX_DEPTH });
            }
            stack.push(Component::new(&name));
        } else if line.name == "END" {
            let found = line.value.trim().to_ascii_uppercase();
            let Some(open) = stack.pop() else {
                return Err(ComponentError::UnexpectedEnd { line_no, found });
            };
            if open.name != found {
                return Err(ComponentError::MismatchedEnd {
                    line_no,
                    expected: open.name,
                    found,
                });
            }
            match stack.last_mut() {
                Some(parent) => parent.components.push(open),
                None => top.push(Item::Component(open)),
            }
        } else {
            match stack.last_mut() {
                Some(parent) => parent.properties.push(line),
                None => top.push(Item::Property { line_no, line }),
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(ComponentError::MissingEnd { name: open.name });
    }
    Ok(top)
}

impl Component {
    /// An empty component; the name is upper-cased.
    pub fn new(name: &str) -> Self {
        Component {
            name: name.to_ascii_uppercase(),
            properties: Vec::new(),
            components: Vec::new(),
        }
    }

    /// Parse a text that holds exactly one top-level component.
    pub fn parse(text: &str) -> Result<Component, ComponentError> {
        let mut all = parse_components(text)?;
        if all.len() != 1 {
            return Err(ComponentError::ExpectedOne { found: all.len() });
        }
        all.pop().ok_or(ComponentError::ExpectedOne { found: 0 })
    }

    /// The first property called `name` (case-insensitive).
    pub fn property(&self, name: &str) -> Option<&ContentLine> {
        self.properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Every property called `name` (case-insensitive), in order.
    pub fn properties<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ContentLine> + 'a {
        self.properties
            .iter()
            .filter(move |p| p.name.eq_ignore_ascii_case(name))
    }

    /// The first property called `name`, mutably.
    pub fn property_mut(&mut self, name: &str) -> Option<&mut ContentLine> {
        self.properties
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first property called `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.property(name).map(|p| p.value.as_str())
    }

    /// Remove every property called `name`; returns how many were removed.
    pub fn remove_properties(&mut self, name: &str) -> usize {
        let before = self.properties.len();
        self.properties
            .retain(|p| !p.name.eq_ignore_ascii_case(name));
        before - self.properties.len()
    }

    /// Replace the first property with the same name (in place), or append.
    pub fn set_property(&mut self, line: ContentLine) {
        match self.property_mut(&line.name) {
            Some(p) => *p = line,
            None => self.properties.push(line),
        }
    }

    /// The first descendant called `name` (case-insensitive), depth-first in
    /// document order; `self` is not considered.
    pub fn find(&self, name: &str) -> Option<&Component> {
        for c in &self.components {
            if c.name.eq_ignore_ascii_case(name) {
                return Some(c);
            }
            if let Some(f) = c.find(name) {
                return Some(f);
            }
        }
        None
    }

    /// Mutable form of [`Component::find`].
    pub fn find_mut(&mut self, name: &str) -> Option<&mut Component> {
        for c in self.components.iter_mut() {
            if c.name.eq_ignore_ascii_case(name) {
                return Some(c);
            }
            if c.find(name).is_some() {
                return c.find_mut(name);
            }
        }
        None
    }

    /// Serialise as iCalendar text: BEGIN/END, every line folded, CRLF.
    pub fn to_ics(&self) -> String {
        let mut out = String::new();
        self.write_ics(&mut out);
        out
    }

    fn write_ics(&self, out: &mut String) {
        out.push_str(&fold(&ContentLine::new("BEGIN", &self.name).to_line()));
        for p in &self.properties {
            out.push_str(&fold(&p.to_line()));
        }
        for c in &self.components {
            c.write_ics(out);
        }
        out.push_str(&fold(&ContentLine::new("END", &self.name).to_line()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//test//EN\r\n\
METHOD:REQUEST\r\n\
BEGIN:VEVENT\r\n\
UID:1@example.com\r\n\
SUMMARY:A long summary that is folded over more than one physical line so t\r\n\
\x20hat unfolding is exercised\r\n\
ATTENDEE;CN=\"Doe, Jane\":mailto:jane@example.com\r\n\
ATTENDEE:mailto:bob@example.com\r\n\
BEGIN:VALARM\r\n\
ACTION:DISPLAY\r\n\
TRIGGER:-PT15M\r\n\
END:VALARM\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn parse_and_navigate() {
        let comps = parse_components(REQUEST).unwrap();
        assert_eq!(comps.len(), 1);
        let cal = &comps[0];
        assert_eq!(cal.name, "VCALENDAR");
        assert_eq!(cal.value("method"), Some("REQUEST"));
        let ev = cal.find("vevent").unwrap();
        assert_eq!(
            ev.value("SUMMARY"),
            Some(
                "A long summary that is folded over more than one physical line so that unfolding is exercised"
            )
        );
        assert_eq!(ev.properties("ATTENDEE").count(), 2);
        assert_eq!(cal.find("VALARM").unwrap().value("TRIGGER"), Some("-PT15M"));
        assert!(cal.find("VTODO").is_none());
        assert!(cal.find("VCALENDAR").is_none());
    }

    #[test]
    fn round_trip_to_ics() {
        let cal = Component::parse(REQUEST).unwrap();
        let ics = cal.to_ics();
        assert_eq!(ics, REQUEST);
        assert_eq!(Component::parse(&ics).unwrap(), cal);
    }

    #[test]
    fn mutation() {
        let mut cal = Component::parse(REQUEST).unwrap();
        let ev = cal.find_mut("VEVENT").unwrap();
        ev.set_property(ContentLine::new("SUMMARY", "short"));
        ev.set_property(ContentLine::new("SEQUENCE", "2"));
        assert_eq!(ev.properties[1].to_line(), "SUMMARY:short");
        assert_eq!(ev.properties.last().unwrap().to_line(), "SEQUENCE:2");
        assert_eq!(ev.remove_properties("attendee"), 2);
        assert_eq!(ev.remove_properties("attendee"), 0);
        ev.property_mut("UID").unwrap().value = "2@x".into();
        assert_eq!(cal.find("VEVENT").unwrap().value("UID"), Some("2@x"));
        let alarm = cal.find_mut("VALARM").unwrap();
        alarm.set_property(ContentLine::new("ACTION", "AUDIO"));
        assert_eq!(cal.find("VALARM").unwrap().value("ACTION"), Some("AUDIO"));
    }

    #[test]
    fn nesting_errors() {
        let cases: Vec<(&str, ComponentError)> = vec![
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n",
                ComponentError::MismatchedEnd {
                    line_no: 3,
                    expected: "VEVENT".into(),
                    found: "VCALENDAR".into(),
                },
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\n",
                ComponentError::MissingEnd {
                    name: "VCALENDAR".into(),
                },
            ),
            (
                "END:VEVENT\n",
                ComponentError::UnexpectedEnd {
                    line_no: 1,
                    found: "VEVENT".into(),
                },
            ),
            (
                "UID:x\n",
                ComponentError::PropertyOutsideComponent {
                    line_no: 1,
                    name: "UID".into(),
                },
            ),
            ("BEGIN:\n", ComponentError::EmptyBegin { line_no: 1 }),
            (
                "BEGIN:VCALENDAR\nno colon here\n",
                ComponentError::Line {
                    line_no: 2,
                    source: ContentLineError::MissingColon {
                        line: "no colon here".into(),
                    },
                },
            ),
        ];
        for (text, err) in cases {
            assert_eq!(parse_components(text), Err(err), "{text:?}");
        }
        let e = parse_components("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: END:VCALENDAR does not match BEGIN:VEVENT"
        );
        let e = parse_components("BEGIN:VEVENT\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "BEGIN:VEVENT is never closed (missing END:VEVENT)"
        );
    }

    #[test]
    fn limits() {
        let deep: String = (0..17).map(|i| format!("BEGIN:X{i}\n")).collect();
        assert_eq!(
            parse_components(&deep),
            Err(ComponentError::TooDeep { limit: 16 })
        );
        let ok: String = (0..16)
            .map(|i| format!("BEGIN:X{i}\n"))
            .chain((0..16).rev().map(|i| format!("END:X{i}\n")))
            .collect();
        assert_eq!(parse_components(&ok).unwrap().len(), 1);
        let many = "BEGIN:A\n".to_string() + &"X:1\n".repeat(MAX_LINES) + "END:A\n";
        assert_eq!(
            parse_components(&many),
            Err(ComponentError::TooManyLines { limit: MAX_LINES })
        );
    }

    #[test]
    fn build_items_keeps_loose_properties() {
        let lines = ["UID:1", "BEGIN:VALARM", "ACTION:DISPLAY", "END:VALARM"]
            .iter()
            .map(|l| ContentLine::parse(l).unwrap());
        let items = build_items(lines).unwrap();
        assert!(matches!(&items[0], Item::Property { line_no: 1, line } if line.name == "UID"));
        assert!(matches!(&items[1], Item::Component(c) if c.name == "VALARM"));
    }

    #[test]
    fn parse_single() {
        assert_eq!(
            Component::parse("BEGIN:A\nEND:A\nBEGIN:B\nEND:B\n"),
            Err(ComponentError::ExpectedOne { found: 2 })
        );
        assert_eq!(
            Component::parse(""),
            Err(ComponentError::ExpectedOne { found: 0 })
        );
        assert_eq!(
            parse_components("BEGIN:A\nEND:A\nX:1\n"),
            Err(ComponentError::PropertyOutsideComponent {
                line_no: 3,
                name: "X".into()
            })
        );
    }

    #[test]
    fn begin_end_case_and_spaces() {
        let comps = parse_components("begin:vevent\nuid:1\nend: VEvent \n").unwrap();
        assert_eq!(comps[0].name, "VEVENT");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "(BEGIN:[A-C]\n|END:[A-C]\n|[A-C]:x\n| y\n|\\PC{0,10}\n){0,40}") {
            let _ = parse_components(&s);
        }
    }
}
