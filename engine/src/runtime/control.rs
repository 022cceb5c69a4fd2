//! The job's side of the control endpoint: savepoint requests queued for the
//! coordinator, their outcome, and what `sluice status` shows (shards, records,
//! checkpoint history, savepoints). The HTTP endpoint (crate `control`) reads and
//! writes only through this; it never touches a shard.
//!
//! One savepoint runs at a time: a request while one is queued or running is refused
//! (409), and the job keeps running.
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use formats::savepoint::Form;

use super::metrics::Metrics;

/// How long a finished job's endpoint waits for a stop-with-savepoint's requester to
/// read where the savepoint went.
const STOP_REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checkpoints (and savepoints) kept in the history `status` shows.
const HISTORY_MAX: usize = 20;

/// A savepoint the coordinator is to take.
#[derive(Debug, Clone)]
pub struct SavepointRequest {
    pub request_id: String,
    pub target: PathBuf,
    pub form: Form,
    /// Stop the job once it is written (`sluice stop --savepoint`).
    pub stop_after: bool,
}

/// Why a request was refused: the HTTP status and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: String) -> Self {
        Refusal { status, message }
    }
}

/// The outcome of a savepoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    InProgress,
    Completed { location: PathBuf },
    Failed { cause: String },
}

/// One checkpoint or savepoint, as the history shows it.
#[derive(Debug, Clone)]
pub struct CheckpointRecord {
    pub id: u64,
    /// The request a savepoint was taken for.
    pub request_id: Option<String>,
    pub savepoint: bool,
    /// The final checkpoint, taken when every source had ended.
    pub is_final: bool,
    pub completed: bool,
    pub trigger_ms: u64,
    pub duration_ms: u64,
    /// The longest synchronous part of any shard.
    pub sync_ms: u64,
    /// Each shard's synchronous part (processing stopped while it snapshotted), by shard.
    pub sync_per_shard_ms: Vec<u64>,
    pub state_bytes: u64,
    pub copied_bytes: u64,
    pub reused_bytes: u64,
    pub location: Option<PathBuf>,
    /// The form a completed savepoint was written in.
    pub form: Option<Form>,
    /// Why it failed (empty when it completed).
    pub failure: String,
}

/// The job's lifecycle, as the endpoint reports it (Flink's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Restarting,
    Finished,
    Failed,
    Canceled,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "RUNNING",
            JobState::Restarting => "RESTARTING",
            JobState::Finished => "FINISHED",
            JobState::Failed => "FAILED",
            JobState::Canceled => "CANCELED",
        }
    }
}

/// What the endpoint shows of a running job.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: JobState,
    pub records_in: u64,
    pub records_out: u64,
    pub processed_per_shard: Vec<u64>,
    pub in_per_shard: Vec<u64>,
    /// Expired TTL entries removed so far, per state with a TTL.
    pub expired_per_state: Vec<(String, u64)>,
    /// Entries the backends store, over every shard and state (sampled).
    pub state_entries: u64,
    pub history: Vec<CheckpointRecord>,
    /// Every savepoint this run completed, oldest first.
    pub savepoints: Vec<CheckpointRecord>,
    pub completed: u64,
    pub failed: u64,
    pub in_progress: bool,
}

#[derive(Default)]
struct Inner {
    state: Option<JobState>,
    metrics: Option<Arc<Metrics>>,
    history: VecDeque<CheckpointRecord>,
    savepoints: Vec<CheckpointRecord>,
    completed: u64,
    failed: u64,
    operations: BTreeMap<String, Operation>,
    /// The request queued or being taken.
    pending: Option<String>,
    /// A completed stop with a savepoint whose outcome no one has read yet.
    unreported_stop: Option<String>,
    next_request: u64,
}

/// Shared by the daemon's endpoint, the driver and the coordinator.
pub struct JobControl {
    pub jid: String,
    pub job: String,
    pub started_ms: u64,
    pub backend: String,
    pub shards: u32,
    pub max_key_groups: u32,
    /// Where savepoints go when a request names no directory (`--savepoint-dir`).
    pub savepoint_dir: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    requests: (Sender<SavepointRequest>, Receiver<SavepointRequest>),
    inner: Mutex<Inner>,
    /// Run once, when the job has passed its setup phase (the daemon publishes its
    /// endpoint then: a job refused at setup creates nothing).
    on_start: Mutex<Option<StartHook>>,
}

