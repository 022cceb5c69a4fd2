//! Every entry of a checkpoint, whatever its shards' format, clipped to a key-group
//! range: the dispatch that the engine's restore and statetool share.
use std::path::Path;

use formats::keygroup::KeyGroupRange;
use formats::layout;
use formats::manifest::{Manifest, ShardFormat};
use formats::value::StateDescriptor;

use crate::error::ReadError;
use crate::rocks;
use crate::snapshot::{for_each_in_snapshot, Visit};

/// Every key group.
pub const ALL_KEY_GROUPS: KeyGroupRange = KeyGroupRange { start: 0, end: u16::MAX };

/// Calls `visit` for every entry of checkpoint `m` (under its root `root`) whose key
/// group lies in `clip`, old shard by old shard. RocksDB shards are rebuilt under
/// `scratch` (a directory this call creates and removes; it must be outside the
/// checkpoint; only needed when a shard is a RocksDB instance). Returns the number of entries visited. The first error, of a file or of
/// `visit`, ends the walk.
pub fn for_each(
    root: &Path,
    m: &Manifest,
    clip: KeyGroupRange,
    scratch: Option<&Path>,
    visit: &mut Visit<'_>,
) -> Result<u64, ReadError> {
    let mut visited = 0u64;
    let mut counted = |d: &StateDescriptor, k: &[u8], v: &[u8]| {
        visited += 1;
        visit(d, k, v)
    };
    for sh in m.shards.iter().filter(|s| s.range.start < clip.end && clip.start < s.range.end) {
        match sh.format {
            ShardFormat::Snapshot => {
                for f in &sh.files {
                    for_each_in_snapshot(&layout::resolve(root, &f.path), clip, &mut counted)?;
                }
            }
            ShardFormat::Rocksdb => {
                let scratch = scratch.ok_or_else(|| ReadError::Invalid {
                    path: layout::resolve(root, &layout::shard_files_prefix(m.checkpoint, sh.shard)),
                    reason: "reading a RocksDB shard needs a scratch directory".into(),
                })?;
                rocks::materialize(root, sh, scratch)?;
                let scanned = rocks::scan(scratch, &m.states, clip, &mut |i, k, v| match m.states.get(i) {
                    Some(d) => counted(d, k, v),
                    None => Ok(()),
                });
                let removed = std::fs::remove_dir_all(scratch).map_err(|e| ReadError::io(scratch, e));
                scanned?;
                removed?;
            }
        }
    }
    Ok(visited)
}
