//! `formats`: the only crate that knows sluice's byte layouts and path naming.
//!
//! Everything that is written to disk or must be decoded without the user's code lives
//! here: how a key maps to a key group and a key group to a shard ([`keygroup`]), how a
//! state key is laid out ([`statekey`]) and a timer ([`timerkey`]), how values, list elements and TTL headers are
//! encoded ([`value`], [`ttl`]), where files go ([`layout`]), and the one helper that
//! publishes a file so that it survives a crash ([`publish`]). Every fixed-width field
//! and length-prefixed part is read through one [`cursor::Cursor`], which returns a
//! typed truncation error instead of slicing past the end. No glommio, no RocksDB:
//! this crate is fuzzable and property-testable on its own.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod canary;
pub mod checkpoint;
pub mod cursor;
pub mod envelope;
pub mod error;
pub mod fs;
pub mod gc;
pub mod id;
pub mod jobfile;
pub mod keygroup;
pub mod layout;
pub mod manifest;
pub mod operator_state;
pub mod partfile;
pub mod publish;
pub mod savepoint;
#[cfg(any(test, feature = "sim"))]
pub mod simfs;
pub mod snapshot;
pub mod statekey;
pub mod timerkey;
pub mod ttl;
pub mod value;
pub mod value_json;
pub mod varint;

pub use error::FormatError;
pub use id::CheckpointId;
pub use keygroup::{KeyGroup, KeyGroupRange, ShardId};
