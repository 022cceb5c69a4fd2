//! Tumbling event-time windows (Flink's `TumblingEventTimeWindows`): fixed-size,
//! non-overlapping windows aligned to the epoch, `[start, start + size)`.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TumblingEventTimeWindows {
    size_ms: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size` (at least 1 ms; a smaller size is taken as 1 ms).
    pub fn of(size: Duration) -> Self {
        TumblingEventTimeWindows { size_ms: i64::try_from(size.as_millis()).unwrap_or(i64::MAX).max(1) }
    }

    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The start of the window holding `ts`.
    pub fn start_of(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.size_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Pins the window of a timestamp: aligned to the epoch, negative times included.
    fn windows_are_aligned_to_the_epoch() {
        let w = TumblingEventTimeWindows::of(Duration::from_millis(100));
        assert_eq!(w.start_of(0), 0);
        assert_eq!(w.start_of(99), 0);
        assert_eq!(w.start_of(100), 100);
        assert_eq!(w.start_of(-1), -100);
        assert_eq!(w.start_of(-100), -100);
    }
}
