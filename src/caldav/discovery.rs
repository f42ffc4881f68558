//! Finding a user's principal and scheduling collections (RFC 6764, RFC 5397, RFC 4791 §6,
//! RFC 6638 §2, §9.2), cached per user.
//!
//! 1. The context path: `PROPFIND /.well-known/caldav` for `DAV:current-user-principal`,
//!    following at most three redirects, all on the configured origin (RFC 6764 §5). A 404, a
//!    non-DAV answer or a principal-less answer falls back to the configured base URL.
//! 2. The principal: `calendar-home-set`, `schedule-inbox-URL`, `schedule-outbox-URL`,
//!    `calendar-user-address-set`, `displayname`.
//! 3. The default calendar: `schedule-default-calendar-URL` on the inbox (RFC 6638 §9.2), else
//!    the first calendar collection of the home that takes VEVENTs.
//!
//! When the server has no `current-user-principal`, `upstream.principal_template` gives the path.

use super::client::{CaldavClient, Credentials, Depth, HttpResponse, propfind_method};
use super::error::CaldavError;
use super::multistatus::{CALDAV, DAV, Response};
use super::path::{self, same_collection};
use super::request::{
    CALENDAR_HOME_SET, CALENDAR_USER_ADDRESS_SET, CURRENT_USER_PRINCIPAL, DISPLAYNAME, PropName,
    RESOURCETYPE, SCHEDULE_DEFAULT_CALENDAR_URL, SCHEDULE_INBOX_URL, SCHEDULE_OUTBOX_URL,
    SUPPORTED_CALENDAR_COMPONENT_SET,
};
use crate::ical::scheduling::strip_mailto;
use reqwest::Url;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Same-origin redirects followed for one PROPFIND (RFC 6764 §5 for the context path; Cyrus's
/// shared view of another user's calendar is one hop).
const MAX_REDIRECTS: usize = 3;

/// What the gateway knows about one upstream user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The upstream login name.
    pub user: String,
    /// The principal URL.
    pub url: Url,
    /// Display name, when the server has one.
    pub displayname: Option<String>,
    /// The calendar home collection.
    pub home: Url,
    /// The scheduling inbox (RFC 6638 §2.2), if the server schedules.
    pub inbox: Option<Url>,
    /// The scheduling outbox (RFC 6638 §2.1), if the server schedules.
    pub outbox: Option<Url>,
    /// `calendar-user-address-set` entries as sent (`mailto:alice@example.com`, paths …).
    pub addresses: Vec<String>,
    /// The calendar new events go to.
    pub default_calendar: Url,
}

impl Principal {
    /// The user's `mailto:` addresses, lower-cased, without the scheme.
    pub fn mail_addresses(&self) -> Vec<String> {
        self.addresses
            .iter()
            .filter_map(|a| strip_mailto(a.trim()))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| a.to_ascii_lowercase())
            .collect()
    }

    /// True when `address` (with or without `mailto:`) is one of the user's addresses.
    pub fn has_address(&self, address: &str) -> bool {
        let address = address.trim();
        let wanted = strip_mailto(address)
            .unwrap_or(address)
            .trim()
            .to_ascii_lowercase();
        self.mail_addresses().contains(&wanted)
    }

    /// True when `url` is this user's calendar home (compared as collections: a trailing slash
    /// does not matter). Cyrus reports the caller's own home on other users' principals once
    /// the caller holds rights on their calendars, so such a home must not be taken as theirs.
    pub fn is_home(&self, url: &Url) -> bool {
        same_collection(&self.home, url)
    }
}

/// What an address is, seen from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressKind {
    /// A user of the upstream (the address is at the calendar domain and the principal exists).
    Local {
        /// The upstream login name.
        user: String,
    },
    /// At the calendar domain, but no such principal exists upstream.
    UnknownLocal,
    /// At another domain.
    Foreign,
}

