//! CAP, the Calendar Access Protocol, over its text transport CSTP (draft-ietf-calsch-cap-04),
//! as profiled in `protocols/cap.md`.

pub mod capability;
pub mod command;
pub mod connection;
pub mod itip;
pub mod mime;
pub mod modify;
pub mod payload;
pub mod reply;
pub mod sasl;
pub mod scram;
pub mod senddata;
pub mod session;
pub mod status;
pub mod target;
pub mod vquery;
