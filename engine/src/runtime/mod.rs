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
pub mod checkpoint;
pub mod incremental;
pub mod metrics;
pub mod operator;
pub mod restart;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use formats::keygroup::{self, key_group_of, shard_of};
use formats::{layout, ShardId};
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};

use crate::badrecord::BadRecords;
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::job::{Chain, ProcessFactory};
use crate::sink::SinkFactory;
use crate::source::{Source, SourceContext};
use crate::state::{Backend, BackendKind, CachedBackend, HeapBackend, Key, RocksBackend, RocksConfig, StateRegistry};
use checkpoint::{Ack, Barriers, CheckpointConfig, CheckpointMode, JobInfo, Restore};
use metrics::Metrics;
use operator::{Operator, Routed};

/// Everything a job is made of, shared by all shards.
pub struct Program<S, T, K, P: KeyedProcessFunction, O> {
    pub name: String,
    pub source: Arc<dyn Source<S>>,
    pub chain: Chain<S, T>,
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub factory: ProcessFactory<P>,
    pub post: Chain<P::Out, O>,
    pub sink: Arc<dyn SinkFactory<O>>,
}

/// How a job runs. `RunConfig::new` gives the defaults of `sluice run`.
#[derive(Clone)]
pub struct RunConfig {
    pub shards: u32,
    pub backend: BackendKind,
    /// Where RocksDB keeps each shard's working instance (`formats::layout`).
    pub data_dir: PathBuf,
    pub max_key_groups: u32,
    /// Progress is logged at this interval; `None` logs nothing.
    pub report_interval: Option<Duration>,
    /// Raised to stop the job: sources end, in-flight records drain, sinks flush.
    pub stop: Arc<AtomicBool>,
    pub clock: Arc<dyn Clock>,
    pub bad_records: Arc<BadRecords>,
    pub rocks: RocksConfig,
    /// Records per batch on the shuffle.
    pub batch_records: usize,
    /// Batches a channel of the mesh holds before its sender waits.
    pub channel_batches: usize,
    /// Pin shard i to the i-th online CPU (modulo their count).
    pub pin: bool,
    /// Take checkpoints (None: never).
    pub checkpoint: Option<CheckpointConfig>,
    /// Start from this checkpoint's state and source positions.
    pub restore: Option<Arc<Restore>>,
    /// What to do when the job fails while running.
    pub restart: restart::RestartStrategy,
}

pub fn available_cores() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

