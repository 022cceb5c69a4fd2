//! The checkpoint writer: publishes one checkpoint from the shards' acks (heap snapshots
//! are encoded into snapshot files, RocksDB checkpoints have their new SSTs staged into
//! `shared/`, the manifest is written last through `formats::checkpoint::publish`), and
//! collects garbage after it.
//!
//! After an I/O error while writing, the writer refuses every further publish until it
//! is reopened (redb's `PreviousIo`): an fsync that failed once may have dropped dirty
//! pages, so retrying it and reporting success could publish a checkpoint whose files are
//! not what the manifest says. The coordinator then fails the job, and the restart opens
//! a new writer.
use std::path::PathBuf;

use formats::checkpoint::{self as protocol, OwnedFile};
use formats::fs::{Fs, StdFs};
use formats::id::CheckpointId;
use formats::layout;
use formats::manifest::{FileRef, Manifest, ShardFormat, ShardSnapshot};

use super::ack::{Ack, ShardState};
use super::config::CheckpointConfig;
use super::incremental::SharedFiles;
use crate::error::Error;
use crate::state::snapshot::Collected;

/// Everything the coordinator needs to write manifests.
pub struct JobInfo {
    pub job: String,
    pub key: formats::value::ValueEncoding,
    pub max_key_groups: u32,
    pub backend: String,
    pub shards: usize,
}

impl JobInfo {
    /// The manifest of checkpoint (or savepoint) `id` of this job, created now.
    pub fn manifest(
        &self,
        id: CheckpointId,
        parent: Option<CheckpointId>,
        states: Vec<formats::value::StateDescriptor>,
        shards: Vec<ShardSnapshot>,
    ) -> Manifest {
        Manifest {
            job: self.job.clone(),
            checkpoint: id,
            parent,
            created_ms: now_ms(),
            max_key_groups: self.max_key_groups,
            backend: self.backend.clone(),
            key: Some(self.key.clone()),
            states,
            shards,
        }
    }

    /// Shard `a`'s source position as a manifest records it; `what` (checkpoint or
    /// savepoint) and `id` name it in the error.
    pub fn source_position(&self, a: &Ack, what: &str, id: CheckpointId) -> Result<serde_json::Value, Error> {
        serde_json::to_value(&a.splits).map_err(|e| {
            Error::Executor(format!("shard {}: cannot record the source position of {what} {}: {e}", a.shard, id.0))
        })
    }
}

/// What publishing a checkpoint wrote.
#[derive(Debug)]
pub struct Published {
    /// Bytes written for this checkpoint (owned files and new shared files).
    pub copied: u64,
    /// Bytes of shared files it borrows from earlier checkpoints.
    pub reused: u64,
    /// Bytes of every file the checkpoint refers to.
    pub state_bytes: u64,
}

