//! Upstream resilience: retries with backoff, `Retry-After`, and a circuit breaker.
//!
//! [`super::client::CaldavClient::send`] runs every upstream request through the policy here.
//!
//! ## What is retried
//!
//! - **Safe methods** (GET, HEAD, OPTIONS, PROPFIND, REPORT: safe, hence idempotent, by
//!   RFC 9110 §9.2.1 and §9.2.2, RFC 4918 §9.1, RFC 3253 §3.6) are retried on transport errors
//!   (no connection, timeout, connection broken), on 502, 503, 504 (RFC 9110 §15.6.3–§15.6.5)
//!   and on 429 Too Many Requests (RFC 6585 §4).
//! - **Every other method** (PUT, POST, DELETE, MKCALENDAR, MOVE, PROPPATCH, …) is retried only
//!   when the request provably was not processed: no TCP/TLS connection could be made (nothing
//!   was sent), or the answer was 429 or 503 (RFC 9110 §15.6.4) *with* a `Retry-After`
//!   (RFC 9110 §10.2.3): the server said it did not handle the request and when to come back.
//!   RFC 9110 §9.2.2 calls PUT and DELETE idempotent, but for a calendar server they are not
//!   harmless to repeat: a PUT with implicit scheduling (RFC 6638 §3.2) sends invitations again,
//!   and a repeated DELETE answers 404 for a delete that succeeded. So never after a timeout or
//!   a connection broken mid-request (the server may have acted), never on 500, 502 or 504.
//! - `Retry-After` is honoured in both forms, delta-seconds and the IMF-fixdate HTTP-date
//!   (`Sun, 06 Nov 1994 08:49:37 GMT`, parsed by hand, see [`parse_retry_after`]); the obsolete
//!   RFC 850 and asctime date forms are treated as absent. The wait replaces the backoff; a
//!   wait longer than [`Resilience::max_retry_after`] is not waited for and the answer is
//!   reported as it is.
//! - Other waits follow an exponential backoff with jitter ([`Resilience::backoff`]).
//!
//! ## Circuit breaker
//!
//! The breaker counts consecutive upstream failures (transport errors and 5xx answers; any
//! other answer, 4xx included, shows a working server and resets the count). At
//! [`Resilience::breaker_failures`] it opens for [`Resilience::breaker_cooldown`]: requests fail
//! at once, as "cannot connect", without touching the network. After the cooldown one trial
//! request goes through (half-open); its success closes the circuit, its failure opens it
//! again.

use super::error::TransportKind;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The retry and circuit-breaker policy of a [`super::CaldavClient`]
/// (see [`super::CaldavClient::with_resilience`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resilience {
    /// Retries after the first attempt (0: never retry). Default 2.
    pub max_retries: u32,
    /// The backoff before the first retry; it doubles per retry, with jitter. Default 100 ms.
    pub backoff_base: Duration,
    /// The longest backoff. Default 2 s.
    pub backoff_max: Duration,
    /// The longest `Retry-After` (RFC 9110 §10.2.3) that is waited for; a longer one is not
    /// waited for and the answer is reported. Default 10 s.
    pub max_retry_after: Duration,
    /// Consecutive upstream failures that open the circuit; 0 disables the breaker. Default 5.
    pub breaker_failures: u32,
    /// How long an open circuit fails requests at once before a trial request. Default 10 s.
    pub breaker_cooldown: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(10),
        }
    }
}

/// Whether repeating `method` cannot change anything on the server: the safe methods of
/// RFC 9110 §9.2.1 (GET, HEAD, OPTIONS) and the WebDAV reads PROPFIND (RFC 4918 §9.1) and
/// REPORT (RFC 3253 §3.6). Only these are retried after the server may have seen the request.
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT")
}

/// What one attempt came to, as far as the retry policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed<'a> {
    /// The server answered with this status (and this `Retry-After` header, if any).
    Answer {
        status: u16,
        retry_after: Option<&'a str>,
    },
    /// The exchange failed. `sent` is false when no connection was made, so the server cannot
    /// have seen the request.
    Transport { kind: TransportKind, sent: bool },
    /// Anything else (a response over the size limit): final.
    Other,
}

