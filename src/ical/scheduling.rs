//! Scheduling helpers on iTIP objects.
//!
//! Implements what the gateway reads and changes in scheduling messages:
//! calendar user addresses (RFC 5545 §3.3.3 CAL-ADDRESS, with the legacy
//! forms of `shared/spec/cap-cstp.md` §7.3 #14), ORGANIZER / ATTENDEE with
//! PARTSTAT, ROLE, RSVP (RFC 5545 §3.2.12, §3.2.16, §3.2.17, §3.8.4.1,
//! §3.8.4.3), METHOD (RFC 5546 §1.4), UID and SEQUENCE (RFC 5546 §2.1.4), and
//! the SCHEDULE-STATUS parameter of RFC 6638 §3.2.9 / §10.3 (status codes of
//! RFC 5545 §3.8.8.3 and RFC 5546 §3.6).

use crate::ical::component::Component;
use crate::ical::contentline::ContentLine;
use crate::ical::datetime::{DateOrDateTime, DateTimeError, Duration};

/// A calendar user address with an optional display name.
///
/// For e-mail style addresses `addr` is `local@domain` (no `mailto:`), with
/// the domain lower-cased; any other URI (`urn:uuid:…`, `https://…`, a
/// principal path) is kept verbatim in `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `alice@example.com`, or a non-mailto URI.
    pub addr: String,
    /// The display name (`CN`), if known.
    pub cn: Option<String>,
}

/// Whether `s` starts with a URI scheme (`scheme ":"`, RFC 3986 §3.1), or is
/// an absolute path.
fn has_scheme(s: &str) -> bool {
    if s.starts_with('/') {
        return true;
    }
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// What follows a `mailto:` scheme (RFC 6068) in any case: `MAILTO:a@b.c` gives `a@b.c`,
/// `mailto:` gives `""`. `None` when `s` does not start with the scheme (leading white space
/// included). The one place calgate takes `mailto:` off an address.
pub(crate) fn strip_mailto(s: &str) -> Option<&str> {
    match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => s.get(7..),
        _ => None,
    }
}

fn strip_quotes(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t)
        .trim()
}

impl Address {
    /// Parse every address form the gateway accepts (cap-cstp.md §7.3 #14):
    /// `Name <addr>`, `"Name" <addr>`, `<addr>`, bare `addr`, `MAILTO:addr`
    /// (any case, also inside the brackets) and other URIs. `None` when no
    /// address is left.
    pub fn parse(value: &str) -> Option<Address> {
        let v = value.trim();
        let (cn, inner) = match v.split_once('<') {
            Some((before, after)) => {
                let inner = after.split_once('>').map_or(after, |(a, _)| a);
                let cn = strip_quotes(before);
                ((!cn.is_empty()).then(|| cn.to_string()), inner.trim())
            }
            None => (None, v),
        };
        let inner = inner.trim();
        let (bare, had_mailto) = match strip_mailto(inner) {
            Some(rest) => (rest.trim(), true),
            None => (inner, false),
        };
        if bare.is_empty() {
            return None;
        }
        if !had_mailto && has_scheme(bare) {
            // A non-mailto URI: keep it.
            return Some(Address {
                addr: bare.to_string(),
                cn,
            });
        }
        let addr = match bare.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
            None => bare.to_string(),
        };
        Some(Address { addr, cn })
    }

    /// The address of an ORGANIZER or ATTENDEE line: the value parsed with
    /// [`Address::parse`], the `CN` parameter taking precedence over a
    /// display name in the value.
    pub fn from_line(line: &ContentLine) -> Option<Address> {
        let mut a = Address::parse(&line.value)?;
        if let Some(cn) = line.param("CN").map(str::trim).filter(|c| !c.is_empty()) {
            a.cn = Some(cn.to_string());
        }
        Some(a)
    }

    /// Whether this is an e-mail style address (rendered as `mailto:`).
    pub fn is_mailto(&self) -> bool {
        !has_scheme(&self.addr)
    }

    /// `mailto:alice@example.com`, or the URI itself.
    pub fn to_uri(&self) -> String {
        if self.is_mailto() {
            format!("mailto:{}", self.addr)
        } else {
            self.addr.clone()
        }
    }

    /// The part before the last `@` (the whole address if there is none).
    pub fn local_part(&self) -> &str {
        self.addr
            .rsplit_once('@')
            .map_or(self.addr.as_str(), |(l, _)| l)
    }

    /// The part after the last `@`, if any.
    pub fn domain(&self) -> Option<&str> {
        self.addr.rsplit_once('@').map(|(_, d)| d)
    }

    /// Whether both denote the same calendar user (ASCII case-insensitive,
    /// display names ignored).
    pub fn same_as(&self, other: &Address) -> bool {
        self.addr.eq_ignore_ascii_case(&other.addr)
    }

    /// A property line `name[;CN=…]:mailto:…`.
    pub fn to_content_line(&self, name: &str) -> ContentLine {
        let line = ContentLine::new(name, &self.to_uri());
        match &self.cn {
            Some(cn) => line.with_param("CN", cn),
            None => line,
        }
    }
}

