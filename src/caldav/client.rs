//! The one HTTP client of the gateway: every request to the CalDAV server goes through
//! [`CaldavClient`].
//!
//! - One `reqwest::Client` (rustls with the ring provider, keep-alive pool), with connect and
//!   request timeouts and **no automatic redirects**: a redirected PUT or REPORT must never be
//!   replayed silently elsewhere, and credentials must not follow a redirect to another host.
//!   Discovery follows same-origin redirects itself (see [`super::discovery`]).
//! - Response bodies are read up to `upstream.max_response_bytes`.
//! - Every request goes through [`CaldavClient::send`], which retries what is safe to retry
//!   (RFC 9110 §9.2.2; `Retry-After`, §10.2.3), keeps a circuit breaker shared by all clones,
//!   and runs each attempt in an `upstream` tracing span; see [`super::resilience`].
//! - Operations: PROPFIND (RFC 4918 §9.1), GET/PUT/DELETE with `If-Match`, `If-None-Match: *`
//!   and `If-Schedule-Tag-Match` (RFC 4791 §5.3.2, RFC 6638 §3.2.10), REPORT calendar-query and
//!   calendar-multiget (RFC 4791 §7.8, §7.9), MKCALENDAR (RFC 4791 §5.3.1), MOVE
//!   (RFC 4918 §9.9), OPTIONS, and the free-busy POST to the schedule outbox (RFC 6638 §5).

use super::error::{CaldavError, TransportKind};
use super::multistatus::{self, Multistatus, Recipient};
use super::request::{self, PropName, QueryFilter};
use super::resilience::{Breaker, CircuitState, Decision, Observed, Resilience, jitter};
use crate::config::Config;
use crate::secret::Secret;
use reqwest::{Method, StatusCode, Url, header::HeaderMap};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};
use tracing::Instrument;

static PROPFIND: LazyLock<Method> =
    LazyLock::new(|| Method::from_bytes(b"PROPFIND").expect("PROPFIND is a valid method token"));
static REPORT: LazyLock<Method> =
    LazyLock::new(|| Method::from_bytes(b"REPORT").expect("REPORT is a valid method token"));
static MKCALENDAR: LazyLock<Method> = LazyLock::new(|| {
    Method::from_bytes(b"MKCALENDAR").expect("MKCALENDAR is a valid method token")
});
static MOVE: LazyLock<Method> =
    LazyLock::new(|| Method::from_bytes(b"MOVE").expect("MOVE is a valid method token"));

/// The `PROPFIND` method (for callers that inspect raw answers).
pub fn propfind_method() -> &'static Method {
    &PROPFIND
}

const XML: &str = "application/xml; charset=utf-8";
const CALENDAR: &str = "text/calendar; charset=utf-8";

/// Upstream credentials: a login name and its password (redacted from Debug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Upstream login name.
    pub user: String,
    /// Its password.
    pub password: Secret<String>,
}

impl Credentials {
    /// Builds credentials from a login name and a password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: Secret::new(password.into()),
        }
    }
}

/// `Depth` header values (RFC 4918 §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The resource only.
    Zero,
    /// The resource and its members.
    One,
}

impl Depth {
    fn header(self) -> &'static str {
        match self {
            Depth::Zero => "0",
            Depth::One => "1",
        }
    }
}

