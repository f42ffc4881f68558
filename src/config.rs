//! `gateway.toml`: the gateway's configuration.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`), so a typo is an error rather than a
//! silently ignored setting. After deserialising, [`Config::validate`] checks the relations that
//! serde cannot (addresses, URLs, limits), and every error names the key it is about.
//!
//! The shipped `gateway.toml` at the repository root is the reference: it is commented key by key
//! and a test asserts it loads and validates.

use crate::secret::Secret;
use reqwest::Url;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type (the message names the key and line).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value parsed but is not acceptable.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity of this gateway towards legacy clients.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// The CAP (CSTP) listener.
    #[serde(default)]
    pub cap: CapConfig,
    /// The CIP listener.
    #[serde(default = "ListenerConfig::cip_default")]
    pub cip: ListenerConfig,
    /// The CalDAV server behind the gateway.
    pub upstream: UpstreamConfig,
    /// Who may log in, and how credentials are checked.
    #[serde(default)]
    pub auth: AuthConfig,
    /// What clients may do without logging in.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The admin HTTP listener (health, readiness, metrics).
    #[serde(default)]
    pub admin: AdminConfig,
}

/// `[admin]`: the operator's HTTP listener with `/healthz`, `/readyz` and `/metrics`
/// (Prometheus). Off unless the table enables it; loopback by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Whether the listener is started.
    #[serde(default)]
    pub enabled: bool,
    /// Address and port to bind.
    #[serde(default = "AdminConfig::default_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            listen: AdminConfig::default_listen(),
        }
    }
}

impl AdminConfig {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9230))
    }
}

/// `[policy]`: what needs a login. Anonymous RSVP and FREEBUSY follow cip-00 §3.0 (its example
/// RSVP has no login) but work only through the service account, so without one they are off
/// whatever these say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Deliver events from foreign organizers without a peer login.
    #[serde(default)]
    pub anonymous_sendevent: bool,
    /// Record answers from foreign attendees without a peer login.
    #[serde(default = "yes")]
    pub anonymous_rsvp: bool,
    /// Answer free-busy questions without a login.
    #[serde(default = "yes")]
    pub anonymous_freebusy: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            anonymous_sendevent: false,
            anonymous_rsvp: true,
            anonymous_freebusy: true,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The server id announced in the CIP greeting and used as the CAP CSID (a DNS name).
    #[serde(default = "default_server_id")]
    pub server_id: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            server_id: default_server_id(),
        }
    }
}

fn default_server_id() -> String {
    "example.com".to_owned()
}

/// `[cip]`: the CIP listener. cip-00 has no TLS of its own (no STARTTLS); a second listener
/// with TLS from the first byte (`tls_listen`) carries the same protocol inside TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Whether the listener is started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to bind. Loopback by default: exposing the gateway is a decision.
    pub listen: SocketAddr,
    /// PEM certificate chain for the implicit-TLS listener.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// A second listener where TLS starts with the connection (implicit TLS); needs
    /// `tls_cert` and `tls_key`.
    #[serde(default)]
    pub tls_listen: Option<SocketAddr>,
    /// Expect a PROXY protocol header (v2, or v1) on every connection of this protocol's
    /// listeners; only for listeners that a load balancer alone can reach.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// `[cap]`: the CAP listener (CSTP, draft-ietf-calsch-cap-04 §4), with the compatibility