impl Observed<'_> {
    /// Whether this counts as an upstream failure for the circuit breaker: transport errors
    /// and 5xx answers.
    pub(crate) fn is_failure(&self) -> bool {
        match self {
            Observed::Answer { status, .. } => *status >= 500,
            Observed::Transport { .. } => true,
            Observed::Other => false,
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The outcome is final (a success, or an error that must not or need not be retried).
    Done,
    /// Retry after `wait`; `reason` says why (for the log).
    Retry { wait: Duration, reason: String },
    /// A retry would have been allowed but is not made; `reason` says why (for the log).
    GiveUp { reason: String },
}

impl Resilience {
    /// The backoff before retry number `retry` (1 for the first retry): `backoff_base`
    /// doubled per earlier retry and capped at `backoff_max`, then "equal jitter": a duration
    /// between half of that and all of it, so that clients failing together do not retry in
    /// lockstep. Never more than `backoff_max`.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_with(retry, jitter())
    }

    /// [`Self::backoff`] with the random part given (for tests).
    pub(crate) fn backoff_with(&self, retry: u32, random: u64) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let nominal = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        let half = nominal / 2;
        let spread = u64::try_from((nominal - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % spread.saturating_add(1))
    }

    /// Whether and when to retry after attempt number `attempts` (1 for the first) of a
    /// `method` request came to `observed`. `now` is the wall clock for an HTTP-date
    /// `Retry-After`; `random` feeds the backoff jitter.
    pub(crate) fn decide(
        &self,
        method: &str,
        observed: &Observed<'_>,
        attempts: u32,
        now: SystemTime,
        random: u64,
    ) -> Decision {
        let safe = is_safe_method(method);
        // (retryable, reason, the server's wait when it named one)
        let (reason, server_wait) = match *observed {
            Observed::Transport { sent: false, .. } => ("connect failure".to_owned(), None),
            Observed::Transport { kind, sent: true } if safe => (
                match kind {
                    TransportKind::Connect => "connect failure",
                    TransportKind::Timeout => "timeout",
                    TransportKind::Broken => "connection broken",
                }
                .to_owned(),
                None,
            ),
            Observed::Answer {
                status: status @ (429 | 503),
                retry_after,
            } => {
                let after = retry_after.and_then(|v| parse_retry_after(v, now));
                match after {
                    Some(wait) if wait > self.max_retry_after => {
                        return Decision::GiveUp {
                            reason: format!(
                                "HTTP {status} with Retry-After {} s, longer than the {} s \
                                 the gateway waits",
                                wait.as_secs(),
                                self.max_retry_after.as_secs()
                            ),
                        };
                    }
                    Some(wait) => (format!("HTTP {status} with Retry-After"), Some(wait)),
                    None if safe => (format!("HTTP {status}"), None),
                    None => return Decision::Done,
                }
            }
            Observed::Answer {
                status: status @ (502 | 504),
                ..
            } if safe => (format!("HTTP {status}"), None),
            _ => return Decision::Done,
        };
        if attempts > self.max_retries {
            return Decision::GiveUp {
                reason: format!("{reason}, and {} retries were made", self.max_retries),
            };
        }
        Decision::Retry {
            wait: server_wait.unwrap_or_else(|| self.backoff_with(attempts, random)),
            reason,
        }
    }
}

/// A random number without a random-number crate: std's `RandomState` is seeded randomly per
/// thread and changes its keys on every `new()`; a counter makes successive values differ
/// even if it did not.
pub(crate) fn jitter() -> u64 {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The wait a `Retry-After` value asks for (RFC 9110 §10.2.3): delta-seconds (`120`), or an
/// HTTP-date in the preferred IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110
/// §5.6.7), relative to `now` (a date in the past is a wait of zero). The obsolete RFC 850 and
/// asctime forms, and anything else, are `None`: treated as if there were no `Retry-After`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A huge number saturates: it is longer than any max_retry_after anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_imf_fixdate(value)?;
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(at))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Seconds since the Unix epoch of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. The day
/// name is checked for form only (three letters), not against the date.
fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    if !b[..3].iter().all(u8::is_ascii_alphabetic)
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let day = num(5..7)?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as u64 + 1;
    let year = num(12..16)?;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if year < 1970 || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar (year ≥ 1970),
