//! Errors of reading a checkpoint's contents; each names the file or instance.
use std::path::PathBuf;

use formats::error::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{path} (RocksDB instance): {source}")]
    Rocks {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The visitor refused an entry (for example, a state the job no longer declares).
    #[error("{0}")]
    Visit(String),
}

impl ReadError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        ReadError::Format(FormatError::io(path, e))
    }
}
