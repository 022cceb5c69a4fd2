//! Every path sluice writes is built here, and only here (docs/FORMAT.md §1).
//!
//! ```text
//! <data-dir>/<job>/work/shard-<i>/      a shard's working RocksDB instance (scratch:
//!                                       rebuilt at start, removed at a clean stop)
//! ```
use std::path::{Path, PathBuf};

use crate::ShardId;

/// Job names become directory names, so they are restricted to a safe alphabet.
pub fn validate_job_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("job name {name:?} must be 1 to 128 characters"));
    }
    if name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("job name {name:?} may only use letters, digits, '-', '_' and '.', and not start with '.'"));
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
    work_dir(data_dir, job).join(format!("shard-{}", shard.0))
}
