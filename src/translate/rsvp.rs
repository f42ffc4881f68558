//! Recording an attendee's answer (CIP RSVP, cip-00 §2.3; CAP iTIP REPLY).
//!
//! **Local attendee** (logged in as themselves): their own copy, found by UID in their default
//! calendar, gets the new PARTSTAT and is PUT back under `If-Schedule-Tag-Match` (or `If-Match`);
//! the upstream then sends the iTIP REPLY to the organizer (RFC 6638 §3.2.2.1). This is
//! [`Gateway::update_with`]: a 412 re-reads and re-applies once, a second 412 is a conflict and
//! nothing is written; a copy that already holds the answer is not written again (a repeated
//! RSVP sends nothing).
//!
//! **Foreign attendee** replying to a local organizer's event (a peer, or anonymous where policy
//! allows): the organizer's copy, written with the service account, records that attendee's
//! PARTSTAT.
//!
//! The answer lists the other attendees that have accepted, as the copy that was written shows
//! them (cip-00 §2.3 `CONFIRMED`).

use super::sendevent::{find_by_uid, parse_stored};
use super::store::StoredObject;
use super::{Found, Gateway, Identity, TranslateError};
use crate::caldav::Credentials;
use crate::ical::component::Component;
use crate::ical::scheduling::{Address, first_schedulable, first_schedulable_mut};
use crate::ical::vcal10::responder_status;
use reqwest::Url;

/// What RSVP did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsvpOutcome {
    /// The event's UID.
    pub uid: String,
    /// Who answered.
    pub responder: String,
    /// The PARTSTAT recorded.
    pub partstat: String,
    /// Other attendees whose PARTSTAT is ACCEPTED in the copy as stored now.
    pub confirmed: Vec<String>,
}

