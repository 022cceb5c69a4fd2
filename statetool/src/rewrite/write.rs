//! Publishing a rewrite's output with the checkpoint protocol (FORMAT.md §10, §13): a
//! checkpoint's `_manifest` or a savepoint's `_savepoint` is written last, after every
//! file and directory is durable, so an output interrupted at any point (kill -9, a full
//! disk) is never taken for a valid one: a checkpoint directory without its manifest is
//! invisible to restore, a savepoint holding only its in-progress marker is refused.
//!
//! Each new shard is written from the sorter, state by state in key order: as one
//! snapshot file (format `snapshot`), or as a RocksDB instance (format `rocksdb`) whose
//! SSTs are built directly (`SstFileWriter`, at most [`SST_BYTES`] each) and ingested
//! into the bottom level, so the instance is fully compacted, then checkpointed.
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
use formats::snapshot::SnapshotWriter;
use formats::value::{StateDescriptor, StateKind};
use reader::{concat_merge, LIST_MERGE_OPERATOR};
use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use super::plan::Form;
use super::sort::Sorter;

/// Largest SST a RocksDB shard of the output is built with.
pub const SST_BYTES: u64 = 64 << 20;

/// Where the output goes and in what shape.
pub struct Output {
    fs: StdFs,
    pub to: PathBuf,
    pub form: Form,
    pub id: CheckpointId,
    /// Scratch space for instances being built (on the output's file system).
    scratch: PathBuf,
}

impl Output {
    /// Starts the output at `to`, which must not exist or be an empty directory (nothing
    /// is ever overwritten): a savepoint gets its in-progress marker; a checkpoint root
    /// gets `shared/` and an empty `chk-<id>/`.
    pub fn begin(to: &Path, form: Form, id: CheckpointId, scratch: &Path) -> anyhow::Result<Output> {
        let mut fs = StdFs;
        match form {
            Form::Checkpoint => {
                let empty = !to.exists() || (to.is_dir() && std::fs::read_dir(to)?.next().is_none());
                anyhow::ensure!(empty, "{}: already exists and is not empty (statetool never overwrites)", to.display());
                formats::fs::create_dir_all(&mut fs, to).with_context(|| format!("creating {}", to.display()))?;
                protocol::begin(&mut fs, to, id)?;
            }
            Form::Native | Form::Canonical => savepoint::begin(&mut fs, to)?,
        }
        Ok(Output { fs, to: to.to_owned(), form, id, scratch: scratch.to_owned() })
    }

    /// The format of every shard: a checkpoint keeps its backend's (`rocksdb` shards for
    /// a RocksDB job, snapshot files for a heap job).
    pub fn shard_format(&self, backend: &str) -> ShardFormat {
        match self.form {
            Form::Checkpoint if backend == "rocksdb" => ShardFormat::Rocksdb,
            Form::Native => ShardFormat::Rocksdb,
            _ => ShardFormat::Snapshot,
        }
    }

    /// Writes new shard `shard` (key groups `range`) of `states` from `sorter`.
    pub fn shard(
        &mut self,
        format: ShardFormat,
        shard: u16,
        range: KeyGroupRange,
        states: &[StateDescriptor],
        sorter: &Sorter,
    ) -> anyhow::Result<Vec<FileRef>> {
        match format {
            ShardFormat::Snapshot => Ok(vec![self.snapshot(shard, range, states, sorter)?]),
            ShardFormat::Rocksdb => self.instance(shard, range, states, sorter),
        }
    }

    fn snapshot(
        &mut self,
        shard: u16,
        range: KeyGroupRange,
        states: &[StateDescriptor],
        sorter: &Sorter,
    ) -> anyhow::Result<FileRef> {
        let path = match self.form {
            Form::Checkpoint => layout::snapshot_file_path(self.id, shard),
            _ => layout::savepoint_snapshot_path(shard),
        };
        let mut file = OwnedFile::create(&mut self.fs, &self.to, &path)?;
        let label = file.path().to_owned();
        let mut w = SnapshotWriter::to_writer(states.to_vec(), range, &mut file, label);
        for i in 0..states.len() {
            sorter.scan(i, range, &mut |kg, k, v| Ok(w.add(i as u32, kg, k, v)?))?;
        }
        let summary = w.finish()?;
        file.finish()?;
        Ok(FileRef { path, size: summary.size, crc32: summary.crc32, local: None })
    }

    fn instance(
        &mut self,
        shard: u16,
        range: KeyGroupRange,
        states: &[StateDescriptor],
        sorter: &Sorter,
    ) -> anyhow::Result<Vec<FileRef>> {
        let built = self.scratch.join(format!("instance-{shard}"));
        let taken = self.scratch.join(format!("checkpoint-{shard}"));
        build_instance(&built, &taken, range, states, sorter)
            .with_context(|| format!("building shard {shard}'s RocksDB instance in {}", built.display()))?;
        let mut files = Vec::new();
        let mut names = self.fs.list(&taken).with_context(|| format!("listing {}", taken.display()))?;
        names.sort();
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
                _ => savepoint::copy_in(&mut self.fs, &self.to, &layout::savepoint_owned_path(shard, &name), &src, None)?,
            };
            files.push(f);
        }
        std::fs::remove_dir_all(&built).with_context(|| format!("removing {}", built.display()))?;
        std::fs::remove_dir_all(&taken).with_context(|| format!("removing {}", taken.display()))?;
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

/// The options of one output column family: what the engine's RocksDB backend records
/// (LZ4 tables; lists with the concatenating merge operator, FORMAT.md §9).
fn cf_options(d: &StateDescriptor) -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    if d.kind == StateKind::List {
        o.set_merge_operator_associative(LIST_MERGE_OPERATOR, concat_merge);
    }
    o
}

/// Builds shard `range`'s instance in `dir` from the sorter (SSTs written in key order
/// and ingested), then takes a RocksDB checkpoint of it in `taken`.
fn build_instance(
    dir: &Path,
    taken: &Path,
    range: KeyGroupRange,
    states: &[StateDescriptor],
    sorter: &Sorter,
) -> anyhow::Result<()> {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    let cfs = states.iter().map(|d| ColumnFamilyDescriptor::new(d.name.clone(), cf_options(d)));
    let db = DB::open_cf_descriptors(&db_opts, dir, cfs)?;
    for (i, d) in states.iter().enumerate() {
        let opts = cf_options(d);
        let mut files: Vec<PathBuf> = Vec::new();
        let mut w: Option<rocksdb::SstFileWriter> = None;
        sorter.scan(i, range, &mut |_, k, v| {
            if w.as_ref().is_some_and(|w| w.file_size() >= SST_BYTES) {
                if let Some(mut full) = w.take() {
                    full.finish()?;
                }
            }
            let writer = match &mut w {
                Some(w) => w,
                None => {
                    let file = dir.join(format!("ingest-{i}-{}.sst", files.len()));
                    let nw = rocksdb::SstFileWriter::create(&opts);
                    nw.open(&file)?;
                    files.push(file);
                    w.insert(nw)
                }
            };
            writer.put(k, v)?;
            Ok(())
        })?;
        if let Some(mut last) = w.take() {
            last.finish()?;
        }
        if !files.is_empty() {
            let cf = db.cf_handle(&d.name).ok_or_else(|| anyhow::anyhow!("no column family {:?}", d.name))?;
            let mut o = rocksdb::IngestExternalFileOptions::default();
            o.set_move_files(true);
            db.ingest_external_file_cf_opts(cf, &o, files)?;
        }
    }
    rocksdb::checkpoint::Checkpoint::new(&db)?.create_checkpoint(taken)?;
    Ok(())
}
