//! Reading WebDAV and CalDAV XML responses.
//!
//! - `DAV:multistatus` (RFC 4918 §13, §14.16): one [`Response`] per `DAV:response`, with its
//!   `propstat` blocks; only properties in a 2xx propstat count as present.
//! - `CALDAV:schedule-response` (RFC 6638 §10.1, §10.2): one [`Recipient`] per free-busy or
//!   scheduling recipient, with its `request-status` and `calendar-data`.
//! - `DAV:error` bodies (RFC 4918 §16): the precondition element.
//!
//! Elements are matched by namespace URI and local name, never by prefix: servers send `D:`,
//! `d:`, a default namespace or `ns0:` for the same element. Parsing uses roxmltree with DTDs off
//! and a node limit, so hostile bodies cannot expand entities or exhaust memory.

use super::error::Condition;
use roxmltree::{Document, Node, ParsingOptions};

/// The WebDAV namespace (RFC 4918).
pub const DAV: &str = "DAV:";
/// The CalDAV namespace (RFC 4791, RFC 6638).
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// Apple's calendarserver namespace (getctag and friends).
pub const CALSERVER: &str = "http://calendarserver.org/ns/";

const NODES_LIMIT: u32 = 1_000_000;

/// A parsed `DAV:multistatus`.
#[derive(Debug, Clone, Default)]
pub struct Multistatus {
    /// The `DAV:response` elements in document order.
    pub responses: Vec<Response>,
}

/// One `DAV:response`.
#[derive(Debug, Clone)]
pub struct Response {
    /// The `DAV:href` as sent (percent-encoded; resolve it against the request URL).
    pub href: String,
    /// A response-level `DAV:status` (used instead of propstats, e.g. 404 in a multiget).
    pub status: Option<u16>,
    /// The `DAV:propstat` blocks.
    pub propstats: Vec<Propstat>,
}

/// One `DAV:propstat`.
#[derive(Debug, Clone)]
pub struct Propstat {
    /// Its status code (200, 404 …).
    pub status: u16,
    /// The properties it reports.
    pub props: Vec<Property>,
}

/// One property element inside `DAV:prop`.
#[derive(Debug, Clone)]
pub struct Property {
    /// Namespace URI.
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// All text inside the element (CDATA included), e.g. an ETag or calendar-data.
    pub text: String,
    /// Text of every `DAV:href` inside, in order (e.g. calendar-user-address-set).
    pub hrefs: Vec<String>,
    /// The element children (e.g. `DAV:collection`, `CALDAV:calendar` in resourcetype, or
    /// `CALDAV:comp name="VEVENT"` in supported-calendar-component-set).
    pub children: Vec<Element>,
}

/// An element below a property, reduced to its name, attributes and child elements (text is
/// in [`Property::text`]).
#[derive(Debug, Clone)]
pub struct Element {
    /// Namespace URI.
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// Attributes as (local name, value).
    pub attributes: Vec<(String, String)>,
    /// Its child elements (`DAV:write` in a `DAV:privilege`), down to [`MAX_ELEMENT_DEPTH`]
    /// levels below the property; deeper ones are left out.
    pub children: Vec<Element>,
}

/// How many levels of elements below a property are kept in [`Property::children`]
/// (RFC 3744's `current-user-privilege-set/privilege/write` needs two).
pub const MAX_ELEMENT_DEPTH: usize = 4;

impl Element {
    /// True when this element has this namespace and name.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }
}

impl Property {
    /// True when a child element with this namespace and name is present.
    pub fn has_child(&self, namespace: &str, name: &str) -> bool {
        self.children
            .iter()
            .any(|c| c.namespace == namespace && c.name == name)
    }

    /// The first `DAV:href` inside the property.
    pub fn href(&self) -> Option<&str> {
        self.hrefs.first().map(String::as_str)
    }
}

