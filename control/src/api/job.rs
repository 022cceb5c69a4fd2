//! `GET /jobs/overview` and `GET /jobs/<jid>`.
use serde::{Deserialize, Serialize};

use super::savepoint::SavepointForm;

/// A job's state, Flink's names. A state this version does not know reads as
/// `Unknown`, so an older client still shows a newer daemon's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Restoring state, before the first record.
    Initializing,
    Running,
    /// Stopping after a stop-with-savepoint.
    Finishing,
    Finished,
    Cancelling,
    Canceled,
    Failing,
    Failed,
    #[serde(other)]
    Unknown,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Initializing => "INITIALIZING",
            JobState::Running => "RUNNING",
            JobState::Finishing => "FINISHING",
            JobState::Finished => "FINISHED",
            JobState::Cancelling => "CANCELLING",
            JobState::Canceled => "CANCELED",
            JobState::Failing => "FAILING",
            JobState::Failed => "FAILED",
            JobState::Unknown => "UNKNOWN",
        }
    }
}

/// `GET /jobs/overview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobsOverview {
    pub jobs: Vec<JobOverview>,
}

/// One job of the overview (Flink's field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobOverview {
    pub jid: String,
    pub name: String,
    pub state: JobState,
    /// Milliseconds since the Unix epoch.
    pub start_time: i64,
    /// -1 while the job runs (Flink's convention).
    pub end_time: i64,
    /// Milliseconds.
    pub duration: u64,
    pub tasks: TaskCounts,
}

/// Flink counts tasks; a sluice task is a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub total: u32,
    pub running: u32,
}

/// `GET /jobs/<jid>`: Flink's job header plus sluice's shards and savepoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobDetail {
    pub jid: String,
    pub name: String,
    pub state: JobState,
    /// Milliseconds since the Unix epoch.
    pub start_time: i64,
    /// -1 while the job runs.
    pub end_time: i64,
    /// Milliseconds.
    pub duration: u64,
    /// When this answer was made, milliseconds since the Unix epoch.
    pub now: i64,
    /// `rocksdb` or `heap`.
    pub backend: String,
    /// The number of shards.
    pub parallelism: u32,
    pub max_key_groups: u32,
    pub records_in: u64,
    pub records_out: u64,
    /// Records in per second, over the daemon's recent window.
    pub records_per_second: f64,
    pub shards: Vec<ShardStatus>,
    /// The savepoints this run has taken, oldest first.
    pub savepoints: Vec<SavepointInfo>,
    /// Expired TTL entries removed so far, per state with a TTL (absent from older
    /// daemons' answers).
    #[serde(default)]
    pub expired: Vec<StateExpired>,
    /// Entries the state backends store over every shard, expired or not yet removed
    /// included (RocksDB: its estimate), as last sampled.
    #[serde(default)]
    pub state_entries: u64,
}

/// Expired entries removed from one state with a TTL, over every shard, since the job
/// (this attempt) started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StateExpired {
    pub state: String,
    pub removed: u64,
}

/// One shard of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ShardStatus {
    pub shard: u16,
    pub key_groups: KeyGroups,
    pub records_in: u64,
    pub records_processed: u64,
}

/// A half-open key-group range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGroups {
    pub start: u32,
    pub end: u32,
}

/// A savepoint this run has completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SavepointInfo {
    pub request_id: String,
    pub location: String,
    pub form: SavepointForm,
    pub checkpoint_id: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub completed_ms: i64,
}
