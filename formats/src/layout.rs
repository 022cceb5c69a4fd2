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
//! ```
use std::path::{Path, PathBuf};

use crate::id::CheckpointId;
use crate::keygroup::ShardId;

pub const SHARED_DIR: &str = "shared";
pub const MANIFEST_NAME: &str = "_manifest";
const CHECKPOINT_PREFIX: &str = "chk-";

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
}