impl Gateway {
    /// Records the answer in `data` for `identity`.
    pub async fn rsvp(
        &self,
        identity: &Identity,
        data: &str,
    ) -> Result<RsvpOutcome, TranslateError> {
        let calendar = super::normalise(data)?;
        let event = first_schedulable(&calendar)
            .ok_or_else(|| TranslateError::BadInput("No event in the data".into()))?;
        let uid = event
            .uid()
            .map(str::to_owned)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| TranslateError::BadInput("RSVP needs the event's UID".into()))?;
        // The responder is never the organizer's own line (the normaliser keeps the CIP owner
        // as an ATTENDEE with ROLE=CHAIR). Among the others: the logged-in user's line; for a
        // peer, the one line at its domain; otherwise the one line there is.
        let organizer = event.organizer();
        let candidates: Vec<Address> = event
            .attendees()
            .into_iter()
            .map(|a| a.address)
            .filter(|a| organizer.as_ref().is_none_or(|o| !a.same_as(o)))
            .collect();
        let single = |list: Vec<&Address>| -> Option<Address> {
            match list.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            }
        };
        let responder = match identity {
            Identity::User { address, .. } => candidates
                .iter()
                .find(|a| a.addr.eq_ignore_ascii_case(address))
                .cloned()
                .or_else(|| single(candidates.iter().collect())),
            Identity::Peer { id } => single(
                candidates
                    .iter()
                    .filter(|a| a.domain().is_some_and(|d| d.eq_ignore_ascii_case(id)))
                    .collect(),
            ),
            Identity::Anonymous => single(candidates.iter().collect()),
        }
        .ok_or_else(|| {
            TranslateError::BadInput("RSVP needs exactly one responding ATTENDEE".into())
        })?;
        let partstat = responder_status(event).ok_or_else(|| {
            TranslateError::BadInput(format!("No STATUS given for {}", responder.addr))
        })?;

        if self.is_local(&responder) {
            let Identity::User { creds, address } = identity else {
                return Err(TranslateError::AccessDenied(format!(
                    "Log in as {} to answer for them",
                    responder.addr
                )));
            };
            if !responder.addr.eq_ignore_ascii_case(address) {
                return Err(TranslateError::AccessDenied(format!(
                    "{address} may not answer for {}",
                    responder.addr
                )));
            }
            let principal = self.discovery.principal(creds).await?;
            let (uid, responder, partstat) = (&uid, &responder, &partstat);
            self.retry_if_stale(
                Found::Own(creds),
                &principal.default_calendar,
                |calendar| async move {
                    self.update_partstat(creds, &calendar, uid, responder, partstat)
                        .await
                },
            )
            .await
        } else {
            match identity {
                Identity::Peer { id }
                    if responder
                        .domain()
                        .is_some_and(|d| d.eq_ignore_ascii_case(id)) => {}
                Identity::Anonymous if self.policy.anonymous_rsvp => {}
                _ => {
                    return Err(TranslateError::AccessDenied(format!(
                        "Answers for {} need a login as its server",
                        responder.addr
                    )));
                }
            }
            let service = self.service_or_denied("Recording a foreign attendee's answer")?;
            let organizer = self.local_organizer(event)?;
            let Some((user, calendar)) = self.attendee_calendar(service, &organizer).await? else {
                return Err(TranslateError::NotFound(format!(
                    "No local organizer {} for this event",
                    organizer.addr
                )));
            };
            let (uid, responder, partstat) = (&uid, &responder, &partstat);
            self.retry_if_stale(
                Found::Of(&user, service),
                &calendar,
                |calendar| async move {
                    self.update_partstat(service, &calendar, uid, responder, partstat)
                        .await
                },
            )
            .await
        }
    }

    /// The local organizer of the event the answer is about (from the reply, which must name
    /// one of our users).
    fn local_organizer(&self, event: &Component) -> Result<Address, TranslateError> {
        event
            .organizer()
            .filter(|o| self.is_local(o))
            .ok_or_else(|| {
                TranslateError::BadInput(
                    "A reply from another server must name the local organizer (ORGANIZER or \
                     ATTENDEE;ROLE=OWNER)"
                        .into(),
                )
            })
    }

    /// Sets `responder`'s PARTSTAT on the copy with `uid` in `calendar`
    /// ([`Gateway::update_with`]: conditionally, once more after a 412, not at all when the copy
    /// already holds it).
    async fn update_partstat(
        &self,
        creds: &Credentials,
        calendar: &Url,
        uid: &str,
        responder: &Address,
        partstat: &str,
    ) -> Result<RsvpOutcome, TranslateError> {
        let obj = find_by_uid(self.discovery.client(), calendar, uid, creds)
            .await?
            .ok_or_else(|| TranslateError::NotFound(format!("No event with UID {uid}")))?;
        let object = StoredObject {
            calendar: parse_stored(&obj).ok_or_else(|| {
                TranslateError::Conflict("The stored event cannot be read".into())
            })?,
            url: obj.url,
            etag: obj.etag,
            schedule_tag: obj.schedule_tag,
        };
        let answer = |stored: &Component| {
            let mut stored = stored.clone();
            let event = first_schedulable_mut(&mut stored)
                .ok_or_else(|| TranslateError::Conflict("The stored object has no event".into()))?;
            if !event.set_partstat(responder, partstat) {
                return Err(TranslateError::AccessDenied(format!(
                    "{} is not an attendee of this event",
                    responder.addr
                )));
            }
            Ok(Some(stored))
        };
        let updated = self.update_with(creds, &object, &answer).await?;
        let confirmed = first_schedulable(&updated.calendar)
            .map(|event| {
                event
                    .attendees()
                    .into_iter()
                    .filter(|a| !a.address.same_as(responder))
                    .filter(|a| a.partstat.as_deref() == Some("ACCEPTED"))
                    .map(|a| a.address.addr)
                    .collect()
            })
            .unwrap_or_default();
        Ok(RsvpOutcome {
            uid: uid.to_owned(),
            responder: responder.addr.clone(),
            partstat: partstat.to_owned(),
            confirmed,
        })
    }
}