/// Discovery with a per-user cache. Shared by all sessions.
#[derive(Debug)]
pub struct Discovery {
    client: CaldavClient,
    domain: String,
    login_template: String,
    principal_template: Option<String>,
    calendar_template: Option<String>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<Principal>)>>,
    /// [`Discovery::calendar_of`] answers, per (caller, user): the URL depends on who asks
    /// (Cyrus shows another user's calendar inside the caller's home).
    calendars: Mutex<HashMap<(String, String), (Instant, Url)>>,
}

impl Discovery {
    /// Creates discovery for the configured upstream.
    pub fn new(client: CaldavClient, config: &crate::config::Config) -> Discovery {
        Discovery {
            client,
            domain: config.upstream.domain.to_ascii_lowercase(),
            login_template: config.upstream.login_template.clone(),
            principal_template: config.upstream.principal_template.clone(),
            calendar_template: config.upstream.calendar_template.clone(),
            ttl: Duration::from_secs(config.upstream.discovery_ttl_secs),
            cache: Mutex::new(HashMap::new()),
            calendars: Mutex::new(HashMap::new()),
        }
    }

    /// The client discovery uses.
    pub fn client(&self) -> &CaldavClient {
        &self.client
    }

    /// The calendar domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The cached principal of `creds.user`, or a fresh discovery. A cached entry does not prove
    /// the password: use [`Discovery::authenticate`] to check credentials.
    pub async fn principal(&self, creds: &Credentials) -> Result<Arc<Principal>, CaldavError> {
        if let Some(p) = self.cached(&creds.user) {
            return Ok(p);
        }
        let p = Arc::new(self.discover(creds).await?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(creds.user.clone(), (Instant::now(), p.clone()));
        }
        Ok(p)
    }

    fn cached(&self, user: &str) -> Option<Arc<Principal>> {
        let cache = self.cache.lock().ok()?;
        let (at, p) = cache.get(user)?;
        (at.elapsed() < self.ttl).then(|| p.clone())
    }