/// after Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The state of the upstream circuit breaker, for readiness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests go to the upstream.
    Closed,
    /// Requests fail at once, for `remaining` more.
    Open {
        /// Time until a trial request may go through.
        remaining: Duration,
    },
    /// The cooldown is over: the next request (one at a time) is a trial.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        failures: u32,
    },
    /// `trial`: a trial request is in flight.
    HalfOpen {
        trial: bool,
        failures: u32,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// How often the circuit opened, for the log.
    opened: u64,
}

/// The circuit breaker shared by all clones of a client. Every method takes the current time,
/// so that tests can drive it without sleeping.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// A request refused by an open circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The consecutive failures that opened the circuit.
    pub failures: u32,
    /// Time until a trial request may go; `None` when a trial request is in flight.
    pub next_try: Option<Duration>,
}

impl Rejection {
    /// The detail text of the "cannot connect" error the request fails with.
    pub(crate) fn detail(&self) -> String {
        match self.next_try {
            Some(wait) => format!(
                "circuit open after {} consecutive upstream failures; next try in {}s",
                self.failures,
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            ),
            None => format!(
                "circuit open after {} consecutive upstream failures; a trial request is in \
                 flight",
                self.failures
            ),
        }
    }
}

/// Permission for one request to go to the upstream; [`Admission::settle`] reports its
/// outcome. A trial admission dropped unsettled (the request was cancelled) frees the trial
/// slot, so that the circuit cannot stay half-open with no trial forever.
#[derive(Debug)]
pub(crate) struct Admission<'a> {
    breaker: &'a Breaker,
    trial: bool,
    settled: bool,
}

impl Admission<'_> {
    /// Records the outcome of the admitted request.
    pub(crate) fn settle(mut self, failed: bool, now: Instant) {
        self.settled = true;
        self.breaker.record(self.trial, failed, now);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.trial && !self.settled {
            let mut inner = self.breaker.lock();
            if let State::HalfOpen { trial, .. } = &mut inner.state {
                *trial = false;
            }
        }
    }
}

/// A state change, logged after the lock is released.
enum Transition {
    Opened { failures: u32, opened: u64 },
    HalfOpen,
    Closed,
}

impl Breaker {
    pub(crate) fn new(policy: &Resilience) -> Breaker {
        Breaker {
            threshold: policy.breaker_failures,
            cooldown: policy.breaker_cooldown,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                opened: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a request may go to the upstream now.
    pub(crate) fn admit(&self, now: Instant) -> Result<Admission<'_>, Rejection> {
        let admission = |trial| Admission {
            breaker: self,
            trial,
            settled: false,
        };
        if self.threshold == 0 {
            return Ok(admission(false));
        }
        let mut inner = self.lock();
        match inner.state {
            State::Closed { .. } => Ok(admission(false)),
            State::Open { until, failures } if now >= until => {
                inner.state = State::HalfOpen {
                    trial: true,
                    failures,
                };
                drop(inner);
                self.log(Transition::HalfOpen);
                Ok(admission(true))
            }
            State::Open { until, failures } => Err(Rejection {
                failures,
                next_try: Some(until - now),
            }),
            State::HalfOpen {
                trial: false,
                failures,
            } => {
                inner.state = State::HalfOpen {
                    trial: true,
                    failures,
                };
                Ok(admission(true))
            }
            State::HalfOpen {
                trial: true,
                failures,
            } => Err(Rejection {
                failures,
                next_try: None,
            }),
        }
    }

    /// Records the outcome of an admitted request. Only a trial request decides a half-open
    /// circuit; requests admitted before the circuit opened and finishing later change nothing.
    fn record(&self, trial: bool, failed: bool, now: Instant) {
        if self.threshold == 0 {
            return;
        }
        let mut inner = self.lock();
        let transition = match inner.state {
            State::Closed { failures } if failed => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    Some(self.open(&mut inner, failures, now))
                } else {
                    inner.state = State::Closed { failures };
                    None
                }
            }
            State::Closed { .. } => {
                inner.state = State::Closed { failures: 0 };
                None
            }
            State::HalfOpen { failures, .. } if trial && failed => {
                Some(self.open(&mut inner, failures.saturating_add(1), now))
            }
            State::HalfOpen { .. } if trial => {
                inner.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            State::HalfOpen { .. } | State::Open { .. } => None,
        };
        drop(inner);
        if let Some(t) = transition {
            self.log(t);
        }
    }

