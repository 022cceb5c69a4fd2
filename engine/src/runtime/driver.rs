//! Running a job: the setup phase once, then attempts (start the shards, the reporter
//! and the checkpoint coordinator, join them, finish the sink), restarting from the
//! newest checkpoint under the job's restart strategy when an attempt fails.
//!
//! The phase decides how a failure is reported, not what kind of error it is: anything
//! found by the setup phase is a [`JobError::Setup`] (exit 2, never restarted); anything
//! after it is a [`JobError::Run`] (restart strategy, then exit 1).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use formats::keygroup::ShardId;
use formats::layout;
use glommio::{LocalExecutorBuilder, Placement};

use crate::error::{Error, JobError};
use crate::function::KeyedProcessFunction;
use crate::graph::Program;
use crate::runtime::checkpoint::ack::Ack;
use crate::runtime::checkpoint::barriers::Barriers;
use crate::runtime::checkpoint::config::Cleanup;
use crate::runtime::checkpoint::coordinator;
use crate::runtime::checkpoint::publish::JobInfo;
use crate::runtime::checkpoint::restore::Restore;
use crate::runtime::checkpoint::AckSender;
use crate::runtime::config::{RunConfig, RunReport};
use crate::runtime::control::JobState;
use crate::runtime::mesh;
use crate::runtime::metrics::{self, Metrics};
use crate::runtime::restart::Tracker;
use crate::runtime::setup;
use crate::runtime::shard::Shard;
use crate::sink::two_phase::PENDING_STATE;
use crate::state::codec::Key;

/// Acks a shard may have queued for the coordinator: one per checkpoint in flight (the
/// coordinator runs one checkpoint at a time), with room for a late one.
const ACKS_PER_SHARD_MAX: usize = 2;

/// Runs the job, restarting it from its latest checkpoint under `cfg.restart` when it
/// fails while running. Setup errors are never retried.
pub fn run<S, T, K, P, O>(p: Arc<Program<S, T, K, P, O>>, cfg: &RunConfig) -> Result<RunReport, JobError>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    let result = run_attempts(p, cfg);
    if let Some(c) = &cfg.control {
        c.set_state(if result.is_ok() { JobState::Finished } else { JobState::Failed });
    }
    result
}

fn run_attempts<S, T, K, P, O>(p: Arc<Program<S, T, K, P, O>>, cfg: &RunConfig) -> Result<RunReport, JobError>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    setup::preflight(&p, cfg).map_err(JobError::Setup)?;
    setup::check_data_dir(cfg).map_err(JobError::Setup)?;
    let mut cfg = cfg.clone();
    setup::lock_checkpoint_root(&p.name, &mut cfg).map_err(JobError::Setup)?;
    let mut work = setup::prepare_work_dir(&p.name, &cfg).map_err(JobError::Setup)?;
    let mut tracker = Tracker::new(cfg.restart.clone());
    loop {
        let err = match run_once(p.clone(), &cfg, work.clone()) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let Some(delay) = tracker.failed() else {
            return Err(JobError::Run(match tracker.attempts() {
                0 => err,
                n => Error::Executor(format!("gave up after {n} restart(s) ({}): {err}", tracker.describe())),
            }));
        };
        if cfg.stop.load(Ordering::Relaxed) {
            return Err(JobError::Run(err));
        }
        if let Some(c) = &cfg.control {
            c.set_state(JobState::Restarting);
        }
        if let Some(r) = restart_point(&p.name, &cfg).map_err(JobError::Run)? {
            cfg.restore = Some(Arc::new(r));
        }
        tracing::warn!(
            error = %err,
            attempt = tracker.attempts(),
            delay_ms = delay.as_millis() as u64,
            from = cfg.restore.as_ref().map(|r| r.manifest.checkpoint.0),
            "job failed; restarting"
        );
        wait_unless_stopped(delay, &cfg.stop);
        work = setup::prepare_work_dir(&p.name, &cfg).map_err(JobError::Run)?;
    }
}

