//! Snapshot files of a checkpoint (format `snapshot`, FORMAT.md §11): read block by
//! block, only the blocks of the key groups asked for. Every entry's key group must be
//! its block's: a file that says otherwise is corrupt, and nothing of it is trusted.
use std::path::Path;

use formats::fs::Fs;
use formats::keygroup::{KeyGroup, KeyGroupRange};
use formats::snapshot::SnapshotReader;
use formats::statekey;
use formats::value::StateDescriptor;

use crate::error::ReadError;

/// Callback of the readers: (state, key, value). Keys are full state keys
/// (`formats::statekey`), values stored bytes (TTL header and list framing included).
pub type Visit<'a> = dyn FnMut(&StateDescriptor, &[u8], &[u8]) -> Result<(), ReadError> + 'a;

/// Visits every entry of the snapshot file at `path` whose key group lies in `clip`:
/// `visit(state, key, value)`. On the real file system (`fs.is_real()`) the file is
/// mapped into memory ([`map`]), so only the blocks read are paged in; otherwise it is
/// read whole through `fs` (the simulated file system of tests).
pub fn for_each_in_snapshot(
    fs: &dyn Fs,
    path: &Path,
    clip: KeyGroupRange,
    visit: &mut Visit<'_>,
) -> Result<(), ReadError> {
    if fs.is_real() {
        let mapped = map(path)?;
        return for_each_in_snapshot_bytes(&mapped, path, clip, visit);
    }
    let bytes = fs.read(path).map_err(|e| ReadError::io(path, e))?;
    for_each_in_snapshot_bytes(&bytes, path, clip, visit)
}

/// Maps the snapshot file at `path` read-only (FORMAT.md §11: snapshot files of
/// checkpoints and canonical savepoints are read through memmap2). An empty file maps
/// to an empty slice, which the reader then refuses as truncated.
#[allow(unsafe_code)]
pub(crate) fn map(path: &Path) -> Result<memmap2::Mmap, ReadError> {
    let file = std::fs::File::open(path).map_err(|e| ReadError::io(path, e))?;
    // SAFETY: the map is read-only and private to this call; the bytes are only read
    // through `SnapshotReader`, which checks the crc32 of the footer, the index and each
    // block before it uses them, so a file whose bytes change underneath is at worst
    // reported as corrupt. What a map cannot survive is a file truncated underneath
    // (SIGBUS): snapshot files are immutable once written (FORMAT.md §10, §13: nothing
    // rewrites or truncates a file of a published checkpoint or savepoint; GC and
    // dispose only unlink, which leaves the mapped inode intact).
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ReadError::io(path, e))
}

/// Like [`for_each_in_snapshot`], for a snapshot already in memory; `path` names it in
/// errors.
pub fn for_each_in_snapshot_bytes(
    bytes: &[u8],
    path: &Path,
    clip: KeyGroupRange,
    visit: &mut Visit<'_>,
) -> Result<(), ReadError> {
    let in_file = |e: formats::error::FormatError| ReadError::Format(e.in_file(path));
    let rd = SnapshotReader::open(bytes).map_err(in_file)?;
    for b in rd.index.blocks.iter().filter(|b| clip.contains(KeyGroup(b.key_group))) {
        let state = rd.index.states.get(b.state as usize).ok_or_else(|| ReadError::Invalid {
            path: path.to_owned(),
            reason: format!("block of undeclared state {}", b.state),
        })?;
        let mut failed: Option<ReadError> = None;
        rd.read_block(b, &mut |k, v| {
            if failed.is_some() {
                return;
            }
            let checked = match statekey::decode(k) {
                Ok(sk) if sk.key_group.0 == b.key_group => visit(state, k, v),
                Ok(sk) => Err(ReadError::Invalid {
                    path: path.to_owned(),
                    reason: format!("entry of key group {} in a block of key group {}", sk.key_group.0, b.key_group),
                }),
                Err(e) => Err(in_file(e)),
            };
            failed = checked.err();
        })
        .map_err(in_file)?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}
