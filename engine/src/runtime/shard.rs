//! One shard: a glommio executor pinned to a core, running the whole job graph on its
//! share of the input and owning a contiguous range of key groups.
//!
//! A producer task reads the shard's split of the source (`producer`); one receiver task
//! per peer feeds that peer's batches to the shard's keyed operator. Because receivers
//! never wait on anything but their channel, a producer blocked on a full channel cannot
//! deadlock the mesh.
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use formats::keygroup::{self, KeyGroupRange, ShardId};
use formats::layout;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::graph::Program;
use crate::runtime::align::{Aligner, NativeSnapshots, FAILURE_CHECK};
use crate::runtime::checkpoint::barriers::{Barriers, FinalOutcome};
use crate::runtime::checkpoint::config::CheckpointMode;
use crate::runtime::checkpoint::AckSender;
use crate::runtime::config::RunConfig;
use crate::runtime::mesh::{Ends, Msg};
use crate::runtime::metrics::Metrics;
use crate::runtime::operator::{Operator, OperatorTime};
use crate::state::backend::{Backend, BackendKind, StateId};
use crate::state::cache::CachedBackend;
use crate::state::cleanup::IDLE_TICK;
use crate::state::codec::Key;
use crate::state::context::StateRegistry;
use crate::state::expired::ExpiredCounts;
use crate::state::heap::HeapBackend;
use crate::state::operator::OperatorStates;
use crate::state::rocks::RocksBackend;
use crate::state::sweeper::Sweeper;

/// A connected sender to each peer (None for the shard itself).
pub type Senders<K, T> = [Option<ConnectedSender<Msg<K, T>>>];

pub struct Shard<S, T, K, P: KeyedProcessFunction, O> {
    pub id: ShardId,
    pub program: Arc<Program<S, T, K, P, O>>,
    pub cfg: RunConfig,
    pub metrics: Arc<Metrics>,
    /// Raised by whichever part of the job fails first; everyone stops.
    pub failed: Arc<AtomicBool>,
    /// The job's work directory (RocksDB instances, their checkpoints, restore scratch).
    pub work: Option<PathBuf>,
    pub barriers: Arc<Barriers>,
    pub acks: Option<AckSender>,
}

