//! CAP `IDENTIFY`, `CALIDEXPAND` and `UPNEXPAND` (cap-04 §7.1.8, §7.1.4, §7.1.8.1; the gateway's
//! profile is `shared/spec/cap-cstp.md` §2.6.4–§2.6.6).
//!
//! # CalIDs
//!
//! Their forms are in [`calid`]; a calendar home (`cap://<server_id>/<user>`) expands to its
//! calendars. `<server_id>` is `gateway.server_id`, compared without regard to case (a `:port` is
//! ignored). `<user>` is the upstream login name; a segment with `@` is read as an address and
//! mapped with `upstream.login_template`, one without as the local part of an address at the
//! calendar domain (with the default template `{local}` both are the login name). Segments are
//! shown percent-decoded except for the characters a CAP command argument cannot carry (space,
//! `/`, `%`, `:`, controls, non-ASCII), which stay percent-encoded so that every CalID calgate
//! prints can be sent back as an argument; they are re-encoded when the URL is built.
//!
//! # Whose rights
//!
//! A logged-in user's own credentials are used for every request, so the upstream's access
//! control decides what they may see (403 → access denied). Anonymous and peer sessions are
//! refused: the service account is never used to expand calendars for them.
//!
//! # What the upstreams do (observed, Cyrus 3.6.1 and DAViCal 1.1.12)
//!
//! - The caller's own home lists its calendars with `PROPFIND Depth: 1`.
//! - Another user's home cannot be listed: Cyrus answers 301 to a shared view that does not
//!   exist (`/dav/calendars/user/<caller>/<owner>.(null)`), DAViCal 403. calgate then falls back
//!   to the user's default calendar ([`crate::caldav::Discovery::calendar_of`], with
//!   `upstream.calendar_template`), which the caller may or may not read. Cyrus shows another
//!   user's calendar as `<caller home>/<owner>.<calendar>/` (a 301 from the owner's path); the
//!   CalID keeps the owner's name.
//! - Principals of other users answer 403 on both; an unknown user is 404 on Cyrus but 403 on
//!   DAViCal, so there an unknown user looks like a closed calendar (access denied).
//! - Groups: DAViCal group principals carry `DAV:group-member-set` (RFC 3744 §4.3); Cyrus 3.6
//!   has no group principals over DAV.
//! - `DAV:current-user-privilege-set` (RFC 3744 §5.4): Cyrus reports it to anyone who can read
//!   the calendar (the service account gets `write-content`, not `write`); DAViCal only to
//!   holders of `read-current-user-privilege-set`, so the grant must include it.

use super::calid;
use super::{Gateway, Identity, TranslateError};
use crate::caldav::client::{Depth, HttpResponse, propfind_method};
use crate::caldav::multistatus::{self, CALDAV, CALSERVER, DAV, Multistatus};
use crate::caldav::path::{child_name, percent_decode, same_collection};
use crate::caldav::request::{
    CALENDAR_HOME_SET, CURRENT_USER_PRIVILEGE_SET, GROUP_MEMBER_SET, PropName, RESOURCETYPE,
};
use crate::caldav::{CaldavError, Credentials, Principal};
use reqwest::Url;
use std::collections::HashSet;
use std::sync::Arc;

/// How deeply groups may nest before an expansion is given up (a guard against runaway
/// directories; cycles are skipped separately).
pub const MAX_GROUP_DEPTH: usize = 8;

/// The result of CALIDEXPAND / UPNEXPAND (cap-04 §7.1.4, §7.1.8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// CalIDs, deduplicated, in a stable order: each user's calendars sorted by name, users in
    /// the order the group lists them.
    pub ids: Vec<String>,
    /// More than `max` ids were found; `ids` holds the first `max` (wire: 2.3).
    pub truncated: bool,
}

/// Splits a UPN `user@realm` (cap-02 §2.4.5): exactly one `@`, both sides non-empty, no white
/// space or control characters.
fn split_upn(upn: &str) -> Option<(&str, &str)> {
    let (user, realm) = upn.split_once('@')?;
    let bad = |s: &str| {
        s.is_empty() || s.contains(|c: char| c == '@' || c.is_whitespace() || c.is_control())
    };
    (!bad(user) && !bad(realm)).then_some((user, realm))
}

/// The last non-empty path segment of a URL, percent-decoded.
fn last_segment(url: &Url) -> Option<String> {
    let seg = url.path().trim_end_matches('/').rsplit('/').next()?;
    percent_decode(seg).filter(|s| !s.is_empty())
}

/// True when a privilege lets its holder put events into a calendar (RFC 3744 §3.1, §3.3,
/// §3.9, §3.12): `DAV:write`, `DAV:write-content`, `DAV:bind` or `DAV:all`.
fn grants_write(privilege: &multistatus::Element) -> bool {
    privilege.namespace == DAV
        && matches!(
            privilege.name.as_str(),
            "write" | "write-content" | "bind" | "all"
        )
}

