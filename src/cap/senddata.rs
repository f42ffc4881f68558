//! SENDDATA commands (cap-04 §7.2; spec §3.3) carried out through the translation layer.
//!
//! The session parses the payload ([`super::payload`]) and hands it here with the session's
//! identity; [`execute`] works out what each TARGET needs, asks the [`Gateway`] (the only part
//! that talks CalDAV) and returns an [`Outcome`]: one [`TargetReply`] per TARGET, each holding
//! a top-level status and one component per object with its REQUEST-STATUS (spec §3.6). The
//! session renders it ([`super::reply::response`]).
//!
//! Failures are per TARGET and per object: a TARGET that does not exist, is on another calendar
//! store, or that the upstream refuses gets its own status while the others go ahead; nothing
//! the client did not ask for is written. The iTIP methods act once, through the organizer's (or
//! attendee's) own calendar, so that the upstream's implicit scheduling (RFC 6638 §3.2) delivers;
//! their reply is one VCAP listing every TARGET. `protocols/caldav-mapping.md` has the request
//! each method becomes.

use super::modify;
use super::payload::{Method, Payload};
use super::status::{self, Status, Subject};
use super::target::{self, Target, TargetError};
use super::vquery::{self, MethodFilter, VQuery};
use crate::ical::component::Component;
use crate::ical::contentline::ContentLine;
use crate::ical::datetime::DateTime;
use crate::ical::scheduling::{Address, OBJECT_COMPONENTS};
use crate::translate::calid::CalId;
use crate::translate::login::login_address;
use crate::translate::store::{Entries, Selection, StoredObject};
use crate::translate::{
    DeliveryStatus, FreeBusyOutcome, Gateway, Identity, RsvpOutcome, SendEventOutcome,
    TranslateError,
};

/// The reply to one SENDDATA command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One entry per TARGET (iTIP methods: one entry naming every TARGET).
    pub targets: Vec<TargetReply>,
}

/// What happened for one TARGET: rendered as one VCAP (spec §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReply {
    /// The TARGETs this VCAP answers for, qualified (`cap://<server_id>/…`).
    pub targets: Vec<String>,
    /// The calendar-level REQUEST-STATUS (`None` when only per-object statuses apply).
    pub status: Option<Status>,
    /// Further top-level properties (GENERATEUID's `UID:` lines).
    pub properties: Vec<ContentLine>,
    /// Per-object results (a component with UID and REQUEST-STATUS) or READ results.
    pub components: Vec<Component>,
}

impl TargetReply {
    /// A reply for these TARGETs with nothing in it yet.
    pub fn of(targets: Vec<String>) -> TargetReply {
        TargetReply {
            targets,
            status: None,
            properties: Vec::new(),
            components: Vec::new(),
        }
    }

    fn new(target: String) -> TargetReply {
        TargetReply::of(vec![target])
    }

    /// Sets the calendar-level REQUEST-STATUS.
    pub fn with_status(mut self, status: Status) -> TargetReply {
        self.status = Some(status);
        self
    }
}

/// The answer to a command that needs no upstream (NOOP, GENERATEUID; cap-04 §7.2.1.4,
/// §7.2.1.7): `None` for every other method. The session answers these without running work.
pub fn local(payload: &Payload, server_id: &str) -> Option<Outcome> {
    matches!(payload.method, Method::Noop | Method::GenerateUid)
        .then(|| answer_locally(payload, server_id))
}

/// NOOP's and GENERATEUID's reply: `2.0` and, for GENERATEUID, one `UID:` per id.
fn answer_locally(payload: &Payload, server_id: &str) -> Outcome {
    let mut reply = all_targets(payload, server_id).with_status(Status::success());
    if payload.method == Method::GenerateUid {
        // GW form (spec Q6): MAXRESULTS ids, default 1, at most MAX_GENERATED_UIDS.
        let n = payload
            .max_results
            .unwrap_or(1)
            .clamp(1, super::command::MAX_GENERATED_UIDS);
        reply.properties = (0..n)
            .map(|_| ContentLine::new("UID", &crate::translate::freebusy::generate_uid()))
            .collect();
    }
    Outcome {
        targets: vec![reply],
    }
}

/// One reply naming every TARGET of the payload, qualified (spec §3.6).
fn all_targets(payload: &Payload, server_id: &str) -> TargetReply {
    TargetReply::of(
        payload
            .targets
            .iter()
            .map(|t| target::qualified(t, server_id))
            .collect(),
    )
}

/// Carries out a payload (those [`local`] answers too, the same way).
///
/// `Err` only for an iTIP method that failed as a whole (wire: the transport status replaces
/// `2.0`, as for REQUEST since the transport issue); every calendaring command reports per
/// TARGET instead.
pub async fn execute(
    gateway: &Gateway,
    identity: &Identity,
    payload: &Payload,
) -> Result<Outcome, TranslateError> {
    let now = DateTime::now_utc();
    let prepared = Prepared::of(payload, &now);
    let exec = Exec {
        gw: gateway,
        identity,
        payload,
        now,
        prepared,
    };
    match &payload.method {
        Method::Create => Ok(exec.per_target(Exec::create).await),
        Method::Read => Ok(exec.per_target(Exec::read).await),
        Method::Modify => Ok(exec.per_target(Exec::modify).await),
        Method::Delete => Ok(exec.per_target(Exec::delete).await),
        Method::Move => Ok(exec.moves().await),
        Method::Noop | Method::GenerateUid => Ok(answer_locally(payload, gateway.server_id())),
        Method::Itip(m) => exec.itip(m).await,
        Method::Other(m) => {
            // Per TARGET (spec §3.6: one VCAP each), like the calendaring commands.
            let status = Status::new(
                status::UNSUPPORTED,
                format!(
                    "Unknown METHOD {m}; calgate knows CREATE, READ, MODIFY, DELETE, MOVE, NOOP, \
                     GENERATEUID and the iTIP methods; nothing was done"
                ),
            );
            let mut targets: Vec<TargetReply> = payload
                .targets
                .iter()
                .map(|t| TargetReply::new(exec.qualified(t)).with_status(status.clone()))
                .collect();
            if targets.is_empty() {
                targets.push(exec.all_targets().with_status(status));
            }
            Ok(Outcome { targets })
        }
    }
}

