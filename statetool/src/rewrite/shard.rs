//! Writing one new shard from entries that arrive in order: by state, then key (which
//! is key-group order), the order a snapshot file and SST files are written in. Both
//! writers check it (the snapshot writer refuses an entry out of order, an SST writer a
//! key not above the last), so a caller that breaks it fails instead of writing a bad
//! shard.
//!
//! - [`ShardSink::Snapshot`]: one snapshot file, streamed block by block.
//! - [`ShardSink::Instance`]: a RocksDB instance whose SSTs (at most [`SST_BYTES`]
//!   each) are built directly, per state, and ingested into the bottom level when the
//!   state's last entry has come, so the instance is fully compacted; then a RocksDB
//!   checkpoint of it is taken, whose files the output copies in.
use std::path::{Path, PathBuf};

use formats::checkpoint::OwnedFile;
use formats::fs::{Fs, StdFs};
use formats::keygroup::{KeyGroup, KeyGroupRange};
use formats::snapshot::{SnapshotStream, SnapshotWriter};
use formats::value::{StateDescriptor, StateKind};
use reader::{concat_merge, LIST_MERGE_OPERATOR};
use rocksdb::{ColumnFamilyDescriptor, Options, SstFileWriter, DB};

/// Largest SST a RocksDB shard of the output is built with.
pub const SST_BYTES: u64 = 64 << 20;

/// The options of one output column family: what the engine's RocksDB backend records
/// (LZ4 tables; lists with the concatenating merge operator, FORMAT.md §9).
pub fn cf_options(d: &StateDescriptor) -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    if d.kind == StateKind::List {
        o.set_merge_operator_associative(LIST_MERGE_OPERATOR, concat_merge);
    }
    o
}

pub enum ShardSink<'o> {
    Snapshot(SnapshotShard<'o>),
    Instance(InstanceShard<'o>),
}

impl ShardSink<'_> {
    /// Adds the next entry (state index in the output, key group, state key, value).
    pub fn add(&mut self, state: usize, kg: KeyGroup, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        match self {
            ShardSink::Snapshot(s) => Ok(s.w.add(state as u32, kg, key, value)?),
            ShardSink::Instance(i) => i.add(state, key, value),
        }
    }
}

/// A snapshot file being written at `path` (absolute).
pub struct SnapshotShard<'o> {
    w: SnapshotStream<OwnedFile<'o>>,
    path: PathBuf,
}

impl<'o> SnapshotShard<'o> {
    /// Starts `relative` under `base` (created, with missing parents).
    pub fn create(
        base: &Path,
        relative: &str,
        states: &[StateDescriptor],
        range: KeyGroupRange,
    ) -> anyhow::Result<Self> {
        // `OwnedFile` writes through a `&mut dyn Fs` it keeps; `StdFs` has no state, and
        // leaking a box of a zero-sized type allocates nothing.
        let fs: &'o mut StdFs = Box::leak(Box::new(StdFs));
        let file = OwnedFile::create(fs, base, relative)?;
        let path = file.path().to_owned();
        Ok(SnapshotShard { w: SnapshotWriter::to_writer(states.to_vec(), range, file, path.clone()), path })
    }

    /// Ends the file and makes it durable: its size and crc32.
    pub fn finish(self) -> anyhow::Result<(u64, u32)> {
        let summary = self.w.finish()?;
        StdFs.sync_file(&self.path).map_err(|e| formats::FormatError::io(&self.path, e))?;
        Ok((summary.size, summary.crc32))
    }
}

/// A RocksDB instance being built in `dir`.
pub struct InstanceShard<'o> {
    db: DB,
    dir: PathBuf,
    states: &'o [StateDescriptor],
    /// One per state, as `cf_options` makes them; the SST writers borrow them.
    opts: &'o [Options],
    /// The state being written, its finished files, and the file being written.
    current: Option<(usize, Vec<PathBuf>, Option<SstFileWriter<'o>>)>,
    files: usize,
}

impl<'o> InstanceShard<'o> {
    pub fn create(dir: &Path, states: &'o [StateDescriptor], opts: &'o [Options]) -> anyhow::Result<Self> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        let cfs = states.iter().map(|d| ColumnFamilyDescriptor::new(d.name.clone(), cf_options(d)));
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs)?;
        Ok(InstanceShard { db, dir: dir.to_owned(), states, opts, current: None, files: 0 })
    }

    fn add(&mut self, state: usize, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        if self.current.as_ref().is_some_and(|(s, _, _)| *s != state) {
            self.ingest()?;
        }
        let (_, done, writer) = self.current.get_or_insert_with(|| (state, Vec::new(), None));
        if let Some(mut full) = writer.take_if(|w| w.file_size() >= SST_BYTES) {
            full.finish()?;
        }
        let w = match writer {
            Some(w) => w,
            None => {
                let opts = self.opts.get(state).ok_or_else(|| anyhow::anyhow!("no state {state}"))?;
                let file = self.dir.join(format!("ingest-{}.sst", self.files));
                self.files += 1;
                let nw = SstFileWriter::create(opts);
                nw.open(&file)?;
                done.push(file);
                writer.insert(nw)
            }
        };
        w.put(key, value)?;
        Ok(())
    }

    /// Ingests the current state's files into its column family.
    fn ingest(&mut self) -> anyhow::Result<()> {
        let Some((state, files, writer)) = self.current.take() else { return Ok(()) };
        if let Some(mut last) = writer {
            last.finish()?;
        }
        let name = &self.states.get(state).ok_or_else(|| anyhow::anyhow!("no state {state}"))?.name;
        let cf = self.db.cf_handle(name).ok_or_else(|| anyhow::anyhow!("no column family {name:?}"))?;
        let mut o = rocksdb::IngestExternalFileOptions::default();
        o.set_move_files(true);
        self.db.ingest_external_file_cf_opts(cf, &o, files)?;
        Ok(())
    }

    /// Ingests what is pending and takes a RocksDB checkpoint of the instance in `taken`.
    pub fn finish(mut self, taken: &Path) -> anyhow::Result<()> {
        self.ingest()?;
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(taken)?;
        Ok(())
    }
}
