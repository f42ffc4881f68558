//! `calgate-bench load`: throughput and latency of calgate against the same CalDAV requests sent
//! directly to the same upstream (issue #7, BENCHMARKS.md).
//!
//! For each concurrency N and each protocol, rounds alternate between the two modes in the order
//! G D D G (ABBA, so that a slow drift of the upstream, whose calendars grow during the run,
//! weighs on both alike):
//!
//! - **G (gateway)**: N legacy sessions (CIP or CAP, logged in before the clock starts) each run
//!   the protocol's mix in a closed loop: CIP SENDEVENT (two local attendees), RSVP, FREEBUSY;
//!   CAP CREATE, READ, VFREEBUSY.
//! - **D (direct)**: N tasks send the CalDAV requests calgate sends for the same operations
//!   (protocols/caldav-mapping.md) with one shared reqwest client, as a native CalDAV client would.
//!
//! Every answer is checked (an OK, a 2.0 REQUEST-STATUS, the expected number of events or
//! attendees); anything else counts as an error, never as an operation. The gateway's upstream
//! requests per operation are read from its /metrics, the direct ones counted, so the table
//! shows that both sides do the same upstream work.

use crate::Target;
use crate::client::{self, Line};
use crate::gateway::{BoxError, Gateway};
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Concurrency levels (sessions, or direct tasks).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,256")]
    pub n: Vec<usize>,
    /// Seconds per round. Short rounds, many of them: the upstream slows as its calendars grow
    /// during a run, and frequent alternation spreads that drift over both modes alike.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Round pairs per N and protocol, in the order G D, D G, G D, … (6 gives twelve rounds).
    #[arg(long, default_value_t = 6)]
    pub pairs: usize,
    /// Which protocol's mix to run.
    #[arg(long, value_enum, default_value = "both")]
    pub protocol: Which,
    /// Run only these operations of each mix (default: all three), e.g. `--only read`.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<OpArg>,
    /// Sessions log in as bench001…benchNNN (created by `CALGATE_CYRUS_BENCH_USERS=NNN
    /// scripts/upstream reset`) instead of alice, bob and carol, so that N sessions do not all
    /// write into three calendars. Worker k is user k, its attendees users k+1 and k+2.
    #[arg(long, default_value_t = 0)]
    pub bench_users: usize,
    /// The direct client speaks HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    #[arg(long)]
    pub direct_http2: bool,
    /// Worker threads of this tool's runtime (the gateway and the upstream share the machine).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Cip,
    Cap,
    Both,
}

/// An operation as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpArg {
    Sendevent,
    Rsvp,
    Freebusy,
    Create,
    Read,
    Vfreebusy,
}

impl OpArg {
    fn op(self) -> Op {
        match self {
            OpArg::Sendevent => Op::SendEvent,
            OpArg::Rsvp => Op::Rsvp,
            OpArg::Freebusy => Op::FreeBusy,
            OpArg::Create => Op::Create,
            OpArg::Read => Op::Read,
            OpArg::Vfreebusy => Op::VFreeBusy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Protocol {
    Cip,
    Cap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Gateway,
    Direct,
}

/// One operation of a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    SendEvent,
    Rsvp,
    FreeBusy,
    Create,
    Read,
    VFreeBusy,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::SendEvent => "SENDEVENT",
            Op::Rsvp => "RSVP",
            Op::FreeBusy => "FREEBUSY",
            Op::Create => "CREATE",
            Op::Read => "READ",
            Op::VFreeBusy => "VFREEBUSY",
        }
    }
}

impl Protocol {
    fn all(self) -> [Op; 3] {
        match self {
            Protocol::Cip => [Op::SendEvent, Op::Rsvp, Op::FreeBusy],
            Protocol::Cap => [Op::Create, Op::Read, Op::VFreeBusy],
        }
    }
    /// The protocol's operations, restricted to `only` when it is not empty.
    fn mix(self, only: &[OpArg]) -> Vec<Op> {
        self.all()
            .into_iter()
            .filter(|op| only.is_empty() || only.iter().any(|o| o.op() == *op))
            .collect()
    }
    fn name(self) -> &'static str {
        match self {
            Protocol::Cip => "CIP",
            Protocol::Cap => "CAP",
        }
    }
}

/// The users sessions log in as: alice, bob and carol, or `--bench-users` of them.
static USERS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

fn users() -> &'static [&'static str] {
    USERS
        .get()
        .map(Vec::as_slice)
        .unwrap_or(&["alice", "bob", "carol"])
}

/// The users worker 0..n uses (as itself or as an attendee).
fn users_in_play(n: usize) -> &'static [&'static str] {
    let all = users();
    &all[..(n + 2).min(all.len())]
}
const DOMAIN: &str = "example.com";
/// Years the benchmark writes into, none of which the test suite uses (it shares the upstream
/// and uses 2026, 2030-2032 and 2035-2037), all before Cyrus 3.6's 2038 limit: scheduled
/// events (SENDEVENT) and free-busy days, created events (CREATE), the READ window, and the
/// invitations RSVP answers.
const SCHEDULED_YEAR: u32 = 2033;
const CREATED_YEAR: u32 = 2029;
const READ_YEAR: u32 = 2028;
const INVITATION_YEAR: u32 = 2034;
/// Events of the READ window per user.
const READ_EVENTS: usize = 5;

