//! XML request bodies for WebDAV and CalDAV.
//!
//! Bodies are small fixed templates with the variable parts escaped, which keeps what goes on the
//! wire readable next to the RFC text: PROPFIND (RFC 4918 §9.1), calendar-query and
//! calendar-multiget REPORTs (RFC 4791 §7.8, §7.9), MKCALENDAR (RFC 4791 §5.3.1).

use super::multistatus::{CALDAV, DAV};

/// A property name: namespace URI and local name.
pub type PropName = (&'static str, &'static str);

/// `DAV:current-user-principal` (RFC 5397).
pub const CURRENT_USER_PRINCIPAL: PropName = (DAV, "current-user-principal");
/// `DAV:resourcetype`.
pub const RESOURCETYPE: PropName = (DAV, "resourcetype");
/// `DAV:displayname`.
pub const DISPLAYNAME: PropName = (DAV, "displayname");
/// `DAV:getetag`.
pub const GETETAG: PropName = (DAV, "getetag");
/// `CALDAV:calendar-home-set` (RFC 4791 §6.2.1).
pub const CALENDAR_HOME_SET: PropName = (CALDAV, "calendar-home-set");
/// `CALDAV:schedule-inbox-URL` (RFC 6638 §2.2.1).
pub const SCHEDULE_INBOX_URL: PropName = (CALDAV, "schedule-inbox-URL");
/// `CALDAV:schedule-outbox-URL` (RFC 6638 §2.1.1).
pub const SCHEDULE_OUTBOX_URL: PropName = (CALDAV, "schedule-outbox-URL");
/// `CALDAV:calendar-user-address-set` (RFC 6638 §2.4.1).
pub const CALENDAR_USER_ADDRESS_SET: PropName = (CALDAV, "calendar-user-address-set");
/// `CALDAV:schedule-default-calendar-URL` (RFC 6638 §9.2).
pub const SCHEDULE_DEFAULT_CALENDAR_URL: PropName = (CALDAV, "schedule-default-calendar-URL");
/// `CALDAV:supported-calendar-component-set` (RFC 4791 §5.2.3).
pub const SUPPORTED_CALENDAR_COMPONENT_SET: PropName = (CALDAV, "supported-calendar-component-set");
/// `CALDAV:schedule-tag` (RFC 6638 §3.2.10).
pub const SCHEDULE_TAG: PropName = (CALDAV, "schedule-tag");
/// `CALDAV:calendar-data` (RFC 4791 §9.6).
pub const CALENDAR_DATA: PropName = (CALDAV, "calendar-data");
/// `DAV:current-user-privilege-set` (RFC 3744 §5.4): what the requesting user may do.
pub const CURRENT_USER_PRIVILEGE_SET: PropName = (DAV, "current-user-privilege-set");
/// `DAV:group-member-set` (RFC 3744 §4.3): the direct members of a group principal.
pub const GROUP_MEMBER_SET: PropName = (DAV, "group-member-set");

/// Escapes text for use in XML character data and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped rather than sent broken.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;
const NS: &str = r#"xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/""#;

fn prefixed((ns, name): PropName) -> String {
    let prefix = match ns {
        DAV => "d",
        CALDAV => "c",
        _ => "cs",
    };
    format!("<{prefix}:{name}/>")
}

fn prop_block(props: &[PropName]) -> String {
    let inner: String = props.iter().map(|p| prefixed(*p)).collect();
    format!("<d:prop>{inner}</d:prop>")
}

/// `DAV:propfind` for the given properties.
pub fn propfind(props: &[PropName]) -> String {
    format!("{HEAD}<d:propfind {NS}>{}</d:propfind>", prop_block(props))
}

