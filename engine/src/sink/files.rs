//! The exactly-once file sink (Flink's `FileSink`): each shard writes lines into
//! in-progress part files, which the checkpoint barrier makes pending (flushed, fsynced,
//! renamed) and the published checkpoint makes finished (renamed to the name readers
//! see). Files roll on every checkpoint, and within one when they reach a size or an
//! age. Names and states are `formats::partfile`'s.
//!
//! Recovery at start renames the restored checkpoint's pending files to finished
//! (idempotent: a file already finished is left alone) and deletes every other
//! unfinished part file of this sink's prefix: what crashed runs left in progress or
//! pre-committed for checkpoints that were never published.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use formats::partfile::{self, PartName, PartState};

use super::two_phase::{Pending, Transactional, TransactionalWriter, TxnContext};
use super::LineFormat;
use crate::error::Error;

/// Where and how the part files are written.
pub struct PartFiles<T> {
    pub dir: PathBuf,
    /// Names start `<prefix>-`; recovery only touches files of this prefix.
    pub prefix: String,
    /// Ends every finished name (".jsonl").
    pub suffix: String,
    /// A part file rolls (a new one starts in the same transaction) at this size.
    pub roll_bytes: u64,
    /// ... or at this age.
    pub roll_interval: Option<Duration>,
    pub format: LineFormat<T>,
    /// This run's token in file names, drawn at each recovery (each attempt).
    run: Arc<Mutex<String>>,
}

impl<T> PartFiles<T> {
    pub fn new(dir: &Path, prefix: &str, suffix: &str, format: LineFormat<T>) -> Self {
        PartFiles {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            roll_bytes: 128 << 20,
            roll_interval: None,
            format,
            run: Arc::new(Mutex::new(partfile::run_token())),
        }
    }

    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(&self.dir, e))
    }
}

/// The finished names of one transaction's files (a pending transaction's handle).
fn encode_names(names: &[String]) -> Vec<u8> {
    serde_json::to_vec(names).unwrap_or_default()
}

fn decode_names(p: &Pending) -> Result<Vec<String>, Error> {
    serde_json::from_slice(&p.handle).map_err(|e| {
        Error::Config(format!("a pending file transaction of checkpoint {} does not decode: {e}", p.checkpoint))
    })
}

