//! Barrier alignment of one shard (Chandy-Lamport as in Flink): an input that delivered
//! barrier n stops until the shard has snapshotted n; the last of the shard's inputs to
//! arrive takes the snapshot (the synchronous part) and acks it to the coordinator.
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Event;
use formats::keygroup::KeyGroupRange;

use crate::function::KeyedProcessFunction;
use crate::runtime::checkpoint::ack::{self, Ack};
use crate::runtime::checkpoint::barriers::Barriers;
use crate::runtime::checkpoint::AckSender;
use crate::runtime::operator::Operator;
use crate::source::Split;

/// Where a shard takes native (RocksDB) snapshots: in the job's work directory, for
/// every checkpoint when checkpoints are incremental, and always for savepoints (the
/// coordinator writes them in the form asked for).
pub struct NativeSnapshots {
    pub work: Option<PathBuf>,
    pub incremental: bool,
    pub barriers: Arc<Barriers>,
}

impl NativeSnapshots {
    fn dir_for(&self, id: u64) -> Option<&std::path::Path> {
        self.work.as_deref().filter(|_| self.incremental || self.barriers.is_savepoint(id))
    }
}

/// Barrier alignment of one shard: which checkpoint is being aligned, how many of the
/// shard's inputs (its own producer and one channel per peer) have delivered its
/// barrier, and the last checkpoint snapshotted.
pub struct Aligner {
    current: u64,
    arrived: usize,
    splits: Option<Vec<Split>>,
    done: u64,
    shard: u16,
    inputs: usize,
    range: KeyGroupRange,
    acks: Option<AckSender>,
    /// The job failed: a barrier may never come, stop waiting.
    failed: Arc<AtomicBool>,
    /// At-least-once: inputs are not held back after their barrier.
    align: bool,
    /// Where and when RocksDB checkpoints are taken.
    native: NativeSnapshots,
    /// Notified when a snapshot is taken: wakes the inputs held back by alignment.
    snapshotted: Event,
    /// Why the shard failed at a barrier (its sink could not pre-commit), for the shard
    /// to report when it ends.
    pub error: Option<crate::error::Error>,
}

impl Aligner {
    /// The aligner of shard `shard` (owning `range`) with `inputs` inputs, after
    /// checkpoint `done` (a restored checkpoint's id, else 0). `align` false is
    /// at-least-once: inputs are not held back. `native` says where RocksDB checkpoints
    /// are taken.
    #[expect(clippy::too_many_arguments, reason = "one constructor, called once per shard")]
    pub fn new(
        shard: u16,
        range: KeyGroupRange,
        inputs: usize,
        done: u64,
        align: bool,
        acks: Option<AckSender>,
        failed: Arc<AtomicBool>,
        native: NativeSnapshots,
    ) -> Self {
        Aligner {
            current: 0,
            arrived: 0,
            splits: None,
            done,
            shard,
            inputs,
            range,
            acks,
            failed,
            align,
            native,
            snapshotted: Event::new(),
            error: None,
        }
    }

    /// The last checkpoint this shard snapshotted.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// One input delivered barrier `id` (the producer passes the source position it
    /// recorded). The last arrival snapshots the shard's state and acks.
    pub fn arrive<P: KeyedProcessFunction, O>(
        align: &RefCell<Aligner>,
        op: &RefCell<Operator<P, O>>,
        id: u64,
        splits: Option<Option<Vec<Split>>>,
    ) {
        let mut a = align.borrow_mut();
        if id > a.current {
            a.current = id;
            a.arrived = 0;
        }
        a.arrived += 1;
        if let Some(s) = splits {
            a.splits = s;
        }
        if a.arrived < a.inputs {
            return;
        }
        let started = Instant::now();
        let mut op = op.borrow_mut();
        let op = &mut *op;
        let expiry = op.sweeper.snapshot_expiry(op.clock.now_ms());
        let purged = if a.native.barriers.is_final(id) {
            op.sweeper.before_final_snapshot(&mut *op.backend).map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        let snapshot = purged.and_then(|()| {
            ack::take_snapshot(&mut *op.backend, a.range, a.native.dir_for(id), a.shard, id, Some(&expiry))
                .map_err(|e| e.to_string())
        });
        // The function's operator states, then the sink's pre-commit: everything the
        // shard wrote before this barrier is in the transaction the checkpoint keeps.
        // Commit what earlier checkpoints' completions released before pre-committing
        // this one: the committer task may not have run yet, and a target that locks
        // (XA) must not see the next transaction wait on the previous one.
        let completed = a.native.barriers.completion().completed;
        let operator_state = match op.sink.checkpoint_complete(completed).and_then(|()| op.snapshot_operator_state(id))
        {
            Ok(s) => s,
            Err(e) => {
                // A sink that cannot pre-commit has lost its transaction: the job fails
                // and restores from the last checkpoint.
                tracing::error!(shard = a.shard, checkpoint = id, error = %e, "operator state or sink pre-commit failed");
                a.failed.store(true, Ordering::Relaxed);
                a.error.get_or_insert(e);
                Vec::new()
            }
        };
        if let Some(tx) = &a.acks {
            // The coordinator is gone only when it failed, and then the job fails.
            let sent = tx.send(Ack {
                shard: a.shard,
                id,
                range: a.range,
                states: op.backend.descriptors().to_vec(),
                snapshot,
                splits: a.splits.clone(),
                operator_state,
                sync: started.elapsed(),
            });
            if sent.is_err() {
                tracing::debug!(shard = a.shard, checkpoint = id, "checkpoint coordinator gone; ack dropped");
            }
        }
        a.splits = None;
        a.done = id;
        a.snapshotted.notify(usize::MAX);
    }

    /// Waits until this shard has snapshotted checkpoint `id` (at once when not
    /// aligning). Woken by the snapshot; the job's failure, raised on another thread,
    /// is seen within [`FAILURE_CHECK`].
    pub async fn aligned(align: &RefCell<Aligner>, id: u64) {
        loop {
            let listener = {
                let a = align.borrow();
                if !a.align || a.done >= id || a.failed.load(Ordering::Relaxed) {
                    return;
                }
                a.snapshotted.listen()
            };
            futures_lite::future::or(listener, glommio::timer::sleep(FAILURE_CHECK)).await;
        }
    }
}

/// How long an input held back by alignment goes without looking at the job's failure
/// flag (a failed peer may never send its barrier). Snapshots wake it at once.
pub const FAILURE_CHECK: Duration = Duration::from_millis(100);
