//! Restart strategies (Flink's): when a running job fails, all shards stop and the job
//! restarts from its newest checkpoint, unless the strategy gives up.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RestartStrategy {
    /// Fail at the first failure.
    #[default]
    None,
    /// Restart up to `attempts` times, waiting `delay` each time.
    FixedDelay { attempts: u32, delay: Duration },
    /// Restart unless more than `max_failures` failures happen within `interval`.
    FailureRate { max_failures: u32, interval: Duration, delay: Duration },
}

/// Counts failures against a strategy.
pub struct Tracker {
    strategy: RestartStrategy,
    attempts: u32,
    recent: VecDeque<Instant>,
}

impl Tracker {
    pub fn new(strategy: RestartStrategy) -> Self {
        Tracker { strategy, attempts: 0, recent: VecDeque::new() }
    }

    /// Records a failure; returns the delay before restarting, or None to give up.
    pub fn failed(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let delay = match &self.strategy {
            RestartStrategy::None => return None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.attempts >= *attempts {
                    return None;
                }
                *delay
            }
            RestartStrategy::FailureRate { max_failures, interval, delay } => {
                self.recent.push_back(now);
                while self.recent.front().is_some_and(|t| now.duration_since(*t) > *interval) {
                    self.recent.pop_front();
                }
                if self.recent.len() as u64 > u64::from(*max_failures) {
                    return None;
                }
                *delay
            }
        };
        self.attempts += 1;
        Some(delay)
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn describe(&self) -> String {
        match &self.strategy {
            RestartStrategy::None => "no restarts".into(),
            RestartStrategy::FixedDelay { attempts, delay } => {
                format!("fixed-delay: {attempts} attempts, {} ms apart", delay.as_millis())
            }
            RestartStrategy::FailureRate { max_failures, interval, .. } => {
                format!("failure-rate: more than {max_failures} failures within {} ms", interval.as_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_delay_counts_attempts() {
        let mut t = Tracker::new(RestartStrategy::FixedDelay { attempts: 2, delay: Duration::from_millis(5) });
        assert_eq!(t.failed(), Some(Duration::from_millis(5)));
        assert_eq!(t.failed(), Some(Duration::from_millis(5)));
        assert_eq!(t.failed(), None);
        assert_eq!(t.attempts(), 2);
    }

    #[test]
    fn failure_rate_gives_up_only_within_the_interval() {
        let mut t = Tracker::new(RestartStrategy::FailureRate {
            max_failures: 1,
            interval: Duration::from_millis(30),
            delay: Duration::ZERO,
        });
        assert!(t.failed().is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(t.failed().is_some(), "the first failure has left the interval");
        assert!(t.failed().is_none(), "two failures within the interval");
    }

    #[test]
    fn none_never_restarts() {
        assert_eq!(Tracker::new(RestartStrategy::None).failed(), None);
    }
}
