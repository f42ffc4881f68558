//! `calgate probe`: what the upstream supports, checked live, for an operator.
//!
//! Everything is observed, nothing assumed: the DAV classes from `OPTIONS`, the scheduling
//! collections from discovery, whether a PUT of a scheduling object returns a `Schedule-Tag`
//! (RFC 6638 §3.2.10; checked with an event whose only attendee is the user, so nobody is
//! invited, and deleted again), and whether a free-busy POST about another user answers 2.0
//! (RFC 6638 §5); that user is `--other`, else one listed next to the user's principal, else
//! the service account. The probe leaves nothing behind in the user's calendar.

use crate::caldav::client::Depth;
use crate::caldav::multistatus::DAV;
use crate::caldav::request::RESOURCETYPE;
use crate::caldav::{CaldavError, Credentials, Discovery, Principal, Recipient, WriteCondition};
use crate::ical::scheduling::{Address, strip_mailto};
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The outcome of one probe.
#[derive(Debug)]
pub struct ProbeReport {
    /// The upstream base URL.
    pub upstream: String,
    /// The principal found for the user.
    pub principal: Arc<Principal>,
    /// Compliance classes from `OPTIONS` on the calendar home.
    pub dav_classes: Vec<String>,
    /// Whether a PUT of a scheduling object returned a Schedule-Tag, or why that is unknown.
    pub schedule_tag: Result<bool, String>,
    /// The free-busy check about another user: the address asked for and the answer.
    pub freebusy_other: Result<(String, Recipient), String>,
    /// The service account check, when one is configured.
    pub service_account: Option<Result<String, String>>,
}

impl ProbeReport {
    /// True when the upstream does server-side (implicit) scheduling.
    pub fn auto_schedule(&self) -> bool {
        self.dav_classes
            .iter()
            .any(|c| c == "calendar-auto-schedule")
    }
}

