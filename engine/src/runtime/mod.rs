//! The runtime: N shards, each a glommio executor pinned to a core, each running the whole
//! job graph on its share of the input and owning a contiguous range of key groups.
//!
//! Per shard: a producer task reads the shard's split of the source, runs the chained
//! operators before `key_by`, and routes each record to the shard owning its key group:
//! records for itself go straight to the keyed operator, others are batched per peer
//! and sent over a bounded channel of a full mesh (backpressure: a full channel makes
//! the producer wait). One receiver task per peer feeds that peer's batches to the same
//! operator. Because receivers never wait on anything but their channel, a producer
//! blocked on a full channel cannot deadlock the mesh.
//!
//! Files, one concept each: `config` (what a run is given), `setup` (checks before
//! anything starts), `driver` (attempts and restarts), `mesh` (the channels), `shard`
//! and `producer` (a shard's tasks), `operator` (the keyed function and its state),
//! `align` (barrier alignment), `checkpoint/` (barriers, acks, coordinator, writer,
//! restore), `metrics` and `restart`.
pub mod align;
pub mod checkpoint;
pub mod config;
pub mod control;
pub mod driver;
pub mod mesh;
pub mod metrics;
pub mod operator;
pub mod producer;
pub mod restart;
pub mod setup;
pub mod shard;
