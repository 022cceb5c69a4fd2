//! Reading every entry of a checkpoint through `reader` (the engine's restore reads the
//! same way). RocksDB shards are rebuilt in a temporary directory outside the checkpoint,
//! which stays untouched.
use std::path::Path;

use formats::keygroup::KeyGroupRange;
use formats::manifest::Manifest;

pub use reader::{Visit, ALL_KEY_GROUPS as ALL};

/// Calls `visit(state, key, value)` for every entry of `m` (under `root`) whose key
/// group lies in `clip`; the first error, of a file or of `visit`, names the file.
pub fn for_each(root: &Path, m: &Manifest, clip: KeyGroupRange, visit: &mut Visit<'_>) -> anyhow::Result<u64> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().join("instance");
    Ok(reader::for_each(&mut formats::fs::StdFs, root, m, clip, Some(&dir), visit)?)
}
