//! Every path sluice writes is built here, and only here (docs/FORMAT.md §1).
//!
//! ```text
//! <data-dir>/<job>/work/shard-<i>/      a shard's working RocksDB instance (scratch:
//!                                       rebuilt at start, removed at a clean stop)
//! <data-dir>/<job>/work/shard-<i>.chk-<n>/  RocksDB's checkpoint (hard links) of that
//!                                       instance, until it is copied
//! <data-dir>/<job>/work/restore-<i>/   an old shard's instance rebuilt from a
//!                                       checkpoint, while new shard i reads it
//! <checkpoint-dir>/<job>/               a job's checkpoint root
//!     shared/                           files shared by several checkpoints, named
//!                                       <xxh3-128 of the content, hex>.<extension>
//!     chk-<n>/                          files of checkpoint n only
//!     chk-<n>/_manifest                 written last: defines a published checkpoint
//!     _job                              the running (or last) daemon: pid, retain,
//!                                       pinned checkpoints (FORMAT.md §15)
//!     _job.lock                         empty; a running daemon holds its lock
//! <savepoint-dir>/<name>/               a savepoint (FORMAT.md §13), relocatable:
//!     _savepoint.inprogress             written first, removed once published
//!     shard-<i>.snapshot                canonical form: one snapshot file per shard
//!     shard-<i>/<local>                 native form: the shard's RocksDB files
//!     _savepoint                        written last: defines a complete savepoint
//! ```
use std::path::{Path, PathBuf};

use crate::id::CheckpointId;
use crate::keygroup::ShardId;

pub const SHARED_DIR: &str = "shared";
pub const MANIFEST_NAME: &str = "_manifest";
const CHECKPOINT_PREFIX: &str = "chk-";
/// §15: the job file of a checkpoint root: which daemon runs (or last ran) the job.
pub const JOB_FILE_NAME: &str = "_job";
/// §15: the empty file whose exclusive lock a running daemon holds. Not `_job` itself:
/// `_job` is replaced by a rename, and a lock belongs to the file it was taken on.
pub const JOB_LOCK_NAME: &str = "_job.lock";
/// §13: the metadata file whose presence defines a complete savepoint.
pub const SAVEPOINT_METADATA_NAME: &str = "_savepoint";
/// §13: the empty marker of a savepoint being written.
pub const SAVEPOINT_MARKER_NAME: &str = "_savepoint.inprogress";
/// §13: the prefix of a default savepoint directory name.
const SAVEPOINT_PREFIX: &str = "savepoint-";
/// §13: hex digits of the nonce that ends a default savepoint name.
pub const SAVEPOINT_NONCE_HEX_DIGITS: usize = 6;
const _: () = assert!(SAVEPOINT_NONCE_HEX_DIGITS == 6);

/// Job names become directory names, so they are restricted to a safe alphabet.
pub fn validate_job_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("job name {name:?} must be 1 to 128 characters"));
    }
    if name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!(
            "job name {name:?} may only use letters, digits, '-', '_' and '.', and not start with '.'"
        ));
    }
    Ok(())
}

pub fn job_dir(data_dir: &Path, job: &str) -> PathBuf {
    data_dir.join(job)
}

pub fn work_dir(data_dir: &Path, job: &str) -> PathBuf {
    job_dir(data_dir, job).join("work")
}

pub fn shard_work_dir(data_dir: &Path, job: &str, shard: ShardId) -> PathBuf {
    shard_instance_dir(&work_dir(data_dir, job), shard)
}

/// A shard's working RocksDB instance in the job's work directory `work`.
pub fn shard_instance_dir(work: &Path, shard: ShardId) -> PathBuf {
    work.join(format!("shard-{}", shard.0))
}

/// The empty file that shows a data directory is writable, named by the process id so
/// two processes never share one.
pub fn write_probe_file(data_dir: &Path, pid: u32) -> PathBuf {
    data_dir.join(format!(".sluice-write-probe-{pid}"))
}

/// Where a shard's RocksDB checkpoint `id` is created (hard links into its instance),
/// in the job's work directory `work`.
pub fn local_checkpoint_dir(work: &Path, shard: ShardId, id: CheckpointId) -> PathBuf {
    work.join(format!("shard-{}.{}", shard.0, checkpoint_dir_name(id)))
}

/// The scratch file a RocksDB instance at `instance` builds an SST in before ingesting it.
pub fn ingest_scratch_file(instance: &Path) -> PathBuf {
    let name = instance.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    instance.with_file_name(format!("{name}.ingest.sst"))
}

/// Where new shard `shard` rebuilds an old shard's instance from a checkpoint (one at a
/// time), in the job's work directory `work`.
pub fn restore_scratch_dir(work: &Path, shard: ShardId) -> PathBuf {
    work.join(format!("restore-{}", shard.0))
}

/// The directory of a shard's own files in checkpoint `id` (its RocksDB metadata).
pub fn shard_files_prefix(id: CheckpointId, shard: u16) -> String {
    format!("{}/shard-{shard}", checkpoint_dir_name(id))
}