/// The VCALENDAR an iTIP payload stands for: its components (unwrapped from a VCALENDAR) under
/// `METHOD:<method>`.
pub fn itip_calendar(method: &str, payload: &Payload) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    out.push_str(&format!(
        "PRODID:{}\r\n",
        crate::ical::vcal10::DEFAULT_PRODID
    ));
    out.push_str(&format!("METHOD:{method}\r\n"));
    for c in &payload.components {
        if c.name == "VCALENDAR" {
            for inner in &c.components {
                out.push_str(&inner.to_ics());
            }
        } else {
            out.push_str(&c.to_ics());
        }
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

struct Exec<'a> {
    gw: &'a Gateway,
    identity: &'a Identity,
    payload: &'a Payload,
    now: DateTime,
    prepared: Prepared<'a>,
}

/// What a payload carries, read once for all its TARGETs (so an object without a UID gets one
/// generated UID, the same in every TARGET).
struct Prepared<'a> {
    /// CREATE: the objects grouped by UID.
    objects: Vec<ObjectGroup>,
    /// CREATE: calendar definitions (VCALENDAR with RELCALID / NAME).
    calendars: Vec<&'a Component>,
    /// CREATE: the VTIMEZONEs stored with every object.
    timezones: Vec<&'a Component>,
    /// READ and DELETE: the VQUERY (`Ok(None)`: none).
    query: Result<Option<VQuery>, Status>,
    /// MODIFY: the change and its optional VQUERY (read for MODIFY only).
    change: Result<(modify::Modification, Option<VQuery>), Status>,
}

impl<'a> Prepared<'a> {
    fn of(payload: &'a Payload, now: &DateTime) -> Prepared<'a> {
        let mut p = Prepared {
            objects: Vec::new(),
            calendars: Vec::new(),
            timezones: Vec::new(),
            query: Ok(None),
            change: Err(Status::new(status::INVALID_VALUE, "not a MODIFY")),
        };
        match payload.method {
            Method::Create => {
                let (objects, calendars, timezones) = creations(payload);
                p.objects = group_by_uid(objects, now);
                p.calendars = calendars;
                p.timezones = timezones;
            }
            Method::Read | Method::Delete => p.query = one_vquery(payload),
            Method::Modify => {
                p.change = modify::from_payload(&payload.components)
                    .map_err(Status::from)
                    .and_then(|r| {
                        let q = r.vquery.as_ref().map(query_of).transpose()?;
                        Ok((r.change, q))
                    });
            }
            _ => {}
        }
        p
    }
}

type TargetFuture<'f> = std::pin::Pin<Box<dyn Future<Output = TargetReply> + Send + 'f>>;

impl<'a> Exec<'a> {
    fn server_id(&self) -> &str {
        self.gw.server_id()
    }

    fn qualified(&self, t: &str) -> String {
        target::qualified(t, self.server_id())
    }

    /// One reply naming every TARGET (or none, when the payload has none).
    fn all_targets(&self) -> TargetReply {
        all_targets(self.payload, self.server_id())
    }

    /// Runs `op` for each TARGET in order (one at a time: PIPELINE=1 and a 2-request budget per
    /// object keep the upstream load predictable). A payload without TARGET gets one reply
    /// saying so.
    async fn per_target<F>(&self, op: F) -> Outcome
    where
        F: for<'s> Fn(&'s Exec<'a>, String, Target) -> TargetFuture<'s>,
    {
        if self.payload.targets.is_empty() {
            return Outcome {
                targets: vec![TargetReply::of(Vec::new()).with_status(Status::new(
                    status::NOT_FOUND,
                    format!(
                        "{} needs at least one TARGET (cap://{}/<user>[/<calendar>])",
                        self.payload.method.name(),
                        self.server_id()
                    ),
                ))],
            };
        }
        let mut targets = Vec::new();
        for t in &self.payload.targets {
            let shown = self.qualified(t);
            let reply = match target::parse(t, self.server_id()) {
                Ok(parsed) => op(self, shown, parsed).await,
                Err(e) => TargetReply::new(shown).with_status(target_status(&e)),
            };
            targets.push(reply);
        }
        Outcome { targets }
    }

    // ---- CREATE (cap-04 §7.2.1.2, §7.2.1.2.1) ----

    fn create(&self, shown: String, target: Target) -> TargetFuture<'_> {
        Box::pin(async move {
            let p = &self.prepared;
            let mut reply = TargetReply::new(shown);
            if p.objects.is_empty() && p.calendars.is_empty() {
                return reply.with_status(Status::new(
                    "3.11",
                    "CREATE carries nothing to create (a VEVENT, VTODO, VJOURNAL or VCALENDAR)",
                ));
            }
            for cal in &p.calendars {
                reply
                    .components
                    .push(self.create_calendar(&target, cal).await);
            }
            if p.objects.is_empty() {
                return reply;
            }
            let calid = match &target {
                Target::Calendar(c) => c.clone(),
                Target::Store => {
                    reply.status = Some(Status::new(
                        status::NOT_FOUND,
                        "Objects are created in a calendar (cap://<store>/<user>[/<calendar>]), \
                         not in the calendar store itself",
                    ));
                    return reply;
                }
            };
            for group in &p.objects {
                let result = match &group.error {
                    Some(e) => e.clone(),
                    None => {
                        let calendar = self.object_calendar(&group.components, &p.timezones);
                        match self
                            .gw
                            .create_object(self.identity, &calid, &calendar)
                            .await
                        {
                            Ok(_) => Status::success(),
                            Err(e) => status::of_error(&e, Subject::Object),
                        }
                    }
                };
                reply
                    .components
                    .push(object_result(&group.name, &group.uid, result));
            }
            reply
        })
    }

    /// A VCALENDAR for one object: the payload's VTIMEZONEs, then its components, with
    /// `cap://` calendar addresses rewritten to the users' mail addresses.
    fn object_calendar(&self, components: &[Component], timezones: &[&Component]) -> Component {
        let mut cal = Component::new("VCALENDAR");
        cal.properties.push(ContentLine::new("VERSION", "2.0"));
        cal.properties.push(ContentLine::new(
            "PRODID",
            crate::ical::vcal10::DEFAULT_PRODID,
        ));
        for tz in timezones {
            cal.components.push((*tz).clone());
        }
        for c in components {
            let mut c = c.clone();
            // cap-04's client tables list a METHOD "placeholder" inside the object; an
            // iCalendar object carries no METHOD.
            c.remove_properties("METHOD");
            self.rewrite_addresses(&mut c);
            cal.components.push(c);
        }
        cal
    }