/// Normalise any accepted address form to its URI (`mailto:local@domain`
/// with the domain lower-cased); the empty string when there is no address.
pub fn calendar_address(value: &str) -> String {
    Address::parse(value)
        .map(|a| a.to_uri())
        .unwrap_or_default()
}

/// The key two calendar addresses are compared by: the address of any accepted form
/// ([`Address::parse`]: `Name <addr>`, `mailto:` in any case, other URIs) without `mailto:`,
/// ASCII lower-cased; the trimmed, lower-cased text when there is no address.
pub(crate) fn address_key(value: &str) -> String {
    Address::parse(value).map_or_else(
        || value.trim().to_ascii_lowercase(),
        |a| a.addr.to_ascii_lowercase(),
    )
}

/// One request status code (RFC 5545 §3.8.8.3 `statcode`) with its optional
/// description, as found in SCHEDULE-STATUS (RFC 6638 §10.3) and
/// REQUEST-STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// 1 (pending), 2 (success), 3 (client error), 4 (scheduling error),
    /// 5 (delivery/service error).
    pub class: u8,
    /// The numbers after the class (`3.7` → `[7]`, `3.1.1` → `[1, 1]`).
    pub sub: Vec<u16>,
    /// The text after `;`, if any.
    pub description: Option<String>,
}

impl ScheduleStatus {
    /// Parse one `statcode [";" text]`.
    ///
    /// ```abnf
    /// statcode = 1*DIGIT 1*2("." 1*DIGIT)   ; RFC 5545 §3.8.8.3
    /// ```
    fn parse_one(item: &str) -> Option<ScheduleStatus> {
        let (code, desc) = match item.split_once(';') {
            Some((c, d)) => (c.trim(), Some(d.trim())),
            None => (item.trim(), None),
        };
        let mut parts = code.split('.');
        let class = parts.next().filter(|p| !p.is_empty() && p.len() <= 2)?;
        if !class.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let class: u8 = class.parse().ok().filter(|c| (1..=5).contains(c))?;
        let mut sub = Vec::new();
        for p in parts {
            if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            sub.push(p.parse().ok()?);
        }
        if sub.is_empty() || sub.len() > 2 {
            return None;
        }
        Some(ScheduleStatus {
            class,
            sub,
            description: desc.filter(|d| !d.is_empty()).map(str::to_string),
        })
    }

    /// Every status in `value`: `1.2`, `2.0`, `3.7`, `"2.0;Success"`,
    /// `2.0;Success`, `"2.0,2.4"`, `2.0,3.7`, … Quotes are ignored; a
    /// comma-separated piece that is not a status code continues the previous
    /// description; unparseable pieces are skipped.
    pub fn parse_all(value: &str) -> Vec<ScheduleStatus> {
        let unquoted: String = value.chars().filter(|c| *c != '"').collect();
        let mut out: Vec<ScheduleStatus> = Vec::new();
        for piece in unquoted.split(',') {
            if let Some(s) = ScheduleStatus::parse_one(piece) {
                out.push(s);
            } else if let Some(last) = out.last_mut()
                && let Some(d) = &mut last.description
            {
                d.push(',');
                d.push_str(piece);
            }
        }
        out
    }

