//! Drives keyed state without a running job, for unit tests of process functions and for
//! the model tests of the state backends (as Flink's operator test harnesses).
use std::path::Path;
use std::sync::Arc;

use formats::keygroup::{key_group_of, KEY_GROUPS_DEFAULT};
use formats::statekey;

use crate::clock::Clock;
use crate::error::Error;
use crate::state::backend::{Backend, BackendKind};
use crate::state::cache::CachedBackend;
use crate::state::context::Scratch;
use crate::state::context::{Context, StateRegistry};
use crate::state::heap::HeapBackend;
use crate::state::loader::{load, LoadError, Unmatched};
use crate::state::rocks::{RocksBackend, RocksConfig};

pub struct StateHarness {
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    scratch: Scratch,
    prefix: Vec<u8>,
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
        let descriptors = registry.into_descriptors();
        let backend: Box<dyn Backend> = match (kind, dir) {
            (BackendKind::Rocksdb, Some(d)) => {
                let rocks = RocksBackend::open(d, descriptors, &RocksConfig::default(), clock.clone())?;
                Box::new(CachedBackend::new(rocks, cache_entries_max))
            }
            (BackendKind::Rocksdb, None) => return Err(Error::Config("the rocksdb backend needs a directory".into())),
            (BackendKind::Heap, _) => Box::new(HeapBackend::new(descriptors)),
        };
        Ok(StateHarness { backend, clock, scratch: Scratch::default(), prefix: Vec::new() })
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
        let mut ctx =
            Context::new(&mut *self.backend, &self.prefix, &self.clock, &mut self.scratch, formats::ShardId(0), kg);
        f(&mut ctx)
    }

    /// Runs `f` with no current key, as at end of input (for `for_each` scans).
    pub fn without_key<R>(&mut self, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        let mut ctx = Context::new(
            &mut *self.backend,
            &[],
            &self.clock,
            &mut self.scratch,
            formats::ShardId(0),
            formats::KeyGroup(0),
        );
        f(&mut ctx)
    }

    /// A snapshot of every state entry in `range` (`formats::snapshot`).
    pub fn snapshot(&mut self, range: formats::KeyGroupRange) -> Result<Vec<u8>, Error> {
        Ok(crate::state::snapshot::write(&mut *self.backend, range)?)
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
    /// The backend itself (crate tests that take snapshots and restore through the
    /// runtime's own paths).
    #[cfg(test)]
    pub(crate) fn backend_mut(&mut self) -> &mut dyn Backend {
        &mut *self.backend
    }
}
