//! Per-shard counters, read by the reporter thread at an interval.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

#[derive(Default)]
#[repr(align(64))]
struct ShardCounters {
    records_in: AtomicU64,
    records_processed: AtomicU64,
    records_out: AtomicU64,
}

pub struct Metrics {
    shards: Vec<ShardCounters>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub records_in: u64,
    pub records_processed: u64,
    pub records_out: u64,
}

impl Metrics {
    pub fn new(shards: usize) -> Self {
        Metrics { shards: (0..shards).map(|_| ShardCounters::default()).collect() }
    }

    fn shard(&self, i: usize) -> Option<&ShardCounters> {
        self.shards.get(i)
    }

    pub fn add_in(&self, shard: usize, n: u64) {
        if let Some(s) = self.shard(shard) {
            s.records_in.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn add_processed(&self, shard: usize, n: u64) {
        if let Some(s) = self.shard(shard) {
            s.records_processed.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn add_out(&self, shard: usize, n: u64) {
        if let Some(s) = self.shard(shard) {
            s.records_out.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn processed_per_shard(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.records_processed.load(Ordering::Relaxed)).collect()
    }

    pub fn in_per_shard(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.records_in.load(Ordering::Relaxed)).collect()
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.shards {
            t.records_in += s.records_in.load(Ordering::Relaxed);
            t.records_processed += s.records_processed.load(Ordering::Relaxed);
            t.records_out += s.records_out.load(Ordering::Relaxed);
        }
        t
    }
}

/// Logs totals and rates every `interval` until the job ends (`done`'s sender is dropped).
pub fn report_loop(metrics: &Metrics, interval: Duration, done: &Receiver<()>) {
    let started = Instant::now();
    let mut last = (Instant::now(), Totals::default());
    // Wakes at each interval, or at once when the job ends (the sender is dropped).
    while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(interval.saturating_sub(last.0.elapsed())) {
        let now = (Instant::now(), metrics.totals());
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
        tracing::info!(
            records_in = now.1.records_in,
            records_out = now.1.records_out,
            records_per_s = (now.1.records_in.saturating_sub(last.1.records_in) as f64 / secs) as u64,
            uptime_s = started.elapsed().as_secs(),
            "progress"
        );
        last = now;
    }
}