    /// The first status in `value` (see [`ScheduleStatus::parse_all`]).
    pub fn parse(value: &str) -> Option<ScheduleStatus> {
        ScheduleStatus::parse_all(value).into_iter().next()
    }

    /// The code without description, e.g. `3.7`.
    pub fn code(&self) -> String {
        let mut s = self.class.to_string();
        for n in &self.sub {
            s.push('.');
            s.push_str(&n.to_string());
        }
        s
    }

    fn is(&self, class: u8, sub: u16) -> bool {
        self.class == class && self.sub.first() == Some(&sub)
    }

    /// 1.x (pending / sent / delivered) or 2.x (success).
    pub fn is_delivered(&self) -> bool {
        matches!(self.class, 1 | 2)
    }

    /// 3.7: invalid calendar user.
    pub fn is_unknown_user(&self) -> bool {
        self.is(3, 7)
    }

    /// 3.8: no scheduling privileges.
    pub fn is_no_authority(&self) -> bool {
        self.is(3, 8)
    }

    /// 5.1: delivery failed temporarily; may be retried (RFC 6638 §3.2.9).
    pub fn is_temporary_failure(&self) -> bool {
        self.is(5, 1)
    }

    /// 3.x, 4.x, or 5.x other than 5.1: not delivered, do not retry as is.
    pub fn is_permanent_failure(&self) -> bool {
        match self.class {
            3 | 4 => true,
            5 => !self.is_temporary_failure(),
            _ => false,
        }
    }
}

impl std::fmt::Display for ScheduleStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code())?;
        if let Some(d) = &self.description {
            write!(f, ";{d}")?;
        }
        Ok(())
    }
}

/// One ATTENDEE line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    /// The address; `cn` from the CN parameter or the value's display name.
    pub address: Address,
    /// PARTSTAT, upper-cased.
    pub partstat: Option<String>,
    /// ROLE, upper-cased.
    pub role: Option<String>,
    /// RSVP (`TRUE`/`FALSE`, also vCalendar `YES`/`NO`).
    pub rsvp: Option<bool>,
    /// The first parseable SCHEDULE-STATUS code.
    pub schedule_status: Option<ScheduleStatus>,
    /// Index of the line in [`Component::properties`].
    pub line_index: usize,
}

fn upper_param(line: &ContentLine, name: &str) -> Option<String> {
    line.param(name)
        .map(|v| v.trim().to_ascii_uppercase())
        .filter(|v| !v.is_empty())
}

/// Parse an RSVP parameter value: TRUE/YES → true, FALSE/NO → false.
pub fn parse_rsvp(value: &str) -> Option<bool> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRUE" | "YES" => Some(true),
        "FALSE" | "NO" => Some(false),
        _ => None,
    }
}

impl Attendee {
    /// Decode an ATTENDEE line at `line_index`; `None` without an address.
    pub fn from_line(line: &ContentLine, line_index: usize) -> Option<Attendee> {
        Some(Attendee {
            address: Address::from_line(line)?,
            partstat: upper_param(line, "PARTSTAT"),
            role: upper_param(line, "ROLE"),
            rsvp: line.param("RSVP").and_then(parse_rsvp),
            schedule_status: line
                .param_values("SCHEDULE-STATUS")
                .and_then(|vs| vs.iter().find_map(|v| ScheduleStatus::parse(v))),
            line_index,
        })
    }
}

/// Component names that carry scheduling data (RFC 5546 §1.4).
pub const SCHEDULABLE: [&str; 4] = ["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"];

/// Component names a calendar object resource is made of, the ones with instances
/// (RFC 4791 §4.1, RFC 5546 §1.4; VFREEBUSY has none).
pub const OBJECT_COMPONENTS: [&str; 3] = ["VEVENT", "VTODO", "VJOURNAL"];

/// The METHOD of a VCALENDAR, upper-cased and trimmed.
pub fn calendar_method(cal: &Component) -> Option<String> {
    cal.value("METHOD")
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
}

/// The first VEVENT, VTODO, VJOURNAL or VFREEBUSY child of a VCALENDAR.
pub fn first_schedulable(cal: &Component) -> Option<&Component> {
    cal.components
        .iter()
        .find(|c| SCHEDULABLE.contains(&c.name.as_str()))
}