/// A principal as an expansion sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A group (RFC 3744 §4.3): its direct members' principal URLs, in the server's order.
    Group(Vec<Url>),
    /// A user: the CalIDs of their calendars.
    Calendars(Vec<String>),
}

/// What the expansion walk needs from the directory (the upstream, or a fake in unit tests).
trait Directory {
    /// What the principal of `user` at `url` is; `label` names it in error texts.
    async fn visit(&self, user: &str, url: &Url, label: &str) -> Result<Node, TranslateError>;
    /// The login name behind a group member's principal URL.
    async fn member_login(&self, member: &Url) -> Result<String, TranslateError>;
}

/// Collects distinct ids up to `max` (0 = unlimited).
struct Collector {
    ids: Vec<String>,
    seen: HashSet<String>,
    max: usize,
    truncated: bool,
}

impl Collector {
    fn new(max: usize) -> Collector {
        Collector {
            ids: Vec::new(),
            seen: HashSet::new(),
            max,
            truncated: false,
        }
    }

    /// Adds an id unless already present; false once more than `max` distinct ids were seen.
    fn push(&mut self, id: String) -> bool {
        if self.seen.contains(&id) {
            return true;
        }
        if self.max > 0 && self.ids.len() >= self.max {
            self.truncated = true;
            return false;
        }
        self.seen.insert(id.clone());
        self.ids.push(id);
        true
    }

    fn finish(self) -> Expansion {
        Expansion {
            ids: self.ids,
            truncated: self.truncated,
        }
    }
}

/// The key under which a principal counts as visited (its path without a trailing slash).
fn principal_key(url: &Url) -> String {
    url.path().trim_end_matches('/').to_owned()
}

/// Expands a principal into calendars, recursively through groups (depth-first, members in
/// order), skipping principals already visited (cycles, users in several groups) and stopping
/// as soon as more than `max` ids were found. A group nested deeper than [`MAX_GROUP_DEPTH`]
/// fails the expansion: an incomplete expansion counts as a failure (cap-02 §2.4.3).
async fn walk<D: Directory>(
    dir: &D,
    user: &str,
    url: Url,
    label: &str,
    max: usize,
) -> Result<Expansion, TranslateError> {
    let mut out = Collector::new(max);
    let mut visited = HashSet::new();
    let mut stack = vec![(user.to_owned(), url, 0usize)];
    while let Some((user, url, depth)) = stack.pop() {
        if !visited.insert(principal_key(&url)) {
            continue;
        }
        match dir.visit(&user, &url, label).await? {
            Node::Calendars(ids) => {
                for id in ids {
                    if !out.push(id) {
                        return Ok(out.finish());
                    }
                }
            }
            Node::Group(members) => {
                if members.is_empty() {
                    continue;
                }
                if depth >= MAX_GROUP_DEPTH {
                    return Err(TranslateError::Upstream(CaldavError::Discovery {
                        user: user.clone(),
                        detail: format!(
                            "groups in {label} nest more than {MAX_GROUP_DEPTH} levels deep \
                             (at {}); the expansion was given up",
                            url.path()
                        ),
                    }));
                }
                for member in members.into_iter().rev() {
                    let login = dir.member_login(&member).await?;
                    stack.push((login, member, depth + 1));
                }
            }
        }
    }
    Ok(out.finish())
}

/// The upstream as a [`Directory`], seen with one user's credentials.
struct Upstream<'a> {
    gw: &'a Gateway,
    creds: &'a Credentials,
}

impl Directory for Upstream<'_> {
    async fn visit(&self, user: &str, url: &Url, label: &str) -> Result<Node, TranslateError> {
        if user == self.creds.user {
            return Ok(Node::Calendars(self.gw.own_calendars(self.creds).await?));
        }
        match self
            .gw
            .probe_principal(user, url, label, self.creds)
            .await?
        {
            Probe::Group(members) => Ok(Node::Group(members)),
            Probe::User { home } => Ok(Node::Calendars(
                self.gw
                    .calendars_of_other(user, home, label, self.creds)
                    .await?,
            )),
        }
    }

    async fn member_login(&self, member: &Url) -> Result<String, TranslateError> {
        let unmapped = |detail: String| {
            TranslateError::Upstream(CaldavError::Discovery {
                user: member.path().to_owned(),
                detail,
            })
        };
        let login = last_segment(member)
            .ok_or_else(|| unmapped("a group member's principal URL names no user".into()))?;
        let expected = self
            .gw
            .discovery()
            .principal_url_for(&login, self.creds)
            .await?;
        if !same_collection(&expected, member) {
            return Err(unmapped(format!(
                "group member {} is not at the principal URL calgate derives for {login} ({})",
                member.path(),
                expected.path()
            )));
        }
        Ok(login)
    }
}

