//! What a process function's context knows of time, kept by the shard's operator (or a
//! test harness) and lent to each call: the shard's watermark, the current record's
//! timestamp, the namespace of the timer firing, and what the call registered that the
//! operator must act on (a timer due in the firing pass under way, an earlier
//! processing-time timer for the shard's clock).
use formats::timerkey::TimeDomain;

use super::WATERMARK_MIN;

#[derive(Debug)]
pub struct TimeScope {
    pub watermark: i64,
    /// The current record's timestamp (none in `on_timer`, or without an assigner).
    pub timestamp: Option<i64>,
    /// The namespace of the timer being fired (empty otherwise).
    pub timer_namespace: Vec<u8>,
    /// During a firing pass of `domain` up to a time: timers registered in it that are
    /// already due, as (time, timer key); the pass fires them in order too.
    pub firing: Option<(TimeDomain, i64)>,
    pub due: Vec<(i64, Vec<u8>)>,
    /// The earliest processing-time timer registered since the operator last took it.
    pub earliest_processing: Option<i64>,
}

impl Default for TimeScope {
    fn default() -> Self {
        TimeScope {
            watermark: WATERMARK_MIN,
            timestamp: None,
            timer_namespace: Vec::new(),
            firing: None,
            due: Vec::new(),
            earliest_processing: None,
        }
    }
}

impl TimeScope {
    /// Notes a timer just stored.
    pub fn registered(&mut self, domain: TimeDomain, ts: i64, timer_key: &[u8]) {
        if domain == TimeDomain::ProcessingTime {
            self.earliest_processing = Some(self.earliest_processing.map_or(ts, |e| e.min(ts)));
        }
        if let Some((d, until)) = self.firing {
            if d == domain && ts <= until {
                self.due.push((ts, timer_key.to_vec()));
            }
        }
    }
}
