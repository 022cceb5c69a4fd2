//! RocksDB shards of a checkpoint (format `rocksdb`): an old shard's instance is rebuilt
//! from the checkpoint's files in a scratch directory (hard links when on the same file
//! system, else copies), opened read-only, and the entries of the key groups asked for
//! are read out of it in key order. The files were verified (size, crc32) when the
//! manifest was loaded with checksums.
use std::path::Path;

use formats::fs::Fs;
use formats::keygroup::{KeyGroup, KeyGroupRange};
use formats::layout;
use formats::manifest::ShardSnapshot;
use formats::statekey;
use formats::value::{StateDescriptor, StateKind};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, MergeOperands, Options, DB};

use crate::error::ReadError;

/// The name of list states' merge operator; RocksDB records it in each instance's
/// OPTIONS, so it is part of the format.
pub const LIST_MERGE_OPERATOR: &str = "sluice.list.concat";

/// List states append with a merge: their stored value is the concatenation of framed
/// elements (FORMAT.md §4), so merging is concatenation.
pub fn concat_merge(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for op in operands {
        out.extend_from_slice(op);
    }
    Some(out)
}

/// Opens a checkpointed instance at `path` for reading: a column family per state,
/// lists with the merge operator (their values may still be unmerged operands).
pub fn open_read_only(path: &Path, states: &[StateDescriptor]) -> Result<DB, ReadError> {
    let cfs = states.iter().map(|d| {
        let mut o = Options::default();
        if d.kind == StateKind::List {
            o.set_merge_operator_associative(LIST_MERGE_OPERATOR, concat_merge);
        }
        ColumnFamilyDescriptor::new(d.name.clone(), o)
    });
    DB::open_cf_descriptors_read_only(&Options::default(), path, cfs, false)
        .map_err(|source| ReadError::Rocks { path: path.to_owned(), source })
}

/// Rebuilds `shard`'s instance from checkpoint `root` in `scratch` (created; replaced
/// if present), through `fs`: hard links where possible, else copies.
pub fn materialize(fs: &mut dyn Fs, root: &Path, shard: &ShardSnapshot, scratch: &Path) -> Result<(), ReadError> {
    if fs.exists(scratch) {
        fs.remove_dir_all(scratch).map_err(|e| ReadError::io(scratch, e))?;
    }
    formats::fs::create_dir_all(fs, scratch).map_err(|e| ReadError::io(scratch, e))?;
    for f in &shard.files {
        let from = layout::resolve(root, &f.path);
        fs.link_or_copy(&from, &scratch.join(f.local_name())).map_err(|e| ReadError::io(&from, e))?;
    }
    Ok(())
}

/// Callback of [`scan`]: (index of the state, key, value).
pub type IndexedVisit<'a> = dyn FnMut(usize, &[u8], &[u8]) -> Result<(), ReadError> + 'a;

/// Visits, per state in `states` order, every entry of the instance in `dir` whose key
/// group lies in `clip`, in key order: `visit(state index, key, value)`.
pub fn scan(
    dir: &Path,
    states: &[StateDescriptor],
    clip: KeyGroupRange,
    visit: &mut IndexedVisit<'_>,
) -> Result<(), ReadError> {
    let db = open_read_only(dir, states)?;
    let rocks = |source| ReadError::Rocks { path: dir.to_owned(), source };
    let start = statekey::key_group_prefix(KeyGroup(clip.start));
    for (i, d) in states.iter().enumerate() {
        let cf = db.cf_handle(&d.name).ok_or_else(|| ReadError::Invalid {
            path: dir.to_owned(),
            reason: format!("no column family for state {:?}", d.name),
        })?;
        for item in db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item.map_err(rocks)?;
            let kg = statekey::decode(&k)?.key_group;
            if u32::from(kg.0) >= u32::from(clip.end) {
                break;
            }
            visit(i, &k, &v)?;
        }
    }
    Ok(())
}