/// Mutable form of [`first_schedulable`].
pub fn first_schedulable_mut(cal: &mut Component) -> Option<&mut Component> {
    cal.components
        .iter_mut()
        .find(|c| SCHEDULABLE.contains(&c.name.as_str()))
}

/// Every VEVENT, VTODO, VJOURNAL or VFREEBUSY child (a recurring event
/// with overridden instances has several with the same UID).
pub fn schedulables(cal: &Component) -> impl Iterator<Item = &Component> {
    cal.components
        .iter()
        .filter(|c| SCHEDULABLE.contains(&c.name.as_str()))
}

impl Component {
    /// UID, trimmed.
    pub fn uid(&self) -> Option<&str> {
        self.value("UID").map(str::trim).filter(|u| !u.is_empty())
    }

    /// SEQUENCE; missing or unparseable → 0.
    pub fn sequence(&self) -> u32 {
        self.value("SEQUENCE")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// METHOD of a VCALENDAR (see [`calendar_method`]).
    pub fn method(&self) -> Option<String> {
        calendar_method(self)
    }

    /// The ORGANIZER address (CN from the parameter or the value).
    pub fn organizer(&self) -> Option<Address> {
        self.property("ORGANIZER").and_then(Address::from_line)
    }

    /// Every ATTENDEE with an address, in order.
    pub fn attendees(&self) -> Vec<Attendee> {
        self.properties
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name == "ATTENDEE")
            .filter_map(|(i, p)| Attendee::from_line(p, i))
            .collect()
    }

    /// The attendee with this address, if any.
    pub fn attendee(&self, address: &Address) -> Option<Attendee> {
        self.attendees()
            .into_iter()
            .find(|a| a.address.same_as(address))
    }

    /// Set PARTSTAT on every ATTENDEE line for `address` and remove the
    /// SCHEDULE-STATUS parameter there; returns whether any line matched.
    pub fn set_partstat(&mut self, address: &Address, partstat: &str) -> bool {
        let mut found = false;
        for line in self.properties.iter_mut().filter(|p| p.name == "ATTENDEE") {
            if Address::from_line(line).is_some_and(|a| a.same_as(address)) {
                line.set_param("PARTSTAT", partstat);
                line.remove_param("SCHEDULE-STATUS");
                found = true;
            }
        }
        found
    }

    fn date_prop(&self, name: &str) -> Result<Option<DateOrDateTime>, DateTimeError> {
        self.property(name)
            .map(DateOrDateTime::from_line)
            .transpose()
    }

    /// DTSTART (tolerant parse, TZID honoured); `Ok(None)` when absent.
    pub fn dtstart(&self) -> Result<Option<DateOrDateTime>, DateTimeError> {
        self.date_prop("DTSTART")
    }

    /// DTEND; `Ok(None)` when absent.
    pub fn dtend(&self) -> Result<Option<DateOrDateTime>, DateTimeError> {
        self.date_prop("DTEND")
    }

    /// DUE (VTODO); `Ok(None)` when absent.
    pub fn due(&self) -> Result<Option<DateOrDateTime>, DateTimeError> {
        self.date_prop("DUE")
    }

    /// RECURRENCE-ID; `Ok(None)` when absent.
    pub fn recurrence_id(&self) -> Result<Option<DateOrDateTime>, DateTimeError> {
        self.date_prop("RECURRENCE-ID")
    }

    /// DURATION; `Ok(None)` when absent.
    pub fn duration(&self) -> Result<Option<Duration>, DateTimeError> {
        self.value("DURATION").map(Duration::parse).transpose()
    }