/// What a principal PROPFIND showed.
enum Probe {
    /// A group with members (RFC 3744 §4.3).
    Group(Vec<Url>),
    /// A user (or an unreadable principal), with the calendar home when it was shown.
    User { home: Option<Url> },
}

impl Gateway {
    /// IDENTIFY `<upn>` (cap-04 §7.1.8; identity model cap-02 §2.4.5, cap-04 §2.4.6): the
    /// identity to act as from now on.
    ///
    /// - Syntax: `user@realm`; `bob@`, `@example.com` and a UPN without `@` are
    ///   [`TranslateError::BadInput`] (wire 9.0). `@` alone (the anonymous UPN) gives up the
    ///   identity: [`Identity::Anonymous`].
    /// - A logged-in user may take any of their own addresses (`calendar-user-address-set`).
    /// - Another local user's UPN only when the upstream shows, in
    ///   `DAV:current-user-privilege-set` (RFC 3744 §5.4) on that user's default calendar, that
    ///   the caller may write it (`write`, `write-content`, `bind` or `all`). The session keeps
    ///   the caller's credentials and takes the UPN as its address.
    /// - Everything else (anonymous or peer sessions, another realm, no write right, an
    ///   unknown user, credentials the upstream no longer accepts) is
    ///   [`TranslateError::AccessDenied`] (wire 6.4); upstream failures are
    ///   [`TranslateError::Upstream`] (wire 8.0).
    pub async fn identify(
        &self,
        current: &Identity,
        upn: &str,
    ) -> Result<Identity, TranslateError> {
        let upn = upn.trim();
        if upn == "@" {
            return Ok(Identity::Anonymous);
        }
        let Some((_, realm)) = split_upn(upn) else {
            let why = if upn.starts_with('@') {
                "names every user of a realm (as in access rights), not one identity"
            } else {
                "is not a UPN"
            };
            return Err(TranslateError::BadInput(format!(
                "{upn} {why}; IDENTIFY needs user@realm"
            )));
        };
        let creds = match current {
            Identity::User { creds, .. } => creds,
            Identity::Anonymous => {
                return Err(TranslateError::AccessDenied(format!(
                    "An anonymous session cannot become {upn}; log in first"
                )));
            }
            Identity::Peer { id } => {
                return Err(TranslateError::AccessDenied(format!(
                    "Peer {id} cannot become {upn}; log in as a user of {}",
                    self.domain()
                )));
            }
        };
        if !realm.eq_ignore_ascii_case(self.domain()) {
            return Err(TranslateError::AccessDenied(format!(
                "{upn} is not at this calendar store's domain ({})",
                self.domain()
            )));
        }
        let address = upn.to_ascii_lowercase();
        let me = self.own_principal(creds).await?;
        let user = self.discovery().login_for(&address);
        if me.has_address(&address) || user.as_deref() == Some(creds.user.as_str()) {
            return Ok(Identity::User {
                creds: creds.clone(),
                address,
            });
        }
        let Some(user) = user else {
            return Err(TranslateError::AccessDenied(format!(
                "{upn} is not a user of this calendar store"
            )));
        };
        let denied = |why: &str| {
            TranslateError::AccessDenied(format!("{} may not act as {upn}: {why}", creds.user))
        };
        let unreadable =
            || denied("the calendar server does not let them see that user's calendar");
        // With `upstream.calendar_template` the one PROPFIND below both finds the calendar
        // (following Cyrus's redirect to its shared view) and reads the privileges.
        let start = match self.discovery().template_calendar(&user) {
            Some(url) => url?,
            None => match self.discovery().calendar_of(&user, creds).await {
                Ok(url) => url,
                Err(e) => {
                    return Err(match e.status() {
                        Some(401) => self.refused_credentials(e, creds),
                        Some(403) => unreadable(),
                        Some(404 | 410) => denied("no such user"),
                        _ => TranslateError::Upstream(e),
                    });
                }
            },
        };
        let (calendar, resp) = self
            .discovery()
            .propfind_following(&start, &[CURRENT_USER_PRIVILEGE_SET], creds)
            .await?;
        match resp.status {
            207 => {}
            403 => return Err(unreadable()),
            404 | 410 => {
                // A calendar found by discovery that is gone: what is cached about the user is
                // stale.
                self.discovery().forget(&user);
                return Err(denied("no such user, or that user has no calendar"));
            }
            _ => return Err(self.status_error(&calendar, resp, creds)),
        }
        let ms = self.discovery().client().parse_propfind(&calendar, &resp)?;
        match ms
            .responses
            .first()
            .and_then(|r| r.current_user_privileges())
        {
            None => Err(denied(
                "the calendar server does not show their privileges on that user's calendar \
                 (DAV:current-user-privilege-set; grant read-current-user-privilege-set)",
            )),
            Some(privileges) if privileges.iter().any(|p| grants_write(p)) => Ok(Identity::User {
                creds: creds.clone(),
                address,
            }),
            Some(_) => Err(denied("they may not write that user's calendar")),
        }
    }

