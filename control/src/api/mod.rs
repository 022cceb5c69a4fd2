//! The JSON the endpoint serves, as serde types. Where Flink's REST API has an
//! endpoint for the same thing, the shape and field names are Flink's (kebab-case for
//! job fields, snake_case for checkpoint statistics, camelCase for `formatType` and the
//! stop request's `targetDirectory`), so a script written against Flink reads sluice
//! too; sluice's own additions (shards, key groups, reused bytes) sit beside them.
mod checkpoints;
mod job;
mod savepoint;

pub use checkpoints::{
    CheckpointCounts, CheckpointStats, CheckpointStatus, CheckpointingStats, LatestCheckpoints, PauseSummary,
};
pub use job::{
    JobDetail, JobOverview, JobState, JobsOverview, KeyGroups, SavepointInfo, ShardStatus, StateExpired, TaskCounts,
};
pub use savepoint::{
    AfterSavepoint, AsyncOperation, FailureCause, OperationOutcome, OperationState, OperationStatus, SavepointForm,
    SavepointRequest, StopRequest, TriggerResponse,
};

use serde::{Deserialize, Serialize};

/// Flink's error body: `{"errors": ["<message>"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub errors: Vec<String>,
}
