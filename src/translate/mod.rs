//! The translation layer: legacy-protocol intents become CalDAV requests.
//!
//! CIP and CAP sessions both call the [`Gateway`]; it alone uses [`crate::caldav`]. It sees
//! typed intents (an event to deliver, a reply to record, a free-busy question) and returns
//! typed outcomes; it never sees wire syntax. The mapping of each intent to CalDAV requests is
//! written down in `protocols/caldav-mapping.md`.
//!
//! - [`login`]: checking credentials (pass-through to the upstream, or peer secrets).
//! - [`sendevent`]: an invitation, by PUT into the organizer's calendar so the upstream's
//!   implicit scheduling (RFC 6638 §3.2) delivers it.
//! - [`rsvp`]: an attendee's answer, by PUT of the attendee's copy with the new PARTSTAT
//!   (RFC 6638 §3.2.2.1).
//! - [`calid`]: calgate's CalIDs (`cap://<server_id>/<user>/<calendar>`), parsed and shown.
//! - [`expand`]: CAP IDENTIFY, CALIDEXPAND and UPNEXPAND (cap-04 §7.1.4, §7.1.8), by PROPFIND
//!   of calendar homes, principals and privilege sets (RFC 4918, RFC 3744).
//! - [`freebusy`]: busy time, by POST of a VFREEBUSY REQUEST to a schedule outbox
//!   (RFC 6638 §5).

pub mod calid;
pub mod expand;
pub mod freebusy;
pub mod login;
pub mod readiness;
pub mod rsvp;
pub mod sendevent;
pub mod store;

use crate::caldav::path::same_collection;
use crate::caldav::{CaldavError, Credentials, Discovery};
use crate::config::{Config, PeerAccount, PolicyConfig};
use crate::ical::component::Component;
use crate::ical::datetime::DateTime;
use crate::ical::scheduling::Address;
use crate::ical::vcal10::NormaliseOptions;
use reqwest::Url;

pub use expand::Expansion;
pub use freebusy::{FreeBusyOutcome, UserFreeBusy};
pub use login::LoginError;
pub use rsvp::RsvpOutcome;
pub use sendevent::SendEventOutcome;

/// Who a session acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Not logged in.
    Anonymous,
    /// A local user, checked against the upstream; the gateway acts with these credentials.
    User {
        /// Upstream credentials.
        creds: Credentials,
        /// The user's calendar address (`alice@example.com`).
        address: String,
    },
    /// A peer server, checked against its shared secret (`[[auth.peers]]`).
    Peer {
        /// The peer's server id (`a.com`).
        id: String,
    },
}

impl Identity {
    /// A short name for logs (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".into(),
            Identity::User { address, .. } => address.clone(),
            Identity::Peer { id } => format!("peer {id}"),
        }
    }
}

/// Why an intent could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The client's data is unusable (the text says why).
    #[error("{0}")]
    BadInput(String),
    /// The identity may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// The object the intent names does not exist upstream.
    #[error("{0}")]
    NotFound(String),
    /// A concurrent change won twice in a row; nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// What the intent would create already exists (a UID in use, a calendar name taken); the
    /// existing object was left untouched.
    #[error("{0}")]
    Exists(String),
    /// The upstream failed; nothing was claimed.
    #[error(transparent)]
    Upstream(#[from] CaldavError),
}

/// What happened to one local attendee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The upstream delivered it (SCHEDULE-STATUS 1.x or 2.x).
    Delivered,
    /// No such local user (3.7).
    UnknownUser,
    /// Refused by the recipient's access control (3.8).
    Refused,
    /// Delivery failed (other statuses, or an upstream error); the text says how.
    Failed(String),
    /// The event was stored, but whether it reached the attendee could not be read (the
    /// upstream went away after the write); the text says why.
    Unknown(String),
}

/// One attendee's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The attendee's address (`bob@example.com`).
    pub address: String,
    /// What happened.
    pub status: DeliveryStatus,
}

/// How a calendar was found by discovery, so that it can be looked up again when the upstream
/// shows the cached answer stale ([`Gateway::retry_if_stale`]).
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    /// The default calendar of these credentials' own principal.
    Own(&'a Credentials),
    /// [`Discovery::calendar_of`] this user, as these credentials address it.
    Of(&'a str, &'a Credentials),
}

/// An error that shows a calendar is gone upstream (404 or 410).
trait Gone {
    fn is_gone(&self) -> bool;
}

impl Gone for CaldavError {
    fn is_gone(&self) -> bool {
        self.is_not_found()
    }
}

impl Gone for TranslateError {
    fn is_gone(&self) -> bool {
        matches!(self, TranslateError::Upstream(e) if e.is_not_found())
    }
}

/// The shared gateway state: discovery (with its client and cache), policy and accounts.
#[derive(Debug)]
pub struct Gateway {
    discovery: Discovery,
    server_id: String,
    service: Option<Credentials>,
    peers: Vec<PeerAccount>,
    policy: PolicyConfig,
}

