//! Prometheus metrics: what the gateway counts, and the text exposition the admin listener
//! serves at `/metrics`.
//!
//! One [`Metrics`] per gateway, shared as `Arc<Metrics>`; there are no global statics, so several
//! gateways in one process (tests) count separately. Every label set is known in advance (the
//! protocols, a fixed list of verbs and upstream methods, the result and status classes), so
//! every series is a preallocated atomic: recording is a relaxed `fetch_add`, with no lock and no
//! allocation. Free-form inputs are folded into `other` so a misbehaving client cannot grow the
//! label cardinality.
//!
//! # Families
//!
//! | family | type | labels |
//! |---|---|---|
//! | `calgate_auth_failures_total` | counter | `protocol` |
//! | `calgate_build_info` | gauge (always 1) | `version` |
//! | `calgate_commands_total` | counter | `protocol`, `verb`, `result` |
//! | `calgate_connections_open` | gauge | `protocol` |
//! | `calgate_connections_refused_total` | counter | `protocol`, `reason` |
//! | `calgate_connections_total` | counter | `protocol` |
//! | `calgate_limit_hits_total` | counter | `limit` |
//! | `calgate_upstream_circuit_open` | gauge (0/1) | none |
//! | `calgate_upstream_request_duration_seconds` | histogram | `method`, `status_class` |
//! | `calgate_upstream_retries_total` | counter | `method` |
//!
//! Families whose label sets are small and fixed (per protocol, per limit, per refusal reason)
//! always show every series, at 0 until counted, so `rate()` has a baseline. The open-ended ones
//! (commands, upstream requests and retries) show a series once it has been counted.
//!
//! # Format
//!
//! [`Metrics::render`] writes the Prometheus text exposition format 0.0.4: `# HELP` and
//! `# TYPE` for every family (also before any sample exists), families sorted by name, series
//! sorted by label values, label values escaped (`\\`, `\"`, `\n`), histograms as cumulative
//! `_bucket` lines ending in `le="+Inf"`, then `_sum` and `_count`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The client protocol of a connection or command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// CAP (CSTP).
    Cap,
    /// CIP.
    Cip,
}

impl Protocol {
    const ALL: [Protocol; 2] = [Protocol::Cap, Protocol::Cip];

    /// The `protocol` label value: `cap` or `cip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Cap => "cap",
            Protocol::Cip => "cip",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a connection was refused before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusedReason {
    /// The gateway-wide connection cap (`limits.max_connections`).
    GlobalLimit,
    /// The per-client-IP connection cap.
    PerIpLimit,
}

impl RefusedReason {
    const ALL: [RefusedReason; 2] = [RefusedReason::GlobalLimit, RefusedReason::PerIpLimit];

