//! iTIP methods other than REQUEST on stored objects (RFC 2446 §3.2): ADD and CANCEL of instances.
//!
//! With CalDAV implicit scheduling (RFC 6638 §3.2) the organizer does not send iTIP messages:
//! they change their own stored copy and the server sends ADD/REQUEST/CANCEL to the attendees.
//! A CAP `METHOD:ADD` or `METHOD:CANCEL` from the organizer (cap-04 §7.2.2; spec §3.3) is
//! therefore turned into a new version of the stored calendar object:
//!
//! - [`add_instances`]: RFC 5546 §3.2.4 (RFC 2446 §3.2.4) ADD, new instances of a recurring
//!   event, stored as overrides (RFC 5545 §3.8.4.4 RECURRENCE-ID) whose instance is put into the
//!   recurrence set with an RDATE (RFC 5545 §3.8.5.2);
//! - [`cancel`]: RFC 5546 §3.2.5 (RFC 2446 §3.2.5) CANCEL, of the whole event (delete the
//!   object) or of instances (EXDATE, RFC 5545 §3.8.5.1; `RANGE=THISANDFUTURE` truncates the
//!   RRULE, RFC 5545 §3.2.13, §3.8.5.3).
//!
//! Both increment the master's SEQUENCE (RFC 5546 §2.1.4: "MUST be incremented each time the
//! Organizer uses the ADD or CANCEL methods") and set DTSTAMP and LAST-MODIFIED to `now`.
//!
//! Instances are compared as values (RFC 5545 §3.3.4, §3.3.5 via [`DateOrDateTime`]): a DATE
//! with a DATE, date-times of the same zone field by field. calgate has no time-zone rules, so
//! a UTC value never equals a TZID one; those fall back to comparing the text.

use std::cmp::Ordering;

use crate::ical::component::Component;
use crate::ical::contentline::ContentLine;
use crate::ical::datetime::{Date, DateOrDateTime, DateTime, Duration, Zone};
use crate::ical::scheduling::OBJECT_COMPONENTS;

/// An ADD or CANCEL that cannot be applied: an RFC 2446 §3.6 REQUEST-STATUS code and a readable
/// reason.
pub use super::status::Refusal as ItipError;

/// What a CANCEL does to the stored object (RFC 5546 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelPlan {
    /// The whole event is cancelled: delete the calendar object resource (RFC 6638 §3.2.1.2:
    /// the server then sends CANCEL to every attendee).
    DeleteAll,
    /// Some instances are cancelled: store this VCALENDAR instead.
    Update(Component),
}

/// Whether `c` carries instances (RFC 5546 §1.4; VFREEBUSY has none).
fn is_instance_component(c: &Component) -> bool {
    OBJECT_COMPONENTS
        .iter()
        .any(|n| c.name.eq_ignore_ascii_case(n))
}

/// The stored object's UID, its component type and the index of its master (the component
/// without RECURRENCE-ID), if any.
struct Stored<'a> {
    uid: &'a str,
    name: &'a str,
    master: Option<usize>,
}

/// The index of the master: the instance component without RECURRENCE-ID.
fn master_index(cal: &Component) -> Option<usize> {
    cal.components
        .iter()
        .position(|c| is_instance_component(c) && c.property("RECURRENCE-ID").is_none())
}

fn inspect(stored: &Component) -> Result<Stored<'_>, ItipError> {
    let Some(first) = stored.components.iter().find(|c| is_instance_component(c)) else {
        return Err(ItipError::new(
            "3.11",
            "the stored object holds no VEVENT, VTODO or VJOURNAL",
        ));
    };
    let master = master_index(stored);
    let uid = master
        .and_then(|m| stored.components[m].uid())
        .or(first.uid())
        .unwrap_or("");
    Ok(Stored {
        uid,
        name: &first.name,
        master,
    })
}

