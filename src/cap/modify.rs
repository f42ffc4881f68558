//! MODIFY (cap-04 §7.2.1.5): old/new values applied to stored components.
//!
//! The payload is "`[VQUERY] OLD-VALUES NEW-VALUES`" (cap-02 §7.2.1.4); cap-04 wraps the OLD/NEW
//! pair in a nested VCOMMAND (`shared/spec/cap-cstp.md` §3.3). [`from_payload`] accepts both
//! shapes. The drafts only show the semantics by example; this module implements the gateway's
//! resolution of spec Q7 (§10):
//!
//! - with a VQUERY the caller selects by the query, then applies NEW over OLD;
//! - without one, a stored component is selected when every OLD property is present in it
//!   ([`Modification::matches`]);
//! - a property in OLD and not in NEW is removed (the -02 example that drops LOCATION);
//! - a property in NEW and not in OLD is added;
//! - a property in both is replaced (the -02 example that turns every `LOCATION:Building 6`
//!   into `LOCATION:New office lobby`).
//!
//! Choices where the drafts are silent (each documented on the function that makes it):
//!
//! - OLD is a precondition in every case: [`Modification::apply`] changes nothing in a
//!   component that OLD does not match, so a VQUERY narrows the selection but never overrides
//!   OLD (a stale OLD, e.g. `PARTSTAT=NEEDS-ACTION` after the attendee already answered, is a
//!   no-op rather than a lost update).
//! - UID and RECURRENCE-ID identify the component; they are never changed. In OLD or NEW they
//!   only select (a NEW UID other than the stored one is an error, 3.1).
//! - DTSTAMP, LAST-MODIFIED and CREATED are maintained by the gateway: in OLD they select, in NEW
//!   they are ignored. SEQUENCE in OLD selects and is never removed; in NEW it is written as given
//!   and then the gateway does not bump it (RFC 5546 §2.1.4).
//! - ATTENDEE/ORGANIZER lines that keep their address are merged parameter by parameter
//!   (see [`Modification::apply`]); every other replaced line is the NEW line as written.
//! - Sub-components (VALARM) of OLD and NEW are not supported ([`from_payload`] answers 3.14).

use crate::ical::component::Component;
use crate::ical::contentline::{ContentLine, Param, unescape_text};
use crate::ical::datetime::{DateOrDateTime, DateTime};
use crate::ical::property::{ValueKind, is_multi_valued, kind_of};
use crate::ical::scheduling::{OBJECT_COMPONENTS, SCHEDULABLE, address_key};

/// The parts of a MODIFY command (cap-04 §7.2.1.5; cap-02 §7.2.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyRequest {
    /// The VQUERY selecting the components to change, if the command has one (spec Q7).
    pub vquery: Option<Component>,
    /// The OLD/NEW pair.
    pub change: Modification,
    /// VTIMEZONE components sent along with the pair (e.g. for a NEW `DTSTART;TZID=…`); the
    /// caller adds those the stored calendar lacks.
    pub timezones: Vec<Component>,
}

/// The OLD values and the NEW values: two components of the same type (two VEVENTs, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modification {
    /// OLD-VALUES: what a stored component must hold to be changed, and the lines to change.
    pub old: Component,
    /// NEW-VALUES: the lines that replace OLD's, or are added.
    pub new: Component,
}

/// A MODIFY that cannot be carried out: an RFC 2446 §3.6 REQUEST-STATUS code and a readable
/// reason.
pub use super::status::Refusal as ModifyError;

/// Splits the components of a MODIFY's VCOMMAND into the optional VQUERY and the OLD/NEW pair
/// (cap-04 §7.2.1.5, cap-02 §7.2.1.4).
///
/// `components` is what the outer VCOMMAND contains. Both shapes are accepted: the -02 flat list
/// `[VQUERY] OLD NEW`, and -04's nested VCOMMAND holding the pair (the VQUERY may be inside or
/// outside it; nested VCOMMANDs are flattened, their properties ignored). VTIMEZONEs next to a
/// pair of other components go to [`ModifyRequest::timezones`].
///
/// Errors (RFC 2446 §3.6 codes): 3.11 fewer than two data components; 3.4 more than two, more
/// than one VQUERY, or OLD and NEW of different types; 3.1 OLD and NEW with different UIDs or
/// RECURRENCE-IDs; 3.14 OLD or NEW with sub-components.
pub fn from_payload(components: &[Component]) -> Result<ModifyRequest, ModifyError> {
    let mut queries = Vec::new();
    let mut data = Vec::new();
    collect(components, &mut queries, &mut data);
    if queries.len() > 1 {
        return Err(ModifyError::new(
            "3.4",
            format!("MODIFY takes at most one VQUERY, found {}", queries.len()),
        ));
    }
    let mut timezones = Vec::new();
    if data.iter().any(|c| !is_named(c, "VTIMEZONE")) {
        let (tz, rest): (Vec<&Component>, Vec<&Component>) =
            data.into_iter().partition(|c| is_named(c, "VTIMEZONE"));
        timezones = tz.into_iter().cloned().collect();
        data = rest;
    }
    let (old, new) = match data.as_slice() {
        [old, new] => (*old, *new),
        [] | [_] => {
            return Err(ModifyError::new(
                "3.11",
                "MODIFY needs an old-values and a new-values component",
            ));
        }
        more => {
            return Err(ModifyError::new(
                "3.4",
                format!(
                    "MODIFY takes one old-values and one new-values component, found {}",
                    more.len()
                ),
            ));
        }
    };
    if !old.name.eq_ignore_ascii_case(&new.name) {
        return Err(ModifyError::new(
            "3.4",
            format!(
                "the old values are a {} but the new values a {}",
                old.name, new.name
            ),
        ));
    }
    if let (Some(a), Some(b)) = (old.uid(), new.uid())
        && a != b
    {
        return Err(ModifyError::new(
            "3.1",
            format!(
                "the old values have UID {a:?} but the new values UID {b:?}; a UID cannot be changed"
            ),
        ));
    }
    if let (Some(a), Some(b)) = (old.property("RECURRENCE-ID"), new.property("RECURRENCE-ID"))
        && !value_eq(a, b)
    {
        return Err(ModifyError::new(
            "3.1",
            format!(
                "the old values have RECURRENCE-ID {} but the new values {}; it cannot be changed",
                a.value, b.value
            ),
        ));
    }
    if let Some(c) = old.components.first().or(new.components.first()) {
        return Err(ModifyError::new(
            "3.14",
            format!(
                "MODIFY of sub-components ({} in {}) is not supported; modify the properties, or replace the object",
                c.name, old.name
            ),
        ));
    }
    Ok(ModifyRequest {
        vquery: queries.first().map(|q| (*q).clone()),
        change: Modification {
            old: old.clone(),
            new: new.clone(),
        },
        timezones,
    })
}

fn collect<'a>(
    components: &'a [Component],
    queries: &mut Vec<&'a Component>,
    data: &mut Vec<&'a Component>,
) {
    for c in components {
        if is_named(c, "VQUERY") {
            queries.push(c);
        } else if is_named(c, "VCOMMAND") {
            collect(&c.components, queries, data);
        } else {
            data.push(c);
        }
    }
}

fn is_named(c: &Component, name: &str) -> bool {
    c.name.eq_ignore_ascii_case(name)
}

// ------------------------------------------------------------ property kinds --

