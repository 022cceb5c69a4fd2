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
    Format(#[from] formats::error::FormatError),
    #[error("state {name:?} is registered twice with different descriptors")]
    Conflict { name: String },
    #[error("state {name:?}: TTL cleanup set on a state that is not declared or has no TTL")]
    CleanupWithoutTtl { name: String },
    /// Keyed access outside a key's scope (`end_of_input` has no current key).
    #[error("{what} needs a current key (there is none in end_of_input)")]
    NoCurrentKey { what: &'static str },
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
    /// A source that cannot be read (a broker unreachable, a topic missing); names it.
    #[error("{name}: {reason}")]
    Source { name: String, reason: String },
    /// A sink that cannot be written or committed (a broker or database unreachable, a
    /// topic, table or column missing, a transaction refused or lost); names it.
    #[error("{name}: {reason}")]
    Sink { name: String, reason: String },
    #[error("bad record in {source_name} at {position}: {reason}")]
    BadRecord { source_name: String, position: String, reason: String },
    /// A checkpoint's contents could not be read (the reader names the file).
    #[error("cannot read checkpoint: {0}")]
    Read(#[from] reader::ReadError),
    #[error("executor: {0}")]
    Executor(String),
    /// The job's checkpoint root is locked by another process (FORMAT.md §15).
    #[error("{0}: another sluice daemon runs this job (or statetool gc runs on its checkpoints); stop it first")]
    RootLocked(formats::jobfile::LockError),
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
    /// True for errors of the file system or device (as opposed to bad data or a bad
    /// configuration): after one, a checkpoint writer publishes nothing more.
    pub fn is_io(&self) -> bool {
        fn format_io(e: &formats::error::FormatError) -> bool {
            match e {
                formats::error::FormatError::Io { .. } => true,
                formats::error::FormatError::File { source, .. } => format_io(source),
                _ => false,
            }
        }
        match self {
            Error::Io { .. } => true,
            Error::State(StateError::Format(e)) => format_io(e),
            Error::State(StateError::Rocks(e)) => e.kind() == rocksdb::ErrorKind::IOError,
            _ => false,
        }
    }
}

/// Why a job did not succeed, by the phase it failed in. The phase is decided where it
/// is known (the setup checks, or a running attempt), never from the error's kind.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Found before any thread was started or any file created: a bad job file, command
    /// line, input, output or directory, or a checkpoint that cannot be restored. Never
    /// restarted; `sluice` exits with code 2.
    #[error(transparent)]
    Setup(Error),
    /// The job failed while running and its restart strategy gave up (or it has none);
    /// `sluice` exits with code 1.
    #[error(transparent)]
    Run(Error),
}

impl JobError {
    /// The underlying error, whatever the phase.
    pub fn error(&self) -> &Error {
        match self {
            JobError::Setup(e) | JobError::Run(e) => e,
        }
    }
}

impl From<formats::error::FormatError> for Error {
    fn from(e: formats::error::FormatError) -> Self {
        Error::State(StateError::Format(e))
    }
}