    /// Forgets what is cached about `user`: their principal and every caller's
    /// [`Discovery::calendar_of`] answer for them. For when the upstream shows the cache stale
    /// (a 404 on their default calendar: it was removed or renamed).
    pub fn forget(&self, user: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(user);
        }
        if let Ok(mut calendars) = self.calendars.lock() {
            calendars.retain(|(_, of), _| of != user);
        }
    }

    /// Checks credentials against the upstream with one request (or a full discovery the first
    /// time) and returns the principal. A wrong password is a 401 error.
    pub async fn authenticate(&self, creds: &Credentials) -> Result<Arc<Principal>, CaldavError> {
        match self.cached(&creds.user) {
            Some(p) => {
                self.client
                    .propfind(&p.url, Depth::Zero, &[DISPLAYNAME], creds)
                    .await?;
                Ok(p)
            }
            None => self.principal(creds).await,
        }
    }

    /// The upstream login name for a local address (`upstream.login_template`). Addresses are
    /// matched without regard to case, so the local part is lower-cased.
    pub fn login_for(&self, address: &str) -> Option<String> {
        let addr = strip_mailto(address).unwrap_or(address).trim();
        let (local, domain) = addr.rsplit_once('@')?;
        if local.is_empty() || !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        Some(
            self.login_template
                .replace("{local}", &local.to_ascii_lowercase())
                .replace("{address}", &addr.to_ascii_lowercase()),
        )
    }

    /// Classifies an address: foreign, local and existing, or local but unknown upstream. The
    /// principal of the address's user is looked up with `creds` (any valid upstream account):
    /// 404 means unknown; 207 or 403 (exists, not readable by `creds`) mean it exists.
    pub async fn classify(
        &self,
        address: &str,
        creds: &Credentials,
    ) -> Result<AddressKind, CaldavError> {
        let Some(user) = self.login_for(address) else {
            return Ok(AddressKind::Foreign);
        };
        let url = self.principal_url_for(&user, creds).await?;
        let resp = self
            .client
            .propfind_raw(&url, Depth::Zero, &[CALENDAR_USER_ADDRESS_SET], creds)
            .await?;
        match resp.status {
            207 | 403 => Ok(AddressKind::Local { user }),
            404 | 410 => Ok(AddressKind::UnknownLocal),
            _ => self
                .client
                .check(propfind_method(), &url, resp)
                .map(|_| AddressKind::Local { user }),
        }
    }

    /// The principal URL of another user: the template when configured, else the sibling of
    /// `creds`' own principal (`/principals/user/alice/` → `/principals/user/bob/`).
    pub async fn principal_url_for(
        &self,
        user: &str,
        creds: &Credentials,
    ) -> Result<Url, CaldavError> {
        if let Some(t) = &self.principal_template {
            return self.template_url(t, user);
        }
        let own = self.principal(creds).await?;
        own.url
            .join(&format!(
                "../{}/",
                path::percent_encode(user, path::SEGMENT)
            ))
            .map_err(|e| CaldavError::Discovery {
                user: user.to_owned(),
                detail: format!("cannot derive a principal URL: {e}"),
            })
    }

    /// The default calendar of another user, as `creds` (an account with rights on it, such as
    /// the service account) must address it. 404 when the user does not exist.
    ///
    /// With `upstream.calendar_template`, that path, following same-origin redirects (Cyrus
    /// sends another user's calendar to the shared view in the caller's own home). Without it,
    /// from the user's principal; a principal that reports the caller's own home is refused
    /// (Cyrus does that once the caller holds rights on the user's calendar).
    ///
    /// Answers are cached per (caller, user) for `upstream.discovery_ttl_secs`;
    /// [`Discovery::forget`] drops them.
    pub async fn calendar_of(&self, user: &str, creds: &Credentials) -> Result<Url, CaldavError> {
        let key = (creds.user.clone(), user.to_owned());
        if let Ok(calendars) = self.calendars.lock()
            && let Some((at, url)) = calendars.get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(url.clone());
        }
        let url = self.find_calendar_of(user, creds).await?;
        if let Ok(mut calendars) = self.calendars.lock() {
            calendars.insert(key, (Instant::now(), url.clone()));
        }
        Ok(url)
    }

    /// `upstream.calendar_template` for `user`, when configured: where their default calendar
    /// is (redirects not yet followed).
    pub fn template_calendar(&self, user: &str) -> Option<Result<Url, CaldavError>> {
        self.calendar_template
            .as_ref()
            .map(|t| self.template_url(t, user))
    }

    async fn find_calendar_of(&self, user: &str, creds: &Credentials) -> Result<Url, CaldavError> {
        if let Some(start) = self.template_calendar(user) {
            return self.follow_to_collection(&start?, creds).await;
        }
        let url = self.principal_url_for(user, creds).await?;
        let ms = self
            .client
            .propfind(
                &url,
                Depth::Zero,
                &[CALENDAR_HOME_SET, SCHEDULE_INBOX_URL],
                creds,
            )
            .await?;
        let r = ms.responses.first().ok_or_else(|| CaldavError::Discovery {
            user: user.to_owned(),
            detail: format!("empty PROPFIND answer for {}", url.path()),
        })?;
        let unusable = |detail: String| CaldavError::Discovery {
            user: user.to_owned(),
            detail: format!("{detail}; set upstream.calendar_template"),
        };
        let home = r
            .prop(CALDAV, "calendar-home-set")
            .and_then(|p| p.href())
            .map(|h| self.client.resolve(&url, h))
            .transpose()?
            .ok_or_else(|| {
                unusable(format!(
                    "{} shows no calendar-home-set to {}",
                    url.path(),
                    creds.user
                ))
            })?;
        if user != creds.user && self.principal(creds).await?.is_home(&home) {
            return Err(unusable(format!(
                "{} reports {}'s own calendar home",
                url.path(),
                creds.user
            )));
        }
        let inbox = r
            .prop(CALDAV, "schedule-inbox-URL")
            .and_then(|p| p.href())
            .map(|h| self.client.resolve(&url, h))
            .transpose()?;
        self.default_calendar(&home, inbox.as_ref(), creds).await
    }

    /// PROPFIND Depth 0 at `start`, following redirects ([`Discovery::propfind_following`]);
    /// the URL that answered 207 is the collection to use.
    async fn follow_to_collection(
        &self,
        start: &Url,
        creds: &Credentials,
    ) -> Result<Url, CaldavError> {
        let (url, resp) = self
            .propfind_following(start, &[RESOURCETYPE], creds)
            .await?;
        if resp.status == 207 {
            return Ok(url);
        }
        self.client
            .check(propfind_method(), &url, resp)
            .map(|_| url)
    }

    /// `PROPFIND Depth: 0` of `props` at `start`, following at most [`MAX_REDIRECTS`]
    /// redirects. PROPFIND is safe (RFC 4918 §9.1), so every redirect status (301, 302, 303,
    /// 307, 308) is followed with the same request. Only targets on the configured origin are
    /// followed, and credentials in a `Location` are dropped: they never ride in a URL calgate
    /// sends. Returns the URL that answered and its answer, whatever the status but a redirect.
    ///
    /// A redirect without a `Location`, to another origin, or one too many is
    /// [`CaldavError::Redirect`] with the status the upstream sent.
    pub(crate) async fn propfind_following(
        &self,
        start: &Url,
        props: &[PropName],
        creds: &Credentials,
    ) -> Result<(Url, HttpResponse), CaldavError> {
        let mut url = start.clone();
        let mut hops = 0;
        loop {
            let resp = self
                .client
                .propfind_raw(&url, Depth::Zero, props, creds)
                .await?;
            if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                return Ok((url, resp));
            }
            let location = resp.header("location").unwrap_or("").trim().to_owned();
            let refused = || CaldavError::Redirect {
                method: "PROPFIND".into(),
                path: url.path().to_owned(),
                status: resp.status,
                location: if location.is_empty() {
                    "(none)".into()
                } else {
                    location.clone()
                },
            };
            if location.is_empty() || hops == MAX_REDIRECTS {
                return Err(refused());
            }
            let mut next = self
                .client
                .resolve(&url, &location)
                .map_err(|_| refused())?;
            let _ = next.set_username("");
            let _ = next.set_password(None);
            url = next;
            hops += 1;
        }
    }

    fn template_url(&self, template: &str, user: &str) -> Result<Url, CaldavError> {
        let path = template.replace("{user}", &path::percent_encode(user, path::SEGMENT));
        self.client
            .base()
            .join(&path)
            .map_err(|e| CaldavError::Discovery {
                user: user.to_owned(),
                detail: format!("the template {template:?} gives a bad URL: {e}"),
            })
    }

    async fn discover(&self, creds: &Credentials) -> Result<Principal, CaldavError> {
        let principal_url = match self.current_user_principal(creds).await? {
            Some(url) => url,
            None => match &self.principal_template {
                Some(t) => self.template_url(t, &creds.user)?,
                None => {
                    return Err(CaldavError::Discovery {
                        user: creds.user.clone(),
                        detail: "the server reports no current-user-principal and \
                                 upstream.principal_template is not set"
                            .into(),
                    });
                }
            },
        };
        let ms = self
            .client
            .propfind(
                &principal_url,
                Depth::Zero,
                &[
                    CALENDAR_HOME_SET,
                    SCHEDULE_INBOX_URL,
                    SCHEDULE_OUTBOX_URL,
                    CALENDAR_USER_ADDRESS_SET,
                    DISPLAYNAME,
                ],
                creds,
            )
            .await?;
        let r = ms.responses.first().ok_or_else(|| CaldavError::Discovery {
            user: creds.user.clone(),
            detail: format!("empty PROPFIND answer for {}", principal_url.path()),
        })?;
        let href = |name: &str| -> Result<Option<Url>, CaldavError> {
            match r.prop(CALDAV, name).and_then(|p| p.href()) {
                Some(h) => self.client.resolve(&principal_url, h).map(Some),
                None => Ok(None),
            }
        };
        let home = href("calendar-home-set")?.ok_or_else(|| CaldavError::Discovery {
            user: creds.user.clone(),
            detail: format!(
                "principal {} has no calendar-home-set",
                principal_url.path()
            ),
        })?;
        let inbox = href("schedule-inbox-URL")?;
        let outbox = href("schedule-outbox-URL")?;
        let addresses = r
            .prop(CALDAV, "calendar-user-address-set")
            .map(|p| p.hrefs.clone())
            .unwrap_or_default();
        let displayname = r
            .prop(DAV, "displayname")
            .map(|p| p.text.trim().to_owned())
            .filter(|d| !d.is_empty());
        let default_calendar = self.default_calendar(&home, inbox.as_ref(), creds).await?;
        Ok(Principal {
            user: creds.user.clone(),
            url: principal_url,
            displayname,
            home,
            inbox,
            outbox,
            addresses,
            default_calendar,
        })
    }

    /// Step 1: the context path and `current-user-principal`.
    async fn current_user_principal(
        &self,
        creds: &Credentials,
    ) -> Result<Option<Url>, CaldavError> {
        let base = self.client.base().clone();
        let well_known = base
            .join("/.well-known/caldav")
            .map_err(|e| CaldavError::Discovery {
                user: creds.user.clone(),
                detail: format!("bad base URL: {e}"),
            })?;
        if let Some(url) = self.principal_at(&well_known, creds).await? {
            return Ok(Some(url));
        }
        self.principal_at(&base, creds).await
    }

    /// PROPFIND current-user-principal at `url`, following same-origin redirects.
    async fn principal_at(
        &self,
        url: &Url,
        creds: &Credentials,
    ) -> Result<Option<Url>, CaldavError> {
        let (url, resp) = self
            .propfind_following(url, &[CURRENT_USER_PRINCIPAL], creds)
            .await?;
        match resp.status {
            207 => {
                let ms = self.client.parse_propfind(&url, &resp)?;
                let href = ms
                    .responses
                    .iter()
                    .find_map(|r| r.prop(DAV, "current-user-principal"))
                    .and_then(|p| p.href())
                    .map(str::to_owned);
                match href {
                    Some(h) => self.client.resolve(&url, &h).map(Some),
                    None => Ok(None),
                }
            }
            // Wrong credentials and server errors are errors; 404, 405, a web page with 200 …
            // only mean there is no DAV context here.
            s if s == 401 || s >= 500 => self
                .client
                .check(propfind_method(), &url, resp)
                .map(|_| None),
            _ => Ok(None),
        }
    }

    /// Step 3: the default calendar.
    async fn default_calendar(
        &self,
        home: &Url,
        inbox: Option<&Url>,
        creds: &Credentials,
    ) -> Result<Url, CaldavError> {
        if let Some(inbox) = inbox {
            let ms = self
                .client
                .propfind(inbox, Depth::Zero, &[SCHEDULE_DEFAULT_CALENDAR_URL], creds)
                .await;
            if let Ok(ms) = ms
                && let Some(h) = ms
                    .responses
                    .iter()
                    .find_map(|r| r.prop(CALDAV, "schedule-default-calendar-URL"))
                    .and_then(|p| p.href())
            {
                return self.client.resolve(inbox, h);
            }
        }
        let ms = self
            .client
            .propfind(
                home,
                Depth::One,
                &[RESOURCETYPE, SUPPORTED_CALENDAR_COMPONENT_SET, DISPLAYNAME],
                creds,
            )
            .await?;
        let calendars: Vec<&Response> = ms
            .responses
            .iter()
            .filter(|r| r.is_resource_type(CALDAV, "calendar"))
            .filter(|r| takes_events(r))
            .collect();
        let first = calendars.first().ok_or_else(|| CaldavError::Discovery {
            user: creds.user.clone(),
            detail: format!("no calendar for events in {}", home.path()),
        })?;
        self.client.resolve(home, &first.href)
    }
}