type StartHook = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for JobControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobControl").field("jid", &self.jid).field("job", &self.job).finish()
    }
}

impl JobControl {
    /// The control of job `job` run as `shape` (backend, shards, key groups), stopped
    /// through `stop`, its savepoints by default under `savepoint_dir`
    /// (`JobControl::new` builds one from a `RunConfig`).
    pub(crate) fn with(
        job: &str,
        shape: (String, u32, u32),
        stop: Arc<AtomicBool>,
        savepoint_dir: Option<PathBuf>,
    ) -> Arc<Self> {
        let started_ms = super::checkpoint::publish::now_ms();
        let jid = format!(
            "{:032x}",
            xxhash_rust::xxh3::xxh3_128(format!("{job}/{}/{started_ms}", std::process::id()).as_bytes())
        );
        let (backend, shards, max_key_groups) = shape;
        Arc::new(JobControl {
            jid,
            job: job.to_owned(),
            started_ms,
            backend,
            shards,
            max_key_groups,
            savepoint_dir,
            stop,
            requests: crossbeam_channel::unbounded(),
            inner: Mutex::new(Inner { state: Some(JobState::Running), ..Inner::default() }),
            on_start: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a savepoint into `target` (or a new directory under the savepoint dir).
    /// Refused when one is already queued or running, when the job is not running, when
    /// the target exists, or when it cannot be written.
    pub fn request_savepoint(&self, target: Option<PathBuf>, form: Form, stop_after: bool) -> Result<String, Refusal> {
        let mut inner = self.lock();
        if inner.state != Some(JobState::Running) {
            let state = inner.state.map_or("ENDED", JobState::name);
            return Err(Refusal::new(409, format!("job {} is {state}; no savepoint can be taken", self.job)));
        }
        if let Some(p) = &inner.pending {
            return Err(Refusal::new(409, format!("savepoint {p} is already in progress; wait for it to finish")));
        }
        let target = match target {
            Some(t) => t,
            None => {
                let Some(dir) = &self.savepoint_dir else {
                    return Err(Refusal::new(
                        400,
                        "no savepoint directory: give a target directory (sluice savepoint --to DIR) or start the job with --savepoint-dir".into(),
                    ));
                };
                dir.join(formats::layout::default_savepoint_name(
                    &self.job,
                    formats::id::CheckpointId(inner.next_request + 1),
                    time_nonce(),
                ))
            }
        };
        check_target(&target)?;
        inner.next_request += 1;
        let request_id =
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(format!("{}/{}", self.jid, inner.next_request).as_bytes()));
        inner.operations.insert(request_id.clone(), Operation::InProgress);
        inner.pending = Some(request_id.clone());
        drop(inner);
        let req = SavepointRequest { request_id: request_id.clone(), target, form, stop_after };
        // Both ends live in self: the send cannot fail.
        let _ = self.requests.0.send(req);
        Ok(request_id)
    }

    /// The queue the coordinator takes requests from.
    pub(crate) fn requests(&self) -> Receiver<SavepointRequest> {
        self.requests.1.clone()
    }

    /// The coordinator took (or failed to take) request `request_id`.
    pub(crate) fn savepoint_done(&self, req: &SavepointRequest, outcome: Result<(), String>) {
        let mut inner = self.lock();
        let op = match outcome {
            Ok(()) => Operation::Completed { location: req.target.clone() },
            Err(cause) => Operation::Failed { cause },
        };
        let ok = matches!(op, Operation::Completed { .. });
        inner.operations.insert(req.request_id.clone(), op);
        if ok && req.stop_after {
            inner.unreported_stop = Some(req.request_id.clone());
        }
        if inner.pending.as_deref() == Some(&req.request_id) {
            inner.pending = None;
        }
        drop(inner);
        if ok && req.stop_after {
            tracing::info!(savepoint = %req.target.display(), "stopping the job after its savepoint");
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// A checkpoint or savepoint ended (completed or failed).
    pub(crate) fn record(&self, r: CheckpointRecord) {
        let mut inner = self.lock();
        if r.completed && r.savepoint {
            inner.savepoints.push(r.clone());
        }
        if r.completed {
            inner.completed += 1;
        } else {
            inner.failed += 1;
        }
        inner.history.push_front(r);
        inner.history.truncate(HISTORY_MAX);
    }

    /// Runs `f` once the job has passed its setup phase (before its first attempt).
    pub fn on_start(&self, f: StartHook) {
        *self.on_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// A new attempt runs with these metrics.
    pub(crate) fn attempt_started(&self, metrics: Arc<Metrics>) {
        let hook = self.on_start.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = hook {
            f();
        }
        let mut inner = self.lock();
        inner.metrics = Some(metrics);
        if inner.state == Some(JobState::Restarting) {
            inner.state = Some(JobState::Running);
        }
    }

    /// The job is restarting, or has ended: queued requests fail (nothing will take them).
    pub(crate) fn set_state(&self, state: JobState) {
        let mut inner = self.lock();
        // A cancelled job stays cancelled however it ends.
        if inner.state != Some(JobState::Canceled) {
            inner.state = Some(state);
        }
        drop(inner);
        while let Ok(req) = self.requests.1.try_recv() {
            self.savepoint_done(&req, Err(format!("the job is {} before the savepoint could be taken", state.name())));
        }
    }

    /// Stops the job without a savepoint (`sluice cancel`): sources stop, in-flight
    /// records drain, outputs flush.
    pub fn cancel(&self) {
        self.lock().state = Some(JobState::Canceled);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A request's outcome. Reading a stop's final outcome lets the daemon exit
    /// ([`JobControl::wait_stop_reported`]).
    pub fn operation(&self, request_id: &str) -> Option<Operation> {
        let mut inner = self.lock();
        let op = inner.operations.get(request_id).cloned();
        if inner.unreported_stop.as_deref() == Some(request_id) && !matches!(op, Some(Operation::InProgress) | None) {
            inner.unreported_stop = None;
        }
        op
    }

    /// After the job has ended: waits (at most [`STOP_REPORT_WAIT`]) until the outcome of
    /// a stop with a savepoint has been read. Without this the endpoint could close
    /// between the savepoint's completion and the requester's next poll, and
    /// `sluice stop` would report a savepoint it cannot see as an error.
    pub fn wait_stop_reported(&self) {
        let until = std::time::Instant::now() + STOP_REPORT_WAIT;
        while self.lock().unreported_stop.is_some() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let (mut records_in, mut records_out, mut processed, mut in_per_shard) = (0, 0, Vec::new(), Vec::new());
        let (mut expired_per_state, mut state_entries) = (Vec::new(), 0);
        if let Some(m) = &inner.metrics {
            let t = m.totals();
            (records_in, records_out) = (t.records_in, t.records_out);
            processed = m.processed_per_shard();
            in_per_shard = m.in_per_shard();
            expired_per_state = m.expired_per_state();
            state_entries = m.state_entries();
        }
        Snapshot {
            state: inner.state.unwrap_or(JobState::Running),
            records_in,
            records_out,
            processed_per_shard: processed,
            in_per_shard,
            expired_per_state,
            state_entries,
            history: inner.history.iter().cloned().collect(),
            savepoints: inner.savepoints.clone(),
            completed: inner.completed,
            failed: inner.failed,
            in_progress: inner.pending.is_some(),
        }
    }
}

/// A number that differs between savepoints (a hash of the time in nanoseconds): the
/// suffix of a default savepoint directory name.
fn time_nonce() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    xxhash_rust::xxh3::xxh3_64(&t.to_le_bytes())
}

/// A savepoint target must not exist (or be an empty directory), and its parent must be
/// a directory we can write (created if missing).
fn check_target(target: &Path) -> Result<(), Refusal> {
    let exists = target.exists();
    let empty_dir = target.is_dir() && std::fs::read_dir(target).map(|mut d| d.next().is_none()).unwrap_or(false);
    if exists && !empty_dir {
        return Err(Refusal::new(409, format!("savepoint target {} already exists", target.display())));
    }
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let not_writable =
        |e: std::io::Error| Refusal::new(400, format!("savepoint target {} is not writable: {e}", target.display()));
    std::fs::create_dir_all(parent).map_err(not_writable)?;
    let probe = formats::layout::write_probe_file(parent, std::process::id());
    std::fs::write(&probe, b"").map_err(not_writable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
