//! The coordinator thread: triggers checkpoints at the interval, collects every shard's
//! ack, has the writer publish them (off the processing path), and decides when failed
//! checkpoints fail the job.
//!
//! It waits on events only: the ack channel delivers acks, tells it the next trigger
//! time has come (a receive that times out then), and tells it the job is over (every
//! shard, and with it every ack sender, is gone).
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use formats::id::CheckpointId;

use super::ack::{Ack, ShardState};
use super::barriers::Barriers;
use super::config::CheckpointConfig;
use super::publish::{JobInfo, Published, Writer};
use crate::error::Error;

/// Runs on its own thread until the job's shards are gone: triggers, collects and
/// publishes checkpoints. More than `tolerable_failures` consecutive failed checkpoints,
/// or one I/O error of the writer, raise `fail` and end with an error, so the job fails
/// and its restart strategy decides.
pub fn coordinate(
    cfg: &CheckpointConfig,
    info: &JobInfo,
    barriers: &Barriers,
    acks: &Receiver<Ack>,
    last: Option<CheckpointId>,
    fail: &dyn Fn(),
) -> Result<(), Error> {
    let result = Coordinator::open(cfg, info, last).and_then(|mut c| c.run(barriers, acks));
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
}

struct Coordinator<'a> {
    cfg: &'a CheckpointConfig,
    info: &'a JobInfo,
    writer: Writer,
    next_id: u64,
    /// The checkpoint this history continues (the parent of the next one).
    last: Option<CheckpointId>,
    consecutive_failures: u32,
}

impl<'a> Coordinator<'a> {
    fn open(cfg: &'a CheckpointConfig, info: &'a JobInfo, last: Option<CheckpointId>) -> Result<Self, Error> {
        let writer = Writer::open(cfg, &info.job)?;
        // Ids continue after every id present: restoring an older retained checkpoint must
        // not collide with newer ones from the run it came from. The parent records the
        // checkpoint this history actually continues.
        let next_id = writer.highest_id()?.max(last.map_or(0, |l| l.0)) + 1;
        Ok(Coordinator { cfg, info, writer, next_id, last, consecutive_failures: 0 })
    }

    fn run(&mut self, barriers: &Barriers, acks: &Receiver<Ack>) -> Result<(), Error> {
        let mut next_trigger = Instant::now() + self.cfg.interval;
        loop {
            if !wait_until(acks, next_trigger) {
                return Ok(());
            }
            let id = self.next_id;
            if !barriers.request(id) {
                return Ok(());
            }
            self.next_id = id + 1;
            let started = Instant::now();
            tracing::info!(checkpoint = id, "checkpoint triggered");
            let Some(collected) = self.collect(acks, id, started) else { return Ok(()) };
            next_trigger = self.complete(CheckpointId(id), started, collected)?;
        }
    }

    /// Waits for every shard's ack of checkpoint `id`, also after the timeout: the
    /// shards' alignment must finish before the next barrier, and a late checkpoint is
    /// declined, never published. None when the shards are gone.
    fn collect(&self, acks: &Receiver<Ack>, id: u64, started: Instant) -> Option<Collected> {
        let shards = self.info.shards;
        let mut got: Vec<Option<Ack>> = (0..shards).map(|_| None).collect();
        let (mut count, mut timed_out) = (0, false);
        let deadline = started + self.cfg.timeout;
        while count < shards {
            let received = if timed_out {
                acks.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                acks.recv_timeout(deadline.saturating_duration_since(Instant::now()))
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
                        timeout_ms = self.cfg.timeout.as_millis() as u64,
                        "checkpoint timed out; it will be declined"
                    );
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
        let sync = got.iter().flatten().map(|a| a.sync).max().unwrap_or_default();
        timed_out |= started.elapsed() > self.cfg.timeout;
        Some(Collected { acks: got.into_iter().flatten().collect(), timed_out, sync })
    }

    /// Publishes (or declines) checkpoint `id`; returns when the next one is due.
    fn complete(&mut self, id: CheckpointId, started: Instant, c: Collected) -> Result<Instant, Error> {
        let local_dirs: Vec<_> = c
            .acks
            .iter()
            .filter_map(|a| match &a.snapshot {
                Ok(ShardState::Rocksdb { dir, .. }) => Some(dir.clone()),
                _ => None,
            })
            .collect();
        let publish_started = Instant::now();
        let published = if c.timed_out {
            Err(Error::Executor(format!("checkpoint {} took longer than {} ms", id.0, self.cfg.timeout.as_millis())))
        } else {
            self.writer.publish(self.info, id, self.last, c.acks)
        };
        // The shards' RocksDB checkpoints (hard links) are copied or declined: either way
        // they go, so compacted-away files do not pile up in the work directory.
        for d in local_dirs {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                tracing::warn!(path = %d.display(), error = %e, "cannot remove a RocksDB checkpoint");
            }
        }
        match published {
            Ok(p) => {
                self.published(id, started, publish_started, c.sync, &p)?;
                // The interval counts from the start of the last checkpoint, the pause from its end.
                Ok((started + self.cfg.interval).max(Instant::now() + self.cfg.min_pause))
            }
            Err(e) => {
                self.failed(id, e)?;
                Ok(Instant::now() + self.cfg.interval.max(self.cfg.min_pause))
            }
        }
    }

    fn published(
        &mut self,
        id: CheckpointId,
        started: Instant,
        publish_started: Instant,
        sync: Duration,
        p: &Published,
    ) -> Result<(), Error> {
        self.consecutive_failures = 0;
        self.last = Some(id);
        self.writer.collect_garbage(self.cfg.retain)?;
        tracing::info!(
            checkpoint = id.0,
            duration_ms = started.elapsed().as_millis() as u64,
            sync_ms = sync.as_millis() as u64,
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
        if let Some(why) = self.writer.poisoned() {
            return Err(Error::Executor(format!(
                "checkpoint {} failed with an I/O error; no checkpoint is published after one until the job restarts: {why}",
                id.0
            )));
        }
        if self.consecutive_failures > self.cfg.tolerable_failures {
            return Err(Error::Executor(format!(
                "{} consecutive checkpoint(s) failed (tolerated: {}); last: {e}",
                self.consecutive_failures, self.cfg.tolerable_failures
            )));
        }
        Ok(())
    }
}

/// Waits until `at`, dropping stale acks (of a declined checkpoint). False when the
/// shards are gone.
fn wait_until(acks: &Receiver<Ack>, at: Instant) -> bool {
    loop {
        match acks.recv_timeout(at.saturating_duration_since(Instant::now())) {
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}