    /// ORGANIZER and ATTENDEE values written as CAP calendar addresses
    /// (`cap://cal.example.com/relcal1`, as in the cap-04 CREATE example) become the owner's
    /// mail address, which is what the upstream schedules with (RFC 6638 §2.4.1).
    fn rewrite_addresses(&self, c: &mut Component) {
        for line in c.properties.iter_mut() {
            if !matches!(line.name.as_str(), "ORGANIZER" | "ATTENDEE") {
                continue;
            }
            let v = line.value.trim();
            if !crate::translate::calid::is_absolute(v) {
                continue;
            }
            if let Ok(Target::Calendar(calid)) = target::parse(v, self.server_id()) {
                line.value = format!("mailto:{}", login_address(&calid.user, self.gw.domain()));
            }
        }
        for sub in c.components.iter_mut() {
            self.rewrite_addresses(sub);
        }
    }

    async fn create_calendar(&self, target: &Target, def: &Component) -> Component {
        let mut result = Component::new("VCALENDAR");
        let relcalid = def.value("RELCALID").map(|v| v.trim().to_owned());
        if let Some(r) = &relcalid {
            result.properties.push(ContentLine::new("RELCALID", r));
        }
        let outcome = self.calendar_place(target, relcalid.as_deref()).await;
        let status = match outcome {
            Err(s) => s,
            Ok((owner, name)) => {
                let display = def
                    .value("NAME")
                    .map(crate::ical::contentline::unescape_text);
                match self
                    .gw
                    .create_calendar(self.identity, &owner, &name, display.as_deref())
                    .await
                {
                    Ok(calid) => {
                        if relcalid.is_none() {
                            // -02 §7.2.1.1.1: a generated RELCALID is returned.
                            result.properties.push(ContentLine::new(
                                "RELCALID",
                                &format!(
                                    "{owner}/{}",
                                    crate::translate::calid::display_segment(&name)
                                ),
                            ));
                        }
                        result.properties.push(ContentLine::new("CALID", &calid));
                        Status::success()
                    }
                    Err(e) => status::of_error(&e, Subject::Calendar),
                }
            }
        };
        result.properties.push(status.to_line());
        result
    }

    /// Where a new calendar goes: the owner (login or address) and its name. TARGET the store
    /// (the caller's home, or the user named in RELCALID) or a user (`alice`, that user's
    /// home); RELCALID `name` or `user/name`, generated when absent.
    async fn calendar_place(
        &self,
        target: &Target,
        relcalid: Option<&str>,
    ) -> Result<(String, String), Status> {
        let caller = match self.identity {
            Identity::User { creds, .. } => creds.user.clone(),
            _ => {
                return Err(Status::new(
                    status::NO_AUTHORITY,
                    "Log in to create calendars",
                ));
            }
        };
        let home_owner = match target {
            Target::Store => None,
            Target::Calendar(CalId {
                user,
                calendar: None,
            }) => Some(user.clone()),
            Target::Calendar(CalId {
                calendar: Some(_), ..
            }) => {
                return Err(Status::new(
                    status::UNSUPPORTED,
                    "CalDAV calendars cannot hold other calendars (RFC 4791 §4.2); TARGET the \
                     store or a user's home instead",
                ));
            }
        };
        let (rel_owner, name) = match relcalid {
            None => (None, format!("cal-{}", short_id())),
            Some(r) => self.relcalid(r)?,
        };
        let owner = match (home_owner, rel_owner) {
            (Some(h), Some(r)) if !same_user(&h, &r, self.gw.domain()) => {
                return Err(Status::new(
                    status::INVALID_VALUE,
                    format!("RELCALID names {r}'s calendar but the TARGET is {h}'s home"),
                ));
            }
            (Some(h), _) => h,
            (None, Some(r)) => r,
            (None, None) => caller,
        };
        Ok((owner, name))
    }

    /// A RELCALID (cap-04 §7.2.1.2.1, §7.2.1.6): `<user>/<name>` gives the owner and the
    /// calendar name; a bare `<name>` only the name (the owner comes from the TARGET, else the
    /// caller).
    fn relcalid(&self, r: &str) -> Result<(Option<String>, String), Status> {
        match target::parse(r, self.server_id()) {
            Ok(Target::Calendar(CalId {
                user,
                calendar: Some(name),
            })) => Ok((Some(user), name)),
            Ok(Target::Calendar(CalId {
                user,
                calendar: None,
            })) => Ok((None, user)),
            Ok(Target::Store) | Err(_) => Err(Status::new(
                status::INVALID_VALUE,
                format!("RELCALID {r} is not a calendar name (<name> or <user>/<name>)"),
            )),
        }
    }

    // ---- READ (cap-04 §7.2.1.8) ----

