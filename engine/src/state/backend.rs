//! The byte-level interface every state backend implements. One backend instance serves
//! one shard and is used from that shard's thread only. Keys are full state keys
//! (`formats::statekey`), values are stored bytes (TTL header and list framing included).
use formats::value::StateDescriptor;

use crate::error::StateError;

/// Index of a state in the shard's registry (the order states were registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateId(pub u32);

/// Callback for scans: return `false` to stop.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> bool + 'a;

pub trait Backend {
    /// Copies the stored value of `key` into `out` (cleared first); false if absent.
    fn get(&mut self, state: StateId, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StateError>;
    fn put(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    fn delete(&mut self, state: StateId, key: &[u8]) -> Result<(), StateError>;
    /// Appends already framed list elements to the value of `key`.
    fn append(&mut self, state: StateId, key: &[u8], framed: &[u8]) -> Result<(), StateError>;
    /// Visits every entry of `state` whose key starts with `prefix`. Order is by key for
    /// map states; unspecified otherwise.
    fn scan_prefix(&mut self, state: StateId, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StateError>;
    fn delete_prefix(&mut self, state: StateId, prefix: &[u8]) -> Result<(), StateError>;
    /// Applies puts (`Some`) and deletes (`None`) of one state together.
    fn write_batch(
        &mut self,
        state: StateId,
        ops: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>,
    ) -> Result<(), StateError> {
        for (k, v) in ops {
            match v {
                Some(v) => self.put(state, k, v)?,
                None => self.delete(state, k)?,
            }
        }
        Ok(())
    }
    /// Like `write_batch`, for puts and deletes whose keys are strictly increasing (a
    /// backend may write them as one sorted file).
    fn write_sorted(&mut self, state: StateId, ops: &[(&[u8], Option<&[u8]>)]) -> Result<(), StateError> {
        self.write_batch(state, &mut ops.iter().copied())
    }
    /// Makes every buffered write visible to the backend's own storage.
    fn flush(&mut self) -> Result<(), StateError> {
        Ok(())
    }
    /// Makes every buffered write durable in the backend's storage, then takes a native
    /// checkpoint of it into `dir` (which must not exist). `Ok(None)` when the backend has
    /// none (the heap: a checkpoint copies its entries). Otherwise the instance's identity:
    /// within one instance a file name always names the same content.
    fn native_checkpoint(&mut self, _dir: &std::path::Path) -> Result<Option<u64>, StateError> {
        Ok(None)
    }
    /// Incremental TTL cleanup: checks at most `entries_max` entries of `state`, resuming
    /// where the previous call stopped and wrapping around, and removes what has expired
    /// at `now_ms` (a list keeps its live elements). Returns how many entries it removed
    /// (a trimmed list counts once per expired element). Backends that clean up another
    /// way (RocksDB: the compaction filter) check nothing.
    fn remove_expired(&mut self, _state: StateId, _now_ms: u64, _entries_max: usize) -> Result<u64, StateError> {
        Ok(0)
    }
    /// Entries stored, over every state, expired or not (RocksDB: its estimate, which
    /// counts what the memtables and files hold). Sampled for `sluice status`.
    fn stored_entries(&self) -> u64 {
        0
    }
    /// Rewrites the whole store now (RocksDB: flush, then a manual compaction of every
    /// column family, which runs the TTL compaction filter). Nothing for the heap.
    fn compact(&mut self) -> Result<(), StateError> {
        Ok(())
    }
    /// Rewrites what `states` store now, so their TTL cleanup leaves nothing expired on
    /// disk (RocksDB: flush, then compactions of their column families through the TTL
    /// filter; lists twice, since a filter sees a list's merged value only once a
    /// compaction has merged it). Nothing for the heap, whose full snapshots filter.
    fn compact_states(&mut self, _states: &[StateId]) -> Result<(), StateError> {
        Ok(())
    }
    fn descriptors(&self) -> &[StateDescriptor];
}

/// Which backend a job's keyed state lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Rocksdb,
    Heap,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rocksdb" => Ok(BackendKind::Rocksdb),
            "heap" => Ok(BackendKind::Heap),
            other => Err(format!("unknown state backend {other:?} (expected rocksdb or heap)")),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Rocksdb => "rocksdb",
            BackendKind::Heap => "heap",
        })
    }
}