/// A raw upstream answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body (at most `max_response_bytes`).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> Option<String> {
        self.header("etag").map(str::to_owned)
    }

    /// The `Schedule-Tag` header (RFC 6638 §8.3).
    pub fn schedule_tag(&self) -> Option<String> {
        self.header("schedule-tag").map(str::to_owned)
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A calendar object resource as read from the upstream.
#[derive(Debug, Clone)]
pub struct CalendarObject {
    /// Its URL.
    pub url: Url,
    /// Its ETag, when the server reported one.
    pub etag: Option<String>,
    /// Its Schedule-Tag, when the server reported one (RFC 6638 §3.2.10).
    pub schedule_tag: Option<String>,
    /// The iCalendar text.
    pub data: String,
}

/// The precondition of a write, so that nothing is overwritten blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition<'a> {
    /// Create only: `If-None-Match: *`.
    Create,
    /// Replace only this version: `If-Match: <etag>`.
    IfMatch(&'a str),
    /// Replace only if the scheduling state is unchanged: `If-Schedule-Tag-Match: <tag>`.
    IfScheduleTagMatch(&'a str),
}

impl<'a> WriteCondition<'a> {
    /// The condition for updating an object that was read: its Schedule-Tag where the server
    /// sends one (RFC 6638 §3.2.10), else its ETag. `None` when it has neither: the caller must
    /// re-read the object rather than write blindly.
    pub fn for_object(object: &'a CalendarObject) -> Option<WriteCondition<'a>> {
        Self::from_tags(object.schedule_tag.as_deref(), object.etag.as_deref())
    }

    /// [`WriteCondition::for_object`] from the two validators of an object that was read: the
    /// Schedule-Tag when there is one, else the ETag, else `None`.
    pub fn from_tags(
        schedule_tag: Option<&'a str>,
        etag: Option<&'a str>,
    ) -> Option<WriteCondition<'a>> {
        match (schedule_tag, etag) {
            (Some(tag), _) => Some(WriteCondition::IfScheduleTagMatch(tag)),
            (None, Some(etag)) => Some(WriteCondition::IfMatch(etag)),
            (None, None) => None,
        }
    }

    /// The request header that carries the condition.
    fn header(self) -> (&'static str, &'a str) {
        match self {
            WriteCondition::Create => ("if-none-match", "*"),
            WriteCondition::IfMatch(etag) => ("if-match", etag),
            WriteCondition::IfScheduleTagMatch(tag) => ("if-schedule-tag-match", tag),
        }
    }
}

/// What a successful PUT reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// 201 Created (a new resource) rather than 200/204 (replaced).
    pub created: bool,
    /// The new ETag; Cyrus omits it when it rewrote the object (scheduling), so it may be absent.
    pub etag: Option<String>,
    /// The new Schedule-Tag, when the server sends one.
    pub schedule_tag: Option<String>,
}

/// The gateway's CalDAV client. Cheap to clone: the connection pool and the circuit breaker
/// are shared by all clones.
#[derive(Debug, Clone)]
pub struct CaldavClient {
    http: reqwest::Client,
    base: Url,
    max_body: usize,
    resilience: Arc<Resilience>,
    breaker: Arc<Breaker>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// A failed attempt: the error, and whether any of the request can have reached the server.
#[derive(Debug)]
struct Failure {
    error: CaldavError,
    sent: bool,
}

/// Installs ring as rustls' process-wide crypto provider (idempotent). reqwest is built with
/// `rustls-no-provider`, so this must run before the first client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl CaldavClient {
    /// Builds the client from the configuration.
    pub fn from_config(config: &Config) -> Result<CaldavClient, crate::config::ConfigError> {
        install_crypto_provider();
        let base = config.upstream_url()?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.upstream.max_idle_connections)
            // HTTP/1.1 only, also where TLS offers h2 by ALPN: the gateway sends many users'
            // requests over one connection pool, and Cyrus 3.6 binds the login to the HTTP/2
            // connection, so a request of carol's multiplexed beside bob's runs as bob
            // (measured with calgate-bench, BENCHMARKS.md "HTTP/2"). Keep-alive HTTP/1.1
            // connections carry one request at a time, each with its own credentials.
            .http1_only()
            .user_agent(concat!("calgate/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &config.upstream.ca_file {
            let pem = std::fs::read(ca).map_err(|e| crate::config::ConfigError::Invalid {
                key: "upstream.ca_file".into(),
                reason: format!("cannot read {}: {e}", ca.display()),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                crate::config::ConfigError::Invalid {
                    key: "upstream.ca_file".into(),
                    reason: format!("not a PEM certificate bundle: {e}"),
                }
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| crate::config::ConfigError::Invalid {
                key: "upstream".into(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        let u = &config.upstream;
        let resilience = Resilience {
            max_retries: u.max_retries,
            backoff_base: Duration::from_millis(u.retry_backoff_ms),
            max_retry_after: Duration::from_secs(u.max_retry_after_secs),
            breaker_failures: u.breaker_failures,
            breaker_cooldown: Duration::from_secs(u.breaker_cooldown_secs),
            ..Resilience::default()
        };
        Ok(CaldavClient {
            http,
            base,
            max_body: config.upstream.max_response_bytes,
            breaker: Arc::new(Breaker::new(&resilience)),
            resilience: Arc::new(resilience),
            metrics: None,
        })
    }

    /// The client recording its requests in `metrics` (latency per method and status class,
    /// retries, the breaker's state).
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        CaldavClient {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The client with another retry and circuit-breaker policy. The circuit starts closed
    /// with a breaker of its own, shared by the clones made from the returned client (clones
    /// made earlier keep the old policy and breaker).
    pub fn with_resilience(self, resilience: Resilience) -> Self {
        CaldavClient {
            breaker: Arc::new(Breaker::new(&resilience)),
            resilience: Arc::new(resilience),
            ..self
        }
    }

    /// The retry and circuit-breaker policy in use.
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// The state of the upstream circuit breaker (for readiness checks): `Closed` while
    /// requests go to the upstream, `Open` while they fail at once, `HalfOpen` once the
    /// cooldown is over and the next request is a trial.
    pub fn circuit(&self) -> CircuitState {
        self.breaker.state(Instant::now())
    }

    /// The configured base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Resolves an href from a response against a request URL, refusing other origins so that
    /// credentials are never sent to a host the operator did not configure.
    pub fn resolve(&self, against: &Url, href: &str) -> Result<Url, CaldavError> {
        let url = against.join(href).map_err(|e| CaldavError::Malformed {
            method: "resolve".into(),
            path: against.path().into(),
            detail: format!("bad href {href:?}: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(CaldavError::Malformed {
                method: "resolve".into(),
                path: against.path().into(),
                detail: format!("href {href:?} points to another host"),
            });
        }
        Ok(url)
    }

    /// Sends one request and reads the answer, whatever its status, with the retries and the
    /// circuit breaker of the client's [`Resilience`] policy (see [`super::resilience`]).
    ///
    /// - Safe methods (GET, HEAD, OPTIONS, PROPFIND, REPORT; RFC 9110 §9.2.1, §9.2.2) are
    ///   retried on transport errors and on 429 (RFC 6585 §4), 502, 503 (RFC 9110 §15.6.4) and
    ///   504.
    /// - Other methods are retried only when the request provably was not processed: no
    ///   connection could be made, or a 429/503 answer carried `Retry-After`
    ///   (RFC 9110 §10.2.3).
    /// - A `Retry-After` up to `max_retry_after` is waited for instead of the backoff; a longer
    ///   one ends the retries.
    ///
    /// The result is always that of the last attempt made. While the circuit is open the
    /// request fails at once with [`TransportKind::Connect`] ("circuit open after N
    /// consecutive upstream failures; next try in Ns"), without touching the network. Each
    /// attempt runs in an `upstream` span (method, path, attempt, status, elapsed_ms); neither
    /// credentials nor bodies are recorded.
    pub async fn send(
        &self,
        method: &Method,
        url: &Url,
        creds: Option<&Credentials>,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Result<HttpResponse, CaldavError> {
        let body = body.map(|(content_type, text)| (content_type, bytes::Bytes::from(text)));
        let mut last: Option<Result<HttpResponse, CaldavError>> = None;
        let mut attempt: u32 = 1;
        loop {
            let admission = match self.breaker.admit(Instant::now()) {
                Ok(admission) => admission,
                Err(rejection) => {
                    tracing::debug!(
                        target: "calgate::upstream",
                        method = %method,
                        path = url.path(),
                        attempt,
                        "upstream request refused: circuit open"
                    );
                    // A retry refused by the circuit: the truthful error is the last attempt's.
                    return last.unwrap_or_else(|| {
                        Err(CaldavError::Transport {
                            kind: TransportKind::Connect,
                            method: method.to_string(),
                            path: url.path().to_owned(),
                            detail: rejection.detail(),
                        })
                    });
                }
            };
            let span = tracing::info_span!(
                "upstream",
                method = %method,
                path = url.path(),
                status = tracing::field::Empty,
                elapsed_ms = tracing::field::Empty,
                attempt,
            );
            let outcome = self
                .attempt(method, url, creds, headers, body.clone())
                .instrument(span)
                .await;
            let observed = match &outcome {
                Ok(resp) => Observed::Answer {
                    status: resp.status,
                    retry_after: resp.header("retry-after"),
                },
                Err(Failure {
                    error: CaldavError::Transport { kind, .. },
                    sent,
                }) => Observed::Transport {
                    kind: *kind,
                    sent: *sent,
                },
                Err(_) => Observed::Other,
            };
            admission.settle(observed.is_failure(), Instant::now());
            let circuit_open = matches!(
                self.breaker.state(Instant::now()),
                CircuitState::Open { .. }
            );
            if let Some(m) = &self.metrics {
                m.set_upstream_circuit_open(circuit_open);
            }
            let decision = self.resilience.decide(
                method.as_str(),
                &observed,
                attempt,
                SystemTime::now(),
                jitter(),
            );
            let outcome = outcome.map_err(|f| f.error);
            let (wait, reason) = match decision {
                Decision::Done => return outcome,
                Decision::GiveUp { reason } => (None, reason),
                // The open circuit would refuse the retry: not waited for.
                Decision::Retry { wait, reason } => (Some(wait).filter(|_| !circuit_open), reason),
            };
            let Some(wait) = wait else {
                tracing::info!(
                    target: "calgate::upstream",
                    method = %method,
                    path = url.path(),
                    attempt,
                    reason = %reason,
                    circuit_open,
                    "upstream request not retried"
                );
                return outcome;
            };
            tracing::info!(
                target: "calgate::upstream",
                method = %method,
                path = url.path(),
                attempt,
                reason = %reason,
                wait_ms = wait.as_millis() as u64,
                "retrying upstream request"
            );
            if let Some(m) = &self.metrics {
                m.upstream_retry(method.as_str());
            }
            last = Some(outcome);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One attempt of [`Self::send`], inside its span; recorded in the metrics when the client
    /// has them.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        creds: Option<&Credentials>,
        headers: &[(&str, &str)],
        body: Option<(&str, bytes::Bytes)>,
    ) -> Result<HttpResponse, Failure> {
        let started = Instant::now();
        let result = self.exchange(method, url, creds, headers, body).await;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        let span = tracing::Span::current();
        span.record("elapsed_ms", elapsed_ms);
        if let Ok(resp) = &result {
            span.record("status", resp.status);
        }
        if let Some(m) = &self.metrics {
            let class = match &result {
                Ok(resp) => crate::metrics::StatusClass::from_status(resp.status),
                Err(_) => crate::metrics::StatusClass::Error,
            };
            m.upstream_request(method.as_str(), class, elapsed);
        }
        tracing::debug!(
            target: "calgate::upstream",
            method = %method,
            path = url.path(),
            user = creds.map(|c| c.user.as_str()).unwrap_or("-"),
            status = result.as_ref().ok().map(|r| r.status),
            elapsed_ms,
            "upstream request"
        );
        result
    }

    /// The HTTP exchange of one attempt.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        creds: Option<&Credentials>,
        headers: &[(&str, &str)],
        body: Option<(&str, bytes::Bytes)>,
    ) -> Result<HttpResponse, Failure> {
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(c) = creds {
            req = req.basic_auth(&c.user, Some(c.password.expose()));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                TransportKind::Timeout
            } else if e.is_connect() {
                TransportKind::Connect
            } else {
                TransportKind::Broken
            };
            Failure {
                // A connect error (a connect timeout included) means no connection was made,
                // so nothing of the request reached the server.
                sent: !e.is_connect(),
                error: CaldavError::Transport {
                    kind,
                    method: method.to_string(),
                    path: url.path().to_owned(),
                    detail: error_chain(&e),
                },
            }
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let too_large = || Failure {
            error: self.too_large(method, url),
            sent: true,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| Failure {
            sent: true,
            ..transport(e)
        })? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn too_large(&self, method: &Method, url: &Url) -> CaldavError {
        CaldavError::TooLarge {
            method: method.to_string(),
            path: url.path().to_owned(),
            limit: self.max_body,
        }
    }

    /// Turns a non-2xx answer into the matching error.
    pub fn check(
        &self,
        method: &Method,
        url: &Url,
        resp: HttpResponse,
    ) -> Result<HttpResponse, CaldavError> {
        if resp.is_success() {
            return Ok(resp);
        }
        if (300..400).contains(&resp.status) {
            return Err(CaldavError::Redirect {
                method: method.to_string(),
                path: url.path().to_owned(),
                status: resp.status,
                location: resp.header("location").unwrap_or("(none)").to_owned(),
            });
        }
        let condition = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(multistatus::parse_error_condition);
        Err(CaldavError::Status {
            method: method.to_string(),
            path: url.path().to_owned(),
            status: resp.status,
            condition,
        })
    }

    fn not_utf8(method: &Method, url: &Url) -> CaldavError {
        CaldavError::Malformed {
            method: method.to_string(),
            path: url.path().to_owned(),
            detail: "body is not UTF-8".into(),
        }
    }

    /// The body as text, borrowed (no copy).
    fn text<'a>(
        method: &Method,
        url: &Url,
        resp: &'a HttpResponse,
    ) -> Result<&'a str, CaldavError> {
        std::str::from_utf8(&resp.body).map_err(|_| Self::not_utf8(method, url))
    }

    fn multistatus(
        method: &Method,
        url: &Url,
        resp: &HttpResponse,
    ) -> Result<Multistatus, CaldavError> {
        if resp.status != 207 {
            return Err(CaldavError::Malformed {
                method: method.to_string(),
                path: url.path().to_owned(),
                detail: format!("expected 207 Multi-Status, got {}", resp.status),
            });
        }
        let text = Self::text(method, url, resp)?;
        multistatus::parse_multistatus(text).map_err(|detail| CaldavError::Malformed {
            method: method.to_string(),
            path: url.path().to_owned(),
            detail,
        })
    }

    /// `OPTIONS`: the compliance classes of the `DAV` header (RFC 4918 §10.1).
    pub async fn options(
        &self,
        url: &Url,
        creds: &Credentials,
    ) -> Result<Vec<String>, CaldavError> {
        let resp = self
            .send(&Method::OPTIONS, url, Some(creds), &[], None)
            .await?;
        let resp = self.check(&Method::OPTIONS, url, resp)?;
        Ok(resp
            .headers
            .get_all("dav")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect())
    }

    /// `PROPFIND` for the given properties.
    pub async fn propfind(
        &self,
        url: &Url,
        depth: Depth,
        props: &[PropName],
        creds: &Credentials,
    ) -> Result<Multistatus, CaldavError> {
        let resp = self.propfind_raw(url, depth, props, creds).await?;
        let resp = self.check(&PROPFIND, url, resp)?;
        Self::multistatus(&PROPFIND, url, &resp)
    }

    /// `PROPFIND` without status checking (discovery inspects redirects itself).
    pub async fn propfind_raw(
        &self,
        url: &Url,
        depth: Depth,
        props: &[PropName],
        creds: &Credentials,
    ) -> Result<HttpResponse, CaldavError> {
        self.send(
            &PROPFIND,
            url,
            Some(creds),
            &[("depth", depth.header())],
            Some((XML, request::propfind(props))),
        )
        .await
    }

    /// Parses a 207 answer obtained with [`Self::propfind_raw`].
    pub fn parse_propfind(
        &self,
        url: &Url,
        resp: &HttpResponse,
    ) -> Result<Multistatus, CaldavError> {
        Self::multistatus(&PROPFIND, url, resp)
    }

    /// `GET` of a calendar object.
    pub async fn get(&self, url: &Url, creds: &Credentials) -> Result<CalendarObject, CaldavError> {
        let resp = self.send(&Method::GET, url, Some(creds), &[], None).await?;
        let resp = self.check(&Method::GET, url, resp)?;
        let (etag, schedule_tag) = (resp.etag(), resp.schedule_tag());
        Ok(CalendarObject {
            url: url.clone(),
            etag,
            schedule_tag,
            data: String::from_utf8(resp.body).map_err(|_| Self::not_utf8(&Method::GET, url))?,
        })
    }

    /// `PUT` of iCalendar data under a precondition.
    pub async fn put(
        &self,
        url: &Url,
        ics: String,
        condition: WriteCondition<'_>,
        creds: &Credentials,
    ) -> Result<PutOutcome, CaldavError> {
        let resp = self.put_raw(url, ics, condition, creds).await?;
        self.put_outcome(url, resp)
    }

    /// [`Self::put`] without status checking, for callers that read an error body themselves
    /// (the `DAV:href` of a `CALDAV:unique-scheduling-object-resource` refusal, RFC 6638
    /// §3.2.4.1); [`Self::put_outcome`] then checks the answer.
    pub async fn put_raw(
        &self,
        url: &Url,
        ics: String,
        condition: WriteCondition<'_>,
        creds: &Credentials,
    ) -> Result<HttpResponse, CaldavError> {
        self.send(
            &Method::PUT,
            url,
            Some(creds),
            &[condition.header()],
            Some((CALENDAR, ics)),
        )
        .await
    }

    /// What a PUT answer obtained with [`Self::put_raw`] reported; a non-2xx answer is the
    /// matching error.
    pub fn put_outcome(&self, url: &Url, resp: HttpResponse) -> Result<PutOutcome, CaldavError> {
        let resp = self.check(&Method::PUT, url, resp)?;
        Ok(PutOutcome {
            created: resp.status == StatusCode::CREATED.as_u16(),
            etag: resp.etag(),
            schedule_tag: resp.schedule_tag(),
        })
    }

    /// `DELETE`, with `If-Match` when an ETag is given.
    pub async fn delete(
        &self,
        url: &Url,
        if_match: Option<&str>,
        creds: &Credentials,
    ) -> Result<(), CaldavError> {
        self.delete_if(url, if_match.map(WriteCondition::IfMatch), creds)
            .await
    }

    /// `DELETE` under a precondition: `If-Match`, or `If-Schedule-Tag-Match`, which RFC 6638
    /// §3.2.10 and §8.3 define for DELETE as for PUT (a scheduling object is deleted only if no
    /// consequential change happened since it was read); `None` deletes unconditionally (a
    /// collection). [`WriteCondition::Create`] sends `If-None-Match: *`, which no existing
    /// resource passes.
    pub async fn delete_if(
        &self,
        url: &Url,
        condition: Option<WriteCondition<'_>>,
        creds: &Credentials,
    ) -> Result<(), CaldavError> {
        let header = condition.map(WriteCondition::header);
        let resp = self
            .send(&Method::DELETE, url, Some(creds), header.as_slice(), None)
            .await?;
        self.check(&Method::DELETE, url, resp).map(|_| ())
    }

    /// `REPORT calendar-query` on a calendar collection. A UID filter is a `text-match`, which
    /// RFC 4791 §9.7.5 defines as a substring match (`X` also finds `X-late`), so objects
    /// without a component whose UID is exactly the one asked for are dropped here, for every
    /// caller.
    pub async fn calendar_query(
        &self,
        calendar: &Url,
        filter: &QueryFilter,
        creds: &Credentials,
    ) -> Result<Vec<CalendarObject>, CaldavError> {
        let mut objects = self
            .report_objects(calendar, request::calendar_query(filter), creds)
            .await?;
        if let Some(uid) = filter.uid() {
            objects.retain(|o| has_uid(&o.data, uid));
        }
        Ok(objects)
    }

    /// `REPORT calendar-multiget` for the given object URLs (all in `calendar`).
    pub async fn calendar_multiget(
        &self,
        calendar: &Url,
        objects: &[Url],
        creds: &Credentials,
    ) -> Result<Vec<CalendarObject>, CaldavError> {
        let hrefs: Vec<String> = objects.iter().map(|u| u.path().to_owned()).collect();
        self.report_objects(calendar, request::calendar_multiget(&hrefs), creds)
            .await
    }

    async fn report_objects(
        &self,
        calendar: &Url,
        body: String,
        creds: &Credentials,
    ) -> Result<Vec<CalendarObject>, CaldavError> {
        let resp = self
            .send(
                &REPORT,
                calendar,
                Some(creds),
                &[("depth", "1")],
                Some((XML, body)),
            )
            .await?;
        let resp = self.check(&REPORT, calendar, resp)?;
        let ms = Self::multistatus(&REPORT, calendar, &resp)?;
        let mut out = Vec::new();
        for mut r in ms.responses {
            // Taken out, not copied: calendar data is the bulk of the answer.
            let Some(data) = r.take_text(multistatus::CALDAV, "calendar-data") else {
                continue; // 404 entries of a multiget, or the collection itself
            };
            out.push(CalendarObject {
                url: self.resolve(calendar, &r.href)?,
                etag: r
                    .prop(multistatus::DAV, "getetag")
                    .map(|p| p.text.trim().to_owned()),
                schedule_tag: r
                    .prop(multistatus::CALDAV, "schedule-tag")
                    .map(|p| p.text.trim().to_owned())
                    .filter(|t| !t.is_empty()),
                data,
            });
        }
        Ok(out)
    }

    /// `MKCALENDAR` with a display name.
    pub async fn mkcalendar(
        &self,
        url: &Url,
        displayname: &str,
        creds: &Credentials,
    ) -> Result<(), CaldavError> {
        let resp = self
            .send(
                &MKCALENDAR,
                url,
                Some(creds),
                &[],
                Some((XML, request::mkcalendar(displayname))),
            )
            .await?;
        self.check(&MKCALENDAR, url, resp).map(|_| ())
    }

    /// `MOVE` a resource to a new URL on the same server.
    pub async fn move_to(
        &self,
        from: &Url,
        to: &Url,
        overwrite: bool,
        creds: &Credentials,
    ) -> Result<(), CaldavError> {
        let headers = [
            ("destination", to.as_str()),
            ("overwrite", if overwrite { "T" } else { "F" }),
        ];
        let resp = self.send(&MOVE, from, Some(creds), &headers, None).await?;
        self.check(&MOVE, from, resp).map(|_| ())
    }

    /// `POST` of a scheduling request (a VFREEBUSY REQUEST) to a schedule outbox; the answer is
    /// parsed per recipient (RFC 6638 §5, §10.1).
    pub async fn post_schedule(
        &self,
        outbox: &Url,
        ics: String,
        creds: &Credentials,
    ) -> Result<Vec<Recipient>, CaldavError> {
        let resp = self
            .send(
                &Method::POST,
                outbox,
                Some(creds),
                &[],
                Some((CALENDAR, ics)),
            )
            .await?;
        let resp = self.check(&Method::POST, outbox, resp)?;
        let text = Self::text(&Method::POST, outbox, &resp)?;
        multistatus::parse_schedule_response(text).map_err(|detail| CaldavError::Malformed {
            method: "POST".into(),
            path: outbox.path().to_owned(),
            detail,
        })
    }
}

/// True when some component of the iCalendar `text` has exactly this UID.
fn has_uid(text: &str, uid: &str) -> bool {
    crate::ical::contentline::unfold(text).iter().any(|line| {
        crate::ical::contentline::ContentLine::parse(line)
            .is_ok_and(|l| l.name == "UID" && l.value.trim() == uid)
    })
}

/// The error and its sources on one line (reqwest hides the useful part in `source()`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_filter_is_exact() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:abc-\r\n late\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert!(has_uid(text, "abc-late"));
        assert!(!has_uid(text, "abc"));
        assert!(!has_uid("garbage", "abc"));
    }
}
