//! Drives keyed state without a running job, for unit tests of process functions and for
//! the model tests of the state backends (as Flink's operator test harnesses).
use std::path::Path;
use std::sync::Arc;

use formats::keygroup::{key_group_of, KEY_GROUPS_DEFAULT};
use formats::statekey;

use crate::clock::Clock;
use crate::error::Error;
use crate::state::backend::{Backend, BackendKind, StateId};
use crate::state::cache::CachedBackend;
use crate::state::context::Scratch;
use crate::state::context::{Context, StateRegistry};
use crate::state::expired::ExpiredCounts;
use crate::state::heap::HeapBackend;
use crate::state::loader::{load, LoadError, Unmatched};
use crate::state::rocks::{RocksBackend, RocksConfig};
use crate::state::sweeper::Sweeper;
use crate::time::firing::{fire_due_by, OnTimer, TimerEnv};
use crate::time::scope::TimeScope;
use formats::timerkey::TimeDomain;

/// A stored entry: (state key, stored value).
pub type StoredEntry = (Vec<u8>, Vec<u8>);

pub struct StateHarness {
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    scratch: Scratch,
    prefix: Vec<u8>,
    /// The TTL cleanup the states declared (as a shard's operator runs it).
    sweeper: Sweeper,
    time: TimeScope,
    /// The timer state, if the registry declared the timer service.
    timers: Option<StateId>,
}

impl StateHarness {
    /// Opens a backend holding the states declared in `registry`. RocksDB needs `dir`;
    /// `cache_entries_max` sizes its write-back cache (0: none).
    pub fn open(
        kind: BackendKind,
        registry: StateRegistry,
        dir: Option<&Path>,
        cache_entries_max: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let timers = registry.timer_state();
        let (descriptors, cleanups) = registry.into_parts();
        let counts = ExpiredCounts::new(descriptors.len());
        let sweeper = Sweeper::new(kind, &cleanups, counts.clone());
        let backend: Box<dyn Backend> = match (kind, dir) {
            (BackendKind::Rocksdb, Some(d)) => {
                let cfg = RocksConfig::default();
                let rocks =
                    RocksBackend::open_with_cleanup(d, descriptors, &cleanups, counts.clone(), &cfg, clock.clone())?;
                Box::new(CachedBackend::new(rocks, cache_entries_max))
            }
            (BackendKind::Rocksdb, None) => return Err(Error::Config("the rocksdb backend needs a directory".into())),
            (BackendKind::Heap, _) => Box::new(HeapBackend::new(descriptors)),
        };
        let scratch = Scratch { expired: Some(counts), ..Scratch::default() };
        Ok(StateHarness { backend, clock, scratch, prefix: Vec::new(), sweeper, time: TimeScope::default(), timers })
    }

    /// Like [`open`](Self::open), with the backend passed through `wrap` first. Tests
    /// plant bugs this way (a wrapper that drops deletes, say) to prove that a model
    /// comparison notices them.
    pub fn open_wrapped(
        kind: BackendKind,
        registry: StateRegistry,
        dir: Option<&Path>,
        cache_entries_max: usize,
        clock: Arc<dyn Clock>,
        wrap: impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend>,
    ) -> Result<Self, Error> {
        let mut h = Self::open(kind, registry, dir, cache_entries_max, clock)?;
        h.backend = wrap(h.backend);
        Ok(h)
    }

