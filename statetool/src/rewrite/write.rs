//! Publishing a rewrite's output with the checkpoint protocol (FORMAT.md §10, §13): a
//! checkpoint's `_manifest` or a savepoint's `_savepoint` is written last, after every
//! file and directory is durable, so an output interrupted at any point (kill -9, a full
//! disk) is never taken for a valid one: a checkpoint directory without its manifest is
//! invisible to restore, a savepoint holding only its in-progress marker is refused.
//! Each shard is written by a [`ShardSink`] (`shard.rs`) that [`Output::open`] makes and
//! [`Output::close`] turns into manifest entries.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use formats::checkpoint::{self as protocol, OwnedFile};
use formats::fs::{Fs, StdFs};
use formats::id::CheckpointId;
use formats::keygroup::KeyGroupRange;
use formats::layout;
use formats::manifest::{FileRef, Manifest, ShardFormat};
use formats::savepoint::{self, Form as SavepointForm, SavepointMeta};
use formats::value::StateDescriptor;
use rocksdb::Options;

use super::plan::Form;
use super::shard::{InstanceShard, ShardSink, SnapshotShard};
use crate::progress::Progress;

/// Where the output goes and in what shape.
pub struct Output {
    fs: StdFs,
    pub to: PathBuf,
    pub form: Form,
    pub id: CheckpointId,
    pub format: ShardFormat,
    /// Scratch space for instances being built (on the output's file system).
    scratch: PathBuf,
}

impl Output {
    /// Starts the output at `to`, which must not exist or be an empty directory (nothing
    /// is ever overwritten): a savepoint gets its in-progress marker; a checkpoint root
    /// gets `shared/` and an empty `chk-<id>/`. Shards are written in `format`.
    pub fn begin(
        to: &Path,
        form: Form,
        format: ShardFormat,
        id: CheckpointId,
        scratch: &Path,
    ) -> anyhow::Result<Output> {
        let mut fs = StdFs;
        match form {
            Form::Checkpoint => {
                let empty = !to.exists() || (to.is_dir() && std::fs::read_dir(to)?.next().is_none());
                anyhow::ensure!(
                    empty,
                    "{}: already exists and is not empty (statetool never overwrites)",
                    to.display()
                );
                formats::fs::create_dir_all(&mut fs, to).with_context(|| format!("creating {}", to.display()))?;
                protocol::begin(&mut fs, to, id)?;
            }
            Form::Native | Form::Canonical => savepoint::begin(&mut fs, to)?,
        }
        Ok(Output { fs, to: to.to_owned(), form, id, format, scratch: scratch.to_owned() })
    }

    /// The format of every shard for `form`: a checkpoint keeps its backend's (`rocksdb`
    /// shards for a RocksDB job, snapshot files for a heap job).
    pub fn format_for(form: Form, backend: &str) -> ShardFormat {
        match form {
            Form::Checkpoint if backend == "rocksdb" => ShardFormat::Rocksdb,
            Form::Native => ShardFormat::Rocksdb,
            _ => ShardFormat::Snapshot,
        }
    }

    fn snapshot_path(&self, shard: u16) -> String {
        match self.form {
            Form::Checkpoint => layout::snapshot_file_path(self.id, shard),
            _ => layout::savepoint_snapshot_path(shard),
        }
    }

