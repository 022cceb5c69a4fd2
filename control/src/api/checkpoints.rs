//! `GET /jobs/<jid>/checkpoints`, in Flink's shape (snake_case fields).
use serde::{Deserialize, Serialize};

/// Checkpoint statistics of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointingStats {
    pub counts: CheckpointCounts,
    pub latest: LatestCheckpoints,
    /// Most recent first, bounded by the daemon.
    pub history: Vec<CheckpointStats>,
    /// sluice: the shards' synchronous pauses over the completed checkpoints of `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_pause: Option<PauseSummary>,
}

/// Synchronous pauses (a shard stopped processing while it took its snapshot), one
/// sample per shard per checkpoint, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseSummary {
    pub samples: u64,
    pub p50: u64,
    pub max: u64,
}

impl PauseSummary {
    /// Over every shard's pause in the completed checkpoints (not savepoints) of
    /// `history`; `None` when there is none.
    pub fn over(history: &[CheckpointStats]) -> Option<Self> {
        let mut ms: Vec<u64> = history
            .iter()
            .filter(|c| c.status == CheckpointStatus::Completed && !c.is_savepoint)
            .flat_map(|c| c.sync_duration_per_shard.iter().copied())
            .collect();
        ms.sort_unstable();
        let (p50, max) = (*ms.get(ms.len().saturating_sub(1) / 2)?, *ms.last()?);
        Some(PauseSummary { samples: ms.len() as u64, p50, max })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCounts {
    pub completed: u64,
    pub failed: u64,
    pub in_progress: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestCheckpoints {
    pub completed: Option<CheckpointStats>,
    pub savepoint: Option<CheckpointStats>,
    pub failed: Option<CheckpointStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckpointStatus {
    InProgress,
    Completed,
    Failed,
    #[serde(other)]
    Unknown,
}

impl CheckpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
            CheckpointStatus::Unknown => "UNKNOWN",
        }
    }
}

/// One checkpoint or savepoint. Sizes in bytes, times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStats {
    pub id: u64,
    pub status: CheckpointStatus,
    pub is_savepoint: bool,
    /// sluice: the final checkpoint, taken when every source had ended.
    #[serde(default)]
    pub is_final: bool,
    /// Since the Unix epoch.
    pub trigger_timestamp: i64,
    /// Since the Unix epoch.
    pub latest_ack_timestamp: i64,
    pub end_to_end_duration: u64,
    /// The whole state the checkpoint refers to.
    pub state_size: u64,
    /// Bytes this checkpoint copied (Flink's name for the incremental size).
    pub checkpointed_size: u64,
    /// sluice: bytes it refers to that an earlier checkpoint already held.
    pub reused_size: u64,
    /// The checkpoint's or savepoint's directory, once published.
    pub external_path: Option<String>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// sluice: the longest synchronous pause of any shard (Flink's `sync` duration).
    #[serde(default)]
    pub sync_duration: u64,
    /// sluice: each shard's synchronous pause, by shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_duration_per_shard: Vec<u64>,
}