/// What every worker shares: the run's id, the upstream's URLs per user, the direct client.
#[derive(Debug)]
struct Shared {
    run: String,
    base: reqwest::Url,
    calendar_template: String,
    outbox: BTreeMap<&'static str, reqwest::Url>,
    http: reqwest::Client,
    /// The READ window: `[start, end)` holding exactly READ_EVENTS seeded events per user.
    read_window: (String, String),
    /// Invitations to answer, per (mode, worker): (organizer, attendee, UID).
    invitations: BTreeMap<(Mode, usize), (&'static str, &'static str, String)>,
    /// Requests sent by the direct client, per method.
    direct_requests: std::sync::Mutex<BTreeMap<String, f64>>,
}

fn pw(user: &str) -> String {
    format!("{user}pw")
}

/// The user of worker `k` and the other two (its attendees).
fn cast(k: usize) -> (&'static str, &'static str, &'static str) {
    let u = users();
    (u[k % u.len()], u[(k + 1) % u.len()], u[(k + 2) % u.len()])
}

/// A date-time in year `year` for sequence number `seq`: spread over 336 days and 10 hours.
fn when(year: u32, seq: u64, hour_offset: u64) -> (String, String) {
    let month = (seq / 28) % 12 + 1;
    let day = seq % 28 + 1;
    let hour = (seq / 336 + hour_offset) % 10 + 8;
    (
        format!("{year}{month:02}{day:02}T{hour:02}0000Z"),
        format!("{year}{month:02}{day:02}T{hour:02}3000Z"),
    )
}

/// The whole day around `when(year, seq, _)`, for free-busy.
fn day_of(year: u32, seq: u64) -> (String, String) {
    let month = (seq / 28) % 12 + 1;
    let day = seq % 28 + 1;
    (
        format!("{year}{month:02}{day:02}T000000Z"),
        format!("{year}{month:02}{day:02}T235959Z"),
    )
}

impl Shared {
    fn calendar(&self, user: &str) -> reqwest::Url {
        self.base
            .join(&self.calendar_template.replace("{user}", user))
            .expect("calendar template is a path")
    }

    fn resource(&self, user: &str, uid: &str) -> reqwest::Url {
        self.calendar(user)
            .join(&format!("{uid}.ics"))
            .expect("uid is a path segment")
    }

    /// A calendar-query REPORT on `user`'s calendar: its status and the objects found
    /// (calendar data and Schedule-Tag each).
    async fn report(
        &self,
        user: &str,
        query: String,
    ) -> Result<(StatusCode, Vec<(String, Option<String>)>), BoxError> {
        let (st, _, body) = self
            .send(
                user,
                Method::from_bytes(b"REPORT")?,
                self.calendar(user),
                &[
                    ("Depth", "1"),
                    ("Content-Type", "application/xml; charset=utf-8"),
                ],
                Some(query),
            )
            .await?;
        Ok((st, responses(&body)?))
    }

    /// PUT of a new resource `<uid>.ics` in `user`'s calendar, `If-None-Match: *`.
    async fn put_new(
        &self,
        user: &str,
        uid: &str,
        ics: String,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), BoxError> {
        self.send(
            user,
            Method::PUT,
            self.resource(user, uid),
            &[
                ("If-None-Match", "*"),
                ("Content-Type", "text/calendar; charset=utf-8"),
            ],
            Some(ics),
        )
        .await
    }

    async fn send(
        &self,
        user: &str,
        method: Method,
        url: reqwest::Url,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), BoxError> {
        if let Ok(mut m) = self.direct_requests.lock() {
            *m.entry(method.as_str().to_owned()).or_default() += 1.0;
        }
        let mut rb = self
            .http
            .request(method, url)
            .basic_auth(user, Some(pw(user)));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        Ok((status, headers, text))
    }
}

/// iCalendar for an event organized by `org` with the given attendees (none: a plain event).
fn event_ics(
    uid: &str,
    start: &str,
    end: &str,
    org: &str,
    attendees: &[&str],
    summary: &str,
) -> String {
    let mut s = String::with_capacity(600);
    s.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calgate//calgate-bench//EN\r\nBEGIN:VEVENT\r\n");
    let _ = write!(
        s,
        "UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSEQUENCE:1\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n"
    );
    if !attendees.is_empty() {
        let _ = write!(s, "ORGANIZER:mailto:{org}@{DOMAIN}\r\n");
        let _ = write!(
            s,
            "ATTENDEE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{org}@{DOMAIN}\r\n"
        );
        for a in attendees {
            let _ = write!(
                s,
                "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{a}@{DOMAIN}\r\n"
            );
        }
    }
    s.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    s
}

const QUERY_HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"><d:prop><d:getetag/><c:schedule-tag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR">"#;
const QUERY_TAIL: &str = "</c:comp-filter></c:filter></c:calendar-query>";

/// The calendar-query calgate sends for a UID (src/caldav/request.rs).
fn uid_query(uid: &str) -> String {
    format!(
        r#"{QUERY_HEAD}<c:comp-filter name="VEVENT"><c:prop-filter name="UID"><c:text-match collation="i;octet">{uid}</c:text-match></c:prop-filter></c:comp-filter>{QUERY_TAIL}"#
    )
}

/// The calendar-query calgate sends for a time range.
fn range_query(start: &str, end: &str) -> String {
    format!(
        r#"{QUERY_HEAD}<c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/></c:comp-filter>{QUERY_TAIL}"#
    )
}

/// A free-busy request as calgate POSTs it to the outbox (RFC 6638 §5).
fn freebusy_request(uid: &str, org: &str, attendees: &[&str], start: &str, end: &str) -> String {
    let mut s = String::with_capacity(500);
    s.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calgate//calgate-bench//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n");
    let _ = write!(
        s,
        "UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nORGANIZER:mailto:{org}@{DOMAIN}\r\n"
    );
    for a in attendees {
        let _ = write!(s, "ATTENDEE:mailto:{a}@{DOMAIN}\r\n");
    }
    s.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
    s
}