    /// Starts new shard `shard` (key groups `range`) of `states`; `opts` are the states'
    /// column-family options (`shard::cf_options`), used for RocksDB shards.
    pub fn open<'o>(
        &self,
        shard: u16,
        range: KeyGroupRange,
        states: &'o [StateDescriptor],
        opts: &'o [Options],
    ) -> anyhow::Result<ShardSink<'o>> {
        Ok(match self.format {
            ShardFormat::Snapshot => {
                ShardSink::Snapshot(SnapshotShard::create(&self.to, &self.snapshot_path(shard), states, range)?)
            }
            ShardFormat::Rocksdb => {
                let dir = self.scratch.join(format!("instance-{shard}"));
                ShardSink::Instance(
                    InstanceShard::create(&dir, states, opts)
                        .with_context(|| format!("building shard {shard}'s RocksDB instance in {}", dir.display()))?,
                )
            }
        })
    }

    /// Ends shard `shard` and places its files: its manifest entries.
    pub fn close(&mut self, shard: u16, sink: ShardSink<'_>) -> anyhow::Result<Vec<FileRef>> {
        match sink {
            ShardSink::Snapshot(s) => {
                let (size, crc32) = s.finish()?;
                Ok(vec![FileRef { path: self.snapshot_path(shard), size, crc32, local: None }])
            }
            ShardSink::Instance(i) => {
                let built = self.scratch.join(format!("instance-{shard}"));
                let taken = self.scratch.join(format!("checkpoint-{shard}"));
                i.finish(&taken).with_context(|| format!("checkpointing shard {shard}'s instance"))?;
                let files = self.place(shard, &taken)?;
                std::fs::remove_dir_all(&built).with_context(|| format!("removing {}", built.display()))?;
                std::fs::remove_dir_all(&taken).with_context(|| format!("removing {}", taken.display()))?;
                Ok(files)
            }
        }
    }

    /// Copies the files of an instance's RocksDB checkpoint `taken` into the output: for
    /// a checkpoint SSTs into `shared/` (named by content, as the engine names them) and
    /// the rest owned; for a savepoint all under `shard-<i>/`.
    fn place(&mut self, shard: u16, taken: &Path) -> anyhow::Result<Vec<FileRef>> {
        let mut files = Vec::new();
        let mut names = self.fs.list(taken).with_context(|| format!("listing {}", taken.display()))?;
        names.sort();
        let total = names.iter().map(|n| std::fs::metadata(taken.join(n)).map_or(0, |m| m.len())).sum();
        let bar = Progress::bytes(total, format!("copying shard {shard}'s files"));
        for name in names {
            let src = taken.join(&name);
            let f = match self.form {
                Form::Checkpoint if layout::is_shared_file(&name) => {
                    let mut from = std::fs::File::open(&src).with_context(|| format!("opening {}", src.display()))?;
                    protocol::put_shared(&mut self.fs, &self.to, &name, &mut from, &src)?.0
                }
                Form::Checkpoint => {
                    let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
                    let path = layout::owned_file_path(self.id, shard, &name);
                    let mut out = OwnedFile::create(&mut self.fs, &self.to, &path)?;
                    out.write_all(&bytes).with_context(|| format!("writing {path}"))?;
                    out.finish()?;
                    FileRef::of(&path, &bytes)
                }
                _ => {
                    savepoint::copy_in(&mut self.fs, &self.to, &layout::savepoint_owned_path(shard, &name), &src, None)?
                }
            };
            bar.inc(f.size);
            files.push(f);
        }
        bar.finish();
        Ok(files)
    }

    /// Publishes the output: its manifest (or `_savepoint`) written last.
    pub fn commit(mut self, manifest: Manifest) -> anyhow::Result<()> {
        match self.form {
            Form::Checkpoint => protocol::commit(&mut self.fs, &self.to, &manifest, &[])?,
            Form::Native | Form::Canonical => {
                let form = if self.form == Form::Native { SavepointForm::Native } else { SavepointForm::Canonical };
                savepoint::commit(&mut self.fs, &self.to, &SavepointMeta { form, manifest })?
            }
        }
        Ok(())
    }

    /// Removes what a failed rewrite wrote (it created `to`, or found it empty).
    pub fn discard(mut self) {
        let removed = match self.form {
            Form::Checkpoint => self.fs.remove_dir_all(&self.to).map_err(|e| e.to_string()),
            _ => savepoint::dispose(&mut self.fs, &self.to).map_err(|e| e.to_string()),
        };
        if let Err(e) = removed {
            eprintln!("warning: could not remove the unfinished output {}: {e}", self.to.display());
        }
    }
}
