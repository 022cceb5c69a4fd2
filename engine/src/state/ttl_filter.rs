//! The RocksDB compaction filter of a state with a TTL (Flink's
//! `cleanupInRocksdbCompactFilter`): a compaction drops values and map entries that have
//! expired, and trims lists to their live elements (`formats::value::purge_expired`).
//! One filter per compaction run (RocksDB's factory), so each has its own buffer and
//! clock reading; it reads the clock again every `query_time_after_num_entries` entries.
//!
//! RocksDB does not pass merge operands to a filter: a list appended to since its last
//! full merge is trimmed when a later compaction sees the merged value.
use std::ffi::CStr;
use std::sync::Arc;

use formats::value::{Purged, StateDescriptor};
use rocksdb::compaction_filter::CompactionFilter;
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::CompactionDecision;

use super::backend::StateId;
use super::cleanup;
use super::expired::ExpiredCounts;
use crate::clock::Clock;

pub struct TtlFilterFactory {
    pub state: StateId,
    pub desc: Arc<StateDescriptor>,
    pub clock: Arc<dyn Clock>,
    pub counts: Arc<ExpiredCounts>,
    pub query_time_after_num_entries: u64,
}

const NAME: &CStr = c"sluice.ttl";

impl CompactionFilterFactory for TtlFilterFactory {
    type Filter = TtlFilter;

    fn create(&mut self, _: CompactionFilterContext) -> TtlFilter {
        TtlFilter {
            state: self.state,
            desc: self.desc.clone(),
            clock: self.clock.clone(),
            counts: self.counts.clone(),
            query_every: self.query_time_after_num_entries.max(1),
            now_ms: self.clock.now_ms(),
            seen: 0,
            removed: 0,
            kept: Vec::new(),
        }
    }

    fn name(&self) -> &CStr {
        NAME
    }
}

pub struct TtlFilter {
    state: StateId,
    desc: Arc<StateDescriptor>,
    clock: Arc<dyn Clock>,
    counts: Arc<ExpiredCounts>,
    query_every: u64,
    now_ms: u64,
    seen: u64,
    /// Removed since the last count was published (published with each clock reading
    /// and when the filter ends, not per entry).
    removed: u64,
    /// The trimmed list of the last `Change`: RocksDB copies it out before the next call.
    kept: Vec<u8>,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], value: &[u8]) -> CompactionDecision {
        self.seen += 1;
        if self.seen.is_multiple_of(self.query_every) {
            self.now_ms = self.clock.now_ms();
            self.counts.add(self.state, std::mem::take(&mut self.removed));
        }
        let (purged, n) = cleanup::purge(&self.desc, value, self.now_ms);
        self.removed += n;
        match purged {
            Purged::Keep => CompactionDecision::Keep,
            Purged::Drop => CompactionDecision::Remove,
            Purged::Rewritten(kept) => {
                self.kept = kept;
                CompactionDecision::Change(self.kept_static())
            }
        }
    }

    fn name(&self) -> &CStr {
        NAME
    }
}

impl TtlFilter {
    /// `Decision::Change` takes a `'static` slice; RocksDB's C wrapper copies the bytes
    /// into its own string as soon as `filter` returns (`rocksdb_compactionfilter_t::
    /// Filter` in c.cc: `new_value->assign(..)`), and this filter, made per compaction
    /// run, is called from one thread only, so `kept` outlives every use of the slice.
    #[allow(unsafe_code)]
    fn kept_static(&self) -> &'static [u8] {
        // SAFETY: see above; the slice is read before `self.kept` is next written or dropped.
        unsafe { std::slice::from_raw_parts(self.kept.as_ptr(), self.kept.len()) }
    }
}

impl Drop for TtlFilter {
    fn drop(&mut self) {
        self.counts.add(self.state, self.removed);
    }
}