/// switches for what the drafts' own examples do (spec §1.5, `protocols/cap.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// Whether the listener is started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to bind (5229, cap-02..05 §4.2). Loopback by default.
    #[serde(default = "CapConfig::default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain for STARTTLS (cap-04 §7.1.10). Without it STARTTLS answers 6.5.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// A second listener where TLS starts with the connection (implicit TLS, no STARTTLS
    /// needed); needs `tls_cert` and `tls_key`.
    #[serde(default)]
    pub tls_listen: Option<SocketAddr>,
    /// Expect a PROXY protocol header (v2, or v1) on every connection of this protocol's
    /// listeners; only for listeners that a load balancer alone can reach.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// `"two-dot"` (cap-02..05 text: status, `.`, data, `.`) or `"single-dot"` (cap-00/-01 and
    /// many cap-04 examples: status, data, `.`).
    #[serde(default)]
    pub response_framing: ResponseFraming,
    /// Send the `2.0.1` go-ahead after SENDDATA (every draft's text); data sent before it is
    /// accepted either way.
    #[serde(default = "yes")]
    pub senddata_goahead: bool,
    /// The interim code when a SENDDATA latency runs out: `"2.0.2"` (cap-04 §8) or `"7.0"` (the
    /// -02/-04 timeout examples).
    #[serde(default)]
    pub pending_code: PendingCode,
    /// Send a lone `.` before a pending reply, as the drafts' CONTINUE example does.
    #[serde(default)]
    pub leading_dot_on_pending: bool,
    /// Answer a successful ABORT with `"2.0"` (cap-04 §7.1.2) or `"2.0.3"` (cap-04 §8).
    #[serde(default)]
    pub abort_code: AbortCode,
    /// AUTHENTICATE attempts allowed after a failed one. The drafts allow none (a second
    /// AUTHENTICATE closes the connection); more is a documented deviation, each retry answered
    /// after a growing delay (`auth.failure_delay_ms`).
    #[serde(default)]
    pub auth_retries: u32,
}

impl Default for CapConfig {
    fn default() -> Self {
        CapConfig {
            enabled: true,
            listen: CapConfig::default_listen(),
            tls_cert: None,
            tls_key: None,
            tls_listen: None,
            proxy_protocol: false,
            response_framing: ResponseFraming::default(),
            senddata_goahead: true,
            pending_code: PendingCode::default(),
            leading_dot_on_pending: false,
            abort_code: AbortCode::default(),
            auth_retries: 0,
        }
    }
}

impl CapConfig {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5229))
    }
}

/// `cap.response_framing` (spec §2.3, §1.5 #1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ResponseFraming {
    /// Status line, `.`, data, `.` (cap-02..05 normative text).
    #[default]
    #[serde(rename = "two-dot")]
    TwoDot,
    /// Status line, data, `.` (cap-00/-01).
    #[serde(rename = "single-dot")]
    SingleDot,
}

/// `cap.pending_code` (spec §2.7, Q5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum PendingCode {
    /// `2.0.2` "reply pending" (cap-04 §8).
    #[default]
    #[serde(rename = "2.0.2")]
    ReplyPending,
    /// `7.0` "timeout" (the -02/-04 §9.2.2 examples).
    #[serde(rename = "7.0")]
    Timeout,
}

/// `cap.abort_code` (spec §2.6.9, §1.5 #5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum AbortCode {
    /// `2.0` (cap-04 §7.1.2 and its example).
    #[default]
    #[serde(rename = "2.0")]
    Ok,
    /// `2.0.3` "command aborted" (cap-04 §8).
    #[serde(rename = "2.0.3")]
    Aborted,
}

impl ListenerConfig {
    fn cip_default() -> Self {
        ListenerConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5230)),
            tls_cert: None,
            tls_key: None,
            tls_listen: None,
            proxy_protocol: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// `[upstream]`: the CalDAV scheduling server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL of the CalDAV server (where discovery starts), e.g. `http://127.0.0.1:8008/`.
    pub url: String,
    /// The calendar domain: `user@<domain>` addresses are local users of the upstream.
    pub domain: String,
    /// How a local address maps to the upstream login name: `{local}` is the part before `@`,
    /// `{address}` the whole address.
    #[serde(default = "default_login_template")]
    pub login_template: String,
    /// Fallback principal path when discovery by `calendar-user-address-set` is not possible,
    /// relative to `url`'s origin; `{user}` is the upstream login name.
    #[serde(default)]
    pub principal_template: Option<String>,
    /// A user's default calendar path ({user} = login name), used by the service account when
    /// it may not read that user's principal (Cyrus answers 403 there). Same-origin redirects
    /// from it are followed: Cyrus redirects to the shared view in the service account's home.
    #[serde(default)]
    pub calendar_template: Option<String>,
    /// Extra CA certificates (PEM) trusted for an `https` upstream, added to the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for the TCP (and TLS) connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds one upstream request may take in total.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Largest upstream response body read, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Seconds a discovered principal (home, inbox, outbox, addresses) is cached.
    #[serde(default = "default_discovery_ttl")]
    pub discovery_ttl_secs: u64,
    /// Optional service account for work no single user's credentials can do.
    #[serde(default)]
    pub service_account: Option<ServiceAccount>,
    /// Retries of one upstream request: safe methods after transport errors, 429, 502–504;
    /// writes only when the request provably was not processed (see `caldav::resilience`).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First pause between retries, in milliseconds; it doubles, up to 2 s.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// The longest `Retry-After` (429/503) waited for, in seconds; a longer one is reported.
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_secs: u64,
    /// Consecutive upstream failures that open the circuit breaker (0: no breaker).
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds the circuit stays open before one trial request is let through.
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown_secs: u64,
    /// Idle keep-alive connections to the upstream kept for reuse (for up to 60 s). Below the
    /// number of requests in flight at peak, every burst closes and reopens connections, and
    /// each new one costs the upstream a process or thread (Cyrus serves each connection with
    /// its own httpd process). Every idle connection also holds such a process.
    #[serde(default = "default_max_idle_connections")]
    pub max_idle_connections: usize,
}