/// A heap shard's snapshot file in checkpoint `id` (FORMAT.md §11), relative to the root.
pub fn snapshot_file_path(id: CheckpointId, shard: u16) -> String {
    format!("{}/shard-{shard}.snapshot", checkpoint_dir_name(id))
}

/// A file of a shard's RocksDB checkpoint that the checkpoint owns (under its
/// `chk-<n>/shard-<i>/`), relative to the root.
pub fn owned_file_path(id: CheckpointId, shard: u16, local: &str) -> String {
    format!("{}/{local}", shard_files_prefix(id, shard))
}

/// Whether a file of a RocksDB checkpoint goes to `shared/` (its table files, which are
/// immutable and shared by later checkpoints) or is owned by one checkpoint (MANIFEST,
/// CURRENT, OPTIONS, which change every time).
pub fn is_shared_file(local: &str) -> bool {
    local.ends_with(".sst")
}

/// Whether the file at `relative` (a manifest path) holds state entries: an SST of a
/// RocksDB shard or a snapshot file (§11). These carry checksums of their own (RocksDB's
/// per block, §11's per block, index and footer); every other file of a checkpoint is
/// small metadata (RocksDB's MANIFEST, CURRENT, OPTIONS).
pub fn is_data_file(relative: &str) -> bool {
    relative.ends_with(".sst") || relative.ends_with(".snapshot")
}

/// The name under `shared/` of a file with content hash `hash` (xxh3-128) whose name in
/// its instance is `local`: the hash in hex, then `local`'s extension.
pub fn shared_file_name(hash: u128, local: &str) -> String {
    match local.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!("{hash:032x}.{ext}")
        }
        _ => format!("{hash:032x}"),
    }
}

pub fn checkpoint_root(checkpoint_dir: &Path, job: &str) -> PathBuf {
    checkpoint_dir.join(job)
}

/// `<root>/_job` (FORMAT.md §15).
pub fn job_file(root: &Path) -> PathBuf {
    root.join(JOB_FILE_NAME)
}

/// `<root>/_job.lock` (FORMAT.md §15).
pub fn job_lock_file(root: &Path) -> PathBuf {
    root.join(JOB_LOCK_NAME)
}

pub fn checkpoint_dir_name(id: CheckpointId) -> String {
    format!("{CHECKPOINT_PREFIX}{}", id.0)
}

pub fn checkpoint_dir(root: &Path, id: CheckpointId) -> PathBuf {
    root.join(checkpoint_dir_name(id))
}

pub fn manifest_path(root: &Path, id: CheckpointId) -> PathBuf {
    checkpoint_dir(root, id).join(MANIFEST_NAME)
}

/// The manifest's relative path of the shared file named `name`: `shared/<name>`.
pub fn shared_file_path(name: &str) -> String {
    format!("{SHARED_DIR}/{name}")
}

/// The name under `shared/` of a manifest's relative file path, None when the file is
/// not shared (it lies under one `chk-<n>/`).
pub fn shared_name_of(relative: &str) -> Option<&str> {
    relative.strip_prefix(SHARED_DIR)?.strip_prefix('/')
}

/// Whether a manifest's relative file path lies under `shared/` (borrowed by several
/// checkpoints) rather than under one `chk-<n>/`.
pub fn is_in_shared(relative: &str) -> bool {
    shared_name_of(relative).is_some()
}

pub fn shared_dir(root: &Path) -> PathBuf {
    root.join(SHARED_DIR)
}

/// `chk-12` -> 12; anything else (including `chk-012`, which is not canonical) -> None.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<CheckpointId> {
    let digits = name.strip_prefix(CHECKPOINT_PREFIX)?;
    let id: u64 = digits.parse().ok()?;
    (id.to_string() == digits).then_some(CheckpointId(id))
}

/// Splits a path naming one checkpoint (`<root>/chk-<n>`) into its root and id; `None`
/// for any other path (for example a job's checkpoint root).
pub fn split_checkpoint_dir(path: &Path) -> Option<(PathBuf, CheckpointId)> {
    let id = parse_checkpoint_dir_name(&path.file_name()?.to_string_lossy())?;
    Some((path.parent().map(Path::to_path_buf).unwrap_or_default(), id))
}

/// The temporary sibling a file is written under before it is renamed into place
/// (`formats::publish`): `.<name>.tmp` in the same directory, invisible to readers.
pub fn temp_sibling(p: &Path) -> PathBuf {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    p.with_file_name(format!(".{name}.tmp"))
}

/// Where a file bound for `shared/` is streamed before its content, and so its name,
/// is known.
pub fn shared_incoming_file(root: &Path) -> PathBuf {
    shared_dir(root).join(".incoming.tmp")
}

/// A manifest's relative file path, resolved under the checkpoint root.
pub fn resolve(root: &Path, relative: &str) -> PathBuf {
    relative.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
}

/// A savepoint's metadata file, `<sp>/_savepoint` (FORMAT.md §13).
pub fn savepoint_metadata_path(sp: &Path) -> PathBuf {
    sp.join(SAVEPOINT_METADATA_NAME)
}

