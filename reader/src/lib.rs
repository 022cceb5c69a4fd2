//! `reader`: the one reader of checkpoint contents. It visits the entries of a
//! checkpoint's shards, whatever their format (FORMAT.md §9): snapshot files are decoded
//! block by block; RocksDB shards are rebuilt in a scratch directory outside the
//! checkpoint (which stays untouched), opened read-only and scanned. The engine's
//! restore and statetool both read through it, so neither links what the other needs:
//! no glommio here, only `formats` and RocksDB.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod entries;
mod error;
mod rocks;
mod snapshot;
mod structure;

pub use entries::{for_each, ALL_KEY_GROUPS};
pub use error::ReadError;
pub use rocks::{concat_merge, materialize, open_read_only, scan, LIST_MERGE_OPERATOR};
pub use snapshot::{for_each_in_snapshot, for_each_in_snapshot_bytes, Visit};
pub use structure::check_structure;