impl RunConfig {
    pub fn new(shards: u32, backend: BackendKind, data_dir: PathBuf) -> Self {
        RunConfig {
            shards,
            backend,
            data_dir,
            max_key_groups: keygroup::KEY_GROUPS_DEFAULT,
            report_interval: None,
            stop: Arc::new(AtomicBool::new(false)),
            clock: Arc::new(SystemClock),
            bad_records: Arc::new(BadRecords::ignore()),
            rocks: RocksConfig::default(),
            batch_records: 1024,
            channel_batches: 64,
            pin: true,
            checkpoint: None,
            restore: None,
            restart: restart::RestartStrategy::None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub records_in: u64,
    pub records_processed: u64,
    pub records_out: u64,
    pub bad_records: u64,
    pub processed_per_shard: Vec<u64>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn records_per_s(&self) -> f64 {
        self.records_in as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

type Batch<K, T> = Vec<Routed<K, T>>;

/// What travels on the mesh: records, or the barrier of a checkpoint.
pub enum Msg<K, T> {
    Batch(Batch<K, T>),
    Barrier(u64),
}

type Sender<K, T> = SharedSender<Msg<K, T>>;

/// Validates everything a user can get wrong before any thread or file is created.
fn preflight<S: 'static, T, K, P: KeyedProcessFunction, O: 'static>(
    p: &Program<S, T, K, P, O>,
    cfg: &RunConfig,
) -> Result<(), Error> {
    layout::validate_job_name(&p.name).map_err(Error::Config)?;
    keygroup::validate_shards(cfg.shards, cfg.max_key_groups).map_err(|e| Error::Config(e.to_string()))?;
    if cfg.batch_records == 0 || cfg.channel_batches == 0 {
        return Err(Error::Config("batch_records and channel_batches must be at least 1".into()));
    }
    p.source.check()?;
    p.sink.check()
}

/// Checks that the data directory can be created and written, before anything else is
/// created. Only the RocksDB backend writes there.
pub fn check_data_dir(cfg: &RunConfig) -> Result<(), Error> {
    if cfg.backend != BackendKind::Rocksdb {
        return Ok(());
    }
    let existed = cfg.data_dir.exists();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| Error::io(&cfg.data_dir, e))?;
    let probe = cfg.data_dir.join(format!(".sluice-write-probe-{}", std::process::id()));
    let written = std::fs::write(&probe, b"").map_err(|e| Error::io(&cfg.data_dir, e));
    let _ = std::fs::remove_file(&probe);
    if written.is_err() && !existed {
        let _ = std::fs::remove_dir(&cfg.data_dir);
    }
    written
}

/// Creates the job's working directory for RocksDB, replacing a stale one.
fn prepare_work_dir(name: &str, cfg: &RunConfig) -> Result<Option<PathBuf>, Error> {
    if cfg.backend != BackendKind::Rocksdb && !cfg.restore.as_ref().is_some_and(|r| r.needs_scratch()) {
        return Ok(None);
    }
    let work = layout::work_dir(&cfg.data_dir, name);
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    Ok(Some(work))
}

/// Runs the job, restarting it from its latest checkpoint under `cfg.restart` when it
/// fails while running. Setup errors (exit code 2) are never retried.
pub fn run<S, T, K, P, O>(p: Arc<Program<S, T, K, P, O>>, cfg: &RunConfig) -> Result<RunReport, Error>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    let mut cfg = cfg.clone();
    let mut tracker = restart::Tracker::new(cfg.restart.clone());
    loop {
        let err = match run_once(p.clone(), &cfg) {
            Ok(r) => return Ok(r),
            Err(e) if e.is_setup() => return Err(e),
            Err(e) => e,
        };
        let Some(delay) = tracker.failed() else {
            return Err(match tracker.attempts() {
                0 => err,
                n => Error::Executor(format!("gave up after {n} restart(s) ({}): {err}", tracker.describe())),
            });
        };
        if cfg.stop.load(Ordering::Relaxed) {
            return Err(err);
        }
        // Restart from the newest intact checkpoint of this job, else from where this
        // run started (a --from checkpoint, or the beginning).
        if let Some(ck) = &cfg.checkpoint {
            let root = formats::layout::checkpoint_root(&ck.dir, &p.name);
            if let Ok(r) = Restore::load(&root) {
                cfg.restore = Some(Arc::new(r));
            }
        }
        tracing::warn!(
            error = %err,
            attempt = tracker.attempts(),
            delay_ms = delay.as_millis() as u64,
            from = cfg.restore.as_ref().map(|r| r.manifest.checkpoint.0),
            "job failed; restarting"
        );
        let until = Instant::now() + delay;
        while Instant::now() < until && !cfg.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10).min(delay));
        }
    }
}

