//! Restoring a job from a checkpoint or a savepoint: which one, which source splits each
//! new shard resumes, and loading each new shard's key groups from the old shards' files
//! (or, for a RocksDB shard restored onto the same shard count, reopening its files).
//!
//! A restore never modifies or deletes the files it reads (Flink's no-claim mode): it
//! reads them, hard-links immutable SSTs and copies everything else.
use std::path::{Path, PathBuf};

use formats::checkpoint as protocol;
use formats::fs::{Fs, StdFs};
use formats::keygroup::{KeyGroupRange, ShardId};
use formats::layout;
use formats::manifest::{Manifest, ShardFormat};
use formats::operator_state::OperatorState;
use formats::savepoint::{self, Form};
use formats::value::StateDescriptor;

use crate::error::Error;
use crate::source::Split;
use crate::state::backend::Backend;
use crate::state::loader::{load, match_state, LoadError, Unmatched};

/// The newest intact checkpoint under `root`, every file checked; the ones skipped as
/// not intact are logged.
fn discover(root: &Path) -> Result<protocol::Discovery, formats::error::FormatError> {
    let d = protocol::latest(&StdFs, root, protocol::Verify::Checksums)?;
    for (id, e) in &d.rejected {
        tracing::warn!(checkpoint = id.0, error = %e, "skipping checkpoint that is not intact");
    }
    Ok(d)
}

/// Where restored state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A checkpoint in a checkpoint root (paths in the manifest are relative to the root).
    Checkpoint,
    /// A savepoint directory (paths relative to it).
    Savepoint(Form),
}

/// A checkpoint or savepoint to restore from: `PATH` is a `chk-<n>` directory, a job's
/// checkpoint root (then its newest published checkpoint) or a savepoint directory.
/// Every file is checked (size, crc32).
pub struct Restore {
    /// The directory the manifest's paths are relative to.
    pub root: PathBuf,
    pub manifest: Manifest,
    pub origin: Origin,
    /// What happens to states the job no longer declares.
    pub unmatched: Unmatched,
}

impl Restore {
    fn checkpoint(root: PathBuf, manifest: Manifest) -> Self {
        Restore { root, manifest, origin: Origin::Checkpoint, unmatched: Unmatched::Refuse }
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let fs = StdFs;
        if !path.is_dir() {
            return Err(Error::Config(format!(
                "{}: not a checkpoint or savepoint directory (expected chk-<n>, a job's checkpoint root or a savepoint)",
                path.display()
            )));
        }
        if layout::is_savepoint_dir(path) {
            let meta = savepoint::load(&fs, path, protocol::Verify::Checksums)
                .map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
            let origin = Origin::Savepoint(meta.form);
            return Ok(Restore {
                root: path.to_owned(),
                manifest: meta.manifest,
                origin,
                unmatched: Unmatched::Refuse,
            });
        }
        if let Some((root, id)) = layout::split_checkpoint_dir(path) {
            let manifest = protocol::load(&fs, &root, id, protocol::Verify::Checksums)
                .map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
            return Ok(Restore::checkpoint(root, manifest));
        }
        let d = discover(path).map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
        match d.latest {
            Some(manifest) => Ok(Restore::checkpoint(path.to_owned(), manifest)),
            None => Err(Error::Config(format!(
                "{}: no intact published checkpoint found{}",
                path.display(),
                d.rejected.first().map(|(_, e)| format!(" ({e})")).unwrap_or_default()
            ))),
        }
    }

    /// The newest intact checkpoint under the job's checkpoint root `root`, None when
    /// there is none yet (or no root). Checkpoints that are not intact are skipped with
    /// a warning; a root that cannot be read is an error.
    pub fn latest(root: &Path) -> Result<Option<Self>, Error> {
        if !root.is_dir() {
            return Ok(None);
        }
        Ok(discover(root)?.latest.map(|manifest| Restore::checkpoint(root.to_owned(), manifest)))
    }

    /// Skips states the job no longer declares instead of failing
    /// (`--allow-non-restored-state`).
    pub fn allow_non_restored_state(mut self, allow: bool) -> Self {
        self.unmatched = if allow { Unmatched::Skip } else { Unmatched::Refuse };
        self
    }

    /// The directory restored from: the savepoint, or the checkpoint's `chk-<n>`.
    pub fn location(&self) -> PathBuf {
        match self.origin {
            Origin::Savepoint(_) => self.root.clone(),
            Origin::Checkpoint => layout::checkpoint_dir(&self.root, self.manifest.checkpoint),
        }
    }

    /// How errors and logs name what is restored: `checkpoint 5` or `savepoint DIR`.
    pub fn describe(&self) -> String {
        match self.origin {
            Origin::Savepoint(form) => format!("savepoint {} ({form})", self.root.display()),
            Origin::Checkpoint => format!("checkpoint {}", self.manifest.checkpoint.0),
        }
    }

