//! Busy time of local users (CIP FREEBUSY, cip-00 §2.4 with the request format of spec §7.3
//! #6; CAP VFREEBUSY REQUEST).
//!
//! The request names users and a window, either as bare `ATTENDEE`/`DTSTART`/`DTEND` lines or
//! as a VFREEBUSY block. It becomes one POST of a VFREEBUSY REQUEST to a schedule outbox
//! (RFC 6638 §5): the logged-in user's, or the service account's for peers and anonymous
//! clients where policy allows. Each recipient's `request-status` decides whether their busy
//! periods are returned or they are reported as not found.

use super::{Gateway, Identity, TranslateError};
use crate::caldav::Credentials;
use crate::ical::contentline::ContentLine;
use crate::ical::datetime::{DateOrDateTime, DateTime, Zone};
use crate::ical::scheduling::{Address, first_schedulable};
use crate::ical::vcal10::DEFAULT_PRODID;

/// One user's busy time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFreeBusy {
    /// The user (`bob@example.com`).
    pub address: String,
    /// The FREEBUSY lines the upstream returned (FBTYPE made explicit).
    pub busy: Vec<ContentLine>,
}

/// What FREEBUSY found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FreeBusyOutcome {
    /// Window start, UTC (`19961126T080000Z`).
    pub start: String,
    /// Window end, UTC.
    pub end: String,
    /// Users whose busy time came back, in request order.
    pub found: Vec<UserFreeBusy>,
    /// Users the upstream does not know, and users on other servers.
    pub not_found: Vec<String>,
    /// Users whose busy time the requester may not see (3.8).
    pub refused: Vec<String>,
    /// Users for whom the upstream failed, with its status.
    pub failed: Vec<(String, String)>,
}

/// A parsed free-busy question.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    users: Vec<Address>,
    start: DateTime,
    end: DateTime,
}

fn utc(dt: &DateTime) -> DateTime {
    // Floating times carry no zone; the gateway reads them as UTC (documented in cip.md).
    let mut d = dt.clone();
    if d.zone == Zone::Floating {
        d.zone = Zone::Utc;
    }
    d
}

fn parse_question(data: &str) -> Result<Question, TranslateError> {
    let calendar = super::normalise(data)?;
    let comp = calendar
        .find("VFREEBUSY")
        .or_else(|| first_schedulable(&calendar))
        .ok_or_else(|| TranslateError::BadInput("No free/busy request in the data".into()))?;
    let users: Vec<Address> = comp.attendees().into_iter().map(|a| a.address).collect();
    if users.is_empty() {
        return Err(TranslateError::BadInput(
            "Name at least one user with an ATTENDEE line".into(),
        ));
    }
    let when = |name: &str| -> Result<DateTime, TranslateError> {
        let line = comp
            .property(name)
            .ok_or_else(|| TranslateError::BadInput(format!("{name} is required")))?;
        let value = DateOrDateTime::from_line(line)
            .map_err(|e| TranslateError::BadInput(format!("{name}: {e}")))?;
        let dt = utc(&value.to_date_time());
        if dt.zone != Zone::Utc {
            return Err(TranslateError::BadInput(format!(
                "{name}: give the time in UTC or with an offset"
            )));
        }
        Ok(dt)
    };
    let start = when("DTSTART")?;
    let end = when("DTEND")?;
    if end.unix_seconds() <= start.unix_seconds() {
        return Err(TranslateError::BadInput(
            "DTEND must be after DTSTART".into(),
        ));
    }
    Ok(Question { users, start, end })
}

/// A random UID for gateway-made objects.
pub fn generate_uid() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    let rng = ring::rand::SystemRandom::new();
    if rng.fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable in any useful way; fall back to the clock
        // and process id, which is still unique per request on this host.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("calgate-{nanos:x}-{}", std::process::id());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("calgate-{hex}")
}

impl Gateway {
    /// Answers the free-busy question in `data` for `identity`.
    pub async fn free_busy(
        &self,
        identity: &Identity,
        data: &str,
    ) -> Result<FreeBusyOutcome, TranslateError> {
        let q = parse_question(data)?;
        let creds: &Credentials = match identity {
            Identity::User { creds, .. } => creds,
            Identity::Peer { .. } => self.service_or_denied("Free/busy for a peer server")?,
            Identity::Anonymous if self.policy.anonymous_freebusy => {
                self.service_or_denied("Free/busy without a login")?
            }
            Identity::Anonymous => {
                return Err(TranslateError::AccessDenied(
                    "Log in to ask for free/busy time".into(),
                ));
            }
        };
        let principal = self.discovery.principal(creds).await?;
        let outbox = principal.outbox.clone().ok_or_else(|| {
            TranslateError::AccessDenied("The upstream account has no scheduling outbox".into())
        })?;
        let organizer = principal
            .mail_addresses()
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("{}@{}", creds.user, self.domain()));

