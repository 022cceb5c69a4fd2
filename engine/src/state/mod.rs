//! Keyed state: typed handles over a byte-level backend (heap or RocksDB).
pub mod backend;
pub mod cache;
pub mod codec;
pub mod context;
pub mod handles;
pub mod heap;
pub mod native;
pub mod rocks;
pub mod snapshot;

pub use backend::{Backend, BackendKind, StateId};
pub use cache::CachedBackend;
pub use codec::{Key, StateCodec};
pub use context::{Context, StateRegistry};
pub use handles::{AggregateFunction, AggregatingState, ListState, MapState, ReducingState, ValueState};
pub use heap::HeapBackend;
pub use rocks::{RocksBackend, RocksConfig};
