//! CIP, the Calendaring Interoperability Protocol (draft-ietf-calsch-cip-00), as profiled in
//! `protocols/cip.md`.
//!
//! - [`command`]: the command-line grammar (nom).
//! - [`session`]: the sans-I/O state machine.
//! - [`reply`]: outcomes and errors as `*` lines and `OK|NO nnn` completions (one place).
//! - [`connection`]: the task that owns a socket and drives a session.
//!
//! Framing (lines and dot-terminated blocks) is shared with CAP in [`crate::framing`].

pub mod command;
pub mod connection;
pub mod reply;
pub mod session;