    /// The checkpoint restored from when it lies in checkpoint root `root`: the job's
    /// garbage collection must keep it (it does not own it). The two paths may be
    /// spelled differently (`--from /abs/ck/job/chk-3` with `dir = "ck"`), so they are
    /// compared canonical when both exist.
    pub fn pinned_in(&self, root: &Path) -> Option<formats::id::CheckpointId> {
        let same =
            self.root == root || matches!((self.root.canonicalize(), root.canonicalize()), (Ok(a), Ok(b)) if a == b);
        (self.origin == Origin::Checkpoint && same).then_some(self.manifest.checkpoint)
    }

    /// The splits of every old shard that new shard `shard` of `shards` resumes.
    pub fn splits_for(&self, shard: u16, shards: u32) -> Result<Option<Vec<Split>>, Error> {
        let mut all = Vec::new();
        for s in &self.manifest.shards {
            let splits: Option<Vec<Split>> = serde_json::from_value(s.source_position.clone()).map_err(|e| {
                Error::Config(format!(
                    "checkpoint {}: bad source position of shard {}: {e}",
                    self.manifest.checkpoint.0, s.shard
                ))
            })?;
            match splits {
                Some(v) => all.extend(v),
                None => return Ok(None),
            }
        }
        Ok(Some(all.into_iter().filter(|s| s.id % shards.max(1) == u32::from(shard)).collect()))
    }

    /// The operator states new shard `shard` of `shards` restores (list states dealt
    /// evenly, union states whole).
    pub fn operator_state_for(&self, shard: u16, shards: u32) -> Result<Vec<OperatorState>, Error> {
        let old: Vec<&[OperatorState]> = self.manifest.shards.iter().map(|s| s.operator_state.as_slice()).collect();
        formats::operator_state::redistribute(&old, u32::from(shard), shards)
            .map_err(|e| Error::Config(format!("cannot restore {}: {e}", self.location().display())))
    }

    /// Every item of operator state `name` over all old shards (a sink's pending
    /// transactions, which its recovery commits at once).
    pub fn operator_items(&self, name: &str) -> Vec<Vec<u8>> {
        let old: Vec<&[OperatorState]> = self.manifest.shards.iter().map(|s| s.operator_state.as_slice()).collect();
        formats::operator_state::all_items(&old, name)
    }

    /// Whether restoring needs a scratch directory (some shard is a RocksDB instance).
    pub fn needs_scratch(&self) -> bool {
        self.manifest.shards.iter().any(|s| s.format == ShardFormat::Rocksdb)
    }

    /// Loads the state of every old shard whose range overlaps `range` into `backend`,
    /// clipped to `range`, through `reader`. RocksDB shards are rebuilt under `work`
    /// (then removed). Returns the number of entries loaded.
    pub fn restore_into(
        &self,
        backend: &mut dyn Backend,
        range: KeyGroupRange,
        work: Option<&Path>,
        shard: ShardId,
    ) -> Result<u64, Error> {
        let scratch = work.map(|w| layout::restore_scratch_dir(w, shard));
        let (root, m) = (&self.root, &self.manifest);
        load(backend, self.unmatched, |visit| reader::for_each(&mut StdFs, root, m, range, scratch.as_deref(), visit))
            .map_err(|e| match e {
                LoadError::Write(e) => Error::State(e),
                e => Error::Config(format!("cannot restore {}: {e}", self.location().display())),
            })
    }

    /// Restoring RocksDB shard `shard` of `shards` with key groups `range` and the job's
    /// states `declared`: when the old shard of the same number was a RocksDB instance
    /// with the same range and states, lays its files out in `instance` (SSTs hard-linked,
    /// the rest copied: RocksDB rewrites those) for the backend to open as they are, and
    /// returns true. Otherwise (another shard count, a heap checkpoint, a canonical
    /// savepoint, states added or dropped) returns false: the shard is then rebuilt by
    /// [`Self::restore_into`].
    pub fn reopen(
        &self,
        shard: ShardId,
        shards: u32,
        range: KeyGroupRange,
        declared: &[StateDescriptor],
        instance: &Path,
    ) -> Result<bool, Error> {
        let m = &self.manifest;
        let Some(old) = m.shards.get(usize::from(shard.0)) else { return Ok(false) };
        let same_states = m.states.len() == declared.len()
            && m.states.iter().all(|d| matches!(match_state(declared, d, Unmatched::Refuse), Ok(Some(_))));
        if m.shards.len() != shards as usize || old.format != ShardFormat::Rocksdb || old.range != range || !same_states
        {
            return Ok(false);
        }
        let mut fs = StdFs;
        let fail = |p: &Path, e: std::io::Error| {
            Error::Config(format!("cannot restore {}: {}", self.location().display(), Error::io(p, e)))
        };
        if fs.exists(instance) {
            fs.remove_dir_all(instance).map_err(|e| fail(instance, e))?;
        }
        formats::fs::create_dir_all(&mut fs, instance).map_err(|e| fail(instance, e))?;
        for f in &old.files {
            let (from, to) = (layout::resolve(&self.root, &f.path), instance.join(f.local_name()));
            let placed = if layout::is_shared_file(f.local_name()) {
                fs.link_or_copy(&from, &to)
            } else {
                std::fs::copy(&from, &to).map(|_| ())
            };
            placed.map_err(|e| fail(&from, e))?;
        }
        Ok(true)
    }
}