/// The `<response>` elements of a multistatus: (calendar-data, schedule-tag) each.
fn responses(xml: &str) -> Result<Vec<(String, Option<String>)>, BoxError> {
    let doc = roxmltree::Document::parse(xml)?;
    let mut out = Vec::new();
    for r in doc
        .descendants()
        .filter(|n| n.has_tag_name(("DAV:", "response")))
    {
        let text_of = |ns: &str, name: &str| {
            r.descendants()
                .find(|n| n.has_tag_name((ns, name)))
                .and_then(|n| n.text())
                .map(str::to_owned)
        };
        let data = text_of("urn:ietf:params:xml:ns:caldav", "calendar-data").unwrap_or_default();
        let tag = text_of("urn:ietf:params:xml:ns:caldav", "schedule-tag");
        out.push((data, tag));
    }
    Ok(out)
}

/// The request-status of each recipient in a CALDAV:schedule-response.
fn schedule_statuses(xml: &str) -> Result<Vec<String>, BoxError> {
    let doc = roxmltree::Document::parse(xml)?;
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name(("urn:ietf:params:xml:ns:caldav", "request-status")))
        .filter_map(|n| n.text().map(str::to_owned))
        .collect())
}

/// Unfolded iCalendar with `PARTSTAT` set on `attendee`'s ATTENDEE line, as calgate's RSVP
/// does (SCHEDULE-STATUS removed); `None` when the line already says so (calgate then writes
/// nothing).
fn with_partstat(ics: &str, attendee: &str, partstat: &str) -> Option<String> {
    let unfolded = ics.replace("\r\n ", "").replace("\n ", "");
    let needle = format!(":mailto:{attendee}@{DOMAIN}");
    let mut out = String::with_capacity(unfolded.len() + 16);
    for line in unfolded.lines() {
        if line.starts_with("ATTENDEE") && line.to_ascii_lowercase().ends_with(&needle) {
            let (head, value) = line.split_once(":mailto:").unwrap_or((line, ""));
            if head.split(';').any(|p| p == format!("PARTSTAT={partstat}")) {
                return None;
            }
            let params: Vec<&str> = head
                .split(';')
                .filter(|p| !p.starts_with("PARTSTAT=") && !p.starts_with("SCHEDULE-STATUS="))
                .collect();
            let _ = write!(
                out,
                "{};PARTSTAT={partstat}:mailto:{value}\r\n",
                params.join(";")
            );
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    Some(out)
}

/// Runs `futures` with at most `n` in flight; the outputs in the futures' order.
async fn at_most<F: std::future::Future>(
    n: usize,
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(futures)
        .buffered(n)
        .collect()
        .await
}

/// Whether RSVP number `seq` accepts (else it declines): answers alternate, so that every
/// RSVP changes the copy and is written.
fn accepts(seq: u64) -> bool {
    seq.is_multiple_of(2)
}

// ------------------------------------------------------------------------------------------
// The direct CalDAV client: the requests calgate makes for each operation.

async fn direct_op(sh: &Shared, k: usize, seq: u64, op: Op) -> Result<(), BoxError> {
    let (me, a, b) = cast(k);
    match op {
        Op::SendEvent | Op::Create => {
            // REPORT by UID (none found), PUT If-None-Match: *, and for SENDEVENT a GET of the
            // stored copy (its SCHEDULE-STATUS).
            let uid = format!("bench-{}-d-{k}-{seq}", sh.run);
            let (year, attendees): (u32, &[&str]) = if op == Op::SendEvent {
                (SCHEDULED_YEAR, &[a, b])
            } else {
                (CREATED_YEAR, &[])
            };
            let (start, end) = when(year, seq, k as u64);
            let (st, found) = sh.report(me, uid_query(&uid)).await?;
            if st.as_u16() != 207 || !found.is_empty() {
                return Err(format!("REPORT by UID: {st}").into());
            }
            let ics = event_ics(&uid, &start, &end, me, attendees, "Bench event");
            let (st, _, _) = sh.put_new(me, &uid, ics).await?;
            if st != StatusCode::CREATED && st != StatusCode::NO_CONTENT {
                return Err(format!("PUT: {st}").into());
            }
            if op == Op::SendEvent {
                let (st, _, body) = sh
                    .send(me, Method::GET, sh.resource(me, &uid), &[], None)
                    .await?;
                if st != StatusCode::OK
                    || body
                        .replace("\r\n ", "")
                        .matches("SCHEDULE-STATUS=1.2")
                        .count()
                        != 2
                {
                    return Err(format!("GET after PUT: {st}, delivery not confirmed").into());
                }
            }
        }
        Op::Rsvp => {
            let (_, attendee, uid) = &sh.invitations[&(Mode::Direct, k)];
            let partstat = if accepts(seq) { "ACCEPTED" } else { "DECLINED" };
            let (st, found) = sh.report(attendee, uid_query(uid)).await?;
            let [(data, Some(tag))] = found.as_slice() else {
                return Err(format!("REPORT by UID for RSVP: {st}, {} found", found.len()).into());
            };
            // As calgate does: no PUT when the copy already says so.
            let Some(ics) = with_partstat(data, attendee, partstat) else {
                return Ok(());
            };
            let (st, _, _) = sh
                .send(
                    attendee,
                    Method::PUT,
                    sh.resource(attendee, uid),
                    &[
                        ("If-Schedule-Tag-Match", tag.as_str()),
                        ("Content-Type", "text/calendar; charset=utf-8"),
                    ],
                    Some(ics),
                )
                .await?;
            if st != StatusCode::NO_CONTENT && st != StatusCode::CREATED {
                return Err(format!("PUT of the reply: {st}").into());
            }
        }
        Op::FreeBusy | Op::VFreeBusy => {
            let (start, end) = day_of(SCHEDULED_YEAR, seq);
            let uid = format!("bench-fb-{}-d-{k}-{seq}", sh.run);
            let body = freebusy_request(&uid, me, &[a, b], &start, &end);
            let (st, _, resp) = sh
                .send(
                    me,
                    Method::POST,
                    sh.outbox[me].clone(),
                    &[("Content-Type", "text/calendar; charset=utf-8")],
                    Some(body),
                )
                .await?;
            let statuses = schedule_statuses(&resp)?;
            if st != StatusCode::OK
                || statuses.len() != 2
                || !statuses.iter().all(|s| s.starts_with("2.0"))
            {
                return Err(format!("POST to the outbox: {st}, {statuses:?}").into());
            }
        }
        Op::Read => {
            let (start, end) = &sh.read_window;
            let (st, found) = sh.report(me, range_query(start, end)).await?;
            let n = found.len();
            if st.as_u16() != 207 || n != READ_EVENTS {
                return Err(format!("REPORT by time range: {st}, {n} events").into());
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The legacy clients (crate::client).

async fn cip_login(addr: std::net::SocketAddr, user: &str) -> Result<Line, BoxError> {
    client::cip_login(Line::connect(addr, None).await?, user, &pw(user)).await
}

async fn cap_login(addr: std::net::SocketAddr, user: &str) -> Result<Line, BoxError> {
    client::cap_login(Line::connect(addr, None).await?, user, &pw(user)).await
}

async fn senddata(c: &mut Line, body: &str) -> Result<(String, Vec<String>), BoxError> {
    c.send("SENDDATA\r\n").await?;
    let go = c.line().await?;
    if go != "2.0.1" {
        return Err(format!("SENDDATA go-ahead: {go:?}").into());
    }
    c.send(body).await?;
    c.cap_reply().await
}

fn vcap(method: &str, component: &str, cmdid: &str, target: &str, inner: &str) -> String {
    format!(
        "Content-Type: text/calendar; method={method}; component={component}\r\n\r\nBEGIN:VCAP\r\nVERSION:2.0\r\nCMDID:{cmdid}\r\nBEGIN:VCOMMAND\r\nMETHOD:{method}\r\nTARGET:{target}\r\n{inner}END:VCOMMAND\r\nEND:VCAP\r\n.\r\n"
    )
}

async fn gateway_op(sh: &Shared, c: &mut Line, k: usize, seq: u64, op: Op) -> Result<(), BoxError> {
    let (me, a, b) = cast(k);
    match op {
        Op::SendEvent => {
            let uid = format!("bench-{}-g-{k}-{seq}", sh.run);
            let (start, end) = when(SCHEDULED_YEAR, seq, k as u64);
            c.send(&format!(
                "SENDEVENT +\r\nUID:{uid}\r\nSEQUENCE:1\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Bench event\r\nATTENDEE;ROLE=OWNER:{me}@{DOMAIN}\r\nATTENDEE:{a}@{DOMAIN}\r\nATTENDEE:{b}@{DOMAIN}\r\n.\r\n"
            ))
            .await?;
            let (done, info) = c.cip_reply().await?;
            let delivered = info.iter().filter(|l| l.starts_with("* TENTATIVE")).count();
            if !done.starts_with("OK 000") || delivered != 2 {
                return Err(format!("SENDEVENT: {done:?} {info:?}").into());
            }
        }
        Op::Rsvp => {
            let (_, attendee, uid) = &sh.invitations[&(Mode::Gateway, k)];
            let status = if accepts(seq) {
                "CONFIRMED"
            } else {
                "DECLINED"
            };
            c.send(&format!("RSVP +\r\nUID:{uid}\r\nSEQUENCE:1\r\nATTENDEE;STATUS={status}:{attendee}@{DOMAIN}\r\n.\r\n"))
                .await?;
            let (done, info) = c.cip_reply().await?;
            if !done.starts_with("OK 000") {
                return Err(format!("RSVP: {done:?} {info:?}").into());
            }
        }
        Op::FreeBusy => {
            let (start, end) = day_of(SCHEDULED_YEAR, seq);
            c.send(&format!("FREEBUSY +\r\nATTENDEE:{a}@{DOMAIN}\r\nATTENDEE:{b}@{DOMAIN}\r\nDTSTART:{start}\r\nDTEND:{end}\r\n.\r\n"))
                .await?;
            let (done, block) = c.cip_reply().await?;
            let answered = block
                .iter()
                .filter(|l| l.starts_with("BEGIN:VFREEBUSY"))
                .count();
            if !done.starts_with("OK 000") || answered != 2 {
                return Err(format!("FREEBUSY: {done:?}, {answered} VFREEBUSY").into());
            }
        }
        Op::Create => {
            let uid = format!("bench-{}-g-{k}-{seq}", sh.run);
            let (start, end) = when(CREATED_YEAR, seq, k as u64);
            let inner = format!(
                "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Bench event\r\nEND:VEVENT\r\n"
            );
            let (status, data) =
                senddata(c, &vcap("CREATE", "VEVENT", &format!("c{seq}"), me, &inner)).await?;
            let ok = data
                .iter()
                .filter(|l| l.starts_with("REQUEST-STATUS:2.0"))
                .count();
            if !status.starts_with("2.0 ")
                || ok != 1
                || data.iter().any(|l| {
                    l.starts_with("REQUEST-STATUS:") && !l.starts_with("REQUEST-STATUS:2.0")
                })
            {
                return Err(format!("CREATE: {status:?} {data:?}").into());
            }
        }
        Op::Read => {
            let (start, end) = &sh.read_window;
            let inner = format!(
                "BEGIN:VQUERY\r\nQUERY:SELECT * FROM VEVENT WHERE DTSTART >= '{start}' AND DTSTART < '{end}'\r\nEND:VQUERY\r\n"
            );
            let (status, data) =
                senddata(c, &vcap("READ", "VQUERY", &format!("r{seq}"), me, &inner)).await?;
            let events = data.iter().filter(|l| *l == "BEGIN:VEVENT").count();
            if !status.starts_with("2.0 ") || events != READ_EVENTS {
                return Err(format!("READ: {status:?}, {events} events").into());
            }
        }
        Op::VFreeBusy => {
            let (start, end) = day_of(SCHEDULED_YEAR, seq);
            let inner = format!(
                "BEGIN:VFREEBUSY\r\nUID:bench-fb-{}-g-{k}-{seq}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nORGANIZER:mailto:{me}@{DOMAIN}\r\nATTENDEE:mailto:{a}@{DOMAIN}\r\nATTENDEE:mailto:{b}@{DOMAIN}\r\nEND:VFREEBUSY\r\n",
                sh.run
            );
            let (status, data) = senddata(
                c,
                &vcap(
                    "REQUEST",
                    "VFREEBUSY",
                    &format!("f{seq}"),
                    &format!("cap://{DOMAIN}/{a}"),
                    &inner,
                ),
            )
            .await?;
            let answered = data.iter().filter(|l| *l == "BEGIN:VFREEBUSY").count();
            let refused = data
                .iter()
                .any(|l| l.starts_with("REQUEST-STATUS:") && !l.starts_with("REQUEST-STATUS:2.0"));
            if !status.starts_with("2.0 ") || answered != 2 || refused {
                return Err(format!("VFREEBUSY: {status:?} {data:?}").into());
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Rounds.

/// What one round measured.
#[derive(Debug, Default)]
struct Round {
    latencies: Vec<(Op, Duration)>,
    errors: u64,
    first_errors: Vec<String>,
    elapsed: Duration,
    upstream_requests: BTreeMap<String, f64>,
    /// Time the gateway's upstream requests took, in all (from its /metrics).
    upstream_seconds: f64,
    gateway_cpu: Duration,
}

/// Upstream requests so far per method: the gateway's from its /metrics, the direct client's
/// as counted.
fn requests_by_method(
    sh: &Shared,
    gw: &Gateway,
    mode: Mode,
) -> Result<BTreeMap<String, f64>, BoxError> {
    if mode == Mode::Direct {
        return Ok(sh
            .direct_requests
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default());
    }
    let text = gw.metrics()?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("calgate_upstream_request_duration_seconds_count{")
        else {
            continue;
        };
        let method = rest
            .split("method=\"")
            .nth(1)
            .and_then(|m| m.split('"').next())
            .unwrap_or("other")
            .to_owned();
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry(method).or_default() += value;
    }
    Ok(out)
}

/// Seconds the gateway's upstream requests took so far (the histogram's `_sum`).
fn upstream_seconds(gw: &Gateway) -> Result<f64, BoxError> {
    gw.metric_sum("calgate_upstream_request_duration_seconds_sum")
}

#[derive(Debug, Default)]
struct Worker {
    latencies: Vec<(Op, Duration)>,
    errors: u64,
    first_error: Option<String>,
}

const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// One round: who is measured, how many at once, for how long.
#[derive(Debug, Clone)]
struct Spec {
    protocol: Protocol,
    mode: Mode,
    mix: Vec<Op>,
    n: usize,
    seconds: u64,
}

async fn run_round(
    sh: &Arc<Shared>,
    gw: &Gateway,
    spec: &Spec,
    seq_base: &AtomicU64,
) -> Result<Round, BoxError> {
    let Spec {
        protocol,
        mode,
        ref mix,
        n,
        seconds,
    } = *spec;
    // Sessions log in before the clock starts.
    let mut login_errors = Vec::new();
    let mut sessions: Vec<Option<Line>> = Vec::with_capacity(n);
    if mode == Mode::Gateway {
        let logins = (0..n).map(|k| {
            let (me, _, _) = cast(k);
            async move {
                match protocol {
                    Protocol::Cip => cip_login(gw.cip, me).await,
                    Protocol::Cap => cap_login(gw.cap, me).await,
                }
            }
        });
        // At most 64 logins at a time.
        for r in at_most(64, logins).await {
            match r {
                Ok(c) => sessions.push(Some(c)),
                // A failed login is an error of the round, and that worker sits it out.
                Err(e) => {
                    sessions.push(None);
                    login_errors.push(format!("login: {e}"));
                }
            }
        }
    } else {
        sessions.resize_with(n, || None);
    }
    let requests_before = requests_by_method(sh, gw, mode)?;
    let upstream_before = if mode == Mode::Gateway {
        upstream_seconds(gw)?
    } else {
        0.0
    };
    let cpu_before = cpu_time(gw.pid())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(n);
    for (k, session) in sessions.into_iter().enumerate() {
        if mode == Mode::Gateway && session.is_none() {
            continue; // its login failed
        }
        let sh = sh.clone();
        let mix = mix.to_vec();
        let base = seq_base.fetch_add(1_000_000, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let mut w = Worker::default();
            let mut session = session;
            let mut i = k; // workers start at different points of the mix
            let mut seq = base;
            while Instant::now() < deadline {
                let op = mix[i % mix.len()];
                i += 1;
                seq += 1;
                let t = Instant::now();
                let result = match session.as_mut() {
                    Some(c) => {
                        tokio::time::timeout(OP_TIMEOUT, gateway_op(&sh, c, k, seq, op)).await
                    }
                    None => tokio::time::timeout(OP_TIMEOUT, direct_op(&sh, k, seq, op)).await,
                };
                let took = t.elapsed();
                match result {
                    Ok(Ok(())) => w.latencies.push((op, took)),
                    Ok(Err(e)) => {
                        w.errors += 1;
                        w.first_error
                            .get_or_insert_with(|| format!("{} {}: {e}", op.name(), k));
                        if session.is_some() && e.to_string().contains("closed") {
                            break;
                        }
                    }
                    Err(_) => {
                        w.errors += 1;
                        w.first_error
                            .get_or_insert_with(|| format!("{} {k}: no answer in 60 s", op.name()));
                        break; // the session's state is unknown
                    }
                }
            }
            let end = Instant::now();
            if let Some(mut c) = session {
                let _ = c
                    .send(match protocol {
                        Protocol::Cip => "QUIT\r\n",
                        Protocol::Cap => "DISCONNECT\r\n",
                    })
                    .await;
            }
            (w, end)
        }));
    }
    let mut round = Round {
        errors: login_errors.len() as u64,
        first_errors: login_errors.into_iter().take(3).collect(),
        ..Round::default()
    };
    let mut last = start;
    for t in tasks {
        let (w, end) = t.await?;
        last = last.max(end);
        round.latencies.extend(w.latencies);
        round.errors += w.errors;
        if let Some(e) = w.first_error
            && round.first_errors.len() < 3
        {
            round.first_errors.push(e);
        }
    }
    round.elapsed = last - start;
    round.gateway_cpu = cpu_time(gw.pid())?.saturating_sub(cpu_before);
    if mode == Mode::Gateway {
        round.upstream_seconds = upstream_seconds(gw)? - upstream_before;
    }
    for (method, after) in requests_by_method(sh, gw, mode)? {
        let before = requests_before.get(&method).copied().unwrap_or(0.0);
        round.upstream_requests.insert(method, after - before);
    }
    Ok(round)
}

/// User + system CPU time of a process (from /proc/<pid>/stat, in clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after the ')' field 3 (state) is index 0; utime is field 14 → index 11, stime 15 → 12
    let ticks: u64 = fields.get(11).ok_or("bad stat")?.parse::<u64>()?
        + fields.get(12).ok_or("bad stat")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

// ------------------------------------------------------------------------------------------
// Setup.

impl Shared {
    /// `user`'s schedule outbox (RFC 6638 §2.2), from their principal.
    async fn outbox_of(
        &self,
        principal_template: &str,
        user: &str,
    ) -> Result<reqwest::Url, BoxError> {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:schedule-outbox-URL/></d:prop></d:propfind>"#;
        let principal = self
            .base
            .join(&principal_template.replace("{user}", user))?;
        let (_, _, text) = self
            .send(
                user,
                Method::from_bytes(b"PROPFIND")?,
                principal,
                &[
                    ("Depth", "0"),
                    ("Content-Type", "application/xml; charset=utf-8"),
                ],
                Some(body.to_owned()),
            )
            .await?;
        let doc = roxmltree::Document::parse(&text)?;
        let href = doc
            .descendants()
            .find(|n| n.has_tag_name(("urn:ietf:params:xml:ns:caldav", "schedule-outbox-URL")))
            .and_then(|n| n.descendants().find(|h| h.has_tag_name(("DAV:", "href"))))
            .and_then(|h| h.text())
            .ok_or_else(|| format!("no schedule-outbox-URL for {user}: {text}"))?;
        Ok(self.base.join(href)?)
    }
}

/// The READ window of `slot` (minutes since the epoch): (month, day, hour) in READ_YEAR and the
/// hour as `[start, end)`.
fn read_window(slot: u64) -> ((u64, u64, u64), (String, String)) {
    let (month, day, hour) = (
        (slot / 28 / 10) % 12 + 1,
        slot % 28 + 1,
        (slot / 28) % 10 + 8,
    );
    (
        (month, day, hour),
        (
            format!("{READ_YEAR}{month:02}{day:02}T{hour:02}0000Z"),
            format!("{READ_YEAR}{month:02}{day:02}T{:02}0000Z", hour + 1),
        ),
    )
}

async fn setup(args: &Args, max_n: usize) -> Result<Shared, BoxError> {
    calgate::caldav::client::install_crypto_provider();
    // Pooled like calgate's client (upstream.max_idle_connections, 60 s), so that neither side
    // holds more of Cyrus's processes than the other.
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(60));
    if args.direct_http2 {
        builder = builder.http2_prior_knowledge();
    }
    let http = builder.build()?;
    let base = reqwest::Url::parse(&args.target.upstream_url)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let run = format!("{now:x}");
    let mut sh = Shared {
        run,
        base,
        calendar_template: args.target.calendar_template.clone(),
        outbox: BTreeMap::new(),
        http,
        read_window: (String::new(), String::new()),
        invitations: BTreeMap::new(),
        direct_requests: std::sync::Mutex::new(BTreeMap::new()),
    };
    for &u in users_in_play(max_n) {
        let outbox = sh.outbox_of(&args.target.principal_template, u).await?;
        sh.outbox.insert(u, outbox);
    }
    // The READ window: an hour in READ_YEAR that is empty in every user's calendar (earlier runs
    // seeded others), then READ_EVENTS events per user in it.
    let mut slot = now / 60;
    let (month, day, hour) = loop {
        let (at, (start, end)) = read_window(slot);
        let mut empty = true;
        for &u in users_in_play(max_n) {
            empty &= sh.report(u, range_query(&start, &end)).await?.1.is_empty();
        }
        if empty {
            sh.read_window = (start, end);
            break at;
        }
        slot += 1;
    };
    let reads = users_in_play(max_n)
        .iter()
        .flat_map(|&u| (0..READ_EVENTS).map(move |i| (u, i)))
        .map(|(u, i)| {
            let sh = &sh;
            async move {
                let uid = format!("bench-read-{}-{u}-{i}", sh.run);
                let start = format!("{READ_YEAR}{month:02}{day:02}T{hour:02}{:02}00Z", i * 10);
                let end = format!(
                    "{READ_YEAR}{month:02}{day:02}T{hour:02}{:02}00Z",
                    i * 10 + 5
                );
                let (st, _, _) = sh
                    .put_new(u, &uid, event_ics(&uid, &start, &end, u, &[], "Read me"))
                    .await?;
                if !st.is_success() {
                    return Err::<(), BoxError>(
                        format!("seeding the READ window for {u}: {st}").into(),
                    );
                }
                Ok(())
            }
        });
    for r in at_most(8, reads).await {
        r?;
    }
    // One invitation per (mode, worker) for RSVP: organized by the next user, to the worker's.
    let mut invitations = BTreeMap::new();
    for mode in [Mode::Gateway, Mode::Direct] {
        let seeds = (0..max_n).map(|k| {
            let sh = &sh;
            async move {
                let (me, org, _) = cast(k);
                // Cyrus may fail a delivery under load (SCHEDULE-STATUS 5.1): check that the
                // attendee has a copy, else try again with a new UID.
                for attempt in 0..5 {
                    let uid = format!(
                        "bench-rsvp-{}-{}-{k}-{attempt}",
                        sh.run,
                        if mode == Mode::Gateway { "g" } else { "d" }
                    );
                    let (start, end) = when(INVITATION_YEAR, k as u64, 0);
                    let ics = event_ics(&uid, &start, &end, org, &[me], "Please answer");
                    let (st, h, _) = sh.put_new(org, &uid, ics).await?;
                    if !st.is_success() {
                        return Err::<_, BoxError>(
                            format!(
                                "seeding an invitation from {org}: {st} {:?}",
                                h.get("location")
                            )
                            .into(),
                        );
                    }
                    let (st, _, _) = sh
                        .send(me, Method::GET, sh.resource(me, &uid), &[], None)
                        .await?;
                    if st == StatusCode::OK {
                        return Ok(((mode, k), (org, me, uid)));
                    }
                }
                Err(format!("{org}'s invitation never reached {me}").into())
            }
        });
        for r in at_most(4, seeds).await {
            let (key, v) = r?;
            invitations.insert(key, v);
        }
    }
    sh.invitations = invitations;
    if let Ok(mut m) = sh.direct_requests.lock() {
        m.clear();
    }
    Ok(sh)
}

// ------------------------------------------------------------------------------------------
// Report.

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The rounds of one mode, merged.
#[derive(Debug, Default)]
struct Merged {
    ops: usize,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    per_op: BTreeMap<Op, Vec<Duration>>,
    upstream_requests: BTreeMap<String, f64>,
    upstream_seconds: f64,
    gateway_cpu: Duration,
    first_errors: Vec<String>,
}

impl Merged {
    fn add(&mut self, r: Round) {
        self.ops += r.latencies.len();
        self.errors += r.errors;
        self.elapsed += r.elapsed;
        self.upstream_seconds += r.upstream_seconds;
        for (m, v) in r.upstream_requests {
            *self.upstream_requests.entry(m).or_default() += v;
        }
        self.gateway_cpu += r.gateway_cpu;
        for (op, d) in r.latencies {
            self.latencies.push(d);
            self.per_op.entry(op).or_default().push(d);
        }
        for e in r.first_errors {
            if self.first_errors.len() < 3 {
                self.first_errors.push(e);
            }
        }
    }
    fn finish(&mut self) {
        self.latencies.sort();
        for v in self.per_op.values_mut() {
            v.sort();
        }
    }
    /// Upstream requests per attempted operation, in all and per method.
    fn requests_per_op(&self) -> (f64, String) {
        let attempts = (self.ops as f64 + self.errors as f64).max(1.0);
        let total: f64 = self.upstream_requests.values().sum();
        let per: Vec<String> = self
            .upstream_requests
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(m, v)| format!("{m} {:.2}", v / attempts))
            .collect();
        (total / attempts, per.join(", "))
    }
    /// Mean time per operation spent outside upstream requests: the client-to-gateway round
    /// trips and everything calgate does itself (only meaningful without errors).
    fn own_ms_per_op(&self) -> f64 {
        let total: f64 = self.latencies.iter().map(Duration::as_secs_f64).sum();
        (total - self.upstream_seconds) * 1000.0 / (self.ops as f64).max(1.0)
    }
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub fn run(args: Args) -> Result<(), BoxError> {
    if args.bench_users > 0 {
        let names = (1..=args.bench_users)
            .map(|i| &*Box::leak(format!("bench{i:03}").into_boxed_str()))
            .collect();
        let _ = USERS.set(names);
    }
    let max_n = args.n.iter().copied().max().unwrap_or(1);
    let limits = format!(
        "max_connections = {}\nmax_connections_per_ip = {}\nidle_timeout_secs = 900\n",
        max_n * 2 + 64,
        max_n * 2 + 64
    );
    let gw_owned = Gateway::start(&args.target, &limits, "")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let gw = &gw_owned;
    rt.block_on(async move {
        let sh = Arc::new(setup(&args, max_n).await?);
        let protocols: &[Protocol] = match args.protocol {
            Which::Cip => &[Protocol::Cip],
            Which::Cap => &[Protocol::Cap],
            Which::Both => &[Protocol::Cip, Protocol::Cap],
        };
        let seq_base = AtomicU64::new(0);
        // Warm-up (not reported): discovery caches, both connection pools, the upstream.
        for &p in protocols {
            for mode in [Mode::Gateway, Mode::Direct] {
                run_round(&sh, gw, &Spec { protocol: p, mode, mix: p.mix(&args.only), n: 8.min(max_n), seconds: 2 }, &seq_base).await?;
            }
        }
        println!(
            "# calgate-bench load: {} rounds of {} s per N and protocol (G D, D G, …) after an uncounted G D; upstream {}; gateway pid {}\n",
            args.pairs * 2,
            args.seconds,
            args.target.upstream_url,
            gw.pid()
        );
        println!("| protocol | N | calgate ops/s | direct ops/s | ratio | calgate p50/p95/p99 ms | direct p50/p95/p99 ms | added p50 ms | errors G/D | upstream req/op G/D | in-gateway ms/op | gateway CPU ms/op |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut detail = String::new();
        let mut requests = String::new();
        for &p in protocols {
            for &n in &args.n {
                let mut g = Merged::default();
                let mut d = Merged::default();
                // One pair first that is not counted: a higher N makes both sides open new
                // upstream connections, i.e. new Cyrus processes, and the first rounds pay for
                // that (seen: 34 ops/s against 115 afterwards at N = 256).
                for mode in [Mode::Gateway, Mode::Direct] {
                    let r = run_round(&sh, gw, &Spec { protocol: p, mode, mix: p.mix(&args.only), n, seconds: args.seconds }, &seq_base).await?;
                    eprintln!("{} N={n} {:?} (warm-up, not counted): {} ops, {} errors", p.name(), mode, r.latencies.len(), r.errors);
                }
                for pair in 0..args.pairs {
                    let order = if pair % 2 == 0 { [Mode::Gateway, Mode::Direct] } else { [Mode::Direct, Mode::Gateway] };
                    for mode in order {
                        let r = run_round(&sh, gw, &Spec { protocol: p, mode, mix: p.mix(&args.only), n, seconds: args.seconds }, &seq_base).await?;
                        eprintln!(
                            "{} N={n} {:?}: {} ops in {:.1} s, {} errors",
                            p.name(),
                            mode,
                            r.latencies.len(),
                            r.elapsed.as_secs_f64(),
                            r.errors
                        );
                        match mode {
                            Mode::Gateway => g.add(r),
                            Mode::Direct => d.add(r),
                        }
                    }
                }
                g.finish();
                d.finish();
                let ratio = g.ops_per_sec() / d.ops_per_sec().max(1e-9);
                let added = pct(&g.latencies, 0.5).as_secs_f64() - pct(&d.latencies, 0.5).as_secs_f64();
                println!(
                    "| {} | {n} | {:.1} | {:.1} | {:.3} | {}/{}/{} | {}/{}/{} | {:+.2} | {}/{} | {:.2}/{:.2} | {:.2} | {:.2} |",
                    p.name(),
                    g.ops_per_sec(),
                    d.ops_per_sec(),
                    ratio,
                    ms(pct(&g.latencies, 0.5)),
                    ms(pct(&g.latencies, 0.95)),
                    ms(pct(&g.latencies, 0.99)),
                    ms(pct(&d.latencies, 0.5)),
                    ms(pct(&d.latencies, 0.95)),
                    ms(pct(&d.latencies, 0.99)),
                    added * 1000.0,
                    g.errors,
                    d.errors,
                    g.requests_per_op().0,
                    d.requests_per_op().0,
                    g.own_ms_per_op(),
                    g.gateway_cpu.as_secs_f64() * 1000.0 / (g.ops as f64).max(1.0),
                );
                for op in p.mix(&args.only) {
                    let gl = g.per_op.get(&op).map(Vec::as_slice).unwrap_or(&[]);
                    let dl = d.per_op.get(&op).map(Vec::as_slice).unwrap_or(&[]);
                    let _ = writeln!(
                        detail,
                        "| {} | {n} | {} | {} / {} | {} / {} | {} / {} | {:+.2} |",
                        p.name(),
                        op.name(),
                        gl.len(),
                        dl.len(),
                        ms(pct(gl, 0.5)),
                        ms(pct(dl, 0.5)),
                        ms(pct(gl, 0.99)),
                        ms(pct(dl, 0.99)),
                        (pct(gl, 0.5).as_secs_f64() - pct(dl, 0.5).as_secs_f64()) * 1000.0
                    );
                }
                let _ = writeln!(
                    requests,
                    "| {} | {n} | {} | {} |",
                    p.name(),
                    g.requests_per_op().1,
                    d.requests_per_op().1
                );
                for e in g.first_errors.iter().chain(&d.first_errors) {
                    eprintln!("  error: {e}");
                }
            }
        }
        println!("\nPer operation:\n\n| protocol | N | op | count G / D | p50 ms G / D | p99 ms G / D | added p50 ms |\n|---|---|---|---|---|---|---|");
        print!("{detail}");
        println!("\nUpstream requests per operation, by method:\n\n| protocol | N | calgate | direct |\n|---|---|---|---|");
        print!("{requests}");
        Ok::<(), BoxError>(())
    })?;
    drop(gw_owned);
    Ok(())
}
