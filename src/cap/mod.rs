//! CAP, the Calendar Access Protocol, over its text transport CSTP (draft-ietf-calsch-cap-04),
//! as profiled in `protocols/cap.md`.

pub mod mime;
