//! Keyed state: typed handles over a byte-level backend (heap or RocksDB).
pub mod backend;
pub mod cache;
pub mod cleanup;
pub mod codec;
pub mod context;
pub mod expired;
pub mod handles;
pub mod heap;
pub mod loader;
#[cfg(test)]
mod native_test;
pub mod operator;
pub mod rocks;
pub mod snapshot;
pub mod sweeper;
mod ttl_filter;
