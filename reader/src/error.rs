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
    /// RocksDB found a file of a shard's instance corrupt (a block whose checksum does
    /// not match, a table it cannot open): `path` is that file in the checkpoint, as the
    /// manifest names it, though its size and crc32 may match the manifest's (a file
    /// written corrupt, or damaged and recorded again).
    #[error("{path}: RocksDB reports it corrupt: {source}")]
    CorruptFile {
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