/// Runs the probe as `creds`; `other` names the user to ask free-busy about (else one is
/// found next to the user's principal).
pub async fn probe(
    discovery: &Discovery,
    creds: &Credentials,
    other: Option<&str>,
    service: Option<&Credentials>,
) -> Result<ProbeReport, CaldavError> {
    let principal = discovery.principal(creds).await?;
    let client = discovery.client();
    let dav_classes = client.options(&principal.home, creds).await?;
    let schedule_tag = schedule_tag_check(discovery, &principal, creds).await;
    let other = match other {
        Some(o) => {
            let o = o.trim();
            Some(strip_mailto(o).map_or(o, str::trim).to_owned())
        }
        None => match find_other_user(discovery, &principal, creds).await {
            Some(found) => Some(found),
            // Servers such as Cyrus list only the caller's own principal; the service account
            // is another real user then.
            None => service.map(|sa| format!("{}@{}", sa.user, discovery.domain())),
        },
    };
    let freebusy_other = match (&other, &principal.outbox) {
        (None, _) => Err("no other user found; name one with --other".to_owned()),
        (Some(_), None) => Err("the principal has no schedule-outbox-URL".to_owned()),
        (Some(addr), Some(outbox)) => {
            let me = principal
                .mail_addresses()
                .into_iter()
                .next()
                .unwrap_or_else(|| format!("{}@{}", creds.user, discovery.domain()));
            let body = freebusy_request(&me, addr);
            match client.post_schedule(outbox, body, creds).await {
                Ok(answers) => answer_for(answers, addr)
                    .map(|r| (addr.clone(), r))
                    .ok_or_else(|| format!("no answer for {addr} in the schedule-response")),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let service_account = match service {
        None => None,
        Some(sa) => Some(match discovery.principal(sa).await {
            Ok(p) => Ok(format!(
                "{}: login ok, outbox {}",
                sa.user,
                p.outbox
                    .as_ref()
                    .map(|u| u.path().to_owned())
                    .unwrap_or_else(|| "none".into())
            )),
            Err(e) => Err(e.to_string()),
        }),
    };
    Ok(ProbeReport {
        upstream: client.base().to_string(),
        principal,
        dav_classes,
        schedule_tag,
        freebusy_other,
        service_account,
    })
}

/// The schedule-response entry for `addr` (the same calendar user, not merely an address
/// ending the same way: `bob@x` is not `jimbob@x`).
fn answer_for(answers: Vec<Recipient>, addr: &str) -> Option<Recipient> {
    let wanted = Address::parse(addr)?;
    answers
        .into_iter()
        .find(|r| Address::parse(&r.recipient).is_some_and(|got| got.same_as(&wanted)))
}

fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{secs}-{nanos}-{}", std::process::id())
}

/// PUTs an event whose only attendee is the user (nobody is invited), reads the Schedule-Tag
/// header, and deletes the event again.
async fn schedule_tag_check(
    discovery: &Discovery,
    principal: &Principal,
    creds: &Credentials,
) -> Result<bool, String> {
    let me = principal
        .mail_addresses()
        .into_iter()
        .next()
        .ok_or("the principal has no mailto: address")?;
    let uid = format!("calgate-probe-{}", stamp());
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calgate//probe//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20300101T000000Z\r\n\
         DTEND:20300101T000100Z\r\nSUMMARY:calgate probe (deleted right away)\r\n\
         ORGANIZER:mailto:{me}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{me}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let client = discovery.client();
    let url = principal
        .default_calendar
        .join(&format!("{uid}.ics"))
        .map_err(|e| e.to_string())?;
    let put = client
        .put(&url, ics, WriteCondition::Create, creds)
        .await
        .map_err(|e| e.to_string())?;
    let got = client.get(&url, creds).await;
    let etag = got.as_ref().ok().and_then(|o| o.etag.clone());
    let deleted = client.delete(&url, etag.as_deref(), creds).await;
    if let Err(e) = deleted {
        return Err(format!(
            "probe event {} could not be deleted: {e}",
            url.path()
        ));
    }
    let on_get = got.map(|o| o.schedule_tag.is_some()).unwrap_or(false);
    Ok(put.schedule_tag.is_some() || on_get)
}

/// Another user next to ours in the principal collection (e.g. `/dav/principals/user/`).
async fn find_other_user(
    discovery: &Discovery,
    principal: &Principal,
    creds: &Credentials,
) -> Option<String> {
    let parent = principal.url.join("../").ok()?;
    let ms = discovery
        .client()
        .propfind(&parent, Depth::One, &[RESOURCETYPE], creds)
        .await
        .ok()?;
    ms.responses
        .iter()
        .filter(|r| r.is_resource_type(DAV, "principal") || r.is_resource_type(DAV, "collection"))
        .filter_map(|r| {
            let seg = r.href.trim_end_matches('/').rsplit('/').next()?.to_owned();
            let parent_seg = parent
                .path()
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("");
            (!seg.is_empty()
                && seg != creds.user
                && seg != parent_seg
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
            .then_some(seg)
        })
        .find(|u| !u.eq_ignore_ascii_case("calgate"))
        .map(|u| format!("{u}@{}", discovery.domain()))
}

fn freebusy_request(organizer: &str, attendee: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calgate//probe//EN\r\nMETHOD:REQUEST\r\n\
         BEGIN:VFREEBUSY\r\nUID:calgate-probe-fb-{}\r\nDTSTAMP:20260101T000000Z\r\n\
         DTSTART:20300101T000000Z\r\nDTEND:20300102T000000Z\r\n\
         ORGANIZER:mailto:{organizer}\r\nATTENDEE:mailto:{attendee}\r\n\
         END:VFREEBUSY\r\nEND:VCALENDAR\r\n",
        stamp()
    )
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.principal;
        let path = |u: &Option<reqwest::Url>| {
            u.as_ref()
                .map(|u| u.path().to_owned())
                .unwrap_or_else(|| "(none)".into())
        };
        writeln!(f, "upstream:              {}", self.upstream)?;
        writeln!(f, "user:                  {}", p.user)?;
        writeln!(f, "principal:             {}", p.url.path())?;
        writeln!(f, "calendar home:         {}", p.home.path())?;
        writeln!(f, "default calendar:      {}", p.default_calendar.path())?;
        writeln!(f, "schedule inbox:        {}", path(&p.inbox))?;
        writeln!(f, "schedule outbox:       {}", path(&p.outbox))?;
        writeln!(f, "addresses:             {}", p.addresses.join(", "))?;
        writeln!(f, "DAV classes:           {}", self.dav_classes.join(", "))?;
        writeln!(
            f,
            "calendar-access:       {}",
            yes_no(self.dav_classes.iter().any(|c| c == "calendar-access"))
        )?;
        writeln!(
            f,
            "calendar-auto-schedule: {}",
            yes_no(self.auto_schedule())
        )?;
        match &self.schedule_tag {
            Ok(true) => writeln!(
                f,
                "Schedule-Tag:          sent (If-Schedule-Tag-Match is used)"
            )?,
            Ok(false) => writeln!(f, "Schedule-Tag:          not sent (If-Match is used)")?,
            Err(e) => writeln!(f, "Schedule-Tag:          unknown: {e}")?,
        }
        match &self.freebusy_other {
            Ok((addr, r)) => {
                let periods = r
                    .calendar_data
                    .as_deref()
                    .map(|d| d.lines().filter(|l| l.starts_with("FREEBUSY")).count())
                    .unwrap_or(0);
                let verdict = if r.status_class() == Some(2) {
                    "works"
                } else {
                    "refused"
                };
                writeln!(
                    f,
                    "free-busy for others:  {verdict}: {addr} answered {} ({periods} FREEBUSY line(s))",
                    r.request_status
                )?;
            }
            Err(e) => writeln!(f, "free-busy for others:  unknown: {e}")?,
        }
        match &self.service_account {
            None => writeln!(f, "service account:       not configured")?,
            Some(Ok(s)) => writeln!(f, "service account:       {s}")?,
            Some(Err(e)) => writeln!(f, "service account:       FAILED: {e}")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_the_whole_address() {
        let r = |who: &str, status: &str| Recipient {
            recipient: who.into(),
            request_status: status.into(),
            calendar_data: None,
        };
        let answers = vec![
            r("mailto:jimbob@example.com", "3.7;Invalid calendar user"),
            r("MAILTO:Bob@Example.COM", "2.0;Success"),
        ];
        let found = answer_for(answers.clone(), "bob@example.com").unwrap();
        assert_eq!(found.request_status, "2.0;Success");
        assert_eq!(
            answer_for(answers.clone(), "jimbob@example.com")
                .unwrap()
                .request_status,
            "3.7;Invalid calendar user"
        );
        assert_eq!(answer_for(answers, "ob@example.com"), None);
    }
}
