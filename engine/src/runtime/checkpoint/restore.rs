//! Restoring a job from a checkpoint: which checkpoint, which source splits each new
//! shard resumes, and loading each new shard's key groups from the old shards' files.
use std::path::{Path, PathBuf};

use formats::checkpoint as protocol;
use formats::fs::StdFs;
use formats::keygroup::{KeyGroupRange, ShardId};
use formats::layout;
use formats::manifest::{Manifest, ShardFormat};

use crate::error::Error;
use crate::source::Split;
use crate::state::backend::Backend;
use crate::state::loader::{load, LoadError};

/// The newest intact checkpoint under `root`, every file checked; the ones skipped as
/// not intact are logged.
fn discover(root: &Path) -> Result<protocol::Discovery, formats::error::FormatError> {
    let d = protocol::latest(&StdFs, root, protocol::Verify::Checksums)?;
    for (id, e) in &d.rejected {
        tracing::warn!(checkpoint = id.0, error = %e, "skipping checkpoint that is not intact");
    }
    Ok(d)
}

/// A checkpoint to restore from: `PATH` is a `chk-<n>` directory or a job's checkpoint
/// root (then its newest published checkpoint). Every file is checked (size, crc32).
pub struct Restore {
    pub root: PathBuf,
    pub manifest: Manifest,
}

impl Restore {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let fs = StdFs;
        if !path.is_dir() {
            return Err(Error::Config(format!(
                "{}: not a checkpoint directory (expected chk-<n> or a job's checkpoint root)",
                path.display()
            )));
        }
        if let Some((root, id)) = layout::split_checkpoint_dir(path) {
            let manifest = protocol::load(&fs, &root, id, protocol::Verify::Checksums)
                .map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
            return Ok(Restore { root, manifest });
        }
        let d = discover(path).map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
        match d.latest {
            Some(manifest) => Ok(Restore { root: path.to_owned(), manifest }),
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
        Ok(discover(root)?.latest.map(|manifest| Restore { root: root.to_owned(), manifest }))
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
        load(backend, |visit| reader::for_each(&mut StdFs, root, m, range, scratch.as_deref(), visit)).map_err(|e| {
            match e {
                LoadError::Write(e) => Error::State(e),
                e => Error::Config(format!(
                    "cannot restore {}: {e}",
                    layout::checkpoint_dir(root, m.checkpoint).display()
                )),
            }
        })
    }
}