impl Gateway {
    /// Builds the gateway from its configuration.
    pub fn new(config: &Config) -> Result<Gateway, crate::config::ConfigError> {
        Gateway::with_metrics(config, None)
    }

    /// Builds the gateway; its upstream requests are recorded in `metrics` when given.
    pub fn with_metrics(
        config: &Config,
        metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    ) -> Result<Gateway, crate::config::ConfigError> {
        let mut client = crate::caldav::CaldavClient::from_config(config)?;
        if let Some(m) = metrics {
            client = client.with_metrics(m);
        }
        Ok(Gateway {
            discovery: Discovery::new(client, config),
            server_id: config.gateway.server_id.clone(),
            service: config
                .upstream
                .service_account
                .as_ref()
                .map(|sa| Credentials::new(sa.user.clone(), sa.password.expose().clone())),
            peers: config.auth.peers.clone(),
            policy: config.policy.clone(),
        })
    }

    /// Discovery (and through it, the CalDAV client).
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The calendar domain (lower-case).
    pub fn domain(&self) -> &str {
        self.discovery.domain()
    }

    /// This calendar store's id (`gateway.server_id`), the host part of its CalIDs
    /// (`cap://<server_id>/<user>/<calendar>`, see [`expand`]).
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// The policy in force.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The service account, when configured.
    pub fn service_account(&self) -> Option<&Credentials> {
        self.service.as_ref()
    }

    /// True when `addr` (`bob@example.com`) is at the calendar domain.
    pub fn is_local(&self, addr: &Address) -> bool {
        addr.domain()
            .is_some_and(|d| d.eq_ignore_ascii_case(self.domain()))
    }

    /// Whether the upstream shows, with evidence, that no user has this local address: its
    /// principal answers 404. For answers that are ambiguous on some servers (Cyrus: 1.1 on an
    /// organizer PUT, 5.1 in free-busy, for users it does not host). An address whose principal
    /// exists or cannot be read (DAViCal answers 403 either way) is not unknown.
    pub(crate) async fn is_unknown_user(
        &self,
        addr: &Address,
        creds: &Credentials,
    ) -> Result<bool, CaldavError> {
        Ok(self.discovery.classify(&addr.addr, creds).await?
            == crate::caldav::AddressKind::UnknownLocal)
    }

    /// Runs `op` on `calendar`, found by discovery as `found` says (possibly from its cache).
    /// When the upstream answers 404 (the calendar was removed or renamed since: the cached
    /// discovery is stale), what is cached about its owner is forgotten, the calendar looked up
    /// afresh, and `op` runs once more if that finds a different one; otherwise the 404 stands.
    ///
    /// (`op` takes the URL by value: an `AsyncFn(&Url)` would make the callers' futures
    /// not `Send` for every lifetime, which the session tasks need.)
    async fn retry_if_stale<T, E: Gone, F: Future<Output = Result<T, E>>>(
        &self,
        found: Found<'_>,
        calendar: &Url,
        op: impl Fn(Url) -> F,
    ) -> Result<T, E> {
        let gone = match op(calendar.clone()).await {
            Err(e) if e.is_gone() => e,
            other => return other,
        };
        let (user, fresh) = match found {
            Found::Own(creds) => {
                self.discovery.forget(&creds.user);
                let fresh = self.discovery.principal(creds).await;
                (
                    creds.user.as_str(),
                    fresh.map(|p| p.default_calendar.clone()),
                )
            }
            Found::Of(user, creds) => {
                self.discovery.forget(user);
                (user, self.discovery.calendar_of(user, creds).await)
            }
        };
        match fresh {
            Ok(url) if !same_collection(&url, calendar) => {
                tracing::info!(
                    user,
                    stale = calendar.path(),
                    fresh = url.path(),
                    "calendar moved upstream; retrying there"
                );
                op(url).await
            }
            Ok(_) => Err(gone),
            Err(e) => {
                tracing::debug!(user, error = %e, "rediscovery after a 404 failed");
                Err(gone)
            }
        }
    }

    /// The credentials to act with for work on behalf of `identity` that needs more than its
    /// own rights: the service account, when configured.
    fn service_or_denied(&self, what: &str) -> Result<&Credentials, TranslateError> {
        self.service.as_ref().ok_or_else(|| {
            TranslateError::AccessDenied(format!(
                "{what} needs the gateway's service account, which is not configured"
            ))
        })
    }

