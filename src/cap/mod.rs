//! CAP, the Calendar Access Protocol, over its text transport CSTP (draft-ietf-calsch-cap-04),
//! as profiled in `protocols/cap.md`.

pub mod capability;
pub mod command;
pub mod connection;
pub mod mime;
pub mod payload;
pub mod reply;
pub mod sasl;
pub mod scram;
pub mod session;