    fn read(&self, shown: String, target: Target) -> TargetFuture<'_> {
        Box::pin(async move {
            let reply = TargetReply::new(shown);
            let q = match &self.prepared.query {
                Ok(Some(q)) => q,
                Ok(None) => return reply.with_status(self.vquery_missing()),
                Err(s) => return reply.with_status(s.clone()),
            };
            let calid = match self.calendar_target(&target, "READ") {
                Ok(c) => c,
                Err(s) => return reply.with_status(s),
            };
            match self.matching(&calid, q).await {
                Err(e) => reply.with_status(status::of_error(&e, Subject::Object)),
                Ok(found) => {
                    let mut results: Vec<Component> = found
                        .iter()
                        .flat_map(|(_, comps)| comps.iter().map(|c| q.query.project(c)))
                        .collect();
                    q.query.sort(&mut results);
                    let total = results.len();
                    let mut note = None;
                    if let Some(max) = q.max_results
                        && max > 0
                        && total > max
                    {
                        results.truncate(max);
                        note = Some(format!(
                            "{total} matched and the first {max} are returned: MAXRESULTS"
                        ));
                    }
                    if let Some(limit) = q.max_size
                        && limit > 0
                    {
                        let mut size = 0;
                        let mut keep = 0;
                        for c in &results {
                            size += c.to_ics().len();
                            if size > limit {
                                break;
                            }
                            keep += 1;
                        }
                        if keep < results.len() {
                            note = Some(format!(
                                "{total} matched and the {keep} that fit in MAXSIZE {limit} octets are returned"
                            ));
                            results.truncate(keep);
                        }
                    }
                    let text = match note {
                        Some(n) => format!("Success ({n})"),
                        None => format!("Success ({total} matched)"),
                    };
                    let mut reply = reply.with_status(Status::new(status::SUCCESS, text));
                    reply.components = results;
                    reply
                }
            }
        })
    }

    /// The status for a READ without a VQUERY.
    fn vquery_missing(&self) -> Status {
        Status::new(
            "3.11",
            format!(
                "{} needs a VQUERY (BEGIN:VQUERY / QUERY:SELECT ... FROM ... WHERE ... / END:VQUERY)",
                self.payload.method.name()
            ),
        )
    }

    /// The calendar a TARGET names, for commands on objects.
    fn calendar_target(&self, target: &Target, what: &str) -> Result<CalId, Status> {
        match target {
            Target::Calendar(c) => Ok(c.clone()),
            Target::Store => Err(Status::new(
                status::NOT_FOUND,
                format!(
                    "{what} works on the objects of a calendar; TARGET a calendar \
                     (cap://{}/<user>[/<calendar>]), not the store",
                    self.server_id()
                ),
            )),
        }
    }

    /// The stored objects with the components in them that the query selects.
    async fn matching(
        &self,
        calid: &CalId,
        q: &VQuery,
    ) -> Result<Vec<(StoredObject, Vec<Component>)>, TranslateError> {
        let push = q.query.pushdown();
        let component = match q.query.from.as_slice() {
            [one] if OBJECT_COMPONENTS.contains(&one.as_str()) => Some(one.clone()),
            _ => None,
        };
        let sources: &[Entries] = match push.entries {
            MethodFilter::Booked => &[Entries::Booked],
            MethodFilter::Scheduled => &[Entries::Scheduled],
            MethodFilter::Both => &[Entries::Booked, Entries::Scheduled],
        };
        let mut out = Vec::new();
        for entries in sources {
            let selection = Selection {
                entries: *entries,
                component: component.clone(),
                uid: push.uid.clone(),
                start: push.start.clone(),
                end: push.end.clone(),
            };
            for object in self
                .gw
                .find_objects(self.identity, calid, &selection)
                .await?
            {
                let method = entry_method(*entries, &object.calendar);
                let comps: Vec<Component> = components_of(&object.calendar, &q.query.from)
                    .filter(|c| q.query.matches(c, &method))
                    .cloned()
                    .collect();
                if !comps.is_empty() {
                    out.push((object, comps));
                }
            }
        }
        q.query.sort_by(&mut out, |(_, comps)| &comps[0]);
        Ok(out)
    }

    // ---- MODIFY (cap-04 §7.2.1.5, spec Q7) ----

    fn modify(&self, shown: String, target: Target) -> TargetFuture<'_> {
        Box::pin(async move {
            let mut reply = TargetReply::new(shown);
            let (change, query) = match &self.prepared.change {
                Ok((change, query)) => (change, query),
                Err(s) => return reply.with_status(s.clone()),
            };
            let calid = match self.calendar_target(&target, "MODIFY") {
                Ok(c) => c,
                Err(s) => return reply.with_status(s),
            };
            let candidates = match query {
                // OLD is a precondition with a VQUERY too (cap::modify): an object the query
                // selects but OLD does not match is not a candidate.
                Some(q) => self.matching(&calid, q).await.map(|v| {
                    v.into_iter()
                        .filter(|(_, comps)| comps.iter().any(|c| change.matches(c)))
                        .map(|(o, _)| o)
                        .collect::<Vec<_>>()
                }),
                None => {
                    let selection = Selection {
                        entries: Entries::Booked,
                        component: Some(change.component().to_owned()),
                        uid: change.uid().map(str::to_owned),
                        start: None,
                        end: None,
                    };
                    self.gw
                        .find_objects(self.identity, &calid, &selection)
                        .await
                        .map(|v| {
                            v.into_iter()
                                .filter(|o| {
                                    components_of(&o.calendar, &[change.component().to_owned()])
                                        .any(|c| change.matches(c))
                                })
                                .collect()
                        })
                }
            };
            let candidates = match candidates {
                Ok(c) => c,
                Err(e) => return reply.with_status(status::of_error(&e, Subject::Object)),
            };
            if candidates.is_empty() {
                return reply.with_status(none_matched("changed"));
            }
            let now = self.now.clone();
            let select = |c: &Component| -> bool {
                match query {
                    Some(q) => q.query.matches(c, "CREATE"),
                    None => change.matches(c),
                }
            };
            let apply = |cal: &Component| -> Result<Option<Component>, TranslateError> {
                change
                    .apply_to_calendar(cal, &select, &now)
                    .map_err(|e| TranslateError::BadInput(e.reason))
            };
            let mut changed = 0;
            for object in &candidates {
                let (name, uid) = identify(&object.calendar, change.component());
                let result = match self.gw.update_object(self.identity, object, &apply).await {
                    Ok(u) if u.written => {
                        changed += 1;
                        Status::success()
                    }
                    Ok(_) => Status::new(
                        status::SUCCESS,
                        "Success (already as asked: nothing written)",
                    ),
                    Err(e) => status::of_error(&e, Subject::Object),
                };
                reply.components.push(object_result(&name, &uid, result));
            }
            reply.status = Some(tally(changed, candidates.len(), "changed"));
            reply
        })
    }

    // ---- DELETE (cap-04 §7.2.1.3) ----

    fn delete(&self, shown: String, target: Target) -> TargetFuture<'_> {
        Box::pin(async move {
            let mut reply = TargetReply::new(shown);
            let q = match &self.prepared.query {
                Ok(q) => q,
                Err(s) => return reply.with_status(s.clone()),
            };
            let calid = match &target {
                Target::Store => {
                    return reply.with_status(Status::new(
                        status::NO_AUTHORITY,
                        "The calendar store itself cannot be deleted",
                    ));
                }
                Target::Calendar(c) => c.clone(),
            };
            let Some(q) = q else {
                let status = match self.gw.delete_calendar(self.identity, &calid).await {
                    Ok(()) => Status::success(),
                    Err(e) => status::of_error(&e, Subject::Calendar),
                };
                return reply.with_status(status);
            };
            let found = match self.matching(&calid, q).await {
                Ok(f) => f,
                Err(e) => return reply.with_status(status::of_error(&e, Subject::Object)),
            };
            if found.is_empty() {
                return reply.with_status(none_matched("deleted"));
            }
            let mut deleted = 0;
            for (object, comps) in &found {
                let name = comps.first().map(|c| c.name.clone()).unwrap_or_default();
                let uid = comps
                    .first()
                    .and_then(|c| c.value("UID"))
                    .unwrap_or_default()
                    .to_owned();
                // The query may select some instances of a recurring object only (overrides,
                // by RECURRENCE-ID): those are deleted, not the whole series.
                let all = components_of(&object.calendar, std::slice::from_ref(&name)).count();
                let instances = comps.len() < all
                    && comps.iter().all(|c| c.property("RECURRENCE-ID").is_some());
                let outcome = if instances {
                    self.delete_instances(object, comps).await
                } else {
                    self.gw.delete_object(self.identity, object).await
                };
                let result = match outcome {
                    Ok(()) => {
                        deleted += 1;
                        Status::success()
                    }
                    Err(e) => status::of_error(&e, Subject::Object),
                };
                let mut line = object_result(&name, &uid, result);
                if instances {
                    let at = line.properties.len() - 1;
                    for (i, c) in comps.iter().enumerate() {
                        if let Some(rid) = c.property("RECURRENCE-ID") {
                            line.properties.insert(at + i, rid.clone());
                        }
                    }
                }
                reply.components.push(line);
            }
            reply.status = Some(tally(deleted, found.len(), "deleted"));
            reply
        })
    }

    /// DELETE of some instances of a recurring object (the overrides a VQUERY selected, not
    /// the master): as RFC 5546 §3.2.5 CANCEL of those instances on the stored copy
    /// ([`super::itip::cancel`]): an EXDATE on the master for each, the override removed,
    /// SEQUENCE incremented; the whole object goes when no instance is left.
    async fn delete_instances(
        &self,
        object: &StoredObject,
        instances: &[Component],
    ) -> Result<(), TranslateError> {
        use super::itip::CancelPlan;
        let now = self.now.clone();
        let bad = |e: super::itip::ItipError| TranslateError::BadInput(e.reason);
        match super::itip::cancel(&object.calendar, instances, &now).map_err(bad)? {
            CancelPlan::DeleteAll => self.gw.delete_object(self.identity, object).await,
            CancelPlan::Update(_) => {
                let apply = |cal: &Component| -> Result<Option<Component>, TranslateError> {
                    match super::itip::cancel(cal, instances, &now).map_err(bad)? {
                        CancelPlan::Update(c) => Ok(Some(c)),
                        CancelPlan::DeleteAll => Err(TranslateError::Conflict(
                            "The stored object changed while its instances were deleted".into(),
                        )),
                    }
                };
                self.gw
                    .update_object(self.identity, object, &apply)
                    .await
                    .map(|_| ())
            }
        }
    }

    // ---- MOVE (cap-04 §7.2.1.6) ----

    async fn moves(&self) -> Outcome {
        let mut reply = self.all_targets();
        let parent = match self.payload.targets.as_slice() {
            [one] => one,
            _ => {
                reply.status = Some(Status::new(
                    status::INVALID_VALUE,
                    format!(
                        "MOVE takes exactly one TARGET, the new parent; this one has {}",
                        self.payload.targets.len()
                    ),
                ));
                return Outcome {
                    targets: vec![reply],
                };
            }
        };
        let new_owner = match target::parse(parent, self.server_id()) {
            Err(e) => Err(target_status(&e)),
            Ok(Target::Store) => match self.identity {
                Identity::User { creds, .. } => Ok(creds.user.clone()),
                _ => Err(Status::new(
                    status::NO_AUTHORITY,
                    "Log in to move calendars",
                )),
            },
            Ok(Target::Calendar(CalId {
                user,
                calendar: None,
            })) => Ok(user),
            Ok(Target::Calendar(CalId { .. })) => Err(Status::new(
                status::UNSUPPORTED,
                "CalDAV calendars cannot hold other calendars (RFC 4791 §4.2); the new parent is \
                 a user's home (cap://<store>/<user>) or the store",
            )),
        };
        let new_owner = match new_owner {
            Ok(o) => o,
            Err(s) => {
                reply.status = Some(s);
                return Outcome {
                    targets: vec![reply],
                };
            }
        };
        let moved: Vec<&Component> = self
            .payload
            .components
            .iter()
            .filter(|c| c.name == "VCALENDAR")
            .collect();
        if moved.is_empty() {
            reply.status = Some(Status::new(
                "3.11",
                "MOVE needs one VCALENDAR with RELCALID per calendar to move",
            ));
        }
        for def in moved {
            let mut result = Component::new("VCALENDAR");
            let relcalid = def.value("RELCALID").map(|v| v.trim().to_owned());
            let status = match relcalid.as_deref() {
                None => Status::new("3.11", "RELCALID names the calendar to move"),
                Some(r) => {
                    result.properties.push(ContentLine::new("RELCALID", r));
                    self.move_one(r, &new_owner, &mut result).await
                }
            };
            result.properties.push(status.to_line());
            reply.components.push(result);
        }
        Outcome {
            targets: vec![reply],
        }
    }

    /// Moves the calendar `relcalid` names (a bare name: one of the caller's) into
    /// `new_owner`'s home; the new CALID goes into `result`.
    async fn move_one(&self, relcalid: &str, new_owner: &str, result: &mut Component) -> Status {
        let (owner, name) = match self.relcalid(relcalid) {
            Ok(parts) => parts,
            Err(s) => return s,
        };
        let owner = match (owner, self.identity) {
            (Some(o), _) => o,
            (None, Identity::User { creds, .. }) => creds.user.clone(),
            (None, _) => return Status::new(status::NO_AUTHORITY, "Log in to move calendars"),
        };
        let calid = CalId {
            user: owner,
            calendar: Some(name),
        };
        match self
            .gw
            .move_calendar(self.identity, &calid, new_owner)
            .await
        {
            Ok(new_calid) => {
                result
                    .properties
                    .push(ContentLine::new("CALID", &new_calid));
                Status::success()
            }
            Err(e) => status::of_error(&e, Subject::Calendar),
        }
    }

    // ---- iTIP (cap-04 §7.2.2, §7.2.3; RFC 2446) ----

    async fn itip(&self, method: &str) -> Result<Outcome, TranslateError> {
        let freebusy = self
            .payload
            .components
            .iter()
            .chain(
                self.payload
                    .components
                    .iter()
                    .flat_map(|c| c.components.iter()),
            )
            .any(|c| c.name == "VFREEBUSY");
        let mut reply = self.all_targets();
        match method {
            "REQUEST" if freebusy => {
                let data = itip_calendar("REQUEST", self.payload);
                let outcome = self.gw.free_busy(self.identity, &data).await?;
                reply.status = Some(Status::success());
                reply.components = freebusy_components(&outcome);
            }
            "REQUEST" | "PUBLISH" => {
                let data = itip_calendar(method, self.payload);
                let outcome = self.gw.send_event(self.identity, &data).await?;
                reply.status = Some(Status::new(status::SUCCESS, event_status(&outcome)));
                reply.components.push(sendevent_component(&outcome));
            }
            "REPLY" => {
                let data = itip_calendar("REPLY", self.payload);
                let outcome = self.gw.rsvp(self.identity, &data).await?;
                reply.status = Some(Status::success());
                reply.components.push(rsvp_component(&outcome));
            }
            "ADD" | "CANCEL" => {
                let (status, components) = self.organizer_change(method).await?;
                reply.status = Some(status);
                reply.components = components;
            }
            other => {
                // REFRESH and COUNTER go from an attendee to the organizer, DECLINECOUNTER the
                // other way (RFC 2446 §3.2.6-§3.2.8).
                let to = if other == "DECLINECOUNTER" {
                    "attendee"
                } else {
                    "organizer"
                };
                reply.status = Some(Status::new(
                    status::UNSUPPORTED,
                    format!(
                        "METHOD {other} is not supported: CalDAV scheduling (RFC 6638) has no \
                         way to carry it to the {to}, so nothing was sent"
                    ),
                ));
            }
        }
        Ok(Outcome {
            targets: vec![reply],
        })
    }

    /// ADD or CANCEL from the organizer: the organizer's stored copy is updated (or deleted)
    /// so that the upstream sends the iTIP message (RFC 6638 §3.2.1).
    async fn organizer_change(
        &self,
        method: &str,
    ) -> Result<(Status, Vec<Component>), TranslateError> {
        let objects: Vec<Component> = self
            .payload
            .components
            .iter()
            .flat_map(|c| {
                if c.name == "VCALENDAR" {
                    c.components.clone()
                } else {
                    vec![c.clone()]
                }
            })
            .filter(|c| OBJECT_COMPONENTS.contains(&c.name.as_str()))
            .map(|mut c| {
                self.rewrite_addresses(&mut c);
                c
            })
            .collect();
        let first = objects
            .first()
            .ok_or_else(|| TranslateError::BadInput(format!("{method} carries no event")))?;
        let uid = first
            .value("UID")
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| TranslateError::BadInput(format!("{method} needs the event's UID")))?;
        let (creds, address) = match self.identity {
            Identity::User { creds, address } => (creds, address),
            _ => {
                return Err(TranslateError::AccessDenied(format!(
                    "Log in as the organizer to send {method}"
                )));
            }
        };
        if let Some(org) = first.property("ORGANIZER").and_then(Address::from_line)
            && !org.addr.eq_ignore_ascii_case(address)
        {
            return Err(TranslateError::AccessDenied(format!(
                "Only the organizer ({}) may send {method}",
                org.addr
            )));
        }
        let own = CalId {
            user: creds.user.clone(),
            calendar: None,
        };
        let selection = Selection {
            entries: Entries::Booked,
            component: Some(first.name.clone()),
            uid: Some(uid.clone()),
            start: None,
            end: None,
        };
        let stored = self
            .gw
            .find_objects(self.identity, &own, &selection)
            .await?
            .into_iter()
            // Exact UIDs only: `caldav::CaldavClient::calendar_query` filters the substring
            // matches of RFC 4791 §9.7.5.
            .next()
            .ok_or_else(|| {
                TranslateError::NotFound(format!(
                    "No event with UID {uid} in {address}'s calendar; {method} changes an event \
                     the organizer has sent"
                ))
            })?;
        // The stored copy says who organizes: in an attendee's own copy the change would be
        // taken as the attendee's (a deletion declines, RFC 6638 §3.2.2), not as a CANCEL.
        if let Some(org) = stored_organizer(&stored.calendar)
            && !org.addr.eq_ignore_ascii_case(address)
        {
            return Err(TranslateError::AccessDenied(format!(
                "Only the organizer ({}) may send {method}; {address} is an attendee of {uid}",
                org.addr
            )));
        }
        let now = self.now.clone();
        let bad = |e: super::itip::ItipError| TranslateError::BadInput(e.reason);
        let result = if method == "ADD" {
            let apply = |cal: &Component| -> Result<Option<Component>, TranslateError> {
                super::itip::add_instances(cal, &objects, &now)
                    .map(Some)
                    .map_err(bad)
            };
            self.gw
                .update_object(self.identity, &stored, &apply)
                .await
                .map(|_| ())
        } else {
            // The same as cancelling instances on DELETE; with no RECURRENCE-ID, the event.
            self.delete_instances(&stored, &objects).await
        };
        result?;
        Ok((
            Status::success(),
            vec![object_result(&first.name, &uid, Status::success())],
        ))
    }
}

