//! Sinks: where outputs go. A factory opens one sink per shard; `finish` runs once after
//! every shard has closed its sink. Transactional targets plug in through
//! [`two_phase`]: the runtime calls a sink's checkpoint hooks (`snapshot` on the
//! barrier, `checkpoint_complete` once the checkpoint is published): [`files`],
//! [`kafka`] and [`mysql`] are.
pub mod files;
pub mod kafka;
pub mod mysql;
pub mod two_phase;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use formats::ShardId;

use crate::error::Error;

/// Bytes a shard buffers before writing them, whole lines only, to a shared output.
const LINE_BUFFER_BYTES: usize = 64 << 10;

pub trait Sink<T> {
    fn write(&mut self, value: T) -> Result<(), Error>;
    /// The shard ends (after `commit_at_end` when it ended well, after `abort` when not).
    fn close(&mut self) -> Result<(), Error>;
    /// On checkpoint `id`'s barrier, after the shard's state is snapshotted: the items
    /// the checkpoint keeps for this sink (operator list state
    /// [`two_phase::PENDING_STATE`]: its pre-committed transactions).
    fn snapshot(&mut self, _id: u64) -> Result<Vec<Vec<u8>>, Error> {
        Ok(Vec::new())
    }
    /// Checkpoint `id` is published: commit what waited for it.
    fn checkpoint_complete(&mut self, _id: u64) -> Result<(), Error> {
        Ok(())
    }
    /// The job ended well and takes no checkpoints: commit everything written.
    fn commit_at_end(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// The job failed: abort what is not pre-committed.
    fn abort(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

pub trait SinkFactory<T>: Send + Sync + 'static {
    /// Checks the sink can be written before any shard starts.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
    /// Once at start, before any shard opens: `restored` holds the items of every old
    /// shard's [`two_phase::PENDING_STATE`] in the checkpoint restored (empty on a fresh
    /// start); the job now runs on `shards` shards.
    fn recover(&self, _restored: &[Vec<u8>], _shards: u32) -> Result<(), Error> {
        Ok(())
    }
    /// Opens shard `shard`'s sink, of `shards`.
    fn open(&self, shard: ShardId, shards: u32) -> Result<Box<dyn Sink<T>>, Error>;
    fn finish(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// A shared sink factory is a sink factory (the job API takes them by value).
impl<T: 'static> SinkFactory<T> for Arc<dyn SinkFactory<T>> {
    fn check(&self) -> Result<(), Error> {
        (**self).check()
    }
    fn recover(&self, restored: &[Vec<u8>], shards: u32) -> Result<(), Error> {
        (**self).recover(restored, shards)
    }
    fn open(&self, shard: ShardId, shards: u32) -> Result<Box<dyn Sink<T>>, Error> {
        (**self).open(shard, shards)
    }
    fn finish(&self) -> Result<(), Error> {
        (**self).finish()
    }
}

/// Discards everything (benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSink;

impl<T: 'static> SinkFactory<T> for DiscardSink {
    fn open(&self, _: ShardId, _: u32) -> Result<Box<dyn Sink<T>>, Error> {
        Ok(Box::new(DiscardSink))
    }
}

impl<T> Sink<T> for DiscardSink {
    fn write(&mut self, _: T) -> Result<(), Error> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Collects every output in memory (tests, small jobs).
pub struct CollectSink<T>(pub Arc<Mutex<Vec<T>>>);

impl<T> Default for CollectSink<T> {
    fn default() -> Self {
        CollectSink(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T> CollectSink<T> {
    pub fn handle(&self) -> Arc<Mutex<Vec<T>>> {
        self.0.clone()
    }
}

impl<T: Send + 'static> SinkFactory<T> for CollectSink<T> {
    fn open(&self, _: ShardId, _: u32) -> Result<Box<dyn Sink<T>>, Error> {
        Ok(Box::new(CollectSink(self.0.clone())))
    }
}

impl<T> Sink<T> for CollectSink<T> {
    fn write(&mut self, v: T) -> Result<(), Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(v);
        Ok(())
    }
    fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

enum Target {
    Stdout,
    File(PathBuf, Mutex<BufWriter<File>>),
}

/// Writes one line per output (formatted by `format`) to stdout or a file. Each shard
/// buffers whole lines, so lines of different shards never interleave.
/// Appends one output, without the newline, to a line buffer.
pub type LineFormat<T> = Arc<dyn Fn(&T, &mut String) + Send + Sync>;

pub struct LineSink<T> {
    target: Arc<Target>,
    format: LineFormat<T>,
}

impl<T> LineSink<T> {
    pub fn stdout(format: impl Fn(&T, &mut String) + Send + Sync + 'static) -> Self {
        LineSink { target: Arc::new(Target::Stdout), format: Arc::new(format) }
    }

    /// Creates (truncates) the file now, so an unwritable path fails before start-up.
    pub fn file(path: &Path, format: impl Fn(&T, &mut String) + Send + Sync + 'static) -> Result<Self, Error> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(LineSink {
            target: Arc::new(Target::File(path.to_owned(), Mutex::new(BufWriter::new(f)))),
            format: Arc::new(format),
        })
    }
}

impl<T: 'static> SinkFactory<T> for LineSink<T> {
    fn open(&self, _: ShardId, _: u32) -> Result<Box<dyn Sink<T>>, Error> {
        Ok(Box::new(LineWriter { target: self.target.clone(), format: self.format.clone(), buf: String::new() }))
    }

    fn finish(&self) -> Result<(), Error> {
        match &*self.target {
            Target::Stdout => std::io::stdout().flush().map_err(|e| Error::io("stdout", e)),
            Target::File(p, w) => {
                let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                w.flush().map_err(|e| Error::io(p, e))?;
                w.get_ref().sync_all().map_err(|e| Error::io(p, e))
            }
        }
    }
}

struct LineWriter<T> {
    target: Arc<Target>,
    format: LineFormat<T>,
    buf: String,
}

impl<T> LineWriter<T> {
    fn drain(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match &*self.target {
            Target::Stdout => {
                let out = std::io::stdout();
                let mut lock = out.lock();
                lock.write_all(self.buf.as_bytes()).map_err(|e| Error::io("stdout", e))?;
            }
            Target::File(p, w) => w
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(self.buf.as_bytes())
                .map_err(|e| Error::io(p, e))?,
        }
        self.buf.clear();
        Ok(())
    }
}

impl<T> Sink<T> for LineWriter<T> {
    fn write(&mut self, v: T) -> Result<(), Error> {
        (self.format)(&v, &mut self.buf);
        self.buf.push('\n');
        if self.buf.len() >= LINE_BUFFER_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        self.drain()
    }
}
