//! Delivering an event to its local attendees (CIP SENDEVENT, cip-00 §2.2; CAP iTIP REQUEST).
//!
//! **Local organizer** (the session is logged in as the organizer): the event is PUT into the
//! organizer's default calendar and the upstream's implicit scheduling (RFC 6638 §3.2) delivers
//! it. The organizer's copy is then read back and each local attendee's `SCHEDULE-STATUS`
//! (RFC 6638 §3.2.9) says what happened to them. Nothing is reported that the upstream did not
//! record.
//!
//! **Foreign organizer** (a peer server, or anonymous where policy allows): there is no
//! organizer calendar here, so each local attendee gets an attendee copy in their own default
//! calendar, written with the service account. `SCHEDULE-AGENT=CLIENT` on the ORGANIZER keeps
//! the upstream from trying to schedule on the foreign organizer's behalf (RFC 6638 §7.1).
//!
//! **Versioning** (cip-00 §1.3): an event with the same UID replaces the stored one only when
//! its SEQUENCE is higher, by a conditional PUT (`If-Match` / `If-Schedule-Tag-Match`). The
//! same or a lower SEQUENCE changes nothing, so a replayed SENDEVENT is harmless.

use super::{Delivery, DeliveryStatus, Found, Gateway, Identity, TranslateError, resource_name};
use crate::caldav::{CaldavError, CalendarObject, Credentials, QueryFilter, WriteCondition};
use crate::ical::component::Component;
use crate::ical::scheduling::{Address, ScheduleStatus, first_schedulable};
use reqwest::Url;

/// What SENDEVENT did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendEventOutcome {
    /// The event's UID.
    pub uid: String,
    /// Whether anything was written (false: the stored version was as new or newer).
    pub written: bool,
    /// The SEQUENCE now stored for the event.
    pub sequence: u32,
    /// One entry per local attendee (the organizer excluded).
    pub deliveries: Vec<Delivery>,
}

impl Gateway {
    /// Delivers the event in `data` (vCalendar 1.0 or iCalendar) for `identity`.
    pub async fn send_event(
        &self,
        identity: &Identity,
        data: &str,
    ) -> Result<SendEventOutcome, TranslateError> {
        let mut calendar = super::normalise(data)?;
        let event = first_schedulable(&calendar)
            .ok_or_else(|| TranslateError::BadInput("No event in the data".into()))?;
        if event.name != "VEVENT" {
            return Err(TranslateError::BadInput(format!(
                "SENDEVENT carries events, not {}",
                event.name
            )));
        }
        let uid = event
            .uid()
            .map(str::to_owned)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| TranslateError::BadInput("The event has no UID".into()))?;
        let organizer = event.organizer().ok_or_else(|| {
            TranslateError::BadInput("The event has no organizer (ATTENDEE;ROLE=OWNER)".into())
        })?;
        let local_attendees: Vec<Address> = event
            .attendees()
            .into_iter()
            .map(|a| a.address)
            .filter(|a| self.is_local(a) && !a.same_as(&organizer))
            .collect();