/// The objects and calendar definitions a CREATE carries.
fn creations(payload: &Payload) -> (Vec<Component>, Vec<&Component>, Vec<&Component>) {
    let mut objects: Vec<Component> = Vec::new();
    let mut calendars = Vec::new();
    let mut timezones = Vec::new();
    for c in &payload.components {
        match c.name.as_str() {
            n if OBJECT_COMPONENTS.contains(&n) => objects.push(c.clone()),
            "VTIMEZONE" => timezones.push(c),
            "VCALENDAR" => {
                let holds_objects = c
                    .components
                    .iter()
                    .any(|i| OBJECT_COMPONENTS.contains(&i.name.as_str()));
                if holds_objects && c.property("RELCALID").is_none() {
                    // An iCalendar object wrapped as such: its objects are the payload.
                    for inner in &c.components {
                        if OBJECT_COMPONENTS.contains(&inner.name.as_str()) {
                            objects.push(inner.clone());
                        } else if inner.name == "VTIMEZONE" {
                            timezones.push(inner);
                        }
                    }
                } else {
                    calendars.push(c);
                }
            }
            _ => {}
        }
    }
    (objects, calendars, timezones)
}

/// The payload's VQUERY, `None` when it has none.
fn one_vquery(payload: &Payload) -> Result<Option<VQuery>, Status> {
    let queries: Vec<&Component> = payload
        .components
        .iter()
        .filter(|c| c.name == "VQUERY")
        .collect();
    match queries.as_slice() {
        [] => Ok(None),
        [one] => query_of(one).map(Some),
        _ => Err(Status::new(
            "3.4",
            "One VQUERY per command, please (send the others in their own SENDDATA)",
        )),
    }
}