    /// The credentials to act with for work done with the session's own rights (the CAP
    /// calendar store, CALIDEXPAND and UPNEXPAND): a logged-in user's, so that the upstream's
    /// access control decides. Anonymous and peer sessions have none and are refused before any
    /// request; the service account is never lent for this.
    ///
    /// `what` is the work refused ("create calendars"). The anonymous text is
    /// "Log in to `<what>` (`<not_done>` for an anonymous session)", `not_done` defaulting to
    /// "not" (CALIDEXPAND passes "`<calid>` was not expanded"); a peer's is "Log in as a user of
    /// `<domain>` to `<what>` (peer `<id>` may not)".
    fn user_creds<'a>(
        &self,
        identity: &'a Identity,
        what: &str,
        not_done: Option<&str>,
    ) -> Result<&'a Credentials, TranslateError> {
        match identity {
            Identity::User { creds, .. } => Ok(creds),
            Identity::Anonymous => Err(TranslateError::AccessDenied(format!(
                "Log in to {what} ({} for an anonymous session)",
                not_done.unwrap_or("not")
            ))),
            Identity::Peer { id } => Err(TranslateError::AccessDenied(format!(
                "Log in as a user of {} to {what} (peer {id} may not)",
                self.domain()
            ))),
        }
    }

    /// The upstream login name for a user named in a CAP command (a CalID's user segment, an
    /// owner): an address as it is, a bare name at the calendar domain
    /// ([`login::login_address`]), mapped with `upstream.login_template`. Not a user of this
    /// calendar store → [`TranslateError::NotFound`].
    fn login_of(&self, user: &str) -> Result<String, TranslateError> {
        let address = login::login_address(user, self.domain());
        self.discovery.login_for(&address).ok_or_else(|| {
            TranslateError::NotFound(format!(
                "{user} is not a user of this calendar store ({})",
                self.domain()
            ))
        })
    }

    /// An upstream error of a request made with the caller's own rights: 401 → their
    /// credentials are no longer accepted ([`Gateway::refused_credentials`]), 403 →
    /// [`TranslateError::AccessDenied`] with `denied`, 404/410 → [`TranslateError::NotFound`]
    /// with `missing` (when the caller gives one), anything else as it is.
    fn refusal(
        &self,
        e: CaldavError,
        creds: &Credentials,
        denied: String,
        missing: Option<String>,
    ) -> TranslateError {
        match (e.status(), missing) {
            (Some(401), _) => self.refused_credentials(e, creds),
            (Some(403), _) => TranslateError::AccessDenied(denied),
            (Some(404 | 410), Some(missing)) => TranslateError::NotFound(missing),
            _ => TranslateError::Upstream(e),
        }
    }
}

/// Normalises client data (vCalendar 1.0 as the drafts write it, or iCalendar 2.0) to an
/// iCalendar VCALENDAR.
pub fn normalise(text: &str) -> Result<Component, TranslateError> {
    crate::ical::vcal10::normalise(text, &NormaliseOptions::new(DateTime::now_utc()))
        .map(|n| {
            if !n.applied.is_empty() {
                tracing::debug!(quirks = ?n.applied, "normalised legacy calendar data");
            }
            n.calendar
        })
        .map_err(|e| TranslateError::BadInput(format!("Not a recognisable event: {e}")))
}

/// A resource name for a UID: safe characters kept, others percent-encoded, long UIDs
/// shortened with a digest so the name stays within path limits.
pub fn resource_name(uid: &str) -> String {
    let mut out = crate::caldav::path::percent_encode(uid, b"-_.@");
    if out.len() > 200 {
        let digest = ring::digest::digest(&ring::digest::SHA256, uid.as_bytes());
        let hex: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out = format!("calgate-{hex}");
    }
    format!("{out}.ics")
}

impl TranslateError {
    /// The `result` label of `calgate_commands_total` for a command that failed with this.
    pub fn command_result(&self) -> crate::metrics::CommandResult {
        use crate::metrics::CommandResult;
        match self {
            TranslateError::BadInput(_) => CommandResult::Invalid,
            TranslateError::AccessDenied(_)
            | TranslateError::NotFound(_)
            | TranslateError::Conflict(_)
            | TranslateError::Exists(_) => CommandResult::Refused,
            TranslateError::Upstream(e) => upstream_result(e),
        }
    }
}

impl LoginError {
    /// The `result` label of `calgate_commands_total` for a failed login.
    pub fn command_result(&self) -> crate::metrics::CommandResult {
        match self {
            LoginError::Refused => crate::metrics::CommandResult::Refused,
            LoginError::Unavailable(e) => upstream_result(e),
        }
    }
}

fn upstream_result(e: &CaldavError) -> crate::metrics::CommandResult {
    match e {
        CaldavError::Transport {
            kind: crate::caldav::TransportKind::Timeout,
            ..
        } => crate::metrics::CommandResult::Timeout,
        _ => crate::metrics::CommandResult::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_safe() {
        assert_eq!(resource_name("4711@a.com"), "4711@a.com.ics");
        assert_eq!(resource_name("a b/c?d"), "a%20b%2Fc%3Fd.ics");
        let long = "x".repeat(300);
        let name = resource_name(&long);
        assert!(name.starts_with("calgate-") && name.len() < 60, "{name}");
        assert_ne!(resource_name(&"y".repeat(300)), name);
    }
}