    /// Opens the circuit for a cooldown after `failures` consecutive failures.
    fn open(&self, inner: &mut Inner, failures: u32, now: Instant) -> Transition {
        inner.opened += 1;
        inner.state = State::Open {
            until: now + self.cooldown,
            failures,
        };
        Transition::Opened {
            failures,
            opened: inner.opened,
        }
    }

    /// Logs a state change (called with the lock released).
    fn log(&self, t: Transition) {
        match t {
            Transition::Opened { failures, opened } => tracing::warn!(
                target: "calgate::upstream",
                failures,
                cooldown_ms = self.cooldown.as_millis() as u64,
                opened_total = opened,
                "upstream circuit opened: requests fail at once until the cooldown is over"
            ),
            Transition::HalfOpen => tracing::info!(
                target: "calgate::upstream",
                "upstream circuit half-open: one trial request goes through"
            ),
            Transition::Closed => tracing::info!(
                target: "calgate::upstream",
                "upstream circuit closed: the trial request succeeded"
            ),
        }
    }

    /// The state as a readiness check sees it.
    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        if self.threshold == 0 {
            return CircuitState::Closed;
        }
        match self.lock().state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until, .. } if now < until => CircuitState::Open {
                remaining: until - now,
            },
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Resilience {
        Resilience::default()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = policy();
        assert_eq!(p.max_retries, 2);
        assert_eq!(p.backoff_base, Duration::from_millis(100));
        assert_eq!(p.backoff_max, Duration::from_secs(2));
        assert_eq!(p.max_retry_after, Duration::from_secs(10));
        assert_eq!(p.breaker_failures, 5);
        assert_eq!(p.breaker_cooldown, Duration::from_secs(10));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy();
        for retry in 1..=40u32 {
            let nominal = Duration::from_millis(100)
                .saturating_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
                .min(Duration::from_secs(2));
            for random in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                let b = p.backoff_with(retry, random);
                assert!(
                    b >= nominal / 2,
                    "retry {retry}: {b:?} < half of {nominal:?}"
                );
                assert!(b <= nominal, "retry {retry}: {b:?} > {nominal:?}");
                assert!(b <= p.backoff_max);
            }
            // The real jitter stays in bounds too.
            let b = p.backoff(retry);
            assert!(b >= nominal / 2 && b <= nominal, "{b:?}");
        }
        assert_eq!(p.backoff_with(1, 0), Duration::from_millis(50));
        assert_eq!(p.backoff_with(2, 0), Duration::from_millis(100));
        assert_eq!(p.backoff_with(3, 0), Duration::from_millis(200));
        assert_eq!(
            p.backoff_with(6, 0),
            Duration::from_secs(1),
            "capped at 2 s"
        );
        // The jitter spreads: not every value is the same.
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(spread.len() > 1);
    }

    #[test]
    fn zero_backoff_is_zero() {
        let p = Resilience {
            backoff_base: Duration::ZERO,
            ..policy()
        };
        assert_eq!(p.backoff_with(1, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_date() {
        // 1994-11-06T08:49:37Z is 784111777 s after the epoch.
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        // 2000-02-29 (leap day, century divisible by 400) and 2024-03-01.
        assert_eq!(
            parse_imf_fixdate("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(
            parse_imf_fixdate("Fri, 01 Mar 2024 00:00:00 GMT"),
            Some(1_709_251_200)
        );
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(30))
        );
        // Surrounding whitespace (optional whitespace around a field value) is ignored.
        assert_eq!(
            parse_retry_after(" Sun, 06 Nov 1994 08:49:37 GMT ", now),
            Some(Duration::from_secs(30))
        );
        // In the past: no wait.
        let later = UNIX_EPOCH + Duration::from_secs(784_111_777 + 30);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        // Obsolete forms and garbage: treated as absent.
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:3x GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun,  6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 gmt",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    fn answer(status: u16, retry_after: Option<&str>) -> Observed<'_> {
        Observed::Answer {
            status,
            retry_after,
        }
    }

    fn retried(d: &Decision) -> Option<Duration> {
        match d {
            Decision::Retry { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    #[test]
    fn safe_methods_retry_on_transport_errors_and_gateway_statuses() {
        let p = policy();
        let now = SystemTime::now();
        for method in ["GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"] {
            for kind in [
                TransportKind::Connect,
                TransportKind::Timeout,
                TransportKind::Broken,
            ] {
                for sent in [false, true] {
                    let d = p.decide(method, &Observed::Transport { kind, sent }, 1, now, 0);
                    assert_eq!(
                        retried(&d),
                        Some(Duration::from_millis(50)),
                        "{method} {kind:?}"
                    );
                }
            }
            for status in [429, 502, 503, 504] {
                let d = p.decide(method, &answer(status, None), 1, now, 0);
                assert!(retried(&d).is_some(), "{method} {status}");
            }
            for status in [200, 207, 301, 400, 401, 403, 404, 409, 412, 500, 501, 505] {
                let d = p.decide(method, &answer(status, None), 1, now, 0);
                assert_eq!(d, Decision::Done, "{method} {status}");
            }
        }
    }

    #[test]
    fn side_effecting_methods_retry_only_when_not_processed() {
        let p = policy();
        let now = SystemTime::now();
        for method in ["PUT", "POST", "DELETE", "MKCALENDAR", "MOVE", "PROPPATCH"] {
            let not_sent = Observed::Transport {
                kind: TransportKind::Connect,
                sent: false,
            };
            assert!(retried(&p.decide(method, &not_sent, 1, now, 0)).is_some());
            // A connect timeout is a timeout by kind, but nothing was sent.
            let connect_timeout = Observed::Transport {
                kind: TransportKind::Timeout,
                sent: false,
            };
            assert!(retried(&p.decide(method, &connect_timeout, 1, now, 0)).is_some());
            for kind in [TransportKind::Timeout, TransportKind::Broken] {
                let d = p.decide(method, &Observed::Transport { kind, sent: true }, 1, now, 0);
                assert_eq!(d, Decision::Done, "{method} {kind:?}");
            }
            for status in [500, 502, 503, 504, 429] {
                assert_eq!(
                    p.decide(method, &answer(status, None), 1, now, 0),
                    Decision::Done,
                    "{method} {status} without Retry-After"
                );
            }
            for status in [503, 429] {
                assert_eq!(
                    retried(&p.decide(method, &answer(status, Some("1")), 1, now, 0)),
                    Some(Duration::from_secs(1)),
                    "{method} {status} with Retry-After"
                );
                // An unreadable Retry-After is no Retry-After.
                assert_eq!(
                    p.decide(method, &answer(status, Some("later")), 1, now, 0),
                    Decision::Done
                );
            }
            for status in [500, 502, 504] {
                assert_eq!(
                    p.decide(method, &answer(status, Some("1")), 1, now, 0),
                    Decision::Done,
                    "{method} {status}: Retry-After only counts on 429 and 503"
                );
            }
        }
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_bounded() {
        let p = policy();
        let now = SystemTime::now();
        let d = p.decide("REPORT", &answer(429, Some("3")), 1, now, 0);
        assert_eq!(retried(&d), Some(Duration::from_secs(3)));
        for method in ["GET", "PUT"] {
            let d = p.decide(method, &answer(503, Some("3600")), 1, now, 0);
            assert!(matches!(d, Decision::GiveUp { .. }), "{method}: {d:?}");
        }
        let d = p.decide("GET", &answer(503, Some("10")), 1, now, 0);
        assert_eq!(
            retried(&d),
            Some(Duration::from_secs(10)),
            "the bound itself is waited"
        );
    }

    #[test]
    fn retries_stop_after_max_retries() {
        let p = policy();
        let now = SystemTime::now();
        let broken = Observed::Transport {
            kind: TransportKind::Broken,
            sent: true,
        };
        assert!(retried(&p.decide("GET", &broken, 1, now, 0)).is_some());
        assert!(retried(&p.decide("GET", &broken, 2, now, 0)).is_some());
        assert!(matches!(
            p.decide("GET", &broken, 3, now, 0),
            Decision::GiveUp { .. }
        ));
        let none = Resilience {
            max_retries: 0,
            ..policy()
        };
        assert!(matches!(
            none.decide("GET", &broken, 1, now, 0),
            Decision::GiveUp { .. }
        ));
    }

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(&Resilience {
            breaker_failures: failures,
            breaker_cooldown: Duration::from_secs(10),
            ..policy()
        })
    }

    fn fail(b: &Breaker, now: Instant) {
        b.admit(now).expect("admitted").settle(true, now);
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_and_a_success_resets() {
        let b = breaker(3);
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        b.admit(t0).unwrap().settle(false, t0); // a success (or a 4xx) resets the count
        fail(&b, t0);
        fail(&b, t0);
        assert_eq!(b.state(t0), CircuitState::Closed);
        fail(&b, t0);
        assert_eq!(
            b.state(t0),
            CircuitState::Open {
                remaining: Duration::from_secs(10)
            }
        );
        let r = b.admit(t0 + Duration::from_millis(1500)).unwrap_err();
        assert_eq!(r.failures, 3);
        assert_eq!(r.next_try, Some(Duration::from_millis(8500)));
        assert_eq!(
            r.detail(),
            "circuit open after 3 consecutive upstream failures; next try in 9s"
        );
    }

    #[test]
    fn half_open_admits_one_trial_and_its_outcome_decides() {
        let b = breaker(2);
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state(t1), CircuitState::HalfOpen);
        let trial = b.admit(t1).expect("the trial goes through");
        let other = b.admit(t1).expect_err("one trial at a time");
        assert_eq!(other.next_try, None);
        assert!(other.detail().contains("trial request is in flight"));
        // The trial fails: open again for a full cooldown.
        trial.settle(true, t1);
        assert_eq!(
            b.state(t1),
            CircuitState::Open {
                remaining: Duration::from_secs(10)
            }
        );
        assert_eq!(b.admit(t1).unwrap_err().failures, 3);
        // Next trial succeeds: closed, and the count starts over.
        let t2 = t1 + Duration::from_secs(10);
        b.admit(t2).unwrap().settle(false, t2);
        assert_eq!(b.state(t2), CircuitState::Closed);
        fail(&b, t2);
        assert_eq!(b.state(t2), CircuitState::Closed);
    }

    #[test]
    fn an_abandoned_trial_frees_the_slot() {
        let b = breaker(1);
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + Duration::from_secs(11);
        drop(b.admit(t1).expect("trial"));
        assert_eq!(b.state(t1), CircuitState::HalfOpen);
        b.admit(t1).expect("a new trial").settle(false, t1);
        assert_eq!(b.state(t1), CircuitState::Closed);
    }

    #[test]
    fn late_results_do_not_decide_an_open_or_half_open_circuit() {
        let b = breaker(1);
        let t0 = Instant::now();
        let late = b.admit(t0).unwrap(); // admitted while closed
        fail(&b, t0);
        late.settle(false, t0); // finishes after the circuit opened: ignored
        assert!(matches!(b.state(t0), CircuitState::Open { .. }));
        let t1 = t0 + Duration::from_secs(10);
        let trial = b.admit(t1).unwrap();
        b.record(false, false, t1); // a non-trial success while half-open: ignored
        assert_eq!(b.state(t1), CircuitState::HalfOpen);
        trial.settle(false, t1);
        assert_eq!(b.state(t1), CircuitState::Closed);
    }

    #[test]
    fn zero_failures_disables_the_breaker() {
        let b = breaker(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            fail(&b, t0);
        }
        assert_eq!(b.state(t0), CircuitState::Closed);
        assert!(b.admit(t0).is_ok());
    }

    #[test]
    fn failures_are_transport_errors_and_5xx() {
        assert!(
            Observed::Transport {
                kind: TransportKind::Broken,
                sent: true
            }
            .is_failure()
        );
        assert!(answer(500, None).is_failure());
        assert!(answer(503, Some("1")).is_failure());
        assert!(!answer(429, None).is_failure());
        assert!(!answer(404, None).is_failure());
        assert!(!answer(207, None).is_failure());
        assert!(!Observed::Other.is_failure());
    }
}