    /// The `reason` label value: `global_limit` or `per_ip_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::GlobalLimit => "global_limit",
            RefusedReason::PerIpLimit => "per_ip_limit",
        }
    }

    /// The limit this refusal is a hit of.
    pub fn limit(self) -> Limit {
        match self {
            RefusedReason::GlobalLimit => Limit::Connections,
            RefusedReason::PerIpLimit => Limit::ConnectionsPerIp,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a client command ended: the `result` label of `calgate_commands_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandResult {
    /// The command succeeded.
    Ok,
    /// The command was malformed (syntax, arguments, payload the gateway cannot parse).
    Invalid,
    /// The command was well formed but not allowed (not authenticated, policy, a limit).
    Refused,
    /// The command failed (upstream error, internal error).
    Error,
    /// The command did not finish within its time limit.
    Timeout,
}

impl CommandResult {
    const ALL: [CommandResult; 5] = [
        CommandResult::Ok,
        CommandResult::Invalid,
        CommandResult::Refused,
        CommandResult::Error,
        CommandResult::Timeout,
    ];

    /// The `result` label value: `ok`, `invalid`, `refused`, `error` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandResult::Ok => "ok",
            CommandResult::Invalid => "invalid",
            CommandResult::Refused => "refused",
            CommandResult::Error => "error",
            CommandResult::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A configured limit that a client ran into: the `limit` label of `calgate_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The gateway-wide connection cap. Counted by [`Metrics::connection_refused`].
    Connections,
    /// The per-client-IP connection cap. Counted by [`Metrics::connection_refused`].
    ConnectionsPerIp,
    /// A command or data line longer than allowed.
    LineLength,
    /// A payload (SENDDATA entity, CIP data block) larger than allowed.
    PayloadSize,
    /// Too many SASL challenge/response round trips.
    SaslSteps,
    /// Too many commands before authentication.
    PreauthCommands,
    /// An authenticated session idle for too long.
    IdleTimeout,
    /// A session that did not authenticate in time.
    PreauthTimeout,
    /// A command that did not finish in time.
    CommandTimeout,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Limit; 9] = [
        Limit::Connections,
        Limit::ConnectionsPerIp,
        Limit::LineLength,
        Limit::PayloadSize,
        Limit::SaslSteps,
        Limit::PreauthCommands,
        Limit::IdleTimeout,
        Limit::PreauthTimeout,
        Limit::CommandTimeout,
    ];

    /// The `limit` label value, e.g. `line_length`.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::LineLength => "line_length",
            Limit::PayloadSize => "payload_size",
            Limit::SaslSteps => "sasl_steps",
            Limit::PreauthCommands => "preauth_commands",
            Limit::IdleTimeout => "idle_timeout",
            Limit::PreauthTimeout => "preauth_timeout",
            Limit::CommandTimeout => "command_timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The outcome class of an upstream request: the `status_class` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 200–299.
    Success,
    /// 300–399.
    Redirection,
    /// 400–499.
    ClientError,
    /// 500–599.
    ServerError,
    /// No usable response: connect or TLS failure, timeout, broken body, or a status outside
    /// 200–599.
    Error,
}

impl StatusClass {
    const ALL: [StatusClass; 5] = [
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Error,
    ];

    /// The class of a final HTTP status code; anything outside 200–599 is [`StatusClass::Error`].
    pub fn from_status(status: u16) -> StatusClass {
        match status {
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Error,
        }
    }