/// `2.0` when a query or OLD values selected nothing.
fn none_matched(verb: &str) -> Status {
    Status::new(
        status::SUCCESS,
        format!("Success (no object matched: nothing was {verb})"),
    )
}

/// `2.0` with how many of the selected objects were changed or deleted.
fn tally(done: usize, of: usize, verb: &str) -> Status {
    Status::new(
        status::SUCCESS,
        format!("Success ({done} of {of} matching objects {verb})"),
    )
}

/// The components of the given types in a stored VCALENDAR.
fn components_of<'c>(
    calendar: &'c Component,
    types: &'c [String],
) -> impl Iterator<Item = &'c Component> + 'c {
    calendar
        .components
        .iter()
        .filter(move |c| types.iter().any(|t| t.eq_ignore_ascii_case(&c.name)))
}

/// The ORGANIZER of a stored VCALENDAR's event (its master, else its first instance).
fn stored_organizer(calendar: &Component) -> Option<Address> {
    let instances = || {
        calendar
            .components
            .iter()
            .filter(|c| OBJECT_COMPONENTS.contains(&c.name.as_str()))
    };
    instances()
        .find(|c| c.property("RECURRENCE-ID").is_none())
        .or_else(|| instances().next())
        .and_then(|c| c.property("ORGANIZER"))
        .and_then(Address::from_line)
}

