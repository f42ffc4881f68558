//! # calgate
//!
//! A gateway that lets legacy calendar clients speak to a modern CalDAV scheduling server:
//!
//! ```text
//!  CAP client ──CSTP :5229──┐
//!                           ├── translation ── caldav (RFC 4791 / RFC 6638) ── upstream server
//!  CIP client ──CIP  :5230──┘
//! ```
//!
//! - [`config`]: the `gateway.toml` file.
//! - [`caldav`]: the only code that talks HTTP to the upstream.
//! - [`ical`]: iCalendar content lines, folding, and the vCalendar 1.0 normaliser.
//! - [`framing`]: line and dot-terminated block framing shared by CIP and CAP.
//! - [`cip`]: the CIP listener (draft-ietf-calsch-cip-00).
//! - [`translate`]: protocol intents to CalDAV requests; the only user of [`caldav`].
//! - [`server`]: listeners, connection limits, shutdown.
//! - [`proxy_protocol`]: the PROXY protocol header a load balancer sends first (v2, and v1).
//! - [`stream`]: a client connection's bytes (plain, TLS, a ClientHello on a plain port).
//! - [`auth_penalty`]: failed-login delays per client address.
//! - [`secret`]: values that never reach a log.
//! - [`probe`]: what an upstream supports, for operators.
//! - [`metrics`]: Prometheus counters, gauges and histograms, and their text exposition.
//! - [`admin`]: the loopback admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth_penalty;
pub mod caldav;
pub mod cap;
pub mod cip;
pub mod config;
pub mod framing;
pub mod ical;
pub mod metrics;
pub mod probe;
pub mod proxy_protocol;
pub mod secret;
pub mod server;
pub mod stream;
pub mod tls;
pub mod translate;