pub struct Writer {
    fs: Box<dyn Fs + Send>,
    root: PathBuf,
    shared: SharedFiles,
    /// The I/O error after which this writer publishes nothing more.
    poisoned: Option<String>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Writer {
    /// Opens the writer of `job`'s checkpoint root under `cfg.dir` (created if missing),
    /// on the file system `cfg.fs` makes (the real one unless a test injects faults).
    pub fn open(cfg: &CheckpointConfig, job: &str) -> Result<Self, Error> {
        let root = layout::checkpoint_root(&cfg.dir, job);
        let mut fs = match &cfg.fs {
            Some(f) => f.make(),
            None => Box::new(StdFs),
        };
        formats::fs::create_dir_all(&mut *fs, &root).map_err(|e| Error::io(&root, e))?;
        Ok(Writer { fs, root, shared: SharedFiles::default(), poisoned: None })
    }

    /// The highest checkpoint id present in the root, published or not (0 if none).
    pub fn highest_id(&self) -> Result<u64, Error> {
        Ok(protocol::checkpoint_ids(&*self.fs, &self.root)?.first().map_or(0, |c| c.0))
    }

    /// Why this writer refuses to publish, if it does.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Publishes checkpoint `id` (continuing `parent`) from the shards' acks. On failure
    /// whatever it wrote under `chk-<id>/` is removed; shared files stay.
    pub fn publish(
        &mut self,
        info: &JobInfo,
        id: CheckpointId,
        parent: Option<CheckpointId>,
        acks: Vec<Ack>,
    ) -> Result<Published, Error> {
        if let Some(why) = &self.poisoned {
            return Err(Error::Executor(format!("the checkpoint writer failed earlier and publishes nothing: {why}")));
        }
        let result = self.write(info, id, parent, acks);
        if let Err(e) = &result {
            if e.is_io() {
                self.poisoned = Some(e.to_string());
            }
            // The files of a failed attempt may not all be in shared/; hash them again.
            self.shared.forget();
            if let Err(abort) = protocol::abort(&mut *self.fs, &self.root, id) {
                tracing::error!(checkpoint = id.0, error = %abort, "cannot remove a failed checkpoint's files");
                self.poisoned.get_or_insert_with(|| abort.to_string());
            }
        }
        result
    }

    fn write(
        &mut self,
        info: &JobInfo,
        id: CheckpointId,
        parent: Option<CheckpointId>,
        mut acks: Vec<Ack>,
    ) -> Result<Published, Error> {
        acks.sort_by_key(|a| a.shard);
        let mut payloads = Vec::new();
        let mut shards = Vec::new();
        let (mut copied, mut reused) = (0u64, 0u64);
        let states = acks.first().map(|a| a.states.clone()).unwrap_or_default();
        protocol::begin(&mut *self.fs, &self.root, id)?;
        for a in acks {
            let source_position = info.source_position(&a, "checkpoint", id)?;
            let state = a.snapshot.map_err(|e| {
                Error::Executor(format!("shard {} could not snapshot checkpoint {}: {e}", a.shard, id.0))
            })?;
            let (format, files) = match state {
                ShardState::Full(collected) => {
                    let file = self.stream_snapshot(id, a.shard, collected)?;
                    copied += file.size;
                    (ShardFormat::Snapshot, vec![file])
                }
                ShardState::Rocksdb { dir, instance, .. } => {
                    let staged = self.shared.stage(&mut *self.fs, &self.root, id, a.shard, &dir, instance)?;
                    copied += staged.copied;
                    reused += staged.reused;
                    payloads.extend(staged.payloads);
                    (ShardFormat::Rocksdb, staged.files)
                }
            };
            let operator_state = a.operator_state;
            shards.push(ShardSnapshot {
                shard: a.shard,
                range: a.range,
                format,
                files,
                source_position,
                operator_state,
            });
        }
        let manifest = info.manifest(id, parent, states, shards);
        protocol::commit(&mut *self.fs, &self.root, &manifest, &payloads)?;
        let state_bytes = manifest.files().map(|f| f.size).sum();
        Ok(Published { copied, reused, state_bytes })
    }

    /// Encodes heap shard `shard`'s copied entries into its snapshot file of checkpoint
    /// `id`, streaming block by block through the file system (no whole-file buffer).
    fn stream_snapshot(&mut self, id: CheckpointId, shard: u16, collected: Collected) -> Result<FileRef, Error> {
        let path = layout::snapshot_file_path(id, shard);
        let mut file = OwnedFile::create(&mut *self.fs, &self.root, &path)?;
        let label = file.path().to_owned();
        let summary = collected.write_to(&mut file, label)?;
        file.finish()?;
        Ok(FileRef { path, size: summary.size, crc32: summary.crc32, local: None })
    }

    /// Removes all but the `retain` newest published checkpoints (and the `pinned`
    /// ones, which the job does not own) and the shared files only they referred to.
    pub fn collect_garbage(&mut self, retain: usize, pinned: &[CheckpointId]) -> Result<(), Error> {
        let plan = formats::gc::plan_gc(&*self.fs, &self.root, retain, pinned)?;
        formats::gc::execute_gc(&mut *self.fs, &self.root, &plan)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use formats::checkpoint::{self as protocol, Verify};
    use formats::fs::{FaultFs, FaultOp, Fs, StdFs};
    use formats::keygroup::{KeyGroup, KeyGroupRange};
    use formats::value::{StateDescriptor, StateKind, ValueEncoding};

    use super::*;
    use crate::runtime::checkpoint::config::FsFactory;
    use crate::state::backend::{Backend, StateId};
    use crate::state::heap::HeapBackend;
    use crate::state::snapshot;

    const RANGE: KeyGroupRange = KeyGroupRange { start: 0, end: 4 };

    fn info() -> JobInfo {
        JobInfo { job: "job".into(), key: ValueEncoding::U64, max_key_groups: 4, backend: "heap".into(), shards: 1 }
    }

    /// A heap shard's ack of checkpoint `id`, holding `id` entries.
    fn ack(id: u64) -> Ack {
        heap_ack(0, RANGE, id)
    }

    /// Heap shard `shard`'s ack of checkpoint `id` for key groups `range`, holding `id`
    /// entries.
    fn heap_ack(shard: u16, range: KeyGroupRange, id: u64) -> Ack {
        let d = StateDescriptor {
            name: "v".into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: None,
        };
        let mut b = HeapBackend::new(vec![d.clone()]);
        for k in 0..id {
            let mut key = Vec::new();
            let kg = range.start + (k % u64::from(range.end - range.start)) as u16;
            formats::statekey::encode_prefix(&mut key, KeyGroup(kg), &k.to_be_bytes(), &[]);
            b.put(StateId(0), &key, &k.to_le_bytes()).expect("put");
        }
        let collected = snapshot::collect(&mut b, range).expect("collect");
        Ack {
            shard,
            id,
            range,
            states: vec![d],
            snapshot: Ok(ShardState::Full(collected)),
            splits: None,
            operator_state: Vec::new(),
            sync: Duration::ZERO,
        }
    }

    #[test]
    fn after_an_fsync_error_the_writer_publishes_nothing_until_reopened() {
        // Pins redb's PreviousIo rule: once an fsync of a publish failed, the writer
        // refuses every later publish without touching the disk (no retried fsync that
        // could report success over lost pages), and a reopened writer publishes again.
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cfg = CheckpointConfig::new(tmp.path().to_path_buf(), Duration::from_secs(1));
        let syncs = Arc::new(AtomicUsize::new(0));
        let counter = syncs.clone();
        // Sync 0 makes the new root durable (Writer::open); sync 1 is begin's fsync.
        cfg.fs = Some(FsFactory(Arc::new(move || Box::new(FaultFs::new(StdFs, FaultOp::Sync, 1, counter.clone())))));
        let mut w = Writer::open(&cfg, "job").expect("open");
        let first = w.publish(&info(), CheckpointId(1), None, vec![ack(1)]).expect_err("the injected fsync error");
        assert!(first.is_io(), "{first}");
        assert!(w.poisoned().is_some(), "an fsync error poisons the writer");
        let syncs_before = syncs.load(Ordering::SeqCst);
        let second = w.publish(&info(), CheckpointId(2), None, vec![ack(2)]).expect_err("refused");
        assert!(second.to_string().contains("publishes nothing"), "{second}");
        assert_eq!(syncs.load(Ordering::SeqCst), syncs_before, "a poisoned writer does not touch the disk");
        let root = layout::checkpoint_root(tmp.path(), "job");
        assert!(!layout::checkpoint_dir(&root, CheckpointId(1)).exists(), "the failed attempt is aborted");
        assert!(!layout::checkpoint_dir(&root, CheckpointId(2)).exists(), "the refused one wrote nothing");
        let mut reopened = Writer::open(&cfg, "job").expect("reopen");
        reopened.publish(&info(), CheckpointId(3), None, vec![ack(3)]).expect("a reopened writer publishes");
        let latest = protocol::latest(&StdFs, &root, Verify::Checksums).expect("discover").latest.expect("published");
        assert_eq!(latest.checkpoint, CheckpointId(3));
    }

    #[test]
    fn every_crash_image_of_an_engine_publish_restores_the_old_or_the_new_checkpoint() {
        // Pins: the engine's half of the protocol is crash-safe. With checkpoint 1
        // published, checkpoint 2 (a heap shard's snapshot streamed block by block, a
        // RocksDB shard's new SST streamed into shared/ beside a reused one, its owned
        // files, the manifest) is cut after every one of its operations under every loss
        // model: restore finds 1 or 2 with every file intact, and 2 once publish returned.
        use formats::fs::SharedFs;
        use formats::simfs::SimFs;
        let sim = SharedFs(Arc::new(std::sync::Mutex::new(SimFs::new())));
        let lower = KeyGroupRange { start: 0, end: 2 };
        let upper = KeyGroupRange { start: 2, end: 4 };
        let mut cfg = CheckpointConfig::new("/ck".into(), Duration::from_secs(1));
        let handed = sim.clone();
        cfg.fs = Some(FsFactory(Arc::new(move || Box::new(handed.clone()))));
        let mut w = Writer::open(&cfg, "job").expect("open");
        let mut local = sim.clone();
        let mut rocks_ack = |id: u64, files: &[(&str, &[u8])]| {
            let dir = std::path::PathBuf::from(format!("/work/shard-1.chk-{id}"));
            formats::fs::create_dir_all(&mut local, &dir).expect("mkdir");
            for (name, bytes) in files {
                local.write(&dir.join(name), bytes).expect("write");
            }
            let mut a = heap_ack(1, upper, 0);
            a.snapshot = Ok(ShardState::Rocksdb { dir, instance: 7, expiry: None });
            a
        };
        let one = vec![heap_ack(0, lower, 300), rocks_ack(1, &[("000007.sst", b"old table"), ("CURRENT", b"M5")])];
        w.publish(&info(), CheckpointId(1), None, one).expect("publish 1");
        let two_rocks = rocks_ack(2, &[("000007.sst", b"old table"), ("000009.sst", b"new table"), ("CURRENT", b"M9")]);
        let before = {
            let mut s = sim.0.lock().expect("lock");
            s.clear_history();
            s.state().clone()
        };
        let two = vec![heap_ack(0, lower, 5000), two_rocks];
        let published = w.publish(&info(), CheckpointId(2), Some(CheckpointId(1)), two).expect("publish 2");
        assert!(published.reused > 0 && published.copied > 0, "one SST reused, one copied");
        let s = sim.0.lock().expect("lock");
        let last_step = s.history_len();
        assert!(last_step > 10, "the publish went through the simulated file system");
        let root = layout::checkpoint_root(Path::new("/ck"), "job");
        for (i, (step, model, image)) in s.crash_images(&before).into_iter().enumerate() {
            let found = protocol::latest(&image, &root, Verify::Checksums).expect("discover").latest;
            let id =
                found.map(|m| m.checkpoint).unwrap_or_else(|| panic!("nothing restorable after {step} ({model:?})"));
            assert!(id == CheckpointId(1) || id == CheckpointId(2), "after {step} ({model:?}): {id:?}");
            if i / 3 == last_step {
                assert_eq!(id, CheckpointId(2), "once publish returned, {model:?} keeps checkpoint 2");
            }
        }
    }
}
