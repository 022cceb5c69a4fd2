//! Savepoints, stop and their asynchronous status, in Flink's shape: a trigger answers
//! 202 with a request id at once, and `GET /jobs/<jid>/savepoints/<request-id>` tells
//! whether it is still running, where it was written, or why it failed.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A savepoint's form (Flink's `formatType`): canonical (backend-independent) or
/// native (the backend's own files copied in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SavepointForm {
    #[default]
    Canonical,
    Native,
}

impl SavepointForm {
    pub fn as_str(self) -> &'static str {
        match self {
            SavepointForm::Canonical => "CANONICAL",
            SavepointForm::Native => "NATIVE",
        }
    }
    /// Parses `canonical` or `native`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("canonical") {
            Some(SavepointForm::Canonical)
        } else if s.eq_ignore_ascii_case("native") {
            Some(SavepointForm::Native)
        } else {
            None
        }
    }
}

/// `POST /jobs/<jid>/savepoints` (Flink's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointRequest {
    /// None: the job's configured savepoint directory.
    #[serde(rename = "target-directory")]
    pub target_directory: Option<PathBuf>,
    #[serde(rename = "formatType", default)]
    pub form: SavepointForm,
    /// Cancel the job once the savepoint is taken (Flink's deprecated form of stop).
    #[serde(rename = "cancel-job", default)]
    pub cancel_job: bool,
}

/// `POST /jobs/<jid>/stop`: stop with a savepoint (Flink's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// None: the job's configured savepoint directory.
    #[serde(rename = "targetDirectory")]
    pub target_directory: Option<PathBuf>,
    #[serde(rename = "formatType", default)]
    pub form: SavepointForm,
    /// Advance event time to the end before the savepoint, firing every timer.
    #[serde(default)]
    pub drain: bool,
}

/// What the job does once a savepoint is taken; the server derives it from the route
/// (`/savepoints` or `/stop`) and the request's `cancel-job` or `drain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSavepoint {
    KeepRunning,
    /// Stop the sources, take the savepoint, then finish (Flink's stop-with-savepoint).
    Stop {
        drain: bool,
    },
    /// Take the savepoint, then cancel (`cancel-job: true`).
    Cancel,
}

/// The 202 answer to a trigger: `{"request-id": "<id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerResponse {
    #[serde(rename = "request-id")]
    pub request_id: String,
}

/// `GET /jobs/<jid>/savepoints/<request-id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncOperation {
    pub status: OperationStatus,
    /// Absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStatus {
    pub id: OperationState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationState {
    InProgress,
    Completed,
}

/// A completed operation: where the savepoint is, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OperationOutcome {
    Location {
        location: String,
    },
    Failure {
        #[serde(rename = "failure-cause")]
        failure_cause: FailureCause,
    },
}

/// Flink's failure cause; sluice puts its error message (the whole chain) in
/// `stack-trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCause {
    pub class: String,
    #[serde(rename = "stack-trace")]
    pub stack_trace: String,
}

impl AsyncOperation {
    pub fn in_progress() -> Self {
        AsyncOperation { status: OperationStatus { id: OperationState::InProgress }, operation: None }
    }
    pub fn completed(location: impl Into<String>) -> Self {
        AsyncOperation {
            status: OperationStatus { id: OperationState::Completed },
            operation: Some(OperationOutcome::Location { location: location.into() }),
        }
    }
    /// `class` names the kind of failure (for example `SavepointError`), `message` says
    /// what happened.
    pub fn failed(class: impl Into<String>, message: impl Into<String>) -> Self {
        AsyncOperation {
            status: OperationStatus { id: OperationState::Completed },
            operation: Some(OperationOutcome::Failure {
                failure_cause: FailureCause { class: class.into(), stack_trace: message.into() },
            }),
        }
    }
    /// None while in progress; then the location, or the failure's message.
    pub fn outcome(&self) -> Option<Result<&str, &str>> {
        match (&self.status.id, &self.operation) {
            (OperationState::InProgress, _) => None,
            (OperationState::Completed, Some(OperationOutcome::Location { location })) => Some(Ok(location)),
            (OperationState::Completed, Some(OperationOutcome::Failure { failure_cause })) => {
                Some(Err(&failure_cause.stack_trace))
            }
            (OperationState::Completed, None) => Some(Err("the endpoint reported completion without a result")),
        }
    }
}