    /// CALIDEXPAND `<calid>` (cap-04 §7.1.4): the calendars a CalID stands for.
    ///
    /// - A calendar home (`cap://<server_id>/<user>`): `PROPFIND Depth: 1` on it, every member
    ///   whose `DAV:resourcetype` has `CALDAV:calendar` (RFC 4791 §4.2), so not the scheduling
    ///   inbox and outbox, nor calendars shared into the home by others (`CS:shared`). For
    ///   another user's home that the upstream will not list, their default calendar. A group
    ///   principal's home expands its members, as in [`Gateway::upn_expand`].
    /// - One calendar (`cap://<server_id>/<user>/<calendar>`): `PROPFIND Depth: 0` on it (same-
    ///   origin redirects followed); a calendar expands to itself ("a single result means a
    ///   plain calendar").
    ///
    /// Errors: not a CalID of this store, no such user or calendar → [`TranslateError::NotFound`]
    /// (wire 2.2); 401/403 or an anonymous or peer session → [`TranslateError::AccessDenied`]
    /// (2.1); anything else → [`TranslateError::Upstream`] (2.4). No partial list is returned with
    /// an error. `max` > 0 truncates (2.3); 0 means unlimited.
    pub async fn calid_expand(
        &self,
        identity: &Identity,
        calid: &str,
        max: usize,
    ) -> Result<Expansion, TranslateError> {
        let creds = self.expanding_creds(identity, calid)?;
        let parts = calid::parse(calid, self.server_id())
            .map_err(|e| TranslateError::NotFound(e.to_string()))?;
        let user = self.login_of(&parts.user)?;
        match parts.calendar {
            None => {
                let url = self.principal_url(&user, creds).await?;
                walk(&Upstream { gw: self, creds }, &user, url, calid.trim(), max).await
            }
            Some(name) => self.expand_one_calendar(&user, &name, creds).await,
        }
    }

    /// UPNEXPAND `<upn>` (cap-04 §7.1.8.1): the CalIDs behind a UPN. A user gives their
    /// calendars (as CALIDEXPAND of their home; any of the caller's own addresses in
    /// `calendar-user-address-set` is the caller); a group principal with `DAV:group-member-set`
    /// (RFC 3744 §4.3) gives its members' calendars, recursively, without duplicates, cycles
    /// skipped, at most [`MAX_GROUP_DEPTH`] levels. A UPN of another realm, a malformed UPN or
    /// an unknown user → [`TranslateError::NotFound`] (2.2); the rest as
    /// [`Gateway::calid_expand`].
    pub async fn upn_expand(
        &self,
        identity: &Identity,
        upn: &str,
        max: usize,
    ) -> Result<Expansion, TranslateError> {
        let upn = upn.trim();
        let creds = self.expanding_creds(identity, upn)?;
        let Some((_, realm)) = split_upn(upn) else {
            return Err(TranslateError::NotFound(format!(
                "{upn} is not a UPN of one user or group (user@realm)"
            )));
        };
        if !realm.eq_ignore_ascii_case(self.domain()) {
            return Err(TranslateError::NotFound(format!(
                "{upn} is not a user of this calendar store ({})",
                self.domain()
            )));
        }
        let me = self.own_principal(creds).await?;
        let user = if me.has_address(upn) {
            creds.user.clone()
        } else {
            self.discovery().login_for(upn).ok_or_else(|| {
                TranslateError::NotFound(format!("{upn} is not a user of this calendar store"))
            })?
        };
        let url = self.principal_url(&user, creds).await?;
        walk(&Upstream { gw: self, creds }, &user, url, upn, max).await
    }

    /// The CalID of a calendar: `cap://<server_id>/<user>/<calendar>`.
    pub fn calid(&self, user: &str, calendar: &str) -> String {
        format!(
            "cap://{}/{}/{}",
            self.server_id(),
            calid::display_segment(user),
            calid::display_segment(calendar)
        )
    }