    /// Runs `f` with state scoped to `key` (as the engine would for a record of `key`).
    pub fn with_key<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        let kg = key_group_of(key, KEY_GROUPS_DEFAULT);
        self.prefix.clear();
        statekey::encode_prefix(&mut self.prefix, kg, key, b"");
        let mut ctx = Context::new(
            &mut *self.backend,
            &self.prefix,
            &self.clock,
            &mut self.scratch,
            &mut self.time,
            formats::ShardId(0),
            kg,
        );
        f(&mut ctx)
    }

    /// Fires the timers of `domain` due at `until` on every key group, in time order, as
    /// a shard's operator does when its watermark (event time; it becomes the context's
    /// watermark) or its clock (processing time) reaches `until`. `on_timer` gets the
    /// key's bytes and the timer's time. Returns how many fired.
    pub fn fire_timers(&mut self, domain: TimeDomain, until: i64, on_timer: &mut OnTimer<'_>) -> Result<u64, Error> {
        let Some(state) = self.timers else { return Ok(0) };
        if domain == TimeDomain::EventTime {
            self.time.watermark = self.time.watermark.max(until);
        }
        let range = formats::KeyGroupRange { start: 0, end: KEY_GROUPS_DEFAULT as u16 };
        let env = TimerEnv {
            backend: &mut *self.backend,
            state,
            range,
            max_key_groups: KEY_GROUPS_DEFAULT,
            clock: &self.clock,
            scratch: &mut self.scratch,
            time: &mut self.time,
            shard: formats::ShardId(0),
        };
        // A small read per key group, so the model tests exercise the pass's re-reads.
        fire_due_by(env, domain, until, 2, on_timer)
    }

    /// Runs `f` with no current key, as at end of input (for `for_each` scans).
    pub fn without_key<R>(&mut self, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        let mut ctx = Context::new(
            &mut *self.backend,
            &[],
            &self.clock,
            &mut self.scratch,
            &mut self.time,
            formats::ShardId(0),
            formats::KeyGroup(0),
        );
        f(&mut ctx)
    }

    /// A snapshot of every state entry in `range` (`formats::snapshot`), as a shard's
    /// full snapshot takes it (states with full-snapshot cleanup leave out what expired).
    pub fn snapshot(&mut self, range: formats::KeyGroupRange) -> Result<Vec<u8>, Error> {
        let expiry = self.sweeper.snapshot_expiry(self.clock.now_ms());
        Ok(crate::state::snapshot::collect_with(&mut *self.backend, range, Some(&expiry))?.encode()?)
    }

    /// Incremental TTL cleanup as the operator runs it after `records` records.
    pub fn cleanup_after_records(&mut self, records: usize) -> Result<(), Error> {
        Ok(self.sweeper.after_record(&mut *self.backend, self.clock.now_ms(), records)?)
    }

    /// Incremental TTL cleanup as the operator runs it on an idle tick.
    pub fn cleanup_idle_tick(&mut self) -> Result<(), Error> {
        Ok(self.sweeper.on_idle_tick(&mut *self.backend, self.clock.now_ms())?)
    }

    /// Expired entries removed so far per state (reads, cleanup, compaction filter), in
    /// declaration order.
    pub fn expired_removed(&self) -> Vec<u64> {
        self.sweeper.counts().get()
    }

    /// The stored entries (state key, stored value) of the `state`-th declared state,
    /// expired or not, in key order.
    pub fn stored(&mut self, state: u32) -> Result<Vec<StoredEntry>, Error> {
        let mut out = Vec::new();
        self.backend.scan_prefix(crate::state::backend::StateId(state), &[], &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        out.sort();
        Ok(out)
    }

    /// Rewrites the store now (RocksDB: a full compaction, which runs the TTL filter).
    pub fn compact(&mut self) -> Result<(), Error> {
        Ok(self.backend.compact()?)
    }

    /// Loads the entries of `snapshot` in key groups `clip`; returns how many.
    pub fn restore(&mut self, snapshot: &[u8], clip: formats::KeyGroupRange) -> Result<u64, Error> {
        load(&mut *self.backend, Unmatched::Refuse, |visit| {
            reader::for_each_in_snapshot_bytes(snapshot, Path::new("<snapshot>"), clip, visit)
        })
        .map_err(|e| match e {
            LoadError::Refused(e) | LoadError::Write(e) => Error::State(e),
            LoadError::Read(e) => Error::Read(e),
        })
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        Ok(self.backend.flush()?)
    }
}

impl StateHarness {
    /// A shard's barrier snapshot of `range` (a RocksDB checkpoint into `work`, or a
    /// copy), with the full-snapshot cleanup the states declared, at the clock's now.
    #[cfg(test)]
    pub(crate) fn barrier_snapshot(
        &mut self,
        range: formats::KeyGroupRange,
        work: &Path,
        id: u64,
    ) -> Result<crate::runtime::checkpoint::ack::ShardState, Error> {
        let expiry = self.sweeper.snapshot_expiry(self.clock.now_ms());
        crate::runtime::checkpoint::ack::take_snapshot(&mut *self.backend, range, Some(work), 0, id, Some(&expiry))
    }

    /// The backend itself (crate tests that take snapshots and restore through the
    /// runtime's own paths).
    #[cfg(test)]
    pub(crate) fn backend_mut(&mut self) -> &mut dyn Backend {
        &mut *self.backend
    }
}
