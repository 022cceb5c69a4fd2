//! What a job's checkpoints are: interval, retention, mode, pauses, timeout, tolerance.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use formats::fs::Fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointMode {
    /// Aligned barriers: every record affects the state exactly once.
    ExactlyOnce,
    /// Unaligned: inputs keep flowing past a barrier; after a restore, records that
    /// followed a barrier on a fast input may be applied again.
    AtLeastOnce,
}

/// What happens to a job's checkpoints when it ends by itself or is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    Retain,
    Delete,
}

#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Checkpoints go to `<dir>/<job>/`.
    pub dir: PathBuf,
    pub interval: Duration,
    /// Published checkpoints kept; older ones are garbage-collected.
    pub retain: usize,
    pub mode: CheckpointMode,
    /// Least time between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// A checkpoint not complete after this long is abandoned (a failure).
    pub timeout: Duration,
    /// Consecutive failed checkpoints tolerated; one more fails the job.
    pub tolerable_failures: u32,
    pub cleanup: Cleanup,
    /// RocksDB shards: copy only new SST files (true), or write full snapshots.
    pub incremental: bool,
    /// The file system checkpoints are written through; None is the real one. Tests
    /// inject one that fails the n-th write, fsync or rename (`formats::fs::FaultFs`).
    pub fs: Option<FsFactory>,
}

/// Makes the file system a checkpoint writer uses (one per writer: per attempt).
#[derive(Clone)]
pub struct FsFactory(pub Arc<dyn Fn() -> Box<dyn Fs + Send> + Send + Sync>);

impl FsFactory {
    pub fn make(&self) -> Box<dyn Fs + Send> {
        (self.0)()
    }
}

impl std::fmt::Debug for FsFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsFactory")
    }
}

impl CheckpointConfig {
    pub fn new(dir: PathBuf, interval: Duration) -> Self {
        CheckpointConfig {
            dir,
            interval,
            retain: 1,
            mode: CheckpointMode::ExactlyOnce,
            min_pause: Duration::ZERO,
            timeout: Duration::from_secs(600),
            tolerable_failures: 0,
            cleanup: Cleanup::Retain,
            incremental: true,
            fs: None,
        }
    }
}