/// Identify the component; never changed by MODIFY, only used to select.
const IDENTITY: [&str; 2] = ["UID", "RECURRENCE-ID"];
/// Maintained by the gateway: ignored in NEW, never removed.
const SERVER_SET: [&str; 3] = ["DTSTAMP", "LAST-MODIFIED", "CREATED"];
/// Properties whose change requires a SEQUENCE increment (RFC 5546 §2.1.4; EXRULE from
/// RFC 2445 §4.8.4.2, which the CAP-era clients may still send).
const SIGNIFICANT: [&str; 9] = [
    "DTSTART", "DTEND", "DURATION", "DUE", "RRULE", "RDATE", "EXDATE", "EXRULE", "STATUS",
];
/// Properties that occur at most once in a component (RFC 5545 §3.6.1–§3.6.6, §3.7; RRULE
/// "SHOULD NOT occur more than once").
const SINGLE: [&str; 31] = [
    "CLASS",
    "CREATED",
    "DESCRIPTION",
    "DTSTART",
    "GEO",
    "LAST-MODIFIED",
    "LOCATION",
    "ORGANIZER",
    "PRIORITY",
    "SEQUENCE",
    "STATUS",
    "SUMMARY",
    "TRANSP",
    "URL",
    "RECURRENCE-ID",
    "DTEND",
    "DURATION",
    "DUE",
    "COMPLETED",
    "PERCENT-COMPLETE",
    "RRULE",
    "DTSTAMP",
    "UID",
    "ACTION",
    "TRIGGER",
    "REPEAT",
    "PRODID",
    "VERSION",
    "CALSCALE",
    "METHOD",
    "TZID",
];
/// Parameters whose values are CAL-ADDRESSes (RFC 5545 §3.2.4, §3.2.5, §3.2.11, §3.2.18).
const ADDRESS_PARAMS: [&str; 4] = ["MEMBER", "DELEGATED-TO", "DELEGATED-FROM", "SENT-BY"];

fn is_in(list: &[&str], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn is_single(component: &str, property: &str) -> bool {
    // VJOURNAL may carry several DESCRIPTIONs (RFC 5545 §3.6.3).
    if property.eq_ignore_ascii_case("DESCRIPTION") && component.eq_ignore_ascii_case("VJOURNAL") {
        return false;
    }
    is_in(&SINGLE, property)
}

fn is_address(line: &ContentLine) -> bool {
    kind_of(&line.name) == ValueKind::CalAddress
        || line
            .param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("CAL-ADDRESS"))
}

// ---------------------------------------------------------------- comparison --

/// Whether two lines of the same property carry the same value, by the property's kind
/// ([`kind_of`], the table of `ical::property` that VQUERY uses too): CAL-ADDRESS by [`address_key`] (without `mailto:`,
/// display name and case); DATE / DATE-TIME as parsed values (TZID honoured); enumerations
/// without case; integers as numbers; anything else as TEXT after unescaping
/// (RFC 5545 §3.3.11).
fn value_eq(a: &ContentLine, b: &ContentLine) -> bool {
    if is_address(a) || is_address(b) {
        return address_key(&a.value) == address_key(&b.value);
    }
    let name = a.name.as_str();
    match kind_of(name) {
        // A list-valued property (EXDATE) is compared as text.
        ValueKind::DateTime if !is_multi_valued(name) => {
            if let (Ok(x), Ok(y)) = (DateOrDateTime::from_line(a), DateOrDateTime::from_line(b)) {
                return x == y;
            }
        }
        ValueKind::Enumerated => return a.value.trim().eq_ignore_ascii_case(b.value.trim()),
        ValueKind::Integer => {
            if let (Ok(x), Ok(y)) = (a.value.trim().parse::<i64>(), b.value.trim().parse::<i64>()) {
                return x == y;
            }
        }
        _ => {}
    }
    a.value == b.value || unescape_text(&a.value) == unescape_text(&b.value)
}

fn param_values(p: &Param) -> Vec<String> {
    let address = is_in(&ADDRESS_PARAMS, &p.name);
    let mut v: Vec<String> = p
        .values
        .iter()
        .map(|s| {
            if address {
                address_key(s)
            } else {
                s.trim().to_lowercase()
            }
        })
        .collect();
    v.sort();
    v
}

/// Every parameter of `a` is on `b` with the same values (case-insensitive, in any order;
/// addresses without `mailto:`).
fn params_within(a: &ContentLine, b: &ContentLine) -> bool {
    a.params.iter().all(|pa| {
        let want = param_values(pa);
        b.params
            .iter()
            .any(|pb| pb.name.eq_ignore_ascii_case(&pa.name) && param_values(pb) == want)
    })
}

/// OLD line `old` selects stored line `stored` (spec Q7): same name, same value, and every
/// parameter written in OLD present with the same value. An OLD line with an empty value
/// (e.g. `LOCATION:`) stands for any value of that property.
fn line_selects(old: &ContentLine, stored: &ContentLine) -> bool {
    old.name.eq_ignore_ascii_case(&stored.name)
        && (old.value.trim().is_empty() || value_eq(old, stored))
        && params_within(old, stored)
}

/// Both lines say the same thing (same name, value and parameters).
fn equivalent(a: &ContentLine, b: &ContentLine) -> bool {
    a.name.eq_ignore_ascii_case(&b.name)
        && value_eq(a, b)
        && params_within(a, b)
        && params_within(b, a)
}