    /// The end of a VEVENT per RFC 5545 §3.6.1: DTEND, else DTSTART +
    /// DURATION, else the next day for a DATE DTSTART, else DTSTART.
    /// `Ok(None)` without DTSTART; `Ok(None)` as well if the sum overflows.
    pub fn effective_end(&self) -> Result<Option<DateOrDateTime>, DateTimeError> {
        if let Some(end) = self.dtend()? {
            return Ok(Some(end));
        }
        let Some(start) = self.dtstart()? else {
            return Ok(None);
        };
        let one_day = Duration {
            days: 1,
            ..Duration::default()
        };
        Ok(match (start, self.duration()?) {
            (DateOrDateTime::Date(d), dur) => d
                .checked_add(&dur.unwrap_or(one_day))
                .map(DateOrDateTime::Date),
            (DateOrDateTime::DateTime(dt), Some(dur)) => {
                dt.checked_add(&dur).map(DateOrDateTime::DateTime)
            }
            (start @ DateOrDateTime::DateTime(_), None) => Some(start),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::datetime::{DateTime, Zone};

    #[test]
    fn mailto_is_stripped_in_any_case() {
        assert_eq!(strip_mailto("MAILTO:a@b.c"), Some("a@b.c"));
        assert_eq!(strip_mailto("mailto:a@b.c"), Some("a@b.c"));
        assert_eq!(strip_mailto("MaIlTo:a@b.c"), Some("a@b.c"));
        assert_eq!(strip_mailto("mailto:"), Some(""));
        assert_eq!(strip_mailto("a@b.c"), None);
        assert_eq!(strip_mailto("/dav/principals/user/a/"), None);
        assert_eq!(strip_mailto("mailté"), None);
        assert_eq!(strip_mailto(" mailto:a@b.c"), None);
        assert_eq!(Address::parse("mailto:"), None);
        assert_eq!(Address::parse("MAILTO: a@B.c ").unwrap().addr, "a@b.c");
    }

    #[test]
    fn address_forms() {
        type Want<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: [(&str, Want<'_>); 16] = [
            ("alice@Example.COM", Some(("alice@example.com", None))),
            ("Alice@EXAMPLE.com", Some(("Alice@example.com", None))),
            ("<bob@B.com>", Some(("bob@b.com", None))),
            ("MAILTO:bob@b.com", Some(("bob@b.com", None))),
            ("mailto:bob@b.com", Some(("bob@b.com", None))),
            ("MaIlTo:bob@B.COM", Some(("bob@b.com", None))),
            (
                "Pete O'Leary <poleary@clearblue.com>",
                Some(("poleary@clearblue.com", Some("Pete O'Leary"))),
            ),
            (
                "Pete O'Leary<poleary@clearblue.com>",
                Some(("poleary@clearblue.com", Some("Pete O'Leary"))),
            ),
            (
                "\"Doe, Jane\" <mailto:Jane@Example.org>",
                Some(("Jane@example.org", Some("Doe, Jane"))),
            ),
            (
                "  Bob SystemB <bob@b.com>  ",
                Some(("bob@b.com", Some("Bob SystemB"))),
            ),
            ("Truncated <x@Y.org", Some(("x@y.org", Some("Truncated")))),
            ("urn:uuid:1234-ABCD", Some(("urn:uuid:1234-ABCD", None))),
            (
                "https://cal.example.com/principals/Bob/",
                Some(("https://cal.example.com/principals/Bob/", None)),
            ),
            (
                "/principals/users/bob/",
                Some(("/principals/users/bob/", None)),
            ),
            ("", None),
            ("Name <>", None),
        ];
        for (input, want) in cases {
            let got = Address::parse(input);
            match want {
                None => assert_eq!(got, None, "{input}"),
                Some((addr, cn)) => {
                    let got = got.unwrap_or_else(|| panic!("{input}"));
                    assert_eq!(got.addr, addr, "{input}");
                    assert_eq!(got.cn.as_deref(), cn, "{input}");
                }
            }
        }
        assert_eq!(
            calendar_address("Jen Yip <jen@Yip.com>"),
            "mailto:jen@yip.com"
        );
        assert_eq!(calendar_address("MAILTO:bob@b.com"), "mailto:bob@b.com");
        assert_eq!(calendar_address("urn:uuid:1"), "urn:uuid:1");
        assert_eq!(calendar_address("bill"), "mailto:bill");
        assert_eq!(calendar_address(" "), "");
        let a = Address::parse("Bob <Bob@B.com>").unwrap();
        assert_eq!(a.local_part(), "Bob");
        assert_eq!(a.domain(), Some("b.com"));
        assert!(a.same_as(&Address::parse("mailto:bob@b.com").unwrap()));
        assert_eq!(
            a.to_content_line("ORGANIZER").to_line(),
            "ORGANIZER;CN=Bob:mailto:Bob@b.com"
        );
    }

    #[test]
    fn address_keys() {
        let key = address_key;
        assert_eq!(key("mailto:Bob@B.com"), "bob@b.com");
        assert_eq!(key("MAILTO:bob@b.com"), key("Bob <BOB@b.COM>"));
        assert_eq!(key("\"Doe, Jane\" <mailto:jane@x.org>"), "jane@x.org");
        assert_eq!(key("urn:uuid:ABC"), "urn:uuid:abc");
        assert_eq!(key(" Name <> "), "name <>");
        assert_eq!(key(""), "");
    }

    #[test]
    fn schedule_status_forms() {
        type Codes<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: [(&str, Codes<'_>); 10] = [
            ("1.2", &[("1.2", None)]),
            ("2.0", &[("2.0", None)]),
            ("3.7", &[("3.7", None)]),
            ("\"2.0;Success\"", &[("2.0", Some("Success"))]),
            ("2.0;Success", &[("2.0", Some("Success"))]),
            ("\"2.0,2.4\"", &[("2.0", None), ("2.4", None)]),
            ("2.0,3.7", &[("2.0", None), ("3.7", None)]),
            (
                "\"2.0;Success, delivered\",3.7;Invalid user",
                &[
                    ("2.0", Some("Success, delivered")),
                    ("3.7", Some("Invalid user")),
                ],
            ),
            (
                "3.1.1;Invalid property value",
                &[("3.1.1", Some("Invalid property value"))],
            ),
            ("garbage,9.9,2,.5,2.x", &[]),
        ];
        for (input, want) in cases {
            let got = ScheduleStatus::parse_all(input);
            let got: Vec<(String, Option<&str>)> = got
                .iter()
                .map(|s| (s.code(), s.description.as_deref()))
                .collect();
            let want: Vec<(String, Option<&str>)> =
                want.iter().map(|(c, d)| (c.to_string(), *d)).collect();
            assert_eq!(got, want, "{input}");
        }
        let s = |v: &str| ScheduleStatus::parse(v).unwrap();
        assert!(s("1.2").is_delivered());
        assert!(s("2.0;Success").is_delivered());
        assert!(!s("3.7").is_delivered());
        assert!(s("3.7").is_unknown_user());
        assert!(s("3.7").is_permanent_failure());
        assert!(s("3.8").is_no_authority());
        assert!(s("5.1").is_temporary_failure());
        assert!(!s("5.1").is_permanent_failure());
        assert!(s("5.3").is_permanent_failure());
        assert!(!s("1.0").is_permanent_failure());
        assert_eq!(s("\"2.0;Success\"").to_string(), "2.0;Success");
        assert_eq!(ScheduleStatus::parse(""), None);
    }

    const CAL: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//x//EN\r\n\
METHOD:request\r\n\
BEGIN:VTIMEZONE\r\n\
TZID:X\r\n\
END:VTIMEZONE\r\n\
BEGIN:VEVENT\r\n\
UID: 4711@a.com \r\n\
SEQUENCE:3\r\n\
DTSTART;TZID=Europe/Paris:20240101T100000\r\n\
DURATION:PT1H30M\r\n\
ORGANIZER;CN=Pete:MAILTO:Pete@A.COM\r\n\
ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=needs-action;ROLE=REQ-PARTICIPANT;RSVP=TRUE;SCHEDULE-STATUS=\"2.0;Success\":mailto:jane@b.com\r\n\
SUMMARY:x\r\n\
ATTENDEE;SCHEDULE-STATUS=3.7;RSVP=NO:mailto:zed@b.com\r\n\
ATTENDEE:Bob <bob@B.com>\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn component_helpers() {
        let mut cal = Component::parse(CAL).unwrap();
        assert_eq!(calendar_method(&cal).as_deref(), Some("REQUEST"));
        assert_eq!(cal.method().as_deref(), Some("REQUEST"));
        let ev = first_schedulable(&cal).unwrap();
        assert_eq!(ev.name, "VEVENT");
        assert_eq!(schedulables(&cal).count(), 1);
        assert_eq!(ev.uid(), Some("4711@a.com"));
        assert_eq!(ev.sequence(), 3);
        assert_eq!(Component::new("VEVENT").sequence(), 0);
        let org = ev.organizer().unwrap();
        assert_eq!(org.to_uri(), "mailto:Pete@a.com");
        assert_eq!(org.cn.as_deref(), Some("Pete"));
        let atts = ev.attendees();
        assert_eq!(atts.len(), 3);
        assert_eq!(atts[0].address.addr, "jane@b.com");
        assert_eq!(atts[0].address.cn.as_deref(), Some("Doe, Jane"));
        assert_eq!(atts[0].partstat.as_deref(), Some("NEEDS-ACTION"));
        assert_eq!(atts[0].role.as_deref(), Some("REQ-PARTICIPANT"));
        assert_eq!(atts[0].rsvp, Some(true));
        assert_eq!(
            atts[0]
                .schedule_status
                .as_ref()
                .map(ScheduleStatus::code)
                .as_deref(),
            Some("2.0")
        );
        assert_eq!(atts[0].line_index, 5);
        assert_eq!(atts[1].rsvp, Some(false));
        assert!(atts[1].schedule_status.as_ref().unwrap().is_unknown_user());
        assert_eq!(atts[1].line_index, 7);
        assert_eq!(atts[2].address.cn.as_deref(), Some("Bob"));
        assert_eq!(atts[2].partstat, None);

        let start = ev.dtstart().unwrap().unwrap();
        assert_eq!(
            start,
            DateOrDateTime::DateTime(
                DateTime::new(2024, 1, 1, 10, 0, 0, Zone::Tzid("Europe/Paris".into())).unwrap()
            )
        );
        assert_eq!(ev.dtend().unwrap(), None);
        assert_eq!(ev.duration().unwrap().unwrap().total_seconds(), 5400);
        assert_eq!(
            ev.effective_end().unwrap().unwrap().to_ical(),
            "20240101T113000"
        );

        let ev = first_schedulable_mut(&mut cal).unwrap();
        let jane = Address::parse("MAILTO:JANE@B.COM").unwrap();
        assert!(ev.set_partstat(&jane, "ACCEPTED"));
        assert_eq!(
            ev.properties[5].to_line(),
            "ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:jane@b.com"
        );
        let bob = Address::parse("bob@b.com").unwrap();
        assert!(ev.set_partstat(&bob, "DECLINED"));
        assert_eq!(
            ev.properties[8].to_line(),
            "ATTENDEE;PARTSTAT=DECLINED:Bob <bob@B.com>"
        );
        assert_eq!(
            ev.attendee(&bob).unwrap().partstat.as_deref(),
            Some("DECLINED")
        );
        assert!(!ev.set_partstat(&Address::parse("nobody@b.com").unwrap(), "ACCEPTED"));
    }

    #[test]
    fn effective_end_rules() {
        let ev =
            |props: &str| Component::parse(&format!("BEGIN:VEVENT\n{props}END:VEVENT\n")).unwrap();
        assert_eq!(ev("").effective_end().unwrap(), None);
        assert_eq!(
            ev("DTSTART;VALUE=DATE:20240228\n")
                .effective_end()
                .unwrap()
                .unwrap()
                .to_ical(),
            "20240229"
        );
        assert_eq!(
            ev("DTSTART;VALUE=DATE:20240228\nDURATION:P2D\n")
                .effective_end()
                .unwrap()
                .unwrap()
                .to_ical(),
            "20240301"
        );
        assert_eq!(
            ev("DTSTART:20240228T100000Z\nDTEND:20240228T110000Z\n")
                .effective_end()
                .unwrap()
                .unwrap()
                .to_ical(),
            "20240228T110000Z"
        );
        assert_eq!(
            ev("DTSTART:20240228T100000Z\n")
                .effective_end()
                .unwrap()
                .unwrap()
                .to_ical(),
            "20240228T100000Z"
        );
        assert!(ev("DTSTART:garbage\n").dtstart().is_err());
        assert!(ev("DURATION:1H\n").duration().is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Address::parse(&s);
            let _ = calendar_address(&s);
            let _ = address_key(&s);
            let _ = ScheduleStatus::parse_all(&s);
        }
    }
}
