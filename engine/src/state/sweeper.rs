//! A shard's TTL cleanup as the operator runs it (`state::cleanup` says what each
//! strategy does): incremental steps after each record and on idle ticks, and the
//! settings a full snapshot filters with. Counts what it removes in the shard's
//! [`ExpiredCounts`].
use std::sync::Arc;

use super::backend::{Backend, BackendKind, StateId};
use super::cleanup::TtlCleanup;
use super::expired::ExpiredCounts;
use crate::error::StateError;

/// What a full snapshot leaves out: per state, whether expired entries are dropped, at
/// `now_ms`; what it drops is removed from the backend too and counted.
pub struct SnapshotExpiry<'a> {
    pub now_ms: u64,
    pub full_snapshot: &'a [bool],
    pub counts: &'a ExpiredCounts,
}

pub struct Sweeper {
    /// (state, entries per record, entries per idle tick) of every state with
    /// incremental cleanup on a backend that supports it (the heap).
    incremental: Vec<(StateId, usize, usize)>,
    full_snapshot: Vec<bool>,
    /// States compacted before the final checkpoint (RocksDB: full-snapshot cleanup and
    /// the compaction filter both on), so it holds nothing expired.
    before_final: Vec<StateId>,
    counts: Arc<ExpiredCounts>,
}

impl Sweeper {
    /// `cleanups` has one entry per state, in state-id order (`StateRegistry::cleanups`);
    /// states without a TTL have `TtlCleanup::none()`.
    pub fn new(kind: BackendKind, cleanups: &[TtlCleanup], counts: Arc<ExpiredCounts>) -> Self {
        let incremental = match kind {
            // RocksDB cleans up in compactions (the filter); the write-back cache in front
            // of it is bounded on its own.
            BackendKind::Rocksdb => Vec::new(),
            BackendKind::Heap => cleanups
                .iter()
                .enumerate()
                .filter(|(_, c)| c.incremental.is_some())
                .map(|(i, c)| (StateId(i as u32), c.per_record(), c.per_idle_tick()))
                .collect(),
        };
        let before_final = match kind {
            BackendKind::Heap => Vec::new(),
            BackendKind::Rocksdb => cleanups
                .iter()
                .enumerate()
                .filter(|(_, c)| c.full_snapshot && c.compaction_filter.is_some())
                .map(|(i, _)| StateId(i as u32))
                .collect(),
        };
        Sweeper { incremental, full_snapshot: cleanups.iter().map(|c| c.full_snapshot).collect(), before_final, counts }
    }

    /// Before the final checkpoint's snapshot: the heap's snapshot filters on its own;
    /// RocksDB links its files as they are, so the states with full-snapshot cleanup are
    /// compacted through their TTL filter first (the end of the input is the one point
    /// where rewriting them costs no throughput).
    pub fn before_final_snapshot(&self, backend: &mut dyn Backend) -> Result<(), StateError> {
        if self.before_final.is_empty() {
            return Ok(());
        }
        backend.compact_states(&self.before_final)
    }

    pub fn counts(&self) -> &Arc<ExpiredCounts> {
        &self.counts
    }

    /// Whether any state is cleaned after records (the operator skips reading the clock
    /// otherwise).
    pub fn cleans_after_records(&self) -> bool {
        self.incremental.iter().any(|(_, per_record, _)| *per_record > 0)
    }

    /// Cleanup after `records` records: `cleanup_size` entries per record per state.
    pub fn after_record(&self, backend: &mut dyn Backend, now_ms: u64, records: usize) -> Result<(), StateError> {
        for &(s, per_record, _) in &self.incremental {
            if per_record > 0 {
                self.counts.add(s, backend.remove_expired(s, now_ms, per_record.saturating_mul(records))?);
            }
        }
        Ok(())
    }

    /// Cleanup on an idle tick.
    pub fn on_idle_tick(&self, backend: &mut dyn Backend, now_ms: u64) -> Result<(), StateError> {
        for &(s, _, per_tick) in &self.incremental {
            self.counts.add(s, backend.remove_expired(s, now_ms, per_tick)?);
        }
        Ok(())
    }

    pub fn has_idle_work(&self) -> bool {
        !self.incremental.is_empty()
    }

    pub fn snapshot_expiry(&self, now_ms: u64) -> SnapshotExpiry<'_> {
        SnapshotExpiry { now_ms, full_snapshot: &self.full_snapshot, counts: &self.counts }
    }
}
