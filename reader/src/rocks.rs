//! RocksDB shards of a checkpoint (format `rocksdb`): an old shard's instance is rebuilt
//! from the checkpoint's files in a scratch directory (hard links when on the same file
//! system, else copies), opened read-only, and the entries of the key groups asked for
//! are read out of it in key order. The files were verified (size, crc32) when the
//! manifest was loaded with checksums.
use std::path::{Path, PathBuf};

use formats::fs::Fs;
use formats::keygroup::{KeyGroup, KeyGroupRange};
use formats::layout;
use formats::manifest::ShardSnapshot;
use formats::statekey;
use formats::value::{StateDescriptor, StateKind};
use rocksdb::{ColumnFamilyDescriptor, MergeOperands, Options, ReadOptions, DB};

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

/// Bytes a scan reads ahead of its position in each table (RocksDB's own default for
/// iterators grows from 8 KiB to 256 KiB).
const SCAN_READAHEAD: usize = 2 << 20;

/// The options of every scan: each block read is checked against its checksum (stated
/// here rather than left to RocksDB's default, because `statetool verify` relies on it
/// to find a corrupt block that a file's crc32 cannot see), and a one-pass scan does not
/// fill the block cache, which would only evict blocks nobody reads again.
fn scan_options() -> ReadOptions {
    let mut o = ReadOptions::default();
    o.set_verify_checksums(true);
    o.fill_cache(false);
    o.set_readahead_size(SCAN_READAHEAD);
    o
}

/// Visits, per state in `states` order, every entry of the instance in `dir` whose key
/// group lies in `clip`, in key order: `visit(state index, key, value)`. Every data
/// block the scan passes is checksummed ([`scan_options`]); with a `clip` that covers
/// the instance's key groups, that is every data block of every SST.
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
        // The raw iterator lends each key and value where RocksDB holds them; the boxed
        // one copies both into two allocations per entry.
        let mut it = db.raw_iterator_cf_opt(cf, scan_options());
        it.seek(start);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let kg = statekey::decode(k)?.key_group;
            if u32::from(kg.0) >= u32::from(clip.end) {
                break;
            }
            visit(i, k, v)?;
            it.next();
        }
        it.status().map_err(rocks)?;
    }
    Ok(())
}

/// Names the file behind a RocksDB error of `shard`'s instance: RocksDB names the table
/// it failed to read (`.../000012.sst`, for a block checksum mismatch or a table it
/// cannot open) by its name in the instance, which is a file's local name in the
/// manifest. Returns that file's path under `root`, or `None` when the message names no
/// file of the shard.
pub(crate) fn file_named_in(message: &str, root: &Path, shard: &ShardSnapshot) -> Option<PathBuf> {
    shard.files.iter().find(|f| names_file(message, f.local_name())).map(|f| layout::resolve(root, &f.path))
}

/// Whether `message` mentions `local` as a whole file name (after a `/`, a space or a
/// quote), not as the tail or head of a longer one (`1000012.sst`, `000012.sst.tmp`).
fn names_file(message: &str, local: &str) -> bool {
    message.match_indices(local).any(|(at, _)| {
        let before = message.get(..at).and_then(|b| b.chars().next_back());
        let after = message.get(at + local.len()..).and_then(|a| a.chars().next());
        matches!(before, None | Some('/' | ' ' | '\'' | '"'))
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::names_file;

    #[test]
    fn a_file_is_named_only_by_its_whole_name() {
        // Pins: the SST a RocksDB message names is found by its whole local name in the
        // path form RocksDB writes; a name that is only part of another does not match.
        let m = "Corruption: block checksum mismatch: stored = 1, computed = 2, type = 1  \
                 in /tmp/x/i/000012.sst offset 0 size 4015";
        assert!(names_file(m, "000012.sst"));
        assert!(!names_file(m, "00012.sst"), "a tail of the name");
        assert!(!names_file(m, "000012.ss"), "a head of the name");
        assert!(!names_file("Corruption: no file here", "000012.sst"));
    }
}
