//! The sorter: every output entry goes into one scratch RocksDB instance (a column family
//! per output state, the WAL off), which sorts them with bounded memory however they
//! arrive (a key-group rehash scatters keys; several old shards feed one new shard).
//! Then each new shard's key-group range is read back state by state in key order,
//! which is the order both snapshot files and SST files are written in.
//!
//! Memory: the memtables of all column families together are capped at
//! [`MEMTABLE_BYTES`] (RocksDB's `db_write_buffer_size`), the block cache at
//! [`CACHE_BYTES`], one pending write batch at [`BATCH_BYTES`]; the rest is on disk in
//! the scratch directory (about the size of the state, LZ4-compressed).
use std::path::Path;

use formats::keygroup::{KeyGroup, KeyGroupRange};
use formats::statekey;
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};

/// All memtables together.
pub const MEMTABLE_BYTES: usize = 128 << 20;
/// The scratch instance's block cache.
pub const CACHE_BYTES: usize = 32 << 20;
/// A write batch is written once it holds this much.
pub const BATCH_BYTES: usize = 4 << 20;

/// Callback of [`Sorter::scan`]: (key group, key, value).
pub type SortedVisit<'a> = dyn FnMut(KeyGroup, &[u8], &[u8]) -> anyhow::Result<()> + 'a;

pub struct Sorter {
    db: DB,
    states: usize,
    batch: WriteBatch,
    write: rocksdb::WriteOptions,
}

fn cf_name(i: usize) -> String {
    format!("s{i}")
}

impl Sorter {
    /// A scratch instance in `dir` (created) for `states` output states.
    pub fn create(dir: &Path, states: usize) -> anyhow::Result<Sorter> {
        let cache = Cache::new_lru_cache(CACHE_BYTES);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_db_write_buffer_size(MEMTABLE_BYTES);
        db_opts.set_max_background_jobs(2);
        let cfs = (0..states).map(|i| {
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            o.set_write_buffer_size(MEMTABLE_BYTES / 2);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_target_file_size_base(64 << 20);
            ColumnFamilyDescriptor::new(cf_name(i), o)
        });
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs)
            .map_err(|e| anyhow::anyhow!("scratch instance {}: {e}", dir.display()))?;
        let mut write = rocksdb::WriteOptions::default();
        write.disable_wal(true);
        Ok(Sorter { db, states, batch: WriteBatch::default(), write })
    }

    /// Adds the entry `key` -> `value` of output state `state`.
    pub fn put(&mut self, state: usize, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let cf = self.db.cf_handle(&cf_name(state)).ok_or_else(|| anyhow::anyhow!("no scratch state {state}"))?;
        self.batch.put_cf(cf, key, value);
        if self.batch.size_in_bytes() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.db.write_opt(batch, &self.write).map_err(|e| anyhow::anyhow!("scratch instance: {e}"))
    }

    /// Writes what is pending; after this, [`Sorter::scan`] sees every entry put.
    pub fn seal(&mut self) -> anyhow::Result<()> {
        self.flush()
    }

    /// Visits the entries of output state `state` whose key group lies in `range`, in key
    /// order: `visit(key_group, key, value)`.
    pub fn scan(&self, state: usize, range: KeyGroupRange, visit: &mut SortedVisit<'_>) -> anyhow::Result<()> {
        anyhow::ensure!(state < self.states, "no scratch state {state}");
        let cf = self.db.cf_handle(&cf_name(state)).ok_or_else(|| anyhow::anyhow!("no scratch state {state}"))?;
        let start = statekey::key_group_prefix(KeyGroup(range.start));
        let mut read = rocksdb::ReadOptions::default();
        read.fill_cache(false);
        read.set_readahead_size(4 << 20);
        for item in self.db.iterator_cf_opt(cf, read, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item.map_err(|e| anyhow::anyhow!("scratch instance: {e}"))?;
            let kg = statekey::decode(&k)?.key_group;
            if kg.0 >= range.end {
                break;
            }
            visit(kg, &k, &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_each_range_in_key_order_whatever_the_arrival_order() {
        // Pins: entries put in any order come back per state, clipped to the range, in
        // key order (what snapshot files and SST writers require).
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Sorter::create(dir.path(), 2).expect("create");
        let mut keys = Vec::new();
        for kg in (0..8u16).rev() {
            for k in (0..5u8).rev() {
                let mut key = Vec::new();
                statekey::encode_prefix(&mut key, KeyGroup(kg), &[k], b"");
                s.put(usize::from(k % 2), &key, &[k]).expect("put");
                keys.push((usize::from(k % 2), kg, key));
            }
        }
        s.seal().expect("seal");
        for state in 0..2 {
            let range = KeyGroupRange { start: 2, end: 6 };
            let mut got = Vec::new();
            s.scan(state, range, &mut |_, k, _| {
                got.push(k.to_vec());
                Ok(())
            })
            .expect("scan");
            let mut want: Vec<Vec<u8>> = keys
                .iter()
                .filter(|(st, kg, _)| *st == state && range.contains(KeyGroup(*kg)))
                .map(|(_, _, k)| k.clone())
                .collect();
            want.sort();
            assert_eq!(got, want, "state {state}");
        }
    }
}