impl Response {
    /// A property reported with a 2xx status, by namespace URI and local name.
    pub fn prop(&self, namespace: &str, name: &str) -> Option<&Property> {
        self.propstats
            .iter()
            .filter(|ps| (200..300).contains(&ps.status))
            .flat_map(|ps| ps.props.iter())
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The text of [`Self::prop`], moved out of the response (left empty there): for large
    /// values such as `CALDAV:calendar-data`, which need no copy.
    pub fn take_text(&mut self, namespace: &str, name: &str) -> Option<String> {
        self.propstats
            .iter_mut()
            .filter(|ps| (200..300).contains(&ps.status))
            .flat_map(|ps| ps.props.iter_mut())
            .find(|p| p.namespace == namespace && p.name == name)
            .map(|p| std::mem::take(&mut p.text))
    }

    /// True when the resource is a collection of the given kind (`DAV:resourcetype`).
    pub fn is_resource_type(&self, namespace: &str, name: &str) -> bool {
        self.prop(DAV, "resourcetype")
            .is_some_and(|rt| rt.has_child(namespace, name))
    }

    /// The privileges of `DAV:current-user-privilege-set` (RFC 3744 §5.4): the element inside
    /// each `DAV:privilege` (`DAV:write`, `CALDAV:read-free-busy`, vendor privileges …). `None`
    /// when the set was not reported with a 2xx status (DAViCal answers 403 when
    /// `read-current-user-privilege-set` is not granted), so "absent" and "empty" differ.
    pub fn current_user_privileges(&self) -> Option<Vec<&Element>> {
        let set = self.prop(DAV, "current-user-privilege-set")?;
        Some(
            set.children
                .iter()
                .filter(|p| p.is(DAV, "privilege"))
                .flat_map(|p| p.children.iter())
                .collect(),
        )
    }
}

/// One recipient of a `CALDAV:schedule-response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The recipient's calendar user address (`mailto:bob@example.com`).
    pub recipient: String,
    /// The `request-status`, e.g. `2.0;Success` or `3.7;Invalid calendar user`.
    pub request_status: String,
    /// The `calendar-data` (a VFREEBUSY REPLY for free-busy requests), when present.
    pub calendar_data: Option<String>,
}

impl Recipient {
    /// The numeric class of the request-status (`2` in `2.0;Success`), when it parses.
    pub fn status_class(&self) -> Option<u8> {
        self.request_status
            .trim()
            .trim_matches('"')
            .split('.')
            .next()
            .and_then(|c| c.trim().parse().ok())
    }

    /// The full code (`3.7`) without the description.
    pub fn status_code(&self) -> &str {
        self.request_status
            .trim()
            .trim_matches('"')
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
    }
}

fn parse_document(body: &str) -> Result<Document<'_>, String> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(body, opts).map_err(|e| format!("invalid XML: {e}"))
}

fn is(node: &Node<'_, '_>, namespace: &str, name: &str) -> bool {
    node.is_element() && node.has_tag_name((namespace, name))
}

fn children<'a, 'input>(
    node: Node<'a, 'input>,
    namespace: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| is(c, namespace, name))
}

fn child<'a, 'input>(
    node: Node<'a, 'input>,
    namespace: &str,
    name: &str,
) -> Option<Node<'a, 'input>> {
    node.children().find(|c| is(c, namespace, name))
}

/// All text below a node (text and CDATA, concatenated).
fn text_of(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// The status code of an HTTP status line such as `HTTP/1.1 200 OK`.
pub fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    parts
        .next()?
        .parse()
        .ok()
        .filter(|s| (100..600).contains(s))
}

/// Parses a `DAV:multistatus` body.
pub fn parse_multistatus(body: &str) -> Result<Multistatus, String> {
    let doc = parse_document(body)?;
    let root = doc.root_element();
    if !is(&root, DAV, "multistatus") {
        return Err(format!(
            "expected DAV:multistatus, found {{{}}}{}",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        ));
    }
    let mut responses = Vec::new();
    for r in children(root, DAV, "response") {
        let href = child(r, DAV, "href")
            .map(text_of)
            .map(|h| h.trim().to_owned())
            .ok_or("DAV:response without DAV:href")?;
        let status = child(r, DAV, "status").and_then(|s| parse_status_line(&text_of(s)));
        let mut propstats = Vec::new();
        for ps in children(r, DAV, "propstat") {
            let status = child(ps, DAV, "status")
                .and_then(|s| parse_status_line(&text_of(s)))
                .ok_or("DAV:propstat without a valid DAV:status")?;
            let props = child(ps, DAV, "prop")
                .map(|p| {
                    p.children()
                        .filter(Node::is_element)
                        .map(read_property)
                        .collect()
                })
                .unwrap_or_default();
            propstats.push(Propstat { status, props });
        }
        responses.push(Response {
            href,
            status,
            propstats,
        });
    }
    Ok(Multistatus { responses })
}

fn read_property(node: Node<'_, '_>) -> Property {
    Property {
        namespace: node.tag_name().namespace().unwrap_or("").to_owned(),
        name: node.tag_name().name().to_owned(),
        text: text_of(node),
        hrefs: hrefs_of(node),
        children: read_children(node, MAX_ELEMENT_DEPTH),
    }
}

