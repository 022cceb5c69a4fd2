//! What a shard reports to the coordinator when it has snapshotted checkpoint n, and the
//! synchronous part of taking that snapshot on the shard's thread.
use std::path::{Path, PathBuf};
use std::time::Duration;

use formats::id::CheckpointId;
use formats::keygroup::{KeyGroupRange, ShardId};
use formats::layout;
use formats::operator_state::OperatorState;
use formats::value::StateDescriptor;

use crate::error::Error;
use crate::source::Split;
use crate::state::backend::Backend;
use crate::state::snapshot::{self, Collected};
use crate::state::sweeper::SnapshotExpiry;

/// What a shard reports for checkpoint `id`.
pub struct Ack {
    pub shard: u16,
    pub id: u64,
    pub range: KeyGroupRange,
    pub states: Vec<StateDescriptor>,
    pub snapshot: Result<ShardState, String>,
    pub splits: Option<Vec<Split>>,
    /// The shard's operator states (its function's and its sink's).
    pub operator_state: Vec<OperatorState>,
    pub sync: Duration,
}

/// A shard's snapshot, as taken on its thread.
pub enum ShardState {
    /// The shard's entries, copied; encoded and compressed by the coordinator.
    Full(Collected),
    /// A RocksDB checkpoint of the shard's instance `instance` in `dir` (hard links);
    /// the coordinator copies what is new and removes `dir`. `expiry`: what a canonical
    /// savepoint written from it leaves out (its files are linked as they are).
    Rocksdb { dir: PathBuf, instance: u64, expiry: Option<ExpiryAt> },
}

/// The states whose full snapshots leave out expired entries (by state id), and the
/// instant of the barrier they expire at.
#[derive(Debug, Clone)]
pub struct ExpiryAt {
    pub now_ms: u64,
    pub full_snapshot: Vec<bool>,
}

impl ExpiryAt {
    /// `now_ms` if state `i` leaves out what expired then.
    pub fn purge_at(&self, i: usize) -> Option<u64> {
        (self.full_snapshot.get(i) == Some(&true)).then_some(self.now_ms)
    }
}

/// The synchronous part of shard `shard`'s checkpoint `id`: a native checkpoint into
/// the work directory `work` when the backend has one (and `work` is given), else a copy
/// of every entry in `range`.
pub fn take_snapshot(
    backend: &mut dyn Backend,
    range: KeyGroupRange,
    work: Option<&Path>,
    shard: u16,
    id: u64,
    expiry: Option<&SnapshotExpiry<'_>>,
) -> Result<ShardState, Error> {
    if let Some(work) = work {
        let dir = layout::local_checkpoint_dir(work, ShardId(shard), CheckpointId(id));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        if let Some(instance) = backend.native_checkpoint(&dir)? {
            let expiry = expiry.map(|e| ExpiryAt { now_ms: e.now_ms, full_snapshot: e.full_snapshot.to_vec() });
            return Ok(ShardState::Rocksdb { dir, instance, expiry });
        }
    }
    Ok(ShardState::Full(snapshot::collect_with(backend, range, expiry)?))
}