/// Renames the pending files of `names` in `dir` to finished; a file already finished
/// is committed already. Fsyncs the directory.
fn commit_names(dir: &Path, names: &[String], checkpoint: u64) -> Result<(), Error> {
    for n in names {
        let (pending, finished) =
            (partfile::path(dir, n, PartState::Pending), partfile::path(dir, n, PartState::Finished));
        match std::fs::rename(&pending, &finished) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && finished.exists() => {}
            Err(e) => {
                return Err(Error::Sink {
                    name: format!("part file {}", pending.display()),
                    reason: format!("cannot commit it for checkpoint {checkpoint}: {e}"),
                })
            }
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

impl<T: 'static> Transactional<T> for PartFiles<T> {
    fn name(&self) -> String {
        format!("part files {}/{}-*", self.dir.display(), self.prefix)
    }

    fn check(&self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let probe = self.dir.join(format!(".{}.probe", self.prefix));
        File::create(&probe).and_then(|_| std::fs::remove_file(&probe)).map_err(|e| Error::io(&self.dir, e))
    }

    fn recover(&self, pending: &[Pending], _shards: u32) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = partfile::run_token();
        let mut keep = std::collections::HashSet::new();
        for p in pending {
            let names = decode_names(p)?;
            commit_names(&self.dir, &names, p.checkpoint)?;
            keep.extend(names);
        }
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((_, finished)) = partfile::unfinished(&name, &self.prefix) {
                if !keep.contains(&finished) {
                    std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(dir = %self.dir.display(), removed, "removed part files earlier runs left unfinished");
            self.sync_dir()?;
        }
        Ok(())
    }

    fn open(&self, ctx: TxnContext) -> Result<Box<dyn TransactionalWriter<T>>, Error> {
        Ok(Box::new(PartWriter {
            dir: self.dir.clone(),
            name: PartName {
                prefix: self.prefix.clone(),
                shard: ctx.shard.0,
                checkpoint: 0,
                run: self.run.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                index: 0,
                suffix: self.suffix.clone(),
            },
            roll_bytes: self.roll_bytes,
            roll_interval: self.roll_interval,
            format: self.format.clone(),
            current: None,
            closed: Vec::new(),
            line: String::new(),
        }))
    }
}

/// The part file being written.
struct Current {
    file: BufWriter<File>,
    finished: String,
    bytes: u64,
    opened: Instant,
}

/// One shard's part files: the transaction's file being written and the ones it
/// already rolled (pending).
struct PartWriter<T> {
    dir: PathBuf,
    /// The next file's name (checkpoint = the open transaction's, index = next roll).
    name: PartName,
    roll_bytes: u64,
    roll_interval: Option<Duration>,
    format: LineFormat<T>,
    current: Option<Current>,
    /// The open transaction's files already rolled: pending, by finished name.
    closed: Vec<String>,
    line: String,
}

impl<T> PartWriter<T> {
    fn roll(&mut self) -> Result<(), Error> {
        let Some(mut c) = self.current.take() else { return Ok(()) };
        let in_progress = partfile::path(&self.dir, &c.finished, PartState::InProgress);
        c.file.flush().and_then(|()| c.file.get_ref().sync_all()).map_err(|e| Error::io(&in_progress, e))?;
        let pending = partfile::path(&self.dir, &c.finished, PartState::Pending);
        std::fs::rename(&in_progress, &pending).map_err(|e| Error::io(&pending, e))?;
        self.closed.push(c.finished);
        Ok(())
    }

    fn file(&mut self) -> Result<&mut Current, Error> {
        let due = self.current.as_ref().is_some_and(|c| {
            c.bytes >= self.roll_bytes || self.roll_interval.is_some_and(|iv| c.opened.elapsed() >= iv)
        });
        if due {
            self.roll()?;
        }
        if self.current.is_none() {
            let finished = self.name.finished();
            self.name.index += 1;
            let path = partfile::path(&self.dir, &finished, PartState::InProgress);
            let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            self.current = Some(Current { file: BufWriter::new(f), finished, bytes: 0, opened: Instant::now() });
        }
        Ok(self.current.as_mut().expect("opened above"))
    }
}

impl<T> TransactionalWriter<T> for PartWriter<T> {
    fn begin(&mut self, next: u64) -> Result<(), Error> {
        self.name.checkpoint = next;
        self.name.index = 0;
        Ok(())
    }

    fn write(&mut self, value: T) -> Result<(), Error> {
        self.line.clear();
        (self.format)(&value, &mut self.line);
        self.line.push('\n');
        let dir = self.dir.clone();
        let line = std::mem::take(&mut self.line);
        let c = self.file()?;
        c.file.write_all(line.as_bytes()).map_err(|e| Error::io(&dir, e))?;
        c.bytes += line.len() as u64;
        self.line = line;
        Ok(())
    }

    fn pre_commit(&mut self, _id: u64) -> Result<Vec<u8>, Error> {
        self.roll()?;
        if !self.closed.is_empty() {
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(&self.dir, e))?;
        }
        Ok(encode_names(&std::mem::take(&mut self.closed)))
    }

    fn commit(&mut self, pending: &Pending) -> Result<(), Error> {
        let names = decode_names(pending)?;
        if names.is_empty() {
            return Ok(());
        }
        commit_names(&self.dir, &names, pending.checkpoint)
    }

    fn abort(&mut self) -> Result<(), Error> {
        let mut gone: Vec<PathBuf> =
            self.closed.drain(..).map(|n| partfile::path(&self.dir, &n, PartState::Pending)).collect();
        if let Some(c) = self.current.take() {
            gone.push(partfile::path(&self.dir, &c.finished, PartState::InProgress));
        }
        for p in gone {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove an aborted part file");
            }
        }
        Ok(())
    }
}