/// The text of every `DAV:href` at or below `node`, in document order. A `DAV:href` nested
/// in another (never in a valid body) is part of the outer one's text, not an entry of its
/// own: reading each nested one separately made a deeply nested body quadratic.
fn hrefs_of(node: Node<'_, '_>) -> Vec<String> {
    let mut out = Vec::new();
    // Most properties (getetag, calendar-data, displayname) hold no element at all.
    if !is(&node, DAV, "href") && !node.children().any(|c| c.is_element()) {
        return out;
    }
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if is(&n, DAV, "href") {
            out.push(text_of(n).trim().to_owned());
            continue;
        }
        // Reversed, so the first child is popped first.
        let first = stack.len();
        stack.extend(n.children().filter(Node::is_element));
        stack[first..].reverse();
    }
    out
}

/// The child elements of `node`, `depth` levels deep.
fn read_children(node: Node<'_, '_>, depth: usize) -> Vec<Element> {
    if depth == 0 {
        return Vec::new();
    }
    node.children()
        .filter(Node::is_element)
        .map(|c| Element {
            namespace: c.tag_name().namespace().unwrap_or("").to_owned(),
            name: c.tag_name().name().to_owned(),
            attributes: c
                .attributes()
                .map(|a| (a.name().to_owned(), a.value().to_owned()))
                .collect(),
            children: read_children(c, depth - 1),
        })
        .collect()
}

/// Parses a `CALDAV:schedule-response` (RFC 6638 §10.1).
pub fn parse_schedule_response(body: &str) -> Result<Vec<Recipient>, String> {
    let doc = parse_document(body)?;
    let root = doc.root_element();
    if !is(&root, CALDAV, "schedule-response") {
        return Err(format!(
            "expected CALDAV:schedule-response, found {{{}}}{}",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        ));
    }
    let mut out = Vec::new();
    for r in children(root, CALDAV, "response") {
        let recipient = child(r, CALDAV, "recipient")
            .map(|rc| match child(rc, DAV, "href") {
                Some(h) => text_of(h),
                None => text_of(rc),
            })
            .map(|s| s.trim().to_owned())
            .ok_or("CALDAV:response without CALDAV:recipient")?;
        let request_status = child(r, CALDAV, "request-status")
            .map(|s| text_of(s).trim().to_owned())
            .ok_or("CALDAV:response without CALDAV:request-status")?;
        let calendar_data = child(r, CALDAV, "calendar-data").map(text_of);
        out.push(Recipient {
            recipient,
            request_status,
            calendar_data,
        });
    }
    Ok(out)
}

