//! Per-shard counters, read by the reporter thread at an interval.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::state::backend::StateId;
use crate::state::expired::ExpiredCounts;

#[derive(Default)]
#[repr(align(64))]
struct ShardCounters {
    records_in: AtomicU64,
    records_processed: AtomicU64,
    records_out: AtomicU64,
    /// Entries the shard's backend stores (sampled every `state::cleanup::IDLE_TICK`).
    state_entries: AtomicU64,
}

pub struct Metrics {
    shards: Vec<ShardCounters>,
    expired: Mutex<Expired>,
}

/// The states with a TTL (id, name), and each shard's expired-entry counts once its
/// backend is open.
#[derive(Default)]
struct Expired {
    ttl_states: Vec<(StateId, String)>,
    per_shard: Vec<Option<Arc<ExpiredCounts>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub records_in: u64,
    pub records_processed: u64,
    pub records_out: u64,
}

impl Metrics {
    pub fn new(shards: usize) -> Self {
        Metrics {
            shards: (0..shards).map(|_| ShardCounters::default()).collect(),
            expired: Mutex::new(Expired { ttl_states: Vec::new(), per_shard: vec![None; shards] }),
        }
    }

    /// Shard `shard`'s counts of expired entries removed, per state (every shard declares
    /// the same states; `ttl_states` are those with a TTL).
    pub fn register_expired(&self, shard: usize, ttl_states: Vec<(StateId, String)>, counts: Arc<ExpiredCounts>) {
        let mut e = self.expired.lock().unwrap_or_else(PoisonError::into_inner);
        e.ttl_states = ttl_states;
        if let Some(slot) = e.per_shard.get_mut(shard) {
            *slot = Some(counts);
        }
    }

    /// Expired entries removed so far per state with a TTL, summed over the shards:
    /// (state, count) in declaration order.
    pub fn expired_per_state(&self) -> Vec<(String, u64)> {
        let e = self.expired.lock().unwrap_or_else(PoisonError::into_inner);
        let per_shard: Vec<Vec<u64>> = e.per_shard.iter().flatten().map(|c| c.get()).collect();
        e.ttl_states
            .iter()
            .map(|(id, name)| {
                let n = per_shard.iter().map(|c| c.get(id.0 as usize).copied().unwrap_or(0)).sum();
                (name.clone(), n)
            })
            .collect()
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

    pub fn set_state_entries(&self, shard: usize, n: u64) {
        if let Some(s) = self.shard(shard) {
            s.state_entries.store(n, Ordering::Relaxed);
        }
    }

    /// Entries stored over every shard, as last sampled.
    pub fn state_entries(&self) -> u64 {
        self.shards.iter().map(|s| s.state_entries.load(Ordering::Relaxed)).sum()
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
