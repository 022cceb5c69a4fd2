//! Identifiers that name files and directories: a checkpoint's number.
use serde::{Deserialize, Serialize};

/// The number of a checkpoint: `chk-<n>` in a job's checkpoint root. Ids only grow
/// within a root; a restored job continues after the highest id present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckpointId(pub u64);