/// The first precondition element of a `DAV:error` body (RFC 4918 §16), if the body is one.
pub fn parse_error_condition(body: &str) -> Option<Condition> {
    let doc = parse_document(body).ok()?;
    let root = doc.root_element();
    if !is(&root, DAV, "error") {
        return None;
    }
    root.children().find(Node::is_element).map(|c| Condition {
        namespace: c.tag_name().namespace().unwrap_or("").to_owned(),
        name: c.tag_name().name().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_with_any_prefix_and_propstat_statuses() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<ns0:multistatus xmlns:ns0="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <ns0:response><ns0:href>/dav/principals/user/alice/</ns0:href>
  <ns0:propstat><ns0:prop>
    <C:calendar-home-set><ns0:href>/dav/calendars/user/alice/</ns0:href></C:calendar-home-set>
    <C:calendar-user-address-set><ns0:href>mailto:alice@example.com</ns0:href><ns0:href>/dav/principals/user/alice/</ns0:href></C:calendar-user-address-set>
  </ns0:prop><ns0:status>HTTP/1.1 200 OK</ns0:status></ns0:propstat>
  <ns0:propstat><ns0:prop><C:schedule-inbox-URL/></ns0:prop><ns0:status>HTTP/1.1 404 Not Found</ns0:status></ns0:propstat>
 </ns0:response>
</ns0:multistatus>"#;
        let ms = parse_multistatus(body).unwrap();
        assert_eq!(ms.responses.len(), 1);
        let r = &ms.responses[0];
        assert_eq!(r.href, "/dav/principals/user/alice/");
        assert_eq!(
            r.prop(CALDAV, "calendar-home-set").unwrap().href(),
            Some("/dav/calendars/user/alice/")
        );
        assert_eq!(
            r.prop(CALDAV, "calendar-user-address-set").unwrap().hrefs,
            vec!["mailto:alice@example.com", "/dav/principals/user/alice/"]
        );
        assert!(
            r.prop(CALDAV, "schedule-inbox-URL").is_none(),
            "404 propstat is absent"
        );
    }

    #[test]
    fn default_namespace_resourcetype_and_cdata() {
        let body = r#"<multistatus xmlns="DAV:"><response><href>/c/Default/</href><propstat><prop>
<resourcetype><collection/><calendar xmlns="urn:ietf:params:xml:ns:caldav"/></resourcetype>
<getetag>"abc"</getetag>
<C:calendar-data xmlns:C="urn:ietf:params:xml:ns:caldav"><![CDATA[BEGIN:VCALENDAR
END:VCALENDAR
]]></C:calendar-data>
</prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let ms = parse_multistatus(body).unwrap();
        let r = &ms.responses[0];
        assert!(r.is_resource_type(CALDAV, "calendar"));
        assert!(!r.is_resource_type(CALDAV, "schedule-inbox"));
        assert_eq!(r.prop(DAV, "getetag").unwrap().text, "\"abc\"");
        assert!(
            r.prop(CALDAV, "calendar-data")
                .unwrap()
                .text
                .starts_with("BEGIN:VCALENDAR\n")
        );
        // Taking the text moves it out; a property not reported with 2xx has none to take.
        let mut r = ms.responses[0].clone();
        assert_eq!(
            r.take_text(CALDAV, "calendar-data").as_deref(),
            Some("BEGIN:VCALENDAR\nEND:VCALENDAR\n")
        );
        assert_eq!(r.prop(CALDAV, "calendar-data").unwrap().text, "");
        assert_eq!(r.take_text(CALDAV, "schedule-tag"), None);
        let mut inbox = parse_multistatus(
            r#"<multistatus xmlns="DAV:"><response><href>/i/</href><propstat><prop><getetag>"x"</getetag></prop><status>HTTP/1.1 404 Not Found</status></propstat></response></multistatus>"#,
        )
        .unwrap();
        assert_eq!(inbox.responses[0].take_text(DAV, "getetag"), None);
    }

    #[test]
    fn entities_are_resolved_and_dtds_refused() {
        let body = r#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/a%20b/&amp;x.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response></d:multistatus>"#;
        let ms = parse_multistatus(body).unwrap();
        assert_eq!(ms.responses[0].href, "/a%20b/&x.ics");
        assert_eq!(ms.responses[0].status, Some(404));
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><d:multistatus xmlns:d="DAV:">&b;</d:multistatus>"#;
        assert!(parse_multistatus(laughs).is_err());
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            "",
            "not xml",
            "<d:multistatus xmlns:d=\"DAV:\">",
            "<multistatus/>",
            "<d:multistatus xmlns:d=\"DAV:\"><d:response/></d:multistatus>",
            "<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/</d:href><d:propstat><d:prop/></d:propstat></d:response></d:multistatus>",
        ] {
            assert!(parse_multistatus(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn schedule_response_from_cyrus_and_davical() {
        let cyrus = r#"<?xml version="1.0" encoding="utf-8"?>
<C:schedule-response xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:"><C:response><C:recipient><D:href>mailto:bob@example.com</D:href></C:recipient><C:request-status>2.0;Success</C:request-status><C:calendar-data content-type="text/calendar" version="2.0"><![CDATA[BEGIN:VCALENDAR
FREEBUSY:20301202T100000Z/20301202T110000Z
END:VCALENDAR
]]></C:calendar-data></C:response><C:response><C:recipient><D:href>mailto:zed@example.com</D:href></C:recipient><C:request-status>3.7;Invalid calendar user</C:request-status></C:response></C:schedule-response>"#;
        let r = parse_schedule_response(cyrus).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].recipient, "mailto:bob@example.com");
        assert_eq!(r[0].status_class(), Some(2));
        assert!(
            r[0].calendar_data
                .as_deref()
                .unwrap()
                .contains("FREEBUSY:2030")
        );
        assert_eq!(r[1].status_code(), "3.7");
        assert_eq!(r[1].calendar_data, None);
        // DAViCal: DAV: as the default namespace, href without prefix.
        let davical = r#"<C:schedule-response xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <C:response><C:recipient><href>mailto:bob@example.com</href></C:recipient>
  <C:request-status>2.0;Success</C:request-status>
  <C:calendar-data>BEGIN:VCALENDAR
END:VCALENDAR
</C:calendar-data></C:response></C:schedule-response>"#;
        let r = parse_schedule_response(davical).unwrap();
        assert_eq!(r[0].recipient, "mailto:bob@example.com");
        assert_eq!(r[0].status_code(), "2.0");
    }

    #[test]
    fn error_condition() {
        let body = r#"<?xml version="1.0"?><D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict><D:href>/x.ics</D:href></C:no-uid-conflict></D:error>"#;
        let c = parse_error_condition(body).unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.name.as_str()),
            (CALDAV, "no-uid-conflict")
        );
        assert_eq!(parse_error_condition("<html>oops</html>"), None);
        assert_eq!(parse_error_condition("garbage"), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(" HTTP/1.1 404 Not Found "), Some(404));
        assert_eq!(parse_status_line("HTTP/1.1 abc"), None);
        assert_eq!(parse_status_line("200 OK"), None);
        assert_eq!(parse_status_line("HTTP/1.1 999 X"), None);
    }

    /// Found while writing the `multistatus` fuzz target: every nested `DAV:href` re-read the
    /// text of all those inside it, so a body of 20 000 nested hrefs (340 KB, well under
    /// `max_response_bytes`) took seconds and one of 100 000 minutes. Now each href subtree is
    /// read once.
    #[test]
    fn nested_hrefs_are_read_once() {
        let depth = 50_000;
        let body = format!(
            r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/x</D:href><D:propstat>
<D:prop><D:p><D:href>a</D:href>{}b{}<D:q><D:href> c </D:href></D:q></D:p></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#,
            "<D:href>".repeat(depth),
            "</D:href>".repeat(depth)
        );
        let ms = parse_multistatus(&body).unwrap();
        let p = ms.responses[0].prop(DAV, "p").unwrap();
        assert_eq!(p.hrefs, ["a", "b", "c"]);
        assert_eq!(p.text, "ab c ");
    }

    #[test]
    fn property_children_are_kept_to_a_limited_depth() {
        let open: String = (0..10).map(|i| format!("<x:e{i}>")).collect();
        let close: String = (0..10).rev().map(|i| format!("</x:e{i}>")).collect();
        let body = format!(
            r#"<d:multistatus xmlns:d="DAV:" xmlns:x="urn:x"><d:response><d:href>/a/</d:href><d:propstat><d:prop><x:deep>{open}{close}</x:deep></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"#
        );
        let ms = parse_multistatus(&body).unwrap();
        let mut level = &ms.responses[0].prop("urn:x", "deep").unwrap().children;
        let mut depth = 0;
        while let Some(e) = level.first() {
            assert_eq!(e.name, format!("e{depth}"));
            depth += 1;
            level = &e.children;
        }
        assert_eq!(depth, MAX_ELEMENT_DEPTH);
    }

    #[test]
    fn current_user_privileges_from_cyrus_and_davical() {
        // Cyrus, the service account on a user's calendar (shared view): vendor privileges too.
        let cyrus = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CY="http://cyrusimap.org/ns/"><D:response><D:href>/dav/calendars/user/calgate/bob.Default/</D:href><D:propstat><D:prop><D:current-user-privilege-set><D:privilege><D:read/></D:privilege><D:privilege><C:read-free-busy/></D:privilege><D:privilege><D:write-content/></D:privilege><D:privilege><CY:add-resource/></D:privilege></D:current-user-privilege-set></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#;
        let privileges = |body: &str| -> Result<Vec<(String, Vec<Element>)>, String> {
            Ok(parse_multistatus(body)?
                .responses
                .iter()
                .filter_map(|r| {
                    let set = r.current_user_privileges()?;
                    Some((r.href.clone(), set.into_iter().cloned().collect()))
                })
                .collect())
        };
        let sets = privileges(cyrus).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].0, "/dav/calendars/user/calgate/bob.Default/");
        let names: Vec<(&str, &str)> = sets[0]
            .1
            .iter()
            .map(|e| (e.namespace.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (DAV, "read"),
                (CALDAV, "read-free-busy"),
                (DAV, "write-content"),
                ("http://cyrusimap.org/ns/", "add-resource")
            ]
        );
        // DAViCal without read-current-user-privilege-set: the property comes back 403.
        let davical = r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/caldav.php/bob/calendar/</href>
<propstat><prop><resourcetype><collection/><C:calendar/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat>
<propstat><prop><current-user-privilege-set/></prop><status>HTTP/1.1 403 Forbidden</status></propstat></response></multistatus>"#;
        assert!(privileges(davical).unwrap().is_empty());
        // An empty set that was reported is present (and empty).
        let empty = r#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/x/</d:href><d:propstat><d:prop><d:current-user-privilege-set/></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"#;
        assert_eq!(privileges(empty).unwrap()[0].1.len(), 0);
        assert!(privileges("<html/>").is_err());
    }
}