/// The METHOD pseudo-column of a stored entry (spec §3.3 READ): `CREATE` for everything in a
/// calendar collection, booked whatever METHOD its data may carry (RFC 4791 §4.1 forbids one
/// there, yet upstreams store what a client PUTs); a scheduling inbox entry's iTIP METHOD
/// (RFC 6638 §2.2 says it has one; `REQUEST` when it does not).
fn entry_method(entries: Entries, calendar: &Component) -> String {
    match entries {
        Entries::Booked => "CREATE".into(),
        Entries::Scheduled => calendar
            .value("METHOD")
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "REQUEST".into()),
    }
}

/// The name and UID of the first object component of a stored VCALENDAR.
fn identify(calendar: &Component, preferred: &str) -> (String, String) {
    let c = calendar
        .components
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(preferred))
        .or_else(|| {
            calendar
                .components
                .iter()
                .find(|c| OBJECT_COMPONENTS.contains(&c.name.as_str()))
        });
    (
        c.map(|c| c.name.clone())
            .unwrap_or_else(|| preferred.to_owned()),
        c.and_then(|c| c.value("UID"))
            .unwrap_or_default()
            .to_owned(),
    )
}

fn query_of(vquery: &Component) -> Result<VQuery, Status> {
    vquery::from_component(vquery).map_err(Status::from)
}

fn target_status(e: &TargetError) -> Status {
    match e {
        TargetError::Foreign(t) => Status::new("3.1.4", t.clone()),
        TargetError::Invalid(t) => Status::new(status::NOT_FOUND, t.clone()),
    }
}

/// `<name>` with UID and REQUEST-STATUS: one object's result.
fn object_result(name: &str, uid: &str, status: Status) -> Component {
    let mut c = Component::new(if name.is_empty() { "VEVENT" } else { name });
    if !uid.is_empty() {
        c.properties.push(ContentLine::new("UID", uid));
    }
    c.properties.push(status.to_line());
    c
}

/// The objects of a CREATE, grouped by UID (a recurring event's master and overrides are one
/// object resource), with missing UIDs and DTSTAMPs filled in (spec §3.3 GW: only DTSTART is
/// required of the client besides what iCalendar needs).
struct ObjectGroup {
    name: String,
    uid: String,
    components: Vec<Component>,
    error: Option<Status>,
}

fn group_by_uid(objects: Vec<Component>, now: &DateTime) -> Vec<ObjectGroup> {
    let mut groups: Vec<ObjectGroup> = Vec::new();
    for mut c in objects {
        let uid = match c.value("UID").map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => u.to_owned(),
            None => {
                let u = crate::translate::freebusy::generate_uid();
                c.set_property(ContentLine::new("UID", &u));
                u
            }
        };
        if c.property("DTSTAMP").is_none() {
            c.properties.push(now.to_content_line("DTSTAMP"));
        }
        let error = (c.name == "VEVENT" && c.property("DTSTART").is_none())
            .then(|| Status::new("3.11", "A VEVENT needs DTSTART"));
        match groups.iter_mut().find(|g| g.uid == uid && g.name == c.name) {
            Some(g) => {
                if g.error.is_none() {
                    g.error = error;
                }
                g.components.push(c);
            }
            None => groups.push(ObjectGroup {
                name: c.name.clone(),
                uid,
                components: vec![c],
                error,
            }),
        }
    }
    groups
}

fn same_user(a: &str, b: &str, domain: &str) -> bool {
    login_address(a, domain).eq_ignore_ascii_case(&login_address(b, domain))
}

/// A short random id for generated calendar names.
fn short_id() -> String {
    let uid = crate::translate::freebusy::generate_uid();
    uid.trim_start_matches("calgate-")
        .chars()
        .take(12)
        .collect()
}

fn event_status(outcome: &SendEventOutcome) -> &'static str {
    if outcome.written {
        "Success"
    } else {
        "Success (the stored copy was as new or newer)"
    }
}

