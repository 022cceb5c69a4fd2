//! Aligned-barrier checkpoints (Chandy-Lamport as in Flink). A RocksDB shard takes a
//! RocksDB checkpoint (hard links) and the coordinator copies only SST files no
//! published checkpoint holds (`incremental`); a heap shard copies its entries, which the
//! coordinator writes as a full snapshot file (FORMAT.md §11). The coordinator publishes
//! with `formats::checkpoint`.
//!
//! 1. The coordinator thread raises `requested` to n every interval (one checkpoint at
//!    a time, never after every source has ended and the job is closing).
//! 2. Each shard's producer, between batches, sees n: it ships its outboxes, records its
//!    source position, sends barrier n on every channel, arrives at its own shard's
//!    aligner, and waits until that shard has snapshotted n.
//! 3. A receiver that reads barrier n arrives and stops reading its channel until the
//!    shard has snapshotted n (alignment: nothing after the barrier is processed first).
//! 4. When all N inputs of a shard have arrived, the shard snapshots its state (the
//!    synchronous part: a RocksDB checkpoint, or a copy of the heap's entries) and sends
//!    an ack (the snapshot, range, source splits) to the coordinator.
//! 5. With all N acks the coordinator publishes checkpoint n off the processing path,
//!    then garbage-collects all but the `retain` newest.
pub mod ack;
pub mod barriers;
pub mod config;
pub mod coordinator;
pub mod incremental;
pub mod publish;
pub mod restore;
pub mod savepoint;
#[cfg(test)]
mod savepoint_tests;

/// How shards send acks to the coordinator (bounded: one per checkpoint in flight).
pub type AckSender = crossbeam_channel::Sender<ack::Ack>;