/// What a calendar-query REPORT selects (RFC 4791 §9.7).
#[derive(Debug, Clone)]
pub enum QueryFilter {
    /// Components of this type whose UID equals the value (`i;octet` text-match).
    Uid { component: String, uid: String },
    /// Components of this type overlapping `[start, end)` (UTC `YYYYMMDDTHHMMSSZ` values).
    TimeRange {
        component: String,
        start: Option<String>,
        end: Option<String>,
    },
    /// Components of this type, narrowed by every condition given (RFC 4791 §9.7.1: the
    /// conditions of one comp-filter all have to hold): the UID (`i;octet` text-match, §9.7.5)
    /// and overlap with `[start, end)` (§9.9; UTC `YYYYMMDDTHHMMSSZ`, either bound may be
    /// open; with neither, no time-range is sent).
    Matching {
        component: String,
        uid: Option<String>,
        start: Option<String>,
        end: Option<String>,
    },
    /// Every calendar object, whatever its components: only the `VCALENDAR` comp-filter, which
    /// every calendar object resource matches (RFC 4791 §9.7.1). A UID or time range cannot be
    /// asked for without naming the component type that carries it; RFC 4791 filters have no
    /// "any of" test.
    Everything,
}

/// `<c:time-range …/>` with the bounds given; empty when neither is (RFC 4791 §9.9 wants at
/// least one).
fn time_range(start: Option<&str>, end: Option<&str>) -> String {
    if start.is_none() && end.is_none() {
        return String::new();
    }
    let mut attrs = String::new();
    if let Some(s) = start {
        attrs.push_str(&format!(r#" start="{}""#, escape(s)));
    }
    if let Some(e) = end {
        attrs.push_str(&format!(r#" end="{}""#, escape(e)));
    }
    format!("<c:time-range{attrs}/>")
}

/// `<c:prop-filter name="UID">` with an exact (`i;octet`) text-match.
fn uid_match(uid: &str) -> String {
    format!(
        r#"<c:prop-filter name="UID"><c:text-match collation="i;octet">{}</c:text-match></c:prop-filter>"#,
        escape(uid)
    )
}

impl QueryFilter {
    /// The UID the filter asks for, if any.
    pub fn uid(&self) -> Option<&str> {
        match self {
            QueryFilter::Uid { uid, .. } => Some(uid),
            QueryFilter::Matching { uid, .. } => uid.as_deref(),
            _ => None,
        }
    }
}

/// `<c:comp-filter>` for one component type with the conditions given, in the DTD's order:
/// time-range, then prop-filters (RFC 4791 §9.7.1).
fn comp_filter(
    component: &str,
    uid: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
) -> String {
    format!(
        r#"<c:comp-filter name="{}">{}{}</c:comp-filter>"#,
        escape(component),
        time_range(start, end),
        uid.map(uid_match).unwrap_or_default()
    )
}

/// `CALDAV:calendar-query` returning ETag, Schedule-Tag and calendar data.
pub fn calendar_query(filter: &QueryFilter) -> String {
    let inner = match filter {
        QueryFilter::Uid { component, uid } => comp_filter(component, Some(uid), None, None),
        QueryFilter::TimeRange {
            component,
            start,
            end,
        } => comp_filter(component, None, start.as_deref(), end.as_deref()),
        QueryFilter::Matching {
            component,
            uid,
            start,
            end,
        } => comp_filter(component, uid.as_deref(), start.as_deref(), end.as_deref()),
        QueryFilter::Everything => String::new(),
    };
    format!(
        r#"{HEAD}<c:calendar-query {NS}>{}<c:filter><c:comp-filter name="VCALENDAR">{inner}</c:comp-filter></c:filter></c:calendar-query>"#,
        prop_block(&[GETETAG, SCHEDULE_TAG, CALENDAR_DATA])
    )
}

/// `CALDAV:calendar-multiget` for the given hrefs (paths as the server sent them).
pub fn calendar_multiget(hrefs: &[String]) -> String {
    let hrefs: String = hrefs
        .iter()
        .map(|h| format!("<d:href>{}</d:href>", escape(h)))
        .collect();
    format!(
        r#"{HEAD}<c:calendar-multiget {NS}>{}{hrefs}</c:calendar-multiget>"#,
        prop_block(&[GETETAG, SCHEDULE_TAG, CALENDAR_DATA])
    )
}

/// `CALDAV:mkcalendar` with a display name (RFC 4791 §5.3.1).
pub fn mkcalendar(displayname: &str) -> String {
    format!(
        r#"{HEAD}<c:mkcalendar {NS}><d:set><d:prop><d:displayname>{}</d:displayname></d:prop></d:set></c:mkcalendar>"#,
        escape(displayname)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caldav::multistatus::CALDAV;

    #[test]
    fn escaping() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{1}y\tz"), "xy\tz");
    }

    #[test]
    fn bodies_are_well_formed_and_namespaced() {
        let bodies = [
            propfind(&[CURRENT_USER_PRINCIPAL, CALENDAR_HOME_SET]),
            calendar_query(&QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: "a<&>b".into(),
            }),
            calendar_query(&QueryFilter::TimeRange {
                component: "VEVENT".into(),
                start: Some("20300101T000000Z".into()),
                end: None,
            }),
            calendar_multiget(&["/a/b.ics".into(), "/a/c&d.ics".into()]),
            mkcalendar("Work & Play"),
            calendar_query(&QueryFilter::Matching {
                component: "VTODO".into(),
                uid: Some("x&y".into()),
                start: None,
                end: Some("20300101T000000Z".into()),
            }),
            calendar_query(&QueryFilter::Everything),
        ];
        for body in &bodies {
            let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
            let root = doc.root_element();
            assert!(matches!(
                root.tag_name().namespace(),
                Some(DAV) | Some(CALDAV)
            ));
        }
        let q = roxmltree::Document::parse(&bodies[1]).unwrap();
        let tm = q
            .descendants()
            .find(|n| n.has_tag_name((CALDAV, "text-match")))
            .unwrap();
        assert_eq!(tm.text(), Some("a<&>b"));
    }

    #[test]
    fn matching_combines_conditions_and_everything_has_no_component_filter() {
        let q = calendar_query(&QueryFilter::Matching {
            component: "VEVENT".into(),
            uid: Some("u1".into()),
            start: Some("20300101T000000Z".into()),
            end: None,
        });
        let doc = roxmltree::Document::parse(&q).unwrap();
        let comp = doc
            .descendants()
            .find(|n| {
                n.has_tag_name((CALDAV, "comp-filter")) && n.attribute("name") == Some("VEVENT")
            })
            .unwrap();
        let children: Vec<&str> = comp
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(children, ["time-range", "prop-filter"]);
        let tr = comp.first_element_child().unwrap();
        assert_eq!(tr.attribute("start"), Some("20300101T000000Z"));
        assert_eq!(tr.attribute("end"), None);

        let bare = calendar_query(&QueryFilter::Matching {
            component: "VJOURNAL".into(),
            uid: None,
            start: None,
            end: None,
        });
        assert!(
            bare.contains(r#"<c:comp-filter name="VJOURNAL"></c:comp-filter>"#),
            "{bare}"
        );
        assert!(!bare.contains("time-range"), "{bare}");

        // The single-condition filters are Matching with one condition.
        assert_eq!(
            calendar_query(&QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: "u1".into(),
            }),
            calendar_query(&QueryFilter::Matching {
                component: "VEVENT".into(),
                uid: Some("u1".into()),
                start: None,
                end: None,
            })
        );
        assert_eq!(
            calendar_query(&QueryFilter::TimeRange {
                component: "VTODO".into(),
                start: None,
                end: Some("20300101T000000Z".into()),
            }),
            calendar_query(&QueryFilter::Matching {
                component: "VTODO".into(),
                uid: None,
                start: None,
                end: Some("20300101T000000Z".into()),
            })
        );

        let all = calendar_query(&QueryFilter::Everything);
        let doc = roxmltree::Document::parse(&all).unwrap();
        let comps: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name((CALDAV, "comp-filter")))
            .collect();
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].attribute("name"), Some("VCALENDAR"));
    }
}
