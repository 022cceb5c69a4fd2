//! How expired TTL entries leave a state, not only its reads (Flink's
//! `StateTtlConfig` cleanup strategies, with Flink's names). Chosen per state; a runtime
//! choice, not part of the state's descriptor: it is never written to a checkpoint, and
//! a job may change it across a restore.
//!
//! - full snapshot: expired entries are left out of every full snapshot (heap
//!   checkpoints, canonical savepoints) and removed from the backend while it is copied;
//! - incremental (heap): after each record the operator processed, and on each idle tick,
//!   a bounded number of a state's entries are checked and the expired removed, walking
//!   the whole table in turn, so cost is spread and bounded
//!   ([`IncrementalCleanup::cleanup_size`] entries per record, at most [`CLEANUP_SIZE_MAX`]);
//! - RocksDB compaction filter: compactions drop expired values and map entries and the
//!   expired elements of lists; periodic compaction rewrites files no other compaction
//!   touches, so cold keys leave the disk too.
//!
//! The default turns all three on (docs/ARCHITECTURE.md, "TTL cleanup"): a TTL job's
//! memory and state size then follow its live keys.
use std::time::Duration;

use formats::value::{self, Purged, StateDescriptor, StateKind};

/// Largest `cleanup_size`: the named bound on the entries one record's incremental
/// cleanup checks per state.
pub const CLEANUP_SIZE_MAX: usize = 1000;
/// Entries per state an idle tick checks, as a multiple of `cleanup_size`.
pub const IDLE_TICK_FACTOR: usize = 1000;
/// How often a shard with no input runs incremental cleanup.
pub const IDLE_TICK: Duration = Duration::from_millis(100);

/// Incremental cleanup on the heap backend (Flink's `cleanupIncrementally`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncrementalCleanup {
    /// Entries checked per record processed (1..=[`CLEANUP_SIZE_MAX`]). With k new entries
    /// per record, any `cleanup_size` above k keeps the table within
    /// `live × cleanup_size / (cleanup_size − k)` entries.
    pub cleanup_size: usize,
    /// Check `cleanup_size` entries after every record the shard processes; when false,
    /// only on idle ticks (sluice has no per-access hook as Flink does).
    pub run_cleanup_for_every_record: bool,
}

/// The RocksDB compaction filter (Flink's `cleanupInRocksdbCompactFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionFilterCleanup {
    /// The filter reads the clock again after this many entries (reading it per entry
    /// costs a system call).
    pub query_time_after_num_entries: u64,
    /// Files not compacted for this long are compacted anyway (RocksDB's periodic
    /// compaction; whole seconds, at least 1; `Some(Duration::ZERO)` turns it off).
    /// `None`: the state's TTL. A file older than the TTL holds only values that have
    /// expired (each expires at most a TTL after it was written, and the file is younger
    /// than everything in it), so compacting it costs a read and writes almost nothing.
    pub periodic_compaction_time: Option<Duration>,
}

/// The cleanup strategies of one state with a TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlCleanup {
    pub full_snapshot: bool,
    pub incremental: Option<IncrementalCleanup>,
    pub compaction_filter: Option<CompactionFilterCleanup>,
}

impl Default for TtlCleanup {
    /// Every strategy on: full snapshots, 5 entries per record (Flink's 5; per record,
    /// since sluice has no per-access hook), the compaction filter querying the time
    /// every 1000 entries (Flink's default) with a periodic compaction at the state's TTL
    /// (Flink: 30 days whatever the TTL; a file older than the TTL is all garbage).
    fn default() -> Self {
        TtlCleanup::none()
            .cleanup_full_snapshot()
            .cleanup_incrementally(5, true)
            .cleanup_in_rocksdb_compact_filter(1000, None)
    }
}

impl TtlCleanup {
    /// No cleanup: expired entries leave only when a read meets them (Flink's
    /// `disableCleanupInBackground` without full-snapshot cleanup).
    pub fn none() -> Self {
        TtlCleanup { full_snapshot: false, incremental: None, compaction_filter: None }
    }

    pub fn cleanup_full_snapshot(mut self) -> Self {
        self.full_snapshot = true;
        self
    }

    /// `cleanup_size` is clamped to 1..=[`CLEANUP_SIZE_MAX`].
    pub fn cleanup_incrementally(mut self, cleanup_size: usize, run_cleanup_for_every_record: bool) -> Self {
        let cleanup_size = cleanup_size.clamp(1, CLEANUP_SIZE_MAX);
        self.incremental = Some(IncrementalCleanup { cleanup_size, run_cleanup_for_every_record });
        self
    }

    pub fn cleanup_in_rocksdb_compact_filter(
        mut self,
        query_time_after_num_entries: u64,
        periodic_compaction_time: Option<Duration>,
    ) -> Self {
        self.compaction_filter = Some(CompactionFilterCleanup {
            query_time_after_num_entries: query_time_after_num_entries.max(1),
            periodic_compaction_time,
        });
        self
    }

    /// Entries one record checks (0: none after records).
    pub fn per_record(&self) -> usize {
        match self.incremental {
            Some(i) if i.run_cleanup_for_every_record => i.cleanup_size,
            _ => 0,
        }
    }

    /// Entries one idle tick checks.
    pub fn per_idle_tick(&self) -> usize {
        self.incremental.map_or(0, |i| i.cleanup_size * IDLE_TICK_FACTOR)
    }
}

/// What cleanup makes of one stored value of `desc` at `now_ms`
/// (`formats::value::purge_expired`), and how many expired values (list elements) that
/// removes. Malformed bytes are kept as they are: cleanup never fails a job or drops what
/// it cannot read; a read of the value reports the damage.
pub fn purge(desc: &StateDescriptor, stored: &[u8], now_ms: u64) -> (Purged, u64) {
    let count = |b: &[u8]| value::list_elements(b).count() as u64;
    match value::purge_expired(desc, stored, now_ms) {
        Ok(Purged::Drop) if desc.kind == StateKind::List => (Purged::Drop, count(stored)),
        Ok(Purged::Drop) => (Purged::Drop, 1),
        Ok(Purged::Rewritten(kept)) => {
            let removed = count(stored).saturating_sub(count(&kept));
            (Purged::Rewritten(kept), removed)
        }
        Ok(Purged::Keep) | Err(_) => (Purged::Keep, 0),
    }
}