/// True when the calendar's supported component set allows VEVENT (absent means all).
fn takes_events(r: &Response) -> bool {
    match r.prop(CALDAV, "supported-calendar-component-set") {
        None => true,
        Some(set) => set.children.iter().any(|c| {
            c.name == "comp"
                && c.attributes
                    .iter()
                    .any(|(k, v)| k == "name" && v.eq_ignore_ascii_case("VEVENT"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(p: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:8008{p}")).unwrap()
    }

    fn principal(addresses: &[&str]) -> Principal {
        Principal {
            user: "a".into(),
            url: url("/dav/principals/user/a/"),
            displayname: None,
            home: url("/dav/calendars/user/a/"),
            inbox: None,
            outbox: None,
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            default_calendar: url("/dav/calendars/user/a/Default/"),
        }
    }

    #[test]
    fn mailto_handling() {
        let p = principal(&[
            "MAILTO:a@b.c",
            "mailto:",
            "/dav/principals/user/a/",
            "mailté",
            " mailto:A2@B.c ",
        ]);
        assert_eq!(p.mail_addresses(), vec!["a@b.c", "a2@b.c"]);
        assert!(p.has_address("a@b.c"));
        assert!(p.has_address("MAILTO:A@B.C"));
        assert!(p.has_address(" mailto:a2@b.c"));
        assert!(!p.has_address("mailto:"));
        assert!(!p.has_address("/dav/principals/user/a/"));
    }

    #[test]
    fn own_home_is_recognised_with_or_without_trailing_slash() {
        let p = principal(&[]);
        assert!(p.is_home(&url("/dav/calendars/user/a/")));
        assert!(p.is_home(&url("/dav/calendars/user/a")));
        assert!(!p.is_home(&url("/dav/calendars/user/b/")));
    }

    fn discovery() -> Discovery {
        let config = crate::config::Config::from_toml(
            "[upstream]\nurl = \"http://127.0.0.1:8008/\"\ndomain = \"Example.com\"\n",
            std::path::Path::new("test.toml"),
        )
        .unwrap();
        Discovery::new(CaldavClient::from_config(&config).unwrap(), &config)
    }

    #[test]
    fn login_names_for_addresses() {
        let d = discovery();
        assert_eq!(
            d.login_for("MAILTO:Bob@EXAMPLE.com").as_deref(),
            Some("bob")
        );
        assert_eq!(d.login_for("bob@example.com").as_deref(), Some("bob"));
        assert_eq!(d.login_for("bob@other.example"), None);
        assert_eq!(d.login_for("@example.com"), None);
    }

    #[test]
    fn forget_drops_the_principal_and_every_calendar_of_the_user() {
        let d = discovery();
        let now = Instant::now();
        let cal = url("/dav/calendars/user/calgate/bob.Default/");
        d.cache
            .lock()
            .unwrap()
            .insert("bob".into(), (now, Arc::new(principal(&[]))));
        {
            let mut calendars = d.calendars.lock().unwrap();
            calendars.insert(("calgate".into(), "bob".into()), (now, cal.clone()));
            calendars.insert(("alice".into(), "bob".into()), (now, cal.clone()));
            calendars.insert(("bob".into(), "alice".into()), (now, cal.clone()));
        }
        assert!(d.cached("bob").is_some());
        d.forget("bob");
        assert!(d.cached("bob").is_none());
        let left: Vec<(String, String)> = d.calendars.lock().unwrap().keys().cloned().collect();
        assert_eq!(left, vec![("bob".to_owned(), "alice".to_owned())]);
    }
}