/// Pairs each OLD line with a distinct stored line it selects (a bipartite matching, so that
/// e.g. `ATTENDEE:mailto:a` and `ATTENDEE;PARTSTAT=X:mailto:a` find different lines when
/// possible). `None` when some OLD line has no partner.
fn assign(olds: &[&ContentLine], stored: &[ContentLine]) -> Option<Vec<usize>> {
    let candidates: Vec<Vec<usize>> = olds
        .iter()
        .map(|o| {
            stored
                .iter()
                .enumerate()
                .filter(|(_, s)| line_selects(o, s))
                .map(|(j, _)| j)
                .collect()
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; stored.len()];
    for i in 0..olds.len() {
        // Fast path: a free candidate, first in document order.
        if let Some(&j) = candidates[i].iter().find(|&&j| owner[j].is_none()) {
            owner[j] = Some(i);
            continue;
        }
        if !augment(i, &candidates, &mut owner) {
            return None;
        }
    }
    let mut result = vec![0; olds.len()];
    for (j, o) in owner.iter().enumerate() {
        if let Some(i) = o {
            result[*i] = j;
        }
    }
    Some(result)
}

/// Kuhn's augmenting path from OLD line `start`, iteratively (no recursion on untrusted sizes).
fn augment(start: usize, candidates: &[Vec<usize>], owner: &mut [Option<usize>]) -> bool {
    let mut seen = vec![false; owner.len()];
    let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
    let mut path: Vec<usize> = Vec::new();
    while let Some(top) = stack.last_mut() {
        let (i, pos) = *top;
        let Some(&j) = candidates[i].get(pos) else {
            stack.pop();
            path.pop();
            continue;
        };
        top.1 += 1;
        if seen[j] {
            continue;
        }
        seen[j] = true;
        path.push(j);
        match owner[j] {
            None => {
                for (level, &(ii, _)) in stack.iter().enumerate() {
                    owner[path[level]] = Some(ii);
                }
                return true;
            }
            Some(k) => stack.push((k, 0)),
        }
    }
    false
}

// -------------------------------------------------------------------- merging --

/// Sets parameter `p` on `line`, replacing every parameter of that name.
fn put_param(line: &mut ContentLine, p: &Param) {
    match line
        .params
        .iter()
        .position(|q| q.name.eq_ignore_ascii_case(&p.name))
    {
        Some(at) => {
            line.remove_param(&p.name);
            line.params.insert(at.min(line.params.len()), p.clone());
        }
        None => line.params.push(p.clone()),
    }
}

/// A NEW ATTENDEE/ORGANIZER line for the calendar user of `stored`: the stored line with the
/// parameters NEW names set to NEW's values, the parameters only OLD names removed, the others
/// (CN, ROLE, RSVP, …) kept, and SCHEDULE-STATUS dropped (it reports the previous delivery,
/// RFC 6638 §3.2.9). The stored value text is kept.
fn merge_address(
    stored: &ContentLine,
    old: Option<&ContentLine>,
    new: &ContentLine,
) -> ContentLine {
    let mut out = stored.clone();
    if let Some(old) = old {
        for p in &old.params {
            if !new.has_param(&p.name) {
                out.remove_param(&p.name);
            }
        }
    }
    for p in &new.params {
        put_param(&mut out, p);
    }
    out.remove_param("SCHEDULE-STATUS");
    out
}

/// The line that replaces `stored` when OLD line `old` is paired with NEW line `new`.
fn replacement(stored: &ContentLine, old: Option<&ContentLine>, new: &ContentLine) -> ContentLine {
    if is_address(new) {
        if address_key(&stored.value) == address_key(&new.value) {
            return merge_address(stored, old, new);
        }
        let mut out = new.clone();
        out.remove_param("SCHEDULE-STATUS");
        return out;
    }
    new.clone()
}

/// Adds NEW line `new` (its name is not in OLD, or NEW has more lines of it than OLD); returns
/// whether `out` changed.
fn add_line(component: &str, out: &mut Vec<ContentLine>, new: &ContentLine) -> bool {
    let at = if is_single(component, &new.name) {
        out.iter()
            .position(|l| l.name.eq_ignore_ascii_case(&new.name))
    } else if out.iter().any(|l| equivalent(l, new)) {
        return false;
    } else if new.name.eq_ignore_ascii_case("ATTENDEE") {
        let addr = address_key(&new.value);
        out.iter()
            .position(|l| l.name.eq_ignore_ascii_case("ATTENDEE") && address_key(&l.value) == addr)
    } else {
        None
    };
    match at {
        Some(at) => {
            let r = replacement(&out[at], None, new);
            if equivalent(&r, &out[at]) {
                return false;
            }
            out[at] = r;
        }
        None => out.push(replacement(new, None, new)),
    }
    true
}

impl Modification {
    /// The component type it changes (OLD's name).
    pub fn component(&self) -> &str {
        &self.old.name
    }

    /// The UID to narrow the search by, when OLD or NEW carries one.
    pub fn uid(&self) -> Option<&str> {
        self.old.uid().or(self.new.uid())
    }

    /// OLD's lines that select and change (everything but UID and RECURRENCE-ID).
    fn old_lines(&self) -> Vec<&ContentLine> {
        self.old
            .properties
            .iter()
            .filter(|l| !is_in(&IDENTITY, &l.name))
            .collect()
    }

    /// UID and RECURRENCE-ID of OLD (and RECURRENCE-ID of NEW) equal the stored ones.
    fn identity_holds(&self, stored: &Component) -> bool {
        if let Some(u) = self.old.uid()
            && stored.uid() != Some(u)
        {
            return false;
        }
        [&self.old, &self.new].iter().all(|c| {
            c.properties("RECURRENCE-ID").all(|r| {
                stored
                    .property("RECURRENCE-ID")
                    .is_some_and(|s| value_eq(r, s))
            })
        })
    }

    /// Whether OLD selects `stored` (spec Q7, the rule without a VQUERY; [`Modification::apply`]
    /// uses it as a precondition in every case).
    ///
    /// A stored component matches when it is of OLD's type and every OLD property is present in
    /// it: same name, same value (TEXT compared after unescaping, RFC 5545 §3.3.11; CAL-ADDRESS
    /// values ignoring a `mailto:` prefix and case; DATE/DATE-TIME values as parsed values with
    /// their TZID; enumerated values such as STATUS without case; integers as numbers), and
    /// every parameter written in OLD present with the same value (case-insensitive). Each OLD
    /// line needs its own stored line. Properties stored but absent from OLD don't matter. An
    /// OLD line with an empty value matches any value of that property (so `LOCATION:` in OLD
    /// and none in NEW drops whatever LOCATION there is). A RECURRENCE-ID in NEW must match the
    /// stored one as well: it names the instance to change; so must a UID in NEW (it selects,
    /// like OLD's: otherwise a component whose UID merely contains NEW's, which the upstream's
    /// substring UID search also returns, would be selected and then refused with 3.1).
    pub fn matches(&self, stored: &Component) -> bool {
        stored.name.eq_ignore_ascii_case(&self.old.name)
            && self.identity_holds(stored)
            && self.new.uid().is_none_or(|u| stored.uid() == Some(u))
            && assign(&self.old_lines(), &stored.properties).is_some()
    }

    /// Applies NEW over OLD to one stored component (spec Q7; cap-04 §7.2.1.5).
    ///
    /// `Ok(None)` when nothing changes, including when OLD does not match `stored`
    /// ([`Modification::matches`]). Otherwise:
    ///
    /// - each OLD line's stored partner is replaced by the NEW line of the same name (paired in
    ///   order among same-name lines), or removed when NEW has no such line; a pair whose OLD
    ///   and NEW lines are equivalent leaves the stored line as it is;
    /// - a replacement is the NEW line as written, except that an ATTENDEE or ORGANIZER keeping
    ///   its calendar user gets NEW's parameters over the stored line's: parameters NEW names
    ///   take NEW's values, parameters only OLD names are removed, the others (CN, ROLE, RSVP,
    ///   …) are kept, SCHEDULE-STATUS is dropped, and the stored value text is kept;
    /// - NEW lines whose name is not in OLD are added: a single-instance property (SUMMARY,
    ///   DTSTART, DTEND, DURATION, LOCATION, STATUS, DESCRIPTION, CLASS, TRANSP, PRIORITY, …)
    ///   replaces the stored one; a multi-instance one (ATTENDEE, CATEGORIES, COMMENT, ATTACH,
    ///   …) is appended unless an equivalent line exists, and an ATTENDEE for a calendar user
    ///   already listed updates that attendee's line as above;
    /// - DTEND/DUE and DURATION exclude each other (RFC 5545 §3.6.1, §3.6.2): applying one from
    ///   NEW removes the other unless NEW has both;
    /// - UID and RECURRENCE-ID are never changed: a NEW UID other than the stored one is
    ///   `Err` 3.1. DTSTAMP, LAST-MODIFIED and CREATED in NEW are ignored; SEQUENCE in OLD is
    ///   never removed.
    ///
    /// When something changed: DTSTAMP (VEVENT, VTODO, VJOURNAL, VFREEBUSY) and LAST-MODIFIED
    /// (VEVENT, VTODO, VJOURNAL) are set to `now` (UTC); SEQUENCE is incremented by one when
    /// NEW does not set SEQUENCE itself and a property RFC 5546 §2.1.4 lists changed (DTSTART,
    /// DTEND, DURATION, DUE, RRULE, RDATE, EXDATE, STATUS; also RFC 2445's EXRULE). LOCATION,
    /// SUMMARY, ATTENDEE, … do not bump it (RFC 5546 leaves those to the organizer; RFC 6638
    /// servers schedule the update anyway).
    pub fn apply(
        &self,
        stored: &Component,
        now: &DateTime,
    ) -> Result<Option<Component>, ModifyError> {
        if !stored.name.eq_ignore_ascii_case(&self.old.name) || !self.identity_holds(stored) {
            return Ok(None);
        }
        let olds = self.old_lines();
        let Some(partner) = assign(&olds, &stored.properties) else {
            return Ok(None);
        };
        if let Some(u) = self.new.uid()
            && stored.uid() != Some(u)
        {
            return Err(ModifyError::new(
                "3.1",
                format!(
                    "the UID cannot be changed (stored {:?}, new values {u:?})",
                    stored.uid().unwrap_or("")
                ),
            ));
        }
        let component = stored.name.as_str();
        let news: Vec<&ContentLine> = self
            .new
            .properties
            .iter()
            .filter(|l| !is_in(&IDENTITY, &l.name) && !is_in(&SERVER_SET, &l.name))
            .collect();
        let mut applied: Vec<&str> = Vec::new();

        // Pairs: OLD lines of one name against NEW lines of the same name, in order.
        let mut out: Vec<Option<ContentLine>> =
            stored.properties.iter().cloned().map(Some).collect();
        let mut extra: Vec<&ContentLine> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for l in &olds {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&l.name)) {
                names.push(&l.name);
            }
        }
        for name in &names {
            let old_idx: Vec<usize> = (0..olds.len())
                .filter(|&i| olds[i].name.eq_ignore_ascii_case(name))
                .collect();
            let new_of: Vec<&ContentLine> = news
                .iter()
                .copied()
                .filter(|l| l.name.eq_ignore_ascii_case(name))
                .collect();
            for (k, &i) in old_idx.iter().enumerate() {
                let j = partner[i];
                let Some(current) = out[j].clone() else {
                    continue;
                };
                match new_of.get(k) {
                    Some(n) if equivalent(olds[i], n) => {}
                    Some(n) => {
                        let r = replacement(&current, Some(olds[i]), n);
                        if !equivalent(&r, &current) {
                            out[j] = Some(r);
                            applied.push(&n.name);
                        }
                    }
                    None if is_in(&SERVER_SET, name) || name.eq_ignore_ascii_case("SEQUENCE") => {}
                    None => out[j] = None,
                }
            }
            extra.extend(new_of.iter().skip(old_idx.len()).copied());
        }
        let mut out: Vec<ContentLine> = out.into_iter().flatten().collect();
        extra.extend(
            news.iter()
                .copied()
                .filter(|l| !names.iter().any(|n| n.eq_ignore_ascii_case(&l.name))),
        );
        for n in extra {
            if add_line(component, &mut out, n) {
                applied.push(&n.name);
            }
        }

        // DTEND / DUE and DURATION are exclusive.
        let in_new = |n: &str| news.iter().any(|l| l.name.eq_ignore_ascii_case(n));
        let was_applied = |n: &str| applied.iter().any(|a| a.eq_ignore_ascii_case(n));
        if was_applied("DURATION") && !in_new("DTEND") && !in_new("DUE") {
            out.retain(|l| !is_in(&["DTEND", "DUE"], &l.name));
        }
        if (was_applied("DTEND") || was_applied("DUE")) && !in_new("DURATION") {
            out.retain(|l| !l.name.eq_ignore_ascii_case("DURATION"));
        }

        if out == stored.properties {
            return Ok(None);
        }
        let significant = SIGNIFICANT.iter().any(|name| {
            let a: Vec<&ContentLine> = stored.properties(name).collect();
            let b: Vec<&ContentLine> = out
                .iter()
                .filter(|l| l.name.eq_ignore_ascii_case(name))
                .collect();
            a != b
        });
        let mut result = Component {
            name: stored.name.clone(),
            properties: out,
            components: stored.components.clone(),
        };
        // LAST-MODIFIED and SEQUENCE on the components with versions (RFC 5545 §3.8.7.3,
        // §3.8.7.4), DTSTAMP on every scheduling component (§3.8.7.2).
        if is_in(&OBJECT_COMPONENTS, component) {
            if significant && !in_new("SEQUENCE") {
                let next = result.sequence().saturating_add(1);
                result.set_property(ContentLine::new("SEQUENCE", &next.to_string()));
            }
            result.set_property(now.to_content_line("LAST-MODIFIED"));
        }
        if is_in(&SCHEDULABLE, component) {
            result.set_property(now.to_content_line("DTSTAMP"));
        }
        Ok(Some(result))
    }

    /// Applies the change to every component named [`Modification::component`] in a stored
    /// VCALENDAR (a recurring event's master and its overrides, RFC 5545 §3.8.4.4) for which
    /// `select` is true (the VQUERY's predicate, or `|_| true` without one: OLD still has to
    /// match, see [`Modification::apply`]). VTIMEZONEs and other components are untouched. When
    /// the change is to the VCALENDAR itself (OLD is a VCALENDAR), it applies to `calendar`.
    /// `Ok(None)` when no component changed.
    pub fn apply_to_calendar(
        &self,
        calendar: &Component,
        select: &dyn Fn(&Component) -> bool,
        now: &DateTime,
    ) -> Result<Option<Component>, ModifyError> {
        if is_named(calendar, self.component()) {
            return if select(calendar) {
                self.apply(calendar, now)
            } else {
                Ok(None)
            };
        }
        let mut out = calendar.clone();
        let mut changed = false;
        for c in out.components.iter_mut() {
            if !is_named(c, self.component()) || !select(c) {
                continue;
            }
            if let Some(n) = self.apply(c, now)? {
                *c = n;
                changed = true;
            }
        }
        Ok(changed.then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::testing::{comp, comps, lines, now};

    fn modification(old: &str, new: &str) -> Modification {
        Modification {
            old: comp(old),
            new: comp(new),
        }
    }

    const STORED: &str = "BEGIN:VEVENT
        UID:abcd12345
        DTSTAMP:20010301T120000Z
        SEQUENCE:2
        DTSTART:20010307T180000Z
        DTEND:20010307T190000Z
        SUMMARY:Important Meeting\\, please come
        LOCATION:Building 6
        ORGANIZER;CN=Alice:mailto:alice@example.com
        ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;RSVP=TRUE;PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2:mailto:bob@example.com
        ATTENDEE;CN=Carol;PARTSTAT=ACCEPTED:mailto:carol@example.com
        CATEGORIES:WORK
        END:VEVENT";

    fn stored() -> Component {
        comp(STORED)
    }

    // ----------------------------------------------------------- from_payload --

    #[test]
    fn flat_02_shape_with_vquery() {
        let cs = comps(
            "BEGIN:VQUERY
             QUERY:SELECT * FROM VEVENT WHERE UID = 'abcd12345'
             END:VQUERY
             BEGIN:VEVENT
             LOCATION:Building 6
             END:VEVENT
             BEGIN:VEVENT
             END:VEVENT",
        );
        let r = from_payload(&cs).unwrap();
        assert_eq!(r.vquery.as_ref().unwrap().name, "VQUERY");
        assert_eq!(r.change.component(), "VEVENT");
        assert_eq!(r.change.old.value("LOCATION"), Some("Building 6"));
        assert!(r.change.new.properties.is_empty());
        assert!(r.timezones.is_empty());
    }

    #[test]
    fn nested_04_shape() {
        // VQUERY outside the nested VCOMMAND.
        let cs = comps(
            "BEGIN:VQUERY
             QUERY:SELECT * FROM VEVENT WHERE UID = 'abcd12345'
             END:VQUERY
             BEGIN:VCOMMAND
             BEGIN:VEVENT
             UID:abcd12345
             LOCATION:Building 6
             END:VEVENT
             BEGIN:VEVENT
             LOCATION:New office lobby
             END:VEVENT
             END:VCOMMAND",
        );
        let r = from_payload(&cs).unwrap();
        assert!(r.vquery.is_some());
        assert_eq!(r.change.uid(), Some("abcd12345"));
        assert_eq!(r.change.new.value("LOCATION"), Some("New office lobby"));
        // VQUERY inside it, and no VQUERY at all.
        let cs = comps(
            "BEGIN:VCOMMAND
             METHOD:MODIFY
             BEGIN:VQUERY
             QUERY:SELECT * FROM VEVENT
             END:VQUERY
             BEGIN:VEVENT
             SUMMARY:a
             END:VEVENT
             BEGIN:VEVENT
             SUMMARY:b
             END:VEVENT
             END:VCOMMAND",
        );
        let r = from_payload(&cs).unwrap();
        assert!(r.vquery.is_some());
        assert_eq!(r.change.uid(), None);
        let cs = comps(
            "BEGIN:VCOMMAND
             BEGIN:VTODO
             UID:t1
             STATUS:NEEDS-ACTION
             END:VTODO
             BEGIN:VTODO
             STATUS:COMPLETED
             END:VTODO
             END:VCOMMAND",
        );
        let r = from_payload(&cs).unwrap();
        assert!(r.vquery.is_none());
        assert_eq!(r.change.component(), "VTODO");
    }

    #[test]
    fn timezones_are_set_aside() {
        let cs = comps(
            "BEGIN:VTIMEZONE
             TZID:Europe/Berlin
             END:VTIMEZONE
             BEGIN:VEVENT
             DTSTART:20010307T180000Z
             END:VEVENT
             BEGIN:VEVENT
             DTSTART;TZID=Europe/Berlin:20010307T190000
             END:VEVENT",
        );
        let r = from_payload(&cs).unwrap();
        assert_eq!(r.timezones.len(), 1);
        assert_eq!(r.change.component(), "VEVENT");
        // Two VTIMEZONEs alone are a pair.
        let cs = comps(
            "BEGIN:VTIMEZONE
             TZID:A
             END:VTIMEZONE
             BEGIN:VTIMEZONE
             TZID:B
             END:VTIMEZONE",
        );
        assert_eq!(from_payload(&cs).unwrap().change.component(), "VTIMEZONE");
    }

    #[test]
    fn payload_errors() {
        let code = |text: &str| from_payload(&comps(text)).unwrap_err().code;
        assert_eq!(from_payload(&[]).unwrap_err().code, "3.11");
        assert_eq!(
            code(
                "BEGIN:VEVENT
                  SUMMARY:a
                  END:VEVENT"
            ),
            "3.11"
        );
        let e = from_payload(&comps(
            "BEGIN:VQUERY
             QUERY:SELECT * FROM VEVENT
             END:VQUERY
             BEGIN:VEVENT
             END:VEVENT",
        ))
        .unwrap_err();
        assert_eq!(e.code, "3.11");
        assert_eq!(
            e.to_string(),
            "3.11 MODIFY needs an old-values and a new-values component"
        );
        assert_eq!(
            code(
                "BEGIN:VEVENT
                  END:VEVENT
                  BEGIN:VEVENT
                  END:VEVENT
                  BEGIN:VEVENT
                  END:VEVENT"
            ),
            "3.4"
        );
        assert_eq!(
            code(
                "BEGIN:VEVENT
                  SUMMARY:a
                  END:VEVENT
                  BEGIN:VTODO
                  SUMMARY:a
                  END:VTODO"
            ),
            "3.4"
        );
        assert_eq!(
            code(
                "BEGIN:VQUERY
                  END:VQUERY
                  BEGIN:VQUERY
                  END:VQUERY
                  BEGIN:VEVENT
                  END:VEVENT
                  BEGIN:VEVENT
                  END:VEVENT"
            ),
            "3.4"
        );
        assert_eq!(
            code(
                "BEGIN:VEVENT
                  UID:a
                  END:VEVENT
                  BEGIN:VEVENT
                  UID:b
                  END:VEVENT"
            ),
            "3.1"
        );
        assert_eq!(
            code(
                "BEGIN:VEVENT
                  RECURRENCE-ID:20010307T180000Z
                  END:VEVENT
                  BEGIN:VEVENT
                  RECURRENCE-ID:20010308T180000Z
                  END:VEVENT"
            ),
            "3.1"
        );
        assert_eq!(
            code(
                "BEGIN:VEVENT
                  UID:a
                  END:VEVENT
                  BEGIN:VEVENT
                  BEGIN:VALARM
                  ACTION:DISPLAY
                  END:VALARM
                  END:VEVENT"
            ),
            "3.14"
        );
        let e = ModifyError::new("3.1", "a; b");
        // As it goes on the wire (status::Status::to_line: ';' in a reason becomes ',').
        assert_eq!(
            crate::cap::status::Status::from(e).to_line().value,
            "3.1;a\\, b"
        );
    }

    // --------------------------------------------------------------- matching --

    #[test]
    fn q7_every_old_property_must_be_present() {
        let s = stored();
        let m = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s);
        assert!(m("BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT"));
        assert!(m(
            "BEGIN:VEVENT\nLOCATION:Building 6\nCATEGORIES:WORK\nEND:VEVENT"
        ));
        assert!(!m(
            "BEGIN:VEVENT\nLOCATION:Building 6\nCATEGORIES:HOME\nEND:VEVENT"
        ));
        assert!(!m("BEGIN:VEVENT\nLOCATION:Building 7\nEND:VEVENT"));
        assert!(!m("BEGIN:VEVENT\nCOMMENT:x\nEND:VEVENT"));
        // Properties stored but absent from OLD don't matter; an empty OLD matches any VEVENT.
        assert!(m("BEGIN:VEVENT\nEND:VEVENT"));
        // Another component type never matches.
        assert!(!modification("BEGIN:VTODO\nEND:VTODO", "BEGIN:VTODO\nEND:VTODO").matches(&s));
    }

    #[test]
    fn q7_text_compared_after_unescaping() {
        let s = stored();
        let m = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s);
        assert!(m(
            "BEGIN:VEVENT\nSUMMARY:Important Meeting\\, please come\nEND:VEVENT"
        ));
        // `\,` and `,` are the same text once unescaped.
        assert!(m(
            "BEGIN:VEVENT\nSUMMARY:Important Meeting, please come\nEND:VEVENT"
        ));
        // Text is case-sensitive.
        assert!(!m(
            "BEGIN:VEVENT\nSUMMARY:important meeting, please come\nEND:VEVENT"
        ));
        // Enumerations are not.
        let s2 = comp("BEGIN:VEVENT\nSTATUS:CONFIRMED\nPRIORITY:01\nEND:VEVENT");
        let m2 = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s2);
        assert!(m2("BEGIN:VEVENT\nSTATUS:confirmed\nEND:VEVENT"));
        assert!(m2("BEGIN:VEVENT\nPRIORITY:1\nEND:VEVENT"));
    }

    #[test]
    fn q7_cal_address_ignores_mailto_and_case() {
        let s = stored();
        let m = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s);
        assert!(m(
            "BEGIN:VEVENT\nATTENDEE:mailto:bob@example.com\nEND:VEVENT"
        ));
        assert!(m(
            "BEGIN:VEVENT\nATTENDEE:MAILTO:Bob@Example.COM\nEND:VEVENT"
        ));
        assert!(m("BEGIN:VEVENT\nATTENDEE:bob@example.com\nEND:VEVENT"));
        assert!(m("BEGIN:VEVENT\nORGANIZER:alice@EXAMPLE.com\nEND:VEVENT"));
        assert!(!m(
            "BEGIN:VEVENT\nATTENDEE:mailto:dave@example.com\nEND:VEVENT"
        ));
    }

    #[test]
    fn q7_parameters_written_in_old_must_match() {
        let s = stored();
        let m = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s);
        assert!(m(
            "BEGIN:VEVENT\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\nEND:VEVENT"
        ));
        assert!(m(
            "BEGIN:VEVENT\nATTENDEE;partstat=needs-action;CN=bob:mailto:bob@example.com\nEND:VEVENT"
        ));
        assert!(!m(
            "BEGIN:VEVENT\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\nEND:VEVENT"
        ));
        assert!(!m(
            "BEGIN:VEVENT\nATTENDEE;LANGUAGE=en:mailto:bob@example.com\nEND:VEVENT"
        ));
        assert!(!m(
            "BEGIN:VEVENT\nLOCATION;LANGUAGE=en:Building 6\nEND:VEVENT"
        ));
    }

    #[test]
    fn q7_dates_compare_as_values() {
        let s = comp(
            "BEGIN:VEVENT
             DTSTART;TZID=Europe/Berlin:20250101T100000
             DTEND:20250101T100000Z
             END:VEVENT",
        );
        let m = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s);
        assert!(m(
            "BEGIN:VEVENT\nDTSTART;TZID=Europe/Berlin:20250101T100000\nEND:VEVENT"
        ));
        assert!(!m("BEGIN:VEVENT\nDTSTART:20250101T100000\nEND:VEVENT"));
        assert!(!m(
            "BEGIN:VEVENT\nDTSTART;TZID=America/New_York:20250101T100000\nEND:VEVENT"
        ));
        // Legacy offset form converted to UTC (cap-cstp.md §7.3 #12).
        assert!(m("BEGIN:VEVENT\nDTEND:20250101T0500-0500\nEND:VEVENT"));
        assert!(!m("BEGIN:VEVENT\nDTEND:20250101T100000\nEND:VEVENT"));
    }

    #[test]
    fn q7_kinds_from_the_vquery_table() {
        // CALSCALE is an enumeration (RFC 5545 §3.7.1): without case.
        let cal = comp("BEGIN:VCALENDAR\nCALSCALE:GREGORIAN\nEND:VCALENDAR");
        let m = |old: &str| modification(old, "BEGIN:VCALENDAR\nEND:VCALENDAR").matches(&cal);
        assert!(m("BEGIN:VCALENDAR\nCALSCALE:gregorian\nEND:VCALENDAR"));
        // EXDATE holds a list: compared as text, not as one date-time.
        let s = comp("BEGIN:VEVENT\nEXDATE:20010314T180000Z\nEND:VEVENT");
        let m = |old: &str| modification(old, "BEGIN:VEVENT\nEND:VEVENT").matches(&s);
        assert!(m("BEGIN:VEVENT\nEXDATE:20010314T180000Z\nEND:VEVENT"));
        assert!(!m("BEGIN:VEVENT\nEXDATE:20010314T130000-0500\nEND:VEVENT"));
    }

    #[test]
    fn q7_each_old_line_needs_its_own_stored_line() {
        let s = comp(
            "BEGIN:VEVENT
             ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@x
             ATTENDEE:mailto:a@x
             END:VEVENT",
        );
        // The first OLD line could take either; the second only the first stored line.
        let m = modification(
            "BEGIN:VEVENT
             ATTENDEE:mailto:a@x
             ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@x
             END:VEVENT",
            "BEGIN:VEVENT\nEND:VEVENT",
        );
        assert!(m.matches(&s));
        let m = modification(
            "BEGIN:VEVENT
             ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@x
             ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@x
             END:VEVENT",
            "BEGIN:VEVENT\nEND:VEVENT",
        );
        assert!(!m.matches(&s));
    }

    #[test]
    fn identity_selects() {
        let s = stored();
        let m = |old: &str, new: &str| modification(old, new).matches(&s);
        assert!(m(
            "BEGIN:VEVENT\nUID:abcd12345\nEND:VEVENT",
            "BEGIN:VEVENT\nEND:VEVENT"
        ));
        assert!(!m(
            "BEGIN:VEVENT\nUID:other\nEND:VEVENT",
            "BEGIN:VEVENT\nEND:VEVENT"
        ));
        let over = comp(
            "BEGIN:VEVENT
             UID:abcd12345
             RECURRENCE-ID:20010314T180000Z
             DTSTART:20010314T190000Z
             END:VEVENT",
        );
        let rid = "BEGIN:VEVENT\nRECURRENCE-ID:20010314T180000Z\nEND:VEVENT";
        let empty = "BEGIN:VEVENT\nEND:VEVENT";
        assert!(modification(rid, empty).matches(&over));
        assert!(modification(empty, rid).matches(&over));
        assert!(!modification(rid, empty).matches(&s));
        assert!(!modification(empty, rid).matches(&s));
        assert!(modification(empty, empty).matches(&over));
    }

    // --------------------------------------------------------------- applying --

    #[test]
    fn example_02_drops_location() {
        let m = modification(
            "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT",
            "BEGIN:VEVENT\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(out.value("LOCATION"), None);
        assert_eq!(out.value("SUMMARY"), stored().value("SUMMARY"));
        // LOCATION is not significant (RFC 5546 §2.1.4).
        assert_eq!(out.sequence(), 2);
        assert_eq!(out.value("DTSTAMP"), Some("20250601T120000Z"));
        assert_eq!(out.value("LAST-MODIFIED"), Some("20250601T120000Z"));
        // Applying again: OLD no longer matches.
        assert_eq!(m.apply(&out, &now()).unwrap(), None);
        // `LOCATION:` (empty) in OLD drops any LOCATION.
        let any = modification(
            "BEGIN:VEVENT\nLOCATION:\nEND:VEVENT",
            "BEGIN:VEVENT\nEND:VEVENT",
        );
        assert_eq!(
            any.apply(&stored(), &now())
                .unwrap()
                .unwrap()
                .value("LOCATION"),
            None
        );
    }

    #[test]
    fn example_02_replaces_location_everywhere() {
        let m = modification(
            "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT",
            "BEGIN:VEVENT\nLOCATION:New office lobby\nEND:VEVENT",
        );
        let cal = comp(&format!(
            "BEGIN:VCALENDAR
             VERSION:2.0
             BEGIN:VTIMEZONE
             TZID:X
             LOCATION:Building 6
             END:VTIMEZONE
             {STORED}
             BEGIN:VEVENT
             UID:abcd12345
             RECURRENCE-ID:20010314T180000Z
             DTSTART:20010314T180000Z
             LOCATION:Building 6
             END:VEVENT
             BEGIN:VEVENT
             UID:abcd12345
             RECURRENCE-ID:20010321T180000Z
             DTSTART:20010321T180000Z
             LOCATION:Room 5
             END:VEVENT
             END:VCALENDAR"
        ));
        let out = m
            .apply_to_calendar(&cal, &|_| true, &now())
            .unwrap()
            .unwrap();
        let locs: Vec<Option<&str>> = out.components.iter().map(|c| c.value("LOCATION")).collect();
        assert_eq!(
            locs,
            [
                Some("Building 6"),
                Some("New office lobby"),
                Some("New office lobby"),
                Some("Room 5")
            ]
        );
        // The untouched override keeps its DTSTAMP (none).
        assert_eq!(out.components[3], cal.components[3]);
        // select narrows further (a VQUERY's predicate).
        let only_master = |c: &Component| c.property("RECURRENCE-ID").is_none();
        let out = m
            .apply_to_calendar(&cal, &only_master, &now())
            .unwrap()
            .unwrap();
        assert_eq!(out.components[2].value("LOCATION"), Some("Building 6"));
        assert_eq!(
            out.components[1].value("LOCATION"),
            Some("New office lobby")
        );
        // Nothing to change.
        let none = |_: &Component| false;
        assert_eq!(m.apply_to_calendar(&cal, &none, &now()).unwrap(), None);
    }

    #[test]
    fn partstat_change_merges_parameters() {
        let m = modification(
            "BEGIN:VEVENT\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\nEND:VEVENT",
            "BEGIN:VEVENT\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(
            lines(&out, "ATTENDEE"),
            [
                "ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;RSVP=TRUE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
                "ATTENDEE;CN=Carol;PARTSTAT=ACCEPTED:mailto:carol@example.com",
            ]
        );
        // Not significant: no SEQUENCE bump.
        assert_eq!(out.sequence(), 2);
        // The same change again is stale: no-op.
        assert_eq!(m.apply(&out, &now()).unwrap(), None);
    }

    #[test]
    fn attendee_parameters_named_only_in_old_are_removed() {
        let m = modification(
            "BEGIN:VEVENT\nATTENDEE;RSVP=TRUE:mailto:bob@example.com\nEND:VEVENT",
            "BEGIN:VEVENT\nATTENDEE;ROLE=OPT-PARTICIPANT:MAILTO:BOB@example.com\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(
            lines(&out, "ATTENDEE")[0],
            "ATTENDEE;CN=Bob;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com"
        );
        // A different calendar user: NEW's line as written (SCHEDULE-STATUS never taken).
        let m = modification(
            "BEGIN:VEVENT\nATTENDEE:mailto:bob@example.com\nEND:VEVENT",
            "BEGIN:VEVENT\nATTENDEE;CN=Dave;SCHEDULE-STATUS=2.0:mailto:dave@example.com\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(
            lines(&out, "ATTENDEE")[0],
            "ATTENDEE;CN=Dave:mailto:dave@example.com"
        );
    }

    #[test]
    fn new_only_properties_are_added() {
        // Single-instance: replaces; multi-instance: appended unless identical.
        let m = modification(
            "BEGIN:VEVENT\nEND:VEVENT",
            "BEGIN:VEVENT
             SUMMARY:Renamed
             CATEGORIES:WORK
             CATEGORIES:URGENT
             COMMENT:bring slides
             ATTENDEE;CN=Dave:mailto:dave@example.com
             END:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(lines(&out, "SUMMARY"), ["SUMMARY:Renamed"]);
        assert_eq!(
            lines(&out, "CATEGORIES"),
            ["CATEGORIES:WORK", "CATEGORIES:URGENT"]
        );
        assert_eq!(lines(&out, "COMMENT"), ["COMMENT:bring slides"]);
        assert_eq!(lines(&out, "ATTENDEE").len(), 3);
        // SUMMARY stays where it was.
        let pos = |c: &Component, n: &str| c.properties.iter().position(|l| l.name == n);
        assert_eq!(pos(&out, "SUMMARY"), pos(&stored(), "SUMMARY"));
        // An ATTENDEE already listed is updated, not duplicated.
        let m = modification(
            "BEGIN:VEVENT\nEND:VEVENT",
            "BEGIN:VEVENT\nATTENDEE;PARTSTAT=DECLINED:mailto:carol@example.com\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(
            lines(&out, "ATTENDEE")[1],
            "ATTENDEE;CN=Carol;PARTSTAT=DECLINED:mailto:carol@example.com"
        );
    }

    #[test]
    fn same_name_lines_pair_in_order() {
        let s = comp(
            "BEGIN:VEVENT
             UID:1
             COMMENT:a
             COMMENT:b
             COMMENT:c
             END:VEVENT",
        );
        let m = modification(
            "BEGIN:VEVENT\nCOMMENT:c\nCOMMENT:a\nEND:VEVENT",
            "BEGIN:VEVENT\nCOMMENT:C\nEND:VEVENT",
        );
        let out = m.apply(&s, &now()).unwrap().unwrap();
        // c → C, a removed (NEW has one line only).
        assert_eq!(lines(&out, "COMMENT"), ["COMMENT:b", "COMMENT:C"]);
        // More NEW lines than OLD: the rest are added.
        let m = modification(
            "BEGIN:VEVENT\nCOMMENT:a\nEND:VEVENT",
            "BEGIN:VEVENT\nCOMMENT:A\nCOMMENT:b\nCOMMENT:d\nEND:VEVENT",
        );
        let out = m.apply(&s, &now()).unwrap().unwrap();
        assert_eq!(
            lines(&out, "COMMENT"),
            ["COMMENT:A", "COMMENT:b", "COMMENT:c", "COMMENT:d"]
        );
    }

    #[test]
    fn a_new_uid_selects() {
        // OLD without UID, NEW naming the object: only that UID matches (the upstream's UID
        // search is a substring match, so `abcd12345-late` can be among the candidates).
        let m = modification(
            "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT",
            "BEGIN:VEVENT\nUID:abcd12345\nLOCATION:x\nEND:VEVENT",
        );
        assert!(m.matches(&stored()));
        let other = comp(&STORED.replace("UID:abcd12345", "UID:abcd12345-late"));
        assert!(!m.matches(&other));
        let cal = comp(&format!(
            "BEGIN:VCALENDAR\n{}\nEND:VCALENDAR",
            STORED.replace("UID:abcd12345", "UID:abcd12345-late")
        ));
        assert_eq!(
            m.apply_to_calendar(&cal, &|c| m.matches(c), &now()),
            Ok(None)
        );
    }

    #[test]
    fn uid_is_protected() {
        let m = modification(
            "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT",
            "BEGIN:VEVENT\nUID:other\nLOCATION:x\nEND:VEVENT",
        );
        let e = m.apply(&stored(), &now()).unwrap_err();
        assert_eq!(e.code, "3.1");
        // The same UID is fine, and OLD's UID is never removed.
        let m = modification(
            "BEGIN:VEVENT\nUID:abcd12345\nLOCATION:Building 6\nEND:VEVENT",
            "BEGIN:VEVENT\nLOCATION:x\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(out.uid(), Some("abcd12345"));
        let m = modification(
            "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT",
            "BEGIN:VEVENT\nUID:abcd12345\nLOCATION:x\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(lines(&out, "UID"), ["UID:abcd12345"]);
        // Through apply_to_calendar the error surfaces.
        let cal = comp(&format!("BEGIN:VCALENDAR\n{STORED}\nEND:VCALENDAR"));
        let m = modification(
            "BEGIN:VEVENT\nEND:VEVENT",
            "BEGIN:VEVENT\nUID:zzz\nEND:VEVENT",
        );
        assert_eq!(
            m.apply_to_calendar(&cal, &|_| true, &now())
                .unwrap_err()
                .code,
            "3.1"
        );
    }

    #[test]
    fn sequence_bump_rules() {
        let s = stored();
        let seq = |old: &str, new: &str| {
            modification(old, new)
                .apply(&s, &now())
                .unwrap()
                .map(|c| c.sequence())
        };
        let e = "BEGIN:VEVENT\nEND:VEVENT";
        // Significant (RFC 5546 §2.1.4): DTSTART, DTEND, DURATION, DUE, RRULE, RDATE, EXDATE, STATUS.
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nDTSTART:20010307T170000Z\nEND:VEVENT"),
            Some(3)
        );
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nDTEND:20010307T200000Z\nEND:VEVENT"),
            Some(3)
        );
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nRRULE:FREQ=WEEKLY\nEND:VEVENT"),
            Some(3)
        );
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nSTATUS:CANCELLED\nEND:VEVENT"),
            Some(3)
        );
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nEXDATE:20010314T180000Z\nEND:VEVENT"),
            Some(3)
        );
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nRDATE:20010315T180000Z\nEND:VEVENT"),
            Some(3)
        );
        // Not significant.
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nLOCATION:elsewhere\nEND:VEVENT"),
            Some(2)
        );
        assert_eq!(seq(e, "BEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT"), Some(2));
        assert_eq!(
            seq(
                e,
                "BEGIN:VEVENT\nATTENDEE:mailto:dave@example.com\nEND:VEVENT"
            ),
            Some(2)
        );
        // NEW sets SEQUENCE itself: taken as written, no bump.
        assert_eq!(
            seq(
                e,
                "BEGIN:VEVENT\nSEQUENCE:7\nDTSTART:20010307T170000Z\nEND:VEVENT"
            ),
            Some(7)
        );
        // Removing a significant property counts too.
        assert_eq!(
            seq("BEGIN:VEVENT\nDTEND:20010307T190000Z\nEND:VEVENT", e),
            Some(3)
        );
        // An equivalent value is no change at all.
        assert_eq!(
            seq(e, "BEGIN:VEVENT\nDTSTART:20010307T130000-0500\nEND:VEVENT"),
            None
        );
        // Without SEQUENCE stored: 0 → 1.
        let bare = comp("BEGIN:VEVENT\nUID:u\nDTSTART:20010307T180000Z\nEND:VEVENT");
        let out = modification(e, "BEGIN:VEVENT\nDTSTART:20010308T180000Z\nEND:VEVENT")
            .apply(&bare, &now())
            .unwrap()
            .unwrap();
        assert_eq!(out.value("SEQUENCE"), Some("1"));
    }

    #[test]
    fn dtend_and_duration_exclude_each_other() {
        let m = modification(
            "BEGIN:VEVENT\nEND:VEVENT",
            "BEGIN:VEVENT\nDURATION:PT2H\nEND:VEVENT",
        );
        let out = m.apply(&stored(), &now()).unwrap().unwrap();
        assert_eq!(out.value("DTEND"), None);
        assert_eq!(out.value("DURATION"), Some("PT2H"));
        let m = modification(
            "BEGIN:VEVENT\nEND:VEVENT",
            "BEGIN:VEVENT\nDTEND:20010307T210000Z\nEND:VEVENT",
        );
        let back = m.apply(&out, &now()).unwrap().unwrap();
        assert_eq!(back.value("DURATION"), None);
        assert_eq!(back.value("DTEND"), Some("20010307T210000Z"));
    }

    #[test]
    fn no_op_detection() {
        let s = stored();
        let same = |old: &str, new: &str| modification(old, new).apply(&s, &now()).unwrap();
        // NEW equals OLD.
        assert_eq!(
            same(
                "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT",
                "BEGIN:VEVENT\nLOCATION:Building 6\nEND:VEVENT"
            ),
            None
        );
        // NEW adds what is there already.
        assert_eq!(
            same(
                "BEGIN:VEVENT\nEND:VEVENT",
                "BEGIN:VEVENT\nLOCATION:Building 6\nCATEGORIES:WORK\nATTENDEE;PARTSTAT=accepted:carol@example.com\nEND:VEVENT"
            ),
            None
        );
        // Server-maintained properties in NEW are ignored.
        assert_eq!(
            same(
                "BEGIN:VEVENT\nEND:VEVENT",
                "BEGIN:VEVENT\nDTSTAMP:20300101T000000Z\nLAST-MODIFIED:20300101T000000Z\nEND:VEVENT"
            ),
            None
        );
        // OLD's SEQUENCE and DTSTAMP select but are not removed.
        assert_eq!(
            same(
                "BEGIN:VEVENT\nSEQUENCE:2\nDTSTAMP:20010301T120000Z\nEND:VEVENT",
                "BEGIN:VEVENT\nEND:VEVENT"
            ),
            None
        );
        // Whole stored component as both OLD and NEW.
        assert_eq!(same(STORED, STORED), None);
    }

    #[test]
    fn vcalendar_properties() {
        let cal = comp("BEGIN:VCALENDAR\nNAME:Work\nEND:VCALENDAR");
        let m = modification(
            "BEGIN:VCALENDAR\nNAME:Work\nEND:VCALENDAR",
            "BEGIN:VCALENDAR\nNAME:Office\nEND:VCALENDAR",
        );
        let out = m
            .apply_to_calendar(&cal, &|_| true, &now())
            .unwrap()
            .unwrap();
        assert_eq!(out.value("NAME"), Some("Office"));
        // No DTSTAMP on a VCALENDAR.
        assert_eq!(out.value("DTSTAMP"), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = ContentLine> {
            let names = prop::sample::select(vec![
                "UID",
                "SUMMARY",
                "LOCATION",
                "ATTENDEE",
                "ORGANIZER",
                "DTSTART",
                "DTEND",
                "DURATION",
                "SEQUENCE",
                "RECURRENCE-ID",
                "CATEGORIES",
                "DTSTAMP",
                "STATUS",
                "X-A",
            ]);
            let values = prop::sample::select(vec![
                "",
                "a",
                "A",
                " ",
                "mailto:b@x",
                "B@X",
                "20250101T100000Z",
                "20250101",
                "20250101T100000",
                "PT1H",
                "1",
                "01",
                "a\\,b",
                "a,b",
                "\\",
            ]);
            let params = prop::collection::vec(
                prop::sample::select(vec![
                    ("PARTSTAT", "ACCEPTED"),
                    ("PARTSTAT", "needs-action"),
                    ("CN", "a"),
                    ("TZID", "Europe/Berlin"),
                    ("VALUE", "DATE"),
                    ("VALUE", "CAL-ADDRESS"),
                    ("SCHEDULE-STATUS", "2.0"),
                    ("MEMBER", "mailto:g@x"),
                ]),
                0..3,
            );
            (names, values, params).prop_map(|(n, v, ps)| {
                let mut l = ContentLine::new(n, v);
                for (pn, pv) in ps {
                    l.params.push(Param::new(pn, pv));
                }
                l
            })
        }

        fn component() -> impl Strategy<Value = Component> {
            prop::collection::vec(line(), 0..7).prop_map(|properties| Component {
                name: "VEVENT".into(),
                properties,
                components: Vec::new(),
            })
        }

        /// A stored component and an OLD made of some of its own lines, in any order, so that
        /// OLD (nearly always) matches it.
        fn stored_and_own_lines() -> impl Strategy<Value = (Component, Component)> {
            component().prop_flat_map(|stored| {
                let lines = stored.properties.clone();
                let n = lines.len();
                let old = prop::sample::subsequence(lines, 0..=n)
                    .prop_shuffle()
                    .prop_map(|properties| Component {
                        name: "VEVENT".into(),
                        properties,
                        components: Vec::new(),
                    });
                (Just(stored), old)
            })
        }

        proptest! {
            #[test]
            fn apply_never_panics(old in component(), new in component(), stored in component()) {
                let m = Modification { old, new };
                let r = m.apply(&stored, &now());
                if let Ok(Some(out)) = &r {
                    // UID is never changed.
                    prop_assert_eq!(out.uid(), stored.uid());
                    prop_assert!(out != &stored);
                }
                let _ = m.matches(&stored);
                let cal = Component { name: "VCALENDAR".into(), properties: vec![], components: vec![stored.clone(), stored] };
                let _ = m.apply_to_calendar(&cal, &|_| true, &now());
            }

            #[test]
            fn new_equal_to_old_is_a_no_op((stored, old) in stored_and_own_lines()) {
                let m = Modification { old: old.clone(), new: old };
                prop_assert_eq!(m.apply(&stored, &now()), Ok(None));
                let m = Modification { old: stored.clone(), new: stored.clone() };
                prop_assert_eq!(m.apply(&stored, &now()), Ok(None));
            }
        }
    }
}