fn default_max_retries() -> u32 {
    2
}
fn default_retry_backoff_ms() -> u64 {
    100
}
fn default_max_retry_after() -> u64 {
    10
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> u64 {
    10
}
fn default_max_idle_connections() -> usize {
    256
}

fn default_login_template() -> String {
    "{local}".to_owned()
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_request_timeout() -> u64 {
    30
}
fn default_max_response_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_discovery_ttl() -> u64 {
    300
}

/// `[upstream.service_account]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// Upstream login name of the service account.
    pub user: String,
    /// Its password (never logged).
    pub password: Secret<String>,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How client credentials are checked. Only `pass-through` exists: the client's user name and
    /// password are tried against the upstream.
    #[serde(default)]
    pub mode: AuthMode,
    /// Where a password may be sent without TLS: `never`, `loopback` (clients connecting from a
    /// loopback address) or `always`.
    #[serde(default)]
    pub plaintext_passwords: PlaintextPolicy,
    /// Gateway-local accounts for peer servers (CIP server-to-server logins).
    #[serde(default)]
    pub peers: Vec<PeerAccount>,
    /// Gateway-local accounts for CAP SCRAM-SHA-256 logins; each names the upstream password
    /// the gateway then uses. Empty: SCRAM-SHA-256 is not offered.
    #[serde(default)]
    pub local_accounts: Vec<LocalAccount>,
    /// Pause before answering a failed login, in milliseconds; it doubles with each further
    /// failure from the same client IP address (a repeat of the same wrong credentials does
    /// not count again), up to `failure_delay_max_ms`.
    #[serde(default = "d_failure_delay_ms")]
    pub failure_delay_ms: u64,
    /// The longest failed-login pause, in milliseconds.
    #[serde(default = "d_failure_delay_max_ms")]
    pub failure_delay_max_ms: u64,
}

fn d_failure_delay_max_ms() -> u64 {
    15_000
}

fn d_failure_delay_ms() -> u64 {
    2000
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::PassThrough,
            plaintext_passwords: PlaintextPolicy::Loopback,
            peers: Vec::new(),
            local_accounts: Vec::new(),
            failure_delay_ms: d_failure_delay_ms(),
            failure_delay_max_ms: d_failure_delay_max_ms(),
        }
    }
}

/// `auth.mode`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Check the client's credentials against the upstream and act with them.
    #[default]
    PassThrough,
}

/// The pause before answering the `failures`-th failed login on a connection:
/// `auth.failure_delay_ms` doubled per earlier failure, at most 15 s (CIP and CAP alike).
pub fn login_failure_delay(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32 << failures.saturating_sub(1).min(8))
        .min(Duration::from_secs(15))
}

/// `auth.plaintext_passwords`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaintextPolicy {
    /// Passwords only over TLS.
    Never,
    /// Passwords over plaintext only from loopback clients.
    #[default]
    Loopback,
    /// Passwords over plaintext from anywhere (operator opt-in).
    Always,
}

/// `[[auth.peers]]`: a peer server that may log in with a shared secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAccount {
    /// The peer's server id, e.g. `a.com`.
    pub id: String,
    /// Its shared secret (never logged).
    pub password: Secret<String>,
}

