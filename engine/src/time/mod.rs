//! Event time (docs/EVENT_TIME.md): timestamps and watermarks assigned at the source
//! (`strategy`), combined over a shard's inputs (`valve`), and per-key timers kept as
//! keyed state (`timers` registers them, `firing` fires the due ones in time order);
//! `scope` is what a process function's context knows of time.
pub mod firing;
pub mod scope;
pub mod strategy;
pub mod timers;
pub mod valve;

/// The watermark before any input has one: nothing is known about event time yet.
pub const WATERMARK_MIN: i64 = i64::MIN;
/// The end of time: a bounded input's end advances its watermark here, so every
/// event-time timer fires.
pub const END_OF_TIME: i64 = i64::MAX;