impl<S, T, K, P, O> Shard<S, T, K, P, O>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    pub fn range(&self) -> KeyGroupRange {
        keygroup::range_for_shard(self.id, self.cfg.shards, self.cfg.max_key_groups)
    }

    /// Runs the shard to its end; the first error is also logged and fails the job.
    pub async fn run(self, ends: Ends<K, T>) -> Result<(), Error> {
        // Connect every channel end concurrently before anything that can fail: a peer
        // waits for its counterpart to connect, and a closed end is how failure spreads.
        let tx: Vec<_> = ends.senders.into_iter().map(|s| s.map(|s| glommio::spawn_local(s.connect()))).collect();
        let rx: Vec<_> = ends.receivers.into_iter().map(|r| glommio::spawn_local(r.connect())).collect();
        let mut senders: Vec<Option<ConnectedSender<Msg<K, T>>>> = Vec::with_capacity(tx.len());
        for t in tx {
            senders.push(match t {
                Some(t) => Some(t.await),
                None => None,
            });
        }
        let mut receivers: Vec<ConnectedReceiver<Msg<K, T>>> = Vec::with_capacity(rx.len());
        for r in rx {
            receivers.push(r.await);
        }

        let result = self.run_connected(senders, receivers).await;
        if let Err(e) = &result {
            tracing::error!(shard = self.id.0, error = %e, "shard failed");
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Opens the shard's backend, with its restored state: a RocksDB shard restored onto
    /// the same shard count reopens the old instance's files; every other restore loads
    /// the entries of the key groups it owns.
    fn open_backend(&self, registry: StateRegistry) -> Result<(Box<dyn Backend>, Sweeper), Error> {
        let (descriptors, cleanups) = registry.into_parts();
        let counts = ExpiredCounts::new(descriptors.len());
        let ttl_states = descriptors
            .iter()
            .enumerate()
            .filter(|(_, d)| d.ttl.is_some())
            .map(|(i, d)| (StateId(i as u32), d.name.clone()))
            .collect();
        self.metrics.register_expired(usize::from(self.id.0), ttl_states, counts.clone());
        let sweeper = Sweeper::new(self.cfg.backend, &cleanups, counts.clone());
        let started = Instant::now();
        let restore = self.cfg.restore.as_deref();
        let (mut backend, reopened): (Box<dyn Backend>, bool) = match (&self.cfg.backend, &self.work) {
            (BackendKind::Rocksdb, Some(work)) => {
                let path = layout::shard_instance_dir(work, self.id);
                let reopened = match restore {
                    Some(r) => r.reopen(self.id, self.cfg.shards, self.range(), &descriptors, &path)?,
                    None => false,
                };
                let rocks = RocksBackend::open_with_cleanup(
                    &path,
                    descriptors,
                    &cleanups,
                    counts,
                    &self.cfg.rocks,
                    self.cfg.clock.clone(),
                )?;
                (Box::new(CachedBackend::new(rocks, self.cfg.rocks.cache_entries_max)), reopened)
            }
            _ => (Box::new(HeapBackend::new(descriptors)), false),
        };
        if let Some(r) = restore {
            let ms = |t: Instant| t.elapsed().as_millis() as u64;
            if reopened {
                tracing::info!(shard = self.id.0, ms = ms(started), "state restored (instance reopened)");
            } else {
                let entries = r.restore_into(&mut *backend, self.range(), self.work.as_deref(), self.id)?;
                tracing::info!(shard = self.id.0, entries, ms = ms(started), "state restored");
            }
        }
        Ok((backend, sweeper))
    }

    fn open_operator(&self) -> Result<Operator<P, O>, Error> {
        let mut registry = StateRegistry::new();
        let func = (self.program.factory)(&mut registry)?;
        let time = OperatorTime {
            range: self.range(),
            max_key_groups: self.cfg.max_key_groups,
            inputs: self.cfg.shards as usize,
            timers: registry.timer_state(),
        };
        let (backend, sweeper) = self.open_backend(registry)?;
        let sink = self.program.sink.open(self.id, self.cfg.shards)?;
        let mut op = Operator::new(
            self.id,
            func,
            backend,
            sink,
            self.program.post.clone(),
            self.cfg.clock.clone(),
            self.metrics.clone(),
            sweeper,
            time,
        );
        op.open_timers()?;
        let restored = match self.cfg.restore.as_deref() {
            Some(r) => r.operator_state_for(self.id.0, self.cfg.shards)?,
            None => Vec::new(),
        };
        op.func.initialize_state(&OperatorStates::from_states(restored))?;
        Ok(op)
    }

    fn aligner(&self) -> Aligner {
        let incremental = self.cfg.checkpoint.as_ref().is_some_and(|c| c.incremental);
        Aligner::new(
            self.id.0,
            self.range(),
            self.cfg.shards as usize,
            self.cfg.restore.as_ref().map_or(0, |r| r.manifest.checkpoint.0),
            self.cfg.checkpoint.as_ref().is_none_or(|c| c.mode == CheckpointMode::ExactlyOnce),
            self.acks.clone(),
            self.failed.clone(),
            NativeSnapshots { work: self.work.clone(), incremental, barriers: self.barriers.clone() },
        )
    }

    async fn run_connected(
        &self,
        senders: Vec<Option<ConnectedSender<Msg<K, T>>>>,
        receivers: Vec<ConnectedReceiver<Msg<K, T>>>,
    ) -> Result<(), Error> {
        let op = Rc::new(RefCell::new(self.open_operator()?));
        let align = Rc::new(RefCell::new(self.aligner()));
        let me = self.id.0 as usize;
        let tasks: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let (op, align) = (op.clone(), align.clone());
                // Receivers are in the order of the peers they come from, skipping us.
                let from = if k < me { k } else { k + 1 };
                glommio::spawn_local(async move {
                    while let Some(msg) = r.recv().await {
                        match msg {
                            Msg::Batch(mut batch) => op.borrow_mut().process_batch(&mut batch)?,
                            Msg::Barrier(id) => {
                                Aligner::arrive(&align, &op, id, None);
                                Aligner::aligned(&align, id).await;
                            }
                            Msg::Watermark(w) => op.borrow_mut().on_watermark(from, w)?,
                            Msg::Idle => op.borrow_mut().on_idle(from)?,
                        }
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();

        // Samples the state's size, and runs TTL cleanup while no input comes; dropping
        // the task cancels it.
        let ticker = {
            let (op, failed, shard) = (op.clone(), self.failed.clone(), self.id.0);
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(IDLE_TICK).await;
                    if let Err(e) = op.borrow_mut().tick() {
                        tracing::error!(shard, error = %e, "TTL cleanup failed");
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            })
        };
        let clock_timer = glommio::spawn_local(processing_timers(op.clone(), self.failed.clone(), self.id.0));
        let commit_error = Rc::new(RefCell::new(None));
        let committer = glommio::spawn_local(commit_completed(
            op.clone(),
            self.barriers.clone(),
            self.failed.clone(),
            commit_error.clone(),
        ));
        let produced = self.produce(&senders, &op, &align).await;
        // Closing our senders tells every peer we are done sending.
        drop(senders);
        let mut first_err = produced.err();
        if first_err.is_some() {
            self.failed.store(true, Ordering::Relaxed);
        }
        for t in tasks {
            if let Err(e) = t.await {
                self.failed.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
        }
        drop(ticker);
        drop(clock_timer);
        if first_err.is_none() && !self.failed.load(Ordering::Relaxed) {
            // The final checkpoint's transaction commits once it is published; only then
            // may the outputs after it be committed.
            if let Err(e) = self.final_committed(&op).await {
                self.failed.store(true, Ordering::Relaxed);
                first_err = Some(e);
            }
        }
        drop(committer);
        for e in [commit_error.borrow_mut().take(), align.borrow_mut().error.take()].into_iter().flatten() {
            first_err.get_or_insert(e);
        }
        let mut op = op.borrow_mut();
        let ended = match first_err {
            None if !self.failed.load(Ordering::Relaxed) => op.end_of_input().and_then(|()| op.sink.commit_at_end()),
            _ => op.sink.abort(),
        };
        let closed = ended.and_then(|()| op.sink.close());
        match first_err {
            Some(e) => Err(e),
            None => closed,
        }
    }

    /// With checkpoints, waits until the final checkpoint is published and commits what
    /// the shard's sink pre-committed for it; fails when it was declined (the restart
    /// then redoes the end from the last checkpoint). At once without checkpoints.
    async fn final_committed(&self, op: &RefCell<Operator<P, O>>) -> Result<(), Error> {
        if self.cfg.checkpoint.is_none() {
            return Ok(());
        }
        match self.barriers.final_outcome(&self.failed, FAILURE_CHECK).await {
            FinalOutcome::Published(id) => op.borrow_mut().sink.checkpoint_complete(id),
            FinalOutcome::Declined(c) => Err(Error::Executor(format!(
                "shard {}: the final checkpoint {} was declined; what the sink wrote after checkpoint {} is not \
                 committed (a restart redoes it)",
                self.id.0, c.final_id, c.completed
            ))),
            FinalOutcome::JobFailed => {
                Err(Error::Executor("the job failed before its final checkpoint completed".into()))
            }
        }
    }
}

/// Commits the shard sink's pending transactions as checkpoints are published (the
/// coordinator's completion notice). A commit that fails fails the job, its error left
/// in `error` for the shard to report. Dropping the task cancels it.
async fn commit_completed<P: KeyedProcessFunction, O>(
    op: Rc<RefCell<Operator<P, O>>>,
    barriers: Arc<Barriers>,
    failed: Arc<AtomicBool>,
    error: Rc<RefCell<Option<Error>>>,
) {
    let mut seen = 0;
    loop {
        let listener = barriers.listen_completion();
        let completed = barriers.completion().completed;
        if completed > seen {
            seen = completed;
            if let Err(e) = op.borrow_mut().sink.checkpoint_complete(completed) {
                tracing::error!(checkpoint = completed, error = %e, "the sink cannot commit");
                failed.store(true, Ordering::Relaxed);
                *error.borrow_mut() = Some(e);
                return;
            }
            continue;
        }
        listener.await;
    }
}

/// The shard's one clock timer for processing-time timers (never a task per timer):
/// sleeps until the earliest one is due, or until an earlier one is registered, then
/// fires what is due. The shard's 100 ms tick fires them too, for clocks that are not
/// the system's. Dropping the task cancels it.
async fn processing_timers<P: KeyedProcessFunction, O>(
    op: Rc<RefCell<Operator<P, O>>>,
    failed: Arc<AtomicBool>,
    shard: u16,
) {
    loop {
        let (next, changed, now) = {
            let o = op.borrow();
            (o.next_processing_timer(), o.processing_changed.listen(), o.clock.now_ms())
        };
        match next {
            None => changed.await,
            Some(t) => {
                let wait = u64::try_from(t).unwrap_or(0).saturating_sub(now);
                if wait > 0 {
                    futures_lite::future::or(changed, glommio::timer::sleep(std::time::Duration::from_millis(wait)))
                        .await;
                    continue;
                }
                if let Err(e) = op.borrow_mut().fire_processing_time() {
                    tracing::error!(shard, error = %e, "processing-time timers failed");
                    failed.store(true, Ordering::Relaxed);
                    return;
                }
                glommio::yield_if_needed().await;
            }
        }
    }
}
