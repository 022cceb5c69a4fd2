//! How a job runs (`RunConfig`, with the defaults of `sluice run`) and what a finished
//! run reports (`RunReport`).
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use formats::jobfile::RootLock;
use formats::keygroup;

use crate::badrecord::BadRecords;
use crate::clock::{Clock, SystemClock};
use crate::runtime::checkpoint::config::CheckpointConfig;
use crate::runtime::checkpoint::restore::Restore;
use crate::runtime::control::JobControl;
use crate::runtime::restart::RestartStrategy;
use crate::state::backend::BackendKind;
use crate::state::rocks::RocksConfig;

/// How a job runs. `RunConfig::new` gives the defaults of `sluice run`.
#[derive(Clone)]
pub struct RunConfig {
    pub shards: u32,
    pub backend: BackendKind,
    /// Where RocksDB keeps each shard's working instance (`formats::layout`).
    pub data_dir: PathBuf,
    pub max_key_groups: u32,
    /// Progress is logged at this interval; `None` logs nothing.
    pub report_interval: Option<Duration>,
    /// Raised to stop the job: sources end, in-flight records drain, sinks flush.
    pub stop: Arc<AtomicBool>,
    pub clock: Arc<dyn Clock>,
    pub bad_records: Arc<BadRecords>,
    pub rocks: RocksConfig,
    /// Records per batch on the shuffle.
    pub batch_records: usize,
    /// Batches a channel of the mesh holds before its sender waits.
    pub channel_batches: usize,
    /// Pin shard i to the i-th online CPU (modulo their count).
    pub pin: bool,
    /// Take checkpoints (None: never).
    pub checkpoint: Option<CheckpointConfig>,
    /// Start from this checkpoint's state and source positions.
    pub restore: Option<Arc<Restore>>,
    /// What to do when the job fails while running.
    pub restart: RestartStrategy,
    /// The control endpoint's view of the job (savepoint requests, status); None: no
    /// endpoint.
    pub control: Option<Arc<JobControl>>,
    /// The lock of the job's checkpoint root (FORMAT.md §15), once setup has taken it;
    /// held while any clone of this config lives, so for the whole run.
    pub root_lock: Option<Arc<HeldRoot>>,
}

/// The lock of a job's checkpoint root, and the directories taking it created (the
/// root and its missing parents, outermost first), which a setup that fails afterwards
/// removes again (`setup::release_after_failed_setup`).
#[derive(Debug)]
pub struct HeldRoot {
    pub(crate) lock: RootLock,
    pub(crate) created: Vec<PathBuf>,
}

impl HeldRoot {
    pub fn root(&self) -> &Path {
        self.lock.root()
    }
}

impl JobControl {
    /// The control of job `job` as `cfg` runs it (stopped through `cfg.stop`), its
    /// savepoints by default under `savepoint_dir`. Set it as `cfg.control` afterwards.
    pub fn new(job: &str, cfg: &RunConfig, savepoint_dir: Option<PathBuf>) -> Arc<Self> {
        let shape = (cfg.backend.to_string(), cfg.shards, cfg.max_key_groups);
        JobControl::with(job, shape, cfg.stop.clone(), savepoint_dir)
    }
}

pub fn available_cores() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

impl RunConfig {
    pub fn new(shards: u32, backend: BackendKind, data_dir: PathBuf) -> Self {
        RunConfig {
            shards,
            backend,
            data_dir,
            max_key_groups: keygroup::KEY_GROUPS_DEFAULT,
            report_interval: None,
            stop: Arc::new(AtomicBool::new(false)),
            clock: Arc::new(SystemClock),
            bad_records: Arc::new(BadRecords::ignore()),
            rocks: RocksConfig::default(),
            batch_records: 1024,
            channel_batches: 64,
            pin: true,
            checkpoint: None,
            restore: None,
            restart: RestartStrategy::None,
            control: None,
            root_lock: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub records_in: u64,
    pub records_processed: u64,
    pub records_out: u64,
    pub bad_records: u64,
    pub processed_per_shard: Vec<u64>,
    /// Expired TTL entries removed (by reads, incremental and full-snapshot cleanup and
    /// the compaction filter), per state with a TTL: (state, count).
    pub expired_per_state: Vec<(String, u64)>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn records_per_s(&self) -> f64 {
        self.records_in as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}
