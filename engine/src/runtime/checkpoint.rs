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
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use formats::checkpoint::{self as protocol, Payload};
use formats::fs::StdFs;
use formats::keygroup::KeyGroupRange;
use formats::manifest::{CheckpointId, FileRef, Manifest, ShardFormat, ShardSnapshot};
use formats::value::StateDescriptor;

use crate::error::Error;
use crate::runtime::incremental::SharedFiles;
use crate::source::Split;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointMode {
    /// Aligned barriers: every record affects the state exactly once.
    ExactlyOnce,
    /// Unaligned: inputs keep flowing past a barrier; after a restore, records that
    /// followed a barrier on a fast input may be applied again.
    AtLeastOnce,
}

/// What happens to a job's checkpoints when it ends by itself or is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    Retain,
    Delete,
}

#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Checkpoints go to `<dir>/<job>/`.
    pub dir: PathBuf,
    pub interval: Duration,
    /// Published checkpoints kept; older ones are garbage-collected.
    pub retain: usize,
    pub mode: CheckpointMode,
    /// Least time between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// A checkpoint not complete after this long is abandoned (a failure).
    pub timeout: Duration,
    /// Consecutive failed checkpoints tolerated; one more fails the job.
    pub tolerable_failures: u32,
    pub cleanup: Cleanup,
    /// RocksDB shards: copy only new SST files (true), or write full snapshots.
    pub incremental: bool,
}

impl CheckpointConfig {
    pub fn new(dir: PathBuf, interval: Duration) -> Self {
        CheckpointConfig {
            dir,
            interval,
            retain: 1,
            mode: CheckpointMode::ExactlyOnce,
            min_pause: Duration::ZERO,
            timeout: Duration::from_secs(600),
            tolerable_failures: 0,
            cleanup: Cleanup::Retain,
            incremental: true,
        }
    }
}

/// The request/close handshake between the coordinator and the producers.
pub struct Barriers {
    state: Mutex<BarrierState>,
    finished: AtomicUsize,
    shards: usize,
}

struct BarrierState {
    requested: u64,
    closed: bool,
}