        let mut outcome = FreeBusyOutcome {
            start: q.start.to_ical(),
            end: q.end.to_ical(),
            ..FreeBusyOutcome::default()
        };
        let mut local = Vec::new();
        for u in &q.users {
            if !self.is_local(u) {
                outcome.not_found.push(u.addr.clone());
            } else if !local.iter().any(|l: &Address| l.same_as(u)) {
                local.push(u.clone());
            }
        }
        if local.is_empty() {
            return Ok(outcome);
        }
        let mut ics = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{}\r\nMETHOD:REQUEST\r\n\
             BEGIN:VFREEBUSY\r\nUID:{}\r\nDTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\n\
             ORGANIZER:mailto:{organizer}\r\n",
            DEFAULT_PRODID,
            generate_uid(),
            DateTime::now_utc().to_ical(),
            outcome.start,
            outcome.end
        );
        for u in &local {
            ics.push_str(&format!("ATTENDEE:{}\r\n", u.to_uri()));
        }
        ics.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
        let answers = self
            .discovery
            .client()
            .post_schedule(&outbox, ics, creds)
            .await?;
        for u in &local {
            let answer = answers
                .iter()
                .find(|r| Address::parse(&r.recipient).is_some_and(|a| a.same_as(u)));
            let Some(r) = answer else {
                outcome
                    .failed
                    .push((u.addr.clone(), "no answer from the upstream".into()));
                continue;
            };
            match (r.status_class(), r.status_code()) {
                (Some(2), _) => outcome.found.push(UserFreeBusy {
                    address: u.addr.clone(),
                    busy: busy_lines(r.calendar_data.as_deref().unwrap_or("")),
                }),
                (_, "3.7") => outcome.not_found.push(u.addr.clone()),
                (_, "3.8") => outcome.refused.push(u.addr.clone()),
                // Cyrus answers 5.1 for a user it does not host: ask whether the user exists.
                _ => match self.is_unknown_user(u, creds).await {
                    Ok(true) => outcome.not_found.push(u.addr.clone()),
                    _ => outcome
                        .failed
                        .push((u.addr.clone(), r.request_status.clone())),
                },
            }
        }
        Ok(outcome)
    }
}

/// The FREEBUSY lines of a VFREEBUSY reply, with the default FBTYPE=BUSY (RFC 5545 §3.2.9)
/// made explicit for legacy clients.
fn busy_lines(data: &str) -> Vec<ContentLine> {
    let Ok(components) = crate::ical::component::parse_components(data) else {
        return Vec::new();
    };
    let Some(fb) = components.iter().find_map(|c| c.find("VFREEBUSY")) else {
        return Vec::new();
    };
    fb.properties("FREEBUSY")
        .map(|l| {
            let mut l = l.clone();
            if l.param("FBTYPE").is_none() {
                l.set_param("FBTYPE", "BUSY");
            }
            l
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lines_and_vfreebusy_blocks_parse() {
        let q = parse_question(
            "ATTENDEE:bob@example.com\r\nDTSTART:19961126T080000Z\r\nDTEND:19961126T200000Z\r\n",
        )
        .unwrap();
        assert_eq!(q.users.len(), 1);
        assert_eq!(q.users[0].addr, "bob@example.com");
        assert_eq!(q.start.to_ical(), "19961126T080000Z");
        let q = parse_question(
            "BEGIN:VCALENDAR\r\nBEGIN:VFREEBUSY\r\nATTENDEE:mailto:bob@example.com\r\n\
             ATTENDEE:Carol <carol@example.com>\r\nDTSTART:19961126T0300-0500\r\n\
             DTEND:19961126T1500-0500\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n",
        )
        .unwrap();
        assert_eq!(q.users.len(), 2);
        assert_eq!(q.start.to_ical(), "19961126T080000Z");
        assert_eq!(q.end.to_ical(), "19961126T200000Z");
    }

    #[test]
    fn unusable_requests_say_why() {
        for (data, why) in [
            (
                "DTSTART:19961126T080000Z\r\nDTEND:19961126T200000Z\r\n",
                "ATTENDEE",
            ),
            (
                "ATTENDEE:bob@example.com\r\nDTEND:19961126T200000Z\r\n",
                "DTSTART",
            ),
            (
                "ATTENDEE:bob@example.com\r\nDTSTART:19961126T200000Z\r\nDTEND:19961126T080000Z\r\n",
                "after",
            ),
        ] {
            let e = parse_question(data).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn busy_lines_get_fbtype() {
        let lines = busy_lines(
            "BEGIN:VCALENDAR\r\nBEGIN:VFREEBUSY\r\nFREEBUSY:20301202T100000Z/20301202T110000Z\r\n\
             FREEBUSY;FBTYPE=BUSY-TENTATIVE:20301202T120000Z/20301202T130000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n",
        );
        let text: Vec<String> = lines.iter().map(|l| l.to_line()).collect();
        assert_eq!(
            text,
            vec![
                "FREEBUSY;FBTYPE=BUSY:20301202T100000Z/20301202T110000Z",
                "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20301202T120000Z/20301202T130000Z"
            ]
        );
    }

    #[test]
    fn generated_uids_differ() {
        assert_ne!(generate_uid(), generate_uid());
        assert!(generate_uid().starts_with("calgate-"));
    }
}
