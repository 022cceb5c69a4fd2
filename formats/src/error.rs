//! Typed errors for decoding and publishing. Every decode error names what was being
//! decoded and where, so a tool can print it without guessing.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("truncated {what}: needed {needed} bytes at offset {offset}, have {have}")]
    Truncated { what: &'static str, offset: usize, needed: usize, have: usize },
    #[error("invalid {what} at offset {offset}: {reason}")]
    Invalid { what: &'static str, offset: usize, reason: String },
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { what: &'static str, len: u64, max: u64 },
    #[error("{what} checksum mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { what: &'static str, offset: usize, stored: u32, computed: u32 },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: Box<FormatError>,
    },
    /// A directory that is not a usable savepoint (FORMAT.md §13): already exists, is
    /// incomplete, is not one. `reason` names the directory.
    #[error("{reason}")]
    Savepoint { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FormatError {
    /// Attaches the file an error was found in.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            e @ (FormatError::File { .. } | FormatError::Io { .. } | FormatError::Savepoint { .. }) => e,
            e => FormatError::File { path: path.into(), source: Box::new(e) },
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io { path: path.into(), source }
    }
}
