//! The RocksDB backend: one instance per shard, one column family per state, the WAL off
//! (checkpoints, not the WAL, are what makes state durable), list append through an
//! associative merge operator that concatenates framed elements, and expired TTL values
//! and list elements dropped by a compaction filter (`state::ttl_filter`).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use formats::value::{StateDescriptor, StateKind};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteOptions, DB,
};

use super::backend::{Backend, StateId, Visit};
use super::cleanup::TtlCleanup;
use super::expired::ExpiredCounts;
use super::ttl_filter::TtlFilterFactory;
use reader::{concat_merge, LIST_MERGE_OPERATOR};

use crate::clock::Clock;
use crate::error::StateError;

/// Tuning of each shard's instance. Every background resource is bounded.
#[derive(Debug, Clone)]
pub struct RocksConfig {
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    pub max_write_buffers: i32,
    /// Flush and compaction threads of this instance.
    pub background_jobs: i32,
    /// Entries per point state held by the write-back cache in front of RocksDB
    /// (`state::cache`); 0 turns the cache off.
    pub cache_entries_max: usize,
    /// Compaction shape (docs/CHECKPOINTING.md): L0 files that trigger a compaction,
    /// the size of the first level below L0, and the size of each SST.
    pub l0_compaction_trigger: i32,
    pub level_base_bytes: u64,
    pub target_file_bytes: u64,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig {
            block_cache_bytes: 128 << 20,
            write_buffer_bytes: 64 << 20,
            max_write_buffers: 3,
            background_jobs: 2,
            cache_entries_max: 1 << 19,
            // docs/CHECKPOINTING.md "Compaction and incremental checkpoints": with
            // RocksDB's 4 and 64 MiB, every fourth checkpoint of a uniformly updated
            // state copies all of it (10M keys: 24.8% copied on average); 16 and 8 MiB: 5%.
            l0_compaction_trigger: 16,
            level_base_bytes: 256 << 20,
            target_file_bytes: 8 << 20,
        }
    }
}

pub struct RocksBackend {
    db: DB,
    /// Identifies this open instance: its file names are unique within it, never reused.
    instance: u64,
    names: Vec<String>,
    descriptors: Vec<StateDescriptor>,
    write: WriteOptions,
    /// Options of the SST files `write_sorted` builds.
    sst: Options,
    path: PathBuf,
}

/// Below this many entries a sorted run goes through a write batch: ingesting a file has
/// a fixed cost (a version edit and fsyncs).
const INGEST_MIN_ENTRIES: usize = 16 * 1024;

