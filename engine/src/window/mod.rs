//! Event-time windows on a keyed stream, built on the timer service (docs/EVENT_TIME.md,
//! "Windows"): `tumbling` assigns a record to its window, `aggregate` keeps each open
//! window's running aggregate (never its records) and emits it when the watermark passes
//! the window's end.
pub mod aggregate;
pub mod tumbling;
