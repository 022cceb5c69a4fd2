//! The two-phase-commit protocol of exactly-once sinks (Flink's
//! `TwoPhaseCommitSinkFunction`). Each shard writes into an open transaction; on a
//! checkpoint's barrier it pre-commits it (durable in the target, invisible to readers)
//! and begins the next; once the checkpoint is published the coordinator notifies every
//! shard, which commits every pending transaction up to that checkpoint. The pending
//! transactions travel in the checkpoint (operator list state [`PENDING_STATE`]): on
//! restore, the factory's [`Transactional::recover`] commits them (commits are
//! idempotent) and aborts whatever earlier runs of the job left open, on any shard count.
//!
//! A job without checkpoints commits once, when it ends successfully. A job that fails
//! aborts its open transaction; its pre-committed ones wait for the next run's recovery.
use formats::keygroup::ShardId;
use serde::{Deserialize, Serialize};

use super::{Sink, SinkFactory};
use crate::error::Error;

/// The operator list state that holds a sink's pre-committed, not yet committed
/// transactions.
pub const PENDING_STATE: &str = "_sink.pending";

/// A pre-committed transaction: what the sink needs to commit it later, in another
/// process if need be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The checkpoint whose barrier pre-committed it.
    pub checkpoint: u64,
    /// The shard that wrote it (of the run that wrote it).
    pub shard: u16,
    /// The sink's own handle (a transaction id, an XA xid, a file list), opaque here.
    pub handle: Vec<u8>,
}

impl Pending {
    /// As an item of operator state [`PENDING_STATE`] (FORMAT.md §9.7).
    pub fn encode(&self) -> Vec<u8> {
        formats::operator_state::encode_pending(self.checkpoint, self.shard, &self.handle)
    }

    pub fn decode(bytes: &[u8]) -> Result<Pending, Error> {
        let (checkpoint, shard, handle) = formats::operator_state::decode_pending(bytes).ok_or_else(|| {
            Error::Config(format!("a pending transaction in the checkpoint does not decode ({} bytes)", bytes.len()))
        })?;
        Ok(Pending { checkpoint, shard, handle: handle.to_vec() })
    }
}

/// Where a shard's transactional writer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnContext {
    pub shard: ShardId,
    pub shards: u32,
    /// Exactly-once writers keep writes invisible until commit; the others may write
    /// straight through (each pre-commit is then committed at once).
    pub guarantee: Guarantee,
}

/// One shard's transactional writer.
pub trait TransactionalWriter<T> {
    /// Begins a transaction; the barrier of checkpoint `next` will pre-commit it.
    fn begin(&mut self, next: u64) -> Result<(), Error>;
    /// Writes one value into the open transaction.
    fn write(&mut self, value: T) -> Result<(), Error>;
    /// Pre-commits the open transaction on checkpoint `id`'s barrier: what was written is
    /// durable in the target but not visible; returns the handle that commits it.
    fn pre_commit(&mut self, id: u64) -> Result<Vec<u8>, Error>;
    /// Commits a pre-committed transaction. Idempotent: committing one already committed
    /// (a retry after a crash between the commit and its acknowledgment) succeeds and
    /// changes nothing.
    fn commit(&mut self, pending: &Pending) -> Result<(), Error>;
    /// Aborts the open transaction (the job failed, or is cancelled).
    fn abort(&mut self) -> Result<(), Error>;
}

/// Opens the shards' transactional writers, and recovers at start.
pub trait Transactional<T>: Send + Sync + 'static {
    /// Names the target in logs and errors (a directory, a topic, a table).
    fn name(&self) -> String;
    /// Checks the target before any shard starts (reachable, the right schema): a
    /// failure is a setup error naming what and where.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
    /// Once at start, before any shard opens: commits every transaction in `pending`
    /// (what the restored checkpoint holds pre-committed; empty on a fresh start) and
    /// aborts everything earlier runs of this job left open, whatever their shard count.
    fn recover(&self, pending: &[Pending], shards: u32) -> Result<(), Error>;
    fn open(&self, ctx: TxnContext) -> Result<Box<dyn TransactionalWriter<T>>, Error>;
}