/// `[[auth.local_accounts]]`: a gateway-local account for CAP SCRAM-SHA-256. SCRAM never
/// reveals the password, so the account says which upstream password the gateway acts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAccount {
    /// The SCRAM user name (`alice`; `alice@<upstream.domain>` is accepted at login too) and
    /// the upstream user the gateway acts as.
    pub user: String,
    /// The SCRAM-SHA-256 verifier in the RFC 5803 form (`calgate scram-hash` prints it).
    pub scram_sha256: Secret<String>,
    /// The upstream password for `user` (never logged).
    pub upstream_password: Secret<String>,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Concurrent client connections over all listeners.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// Concurrent client connections from one IP address.
    #[serde(default = "d_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Longest command line, in octets (without the line end).
    #[serde(default = "d_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Longest line inside a data block, in octets.
    #[serde(default = "d_max_data_line_bytes")]
    pub max_data_line_bytes: usize,
    /// Largest data block (SENDEVENT, SENDDATA payload), in octets.
    #[serde(default = "d_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Seconds an authenticated session may stay idle (CAP AUTOLOGOUTTIME).
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a connection may stay unauthenticated.
    #[serde(default = "d_preauth_timeout")]
    pub preauth_timeout_secs: u64,
    /// Seconds one command may take end to end.
    #[serde(default = "d_command_timeout")]
    pub command_timeout_secs: u64,
    /// Failed logins allowed on one connection before it is closed.
    #[serde(default = "d_max_auth_failures")]
    pub max_auth_failures: u32,
    /// Client messages in one CAP SASL exchange (AUTHENTICATE) before it is refused.
    #[serde(default = "d_max_sasl_steps")]
    pub max_sasl_steps: u32,
    /// Commands a connection may send before logging in; one more closes it.
    #[serde(default = "d_max_preauth_commands")]
    pub max_preauth_commands: u32,
    /// Seconds a shutdown waits for running commands before closing their connections.
    #[serde(default = "d_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

fn d_max_sasl_steps() -> u32 {
    8
}
fn d_max_preauth_commands() -> u32 {
    20
}
fn d_shutdown_grace() -> u64 {
    30
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: d_max_connections(),
            max_connections_per_ip: d_max_connections_per_ip(),
            max_line_bytes: d_max_line_bytes(),
            max_data_line_bytes: d_max_data_line_bytes(),
            max_payload_bytes: d_max_payload_bytes(),
            idle_timeout_secs: d_idle_timeout(),
            preauth_timeout_secs: d_preauth_timeout(),
            command_timeout_secs: d_command_timeout(),
            max_auth_failures: d_max_auth_failures(),
            max_sasl_steps: d_max_sasl_steps(),
            max_preauth_commands: d_max_preauth_commands(),
            shutdown_grace_secs: d_shutdown_grace(),
        }
    }
}