    /// The credentials an expansion of `what` (a CalID or UPN) runs with: the session's own
    /// ([`Gateway::user_creds`]).
    fn expanding_creds<'a>(
        &self,
        identity: &'a Identity,
        what: &str,
    ) -> Result<&'a Credentials, TranslateError> {
        let not_done = format!("{} was not expanded", what.trim());
        self.user_creds(identity, "expand calendars", Some(&not_done))
    }

    /// The error for a failed look-up of the caller's own principal.
    pub(crate) fn refused_credentials(
        &self,
        e: CaldavError,
        creds: &Credentials,
    ) -> TranslateError {
        if e.is_unauthorized() {
            TranslateError::AccessDenied(format!(
                "The calendar server no longer accepts the credentials of {}",
                creds.user
            ))
        } else {
            TranslateError::Upstream(e)
        }
    }

    /// The caller's own principal (discovery, cached); credentials the upstream refuses are
    /// [`Gateway::refused_credentials`].
    pub(crate) async fn own_principal(
        &self,
        creds: &Credentials,
    ) -> Result<Arc<Principal>, TranslateError> {
        self.discovery()
            .principal(creds)
            .await
            .map_err(|e| self.refused_credentials(e, creds))
    }

    /// The principal URL of `user`: the caller's own from discovery, others' derived.
    async fn principal_url(&self, user: &str, creds: &Credentials) -> Result<Url, TranslateError> {
        if user == creds.user {
            let me = self.own_principal(creds).await?;
            return Ok(me.url.clone());
        }
        Ok(self.discovery().principal_url_for(user, creds).await?)
    }

    /// The calendars in the caller's own home.
    async fn own_calendars(&self, creds: &Credentials) -> Result<Vec<String>, TranslateError> {
        let me = self.own_principal(creds).await?;
        let ms = self
            .discovery()
            .client()
            .propfind(&me.home, Depth::One, &[RESOURCETYPE], creds)
            .await
            .map_err(|e| self.refused_credentials(e, creds))?;
        Ok(self.calendars_in(&creds.user, &me.home, &ms))
    }

    /// The CalIDs of the calendars a home listing shows (direct members typed
    /// `CALDAV:calendar`, not `CS:shared`), sorted.
    fn calendars_in(&self, user: &str, home: &Url, ms: &Multistatus) -> Vec<String> {
        let client = self.discovery().client();
        let mut ids: Vec<String> = ms
            .responses
            .iter()
            .filter(|r| r.is_resource_type(CALDAV, "calendar"))
            .filter(|r| !r.is_resource_type(CALSERVER, "shared"))
            .filter_map(|r| client.resolve(home, &r.href).ok())
            .filter_map(|url| child_name(home, &url))
            .map(|name| self.calid(user, &name))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// PROPFIND Depth 0 on another user's principal: group members, calendar home, or
    /// existence only (403: it exists but the caller may not read it).
    async fn probe_principal(
        &self,
        user: &str,
        url: &Url,
        label: &str,
        creds: &Credentials,
    ) -> Result<Probe, TranslateError> {
        let client = self.discovery().client();
        let props: [PropName; 3] = [RESOURCETYPE, GROUP_MEMBER_SET, CALENDAR_HOME_SET];
        let resp = client.propfind_raw(url, Depth::Zero, &props, creds).await?;
        match resp.status {
            207 => {}
            403 => return Ok(Probe::User { home: None }),
            404 | 410 => {
                return Err(TranslateError::NotFound(format!(
                    "{label}: no user {user} on this calendar store"
                )));
            }
            _ => return Err(self.status_error(url, resp, creds)),
        }
        let ms = client.parse_propfind(url, &resp)?;
        let Some(r) = ms.responses.first() else {
            return Ok(Probe::User { home: None });
        };
        if let Some(set) = r.prop(DAV, "group-member-set")
            && !set.hrefs.is_empty()
        {
            let members = set
                .hrefs
                .iter()
                .map(|h| client.resolve(url, h))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Probe::Group(members));
        }
        let home = r
            .prop(CALDAV, "calendar-home-set")
            .and_then(|p| p.href())
            .map(|h| client.resolve(url, h))
            .transpose()?;
        Ok(Probe::User { home })
    }

    /// A non-207 answer as an error: 401 → the caller's credentials, others → upstream.
    fn status_error(&self, url: &Url, resp: HttpResponse, creds: &Credentials) -> TranslateError {
        match self
            .discovery()
            .client()
            .check(propfind_method(), url, resp)
        {
            Err(e) if e.is_unauthorized() => self.refused_credentials(e, creds),
            Err(e) => TranslateError::Upstream(e),
            Ok(resp) => TranslateError::Upstream(CaldavError::Malformed {
                method: "PROPFIND".into(),
                path: url.path().to_owned(),
                detail: format!("expected 207 Multi-Status, got {}", resp.status),
            }),
        }
    }

    /// Another user's calendar home: the one their principal shows (unless it is the caller's
    /// own, which Cyrus reports once the caller holds rights on the user's calendar), else the
    /// caller's home with the last segment replaced (`/dav/calendars/user/alice/` →
    /// `…/bob/`, `/caldav.php/alice/` → `/caldav.php/bob/`).
    async fn home_of_other(
        &self,
        user: &str,
        shown: Option<Url>,
        creds: &Credentials,
    ) -> Result<Url, TranslateError> {
        let me = self.own_principal(creds).await?;
        if let Some(home) = shown.filter(|h| !me.is_home(h)) {
            return Ok(home);
        }
        let underivable = |detail: String| {
            TranslateError::Upstream(CaldavError::Discovery {
                user: user.to_owned(),
                detail,
            })
        };
        if last_segment(&me.home).as_deref() != Some(creds.user.as_str()) {
            return Err(underivable(format!(
                "cannot derive {user}'s calendar home from {}'s ({})",
                creds.user,
                me.home.path()
            )));
        }
        let mut home = me.home.clone();
        home.path_segments_mut()
            .map_err(|()| underivable(format!("{} cannot have path segments", me.home)))?
            .pop_if_empty()
            .pop()
            .push(user)
            .push("");
        Ok(home)
    }

    /// The calendars of another user as the caller may see them: a listing of their home when
    /// the upstream allows it, else their default calendar (Cyrus and DAViCal refuse to list
    /// other users' homes, see the module documentation).
    async fn calendars_of_other(
        &self,
        user: &str,
        shown_home: Option<Url>,
        label: &str,
        creds: &Credentials,
    ) -> Result<Vec<String>, TranslateError> {
        let home = self.home_of_other(user, shown_home, creds).await?;
        let client = self.discovery().client();
        let resp = client
            .propfind_raw(&home, Depth::One, &[RESOURCETYPE], creds)
            .await?;
        match resp.status {
            207 => {
                let ms = client.parse_propfind(&home, &resp)?;
                return Ok(self.calendars_in(user, &home, &ms));
            }
            301 | 302 | 303 | 307 | 308 | 401 | 403 | 404 | 410 => {}
            _ => return Err(self.status_error(&home, resp, creds)),
        }
        match self.discovery().calendar_of(user, creds).await {
            Ok(url) => Ok(vec![self.calid(user, &owner_side_name(user, &home, &url))]),
            Err(e) => {
                let denied = format!(
                    "{label}: the calendar server does not let {} see {user}'s calendars",
                    creds.user
                );
                let missing = format!("{label}: {user} has no calendar on this calendar store");
                Err(self.refusal(e, creds, denied, Some(missing)))
            }
        }
    }

    /// CALIDEXPAND of one calendar: it expands to itself when it is a calendar.
    async fn expand_one_calendar(
        &self,
        user: &str,
        name: &str,
        creds: &Credentials,
    ) -> Result<Expansion, TranslateError> {
        self.named_calendar(user, name, creds).await?;
        Ok(Expansion {
            ids: vec![self.calid(user, name)],
            truncated: false,
        })
    }

    /// The URL of `user`'s collection `name` as the caller reaches it, not checked:
    /// `<home>/<name>/`, the home from [`Gateway::home_as_reached`] (error texts name the
    /// request by the calendar's CalID), the name percent-encoded as one segment. No such user
    /// → [`TranslateError::NotFound`].
    pub(crate) async fn child_as_reached(
        &self,
        user: &str,
        name: &str,
        creds: &Credentials,
    ) -> Result<Url, TranslateError> {
        let home = self
            .home_as_reached(user, &self.calid(user, name), creds)
            .await?;
        child_collection(&home, name, user)
    }

    /// The calendar home of `user` as the caller reaches it: the caller's own from discovery;
    /// another user's as their principal shows it (PROPFIND Depth 0, see
    /// [`Gateway::home_of_other`]), else derived from the caller's. `label` names the request
    /// in error texts. No such user → [`TranslateError::NotFound`].
    async fn home_as_reached(
        &self,
        user: &str,
        label: &str,
        creds: &Credentials,
    ) -> Result<Url, TranslateError> {
        if user == creds.user {
            return Ok(self.own_principal(creds).await?.home.clone());
        }
        let url = self.principal_url(user, creds).await?;
        let shown = match self.probe_principal(user, &url, label, creds).await? {
            Probe::User { home } => home,
            Probe::Group(_) => None,
        };
        self.home_of_other(user, shown, creds).await
    }

    /// The URL of `user`'s calendar `name` as the caller reaches it: `<home>/<name>/`
    /// ([`Gateway::child_as_reached`]), checked
    /// with `PROPFIND Depth: 0` of `DAV:resourcetype`, following same-origin redirects (Cyrus
    /// answers another user's calendar with a 301 to `<caller home>/<owner>.<name>/`, which is
    /// then the URL to use). It must be a `CALDAV:calendar` (RFC 4791 §4.2).
    ///
    /// 401/403 → [`TranslateError::AccessDenied`]; 404/410, or a collection of another kind
    /// (a scheduling inbox) → [`TranslateError::NotFound`].
    pub(crate) async fn named_calendar(
        &self,
        user: &str,
        name: &str,
        creds: &Credentials,
    ) -> Result<Url, TranslateError> {
        let id = self.calid(user, name);
        let url = self.child_as_reached(user, name, creds).await?;
        let (url, resp) = self
            .discovery()
            .propfind_following(&url, &[RESOURCETYPE], creds)
            .await?;
        match resp.status {
            207 => {}
            401 | 403 => {
                return Err(TranslateError::AccessDenied(format!(
                    "The calendar server does not let {} see {id}",
                    creds.user
                )));
            }
            404 | 410 => {
                return Err(TranslateError::NotFound(format!(
                    "No calendar {id} on this calendar store"
                )));
            }
            _ => return Err(self.status_error(&url, resp, creds)),
        }
        let ms = self.discovery().client().parse_propfind(&url, &resp)?;
        let is_calendar = ms
            .responses
            .first()
            .is_some_and(|r| r.is_resource_type(CALDAV, "calendar"));
        if !is_calendar {
            return Err(TranslateError::NotFound(format!(
                "{id} is not a calendar (a collection of another kind, such as a scheduling inbox)"
            )));
        }
        Ok(url)
    }
}