/// The REQUEST result: the event's UID and SEQUENCE and one REQUEST-STATUS per local attendee
/// (RFC 2446 §3.6 codes).
fn sendevent_component(outcome: &SendEventOutcome) -> Component {
    let mut c = Component::new("VEVENT");
    c.properties.push(ContentLine::new("UID", &outcome.uid));
    c.properties
        .push(ContentLine::new("SEQUENCE", &outcome.sequence.to_string()));
    for d in &outcome.deliveries {
        let s = match &d.status {
            DeliveryStatus::Delivered => Status::success(),
            DeliveryStatus::UnknownUser => Status::new("3.7", "Invalid calendar user"),
            DeliveryStatus::Refused => Status::new("3.8", "No authority"),
            DeliveryStatus::Failed(t) => Status::new("5.1", format!("Could not deliver: {t}")),
            // RFC 5546 §3.6: 1.1 "Sent": the request was sent, its delivery is not known.
            DeliveryStatus::Unknown(t) => {
                Status::new("1.1", format!("Sent; delivery could not be confirmed: {t}"))
            }
        };
        let mut line = s.to_line();
        line.value = format!("{};mailto:{}", line.value, d.address);
        c.properties.push(line);
    }
    c
}

fn rsvp_component(outcome: &RsvpOutcome) -> Component {
    let mut c = Component::new("VEVENT");
    c.properties.push(ContentLine::new("UID", &outcome.uid));
    c.properties.push(
        ContentLine::new("ATTENDEE", &format!("mailto:{}", outcome.responder))
            .with_param("PARTSTAT", &outcome.partstat),
    );
    c.properties.push(Status::success().to_line());
    c
}

/// One VFREEBUSY per user asked about: FREEBUSY lines for those found, a REQUEST-STATUS for
/// the others (3.7 unknown, 3.8 refused, 5.1 failed).
fn freebusy_components(outcome: &FreeBusyOutcome) -> Vec<Component> {
    let mut out = Vec::new();
    let base = |who: &str| {
        let mut c = Component::new("VFREEBUSY");
        c.properties
            .push(ContentLine::new("DTSTART", &outcome.start));
        c.properties.push(ContentLine::new("DTEND", &outcome.end));
        c.properties
            .push(ContentLine::new("ATTENDEE", &format!("mailto:{who}")));
        c
    };
    for f in &outcome.found {
        let mut c = base(&f.address);
        c.properties.extend(f.busy.iter().cloned());
        c.properties.push(Status::success().to_line());
        out.push(c);
    }
    for u in &outcome.not_found {
        let mut c = base(u);
        c.properties
            .push(Status::new("3.7", "Invalid calendar user").to_line());
        out.push(c);
    }
    for u in &outcome.refused {
        let mut c = base(u);
        c.properties
            .push(Status::new("3.8", "No authority").to_line());
        out.push(c);
    }
    for (u, why) in &outcome.failed {
        let mut c = base(u);
        c.properties
            .push(Status::new("5.1", format!("Could not read busy time: {why}")).to_line());
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_grouped_by_uid_and_completed() {
        let now = DateTime::now_utc();
        let master = Component::parse(
            "BEGIN:VEVENT\r\nUID:u1\r\nDTSTART:20300101T100000Z\r\nEND:VEVENT\r\n",
        )
        .unwrap();
        let over = Component::parse(
            "BEGIN:VEVENT\r\nUID:u1\r\nRECURRENCE-ID:20300102T100000Z\r\nDTSTART:20300102T110000Z\r\nEND:VEVENT\r\n",
        )
        .unwrap();
        let no_uid = Component::parse("BEGIN:VTODO\r\nSUMMARY:x\r\nEND:VTODO\r\n").unwrap();
        let no_start = Component::parse("BEGIN:VEVENT\r\nUID:u2\r\nEND:VEVENT\r\n").unwrap();
        let groups = group_by_uid(vec![master, over, no_uid, no_start], &now);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].components.len(), 2);
        assert!(groups[0].error.is_none());
        assert!(groups[1].uid.starts_with("calgate-"));
        assert!(groups[1].components[0].property("DTSTAMP").is_some());
        assert_eq!(groups[2].error.as_ref().map(|s| s.code), Some("3.11"));
    }

    #[test]
    fn booked_entries_are_create_whatever_their_data_says() {
        let with = |method: &str| {
            Component::parse(&format!(
                "BEGIN:VCALENDAR\r\n{method}BEGIN:VEVENT\r\nUID:u\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            ))
            .unwrap()
        };
        let request = with("METHOD:request\r\n");
        let none = with("");
        assert_eq!(entry_method(Entries::Booked, &request), "CREATE");
        assert_eq!(entry_method(Entries::Booked, &none), "CREATE");
        assert_eq!(entry_method(Entries::Scheduled, &request), "REQUEST");
        assert_eq!(
            entry_method(Entries::Scheduled, &with("METHOD:CANCEL\r\n")),
            "CANCEL"
        );
        assert_eq!(entry_method(Entries::Scheduled, &none), "REQUEST");
    }

    #[test]
    fn the_stored_copy_names_the_organizer() {
        let cal = |body: &str| {
            Component::parse(&format!("BEGIN:VCALENDAR\r\n{body}END:VCALENDAR\r\n")).unwrap()
        };
        let master =
            "BEGIN:VEVENT\r\nUID:u\r\nORGANIZER:mailto:Alice@example.com\r\nEND:VEVENT\r\n";
        let over = "BEGIN:VEVENT\r\nUID:u\r\nRECURRENCE-ID:20300101T100000Z\r\n\
                    ORGANIZER:mailto:bob@example.com\r\nEND:VEVENT\r\n";
        let org = |c: &Component| stored_organizer(c).map(|a| a.addr.to_ascii_lowercase());
        assert_eq!(
            org(&cal(&format!("{over}{master}"))).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(org(&cal(over)).as_deref(), Some("bob@example.com"));
        assert_eq!(org(&cal("BEGIN:VEVENT\r\nUID:u\r\nEND:VEVENT\r\n")), None);
    }

    #[test]
    fn users_compare_with_and_without_domain() {
        assert!(same_user("alice", "ALICE@example.com", "example.com"));
        assert!(!same_user("alice", "bob", "example.com"));
    }
}