fn d_max_connections() -> usize {
    1024
}
fn d_max_connections_per_ip() -> usize {
    64
}
fn d_max_line_bytes() -> usize {
    1000
}
fn d_max_data_line_bytes() -> usize {
    8192
}
fn d_max_payload_bytes() -> usize {
    1024 * 1024
}
fn d_idle_timeout() -> u64 {
    900
}
fn d_preauth_timeout() -> u64 {
    60
}
fn d_command_timeout() -> u64 {
    120
}
fn d_max_auth_failures() -> u32 {
    3
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: URL shape, names, limits, TLS file pairs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.gateway.server_id;
        if !is_dns_name(id) {
            return Err(invalid(
                "gateway.server_id",
                format!("{id:?} is not a DNS name (letters, digits, '-' and '.')"),
            ));
        }
        for (section, cert, key, tls_listen) in [
            (
                "cap",
                &self.cap.tls_cert,
                &self.cap.tls_key,
                self.cap.tls_listen,
            ),
            (
                "cip",
                &self.cip.tls_cert,
                &self.cip.tls_key,
                self.cip.tls_listen,
            ),
        ] {
            if cert.is_some() != key.is_some() {
                return Err(invalid(
                    &format!("{section}.tls_cert"),
                    "tls_cert and tls_key must be given together",
                ));
            }
            if tls_listen.is_some() && cert.is_none() {
                return Err(invalid(
                    &format!("{section}.tls_listen"),
                    "needs tls_cert and tls_key",
                ));
            }
        }
        let mut bound: Vec<(&str, SocketAddr)> = Vec::new();
        let listeners = [
            ("cap.listen", self.cap.enabled.then_some(self.cap.listen)),
            (
                "cap.tls_listen",
                self.cap.enabled.then_some(self.cap.tls_listen).flatten(),
            ),
            ("cip.listen", self.cip.enabled.then_some(self.cip.listen)),
            (
                "cip.tls_listen",
                self.cip.enabled.then_some(self.cip.tls_listen).flatten(),
            ),
            (
                "admin.listen",
                self.admin.enabled.then_some(self.admin.listen),
            ),
        ];
        for (key, addr) in listeners {
            let Some(addr) = addr else { continue };
            if addr.port() != 0
                && let Some((other, _)) = bound.iter().find(|(_, a)| *a == addr)
            {
                return Err(invalid(key, format!("same address as {other} ({addr})")));
            }
            bound.push((key, addr));
        }
        self.upstream_url()?;
        let u = &self.upstream;
        if !is_dns_name(&u.domain) {
            return Err(invalid(
                "upstream.domain",
                format!("{:?} is not a DNS name", u.domain),
            ));
        }
        if !u.login_template.contains("{local}") && !u.login_template.contains("{address}") {
            return Err(invalid(
                "upstream.login_template",
                "must contain {local} or {address}",
            ));
        }
        if let Some(t) = &u.principal_template
            && (!t.starts_with('/') || !t.contains("{user}"))
        {
            return Err(invalid(
                "upstream.principal_template",
                "must be an absolute path containing {user}, e.g. /dav/principals/user/{user}/",
            ));
        }
        if let Some(t) = &u.calendar_template
            && (!t.starts_with('/') || !t.contains("{user}"))
        {
            return Err(invalid(
                "upstream.calendar_template",
                "must be an absolute path containing {user}, e.g. /dav/calendars/user/{user}/Default/",
            ));
        }
        positive("upstream.connect_timeout_secs", u.connect_timeout_secs)?;
        positive("upstream.request_timeout_secs", u.request_timeout_secs)?;
        positive("upstream.max_response_bytes", u.max_response_bytes as u64)?;
        if let Some(sa) = &u.service_account
            && sa.user.trim().is_empty()
        {
            {
                return Err(invalid(
                    "upstream.service_account.user",
                    "must not be empty",
                ));
            }
        }
        for (i, p) in self.auth.peers.iter().enumerate() {
            if !is_dns_name(&p.id) {
                return Err(invalid(
                    &format!("auth.peers[{i}].id"),
                    format!("{:?} is not a server id (DNS name)", p.id),
                ));
            }
            if p.password.expose().len() < 8 {
                return Err(invalid(
                    &format!("auth.peers[{i}].password"),
                    "must be at least 8 characters",
                ));
            }
        }
        let mut users = std::collections::HashSet::new();
        let mut scram_shape = None;
        for (i, a) in self.auth.local_accounts.iter().enumerate() {
            let key = |field: &str| format!("auth.local_accounts[{i}].{field}");
            if a.user.is_empty()
                || a.user
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '=')
            {
                return Err(invalid(
                    &key("user"),
                    format!("{:?} is not a user name (no spaces, ',' or '=')", a.user),
                ));
            }
            if !users.insert(a.user.as_str()) {
                return Err(invalid(
                    &key("user"),
                    format!("{:?} is listed more than once", a.user),
                ));
            }
            let keys = crate::cap::scram::StoredKeys::parse(a.scram_sha256.expose())
                .map_err(|e| invalid(&key("scram_sha256"), e))?;
            // Unknown users are answered with decoys shaped like the real verifiers; one shape
            // for all accounts keeps a probing client from telling real names apart.
            let shape = (keys.iterations, keys.salt.len());
            if shape.1 > crate::cap::scram::KEY_LEN {
                return Err(invalid(
                    &key("scram_sha256"),
                    format!(
                        "the salt has {} octets; at most {} are supported",
                        shape.1,
                        crate::cap::scram::KEY_LEN
                    ),
                ));
            }
            match scram_shape {
                None => scram_shape = Some(shape),
                Some(first) if first != shape => {
                    return Err(invalid(
                        &key("scram_sha256"),
                        format!(
                            "{} iterations and a {}-octet salt, but the first account has {} and \
                             {}: all local accounts must use the same (calgate scram-hash does)",
                            shape.0, shape.1, first.0, first.1
                        ),
                    ));
                }
                Some(_) => {}
            }
            if a.upstream_password.expose().is_empty() {
                return Err(invalid(&key("upstream_password"), "must not be empty"));
            }
        }
        let l = &self.limits;
        positive("limits.max_connections", l.max_connections as u64)?;
        positive(
            "limits.max_connections_per_ip",
            l.max_connections_per_ip as u64,
        )?;
        if l.max_connections_per_ip > l.max_connections {
            return Err(invalid(
                "limits.max_connections_per_ip",
                "must not exceed limits.max_connections",
            ));
        }
        if l.max_line_bytes < 80 {
            return Err(invalid("limits.max_line_bytes", "must be at least 80"));
        }
        if l.max_data_line_bytes < l.max_line_bytes {
            return Err(invalid(
                "limits.max_data_line_bytes",
                "must be at least limits.max_line_bytes",
            ));
        }
        if l.max_payload_bytes < l.max_data_line_bytes {
            return Err(invalid(
                "limits.max_payload_bytes",
                "must be at least limits.max_data_line_bytes",
            ));
        }
        positive("limits.idle_timeout_secs", l.idle_timeout_secs)?;
        positive("limits.preauth_timeout_secs", l.preauth_timeout_secs)?;
        positive("limits.command_timeout_secs", l.command_timeout_secs)?;
        positive("limits.max_auth_failures", u64::from(l.max_auth_failures))?;
        positive("limits.max_sasl_steps", u64::from(l.max_sasl_steps))?;
        positive(
            "limits.max_preauth_commands",
            u64::from(l.max_preauth_commands),
        )?;
        if self.auth.failure_delay_max_ms < self.auth.failure_delay_ms {
            return Err(invalid(
                "auth.failure_delay_max_ms",
                "must be at least auth.failure_delay_ms",
            ));
        }
        Ok(())
    }

    /// The upstream base URL, parsed (always ends in `/`).
    pub fn upstream_url(&self) -> Result<Url, ConfigError> {
        let mut url = Url::parse(&self.upstream.url)
            .map_err(|e| invalid("upstream.url", format!("not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid("upstream.url", "scheme must be http or https"));
        }
        if url.host().is_none() {
            return Err(invalid("upstream.url", "has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "upstream.url",
                "must not contain credentials (use upstream.service_account)",
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }

    /// Upstream connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream.connect_timeout_secs)
    }

    /// Upstream per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream.request_timeout_secs)
    }
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        Err(invalid(key, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// A DNS name as used for server ids and calendar domains (RFC 1123 labels).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[upstream]
url = "http://127.0.0.1:8008/"
domain = "example.com"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn minimal_file_gets_safe_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert!(c.cap.listen.ip().is_loopback());
        assert!(c.cip.listen.ip().is_loopback());
        assert_eq!(c.cap.listen.port(), 5229);
        assert_eq!(c.cip.listen.port(), 5230);
        assert_eq!(c.auth.plaintext_passwords, PlaintextPolicy::Loopback);
        assert_eq!(c.limits.max_line_bytes, 1000);
        assert_eq!(c.upstream_url().unwrap().as_str(), "http://127.0.0.1:8008/");
    }

    #[test]
    fn shipped_gateway_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.gateway.server_id, "example.com");
        assert_eq!(c.upstream.domain, "example.com");
    }

    fn err_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[upstream]\nurl = \"ftp://x/\"\ndomain = \"example.com\"\n",
                "upstream.url",
            ),
            (
                "[upstream]\nurl = \"not a url\"\ndomain = \"example.com\"\n",
                "upstream.url",
            ),
            (
                "[upstream]\nurl = \"http://u:p@h/\"\ndomain = \"example.com\"\n",
                "upstream.url",
            ),
            (
                "[upstream]\nurl = \"http://h/\"\ndomain = \"ex ample\"\n",
                "upstream.domain",
            ),
            (
                "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\nrequest_timeout_secs = 0\n",
                "upstream.request_timeout_secs",
            ),
            (
                "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\nprincipal_template = \"x\"\n",
                "upstream.principal_template",
            ),
            (
                "[limits]\nmax_line_bytes = 10\n[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n",
                "limits.max_line_bytes",
            ),
            (
                "[limits]\nmax_connections = 2\nmax_connections_per_ip = 3\n[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n",
                "limits.max_connections_per_ip",
            ),
            (
                "[cap]\nlisten = \"127.0.0.1:1\"\ntls_cert = \"a.pem\"\n[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n",
                "cap.tls_cert",
            ),
            (
                "[cap]\nlisten = \"127.0.0.1:7\"\n[cip]\nlisten = \"127.0.0.1:7\"\n[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n",
                "cip.listen",
            ),
            (
                "[[auth.peers]]\nid = \"a.com\"\npassword = \"short\"\n[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n",
                "auth.peers[0].password",
            ),
            (
                "[gateway]\nserver_id = \"-bad\"\n[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n",
                "gateway.server_id",
            ),
        ];
        for (text, key) in cases {
            let e = err_text(text);
            assert!(e.contains(key), "error {e:?} should name {key}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_types_are_rejected_with_the_key() {
        let e = err_text(&format!("{MINIMAL}colour = \"blue\"\n"));
        assert!(e.contains("colour"), "{e}");
        let e = err_text(&format!("{MINIMAL}connect_timeout_secs = \"five\"\n"));
        assert!(e.contains("connect_timeout_secs"), "{e}");
        let e = err_text("[upstream]\nurl = \"http://h/\"\n");
        assert!(e.contains("domain"), "{e}");
        let e = err_text(&format!(
            "{MINIMAL}[auth]\nplaintext_passwords = \"sometimes\"\n"
        ));
        assert!(
            e.contains("sometimes") || e.contains("plaintext_passwords"),
            "{e}"
        );
    }

    #[test]
    fn passwords_do_not_appear_in_debug_output() {
        let c = parse(&format!(
            "{MINIMAL}[upstream.service_account]\nuser = \"svc\"\npassword = \"s3cret-value\"\n\
             [[auth.peers]]\nid = \"a.com\"\npassword = \"peer-secret-1\"\n"
        ))
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret-value") && !dbg.contains("peer-secret-1"));
    }

    /// The RFC 7677 §3 verifier ("pencil").
    const PENCIL: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    fn local_account(user: &str, hash: &str) -> String {
        format!(
            "[[auth.local_accounts]]\nuser = \"{user}\"\nscram_sha256 = \"{hash}\"\n\
             upstream_password = \"alicepw-upstream\"\n"
        )
    }

    #[test]
    fn local_accounts() {
        let c = parse(&format!("{MINIMAL}{}", local_account("alice", PENCIL))).unwrap();
        assert_eq!(c.auth.local_accounts.len(), 1);
        assert_eq!(c.auth.local_accounts[0].user, "alice");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("alicepw-upstream") && !dbg.contains("WG5d8oPm"));
        assert!(parse(MINIMAL).unwrap().auth.local_accounts.is_empty());

        let cases = [
            (
                local_account("alice", &PENCIL.replace("$4096:", "$1024:")),
                "auth.local_accounts[0].scram_sha256",
            ),
            (
                local_account("alice", "pencil"),
                "auth.local_accounts[0].scram_sha256",
            ),
            (
                local_account(
                    "alice",
                    &PENCIL.replace("W22ZaJ0SNY7soEsUEjb6gQ==", "c2FsdA=="),
                ),
                "auth.local_accounts[0].scram_sha256",
            ),
            (
                format!(
                    "{}{}",
                    local_account("alice", PENCIL),
                    local_account("alice", PENCIL)
                ),
                "auth.local_accounts[1].user",
            ),
            (
                local_account("al ice", PENCIL),
                "auth.local_accounts[0].user",
            ),
            (
                format!(
                    "{}{}",
                    local_account("alice", PENCIL),
                    local_account("bob", &PENCIL.replace("$4096:", "$8192:"))
                ),
                "auth.local_accounts[1].scram_sha256",
            ),
            (
                local_account("alice", PENCIL).replace("alicepw-upstream", ""),
                "auth.local_accounts[0].upstream_password",
            ),
        ];
        for (extra, key) in cases {
            let e = err_text(&format!("{MINIMAL}{extra}"));
            assert!(e.contains(key), "error {e:?} should name {key}");
        }
        let e = err_text(&format!(
            "{MINIMAL}{}password = \"x\"\n",
            local_account("alice", PENCIL)
        ));
        assert!(e.contains("password"), "{e}");
    }

    #[test]
    fn upstream_url_gets_a_trailing_slash() {
        let c = parse("[upstream]\nurl = \"http://h:1/caldav.php\"\ndomain = \"example.com\"\n")
            .unwrap();
        assert_eq!(c.upstream_url().unwrap().as_str(), "http://h:1/caldav.php/");
    }
}