/// The newest intact checkpoint of this job, if it takes checkpoints and has one; a
/// restart without one starts where this run started (a `--from` checkpoint, or the
/// beginning). A checkpoint root that cannot be read fails the restart: restarting from
/// an older point would apply updates twice.
fn restart_point(job: &str, cfg: &RunConfig) -> Result<Option<Restore>, Error> {
    let Some(ck) = &cfg.checkpoint else { return Ok(None) };
    Restore::latest(&layout::checkpoint_root(&ck.dir, job))
}

fn wait_unless_stopped(delay: Duration, stop: &AtomicBool) {
    /// How often a restart delay looks at the stop flag (a signal handler sets it).
    const STOP_CHECK: Duration = Duration::from_millis(10);
    let until = Instant::now() + delay;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(STOP_CHECK.min(until.saturating_duration_since(Instant::now())));
    }
}

/// One attempt: shards, reporter and coordinator run until the shards end.
fn run_once<S, T, K, P, O>(
    p: Arc<Program<S, T, K, P, O>>,
    cfg: &RunConfig,
    work: Option<PathBuf>,
) -> Result<RunReport, Error>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    let n = cfg.shards as usize;
    let metrics = Arc::new(Metrics::new(n));
    let started = Instant::now();
    let last = cfg.restore.as_ref().map(|r| r.manifest.checkpoint);
    if let Some(r) = &cfg.restore {
        tracing::info!(
            checkpoint = r.manifest.checkpoint.0,
            shards_before = r.manifest.shards.len(),
            shards_now = n,
            "restoring"
        );
    }
    // Commits what the restored checkpoint holds pre-committed, aborts what earlier runs
    // left open: before any shard writes.
    let pending = cfg.restore.as_ref().map(|r| r.operator_items(PENDING_STATE)).unwrap_or_default();
    p.sink.recover(&pending, cfg.shards)?;
    let barriers = Arc::new(Barriers::new(n, last.map_or(0, |c| c.0), cfg.checkpoint.is_some()));
    let (ack_tx, ack_rx) = crossbeam_channel::bounded::<Ack>(n * ACKS_PER_SHARD_MAX);
    let failed = Arc::new(AtomicBool::new(false));
    if let Some(c) = &cfg.control {
        c.attempt_started(metrics.clone());
    }
    let ctx = Attempt { p: &p, cfg, metrics: &metrics, failed: &failed, work: &work, barriers: &barriers };
    let shards = ctx.spawn_shards(Some(ack_tx));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let reporter = cfg.report_interval.map(|iv| {
        let m = metrics.clone();
        std::thread::spawn(move || metrics::report_loop(&m, iv, &done_rx))
    });
    let coordinator = ctx.spawn_coordinator(ack_rx, last);
    let mut first_err = join_shards(shards);
    // The reporter ends when this sender goes; the coordinator when every shard's ack
    // sender has gone (they went with the shards).
    drop(done_tx);
    if let Some(r) = reporter {
        if r.join().is_err() {
            tracing::warn!("progress reporter panicked");
        }
    }
    if let Some(c) = coordinator {
        if let Err(e) = c.join().unwrap_or_else(|_| Err(Error::Executor("checkpoint coordinator panicked".into()))) {
            first_err.get_or_insert(e);
        }
    }
    ctx.finish(first_err)?;
    let t = metrics.totals();
    Ok(RunReport {
        records_in: t.records_in,
        records_processed: t.records_processed,
        records_out: t.records_out,
        bad_records: cfg.bad_records.count(),
        processed_per_shard: metrics.processed_per_shard(),
        expired_per_state: metrics.expired_per_state(),
        elapsed: started.elapsed(),
    })
}

type ShardHandle = glommio::ExecutorJoinHandle<Result<(), Error>>;

/// What one attempt's parts share.
struct Attempt<'a, S, T, K, P: KeyedProcessFunction, O> {
    p: &'a Arc<Program<S, T, K, P, O>>,
    cfg: &'a RunConfig,
    metrics: &'a Arc<Metrics>,
    failed: &'a Arc<AtomicBool>,
    work: &'a Option<PathBuf>,
    barriers: &'a Arc<Barriers>,
}