/// What a sink's exactly-once settings ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Two-phase commit, tied to checkpoints.
    #[default]
    ExactlyOnce,
    /// Written at once, committed at every checkpoint and at the end: a restore may
    /// write again what came after the checkpoint.
    AtLeastOnce,
    /// Written at once, committed when the target decides.
    None,
}

/// A [`Transactional`] target as a sink factory.
pub struct TwoPhaseCommitSink<T> {
    target: std::sync::Arc<dyn Transactional<T>>,
    guarantee: Guarantee,
}

impl<T: 'static> TwoPhaseCommitSink<T> {
    pub fn new(target: impl Transactional<T>, guarantee: Guarantee) -> Self {
        TwoPhaseCommitSink { target: std::sync::Arc::new(target), guarantee }
    }
}

impl<T: 'static> SinkFactory<T> for TwoPhaseCommitSink<T> {
    fn check(&self) -> Result<(), Error> {
        self.target.check()
    }

    fn recover(&self, restored: &[Vec<u8>], shards: u32) -> Result<(), Error> {
        let pending = restored.iter().map(|b| Pending::decode(b)).collect::<Result<Vec<_>, _>>()?;
        if !pending.is_empty() {
            tracing::info!(sink = %self.target.name(), transactions = pending.len(), "committing the restored checkpoint's pending transactions");
        }
        self.target.recover(&pending, shards)
    }

    fn open(&self, shard: ShardId, shards: u32) -> Result<Box<dyn Sink<T>>, Error> {
        let mut writer = self.target.open(TxnContext { shard, shards, guarantee: self.guarantee })?;
        writer.begin(0)?;
        let exactly_once = self.guarantee == Guarantee::ExactlyOnce;
        Ok(Box::new(TwoPhaseWriter { writer, shard, pending: Vec::new(), open: true, exactly_once }))
    }
}

/// One shard's end of a [`TwoPhaseCommitSink`]: the open transaction and the
/// pre-committed ones waiting for their checkpoint to complete.
struct TwoPhaseWriter<T> {
    writer: Box<dyn TransactionalWriter<T>>,
    shard: ShardId,
    pending: Vec<Pending>,
    /// A transaction is open (none after close or abort).
    open: bool,
    /// Commits wait for the checkpoint (else each pre-commit is committed at once).
    exactly_once: bool,
}

impl<T> Sink<T> for TwoPhaseWriter<T> {
    fn write(&mut self, value: T) -> Result<(), Error> {
        self.writer.write(value)
    }

    fn snapshot(&mut self, id: u64) -> Result<Vec<Vec<u8>>, Error> {
        let handle = self.writer.pre_commit(id)?;
        let pending = Pending { checkpoint: id, shard: self.shard.0, handle };
        if self.exactly_once {
            self.pending.push(pending);
        } else {
            self.writer.commit(&pending)?;
        }
        self.writer.begin(id + 1)?;
        Ok(self.pending.iter().map(Pending::encode).collect())
    }

    fn checkpoint_complete(&mut self, id: u64) -> Result<(), Error> {
        while let Some(p) = self.pending.first().filter(|p| p.checkpoint <= id) {
            self.writer.commit(p)?;
            self.pending.remove(0);
        }
        Ok(())
    }

    fn commit_at_end(&mut self) -> Result<(), Error> {
        // Whatever is still pending (none when the final checkpoint committed it) first.
        for p in std::mem::take(&mut self.pending) {
            self.writer.commit(&p)?;
        }
        let handle = self.writer.pre_commit(u64::MAX)?;
        self.open = false;
        self.writer.commit(&Pending { checkpoint: u64::MAX, shard: self.shard.0, handle })
    }

    fn abort(&mut self) -> Result<(), Error> {
        if std::mem::replace(&mut self.open, false) {
            self.writer.abort()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        self.abort()
    }
}
