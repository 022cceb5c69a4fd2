//! The coordinator thread: triggers checkpoints at the interval and savepoints on
//! request, collects every shard's ack, has the writers publish them (off the
//! processing path), and decides when failed checkpoints fail the job.
//!
//! It waits on events only: the ack channel delivers acks, the request queue delivers
//! savepoint requests, a receive that times out says the next checkpoint is due, and a
//! disconnected ack channel says the job is over (every shard, and with it every ack
//! sender, is gone).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use formats::id::CheckpointId;

use super::ack::{Ack, ShardState};
use super::barriers::Barriers;
use super::config::CheckpointConfig;
use super::publish::{now_ms, JobInfo, Published, Writer};
use super::savepoint;
use crate::error::Error;
use crate::runtime::control::{CheckpointRecord, JobControl, SavepointRequest};

/// How long a savepoint may take when the job has no checkpoint settings.
const SAVEPOINT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);
/// The wait between two looks at the request queue when nothing else is due (no
/// checkpoints configured): a receive with a long timeout, not a poll.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// What the coordinator of one attempt works with.
pub struct Setup {
    /// Periodic checkpoints (None: savepoints only).
    pub checkpoints: Option<CheckpointConfig>,
    pub info: JobInfo,
    pub barriers: Arc<Barriers>,
    pub acks: Receiver<Ack>,
    /// The checkpoint this attempt continues (restored from), if any.
    pub last: Option<CheckpointId>,
    /// A checkpoint in this job's root that GC must keep (restored from; not owned).
    pub pinned: Option<CheckpointId>,
    pub control: Option<Arc<JobControl>>,
}

/// Runs on its own thread until the job's shards are gone. More than
/// `tolerable_failures` consecutive failed checkpoints, or one I/O error of the writer,
/// call `fail` and end with an error, so the job fails and its restart strategy decides.
/// A failed savepoint is reported to its requester and never fails the job.
pub fn coordinate(s: Setup, fail: &dyn Fn()) -> Result<(), Error> {
    let result = Coordinator::open(&s).and_then(|mut c| c.run());
    if result.is_err() {
        fail();
    }
    result
}

/// The acks of one checkpoint, and whether it took longer than the timeout.
struct Collected {
    acks: Vec<Ack>,
    timed_out: bool,
    /// The longest synchronous part of any shard.
    sync: Duration,
    /// Each shard's synchronous part in ms, by shard (0 for a shard that did not ack).
    sync_per_shard_ms: Vec<u64>,
}

