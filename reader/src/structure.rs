//! The quick structural check of a checkpoint's data files (`statetool verify --quick`):
//! each file's own checksummed metadata, without reading its entries. A snapshot file's
//! footer and index are checked (FORMAT.md §11: their crc32s, and that every block the
//! index lists lies inside the file); a RocksDB shard's instance is rebuilt from hard
//! links and opened read-only, which makes RocksDB read its MANIFEST (checksummed
//! records) and open every SST (the footer's magic, the metaindex, properties and index
//! blocks with their checksums, the size against the MANIFEST's). Data blocks are not
//! read: that is the full scan's work ([`crate::for_each`]).
use std::path::Path;

use formats::fs::Fs;
use formats::layout;
use formats::manifest::{Manifest, ShardFormat};
use formats::snapshot::SnapshotReader;

use crate::entries::in_instance;
use crate::error::ReadError;
use crate::rocks;

/// Checks the structure of every data file of `m` (under `root`), shard by shard; the
/// first problem ends the check, naming the file. RocksDB shards are rebuilt under
/// `scratch` (created and removed here; outside the checkpoint). Returns the number of
/// data files checked.
pub fn check_structure(fs: &mut dyn Fs, root: &Path, m: &Manifest, scratch: Option<&Path>) -> Result<u64, ReadError> {
    let mut checked = 0u64;
    for sh in &m.shards {
        match sh.format {
            ShardFormat::Snapshot => {
                // Only snapshot files (by name): any other file is metadata, whose
                // crc32 `Verify::MetadataChecksums` checks.
                for f in sh.files.iter().filter(|f| layout::is_data_file(&f.path)) {
                    let path = layout::resolve(root, &f.path);
                    let in_file = |e: formats::error::FormatError| ReadError::Format(e.in_file(&path));
                    if fs.is_real() {
                        let mapped = crate::snapshot::map(&path)?;
                        SnapshotReader::open(&mapped).map_err(in_file)?;
                    } else {
                        let bytes = fs.read(&path).map_err(|e| ReadError::io(&path, e))?;
                        SnapshotReader::open(&bytes).map_err(in_file)?;
                    }
                    checked += 1;
                }
            }
            ShardFormat::Rocksdb => {
                in_instance(fs, root, sh, scratch, "checking", |dir| rocks::open_read_only(dir, &m.states).map(drop))?;
                checked += sh.files.iter().filter(|f| layout::is_shared_file(f.local_name())).count() as u64;
            }
        }
    }
    Ok(checked)
}