        self.prepare_scheduling(&mut calendar);
        if self.is_local(&organizer) {
            match identity {
                Identity::User { creds, address } if organizer_is(&organizer, address) => {
                    // The upstream schedules only for the calendar's owner: the account the
                    // gateway writes with must be the organizer's own (after a CAP IDENTIFY the
                    // session's address may name someone whose calendar it may merely write).
                    if self.discovery.login_for(&organizer.addr).as_deref()
                        != Some(creds.user.as_str())
                    {
                        return Err(TranslateError::AccessDenied(format!(
                            "Scheduling as {} needs {}'s own login: the calendar server sends \
                             invitations only for the organizer's own account, and this \
                             session is logged in as {}",
                            organizer.addr, organizer.addr, creds.user
                        )));
                    }
                    self.organizer_put(creds, &calendar, &uid, &local_attendees)
                        .await
                }
                _ => Err(TranslateError::AccessDenied(format!(
                    "Only {} may send this event as its organizer",
                    organizer.addr
                ))),
            }
        } else {
            match identity {
                Identity::Peer { id } if domain_of(&organizer).is_some_and(|d| d == *id) => {}
                Identity::Anonymous if self.policy.anonymous_sendevent => {}
                Identity::Peer { id } => {
                    return Err(TranslateError::AccessDenied(format!(
                        "Peer {id} may only send events organized at {id}"
                    )));
                }
                _ => {
                    return Err(TranslateError::AccessDenied(
                        "Events from other servers need a peer login".into(),
                    ));
                }
            }
            let service = self.service_or_denied("Delivering a foreign organizer's event")?;
            self.deliver_foreign(service, &mut calendar, &uid, &local_attendees)
                .await
        }
    }

    /// Readies the event for the upstream, in one pass over its lines:
    /// - every address this gateway does not host, organizer or attendee, gets
    ///   `SCHEDULE-AGENT=CLIENT` (RFC 6638 §7.1): their own servers are reached over CIP, so the
    ///   upstream must neither mail them a second invitation nor schedule for an organizer it
    ///   does not host;
    /// - every attendee without a PARTSTAT gets `NEEDS-ACTION`, RFC 5545's default written out,
    ///   so every copy says it whichever server stores it (DAViCal keeps only what it is given);
    /// - the iTIP `METHOD` (a CAP REQUEST or PUBLISH arrives as `METHOD:REQUEST`, CIP data may
    ///   carry one) goes: a calendar object resource must not have one (RFC 4791 §4.1). Both
    ///   upstreams store it as given otherwise, DAViCal also in the attendees' calendar copies,
    ///   and a stored METHOD makes a booked entry look like a scheduled one.
    fn prepare_scheduling(&self, calendar: &mut Component) {
        calendar.remove_properties("METHOD");
        let Some(event) = crate::ical::scheduling::first_schedulable_mut(calendar) else {
            return;
        };
        for line in &mut event.properties {
            if line.name != "ATTENDEE" && line.name != "ORGANIZER" {
                continue;
            }
            if Address::from_line(line).is_some_and(|a| !self.is_local(&a)) {
                line.set_param("SCHEDULE-AGENT", "CLIENT");
            }
            if line.name == "ATTENDEE" && line.param("PARTSTAT").is_none() {
                line.set_param("PARTSTAT", "NEEDS-ACTION");
            }
        }
    }

    /// Local organizer: PUT into their default calendar, let the upstream schedule, read back.
    /// A default calendar that is gone upstream (404) is looked up again once.
    async fn organizer_put(
        &self,
        creds: &Credentials,
        calendar: &Component,
        uid: &str,
        local_attendees: &[Address],
    ) -> Result<SendEventOutcome, TranslateError> {
        let principal = self.discovery.principal(creds).await?;
        self.retry_if_stale(
            Found::Own(creds),
            &principal.default_calendar,
            |target| async move {
                self.organizer_put_in(&target, creds, calendar, uid, local_attendees)
                    .await
            },
        )
        .await
    }

    /// [`Gateway::organizer_put`] into `target`.
    async fn organizer_put_in(
        &self,
        target: &Url,
        creds: &Credentials,
        calendar: &Component,
        uid: &str,
        local_attendees: &[Address],
    ) -> Result<SendEventOutcome, TranslateError> {
        let client = self.discovery.client();
        let new_seq = first_schedulable(calendar)
            .map(|e| e.sequence())
            .unwrap_or(0);

        // Two rounds at most: a concurrent writer may win once (412), then we re-read.
        for _round in 0..2 {
            let existing = find_by_uid(client, target, uid, creds).await?;
            let result = match &existing {
                Some(obj) => {
                    let stored = parse_stored(obj);
                    let stored_seq = sequence_of(stored.as_ref());
                    if new_seq <= stored_seq {
                        let deliveries =
                            read_deliveries(self, creds, stored.as_ref(), local_attendees, false)
                                .await;
                        return Ok(SendEventOutcome {
                            uid: uid.to_owned(),
                            written: false,
                            sequence: stored_seq,
                            deliveries,
                        });
                    }
                    let cond = WriteCondition::for_object(obj).ok_or_else(|| {
                        TranslateError::Conflict("The stored event has no ETag to update".into())
                    })?;
                    client
                        .put(&obj.url, calendar.to_ics(), cond, creds)
                        .await
                        .map(|_| obj.url.clone())
                }
                None => {
                    let url = target.join(&resource_name(uid)).map_err(|e| {
                        TranslateError::BadInput(format!("UID gives no usable resource name: {e}"))
                    })?;
                    client
                        .put(&url, calendar.to_ics(), WriteCondition::Create, creds)
                        .await
                        .map(|_| url)
                }
            };
            match result {
                Ok(url) => {
                    let deliveries = match client.get(&url, creds).await {
                        Ok(obj) => {
                            let stored = parse_stored(&obj);
                            read_deliveries(self, creds, stored.as_ref(), local_attendees, true)
                                .await
                        }
                        Err(e) => local_attendees
                            .iter()
                            .map(|a| Delivery {
                                address: a.addr.clone(),
                                status: DeliveryStatus::Unknown(format!(
                                    "stored, but its delivery status could not be read: {e}"
                                )),
                            })
                            .collect(),
                    };
                    return Ok(SendEventOutcome {
                        uid: uid.to_owned(),
                        written: true,
                        sequence: new_seq,
                        deliveries,
                    });
                }
                Err(e) if e.is_precondition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TranslateError::Conflict(
            "The event changed upstream while it was being stored; nothing was written".into(),
        ))
    }

    /// Foreign organizer: one attendee copy per local attendee, written by the service account.
    async fn deliver_foreign(
        &self,
        service: &Credentials,
        calendar: &mut Component,
        uid: &str,
        local_attendees: &[Address],
    ) -> Result<SendEventOutcome, TranslateError> {
        let new_seq = first_schedulable(calendar)
            .map(|e| e.sequence())
            .unwrap_or(0);
        let ics = calendar.to_ics();
        let mut deliveries = Vec::new();
        let mut written = false;
        let mut first_error: Option<CaldavError> = None;
        for attendee in local_attendees {
            let status = match self
                .deliver_copy(service, attendee, uid, new_seq, &ics)
                .await
            {
                Ok(Some(status)) => {
                    written |= status == DeliveryStatus::Delivered;
                    status
                }
                Ok(None) => DeliveryStatus::Delivered, // already up to date
                Err(e) => {
                    let text = e.to_string();
                    if first_error.is_none() && e.is_unavailable() {
                        first_error = Some(e);
                    }
                    DeliveryStatus::Failed(text)
                }
            };
            deliveries.push(Delivery {
                address: attendee.addr.clone(),
                status,
            });
        }
        // Nothing delivered at all because the upstream is down: an error, not an outcome.
        if let Some(e) = first_error
            && !deliveries
                .iter()
                .any(|d| d.status == DeliveryStatus::Delivered)
        {
            return Err(e.into());
        }
        Ok(SendEventOutcome {
            uid: uid.to_owned(),
            written,
            sequence: new_seq,
            deliveries,
        })
    }

    /// Writes or updates one attendee copy. `Ok(None)`: the stored copy is as new or newer.
    /// A calendar that is gone upstream (404) is looked up again once.
    async fn deliver_copy(
        &self,
        service: &Credentials,
        attendee: &Address,
        uid: &str,
        new_seq: u32,
        ics: &str,
    ) -> Result<Option<DeliveryStatus>, CaldavError> {
        let (user, calendar) = match self.attendee_calendar(service, attendee).await {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(Some(DeliveryStatus::UnknownUser)),
            // The user's calendar is closed to the service account (no grant, or DAViCal, which
            // answers 403 for users that do not exist as well).
            Err(e) if e.status() == Some(403) => return Ok(Some(DeliveryStatus::Refused)),
            Err(e) => return Err(e),
        };
        self.retry_if_stale(
            Found::Of(&user, service),
            &calendar,
            |calendar| async move { self.copy_into(&calendar, service, uid, new_seq, ics).await },
        )
        .await
    }

    /// [`Gateway::deliver_copy`] into `calendar`.
    async fn copy_into(
        &self,
        calendar: &Url,
        service: &Credentials,
        uid: &str,
        new_seq: u32,
        ics: &str,
    ) -> Result<Option<DeliveryStatus>, CaldavError> {
        let client = self.discovery.client();
        for _round in 0..2 {
            let existing = find_by_uid(client, calendar, uid, service).await;
            let existing = match existing {
                Ok(e) => e,
                Err(e) if e.status() == Some(403) => return Ok(Some(DeliveryStatus::Refused)),
                Err(e) => return Err(e),
            };
            let put = match &existing {
                Some(obj) if new_seq <= sequence_of(parse_stored(obj).as_ref()) => return Ok(None),
                Some(obj) => match WriteCondition::for_object(obj) {
                    Some(cond) => client.put(&obj.url, ics.to_owned(), cond, service).await,
                    // Re-reading would not help: the server sends no validator for it.
                    None => {
                        return Ok(Some(DeliveryStatus::Failed(format!(
                            "the attendee's stored copy {} has neither ETag nor Schedule-Tag, \
                             so it cannot be replaced safely; nothing was written",
                            obj.url.path()
                        ))));
                    }
                },
                None => {
                    let url = match calendar.join(&resource_name(uid)) {
                        Ok(u) => u,
                        Err(e) => return Ok(Some(DeliveryStatus::Failed(e.to_string()))),
                    };
                    client
                        .put(&url, ics.to_owned(), WriteCondition::Create, service)
                        .await
                }
            };
            match put {
                Ok(_) => return Ok(Some(DeliveryStatus::Delivered)),
                Err(e) if e.is_precondition_failed() => continue,
                Err(e) if e.status() == Some(403) => return Ok(Some(DeliveryStatus::Refused)),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(DeliveryStatus::Failed(
            "the attendee's copy kept changing; nothing was written".into(),
        )))
    }

    /// The upstream login name and default calendar of a local attendee, found with the
    /// service account, or `None` when no such user exists upstream.
    pub(crate) async fn attendee_calendar(
        &self,
        service: &Credentials,
        attendee: &Address,
    ) -> Result<Option<(String, Url)>, CaldavError> {
        let Some(user) = self.discovery.login_for(&attendee.addr) else {
            return Ok(None);
        };
        match self.discovery.calendar_of(&user, service).await {
            Ok(url) => Ok(Some((user, url))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn organizer_is(organizer: &Address, address: &str) -> bool {
    organizer.addr.eq_ignore_ascii_case(address)
}

fn domain_of(a: &Address) -> Option<String> {
    a.domain().map(|d| d.to_ascii_lowercase())
}

/// The stored object with this UID in `calendar`, if any.
pub(crate) async fn find_by_uid(
    client: &crate::caldav::CaldavClient,
    calendar: &Url,
    uid: &str,
    creds: &Credentials,
) -> Result<Option<CalendarObject>, CaldavError> {
    let found = client
        .calendar_query(
            calendar,
            &QueryFilter::Uid {
                component: "VEVENT".into(),
                uid: uid.to_owned(),
            },
            creds,
        )
        .await?;
    Ok(found.into_iter().next())
}

/// The VCALENDAR of a stored object, `None` when it does not parse.
pub(super) fn parse_stored(obj: &CalendarObject) -> Option<Component> {
    crate::ical::component::parse_components(&obj.data)
        .ok()?
        .into_iter()
        .find(|c| c.name == "VCALENDAR")
}

fn sequence_of(stored: Option<&Component>) -> u32 {
    stored
        .and_then(|c| first_schedulable(c).map(|e| e.sequence()))
        .unwrap_or(0)
}

/// Each local attendee's fate, from the SCHEDULE-STATUS on the organizer's stored copy.
///
/// 1.2 and 2.x mean delivered, 3.7 unknown, 3.8 refused (RFC 6638 §3.2.9). Cyrus answers an
/// address at the calendar domain that it does not host with 1.1 ("sent", by iMIP mail), so
/// 1.0/1.1 for a local attendee are settled by asking whether the principal exists.
async fn read_deliveries(
    gateway: &Gateway,
    creds: &Credentials,
    stored: Option<&Component>,
    local_attendees: &[Address],
    just_written: bool,
) -> Vec<Delivery> {
    let attendees = stored
        .and_then(|c| first_schedulable(c).map(|e| e.attendees()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for addr in local_attendees {
        let found = attendees.iter().find(|a| a.address.same_as(addr));
        let status = match found.and_then(|a| a.schedule_status.clone()) {
            // Sent or pending (1.0/1.1) rather than delivered (1.2): delivery is on its way to
            // an existing user, unless the user does not exist.
            Some(s) if s.class == 1 && s.code() != "1.2" => {
                match gateway.is_unknown_user(addr, creds).await {
                    Ok(true) => DeliveryStatus::UnknownUser,
                    Ok(false) => DeliveryStatus::Delivered,
                    Err(e) => DeliveryStatus::Failed(format!(
                        "SCHEDULE-STATUS {}; the user could not be checked: {e}",
                        s.code()
                    )),
                }
            }
            Some(s) => status_of(&s),
            // No SCHEDULE-STATUS on a copy stored earlier: the attendee has answered since (the
            // upstream then records their PARTSTAT instead), so they had it. On a copy just
            // written it means the upstream did not schedule it (Cyrus does not for events in
            // the past), whatever PARTSTAT the client put there.
            None => match found.and_then(|a| a.partstat.clone()) {
                Some(p) if !just_written && p != "NEEDS-ACTION" => DeliveryStatus::Delivered,
                _ => DeliveryStatus::Failed("the upstream did not deliver it".into()),
            },
        };
        out.push(Delivery {
            address: addr.addr.clone(),
            status,
        });
    }
    out
}

fn status_of(s: &ScheduleStatus) -> DeliveryStatus {
    if s.is_delivered() {
        DeliveryStatus::Delivered
    } else if s.is_unknown_user() {
        DeliveryStatus::UnknownUser
    } else if s.is_no_authority() {
        DeliveryStatus::Refused
    } else {
        DeliveryStatus::Failed(format!("SCHEDULE-STATUS {}", s.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Gateway {
        let config = crate::config::Config::from_toml(
            "[upstream]\nurl = \"http://127.0.0.1:8008/\"\ndomain = \"example.com\"\n",
            std::path::Path::new("test.toml"),
        )
        .unwrap();
        Gateway::new(&config).unwrap()
    }

    #[test]
    fn scheduling_data_is_readied_for_storing() {
        let mut cal = crate::ical::component::parse_components(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\n\
             BEGIN:VEVENT\r\nUID:u1\r\nDTSTART:20300101T100000Z\r\n\
             ORGANIZER:mailto:alice@example.com\r\n\
             ATTENDEE:mailto:bob@example.com\r\n\
             ATTENDEE;PARTSTAT=ACCEPTED:mailto:zed@other.example\r\n\
             END:VEVENT\r\nEND:VCALENDAR\r\n",
        )
        .unwrap()
        .remove(0);
        gateway().prepare_scheduling(&mut cal);
        // A calendar object resource carries no METHOD (RFC 4791 §4.1).
        assert_eq!(cal.value("METHOD"), None);
        let ev = cal.find("VEVENT").unwrap();
        let attendees: Vec<String> = ev.properties("ATTENDEE").map(|l| l.to_line()).collect();
        assert_eq!(
            attendees,
            [
                "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
                "ATTENDEE;PARTSTAT=ACCEPTED;SCHEDULE-AGENT=CLIENT:mailto:zed@other.example"
            ]
        );
        assert_eq!(
            ev.property("ORGANIZER").unwrap().param("SCHEDULE-AGENT"),
            None
        );
    }
}