/// The collection `name` directly below `user`'s `home`: `<home>/<name>/`, the name
/// percent-encoded as one path segment. A `home` that cannot have path segments is a discovery
/// failure for `user`.
fn child_collection(home: &Url, name: &str, user: &str) -> Result<Url, TranslateError> {
    let mut url = home.clone();
    url.path_segments_mut()
        .map_err(|()| {
            TranslateError::Upstream(CaldavError::Discovery {
                user: user.to_owned(),
                detail: format!("{home} cannot have path segments"),
            })
        })?
        .pop_if_empty()
        .push(name)
        .push("");
    Ok(url)
}

/// The owner's name of a calendar found at `url`: the segment below the owner's `home` when it
/// is there, else the last segment without Cyrus's `<owner>.` prefix (its shared view of
/// another user's calendar is `<caller home>/<owner>.<calendar>/`).
fn owner_side_name(user: &str, home: &Url, url: &Url) -> String {
    if let Some(name) = child_name(home, url) {
        return name;
    }
    let last = last_segment(url).unwrap_or_default();
    match last.strip_prefix(&format!("{user}.")) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn upns() {
        assert_eq!(split_upn("bob@example.com"), Some(("bob", "example.com")));
        for bad in ["bob@", "@example.com", "@", "bob", "a@b@c", "b ob@x", ""] {
            assert_eq!(split_upn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn write_privileges() {
        let p = |ns: &str, name: &str| multistatus::Element {
            namespace: ns.into(),
            name: name.into(),
            attributes: vec![],
            children: vec![],
        };
        assert!(grants_write(&p(DAV, "write")));
        assert!(grants_write(&p(DAV, "write-content")));
        assert!(grants_write(&p(DAV, "bind")));
        assert!(grants_write(&p(DAV, "all")));
        assert!(!grants_write(&p(DAV, "read")));
        assert!(!grants_write(&p(CALDAV, "read-free-busy")));
        assert!(!grants_write(&p(
            "http://cyrusimap.org/ns/",
            "write-content"
        )));
    }

    #[test]
    fn owner_side_names() {
        let url = |p: &str| Url::parse(&format!("http://h{p}")).unwrap();
        // DAViCal: the owner's own path.
        assert_eq!(
            owner_side_name(
                "bob",
                &url("/caldav.php/bob/"),
                &url("/caldav.php/bob/calendar/")
            ),
            "calendar"
        );
        // Cyrus: the shared view in the caller's home.
        assert_eq!(
            owner_side_name(
                "bob",
                &url("/dav/calendars/user/bob/"),
                &url("/dav/calendars/user/alice/bob.Default/")
            ),
            "Default"
        );
        assert_eq!(
            owner_side_name("bob", &url("/h/bob/"), &url("/h/bob/Work%20Play/")),
            "Work Play"
        );
    }

    #[test]
    fn group_member_set_is_read_from_a_principal_propfind() {
        // DAViCal's answer for a group principal (RFC 3744 §4.3), as observed.
        let body = r#"<?xml version="1.0" encoding="utf-8" ?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/caldav.php/team/</href>
<propstat><prop><resourcetype><collection/><principal/></resourcetype>
<group-member-set><href>/caldav.php/alice/</href><href>/caldav.php/bob/</href></group-member-set>
<C:calendar-home-set><href>/caldav.php/team/</href></C:calendar-home-set></prop>
<status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let ms = multistatus::parse_multistatus(body).unwrap();
        let set = ms.responses[0].prop(DAV, "group-member-set").unwrap();
        assert_eq!(set.hrefs, vec!["/caldav.php/alice/", "/caldav.php/bob/"]);
        // A user principal: the set is absent (404 propstat) or empty.
        let user = r#"<multistatus xmlns="DAV:"><response><href>/caldav.php/alice/</href>
<propstat><prop><resourcetype><collection/><principal/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat>
<propstat><prop><group-member-set/></prop><status>HTTP/1.1 404 Not Found</status></propstat></response></multistatus>"#;
        let ms = multistatus::parse_multistatus(user).unwrap();
        assert!(ms.responses[0].prop(DAV, "group-member-set").is_none());
        let m = Url::parse("http://h/caldav.php/alice/").unwrap();
        assert_eq!(last_segment(&m).as_deref(), Some("alice"));
    }

    /// A directory in memory: principal path → node.
    struct Fake {
        nodes: HashMap<String, Node>,
        visits: std::sync::Mutex<Vec<String>>,
    }

    fn u(path: &str) -> Url {
        Url::parse(&format!("http://h/p/{path}/")).unwrap()
    }

    impl Fake {
        fn new(entries: &[(&str, Node)]) -> Fake {
            Fake {
                nodes: entries
                    .iter()
                    .map(|(k, v)| (principal_key(&u(k)), v.clone()))
                    .collect(),
                visits: std::sync::Mutex::new(Vec::new()),
            }
        }
        fn group(members: &[&str]) -> Node {
            Node::Group(members.iter().map(|m| u(m)).collect())
        }
        fn cals(ids: &[&str]) -> Node {
            Node::Calendars(ids.iter().map(|s| s.to_string()).collect())
        }
    }

    impl Directory for Fake {
        async fn visit(&self, user: &str, url: &Url, _: &str) -> Result<Node, TranslateError> {
            self.visits.lock().unwrap().push(user.to_owned());
            self.nodes
                .get(&principal_key(url))
                .cloned()
                .ok_or_else(|| TranslateError::NotFound(format!("no {user}")))
        }
        async fn member_login(&self, member: &Url) -> Result<String, TranslateError> {
            Ok(last_segment(member).unwrap())
        }
    }

    fn run<D: Directory>(dir: &D, root: &str, max: usize) -> Result<Expansion, TranslateError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(walk(dir, root, u(root), root, max))
    }

    #[test]
    fn groups_expand_in_order_without_duplicates_or_cycles() {
        let dir = Fake::new(&[
            ("team", Fake::group(&["alice", "sub", "bob"])),
            ("sub", Fake::group(&["carol", "team", "alice"])),
            ("alice", Fake::cals(&["a/1", "a/2"])),
            ("bob", Fake::cals(&["b/1", "a/1"])),
            ("carol", Fake::cals(&[])),
        ]);
        let e = run(&dir, "team", 0).unwrap();
        assert_eq!(e.ids, vec!["a/1", "a/2", "b/1"]);
        assert!(!e.truncated);
        // Each principal is visited once, although alice and team appear twice.
        assert_eq!(
            *dir.visits.lock().unwrap(),
            vec!["team", "alice", "sub", "carol", "bob"]
        );
    }

    #[test]
    fn truncation_stops_after_max_distinct_ids() {
        let dir = Fake::new(&[
            ("team", Fake::group(&["alice", "bob"])),
            ("alice", Fake::cals(&["a/1", "a/2"])),
            ("bob", Fake::cals(&["a/2", "b/1"])),
        ]);
        assert_eq!(
            run(&dir, "team", 2).unwrap(),
            Expansion {
                ids: vec!["a/1".into(), "a/2".into()],
                truncated: true
            }
        );
        // Exactly max ids (a duplicate does not count) is not truncated.
        assert_eq!(
            run(&dir, "team", 3).unwrap(),
            Expansion {
                ids: vec!["a/1".into(), "a/2".into(), "b/1".into()],
                truncated: false
            }
        );
        assert!(!run(&dir, "alice", 2).unwrap().truncated);
        assert!(run(&dir, "alice", 1).unwrap().truncated);
    }

    #[test]
    fn deep_nesting_fails_and_a_missing_member_fails_the_whole_expansion() {
        let names: Vec<String> = (0..=MAX_GROUP_DEPTH + 1).map(|i| format!("g{i}")).collect();
        let mut entries: Vec<(&str, Node)> = names
            .windows(2)
            .map(|w| (w[0].as_str(), Fake::group(&[w[1].as_str()])))
            .collect();
        let last = names.last().unwrap().as_str();
        entries.push((last, Fake::cals(&["x/1"])));
        let dir = Fake::new(&entries);
        let e = run(&dir, "g0", 0).unwrap_err();
        assert!(e.to_string().contains("nest more than 8"), "{e}");
        // Eight nested groups (g1 … g8) are fine.
        assert_eq!(run(&dir, "g1", 0).unwrap().ids, vec!["x/1"]);

        let dir = Fake::new(&[
            ("team", Fake::group(&["alice", "ghost"])),
            ("alice", Fake::cals(&["a/1"])),
        ]);
        assert!(matches!(
            run(&dir, "team", 0),
            Err(TranslateError::NotFound(_))
        ));
    }
}
