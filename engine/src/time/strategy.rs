//! How a source's records get timestamps and how its watermarks are generated, with
//! Flink's names (`WatermarkStrategy`): bounded out-of-orderness, monotonous timestamps
//! or none, optionally with idleness after a timeout.
//!
//! A strategy runs in each shard's producer over the records its split yields, after the
//! operators chained before `key_by`: the assigner stamps each record, the generator
//! keeps the largest timestamp seen, and the producer emits `largest - bound - 1` (as
//! Flink's `BoundedOutOfOrdernessWatermarks`) to every shard, at most every emit
//! interval, after shipping every record read before it.
use std::sync::Arc;
use std::time::Duration;

use super::WATERMARK_MIN;

/// Turns a record into its event time (milliseconds, any epoch the job chooses).
pub type TimestampAssigner<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;

/// How often a producer emits its watermark at most when records keep coming (Flink's
/// `pipeline.auto-watermark-interval` default).
pub const EMIT_INTERVAL_DEFAULT: Duration = Duration::from_millis(200);

/// Timestamps and watermarks of a stream (`Stream::assign_timestamps_and_watermarks`).
pub struct WatermarkStrategy<T> {
    /// `None`: no watermarks (event time only ends, with the input).
    bound_ms: Option<i64>,
    assigner: Option<TimestampAssigner<T>>,
    idleness: Option<Duration>,
    emit_interval: Duration,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            bound_ms: self.bound_ms,
            assigner: self.assigner.clone(),
            idleness: self.idleness,
            emit_interval: self.emit_interval,
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// No watermarks: records may carry timestamps, but event time advances only when
    /// the input ends (to the end of time).
    pub fn no_watermarks() -> Self {
        WatermarkStrategy { bound_ms: None, assigner: None, idleness: None, emit_interval: EMIT_INTERVAL_DEFAULT }
    }

    /// Records may arrive up to `max` later than the latest timestamp seen: the
    /// watermark is the largest timestamp minus `max` minus 1 ms.
    pub fn for_bounded_out_of_orderness(max: Duration) -> Self {
        let bound_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
        WatermarkStrategy { bound_ms: Some(bound_ms), ..Self::no_watermarks() }
    }

    /// Timestamps never decrease within a split: bounded out-of-orderness of zero.
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// Each record's timestamp. Without one, records carry none and the generator never
    /// sees an event (its watermark stays at the minimum until the input ends).
    pub fn with_timestamp_assigner(mut self, f: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        self.assigner = Some(Arc::new(f));
        self
    }

    /// A split that yields no record for `timeout` (processing time) marks itself idle:
    /// shards then leave it out of their watermark until it yields again.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// How often, at most, a producer emits a watermark that advanced while records kept
    /// coming (each emission ships the producer's batches first). Default 200 ms.
    pub fn with_emit_interval(mut self, interval: Duration) -> Self {
        self.emit_interval = interval;
        self
    }

    pub(crate) fn assigner(&self) -> Option<&TimestampAssigner<T>> {
        self.assigner.as_ref()
    }

    pub(crate) fn idleness(&self) -> Option<Duration> {
        self.idleness
    }

    pub(crate) fn emit_interval(&self) -> Duration {
        self.emit_interval
    }

    pub(crate) fn generator(&self) -> WatermarkGenerator {
        WatermarkGenerator { bound_ms: self.bound_ms, max_ts: WATERMARK_MIN }
    }
}

/// One producer's watermark: the largest timestamp it has seen, less the bound.
#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    bound_ms: Option<i64>,
    max_ts: i64,
}

impl WatermarkGenerator {
    pub fn on_event(&mut self, ts: i64) {
        self.max_ts = self.max_ts.max(ts);
    }

    /// The watermark to emit now ([`WATERMARK_MIN`] before any event, or without
    /// watermarks).
    pub fn current(&self) -> i64 {
        match self.bound_ms {
            Some(b) if self.max_ts != WATERMARK_MIN => self.max_ts.saturating_sub(b).saturating_sub(1),
            _ => WATERMARK_MIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Pins Flink's rule: the largest timestamp minus the bound minus 1, never from a
    // late record, and nothing without watermarks.
    fn bounded_out_of_orderness_trails_the_largest_timestamp() {
        let s: WatermarkStrategy<()> = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100));
        let mut g = s.generator();
        assert_eq!(g.current(), WATERMARK_MIN);
        g.on_event(1_000);
        assert_eq!(g.current(), 899);
        g.on_event(500);
        assert_eq!(g.current(), 899, "a late record does not move the watermark back");
        g.on_event(1_200);
        assert_eq!(g.current(), 1_099);
        let mut none = WatermarkStrategy::<()>::no_watermarks().generator();
        none.on_event(5);
        assert_eq!(none.current(), WATERMARK_MIN);
    }
}