    /// The `status_class` label value: `2xx`, `3xx`, `4xx`, `5xx` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Error => "error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `verb` label values `calgate_commands_total` keeps; any other verb counts as `other`.
///
/// CAP commands (cap-04 §7.1) and SENDDATA methods (cap-04 §7.2, RFC 2446 §3), and CIP commands.
pub const VERBS: &[&str] = &[
    // CAP commands.
    "ABORT",
    "AUTHENTICATE",
    "CALIDEXPAND",
    "CAPABILITY",
    "CONTINUE",
    "DISCONNECT",
    "GENERATEUID",
    "IDENTIFY",
    "NOOP",
    "SENDDATA",
    "STARTTLS",
    "UPNEXPAND",
    // CAP SENDDATA methods.
    "CREATE",
    "DELETE",
    "MODIFY",
    "MOVE",
    "READ",
    // iTIP methods.
    "ADD",
    "CANCEL",
    "COUNTER",
    "DECLINECOUNTER",
    "PUBLISH",
    "REFRESH",
    "REPLY",
    "REQUEST",
    // CIP commands.
    "FREEBUSY",
    "HELP",
    "QUIT",
    "RSVP",
    "SENDEVENT",
];

/// The `method` label values the upstream families keep; any other method counts as `other`.
pub const UPSTREAM_METHODS: &[&str] = &[
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "MKCALENDAR",
    "MKCOL",
    "MOVE",
    "OPTIONS",
    "POST",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "REPORT",
];

/// The label value for anything outside [`VERBS`] or [`UPSTREAM_METHODS`].
pub const OTHER: &str = "other";

/// Upper bounds (inclusive, seconds) of the upstream duration histogram's finite buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// [`DURATION_BUCKETS`] in nanoseconds, for exact integer comparison.
const DURATION_BUCKETS_NANOS: [u64; 12] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// The index of `name` in `known` (ASCII case-insensitive), or `known.len()` for `other`.
fn label_index(known: &[&str], name: &str) -> usize {
    known
        .iter()
        .position(|k| k.eq_ignore_ascii_case(name))
        .unwrap_or(known.len())
}

/// The label value at `index` of `known`, `other` past its end.
fn label_at<'a>(known: &[&'a str], index: usize) -> &'a str {
    known.get(index).copied().unwrap_or(OTHER)
}

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// One histogram series: non-cumulative bucket counts (the last is `+Inf` only) and the sum.
#[derive(Debug, Default)]
struct HistogramCell {
    buckets: [AtomicU64; DURATION_BUCKETS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl HistogramCell {
    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The gateway's metrics. Share it as `Arc<Metrics>`; every recording method takes `&self`.
pub struct Metrics {
    version: &'static str,
    /// `[protocol]`
    connections_total: [AtomicU64; 2],
    /// `[protocol]`
    connections_open: [AtomicI64; 2],
    /// `[protocol][reason]`
    connections_refused: [[AtomicU64; 2]; 2],
    /// `[(protocol * (VERBS + 1) + verb) * results + result]`
    commands: Box<[AtomicU64]>,
    /// `[(method * classes) + class]`
    upstream_durations: Box<[HistogramCell]>,
    /// `[method]`
    upstream_retries: Box<[AtomicU64]>,
    upstream_circuit_open: AtomicBool,
    /// `[protocol]`
    auth_failures: [AtomicU64; 2],
    /// `[limit]`
    limit_hits: [AtomicU64; Limit::ALL.len()],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics; `calgate_build_info` carries this crate's version.
    pub fn new() -> Metrics {
        Metrics::with_version(env!("CARGO_PKG_VERSION"))
    }

    /// Empty metrics whose `calgate_build_info` carries `version`.
    pub fn with_version(version: &'static str) -> Metrics {
        Metrics {
            version,
            connections_total: Default::default(),
            connections_open: Default::default(),
            connections_refused: Default::default(),
            commands: counters(Protocol::ALL.len() * (VERBS.len() + 1) * CommandResult::ALL.len()),
            upstream_durations: (0..(UPSTREAM_METHODS.len() + 1) * StatusClass::ALL.len())
                .map(|_| HistogramCell::default())
                .collect(),
            upstream_retries: counters(UPSTREAM_METHODS.len() + 1),
            upstream_circuit_open: AtomicBool::new(false),
            auth_failures: Default::default(),
            limit_hits: Default::default(),
        }
    }

    /// A client connection was accepted and its session starts: counts
    /// `calgate_connections_total` and raises `calgate_connections_open` until the returned
    /// guard is dropped. Keep the guard in the connection task.
    pub fn connection_opened(self: &Arc<Self>, protocol: Protocol) -> ConnectionGuard {
        self.connections_total[protocol.index()].fetch_add(1, Ordering::Relaxed);
        self.connections_open[protocol.index()].fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            metrics: Arc::clone(self),
            protocol,
        }
    }

    /// A connection was refused over a connection cap: counts
    /// `calgate_connections_refused_total{protocol,reason}` and also the matching
    /// `calgate_limit_hits_total` ([`Limit::Connections`] or [`Limit::ConnectionsPerIp`]), so
    /// do not call [`Metrics::limit_hit`] for those. A refused connection is not counted in
    /// `calgate_connections_total`.
    pub fn connection_refused(&self, protocol: Protocol, reason: RefusedReason) {
        self.connections_refused[protocol.index()][reason.index()].fetch_add(1, Ordering::Relaxed);
        self.limit_hit(reason.limit());
    }

    /// A client command finished: counts `calgate_commands_total{protocol,verb,result}`. `verb`
    /// is matched against [`VERBS`] ignoring ASCII case; any other verb counts as `other`.
    pub fn command(&self, protocol: Protocol, verb: &str, result: CommandResult) {
        let verb = label_index(VERBS, verb);
        let index = (protocol.index() * (VERBS.len() + 1) + verb) * CommandResult::ALL.len()
            + result.index();
        self.commands[index].fetch_add(1, Ordering::Relaxed);
    }

    /// An upstream HTTP request finished after `elapsed` (including reading the body):
    /// observes `calgate_upstream_request_duration_seconds{method,status_class}`. `method` is
    /// matched against [`UPSTREAM_METHODS`] ignoring ASCII case; any other counts as `other`.
    /// Use [`StatusClass::from_status`] for a response and [`StatusClass::Error`] for none.
    pub fn upstream_request(&self, method: &str, status_class: StatusClass, elapsed: Duration) {
        let method = label_index(UPSTREAM_METHODS, method);
        self.upstream_durations[method * StatusClass::ALL.len() + status_class.index()]
            .observe(elapsed);
    }

    /// An upstream request is being retried: counts `calgate_upstream_retries_total{method}`
    /// (once per retry, not for the first attempt).
    pub fn upstream_retry(&self, method: &str) {
        self.upstream_retries[label_index(UPSTREAM_METHODS, method)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Sets `calgate_upstream_circuit_open`: `true` while the circuit breaker is open (the
    /// upstream is not being called), `false` when closed or half-open.
    pub fn set_upstream_circuit_open(&self, open: bool) {
        self.upstream_circuit_open.store(open, Ordering::Relaxed);
    }

    /// A client failed to authenticate: counts `calgate_auth_failures_total{protocol}`.
    pub fn auth_failure(&self, protocol: Protocol) {
        self.auth_failures[protocol.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A client ran into a configured limit: counts `calgate_limit_hits_total{limit}`.
    /// Connection caps are counted by [`Metrics::connection_refused`] instead.
    pub fn limit_hit(&self, limit: Limit) {
        self.limit_hits[limit.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of every family; see the module docs.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);

        family(
            &mut out,
            "calgate_auth_failures_total",
            "counter",
            "Client authentication failures.",
        );
        for p in Protocol::ALL {
            sample(
                &mut out,
                "calgate_auth_failures_total",
                &[("protocol", p.as_str())],
                load(&self.auth_failures[p.index()]),
            );
        }

        family(
            &mut out,
            "calgate_build_info",
            "gauge",
            "Always 1; the version label is the running calgate version.",
        );
        sample(
            &mut out,
            "calgate_build_info",
            &[("version", self.version)],
            1,
        );

        family(
            &mut out,
            "calgate_commands_total",
            "counter",
            "Client commands handled, by protocol, verb and result.",
        );
        let mut rows = Vec::new();
        for p in Protocol::ALL {
            for verb in 0..=VERBS.len() {
                for r in CommandResult::ALL {
                    let index = (p.index() * (VERBS.len() + 1) + verb) * CommandResult::ALL.len()
                        + r.index();
                    let n = load(&self.commands[index]);
                    if n > 0 {
                        rows.push(([p.as_str(), label_at(VERBS, verb), r.as_str()], n));
                    }
                }
            }
        }
        rows.sort_unstable();
        for ([protocol, verb, result], n) in rows {
            sample(
                &mut out,
                "calgate_commands_total",
                &[("protocol", protocol), ("verb", verb), ("result", result)],
                n,
            );
        }

        family(
            &mut out,
            "calgate_connections_open",
            "gauge",
            "Client connections currently open.",
        );
        for p in Protocol::ALL {
            let n = self.connections_open[p.index()].load(Ordering::Relaxed);
            sample(
                &mut out,
                "calgate_connections_open",
                &[("protocol", p.as_str())],
                n,
            );
        }

        family(
            &mut out,
            "calgate_connections_refused_total",
            "counter",
            "Client connections refused over a connection limit.",
        );
        for p in Protocol::ALL {
            for r in RefusedReason::ALL {
                sample(
                    &mut out,
                    "calgate_connections_refused_total",
                    &[("protocol", p.as_str()), ("reason", r.as_str())],
                    load(&self.connections_refused[p.index()][r.index()]),
                );
            }
        }

        family(
            &mut out,
            "calgate_connections_total",
            "counter",
            "Client connections accepted.",
        );
        for p in Protocol::ALL {
            sample(
                &mut out,
                "calgate_connections_total",
                &[("protocol", p.as_str())],
                load(&self.connections_total[p.index()]),
            );
        }

        family(
            &mut out,
            "calgate_limit_hits_total",
            "counter",
            "Times a client ran into a configured limit.",
        );
        let mut limits = Limit::ALL;
        limits.sort_unstable_by_key(|l| l.as_str());
        for l in limits {
            sample(
                &mut out,
                "calgate_limit_hits_total",
                &[("limit", l.as_str())],
                load(&self.limit_hits[l.index()]),
            );
        }

        family(
            &mut out,
            "calgate_upstream_circuit_open",
            "gauge",
            "1 while the upstream circuit breaker is open, else 0.",
        );
        sample(
            &mut out,
            "calgate_upstream_circuit_open",
            &[],
            u8::from(self.upstream_circuit_open.load(Ordering::Relaxed)),
        );

        self.render_durations(&mut out);

        family(
            &mut out,
            "calgate_upstream_retries_total",
            "counter",
            "Upstream requests retried, by HTTP method.",
        );
        let mut rows: Vec<(&str, u64)> = (0..=UPSTREAM_METHODS.len())
            .map(|m| {
                (
                    label_at(UPSTREAM_METHODS, m),
                    load(&self.upstream_retries[m]),
                )
            })
            .filter(|&(_, n)| n > 0)
            .collect();
        rows.sort_unstable();
        for (method, n) in rows {
            sample(
                &mut out,
                "calgate_upstream_retries_total",
                &[("method", method)],
                n,
            );
        }

        out
    }

    fn render_durations(&self, out: &mut String) {
        const NAME: &str = "calgate_upstream_request_duration_seconds";
        family(
            out,
            NAME,
            "histogram",
            "Upstream HTTP request duration in seconds, by method and status class.",
        );
        let mut rows = Vec::new();
        for m in 0..=UPSTREAM_METHODS.len() {
            for c in StatusClass::ALL {
                let cell = &self.upstream_durations[m * StatusClass::ALL.len() + c.index()];
                let buckets: Vec<u64> = cell.buckets.iter().map(load).collect();
                if buckets.iter().any(|&n| n > 0) {
                    let sum = load(&cell.sum_nanos);
                    rows.push(([label_at(UPSTREAM_METHODS, m), c.as_str()], buckets, sum));
                }
            }
        }
        rows.sort_unstable_by_key(|(labels, _, _)| *labels);
        let bucket_name = format!("{NAME}_bucket");
        for ([method, class], buckets, sum_nanos) in rows {
            let mut cumulative = 0;
            for (i, n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = match DURATION_BUCKETS.get(i) {
                    Some(bound) => bound.to_string(),
                    None => "+Inf".to_owned(),
                };
                sample(
                    out,
                    &bucket_name,
                    &[("method", method), ("status_class", class), ("le", &le)],
                    cumulative,
                );
            }
            // The count is the +Inf bucket, so the two always agree within one scrape.
            let labels = [("method", method), ("status_class", class)];
            sample(out, &format!("{NAME}_sum"), &labels, sum_nanos as f64 / 1e9);
            sample(out, &format!("{NAME}_count"), &labels, cumulative);
        }
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{label="value",...} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label_value(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value with `\`, `"` and line feed escaped (text format 0.0.4).
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text with `\` and line feed escaped (text format 0.0.4).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Keeps `calgate_connections_open{protocol}` raised while alive; from
/// [`Metrics::connection_opened`].
#[must_use = "the connection counts as open only while the guard is alive"]
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    protocol: Protocol,
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionGuard")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections_open[self.protocol.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of `text` starting with `prefix` (no comments).
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
            .collect()
    }

    #[test]
    fn empty_metrics_render_every_family() {
        let text = Metrics::with_version("9.9.9").render();
        let expected = "\
# HELP calgate_auth_failures_total Client authentication failures.
# TYPE calgate_auth_failures_total counter
calgate_auth_failures_total{protocol=\"cap\"} 0
calgate_auth_failures_total{protocol=\"cip\"} 0
# HELP calgate_build_info Always 1; the version label is the running calgate version.
# TYPE calgate_build_info gauge
calgate_build_info{version=\"9.9.9\"} 1
# HELP calgate_commands_total Client commands handled, by protocol, verb and result.
# TYPE calgate_commands_total counter
# HELP calgate_connections_open Client connections currently open.
# TYPE calgate_connections_open gauge
calgate_connections_open{protocol=\"cap\"} 0
calgate_connections_open{protocol=\"cip\"} 0
# HELP calgate_connections_refused_total Client connections refused over a connection limit.
# TYPE calgate_connections_refused_total counter
calgate_connections_refused_total{protocol=\"cap\",reason=\"global_limit\"} 0
calgate_connections_refused_total{protocol=\"cap\",reason=\"per_ip_limit\"} 0
calgate_connections_refused_total{protocol=\"cip\",reason=\"global_limit\"} 0
calgate_connections_refused_total{protocol=\"cip\",reason=\"per_ip_limit\"} 0
# HELP calgate_connections_total Client connections accepted.
# TYPE calgate_connections_total counter
calgate_connections_total{protocol=\"cap\"} 0
calgate_connections_total{protocol=\"cip\"} 0
# HELP calgate_limit_hits_total Times a client ran into a configured limit.
# TYPE calgate_limit_hits_total counter
calgate_limit_hits_total{limit=\"command_timeout\"} 0
calgate_limit_hits_total{limit=\"connections\"} 0
calgate_limit_hits_total{limit=\"connections_per_ip\"} 0
calgate_limit_hits_total{limit=\"idle_timeout\"} 0
calgate_limit_hits_total{limit=\"line_length\"} 0
calgate_limit_hits_total{limit=\"payload_size\"} 0
calgate_limit_hits_total{limit=\"preauth_commands\"} 0
calgate_limit_hits_total{limit=\"preauth_timeout\"} 0
calgate_limit_hits_total{limit=\"sasl_steps\"} 0
# HELP calgate_upstream_circuit_open 1 while the upstream circuit breaker is open, else 0.
# TYPE calgate_upstream_circuit_open gauge
calgate_upstream_circuit_open 0
# HELP calgate_upstream_request_duration_seconds Upstream HTTP request duration in seconds, by method and status class.
# TYPE calgate_upstream_request_duration_seconds histogram
# HELP calgate_upstream_retries_total Upstream requests retried, by HTTP method.
# TYPE calgate_upstream_retries_total counter
";
        assert_eq!(text, expected);
    }

    #[test]
    fn families_are_sorted_and_each_has_help_and_type() {
        let text = Metrics::new().render();
        let helps: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(helps.len(), 10);
        assert_eq!(helps, types);
        let mut sorted = helps.clone();
        sorted.sort_unstable();
        assert_eq!(helps, sorted);
        assert!(text.contains(&format!(
            "calgate_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn connections_guard_counts_open_until_dropped() {
        let m = Arc::new(Metrics::new());
        let a = m.connection_opened(Protocol::Cip);
        let b = m.connection_opened(Protocol::Cip);
        let c = m.connection_opened(Protocol::Cap);
        drop(a);
        let text = m.render();
        assert_eq!(
            lines(&text, "calgate_connections_open"),
            [
                "calgate_connections_open{protocol=\"cap\"} 1",
                "calgate_connections_open{protocol=\"cip\"} 1",
            ]
        );
        assert_eq!(
            lines(&text, "calgate_connections_total"),
            [
                "calgate_connections_total{protocol=\"cap\"} 1",
                "calgate_connections_total{protocol=\"cip\"} 2",
            ]
        );
        drop((b, c));
        let text = m.render();
        assert_eq!(
            lines(&text, "calgate_connections_open"),
            [
                "calgate_connections_open{protocol=\"cap\"} 0",
                "calgate_connections_open{protocol=\"cip\"} 0",
            ]
        );
    }

    #[test]
    fn refusals_count_the_matching_limit() {
        let m = Metrics::new();
        m.connection_refused(Protocol::Cap, RefusedReason::PerIpLimit);
        m.connection_refused(Protocol::Cap, RefusedReason::PerIpLimit);
        m.connection_refused(Protocol::Cip, RefusedReason::GlobalLimit);
        m.limit_hit(Limit::LineLength);
        let text = m.render();
        assert_eq!(
            lines(&text, "calgate_connections_refused_total"),
            [
                "calgate_connections_refused_total{protocol=\"cap\",reason=\"global_limit\"} 0",
                "calgate_connections_refused_total{protocol=\"cap\",reason=\"per_ip_limit\"} 2",
                "calgate_connections_refused_total{protocol=\"cip\",reason=\"global_limit\"} 1",
                "calgate_connections_refused_total{protocol=\"cip\",reason=\"per_ip_limit\"} 0",
            ]
        );
        assert!(text.contains("calgate_limit_hits_total{limit=\"connections\"} 1\n"));
        assert!(text.contains("calgate_limit_hits_total{limit=\"connections_per_ip\"} 2\n"));
        assert!(text.contains("calgate_limit_hits_total{limit=\"line_length\"} 1\n"));
        assert!(text.contains("calgate_limit_hits_total{limit=\"sasl_steps\"} 0\n"));
        assert!(
            text.contains("calgate_connections_total{protocol=\"cap\"} 0\n"),
            "a refused connection is not an accepted one"
        );
    }

    #[test]
    fn commands_are_sorted_and_unknown_verbs_fold_into_other() {
        let m = Metrics::new();
        m.command(Protocol::Cip, "SENDEVENT", CommandResult::Ok);
        m.command(Protocol::Cip, "sendevent", CommandResult::Ok);
        m.command(Protocol::Cip, "AUTHENTICATE", CommandResult::Refused);
        m.command(Protocol::Cap, "CREATE", CommandResult::Timeout);
        m.command(Protocol::Cap, "FROB", CommandResult::Invalid);
        m.command(Protocol::Cap, "x\"y\nz", CommandResult::Invalid);
        m.command(Protocol::Cap, "READ", CommandResult::Error);
        m.auth_failure(Protocol::Cip);
        let text = m.render();
        assert_eq!(
            lines(&text, "calgate_commands_total"),
            [
                "calgate_commands_total{protocol=\"cap\",verb=\"CREATE\",result=\"timeout\"} 1",
                "calgate_commands_total{protocol=\"cap\",verb=\"READ\",result=\"error\"} 1",
                "calgate_commands_total{protocol=\"cap\",verb=\"other\",result=\"invalid\"} 2",
                "calgate_commands_total{protocol=\"cip\",verb=\"AUTHENTICATE\",result=\"refused\"} 1",
                "calgate_commands_total{protocol=\"cip\",verb=\"SENDEVENT\",result=\"ok\"} 2",
            ]
        );
        assert_eq!(
            lines(&text, "calgate_auth_failures_total"),
            [
                "calgate_auth_failures_total{protocol=\"cap\"} 0",
                "calgate_auth_failures_total{protocol=\"cip\"} 1",
            ]
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        let ms = Duration::from_millis;
        m.upstream_request("PUT", StatusClass::from_status(201), ms(3));
        m.upstream_request("PUT", StatusClass::from_status(204), ms(5)); // le is inclusive
        m.upstream_request("PUT", StatusClass::from_status(201), ms(120));
        m.upstream_request(
            "put",
            StatusClass::from_status(200),
            Duration::from_secs(31),
        );
        m.upstream_request("REPORT", StatusClass::from_status(503), ms(2_000));
        m.upstream_request("GET", StatusClass::Error, ms(10_000));
        m.upstream_retry("GET");
        m.upstream_retry("GET");
        m.upstream_retry("BREW");
        m.set_upstream_circuit_open(true);
        let text = m.render();
        let expected = "\
# HELP calgate_upstream_circuit_open 1 while the upstream circuit breaker is open, else 0.
# TYPE calgate_upstream_circuit_open gauge
calgate_upstream_circuit_open 1
# HELP calgate_upstream_request_duration_seconds Upstream HTTP request duration in seconds, by method and status class.
# TYPE calgate_upstream_request_duration_seconds histogram
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.005\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.01\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.025\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.05\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.1\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.25\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"0.5\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"1\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"2.5\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"5\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"10\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"30\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"GET\",status_class=\"error\",le=\"+Inf\"} 1
calgate_upstream_request_duration_seconds_sum{method=\"GET\",status_class=\"error\"} 10
calgate_upstream_request_duration_seconds_count{method=\"GET\",status_class=\"error\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.005\"} 2
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.01\"} 2
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.025\"} 2
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.05\"} 2
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.1\"} 2
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.25\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"0.5\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"1\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"2.5\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"5\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"10\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"30\"} 3
calgate_upstream_request_duration_seconds_bucket{method=\"PUT\",status_class=\"2xx\",le=\"+Inf\"} 4
calgate_upstream_request_duration_seconds_sum{method=\"PUT\",status_class=\"2xx\"} 31.128
calgate_upstream_request_duration_seconds_count{method=\"PUT\",status_class=\"2xx\"} 4
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.005\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.01\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.025\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.05\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.1\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.25\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"0.5\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"1\"} 0
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"2.5\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"5\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"10\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"30\"} 1
calgate_upstream_request_duration_seconds_bucket{method=\"REPORT\",status_class=\"5xx\",le=\"+Inf\"} 1
calgate_upstream_request_duration_seconds_sum{method=\"REPORT\",status_class=\"5xx\"} 2
calgate_upstream_request_duration_seconds_count{method=\"REPORT\",status_class=\"5xx\"} 1
# HELP calgate_upstream_retries_total Upstream requests retried, by HTTP method.
# TYPE calgate_upstream_retries_total counter
calgate_upstream_retries_total{method=\"GET\"} 2
calgate_upstream_retries_total{method=\"other\"} 1
";
        let tail = &text[text.find("# HELP calgate_upstream_circuit_open").unwrap()..];
        assert_eq!(tail, expected);
    }

    #[test]
    fn status_classes() {
        let class = |s| StatusClass::from_status(s).as_str();
        assert_eq!(class(200), "2xx");
        assert_eq!(class(299), "2xx");
        assert_eq!(class(301), "3xx");
        assert_eq!(class(404), "4xx");
        assert_eq!(class(412), "4xx");
        assert_eq!(class(599), "5xx");
        assert_eq!(class(100), "error");
        assert_eq!(class(600), "error");
        assert_eq!(class(0), "error");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nnext"), "line\\nnext");
        assert_eq!(escape_label_value("plain"), "plain");
        assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
        let text = Metrics::with_version("1.0\"beta\\\n").render();
        assert!(text.contains("calgate_build_info{version=\"1.0\\\"beta\\\\\\n\"} 1\n"));
    }

    #[test]
    fn label_sets_are_unique_and_sorted_known_lists() {
        let mut verbs = VERBS.to_vec();
        verbs.sort_unstable();
        verbs.dedup();
        assert_eq!(verbs.len(), VERBS.len());
        assert!(!VERBS.contains(&OTHER) && !UPSTREAM_METHODS.contains(&OTHER));
        let mut methods = UPSTREAM_METHODS.to_vec();
        methods.sort_unstable();
        methods.dedup();
        assert_eq!(methods, UPSTREAM_METHODS);
        for (bound, nanos) in DURATION_BUCKETS.iter().zip(DURATION_BUCKETS_NANOS) {
            assert_eq!((bound * 1e9).round() as u64, nanos);
        }
    }

    #[test]
    fn metrics_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
        assert_send_sync::<ConnectionGuard>();
    }

    #[test]
    fn concurrent_recording_is_not_lost() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let _g = m.connection_opened(Protocol::Cap);
                        m.command(Protocol::Cap, "NOOP", CommandResult::Ok);
                        m.upstream_request("GET", StatusClass::Success, Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render();
        assert!(text.contains("calgate_connections_total{protocol=\"cap\"} 4000\n"));
        assert!(text.contains("calgate_connections_open{protocol=\"cap\"} 0\n"));
        assert!(text.contains(
            "calgate_commands_total{protocol=\"cap\",verb=\"NOOP\",result=\"ok\"} 4000\n"
        ));
        assert!(text.contains(
            "calgate_upstream_request_duration_seconds_count{method=\"GET\",status_class=\"2xx\"} 4000\n"
        ));
        assert!(text.contains(
            "calgate_upstream_request_duration_seconds_sum{method=\"GET\",status_class=\"2xx\"} 4\n"
        ));
    }
}
