//! Expired entries removed, per state of one shard. Written by the shard's thread (reads
//! that meet an expired value, incremental cleanup, full-snapshot cleanup) and by
//! RocksDB's compaction threads (the compaction filter); read by the job's report and
//! the control endpoint.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::backend::StateId;

#[derive(Debug, Default)]
pub struct ExpiredCounts {
    per_state: Box<[AtomicU64]>,
}

impl ExpiredCounts {
    pub fn new(states: usize) -> Arc<Self> {
        Arc::new(ExpiredCounts { per_state: (0..states).map(|_| AtomicU64::new(0)).collect() })
    }

    pub fn add(&self, s: StateId, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(c) = self.per_state.get(s.0 as usize) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counts, in state-id order.
    pub fn get(&self) -> Vec<u64> {
        self.per_state.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}