impl RocksBackend {
    /// Opens (creating) the instance at `path`, with a column family per descriptor and
    /// the default TTL cleanup.
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "the runtime opens with the job's cleanup; benchmarks and tests with the default")
    )]
    pub fn open(
        path: &Path,
        descriptors: Vec<StateDescriptor>,
        cfg: &RocksConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StateError> {
        let cleanups: Vec<TtlCleanup> = descriptors
            .iter()
            .map(|d| if d.ttl.is_some() { TtlCleanup::default() } else { TtlCleanup::none() })
            .collect();
        let counts = ExpiredCounts::new(descriptors.len());
        Self::open_with_cleanup(path, descriptors, &cleanups, counts, cfg, clock)
    }

    /// Like [`open`](Self::open), with each state's TTL cleanup (`cleanups`, in
    /// state-id order) and the shard's counts of expired entries removed.
    pub fn open_with_cleanup(
        path: &Path,
        descriptors: Vec<StateDescriptor>,
        cleanups: &[TtlCleanup],
        counts: Arc<ExpiredCounts>,
        cfg: &RocksConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StateError> {
        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        // Partitioned index and filters, their top level pinned: a whole-file filter of a
        // large SST (megabytes at 10M keys) otherwise falls out of the block cache and is
        // read back for single lookups (300 µs per get at 10M keys; now a partition).
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(cfg.background_jobs);
        db_opts.set_max_open_files(1024);
        // One writer per instance (the shard's thread); in-place updates require this.
        db_opts.set_allow_concurrent_memtable_write(false);

        let cfs = descriptors.iter().enumerate().map(|(i, d)| {
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            o.set_write_buffer_size(cfg.write_buffer_bytes);
            o.set_max_write_buffer_number(cfg.max_write_buffers);
            o.set_level_compaction_dynamic_level_bytes(true);
            // The compaction shape decides how much of the state each incremental checkpoint
            // copies: docs/CHECKPOINTING.md "Compaction and incremental checkpoints".
            o.set_target_file_size_base(cfg.target_file_bytes);
            o.set_max_bytes_for_level_base(cfg.level_base_bytes);
            o.set_level_zero_file_num_compaction_trigger(cfg.l0_compaction_trigger);
            o.set_level_zero_slowdown_writes_trigger(cfg.l0_compaction_trigger.saturating_mul(2).max(20));
            o.set_level_zero_stop_writes_trigger(cfg.l0_compaction_trigger.saturating_mul(3).max(36));
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_memtable_whole_key_filtering(true);
            o.set_memtable_prefix_bloom_ratio(0.02);
            if d.kind == StateKind::List {
                o.set_merge_operator_associative(LIST_MERGE_OPERATOR, concat_merge);
            } else {
                // Counters and other fixed-width values overwrite their memtable entry
                // instead of stacking versions: the memtable stays small and lookups stay
                // in it (+20% on the keyed-count benchmark without the cache).
                o.set_inplace_update_support(true);
            }
            let filter = cleanups.get(i).and_then(|c| c.compaction_filter).filter(|_| d.ttl.is_some());
            if let Some(f) = filter {
                // Values of TTL states (list elements) start with their expiry.
                o.set_compaction_filter_factory(TtlFilterFactory {
                    state: StateId(i as u32),
                    desc: Arc::new(d.clone()),
                    clock: clock.clone(),
                    counts: counts.clone(),
                    query_time_after_num_entries: f.query_time_after_num_entries,
                });
                // Files no compaction picks (cold keys) are rewritten at this age.
                let ttl = Duration::from_millis(d.ttl.map_or(0, |t| t.ttl_ms));
                let age = f.periodic_compaction_time.unwrap_or(ttl);
                o.set_periodic_compaction_seconds(if age.is_zero() { 0 } else { age.as_secs().max(1) });
            }
            ColumnFamilyDescriptor::new(d.name.clone(), o)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        let names = descriptors.iter().map(|d| d.name.clone()).collect();
        // Files written for ingestion get the same table format as the instance's own.
        let mut sst = Options::default();
        sst.set_block_based_table_factory(&table);
        sst.set_compression_type(rocksdb::DBCompressionType::Lz4);
        Ok(RocksBackend { db, instance: new_instance_id(), names, descriptors, write, sst, path: path.to_owned() })
    }

    fn cf(&self, s: StateId) -> &ColumnFamily {
        // Every registered state got its column family at open; a miss is an engine bug.
        let name = self.names.get(s.0 as usize).unwrap_or_else(|| panic!("unknown state id {}", s.0));
        self.db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} missing"))
    }
}

impl Backend for RocksBackend {
    fn get(&mut self, s: StateId, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StateError> {
        out.clear();
        match self.db.get_pinned_cf(self.cf(s), key)? {
            Some(v) => {
                out.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put(&mut self, s: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        Ok(self.db.put_cf_opt(self.cf(s), key, value, &self.write)?)
    }

    fn delete(&mut self, s: StateId, key: &[u8]) -> Result<(), StateError> {
        Ok(self.db.delete_cf_opt(self.cf(s), key, &self.write)?)
    }

    fn append(&mut self, s: StateId, key: &[u8], framed: &[u8]) -> Result<(), StateError> {
        Ok(self.db.merge_cf_opt(self.cf(s), key, framed, &self.write)?)
    }

    fn scan_prefix(&mut self, s: StateId, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StateError> {
        for item in self.db.iterator_cf(self.cf(s), IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn delete_prefix(&mut self, s: StateId, prefix: &[u8]) -> Result<(), StateError> {
        let mut doomed = Vec::new();
        self.scan_prefix(s, prefix, &mut |k, _| {
            doomed.push(k.to_vec());
            true
        })?;
        let cf = self.cf(s);
        let mut batch = rocksdb::WriteBatch::default();
        for k in doomed {
            batch.delete_cf(cf, k);
        }
        Ok(self.db.write_opt(batch, &self.write)?)
    }

    fn write_batch(
        &mut self,
        s: StateId,
        ops: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>,
    ) -> Result<(), StateError> {
        let cf = self.cf(s);
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in ops {
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        Ok(self.db.write_opt(batch, &self.write)?)
    }

    /// A large sorted run (the write-back cache's dirty entries at a checkpoint) is
    /// written as an SST and ingested, instead of going through the memtable and a flush:
    /// the checkpoint's synchronous part is dominated by this write.
    fn write_sorted(&mut self, s: StateId, ops: &[(&[u8], Option<&[u8]>)]) -> Result<(), StateError> {
        if ops.len() < INGEST_MIN_ENTRIES {
            return self.write_batch(s, &mut ops.iter().copied());
        }
        let file = formats::layout::ingest_scratch_file(&self.path);
        let mut w = rocksdb::SstFileWriter::create(&self.sst);
        w.open(&file)?;
        for (k, v) in ops {
            match v {
                Some(v) => w.put(k, v)?,
                None => w.delete(k)?,
            }
        }
        w.finish()?;
        let mut o = rocksdb::IngestExternalFileOptions::default();
        o.set_move_files(true);
        let ingested = self.db.ingest_external_file_cf_opts(self.cf(s), &o, vec![&file]);
        if file.exists() {
            let _ = std::fs::remove_file(&file);
        }
        Ok(ingested?)
    }

    fn native_checkpoint(&mut self, dir: &Path) -> Result<Option<u64>, StateError> {
        // The WAL is off: everything must be in SSTs before the checkpoint links them.
        let cfs: Vec<&ColumnFamily> = self.names.iter().filter_map(|n| self.db.cf_handle(n)).collect();
        let mut flush = rocksdb::FlushOptions::default();
        flush.set_wait(true);
        let started = std::time::Instant::now();
        self.db.flush_cfs_opt(&cfs, &flush)?;
        let flushed = started.elapsed();
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        tracing::debug!(
            flush_ms = flushed.as_millis() as u64,
            link_ms = (started.elapsed() - flushed).as_millis() as u64,
            "rocksdb checkpoint taken"
        );
        Ok(Some(self.instance))
    }

    fn stored_entries(&self) -> u64 {
        let estimate = |n: &String| {
            let cf = self.db.cf_handle(n)?;
            self.db.property_int_value_cf(cf, "rocksdb.estimate-num-keys").ok().flatten()
        };
        self.names.iter().filter_map(estimate).sum()
    }

    fn compact(&mut self) -> Result<(), StateError> {
        let all: Vec<StateId> = (0..self.names.len() as u32).map(StateId).collect();
        self.compact_states(&all)
    }

    fn compact_states(&mut self, states: &[StateId]) -> Result<(), StateError> {
        let cfs: Vec<&ColumnFamily> = self.names.iter().filter_map(|n| self.db.cf_handle(n)).collect();
        let mut flush = rocksdb::FlushOptions::default();
        flush.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &flush)?;
        for &s in states {
            let passes = match self.descriptors.get(s.0 as usize) {
                Some(d) if d.kind == StateKind::List => 2,
                _ => 1,
            };
            for _ in 0..passes {
                self.db.compact_range_cf(self.cf(s), None::<&[u8]>, None::<&[u8]>);
            }
        }
        Ok(())
    }

    fn descriptors(&self) -> &[StateDescriptor] {
        &self.descriptors
    }
}

/// A number no other instance opened by this process, or likely any other, shares.
fn new_instance_id() -> u64 {
    static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    xxhash_rust::xxh3::xxh3_64(
        &[nanos.to_le_bytes(), u64::from(std::process::id()).to_le_bytes(), n.to_le_bytes()].concat(),
    )
}
