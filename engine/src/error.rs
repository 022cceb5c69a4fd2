//! Typed errors of the engine library. Binaries turn them into messages and exit codes.
use std::path::PathBuf;

/// An error raised by user code (a process function, a sink, a key extractor).
pub type UserError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("state {state:?}: cannot decode stored value: {reason}")]
    Decode { state: String, reason: String },
    #[error(transparent)]
    Format(#[from] formats::FormatError),
    #[error("state {name:?} is registered twice with different descriptors")]
    Conflict { name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad record in {source_name} at {position}: {reason}")]
    BadRecord { source_name: String, position: String, reason: String },
    #[error("executor: {0}")]
    Executor(String),
    #[error("{0}")]
    User(UserError),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn user(e: impl Into<UserError>) -> Self {
        Error::User(e.into())
    }
    /// True for errors a user fixes by changing the command line, the job file or the
    /// environment (exit code 2), as opposed to failures of a running job (exit code 1).
    pub fn is_setup(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Io { .. })
    }
}

impl From<formats::FormatError> for Error {
    fn from(e: formats::FormatError) -> Self {
        Error::State(StateError::Format(e))
    }
}