impl Collected {
    /// The shards' RocksDB checkpoints (hard links in the work directory).
    fn local_dirs(&self) -> Vec<PathBuf> {
        self.acks
            .iter()
            .filter_map(|a| match &a.snapshot {
                Ok(ShardState::Rocksdb { dir, .. }) => Some(dir.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Removes the shards' RocksDB checkpoints once copied or declined, so compacted-away
/// files do not pile up in the work directory.
fn remove_local(dirs: Vec<PathBuf>) {
    for d in dirs {
        if let Err(e) = std::fs::remove_dir_all(&d) {
            tracing::warn!(path = %d.display(), error = %e, "cannot remove a RocksDB checkpoint");
        }
    }
}

/// What woke the coordinator.
enum Event {
    CheckpointDue,
    Savepoint(SavepointRequest),
    /// Every source has ended: time for the final checkpoint.
    InputEnded,
    JobOver,
}

struct Coordinator<'a> {
    s: &'a Setup,
    writer: Option<Writer>,
    requests: Receiver<SavepointRequest>,
    next_id: u64,
    /// The checkpoint this history continues (the parent of the next one).
    last: Option<CheckpointId>,
    consecutive_failures: u32,
}

impl<'a> Coordinator<'a> {
    fn open(s: &'a Setup) -> Result<Self, Error> {
        let writer = s.checkpoints.as_ref().map(|c| Writer::open(c, &s.info.job)).transpose()?;
        // Ids continue after every id present: restoring an older retained checkpoint must
        // not collide with newer ones from the run it came from. The parent records the
        // checkpoint this history actually continues.
        let highest = match &writer {
            Some(w) => w.highest_id()?,
            None => 0,
        };
        let next_id = highest.max(s.last.map_or(0, |l| l.0)) + 1;
        let requests = s.control.as_ref().map_or_else(crossbeam_channel::never, |c| c.requests());
        Ok(Coordinator { s, writer, requests, next_id, last: s.last, consecutive_failures: 0 })
    }

    fn run(&mut self) -> Result<(), Error> {
        let interval = self.s.checkpoints.as_ref().map(|c| c.interval);
        let mut next_checkpoint = interval.map(|iv| Instant::now() + iv);
        loop {
            match self.wait(next_checkpoint) {
                Event::JobOver => return Ok(()),
                Event::CheckpointDue => match self.checkpoint(false)? {
                    Some(next) => next_checkpoint = Some(next),
                    None => return Ok(()),
                },
                // No periodic checkpoint follows the final one: the producers close once
                // they have answered it.
                Event::InputEnded if next_checkpoint.is_some() => {
                    next_checkpoint = None;
                    if self.checkpoint(true)?.is_none() {
                        return Ok(());
                    }
                }
                Event::InputEnded => {}
                Event::Savepoint(req) => {
                    if !self.savepoint(&req) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Waits for the next event, dropping stale acks (of a declined checkpoint).
    fn wait(&self, checkpoint_at: Option<Instant>) -> Event {
        loop {
            let timeout = checkpoint_at.map_or(IDLE_WAIT, |at| at.saturating_duration_since(Instant::now()));
            crossbeam_channel::select! {
                recv(self.s.acks) -> msg => if msg.is_err() { return Event::JobOver },
                recv(self.requests) -> req => if let Ok(r) = req { return Event::Savepoint(r) },
                recv(self.s.barriers.input_ended()) -> _ => return Event::InputEnded,
                default(timeout) => if checkpoint_at.is_some() { return Event::CheckpointDue },
            }
        }
    }

    /// Takes the next checkpoint (the final one, after every source ended, with
    /// `last`); returns when the one after is due, or None when the shards are gone.
    fn checkpoint(&mut self, last: bool) -> Result<Option<Instant>, Error> {
        let id = self.next_id;
        // Taken before the request: a shard may snapshot before this thread (which runs
        // below the shards) is scheduled again, and the recorded trigger time must not
        // come after any shard's snapshot (TTL purges count from it).
        let (started, trigger_ms) = (Instant::now(), now_ms());
        let requested = if last { self.s.barriers.request_final(id) } else { self.s.barriers.request(id, false) };
        if !requested {
            return Ok(None);
        }
        self.next_id = id + 1;
        tracing::info!(checkpoint = id, r#final = last, "checkpoint triggered");
        let Some(collected) = self.collect(id, started, self.checkpoint_timeout()) else { return Ok(None) };
        self.complete(CheckpointId(id), last, (started, trigger_ms), collected).map(Some)
    }

    fn checkpoint_timeout(&self) -> Duration {
        self.s.checkpoints.as_ref().map_or(SAVEPOINT_TIMEOUT_DEFAULT, |c| c.timeout)
    }

    /// Takes savepoint `req` and reports it; false when the shards are gone.
    fn savepoint(&mut self, req: &SavepointRequest) -> bool {
        let control = self.s.control.as_deref();
        let done = |outcome: Result<(), String>| {
            if let Some(c) = control {
                c.savepoint_done(req, outcome);
            }
        };
        let id = self.next_id;
        // Before the request, as for checkpoints.
        let (started, trigger_ms) = (Instant::now(), now_ms());
        if !self.s.barriers.request(id, true) {
            done(Err("the job is ending; no savepoint was taken".into()));
            return false;
        }
        self.next_id = id + 1;
        tracing::info!(savepoint = id, target = %req.target.display(), form = %req.form, "savepoint triggered");
        let Some(collected) = self.collect(id, started, self.checkpoint_timeout()) else {
            done(Err("the job ended before every shard took the savepoint".into()));
            return false;
        };
        let (local, sync, sync_per_shard_ms) =
            (collected.local_dirs(), collected.sync, collected.sync_per_shard_ms.clone());
        let written = if collected.timed_out {
            Err(Error::Executor(format!(
                "savepoint {id} took longer than {} ms",
                self.checkpoint_timeout().as_millis()
            )))
        } else {
            // Written on a thread of its own at low priority (and throttled): a savepoint
            // yields to processing, while checkpoints keep the coordinator's priority.
            let info = &self.s.info;
            std::thread::scope(|scope| {
                let writer = scope.spawn(|| {
                    crate::priority::lower_current_thread(crate::priority::BACKGROUND_NICE);
                    let duty = if req.stop_after { 1.0 } else { savepoint::BACKGROUND_DUTY };
                    savepoint::write(info, CheckpointId(id), &req.target, req.form, collected.acks, duty)
                });
                writer.join().unwrap_or_else(|_| Err(Error::Executor("the savepoint writer panicked".into())))
            })
        };
        remove_local(local);
        let mut record = CheckpointRecord {
            id,
            request_id: Some(req.request_id.clone()),
            savepoint: true,
            is_final: false,
            completed: written.is_ok(),
            trigger_ms,
            duration_ms: started.elapsed().as_millis() as u64,
            sync_ms: sync.as_millis() as u64,
            sync_per_shard_ms,
            state_bytes: 0,
            copied_bytes: 0,
            reused_bytes: 0,
            location: Some(req.target.clone()),
            form: None,
            failure: String::new(),
        };
        match &written {
            Ok(w) => {
                tracing::info!(
                    savepoint = id,
                    path = %req.target.display(),
                    form = %w.form,
                    bytes = w.bytes,
                    duration_ms = record.duration_ms,
                    sync_ms = record.sync_ms,
                    sync_ms_per_shard = ?record.sync_per_shard_ms,
                    "savepoint completed"
                );
                (record.state_bytes, record.copied_bytes, record.form) = (w.bytes, w.bytes, Some(w.form));
            }
            Err(e) => {
                tracing::warn!(savepoint = id, error = %e, "savepoint failed");
                record.failure = e.to_string();
            }
        }
        if let Some(c) = control {
            c.record(record);
        }
        done(written.map(|_| ()).map_err(|e| e.to_string()));
        true
    }

    /// Waits for every shard's ack of checkpoint `id`, also after the timeout: the
    /// shards' alignment must finish before the next barrier, and a late checkpoint is
    /// declined, never published. None when the shards are gone.
    fn collect(&self, id: u64, started: Instant, timeout: Duration) -> Option<Collected> {
        let shards = self.s.info.shards;
        let mut got: Vec<Option<Ack>> = (0..shards).map(|_| None).collect();
        let (mut count, mut timed_out) = (0, false);
        let deadline = started + timeout;
        while count < shards {
            let received = if timed_out {
                self.s.acks.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                self.s.acks.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            };
            match received {
                Ok(a) if a.id == id => {
                    if let Some(slot) = got.get_mut(usize::from(a.shard)) {
                        if slot.replace(a).is_none() {
                            count += 1;
                        }
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    tracing::warn!(
                        checkpoint = id,
                        timeout_ms = timeout.as_millis() as u64,
                        "checkpoint timed out; it will be declined"
                    );
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
        let sync = got.iter().flatten().map(|a| a.sync).max().unwrap_or_default();
        let sync_per_shard_ms = got.iter().map(|a| a.as_ref().map_or(0, |a| a.sync.as_millis() as u64)).collect();
        timed_out |= started.elapsed() > timeout;
        Some(Collected { acks: got.into_iter().flatten().collect(), timed_out, sync, sync_per_shard_ms })
    }

    /// Publishes (or declines) checkpoint `id`; returns when the next one is due.
    fn complete(
        &mut self,
        id: CheckpointId,
        last: bool,
        (started, trigger_ms): (Instant, u64),
        c: Collected,
    ) -> Result<Instant, Error> {
        let (Some(cfg), Some(writer)) = (self.s.checkpoints.as_ref(), self.writer.as_mut()) else {
            return Err(Error::Executor("checkpoint triggered without checkpoint settings".into()));
        };
        let (local, sync) = (c.local_dirs(), c.sync);
        let sync_per_shard_ms = c.sync_per_shard_ms.clone();
        let publish_started = Instant::now();
        let published = if c.timed_out {
            Err(Error::Executor(format!("checkpoint {} took longer than {} ms", id.0, cfg.timeout.as_millis())))
        } else {
            writer.publish(&self.s.info, id, self.last, c.acks)
        };
        remove_local(local);
        let mut record = CheckpointRecord {
            id: id.0,
            request_id: None,
            savepoint: false,
            is_final: last,
            completed: published.is_ok(),
            trigger_ms,
            duration_ms: 0,
            sync_ms: sync.as_millis() as u64,
            sync_per_shard_ms,
            state_bytes: 0,
            copied_bytes: 0,
            reused_bytes: 0,
            location: None,
            form: None,
            failure: String::new(),
        };
        let next = match published {
            Ok(p) => {
                self.published(id, started, publish_started, (sync, &record.sync_per_shard_ms), &p)?;
                // Sinks commit what this checkpoint holds pre-committed.
                self.s.barriers.complete(id.0);
                (record.state_bytes, record.copied_bytes, record.reused_bytes) = (p.state_bytes, p.copied, p.reused);
                record.location = Some(formats::layout::checkpoint_dir(
                    &formats::layout::checkpoint_root(&cfg.dir, &self.s.info.job),
                    id,
                ));
                // The interval counts from the start of the last checkpoint, the pause from its end.
                (started + cfg.interval).max(Instant::now() + cfg.min_pause)
            }
            Err(e) => {
                if last {
                    self.s.barriers.decline_final();
                }
                record.failure = e.to_string();
                record.duration_ms = started.elapsed().as_millis() as u64;
                if let Some(c) = &self.s.control {
                    c.record(record);
                }
                self.failed(id, e)?;
                return Ok(Instant::now() + cfg.interval.max(cfg.min_pause));
            }
        };
        record.duration_ms = started.elapsed().as_millis() as u64;
        if let Some(c) = &self.s.control {
            c.record(record);
        }
        Ok(next)
    }

    fn published(
        &mut self,
        id: CheckpointId,
        started: Instant,
        publish_started: Instant,
        (sync, sync_per_shard_ms): (Duration, &[u64]),
        p: &Published,
    ) -> Result<(), Error> {
        self.consecutive_failures = 0;
        self.last = Some(id);
        if let (Some(cfg), Some(w)) = (self.s.checkpoints.as_ref(), self.writer.as_mut()) {
            let pinned: Vec<_> = self.s.pinned.into_iter().collect();
            w.collect_garbage(cfg.retain, &pinned)?;
        }
        tracing::info!(
            checkpoint = id.0,
            duration_ms = started.elapsed().as_millis() as u64,
            sync_ms = sync.as_millis() as u64,
            sync_ms_per_shard = ?sync_per_shard_ms,
            async_ms = publish_started.elapsed().as_millis() as u64,
            bytes_copied = p.copied,
            bytes_reused = p.reused,
            state_bytes = p.state_bytes,
            "checkpoint published"
        );
        Ok(())
    }

    /// A failed checkpoint: tolerated up to `tolerable_failures` in a row, unless the
    /// writer refuses further work after an I/O error.
    fn failed(&mut self, id: CheckpointId, e: Error) -> Result<(), Error> {
        self.consecutive_failures += 1;
        tracing::warn!(checkpoint = id.0, error = %e, consecutive_failures = self.consecutive_failures, "checkpoint failed");
        if let Some(why) = self.writer.as_ref().and_then(|w| w.poisoned()) {
            return Err(Error::Executor(format!(
                "checkpoint {} failed with an I/O error; no checkpoint is published after one until the job restarts: {why}",
                id.0
            )));
        }
        let tolerated = self.s.checkpoints.as_ref().map_or(0, |c| c.tolerable_failures);
        if self.consecutive_failures > tolerated {
            return Err(Error::Executor(format!(
                "{} consecutive checkpoint(s) failed (tolerated: {tolerated}); last: {e}",
                self.consecutive_failures
            )));
        }
        Ok(())
    }
}