fn run_once<S, T, K, P, O>(p: Arc<Program<S, T, K, P, O>>, cfg: &RunConfig) -> Result<RunReport, Error>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    preflight(&p, cfg)?;
    check_data_dir(cfg)?;
    let work = prepare_work_dir(&p.name, cfg)?;
    let n = cfg.shards as usize;
    let metrics = Arc::new(Metrics::new(n));
    let started = Instant::now();
    let last = match &cfg.restore {
        Some(r) => {
            let m = &r.manifest;
            if m.job != p.name {
                return Err(Error::Config(format!(
                    "checkpoint {} belongs to job {:?}, not {:?}",
                    m.checkpoint.0, m.job, p.name
                )));
            }
            if m.max_key_groups != cfg.max_key_groups {
                return Err(Error::Config(format!(
                    "checkpoint {} has {} key groups, the job {}",
                    m.checkpoint.0, m.max_key_groups, cfg.max_key_groups
                )));
            }
            tracing::info!(checkpoint = m.checkpoint.0, shards_before = m.shards.len(), shards_now = n, "restoring");
            Some(m.checkpoint)
        }
        None => None,
    };
    let barriers = Arc::new(Barriers::new(n, last.map_or(0, |c| c.0)));
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<Ack>();

    // senders[from][to] and receivers[to][from]; None on the diagonal.
    let mut senders: Vec<Vec<Option<Sender<K, T>>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut receivers: Vec<Vec<SharedReceiver<Msg<K, T>>>> = (0..n).map(|_| Vec::new()).collect();
    for (from, row) in senders.iter_mut().enumerate() {
        for (to, slot) in row.iter_mut().enumerate() {
            if from != to {
                let (s, r) = shared_channel::new_bounded(cfg.channel_batches);
                *slot = Some(s);
                if let Some(rs) = receivers.get_mut(to) {
                    rs.push(r);
                }
            }
        }
    }

    let cpus: Vec<usize> = match glommio::CpuSet::online() {
        Ok(set) => set.into_iter().map(|l| l.cpu).collect(),
        Err(_) => Vec::new(),
    };
    let failed = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(n);
    for (i, (tx, rx)) in senders.into_iter().zip(receivers).enumerate() {
        let placement = match (cfg.pin, cpus.is_empty()) {
            (true, false) => Placement::Fixed(cpus.get(i % cpus.len()).copied().unwrap_or(0)),
            _ => Placement::Unbound,
        };
        let shard = Shard {
            id: ShardId(i as u16),
            program: p.clone(),
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            failed: failed.clone(),
            work: work.clone(),
            barriers: barriers.clone(),
            acks: cfg.checkpoint.as_ref().map(|_| ack_tx.clone()),
        };
        let h = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{i}"))
            .io_memory(1 << 20)
            .spawn(move || async move { shard.run(tx, rx).await })
            .map_err(|e| Error::Executor(format!("cannot start shard {i}: {e}")))?;
        handles.push(h);
    }

    let done = Arc::new(AtomicBool::new(false));
    let reporter = cfg.report_interval.map(|iv| {
        let (m, d) = (metrics.clone(), done.clone());
        std::thread::spawn(move || metrics::report_loop(&m, iv, &|| d.load(Ordering::Relaxed)))
    });

    let coordinator = cfg.checkpoint.clone().map(|ck| {
        let info = JobInfo {
            job: p.name.clone(),
            key: <K as Key>::encoding(),
            max_key_groups: cfg.max_key_groups,
            backend: cfg.backend.to_string(),
            shards: n,
        };
        let (b, d, f) = (barriers.clone(), done.clone(), failed.clone());
        std::thread::spawn(move || {
            checkpoint::coordinate(&ck, &info, &b, &ack_rx, last, &|| d.load(Ordering::Relaxed), &|| {
                f.store(true, Ordering::Relaxed)
            })
        })
    });

    let mut first_err: Option<Error> = None;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::Executor(format!("shard {i} panicked or failed: {e}")));
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    if let Some(c) = coordinator {
        match c.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(Error::Executor("checkpoint coordinator panicked".into()));
            }
        }
    }
    let finish = p.sink.finish().and_then(|()| cfg.bad_records.flush());
    if let (None, Some(ck)) = (&first_err, &cfg.checkpoint) {
        if ck.cleanup == checkpoint::Cleanup::Delete {
            let root = formats::layout::checkpoint_root(&ck.dir, &p.name);
            if let Err(e) = std::fs::remove_dir_all(&root) {
                tracing::warn!(path = %root.display(), error = %e, "cannot delete checkpoints");
            }
        }
    }
    if let Some(w) = &work {
        if let Err(e) = std::fs::remove_dir_all(w) {
            tracing::warn!(path = %w.display(), error = %e, "cannot remove working directory");
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    finish?;
    let t = metrics.totals();
    Ok(RunReport {
        records_in: t.records_in,
        records_processed: t.records_processed,
        records_out: t.records_out,
        bad_records: cfg.bad_records.count(),
        processed_per_shard: metrics.processed_per_shard(),
        elapsed: started.elapsed(),
    })
}

struct Shard<S, T, K, P: KeyedProcessFunction, O> {
    id: ShardId,
    program: Arc<Program<S, T, K, P, O>>,
    cfg: RunConfig,
    metrics: Arc<Metrics>,
    failed: Arc<AtomicBool>,
    work: Option<PathBuf>,
    barriers: Arc<Barriers>,
    acks: Option<std::sync::mpsc::Sender<Ack>>,
}

/// Barrier alignment of one shard: which checkpoint is being aligned, how many of the
/// shard's inputs (its own producer and one channel per peer) have delivered its
/// barrier, and the last checkpoint snapshotted.
struct Aligner {
    current: u64,
    arrived: usize,
    splits: Option<Vec<crate::source::Split>>,
    done: u64,
    shard: u16,
    inputs: usize,
    range: formats::KeyGroupRange,
    acks: Option<std::sync::mpsc::Sender<Ack>>,
    /// The job failed: a barrier may never come, stop waiting.
    failed: Arc<AtomicBool>,
    /// At-least-once: inputs are not held back after their barrier.
    align: bool,
    /// The job's work directory, where RocksDB checkpoints are taken (incremental mode).
    work: Option<PathBuf>,
}

impl Aligner {
    /// One input delivered barrier `id` (the producer passes the source position it
    /// recorded). The last arrival snapshots the shard's state and acks.
    fn arrive<P: KeyedProcessFunction, O>(
        align: &RefCell<Aligner>,
        op: &RefCell<Operator<P, O>>,
        id: u64,
        splits: Option<Option<Vec<crate::source::Split>>>,
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
        let snapshot = checkpoint::take_snapshot(&mut *op.backend, a.range, a.work.as_deref(), a.shard, id)
            .map_err(|e| e.to_string());
        if let Some(tx) = &a.acks {
            let _ = tx.send(Ack {
                shard: a.shard,
                id,
                range: a.range,
                states: op.backend.descriptors().to_vec(),
                snapshot,
                splits: a.splits.clone(),
                sync: started.elapsed(),
            });
        }
        a.splits = None;
        a.done = id;
    }

    async fn aligned(align: &RefCell<Aligner>, id: u64) {
        loop {
            {
                let a = align.borrow();
                if !a.align || a.done >= id || a.failed.load(Ordering::Relaxed) {
                    return;
                }
            }
            glommio::timer::sleep(ALIGN_POLL).await;
        }
    }
}

/// How often a blocked input looks whether its shard has finished a snapshot.
const ALIGN_POLL: Duration = Duration::from_micros(200);

impl<S, T, K, P, O> Shard<S, T, K, P, O>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    fn range(&self) -> formats::KeyGroupRange {
        keygroup::range_for_shard(self.id, self.cfg.shards, self.cfg.max_key_groups)
    }

    async fn run(self, tx: Vec<Option<Sender<K, T>>>, rx: Vec<SharedReceiver<Msg<K, T>>>) -> Result<(), Error> {
        // Connect every channel end concurrently before anything that can fail: a peer
        // waits for its counterpart to connect, and a closed end is how failure spreads.
        let tx: Vec<_> = tx.into_iter().map(|s| s.map(|s| glommio::spawn_local(s.connect()))).collect();
        let rx: Vec<_> = rx.into_iter().map(|r| glommio::spawn_local(r.connect())).collect();
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

    fn open_operator(&self) -> Result<Operator<P, O>, Error> {
        let mut registry = StateRegistry::new();
        let func = (self.program.factory)(&mut registry)?;
        let descriptors = registry.into_descriptors();
        let mut backend: Box<dyn Backend> = match (&self.cfg.backend, &self.work) {
            (BackendKind::Rocksdb, Some(work)) => {
                let path = work.join(format!("shard-{}", self.id.0));
                let rocks = RocksBackend::open(&path, descriptors, &self.cfg.rocks, self.cfg.clock.clone())?;
                Box::new(CachedBackend::new(rocks, self.cfg.rocks.cache_entries_max))
            }
            _ => Box::new(HeapBackend::new(descriptors)),
        };
        if let Some(r) = &self.cfg.restore {
            let started = Instant::now();
            let entries = r.restore_into(&mut *backend, self.range(), self.work.as_deref(), self.id)?;
            tracing::info!(shard = self.id.0, entries, ms = started.elapsed().as_millis() as u64, "state restored");
        }
        let sink = self.program.sink.open(self.id)?;
        Ok(Operator::new(
            self.id,
            func,
            backend,
            sink,
            self.program.post.clone(),
            self.cfg.clock.clone(),
            self.metrics.clone(),
        ))
    }

    async fn run_connected(
        &self,
        senders: Vec<Option<ConnectedSender<Msg<K, T>>>>,
        receivers: Vec<ConnectedReceiver<Msg<K, T>>>,
    ) -> Result<(), Error> {
        let op = Rc::new(RefCell::new(self.open_operator()?));
        let align = Rc::new(RefCell::new(Aligner {
            current: 0,
            arrived: 0,
            splits: None,
            done: self.cfg.restore.as_ref().map_or(0, |r| r.manifest.checkpoint.0),
            shard: self.id.0,
            inputs: self.cfg.shards as usize,
            range: self.range(),
            acks: self.acks.clone(),
            failed: self.failed.clone(),
            align: self.cfg.checkpoint.as_ref().is_none_or(|c| c.mode == CheckpointMode::ExactlyOnce),
            work: self.work.clone().filter(|_| self.cfg.checkpoint.as_ref().is_some_and(|c| c.incremental)),
        }));
        let me = self;
        let tasks: Vec<_> = receivers
            .into_iter()
            .map(|r| {
                let (op, align) = (op.clone(), align.clone());
                glommio::spawn_local(async move {
                    while let Some(msg) = r.recv().await {
                        match msg {
                            Msg::Batch(mut batch) => op.borrow_mut().process_batch(&mut batch)?,
                            Msg::Barrier(id) => {
                                Aligner::arrive(&align, &op, id, None);
                                Aligner::aligned(&align, id).await;
                            }
                        }
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();

        let produced = me.produce(&senders, &op, &align).await;
        // Closing our senders tells every peer we are done sending.
        drop(senders);
        let mut first_err = produced.err();
        if first_err.is_some() {
            me.failed.store(true, Ordering::Relaxed);
        }
        for t in tasks {
            if let Err(e) = t.await {
                me.failed.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
        }
        let mut op = op.borrow_mut();
        if first_err.is_none() && !me.failed.load(Ordering::Relaxed) {
            op.end_of_input()?;
        }
        let closed = op.sink.close();
        match first_err {
            Some(e) => Err(e),
            None => closed,
        }
    }

    /// Sends `msg` to shard `to`. False when the peer is gone: it failed and reports
    /// why, so this shard marks the job failed and stops reading.
    async fn send(&self, senders: &[Option<ConnectedSender<Msg<K, T>>>], to: usize, msg: Msg<K, T>) -> bool {
        let delivered = match senders.get(to) {
            Some(Some(s)) => s.send(msg).await.is_ok(),
            _ => true,
        };
        if !delivered {
            self.failed.store(true, Ordering::Relaxed);
        }
        delivered
    }

    /// Ships the outboxes: this shard's own records to its operator, the others' as one
    /// batch per peer. With `all`, every non-empty outbox goes; otherwise only full ones.
    /// False when a peer is gone (see [`Self::send`]).
    async fn ship(
        &self,
        senders: &[Option<ConnectedSender<Msg<K, T>>>],
        op: &RefCell<Operator<P, O>>,
        outboxes: &mut [Batch<K, T>],
        all: bool,
    ) -> Result<bool, Error> {
        let (me, batch) = (self.id.0 as usize, self.cfg.batch_records);
        for (j, ob) in outboxes.iter_mut().enumerate() {
            if ob.is_empty() || (!all && ob.len() < batch) {
                continue;
            }
            if j == me {
                op.borrow_mut().process_batch(ob)?;
            } else if !self.send(senders, j, Msg::Batch(std::mem::replace(ob, Vec::with_capacity(batch)))).await {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn produce(
        &self,
        senders: &[Option<ConnectedSender<Msg<K, T>>>],
        op: &RefCell<Operator<P, O>>,
        align: &RefCell<Aligner>,
    ) -> Result<(), Error> {
        let p = &self.program;
        let restored = match &self.cfg.restore {
            Some(r) => r.splits_for(self.id.0, self.cfg.shards)?,
            None => None,
        };
        let ctx = SourceContext {
            shard: self.id,
            shards: self.cfg.shards,
            bad: self.cfg.bad_records.clone(),
            stop: self.cfg.stop.clone(),
            abort: self.failed.clone(),
            restored,
        };
        let mut reader = p.source.open(&ctx)?;
        let batch = self.cfg.batch_records;
        let (n, g) = (self.cfg.shards, self.cfg.max_key_groups);
        let me = self.id.0 as usize;
        let mut input: Vec<S> = Vec::with_capacity(batch);
        let mut outboxes: Vec<Batch<K, T>> = (0..n).map(|_| Vec::with_capacity(batch)).collect();
        let mut key_bytes = Vec::new();
        // Checkpoints already taken (before a restore) are not answered again.
        let mut emitted = align.borrow().done;
        let mut source_done = false;
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(id) = self.barriers.pending(emitted) {
                // Everything read before the barrier goes out before it.
                if !self.ship(senders, op, &mut outboxes, true).await? {
                    return Ok(());
                }
                for j in 0..n as usize {
                    if j != me && !self.send(senders, j, Msg::Barrier(id)).await {
                        return Ok(());
                    }
                }
                Aligner::arrive(align, op, id, Some(reader.position()));
                Aligner::aligned(align, id).await;
                emitted = id;
                continue;
            }
            if source_done {
                if self.barriers.try_close(emitted) {
                    return Ok(());
                }
                glommio::timer::sleep(Duration::from_millis(1)).await;
                continue;
            }
            input.clear();
            let more = reader.read(&mut input, batch).await? && !ctx.stopping();
            // A short read means the source is not saturated: ship what we have now, so a
            // slow source's records are not held back waiting for a full batch.
            let short = input.len() < batch;
            self.metrics.add_in(me, input.len() as u64);
            for s in input.drain(..) {
                (p.chain)(s, &mut |t| {
                    let key = (p.key)(&t);
                    key_bytes.clear();
                    key.write_key(&mut key_bytes);
                    let kg = key_group_of(&key_bytes, g);
                    let owner = shard_of(kg, n, g).0 as usize;
                    if let Some(ob) = outboxes.get_mut(owner) {
                        ob.push(Routed { kg, key, value: t });
                    }
                });
            }
            if !self.ship(senders, op, &mut outboxes, !more || short).await? {
                return Ok(());
            }
            if !more {
                source_done = true;
                self.barriers.source_finished();
            }
            glommio::yield_if_needed().await;
        }
    }
}