/// The marker of a savepoint being written, `<sp>/_savepoint.inprogress` (§13).
pub fn savepoint_marker_path(sp: &Path) -> PathBuf {
    sp.join(SAVEPOINT_MARKER_NAME)
}

/// A canonical savepoint's snapshot file of `shard`, relative to the savepoint:
/// `shard-<i>.snapshot` (§13).
pub fn savepoint_snapshot_path(shard: u16) -> String {
    format!("shard-{shard}.snapshot")
}

/// A native savepoint's file `local` of `shard`'s RocksDB checkpoint, relative to the
/// savepoint: `shard-<i>/<local>` (§13).
pub fn savepoint_owned_path(shard: u16, local: &str) -> String {
    format!("shard-{shard}/{local}")
}

/// The directory name a savepoint gets when the user names none (§13), Flink-like:
/// `savepoint-<job>-<id>-<6 hex digits of nonce>`.
pub fn default_savepoint_name(job: &str, id: CheckpointId, nonce: u64) -> String {
    let nonce = nonce & ((1u64 << (4 * SAVEPOINT_NONCE_HEX_DIGITS)) - 1);
    format!("{SAVEPOINT_PREFIX}{job}-{}-{nonce:0width$x}", id.0, width = SAVEPOINT_NONCE_HEX_DIGITS)
}

/// Whether `path` (on the real file system) is a savepoint, complete or not: it holds
/// `_savepoint` or the in-progress marker.
pub fn is_savepoint_dir(path: &Path) -> bool {
    savepoint_metadata_path(path).is_file() || savepoint_marker_path(path).is_file()
}

/// Whether a relative path has only plain components: not empty, no `.`/`..`, no
/// empty component, no backslash (so it cannot escape the directory it is resolved in).
pub fn is_clean_relative(relative: &str) -> bool {
    !relative.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\'))
}

/// The shard a savepoint's relative file path belongs to, and whether it is the shard's
/// snapshot file (`shard-<i>.snapshot`) or a file of its RocksDB checkpoint
/// (`shard-<i>/<plain name>`); None for any other path.
pub fn parse_savepoint_path(relative: &str) -> Option<(u16, SavepointFile<'_>)> {
    let rest = relative.strip_prefix("shard-")?;
    let canonical_u16 = |d: &str| d.parse::<u16>().ok().filter(|n| n.to_string() == d);
    if let Some(digits) = rest.strip_suffix(".snapshot") {
        return Some((canonical_u16(digits)?, SavepointFile::Snapshot));
    }
    let (digits, local) = rest.split_once('/')?;
    let plain = !local.is_empty() && local != "." && local != ".." && !local.contains(['/', '\\']);
    plain.then_some(())?;
    Some((canonical_u16(digits)?, SavepointFile::Native(local)))
}

/// What a savepoint's file is (see [`parse_savepoint_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointFile<'a> {
    Snapshot,
    /// A RocksDB checkpoint file, with its name.
    Native(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_round_trip_and_are_canonical() {
        assert_eq!(parse_checkpoint_dir_name(&checkpoint_dir_name(CheckpointId(42))), Some(CheckpointId(42)));
        assert_eq!(parse_checkpoint_dir_name("chk-012"), None);
        assert_eq!(parse_checkpoint_dir_name("chk-"), None);
        assert_eq!(parse_checkpoint_dir_name("shared"), None);
        assert_eq!(split_checkpoint_dir(Path::new("/ck/job/chk-7")), Some((PathBuf::from("/ck/job"), CheckpointId(7))));
        assert_eq!(split_checkpoint_dir(Path::new("/ck/job")), None);
    }

    #[test]
    fn savepoint_paths_are_relative_and_parse_back() {
        // Pins: savepoint file paths (§13) and the default name's shape.
        assert_eq!(savepoint_snapshot_path(3), "shard-3.snapshot");
        assert_eq!(savepoint_owned_path(1, "000012.sst"), "shard-1/000012.sst");
        assert_eq!(parse_savepoint_path("shard-3.snapshot"), Some((3, SavepointFile::Snapshot)));
        assert_eq!(parse_savepoint_path("shard-1/CURRENT"), Some((1, SavepointFile::Native("CURRENT"))));
        for bad in ["shard-01.snapshot", "shard-1/../x", "shard-1/a/b", "shard-1/", "chk-1/shard-1.snapshot", "x"] {
            assert_eq!(parse_savepoint_path(bad), None, "{bad}");
        }
        assert_eq!(default_savepoint_name("wc", CheckpointId(7), 0xabc_def012), "savepoint-wc-7-def012");
        assert_eq!(default_savepoint_name("wc", CheckpointId(7), 1), "savepoint-wc-7-000001");
        assert_eq!(savepoint_metadata_path(Path::new("/sp")), PathBuf::from("/sp/_savepoint"));
        assert_eq!(savepoint_marker_path(Path::new("/sp")), PathBuf::from("/sp/_savepoint.inprogress"));
    }
}
