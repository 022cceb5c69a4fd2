//! Reading every entry of a checkpoint, whatever its shards' format: snapshot files are
//! decoded block by block; RocksDB shards are rebuilt in a temporary directory outside
//! the checkpoint (which stays untouched), opened read-only and scanned.
use std::path::Path;

use formats::keygroup::KeyGroupRange;
use formats::manifest::{Manifest, ShardFormat};
use formats::snapshot::SnapshotReader;
use formats::value::StateDescriptor;

/// Callback of [`for_each`]: (state, key, value).
pub type Visit<'a> = dyn FnMut(&StateDescriptor, &[u8], &[u8]) -> Result<(), formats::FormatError> + 'a;

/// Calls `visit(state, key, value)` for every entry of `m` (under `root`) whose key
/// group lies in `clip`; the first error, of a file or of `visit`, names the file.
pub fn for_each(root: &Path, m: &Manifest, clip: KeyGroupRange, visit: &mut Visit<'_>) -> anyhow::Result<()> {
    for sh in m.shards.iter().filter(|s| s.range.start < clip.end && clip.start < s.range.end) {
        match sh.format {
            ShardFormat::Snapshot => {
                for f in &sh.files {
                    let p = formats::layout::resolve(root, &f.path);
                    let bytes = std::fs::read(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    let r = SnapshotReader::open(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    let mut err = None;
                    r.for_each_in(clip, &mut |si, k, v| {
                        if err.is_none() {
                            err = r.index.states.get(si as usize).and_then(|d| visit(d, k, v).err());
                        }
                    })
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    if let Some(e) = err {
                        anyhow::bail!("{}: {e}", p.display());
                    }
                }
            }
            ShardFormat::Rocksdb => {
                let scratch = tempfile::tempdir()?;
                let dir = scratch.path().join("instance");
                let what = formats::layout::resolve(root, &formats::layout::shard_files_prefix(m.checkpoint, sh.shard));
                engine::state::native::materialize(root, sh, &dir)
                    .and_then(|()| {
                        engine::state::native::scan(&dir, &m.states, clip, &mut |si, k, v| match m.states.get(si) {
                            Some(d) => visit(d, k, v).map_err(engine::StateError::from),
                            None => Ok(()),
                        })
                    })
                    .map_err(|e| anyhow::anyhow!("{} (RocksDB instance): {e}", what.display()))?;
            }
        }
    }
    Ok(())
}

/// Every key group.
pub const ALL: KeyGroupRange = KeyGroupRange { start: 0, end: u16::MAX };