impl Barriers {
    pub fn new(shards: usize, last: u64) -> Self {
        Barriers {
            state: Mutex::new(BarrierState { requested: last, closed: false }),
            finished: AtomicUsize::new(0),
            shards,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BarrierState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A checkpoint newer than `emitted`, if one is requested.
    pub fn pending(&self, emitted: u64) -> Option<u64> {
        let r = self.lock().requested;
        (r > emitted).then_some(r)
    }

    pub fn source_finished(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }

    /// A producer whose source has ended may leave once every source has ended and it
    /// has answered every request; after that no checkpoint is requested again.
    pub fn try_close(&self, emitted: u64) -> bool {
        let mut s = self.lock();
        if self.finished.load(Ordering::SeqCst) >= self.shards && s.requested <= emitted {
            s.closed = true;
            return true;
        }
        false
    }

    /// Requests checkpoint `id`; false once the job is closing.
    fn request(&self, id: u64) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.requested = id;
        true
    }
}

/// What a shard reports for checkpoint `id`.
pub struct Ack {
    pub shard: u16,
    pub id: u64,
    pub range: KeyGroupRange,
    pub states: Vec<StateDescriptor>,
    pub snapshot: Result<ShardState, String>,
    pub splits: Option<Vec<Split>>,
    pub sync: Duration,
}

/// A shard's snapshot, as taken on its thread.
pub enum ShardState {
    /// The shard's entries, copied; encoded and compressed by the coordinator.
    Full(crate::state::snapshot::Collected),
    /// A RocksDB checkpoint of the shard's instance `instance` in `dir` (hard links);
    /// the coordinator copies what is new and removes `dir`.
    Rocksdb { dir: PathBuf, instance: u64 },
}

/// The synchronous part of shard `shard`'s checkpoint `id`: a native checkpoint into
/// the work directory `work` when the backend has one (and `work` is given), else a copy
/// of every entry in `range`.
pub fn take_snapshot(
    backend: &mut dyn crate::state::Backend,
    range: KeyGroupRange,
    work: Option<&std::path::Path>,
    shard: u16,
    id: u64,
) -> Result<ShardState, Error> {
    if let Some(work) = work {
        let dir = formats::layout::local_checkpoint_dir(work, formats::ShardId(shard), CheckpointId(id));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        if let Some(instance) = backend.native_checkpoint(&dir)? {
            return Ok(ShardState::Rocksdb { dir, instance });
        }
    }
    Ok(ShardState::Full(crate::state::snapshot::collect(backend, range)?))
}

/// Everything the coordinator needs to write manifests.
pub struct JobInfo {
    pub job: String,
    pub key: formats::value::ValueEncoding,
    pub max_key_groups: u32,
    pub backend: String,
    pub shards: usize,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Runs on its own thread until `done()`: triggers, collects and publishes checkpoints.
/// More than `tolerable_failures` consecutive failed checkpoints raise `fail` and end
/// with an error, so the job fails and its restart strategy decides.
pub fn coordinate(
    cfg: &CheckpointConfig,
    info: &JobInfo,
    barriers: &Barriers,
    acks: &Receiver<Ack>,
    last: Option<CheckpointId>,
    done: &dyn Fn() -> bool,
    fail: &dyn Fn(),
) -> Result<(), Error> {
    let result = coordinate_inner(cfg, info, barriers, acks, last, done);
    if result.is_err() {
        fail();
    }
    result
}

fn coordinate_inner(
    cfg: &CheckpointConfig,
    info: &JobInfo,
    barriers: &Barriers,
    acks: &Receiver<Ack>,
    mut last: Option<CheckpointId>,
    done: &dyn Fn() -> bool,
) -> Result<(), Error> {
    let root = formats::layout::checkpoint_root(&cfg.dir, &info.job);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let mut fs = StdFs;
    // Ids continue after every id present: restoring an older retained checkpoint must
    // not collide with newer ones from the run it came from. The parent records the
    // checkpoint this history actually continues.
    let highest = protocol::checkpoint_ids(&fs, &root)?.first().map_or(0, |c| c.0);
    let mut next_id = highest.max(last.map_or(0, |l| l.0)) + 1;
    let mut next_trigger = Instant::now() + cfg.interval;
    let mut consecutive_failures = 0u32;
    let mut shared = SharedFiles::default();
    loop {
        while Instant::now() < next_trigger {
            if done() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5).min(cfg.interval));
        }
        let id = next_id;
        if !barriers.request(id) {
            return Ok(());
        }
        let started = Instant::now();
        let mut got: Vec<Option<Ack>> = (0..info.shards).map(|_| None).collect();
        let mut count = 0;
        let mut timed_out = false;
        // All acks are awaited even after a timeout: the shards' alignment must finish
        // before the next barrier. A late checkpoint is declined, never published.
        while count < info.shards {
            if !timed_out && started.elapsed() > cfg.timeout {
                timed_out = true;
                tracing::warn!(
                    checkpoint = id,
                    timeout_ms = cfg.timeout.as_millis() as u64,
                    "checkpoint timed out; it will be declined"
                );
            }
            match acks.recv_timeout(Duration::from_millis(50)) {
                Ok(a) if a.id == id => {
                    if let Some(slot) = got.get_mut(usize::from(a.shard)) {
                        if slot.replace(a).is_none() {
                            count += 1;
                        }
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) if done() => return Ok(()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        timed_out |= started.elapsed() > cfg.timeout;
        let sync = got.iter().flatten().map(|a| a.sync).max().unwrap_or_default();
        let acks: Vec<Ack> = got.into_iter().flatten().collect();
        let local_dirs: Vec<PathBuf> = acks
            .iter()
            .filter_map(|a| match &a.snapshot {
                Ok(ShardState::Rocksdb { dir, .. }) => Some(dir.clone()),
                _ => None,
            })
            .collect();
        let publish_started = Instant::now();
        next_id = id + 1;
        let published = if timed_out {
            Err(Error::Executor(format!("checkpoint {id} took longer than {} ms", cfg.timeout.as_millis())))
        } else {
            publish(&mut fs, &root, info, CheckpointId(id), last, acks, &mut shared)
        };
        // The shards' RocksDB checkpoints (hard links) are copied or declined: either way
        // they go, so compacted-away files do not pile up in the work directory.
        for d in local_dirs {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                tracing::warn!(path = %d.display(), error = %e, "cannot remove a RocksDB checkpoint");
            }
        }
        let (manifest, copied, reused) = match published {
            Ok(m) => {
                consecutive_failures = 0;
                m
            }
            Err(e) => {
                // Whatever the attempt wrote under chk-<id>/ goes; shared files stay.
                let _ = protocol::abort(&mut fs, &root, CheckpointId(id));
                shared.forget();
                consecutive_failures += 1;
                tracing::warn!(checkpoint = id, error = %e, consecutive_failures, "checkpoint failed");
                if consecutive_failures > cfg.tolerable_failures {
                    return Err(Error::Executor(format!(
                        "{consecutive_failures} consecutive checkpoint(s) failed (tolerated: {}); last: {e}",
                        cfg.tolerable_failures
                    )));
                }
                next_trigger = Instant::now() + cfg.interval.max(cfg.min_pause);
                continue;
            }
        };
        let state_bytes: u64 = manifest.files().map(|f| f.size).sum();
        last = Some(CheckpointId(id));
        let plan = protocol::plan_gc(&fs, &root, cfg.retain)?;
        protocol::execute_gc(&mut fs, &root, &plan)?;
        tracing::info!(
            checkpoint = id,
            duration_ms = started.elapsed().as_millis() as u64,
            sync_ms = sync.as_millis() as u64,
            async_ms = publish_started.elapsed().as_millis() as u64,
            bytes_copied = copied,
            bytes_reused = reused,
            state_bytes,
            "checkpoint published"
        );
        // The interval counts from the start of the last checkpoint, the pause from its end.
        next_trigger = (started + cfg.interval).max(Instant::now() + cfg.min_pause);
    }
}

/// Publishes checkpoint `id` from the shards' acks; returns its manifest and the bytes
/// it copied and reused.
fn publish(
    fs: &mut StdFs,
    root: &std::path::Path,
    info: &JobInfo,
    id: CheckpointId,
    parent: Option<CheckpointId>,
    mut acks: Vec<Ack>,
    shared: &mut SharedFiles,
) -> Result<(Manifest, u64, u64), Error> {
    acks.sort_by_key(|a| a.shard);
    let mut payloads = Vec::new();
    let mut shards = Vec::new();
    let (mut copied, mut reused) = (0u64, 0u64);
    let states = acks.first().map(|a| a.states.clone()).unwrap_or_default();
    for a in acks {
        let state = a
            .snapshot
            .map_err(|e| Error::Executor(format!("shard {} could not snapshot checkpoint {}: {e}", a.shard, id.0)))?;
        let (format, files) = match state {
            ShardState::Full(collected) => {
                let bytes = collected.encode()?;
                let path = format!("{}/shard-{}.snapshot", formats::layout::checkpoint_dir_name(id), a.shard);
                let file = FileRef::of(&path, &bytes);
                copied += file.size;
                payloads.push(Payload { path, bytes });
                (ShardFormat::Snapshot, vec![file])
            }
            ShardState::Rocksdb { dir, instance } => {
                let staged = shared.stage(fs, root, id, a.shard, &dir, instance)?;
                copied += staged.copied;
                reused += staged.reused;
                payloads.extend(staged.payloads);
                (ShardFormat::Rocksdb, staged.files)
            }
        };
        let source_position = serde_json::to_value(&a.splits).unwrap_or(serde_json::Value::Null);
        shards.push(ShardSnapshot { shard: a.shard, range: a.range, format, files, source_position });
    }
    let m = Manifest {
        job: info.job.clone(),
        checkpoint: id,
        parent,
        created_ms: now_ms(),
        max_key_groups: info.max_key_groups,
        backend: info.backend.clone(),
        key: Some(info.key.clone()),
        states,
        shards,
    };
    protocol::publish(fs, root, &m, &payloads)?;
    Ok((m, copied, reused))
}

/// A checkpoint to restore from: `PATH` is a `chk-<n>` directory or a job's checkpoint
/// root (then its newest published checkpoint). Every file is checked (size, crc32).
pub struct Restore {
    pub root: PathBuf,
    pub manifest: Manifest,
}

impl Restore {
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let fs = StdFs;
        if !path.is_dir() {
            return Err(Error::Config(format!(
                "{}: not a checkpoint directory (expected chk-<n> or a job's checkpoint root)",
                path.display()
            )));
        }
        if let Some((root, id)) = formats::layout::split_checkpoint_dir(path) {
            let manifest = protocol::load(&fs, &root, id, protocol::Verify::Checksums)
                .map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
            return Ok(Restore { root, manifest });
        }
        let d = protocol::latest(&fs, path, protocol::Verify::Checksums)
            .map_err(|e| Error::Config(format!("cannot restore {}: {e}", path.display())))?;
        for (id, e) in &d.rejected {
            tracing::warn!(checkpoint = id.0, error = %e, "skipping checkpoint that is not intact");
        }
        match d.latest {
            Some(manifest) => Ok(Restore { root: path.to_owned(), manifest }),
            None => Err(Error::Config(format!(
                "{}: no intact published checkpoint found{}",
                path.display(),
                d.rejected.first().map(|(_, e)| format!(" ({e})")).unwrap_or_default()
            ))),
        }
    }

    /// The splits of every old shard that new shard `shard` of `shards` resumes.
    pub fn splits_for(&self, shard: u16, shards: u32) -> Result<Option<Vec<Split>>, Error> {
        let mut all = Vec::new();
        for s in &self.manifest.shards {
            let splits: Option<Vec<Split>> = serde_json::from_value(s.source_position.clone()).map_err(|e| {
                Error::Config(format!(
                    "checkpoint {}: bad source position of shard {}: {e}",
                    self.manifest.checkpoint.0, s.shard
                ))
            })?;
            match splits {
                Some(v) => all.extend(v),
                None => return Ok(None),
            }
        }
        Ok(Some(all.into_iter().filter(|s| s.id % shards.max(1) == u32::from(shard)).collect()))
    }

    /// Whether restoring needs a scratch directory (some shard is a RocksDB instance).
    pub fn needs_scratch(&self) -> bool {
        self.manifest.shards.iter().any(|s| s.format == ShardFormat::Rocksdb)
    }

    /// Loads the state of every old shard whose range overlaps `range` into `backend`,
    /// clipped to `range`. RocksDB shards are rebuilt under `work` (then removed).
    /// Returns the number of entries loaded.
    pub fn restore_into(
        &self,
        backend: &mut dyn crate::state::Backend,
        range: KeyGroupRange,
        work: Option<&std::path::Path>,
        shard: formats::ShardId,
    ) -> Result<u64, Error> {
        let mut entries = 0;
        for s in self.manifest.shards.iter().filter(|s| s.range.start < range.end && range.start < s.range.end) {
            let what = |e: &dyn std::fmt::Display, file: &str| {
                Error::Config(format!("cannot restore {}: {e}", formats::layout::resolve(&self.root, file).display()))
            };
            entries += match s.format {
                ShardFormat::Snapshot => {
                    let mut n = 0;
                    for f in &s.files {
                        let path = formats::layout::resolve(&self.root, &f.path);
                        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                        n += crate::state::snapshot::restore(backend, &bytes, range).map_err(|e| what(&e, &f.path))?;
                    }
                    n
                }
                ShardFormat::Rocksdb => {
                    let work = work.ok_or_else(|| Error::Config("restoring RocksDB shards needs a data dir".into()))?;
                    let scratch = formats::layout::restore_scratch_dir(work, shard, s.shard);
                    let dir = formats::layout::shard_files_prefix(self.manifest.checkpoint, s.shard);
                    crate::state::native::restore(backend, &self.root, s, &self.manifest.states, range, &scratch)
                        .map_err(|e| what(&e, &dir))?
                }
            };
        }
        Ok(entries)
    }
}
