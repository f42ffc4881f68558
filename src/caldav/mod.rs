//! The CalDAV side: the only code in calgate that talks HTTP.
//!
//! - [`client`]: the HTTP client and the WebDAV/CalDAV operations (RFC 4918, RFC 4791,
//!   RFC 6638).
//! - [`discovery`]: principal, home, inbox, outbox, addresses and the default calendar, cached
//!   per user (RFC 6764, RFC 5397, RFC 6638 §2).
//! - [`multistatus`]: namespace-correct readers for 207 Multi-Status, schedule-response and
//!   `DAV:error` bodies.
//! - [`request`]: the XML request bodies.
//! - `path`: percent-encoding of path segments and the names of collection members.
//! - [`error`]: [`CaldavError`], with the HTTP status, the precondition element and retry
//!   safety.
//! - [`resilience`]: the retry policy (idempotent requests only, `Retry-After`) and the
//!   circuit breaker every upstream request goes through.

pub mod client;
pub mod discovery;
pub mod error;
pub mod multistatus;
pub(crate) mod path;
pub mod request;
pub mod resilience;

pub use client::{CaldavClient, CalendarObject, Credentials, Depth, PutOutcome, WriteCondition};
pub use discovery::{AddressKind, Discovery, Principal};
pub use error::{CaldavError, Condition, TransportKind};
pub use multistatus::Recipient;
pub use request::QueryFilter;
pub use resilience::{CircuitState, Resilience};