/// Checks one incoming component's type and UID against the stored object.
fn check_incoming(c: &Component, stored: &Stored<'_>, method: &str) -> Result<(), ItipError> {
    if !c.name.eq_ignore_ascii_case(stored.name) {
        return Err(ItipError::new(
            "3.4",
            format!(
                "{method} carries a {} but the stored object is a {}",
                c.name, stored.name
            ),
        ));
    }
    match c.uid() {
        None => Err(ItipError::new(
            "3.11",
            format!("{method}: a {} without UID", c.name),
        )),
        Some(u) if u != stored.uid => Err(ItipError::new(
            "3.1",
            format!(
                "{method}: UID {u:?} is not the stored object's UID {:?}",
                stored.uid
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn parse_date(line: &ContentLine) -> Result<DateOrDateTime, ItipError> {
    DateOrDateTime::from_line(line)
        .map_err(|e| ItipError::new("3.5", format!("{}:{}: {e}", line.name, line.value)))
}

/// The master's DTSTART, parsed (3.5 naming the line when it does not parse, which
/// [`Component::dtstart`] cannot).
fn master_start(master: &Component) -> Result<Option<DateOrDateTime>, ItipError> {
    master.property("DTSTART").map(parse_date).transpose()
}

/// `v` written in the form of `like` (the master's DTSTART) where that needs no time-zone
/// rules: a DATE-TIME becomes its date for a DATE master; a DATE gets the master's time of day
/// and zone for a DATE-TIME master. A date-time in another zone stays as it is.
fn in_form_of(v: &DateOrDateTime, like: &DateOrDateTime) -> DateOrDateTime {
    match (v, like) {
        (DateOrDateTime::DateTime(dt), DateOrDateTime::Date(_)) => DateOrDateTime::Date(dt.date()),
        (DateOrDateTime::Date(d), DateOrDateTime::DateTime(m)) => {
            DateOrDateTime::DateTime(DateTime {
                year: d.year,
                month: d.month,
                day: d.day,
                hour: m.hour,
                minute: m.minute,
                second: m.second,
                zone: m.zone.clone(),
            })
        }
        _ => v.clone(),
    }
}

/// Orders two instants when that needs no time-zone rules (two DATEs, or two date-times of the
/// same zone); `None` otherwise.
fn compare(a: &DateOrDateTime, b: &DateOrDateTime) -> Option<Ordering> {
    match (a, b) {
        (DateOrDateTime::Date(x), DateOrDateTime::Date(y)) => Some(x.cmp(y)),
        (DateOrDateTime::DateTime(x), DateOrDateTime::DateTime(y)) => x.partial_cmp(y),
        _ => None,
    }
}

/// The text form used when values cannot be compared: value and TZID.
fn text_key(value: &str, tzid: Option<&str>) -> (String, String) {
    (
        value.trim().to_ascii_uppercase(),
        tzid.unwrap_or("").trim().to_string(),
    )
}

/// Whether two instants are the same: equal values, else equal text.
fn same_instant(a: &DateOrDateTime, b: &DateOrDateTime) -> bool {
    match compare(a, b) {
        Some(o) => o == Ordering::Equal,
        None => text_key(&a.to_ical(), tzid_of(a)) == text_key(&b.to_ical(), tzid_of(b)),
    }
}

fn tzid_of(v: &DateOrDateTime) -> Option<&str> {
    match v {
        DateOrDateTime::DateTime(DateTime {
            zone: Zone::Tzid(t),
            ..
        }) => Some(t),
        _ => None,
    }
}

/// A property line for a DATE (`VALUE=DATE`) or DATE-TIME (with its TZID, or UTC `Z`).
fn date_line(name: &str, v: &DateOrDateTime) -> ContentLine {
    match v {
        DateOrDateTime::Date(d) => ContentLine::new(name, &d.to_ical()).with_param("VALUE", "DATE"),
        DateOrDateTime::DateTime(dt) => dt.to_content_line(name),
    }
}

/// The values of an RDATE/EXDATE line (a comma list, RFC 5545 §3.8.5.1, §3.8.5.2); PERIOD
/// values and unreadable ones are `None`.
fn list_values(line: &ContentLine) -> Vec<(String, Option<DateOrDateTime>)> {
    let tzid = line.param("TZID");
    let period = line
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("PERIOD"));
    line.value
        .split(',')
        .map(|raw| {
            let parsed = if period || raw.contains('/') {
                None
            } else {
                DateOrDateTime::parse(raw, tzid).ok()
            };
            (raw.to_string(), parsed)
        })
        .collect()
}

/// Whether any `name` line of `c` lists instant `v` (compared in the form of `start`).
fn lists(c: &Component, name: &str, v: &DateOrDateTime, start: &DateOrDateTime) -> bool {
    c.properties(name).any(|l| {
        let tzid = l.param("TZID");
        list_values(l).iter().any(|(raw, parsed)| match parsed {
            Some(p) => same_instant(&in_form_of(p, start), v),
            None => text_key(raw, tzid) == text_key(&v.to_ical(), tzid_of(v)),
        })
    })
}

/// Removes from every `name` line of `c` the values for which `drop` is true (a line left empty
/// goes); returns whether anything was removed.
fn remove_values(c: &mut Component, name: &str, drop: &dyn Fn(&DateOrDateTime) -> bool) -> bool {
    let mut removed = false;
    let mut keep = Vec::with_capacity(c.properties.len());
    for mut line in std::mem::take(&mut c.properties) {
        if !line.name.eq_ignore_ascii_case(name) {
            keep.push(line);
            continue;
        }
        let values = list_values(&line);
        let kept: Vec<String> = values
            .iter()
            .filter(|(_, p)| !p.as_ref().is_some_and(drop))
            .map(|(raw, _)| raw.clone())
            .collect();
        if kept.len() == values.len() {
            keep.push(line);
            continue;
        }
        removed = true;
        if !kept.is_empty() {
            line.value = kept.join(",");
            keep.push(line);
        }
    }
    c.properties = keep;
    removed
}

/// The index of the override of `c_name` whose RECURRENCE-ID is `rid`.
fn find_override(
    cal: &Component,
    name: &str,
    rid: &DateOrDateTime,
    start: Option<&DateOrDateTime>,
) -> Option<usize> {
    cal.components.iter().position(|c| {
        c.name.eq_ignore_ascii_case(name)
            && c.property("RECURRENCE-ID")
                .is_some_and(|l| match DateOrDateTime::from_line(l) {
                    Ok(v) => same_instant(&start.map_or(v.clone(), |s| in_form_of(&v, s)), rid),
                    Err(_) => {
                        text_key(&l.value, l.param("TZID"))
                            == text_key(&rid.to_ical(), tzid_of(rid))
                    }
                })
    })
}

/// SEQUENCE, DTSTAMP and LAST-MODIFIED of a changed component (RFC 5546 §2.1.4, RFC 5545
/// §3.8.7.2, §3.8.7.3).
fn stamp(c: &mut Component, sequence: u32, now: &DateTime) {
    c.set_property(ContentLine::new("SEQUENCE", &sequence.to_string()));
    c.set_property(now.to_content_line("DTSTAMP"));
    c.set_property(now.to_content_line("LAST-MODIFIED"));
}

/// Master properties an added instance does not inherit: identity, timing, recurrence and the
/// ones the gateway sets.
const NOT_INHERITED: [&str; 15] = [
    "UID",
    "RECURRENCE-ID",
    "DTSTART",
    "DTEND",
    "DURATION",
    "DUE",
    "RRULE",
    "RDATE",
    "EXDATE",
    "EXRULE",
    "DTSTAMP",
    "SEQUENCE",
    "LAST-MODIFIED",
    "CREATED",
    "METHOD",
];

/// Completes an added instance from the master: properties it does not carry at all (SUMMARY,
/// ORGANIZER, ATTENDEEs without SCHEDULE-STATUS, …) and the master's alarms, and a DURATION
/// when it has neither an end nor a duration (the master's, or the master's DTEND/DUE minus its
/// DTSTART).
fn inherit(inst: &mut Component, master: &Component) {
    let mut inherited = Vec::new();
    for p in &master.properties {
        if NOT_INHERITED.iter().any(|n| p.name.eq_ignore_ascii_case(n))
            || inst.property(&p.name).is_some()
        {
            continue;
        }
        let mut p = p.clone();
        p.remove_param("SCHEDULE-STATUS");
        inherited.push(p);
    }
    inst.properties.extend(inherited);
    if inst.components.is_empty() {
        inst.components = master.components.clone();
    }
    let end_name = if inst.name.eq_ignore_ascii_case("VTODO") {
        "DUE"
    } else if inst.name.eq_ignore_ascii_case("VEVENT") {
        "DTEND"
    } else {
        return;
    };
    if inst.property(end_name).is_some() || inst.property("DURATION").is_some() {
        return;
    }
    if let Some(d) = master.property("DURATION") {
        inst.properties.push(d.clone());
        return;
    }
    let end = if end_name == "DUE" {
        master.due()
    } else {
        master.dtend()
    };
    let (Ok(Some(start)), Ok(Some(end))) = (master.dtstart(), end) else {
        return;
    };
    // Two DATEs, or two date-times of the same zone: no time-zone rules needed.
    if compare(&start, &end).is_none() {
        return;
    }
    let secs = end.wall_seconds() - start.wall_seconds();
    if secs >= 0 {
        inst.properties.push(ContentLine::new(
            "DURATION",
            &Duration::from_seconds(secs).to_ical(),
        ));
    }
}

/// RFC 5546 §3.2.4 ADD on the organizer's stored copy: the instances in `added` merged into the
/// stored VCALENDAR `stored`.
///
/// Each added component must have the stored object's type and UID (else 3.4 / 3.1; no UID
/// is 3.11) and a DTSTART (3.11) of the master DTSTART's value type, DATE or DATE-TIME (3.5).
/// Its instance is its RECURRENCE-ID, or its DTSTART when it has none; written in the master's
/// DTSTART form where no time-zone rules are needed. Then:
///
/// - it becomes an override with `RECURRENCE-ID` = the instance (replacing an override of the
///   same instance), completed from the master with what it does not carry (ORGANIZER,
///   ATTENDEEs, SUMMARY, alarms, a DURATION, … so that a minimal `UID`+`DTSTART` from a CAP
///   client is a full instance for the attendees);
/// - the master gets an RDATE for the instance, unless it is the master's DTSTART or already
///   listed (duplicates with RRULE instances are harmless, RFC 5545 §3.8.5.2), and loses any
///   EXDATE for it (EXDATE would win);
/// - the master's SEQUENCE is incremented (or raised to the highest SEQUENCE of the added
///   components if that is higher) and given to the new overrides; DTSTAMP and LAST-MODIFIED
///   are set to `now`.
///
/// The stored object needs a master with a DTSTART (3.11). METHOD properties inside the added
/// components (a cap-04 placeholder) are dropped.
pub fn add_instances(
    stored: &Component,
    added: &[Component],
    now: &DateTime,
) -> Result<Component, ItipError> {
    let info = inspect(stored)?;
    let Some(mi) = info.master else {
        return Err(ItipError::new(
            "3.11",
            format!(
                "ADD: the stored object {:?} has only overridden instances, no master to add to",
                info.uid
            ),
        ));
    };
    let master = &stored.components[mi];
    let Some(start) = master_start(master)? else {
        return Err(ItipError::new(
            "3.11",
            format!("ADD: the stored {} has no DTSTART", master.name),
        ));
    };
    if added.is_empty() {
        return Err(ItipError::new("3.11", "ADD needs at least one instance"));
    }
    let mut sequence = master.sequence().saturating_add(1);
    let mut instances: Vec<(DateOrDateTime, Component)> = Vec::new();
    for a in added {
        check_incoming(a, &info, "ADD")?;
        let Some(dtstart) = a.property("DTSTART") else {
            return Err(ItipError::new(
                "3.11",
                format!("ADD: an instance of {:?} without DTSTART", info.uid),
            ));
        };
        let own_start = parse_date(dtstart)?;
        if own_start.is_date() != start.is_date() {
            return Err(ItipError::new(
                "3.5",
                format!(
                    "ADD: DTSTART {} must be a {} like the stored DTSTART {}",
                    dtstart.value,
                    if start.is_date() { "DATE" } else { "DATE-TIME" },
                    start.to_ical()
                ),
            ));
        }
        let rid = match a.property("RECURRENCE-ID") {
            Some(l) => parse_date(l)?,
            None => own_start,
        };
        let rid = in_form_of(&rid, &start);
        sequence = sequence.max(a.sequence());
        let mut inst = a.clone();
        inst.remove_properties("METHOD");
        inst.remove_properties("RECURRENCE-ID");
        inst.properties.push(date_line("RECURRENCE-ID", &rid));
        inherit(&mut inst, master);
        match instances.iter().position(|(r, _)| same_instant(r, &rid)) {
            Some(i) => instances[i] = (rid, inst),
            None => instances.push((rid, inst)),
        }
    }

    let mut cal = stored.clone();
    {
        let m = &mut cal.components[mi];
        for (rid, _) in &instances {
            if !same_instant(rid, &start) && !lists(m, "RDATE", rid, &start) {
                m.properties.push(date_line("RDATE", rid));
            }
            remove_values(m, "EXDATE", &|v| same_instant(&in_form_of(v, &start), rid));
        }
        stamp(m, sequence, now);
    }
    for (rid, mut inst) in instances {
        stamp(&mut inst, sequence, now);
        match find_override(&cal, info.name, &rid, Some(&start)) {
            Some(i) => cal.components[i] = inst,
            None => cal.components.push(inst),
        }
    }
    Ok(cal)
}

/// Whether the master has a recurrence set beyond its DTSTART (RRULE or RDATE).
fn is_recurring(master: &Component) -> bool {
    master.property("RRULE").is_some() || master.property("RDATE").is_some()
}

/// For a master without RRULE: whether EXDATE excludes DTSTART and every RDATE (nothing left).
fn all_excluded(master: &Component, start: &DateOrDateTime) -> bool {
    if master.property("RRULE").is_some() || master.property("EXRULE").is_some() {
        return false;
    }
    let mut instances = vec![start.clone()];
    for l in master.properties("RDATE") {
        for (_, p) in list_values(l) {
            match p {
                Some(p) => instances.push(in_form_of(&p, start)),
                None => return false,
            }
        }
    }
    instances.iter().all(|i| lists(master, "EXDATE", i, start))
}

/// The RRULE UNTIL that ends the set just before `rid` (RFC 5545 §3.3.10: a DATE for a DATE
/// DTSTART, local time for a floating one, UTC otherwise). `None` for a TZID DTSTART, which
/// would need time-zone rules to express in UTC.
fn until_before(rid: &DateOrDateTime, start: &DateOrDateTime) -> Option<DateOrDateTime> {
    match (rid, start) {
        (DateOrDateTime::Date(d), DateOrDateTime::Date(_)) => {
            Date::from_days_since_epoch(d.days_since_epoch() - 1).map(DateOrDateTime::Date)
        }
        (DateOrDateTime::DateTime(r), DateOrDateTime::DateTime(s))
            if r.zone == s.zone && matches!(s.zone, Zone::Utc | Zone::Floating) =>
        {
            DateTime::from_wall_seconds(r.wall_seconds() - 1, r.zone.clone())
                .map(DateOrDateTime::DateTime)
        }
        _ => None,
    }
}

/// The `UNTIL=` part of an RRULE, if any.
fn is_until(part: &str) -> bool {
    part.trim()
        .get(..6)
        .is_some_and(|k| k.eq_ignore_ascii_case("UNTIL="))
}

/// RANGE=THISANDFUTURE (RFC 5545 §3.2.13): ends the master's RRULE before `rid`, drops RDATEs
/// and overrides from `rid` on.
fn cancel_this_and_future(
    cal: &mut Component,
    mi: usize,
    name: &str,
    rid: &DateOrDateTime,
    start: &DateOrDateTime,
) -> Result<(), ItipError> {
    let master = &mut cal.components[mi];
    let rules: Vec<usize> = (0..master.properties.len())
        .filter(|&i| master.properties[i].name.eq_ignore_ascii_case("RRULE"))
        .collect();
    if !rules.is_empty() {
        let Some(until) = until_before(rid, start) else {
            return Err(ItipError::new(
                "3.14",
                format!(
                    "CANCEL with RANGE=THISANDFUTURE of {} needs time-zone rules calgate does not have; cancel the instances one by one",
                    rid.to_ical()
                ),
            ));
        };
        for i in rules {
            let rule = &master.properties[i].value;
            let parts: Vec<&str> = rule.split(';').filter(|p| !p.trim().is_empty()).collect();
            if parts
                .iter()
                .any(|p| p.trim().to_ascii_uppercase().starts_with("COUNT="))
            {
                return Err(ItipError::new(
                    "3.14",
                    "CANCEL with RANGE=THISANDFUTURE of an RRULE with COUNT is not supported; cancel the instances one by one",
                ));
            }
            // An UNTIL at or before the new one already ends the set before `rid`.
            let earlier = parts.iter().any(|p| {
                is_until(p)
                    && p.trim()
                        .get(6..)
                        .and_then(|v| DateOrDateTime::parse(v, None).ok())
                        .and_then(|v| compare(&v, &until))
                        .is_some_and(|o| o != Ordering::Greater)
            });
            if earlier {
                continue;
            }
            let mut kept: Vec<String> = parts
                .iter()
                .filter(|p| !is_until(p))
                .map(|p| p.to_string())
                .collect();
            kept.push(format!("UNTIL={}", until.to_ical()));
            master.properties[i].value = kept.join(";");
        }
    }
    let later = |v: &DateOrDateTime| {
        compare(&in_form_of(v, start), rid).is_some_and(|o| o != Ordering::Less)
    };
    remove_values(master, "RDATE", &later);
    cal.components.retain(|c| {
        !(c.name.eq_ignore_ascii_case(name)
            && c.recurrence_id().ok().flatten().is_some_and(|v| later(&v)))
    });
    Ok(())
}

/// RFC 5546 §3.2.5 CANCEL on the organizer's stored copy.
///
/// Each component of `cancel` must have the stored object's type and UID (else 3.4 / 3.1; no
/// UID is 3.11).
///
/// - One without RECURRENCE-ID cancels the whole event: [`CancelPlan::DeleteAll`].
/// - One with RECURRENCE-ID cancels that instance: an EXDATE on the master in the form of the
///   master's DTSTART (same TZID, `VALUE=DATE` or UTC; a value in another zone keeps its own
///   form, which RFC 5545 compares as an instant), and the override for it, if any, removed.
///   `RANGE=THISANDFUTURE` cancels the instance and all later ones: the RRULE gets an UNTIL
///   just before it (3.14 for a TZID DTSTART, which would need time-zone rules to write the UTC
///   UNTIL, and for an RRULE with COUNT), later RDATEs and overrides go.
/// - In a non-recurring event (no RRULE, no RDATE) the only instance is the DTSTART: cancelling
///   it is [`CancelPlan::DeleteAll`]; any other RECURRENCE-ID is 3.1 unless an override for it
///   is stored (it is removed).
/// - When no instance is left (the first one and every RDATE excluded, no RRULE; or no
///   component left at all): [`CancelPlan::DeleteAll`].
///
/// Otherwise [`CancelPlan::Update`] with the master's SEQUENCE incremented and its DTSTAMP and
/// LAST-MODIFIED set to `now` (without a master: every remaining override's).
pub fn cancel(
    stored: &Component,
    cancel: &[Component],
    now: &DateTime,
) -> Result<CancelPlan, ItipError> {
    let info = inspect(stored)?;
    if cancel.is_empty() {
        return Err(ItipError::new(
            "3.11",
            "CANCEL needs the event or the instances to cancel",
        ));
    }
    for c in cancel {
        check_incoming(c, &info, "CANCEL")?;
    }
    if cancel.iter().any(|c| c.property("RECURRENCE-ID").is_none()) {
        return Ok(CancelPlan::DeleteAll);
    }
    let mut cal = stored.clone();
    let master = info.master.map(|mi| &stored.components[mi]);
    let start = match master {
        Some(m) => master_start(m)?,
        None => None,
    };
    let recurring = master.is_some_and(is_recurring);
    for c in cancel {
        let Some(line) = c.property("RECURRENCE-ID") else {
            continue;
        };
        let raw = parse_date(line)?;
        let rid = start.as_ref().map_or(raw.clone(), |s| in_form_of(&raw, s));
        let future = line
            .param("RANGE")
            .is_some_and(|r| r.eq_ignore_ascii_case("THISANDFUTURE"));
        let over = find_override(&cal, info.name, &rid, start.as_ref());
        // Overrides are removed as we go: find the master afresh.
        match (master_index(&cal), &start) {
            (Some(mi), Some(s)) if recurring => {
                // From the first instance (or earlier) on: nothing is left.
                if future && compare(&rid, s).is_some_and(|o| o != Ordering::Greater) {
                    return Ok(CancelPlan::DeleteAll);
                }
                if future {
                    cancel_this_and_future(&mut cal, mi, info.name, &rid, s)?;
                    continue;
                }
                let m = &mut cal.components[mi];
                if !lists(m, "EXDATE", &rid, s) {
                    m.properties.push(date_line("EXDATE", &rid));
                }
                if let Some(i) = over {
                    cal.components.remove(i);
                }
            }
            (Some(_), Some(s)) if same_instant(&rid, s) => return Ok(CancelPlan::DeleteAll),
            _ => match over {
                Some(i) => {
                    cal.components.remove(i);
                }
                None => {
                    return Err(ItipError::new(
                        "3.1",
                        format!(
                            "CANCEL: {:?} has no instance {}",
                            info.uid,
                            line.value.trim()
                        ),
                    ));
                }
            },
        }
    }

    if !cal.components.iter().any(is_instance_component) {
        return Ok(CancelPlan::DeleteAll);
    }
    match master_index(&cal) {
        Some(mi) => {
            let m = &cal.components[mi];
            if start.as_ref().is_some_and(|s| all_excluded(m, s)) {
                return Ok(CancelPlan::DeleteAll);
            }
            let next = m.sequence().saturating_add(1);
            stamp(&mut cal.components[mi], next, now);
        }
        None => {
            for c in cal
                .components
                .iter_mut()
                .filter(|c| is_instance_component(c))
            {
                let next = c.sequence().saturating_add(1);
                stamp(c, next, now);
            }
        }
    }
    Ok(CancelPlan::Update(cal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::testing::{comp, lines, now};

    fn cal(events: &str) -> Component {
        comp(&format!(
            "BEGIN:VCALENDAR
             VERSION:2.0
             PRODID:-//test//EN
             BEGIN:VTIMEZONE
             TZID:Europe/Berlin
             END:VTIMEZONE
             {events}
             END:VCALENDAR"
        ))
    }

    const WEEKLY_TZID: &str = "BEGIN:VEVENT
        UID:w1
        SEQUENCE:1
        DTSTAMP:20250101T000000Z
        DTSTART;TZID=Europe/Berlin:20250106T100000
        DTEND;TZID=Europe/Berlin:20250106T110000
        RRULE:FREQ=WEEKLY
        SUMMARY:Weekly
        ORGANIZER:mailto:alice@example.com
        ATTENDEE;PARTSTAT=ACCEPTED;SCHEDULE-STATUS=2.0:mailto:bob@example.com
        END:VEVENT";

    fn events(c: &Component) -> Vec<&Component> {
        c.components.iter().filter(|c| c.name == "VEVENT").collect()
    }

    fn update(p: CancelPlan) -> Component {
        match p {
            CancelPlan::Update(c) => c,
            CancelPlan::DeleteAll => panic!("expected an update"),
        }
    }

    // --------------------------------------------------------------------- ADD --

    #[test]
    fn add_override_with_recurrence_id() {
        let stored = cal(WEEKLY_TZID);
        let added = comp(
            "BEGIN:VEVENT
             UID:w1
             RECURRENCE-ID;TZID=Europe/Berlin:20250108T100000
             DTSTART;TZID=Europe/Berlin:20250108T150000
             DTEND;TZID=Europe/Berlin:20250108T160000
             SUMMARY:Extra
             END:VEVENT",
        );
        let out = add_instances(&stored, &[added], &now()).unwrap();
        let evs = events(&out);
        assert_eq!(evs.len(), 2);
        let m = evs[0];
        assert_eq!(m.sequence(), 2);
        assert_eq!(m.value("DTSTAMP"), Some("20250601T120000Z"));
        assert_eq!(
            lines(m, "RDATE"),
            ["RDATE;TZID=Europe/Berlin:20250108T100000"]
        );
        let o = evs[1];
        assert_eq!(
            lines(o, "RECURRENCE-ID"),
            ["RECURRENCE-ID;TZID=Europe/Berlin:20250108T100000"]
        );
        assert_eq!(o.value("SUMMARY"), Some("Extra"));
        assert_eq!(o.sequence(), 2);
        // Inherited from the master, without SCHEDULE-STATUS; no recurrence rules.
        assert_eq!(o.value("ORGANIZER"), Some("mailto:alice@example.com"));
        assert_eq!(
            lines(o, "ATTENDEE"),
            ["ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com"]
        );
        assert_eq!(o.value("RRULE"), None);
        assert_eq!(o.value("DURATION"), None);
        // The VTIMEZONE is untouched.
        assert_eq!(out.components[0], stored.components[0]);
        // Adding the same instance again replaces the override, no second RDATE.
        let again = comp(
            "BEGIN:VEVENT
             UID:w1
             RECURRENCE-ID;TZID=Europe/Berlin:20250108T100000
             DTSTART;TZID=Europe/Berlin:20250108T170000
             END:VEVENT",
        );
        let out2 = add_instances(&out, &[again], &now()).unwrap();
        let evs = events(&out2);
        assert_eq!(evs.len(), 2);
        assert_eq!(lines(evs[0], "RDATE").len(), 1);
        assert_eq!(evs[1].value("DTSTART"), Some("20250108T170000"));
        assert_eq!(evs[1].value("DURATION"), Some("PT1H"));
        assert_eq!(evs[0].sequence(), 3);
    }

    #[test]
    fn add_new_rdate_instance() {
        let stored = cal(WEEKLY_TZID);
        let added = comp(
            "BEGIN:VEVENT
             UID:w1
             METHOD:ADD
             DTSTART;TZID=Europe/Berlin:20250109T090000
             END:VEVENT",
        );
        let out = add_instances(&stored, &[added], &now()).unwrap();
        let evs = events(&out);
        assert_eq!(
            lines(evs[0], "RDATE"),
            ["RDATE;TZID=Europe/Berlin:20250109T090000"]
        );
        let o = evs[1];
        assert_eq!(
            lines(o, "RECURRENCE-ID"),
            ["RECURRENCE-ID;TZID=Europe/Berlin:20250109T090000"]
        );
        assert_eq!(o.value("METHOD"), None);
        assert_eq!(o.value("SUMMARY"), Some("Weekly"));
        // The master's length, as a DURATION.
        assert_eq!(o.value("DURATION"), Some("PT1H"));
        assert_eq!(o.value("DTSTAMP"), Some("20250601T120000Z"));
    }

    #[test]
    fn add_to_date_and_utc_masters() {
        let stored = cal("BEGIN:VEVENT
             UID:d1
             DTSTART;VALUE=DATE:20250106
             DTEND;VALUE=DATE:20250107
             RRULE:FREQ=MONTHLY
             EXDATE;VALUE=DATE:20250206,20250306
             END:VEVENT");
        let added = comp(
            "BEGIN:VEVENT
             UID:d1
             DTSTART;VALUE=DATE:20250206
             END:VEVENT",
        );
        let out = add_instances(&stored, &[added], &now()).unwrap();
        let m = events(&out)[0];
        // Re-added: no longer excluded.
        assert_eq!(lines(m, "EXDATE"), ["EXDATE;VALUE=DATE:20250306"]);
        assert_eq!(lines(m, "RDATE"), ["RDATE;VALUE=DATE:20250206"]);
        assert_eq!(m.value("SEQUENCE"), Some("1"));
        assert_eq!(events(&out)[1].value("DURATION"), Some("P1D"));
        // A DATE-TIME for a DATE master is refused.
        let bad = comp(
            "BEGIN:VEVENT
             UID:d1
             DTSTART:20250206T100000Z
             END:VEVENT",
        );
        assert_eq!(
            add_instances(&stored, &[bad], &now()).unwrap_err().code,
            "3.5"
        );

        let utc = cal("BEGIN:VEVENT
             UID:u1
             SEQUENCE:4
             DTSTART:20250106T100000Z
             DURATION:PT30M
             END:VEVENT");
        let added = comp(
            "BEGIN:VEVENT
             UID:u1
             SEQUENCE:9
             DTSTART:20250107T100000Z
             END:VEVENT",
        );
        let out = add_instances(&utc, &[added], &now()).unwrap();
        let evs = events(&out);
        assert_eq!(lines(evs[0], "RDATE"), ["RDATE:20250107T100000Z"]);
        assert_eq!(evs[0].sequence(), 9);
        assert_eq!(evs[1].value("RECURRENCE-ID"), Some("20250107T100000Z"));
        assert_eq!(evs[1].value("DURATION"), Some("PT30M"));
        // Adding the first instance itself: an override, no RDATE.
        let first = comp(
            "BEGIN:VEVENT
             UID:u1
             DTSTART:20250106T100000Z
             SUMMARY:first
             END:VEVENT",
        );
        let out = add_instances(&utc, &[first], &now()).unwrap();
        assert_eq!(lines(events(&out)[0], "RDATE").len(), 0);
        assert_eq!(
            events(&out)[1].value("RECURRENCE-ID"),
            Some("20250106T100000Z")
        );
    }

    #[test]
    fn add_errors() {
        let stored = cal(WEEKLY_TZID);
        let code = |text: &str| {
            add_instances(&stored, &[comp(text)], &now())
                .unwrap_err()
                .code
        };
        assert_eq!(
            code("BEGIN:VEVENT\nUID:other\nDTSTART:20250109T090000Z\nEND:VEVENT"),
            "3.1"
        );
        assert_eq!(
            code("BEGIN:VEVENT\nDTSTART:20250109T090000Z\nEND:VEVENT"),
            "3.11"
        );
        assert_eq!(code("BEGIN:VEVENT\nUID:w1\nSUMMARY:x\nEND:VEVENT"), "3.11");
        assert_eq!(
            code("BEGIN:VTODO\nUID:w1\nDTSTART:20250109T090000Z\nEND:VTODO"),
            "3.4"
        );
        assert_eq!(
            code("BEGIN:VEVENT\nUID:w1\nDTSTART:2025-01-09\nEND:VEVENT"),
            "3.5"
        );
        assert_eq!(
            add_instances(&stored, &[], &now()).unwrap_err().code,
            "3.11"
        );
        let empty = comp("BEGIN:VCALENDAR\nEND:VCALENDAR");
        let e = add_instances(&empty, &[comp(WEEKLY_TZID)], &now()).unwrap_err();
        assert_eq!(e.code, "3.11");
        assert_eq!(
            crate::cap::status::Status::from(e).to_line().value,
            "3.11;the stored object holds no VEVENT\\, VTODO or VJOURNAL"
        );
    }

    // ------------------------------------------------------------------ CANCEL --

    #[test]
    fn cancel_whole_event() {
        let stored = cal(WEEKLY_TZID);
        let c = comp("BEGIN:VEVENT\nUID:w1\nSTATUS:CANCELLED\nEND:VEVENT");
        assert_eq!(
            cancel(&stored, &[c], &now()).unwrap(),
            CancelPlan::DeleteAll
        );
    }

    #[test]
    fn cancel_instance_tzid() {
        let stored = cal(&format!(
            "{WEEKLY_TZID}
             BEGIN:VEVENT
             UID:w1
             RECURRENCE-ID;TZID=Europe/Berlin:20250113T100000
             DTSTART;TZID=Europe/Berlin:20250113T120000
             END:VEVENT
             BEGIN:VEVENT
             UID:w1
             RECURRENCE-ID;TZID=Europe/Berlin:20250120T100000
             DTSTART;TZID=Europe/Berlin:20250120T120000
             END:VEVENT"
        ));
        let c = comp(
            "BEGIN:VEVENT
             UID:w1
             RECURRENCE-ID;TZID=Europe/Berlin:20250113T100000
             END:VEVENT",
        );
        let out = update(cancel(&stored, std::slice::from_ref(&c), &now()).unwrap());
        let evs = events(&out);
        assert_eq!(evs.len(), 2);
        assert_eq!(
            lines(evs[0], "EXDATE"),
            ["EXDATE;TZID=Europe/Berlin:20250113T100000"]
        );
        assert_eq!(evs[0].sequence(), 2);
        assert_eq!(evs[0].value("DTSTAMP"), Some("20250601T120000Z"));
        assert_eq!(evs[1].value("RECURRENCE-ID"), Some("20250120T100000"));
        // Cancelling it again adds no second EXDATE.
        let again = update(cancel(&out, &[c], &now()).unwrap());
        assert_eq!(lines(events(&again)[0], "EXDATE").len(), 1);
        // A DATE RECURRENCE-ID is taken as that day's instance.
        let d = comp("BEGIN:VEVENT\nUID:w1\nRECURRENCE-ID;VALUE=DATE:20250127\nEND:VEVENT");
        let out = update(cancel(&stored, &[d], &now()).unwrap());
        assert_eq!(
            lines(events(&out)[0], "EXDATE"),
            ["EXDATE;TZID=Europe/Berlin:20250127T100000"]
        );
        // A UTC one cannot be converted without zone rules: it keeps its form.
        let u = comp("BEGIN:VEVENT\nUID:w1\nRECURRENCE-ID:20250127T090000Z\nEND:VEVENT");
        let out = update(cancel(&stored, &[u], &now()).unwrap());
        assert_eq!(
            lines(events(&out)[0], "EXDATE"),
            ["EXDATE:20250127T090000Z"]
        );
    }

    #[test]
    fn cancel_instance_utc_and_date() {
        let utc = cal("BEGIN:VEVENT
             UID:u1
             DTSTART:20250106T100000Z
             RRULE:FREQ=DAILY
             EXDATE:20250107T100000Z
             END:VEVENT");
        let c = comp("BEGIN:VEVENT\nUID:u1\nRECURRENCE-ID:20250108T100000Z\nEND:VEVENT");
        let out = update(cancel(&utc, &[c], &now()).unwrap());
        assert_eq!(
            lines(events(&out)[0], "EXDATE"),
            ["EXDATE:20250107T100000Z", "EXDATE:20250108T100000Z"]
        );
        assert_eq!(events(&out)[0].value("SEQUENCE"), Some("1"));

        let date = cal("BEGIN:VEVENT
             UID:d1
             DTSTART;VALUE=DATE:20250106
             RRULE:FREQ=WEEKLY
             END:VEVENT");
        let c = comp("BEGIN:VEVENT\nUID:d1\nRECURRENCE-ID;VALUE=DATE:20250113\nEND:VEVENT");
        let out = update(cancel(&date, &[c], &now()).unwrap());
        assert_eq!(
            lines(events(&out)[0], "EXDATE"),
            ["EXDATE;VALUE=DATE:20250113"]
        );
        // A DATE-TIME RECURRENCE-ID for a DATE master: its date.
        let c = comp("BEGIN:VEVENT\nUID:d1\nRECURRENCE-ID:20250120T000000\nEND:VEVENT");
        let out = update(cancel(&date, &[c], &now()).unwrap());
        assert_eq!(
            lines(events(&out)[0], "EXDATE"),
            ["EXDATE;VALUE=DATE:20250120"]
        );
    }

    #[test]
    fn cancel_override_listed_before_master() {
        let stored = cal("BEGIN:VEVENT
             UID:u1
             RECURRENCE-ID:20250107T100000Z
             DTSTART:20250107T120000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:u1
             DTSTART:20250106T100000Z
             RRULE:FREQ=DAILY
             END:VEVENT");
        let c = comp("BEGIN:VEVENT\nUID:u1\nRECURRENCE-ID:20250107T100000Z\nEND:VEVENT");
        let out = update(cancel(&stored, &[c], &now()).unwrap());
        let evs = events(&out);
        assert_eq!(evs.len(), 1);
        assert_eq!(lines(evs[0], "EXDATE"), ["EXDATE:20250107T100000Z"]);
        assert_eq!(evs[0].value("SEQUENCE"), Some("1"));
    }

    #[test]
    fn cancel_non_recurring() {
        let single = cal("BEGIN:VEVENT
             UID:s1
             DTSTART:20250106T100000Z
             END:VEVENT");
        let other = comp("BEGIN:VEVENT\nUID:s1\nRECURRENCE-ID:20250107T100000Z\nEND:VEVENT");
        assert_eq!(cancel(&single, &[other], &now()).unwrap_err().code, "3.1");
        let only = comp("BEGIN:VEVENT\nUID:s1\nRECURRENCE-ID:20250106T100000Z\nEND:VEVENT");
        assert_eq!(
            cancel(&single, &[only], &now()).unwrap(),
            CancelPlan::DeleteAll
        );
    }

    #[test]
    fn cancel_last_rdate_instance_deletes() {
        let rdates = cal("BEGIN:VEVENT
             UID:r1
             DTSTART:20250106T100000Z
             RDATE:20250107T100000Z
             EXDATE:20250106T100000Z
             END:VEVENT");
        let c = comp("BEGIN:VEVENT\nUID:r1\nRECURRENCE-ID:20250107T100000Z\nEND:VEVENT");
        assert_eq!(
            cancel(&rdates, &[c], &now()).unwrap(),
            CancelPlan::DeleteAll
        );
    }

    #[test]
    fn cancel_this_and_future() {
        let utc = cal("BEGIN:VEVENT
             UID:u1
             DTSTART:20250106T100000Z
             RRULE:FREQ=DAILY;INTERVAL=2
             RDATE:20250101T100000Z,20250301T100000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:u1
             RECURRENCE-ID:20250110T100000Z
             DTSTART:20250110T110000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:u1
             RECURRENCE-ID:20250108T100000Z
             DTSTART:20250108T110000Z
             END:VEVENT");
        let c = comp(
            "BEGIN:VEVENT\nUID:u1\nRECURRENCE-ID;RANGE=THISANDFUTURE:20250110T100000Z\nEND:VEVENT",
        );
        let out = update(cancel(&utc, &[c], &now()).unwrap());
        let evs = events(&out);
        assert_eq!(evs.len(), 2);
        assert_eq!(
            evs[0].value("RRULE"),
            Some("FREQ=DAILY;INTERVAL=2;UNTIL=20250110T095959Z")
        );
        assert_eq!(lines(evs[0], "RDATE"), ["RDATE:20250101T100000Z"]);
        assert_eq!(evs[1].value("RECURRENCE-ID"), Some("20250108T100000Z"));
        assert_eq!(evs[0].value("SEQUENCE"), Some("1"));
        // From the first instance on: everything.
        let c = comp(
            "BEGIN:VEVENT\nUID:u1\nRECURRENCE-ID;RANGE=THISANDFUTURE:20250106T100000Z\nEND:VEVENT",
        );
        assert_eq!(cancel(&utc, &[c], &now()).unwrap(), CancelPlan::DeleteAll);
        // DATE master: UNTIL is the day before.
        let date = cal("BEGIN:VEVENT
             UID:d1
             DTSTART;VALUE=DATE:20250106
             RRULE:FREQ=WEEKLY;UNTIL=20251231
             END:VEVENT");
        let c = comp(
            "BEGIN:VEVENT\nUID:d1\nRECURRENCE-ID;VALUE=DATE;RANGE=THISANDFUTURE:20250301\nEND:VEVENT",
        );
        let out = update(cancel(&date, &[c], &now()).unwrap());
        assert_eq!(
            events(&out)[0].value("RRULE"),
            Some("FREQ=WEEKLY;UNTIL=20250228")
        );
        // TZID master and COUNT rules are refused.
        let c = comp(
            "BEGIN:VEVENT\nUID:w1\nRECURRENCE-ID;TZID=Europe/Berlin;RANGE=THISANDFUTURE:20250113T100000\nEND:VEVENT",
        );
        assert_eq!(
            cancel(&cal(WEEKLY_TZID), &[c], &now()).unwrap_err().code,
            "3.14"
        );
        let count = cal("BEGIN:VEVENT
             UID:c1
             DTSTART:20250106T100000Z
             RRULE:FREQ=DAILY;COUNT=10
             END:VEVENT");
        let c = comp(
            "BEGIN:VEVENT\nUID:c1\nRECURRENCE-ID;RANGE=THISANDFUTURE:20250110T100000Z\nEND:VEVENT",
        );
        assert_eq!(cancel(&count, &[c], &now()).unwrap_err().code, "3.14");
    }

    #[test]
    fn cancel_without_master() {
        let overrides = cal("BEGIN:VEVENT
             UID:o1
             RECURRENCE-ID:20250106T100000Z
             DTSTART:20250106T100000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:o1
             RECURRENCE-ID:20250107T100000Z
             DTSTART:20250107T100000Z
             END:VEVENT");
        let c = comp("BEGIN:VEVENT\nUID:o1\nRECURRENCE-ID:20250106T100000Z\nEND:VEVENT");
        let out = update(cancel(&overrides, std::slice::from_ref(&c), &now()).unwrap());
        assert_eq!(events(&out).len(), 1);
        assert_eq!(events(&out)[0].value("SEQUENCE"), Some("1"));
        let c2 = comp("BEGIN:VEVENT\nUID:o1\nRECURRENCE-ID:20250107T100000Z\nEND:VEVENT");
        assert_eq!(
            cancel(&overrides, &[c, c2], &now()).unwrap(),
            CancelPlan::DeleteAll
        );
    }

    #[test]
    fn cancel_errors() {
        let stored = cal(WEEKLY_TZID);
        let code = |text: &str| cancel(&stored, &[comp(text)], &now()).unwrap_err().code;
        assert_eq!(code("BEGIN:VEVENT\nUID:other\nEND:VEVENT"), "3.1");
        assert_eq!(code("BEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT"), "3.11");
        assert_eq!(code("BEGIN:VTODO\nUID:w1\nEND:VTODO"), "3.4");
        assert_eq!(
            code("BEGIN:VEVENT\nUID:w1\nRECURRENCE-ID:not-a-date\nEND:VEVENT"),
            "3.5"
        );
        assert_eq!(cancel(&stored, &[], &now()).unwrap_err().code, "3.11");
    }
}