impl<S, T, K, P, O> Attempt<'_, S, T, K, P, O>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    /// Starts one pinned executor per shard. A shard that cannot start is reported by
    /// its handle, like one that fails later.
    fn spawn_shards(&self, acks: Option<AckSender>) -> Vec<Result<ShardHandle, Error>> {
        let n = self.cfg.shards as usize;
        let cpus: Vec<usize> = match glommio::CpuSet::online() {
            Ok(set) => set.into_iter().map(|l| l.cpu).collect(),
            Err(_) => Vec::new(),
        };
        let mut handles = Vec::with_capacity(n);
        for (i, ends) in mesh::build::<K, T>(n, self.cfg.channel_batches).into_iter().enumerate() {
            let placement = match (self.cfg.pin, cpus.is_empty()) {
                (true, false) => Placement::Fixed(cpus.get(i % cpus.len()).copied().unwrap_or(0)),
                _ => Placement::Unbound,
            };
            let shard = Shard {
                id: ShardId(i as u16),
                program: self.p.clone(),
                cfg: self.cfg.clone(),
                metrics: self.metrics.clone(),
                failed: self.failed.clone(),
                work: self.work.clone(),
                barriers: self.barriers.clone(),
                acks: acks.clone(),
            };
            let h = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{i}"))
                .io_memory(1 << 20)
                .spawn(move || async move { shard.run(ends).await })
                .map_err(|e| {
                    self.failed.store(true, Ordering::Relaxed);
                    Error::Executor(format!("cannot start shard {i}: {e}"))
                });
            handles.push(h);
        }
        handles
    }

    /// The coordinator runs for every job: it takes checkpoints when the job has
    /// checkpoint settings, and savepoints when the control endpoint asks.
    fn spawn_coordinator(
        &self,
        acks: crossbeam_channel::Receiver<Ack>,
        last: Option<formats::id::CheckpointId>,
    ) -> Option<JoinHandle<Result<(), Error>>> {
        let checkpoints = self.cfg.checkpoint.clone();
        let pinned = match (&self.cfg.restore, &checkpoints) {
            (Some(r), Some(ck)) => r.pinned_in(&layout::checkpoint_root(&ck.dir, &self.p.name)),
            _ => None,
        };
        let setup = coordinator::Setup {
            checkpoints,
            info: JobInfo {
                job: self.p.name.clone(),
                key: <K as Key>::encoding(),
                max_key_groups: self.cfg.max_key_groups,
                backend: self.cfg.backend.to_string(),
                shards: self.cfg.shards as usize,
            },
            barriers: self.barriers.clone(),
            acks,
            last,
            pinned,
            control: self.cfg.control.clone(),
        };
        let f = self.failed.clone();
        Some(std::thread::spawn(move || coordinator::coordinate(setup, &|| f.store(true, Ordering::Relaxed))))
    }

    /// Finishes the sink and the dead-letter file, applies the checkpoint cleanup
    /// policy and removes the work directory; returns the attempt's first error.
    fn finish(&self, first_err: Option<Error>) -> Result<(), Error> {
        let finish = self.p.sink.finish().and_then(|()| self.cfg.bad_records.flush());
        if let (None, Some(ck)) = (&first_err, &self.cfg.checkpoint) {
            if ck.cleanup == Cleanup::Delete {
                let root = layout::checkpoint_root(&ck.dir, &self.p.name);
                if let Err(e) = std::fs::remove_dir_all(&root) {
                    tracing::warn!(path = %root.display(), error = %e, "cannot delete checkpoints");
                }
            }
        }
        if let Some(w) = self.work {
            if let Err(e) = std::fs::remove_dir_all(w) {
                tracing::warn!(path = %w.display(), error = %e, "cannot remove working directory");
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => finish,
        }
    }
}

/// Waits for every shard; the first error wins.
fn join_shards(handles: Vec<Result<ShardHandle, Error>>) -> Option<Error> {
    let mut first_err: Option<Error> = None;
    for (i, h) in handles.into_iter().enumerate() {
        let result = h.and_then(|h| {
            h.join().unwrap_or_else(|e| Err(Error::Executor(format!("shard {i} panicked or failed: {e}"))))
        });
        if let Err(e) = result {
            first_err.get_or_insert(e);
        }
    }
    first_err
}
