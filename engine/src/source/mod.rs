//! Sources: where records come from, split across shards. Each shard opens its own
//! reader: a byte range of a file, a partition of a generator's sequence, some of a Kafka
//! topic's partitions, or (shard 0 only) a TCP listener.
pub mod file;
pub mod generator;
pub mod kafka;
pub mod tcp;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use formats::keygroup::ShardId;

use crate::badrecord::BadRecords;
use crate::error::Error;

pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Turns one input line into zero or more records, or explains why it is bad.
pub type LineParser<T> = Arc<dyn Fn(&[u8], &mut Vec<T>) -> Result<(), String> + Send + Sync>;

/// A resumable piece of a source: a range of sequence numbers or bytes, `next` the
/// first one not yet emitted. Splits are fixed when a job first starts (one per shard)
/// and travel in checkpoints, so a restore onto another shard count deals them out
/// again (split `id` goes to shard `id % shards`) without reading anything twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub id: u32,
    pub next: u64,
    pub end: u64,
    /// Distance between consecutive positions (unbounded generators interleave).
    pub step: u64,
}

/// What a reader needs to know about where it runs.
#[derive(Clone)]
pub struct SourceContext {
    pub shard: ShardId,
    pub shards: u32,
    pub bad: Arc<BadRecords>,
    pub stop: Arc<AtomicBool>,
    /// Raised by the runtime when the job fails: read no further.
    pub abort: Arc<AtomicBool>,
    /// On restore: the splits this shard resumes. `None` on a fresh start.
    pub restored: Option<Vec<Split>>,
}

impl SourceContext {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed)
    }
}

pub trait Source<T>: Send + Sync + 'static {
    /// Names the source in logs and errors (a path, an address).
    fn name(&self) -> String;
    /// Checks the source can be read before any shard starts (a missing file is a setup
    /// error, reported before anything is created).
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, Error>;
}

/// A shared source is a source (the job API takes sources by value).
impl<T: Send + 'static> Source<T> for Arc<dyn Source<T>> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn check(&self) -> Result<(), Error> {
        (**self).check()
    }
    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, Error> {
        (**self).open(ctx)
    }
}

pub trait SourceReader<T> {
    /// Appends up to `max` records to `out`. Resolves to `false` once the input has ended
    /// (possibly after appending a last few records).
    fn read<'a>(&'a mut self, out: &'a mut Vec<T>, max: usize) -> LocalBoxFuture<'a, Result<bool, Error>>;

    /// Where to resume after the records returned so far, or `None` if this source
    /// cannot be resumed (a socket: its records are not replayable).
    fn position(&self) -> Option<Vec<Split>> {
        None
    }

    /// Checkpoint `id`, whose barrier this reader's shard emitted at `position`, is
    /// published (a Kafka source commits the offsets to its consumer group, for
    /// monitoring). Failures here are the reader's to log: nothing depends on them.
    fn checkpoint_complete(&mut self, _id: u64, _position: &[Split]) {}
}

/// Strips a trailing "\n" or "\r\n".
pub(crate) fn trim_eol(mut line: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = line {
        line = rest;
    }
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

/// Parser for plain text lines: one String per non-empty line; invalid UTF-8 is bad.
pub fn utf8_lines() -> LineParser<String> {
    Arc::new(|line, out| {
        let s = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
        out.push(s.to_owned());
        Ok(())
    })
}
