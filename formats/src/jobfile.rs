//! A checkpoint root's job file and lock (docs/FORMAT.md §15).
//!
//! A daemon that checkpoints a job takes an exclusive advisory lock on
//! `<root>/_job.lock` at setup and holds it until it exits, then publishes `<root>/_job`:
//! its pid, the number of checkpoints it retains and the checkpoints it pinned (the one
//! it was restored from). `statetool gc` takes the same lock for the whole of its run, so
//! it never removes files under a running job, and no daemon starts while it runs; on a
//! stopped job it reads `_job` for the retention and the pins the job itself would keep.
//!
//! The lock is on a file of its own because `_job` is replaced by a rename
//! ([`crate::publish`]): a lock belongs to the file (the inode) it was taken on, so a
//! lock on `_job` would stay with the old file and the next locker would find the new
//! one free. `_job.lock` is created once, never renamed and never removed by sluice.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind};
use crate::error::FormatError;
use crate::fs::Fs;
use crate::id::CheckpointId;
use crate::layout;
use crate::publish;

/// §15: the version of `_job`'s body.
pub const JOB_FILE_VERSION: u16 = 1;
/// §15: pinned checkpoints a job file may list (a daemon pins at most one today).
pub const PINNED_MAX: usize = 1024;

/// The body of `<root>/_job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub job: String,
    /// The daemon's process id (it may have exited since: the lock says whether it runs).
    pub pid: u32,
    /// Published checkpoints the job keeps (its `retain` setting), at least 1.
    pub retain: usize,
    /// Checkpoints of this root the job must keep whatever their age.
    pub pinned: Vec<CheckpointId>,
    /// When the daemon took the lock, ms since the Unix epoch.
    pub started_ms: u64,
}

fn invalid(reason: String) -> FormatError {
    FormatError::Invalid { what: "job file", offset: 0, reason }
}

impl JobFile {
    /// Invariants 15.1 and 15.2.
    pub fn validate(&self) -> Result<(), FormatError> {
        layout::validate_job_name(&self.job).map_err(invalid)?;
        if self.retain == 0 {
            return Err(invalid("retain must be at least 1".into()));
        }
        if self.pinned.len() > PINNED_MAX {
            return Err(invalid(format!("{} pinned checkpoints, at most {PINNED_MAX}", self.pinned.len())));
        }
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.validate()?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| invalid(e.to_string()))?;
        envelope::encode(Kind::JobFile, JOB_FILE_VERSION, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = envelope::decode(Kind::JobFile, bytes)?;
        if version != JOB_FILE_VERSION {
            return Err(FormatError::Invalid {
                what: "job file version",
                offset: envelope::VERSION_OFFSET,
                reason: format!("unsupported version {version}"),
            });
        }
        let f: JobFile = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        f.validate()?;
        Ok(f)
    }
}

/// Publishes `<root>/_job` (temporary sibling, fsync, rename, fsync the root).
pub fn publish(fs: &mut dyn Fs, root: &Path, job: &JobFile) -> Result<(), FormatError> {
    publish::publish_file(fs, &layout::job_file(root), &job.encode()?)
}

/// Reads `<root>/_job`; None when the root has none (no daemon has checkpointed there
/// since job files exist).
pub fn read(fs: &dyn Fs, root: &Path) -> Result<Option<JobFile>, FormatError> {
    let p = layout::job_file(root);
    if !fs.exists(&p) {
        return Ok(None);
    }
    let bytes = fs.read(&p).map_err(|e| FormatError::io(&p, e))?;
    JobFile::decode(&bytes).map(Some).map_err(|e| e.in_file(&p))
}

/// Why a checkpoint root could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: a daemon runs the job, or a `statetool gc` runs.
    #[error("{root} is locked by {}", holder_of(.holder))]
    Held { root: PathBuf, holder: Option<JobFile> },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn holder_of(holder: &Option<JobFile>) -> String {
    match holder {
        Some(j) => format!("pid {} (job {:?}, as its _job file says)", j.pid, j.job),
        None => "another process (no readable _job file names it)".into(),
    }
}

/// An exclusive lock on a checkpoint root, held until dropped (or the process exits).
#[derive(Debug)]
pub struct RootLock {
    _file: File,
    root: PathBuf,
}

impl RootLock {
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Takes the exclusive lock of checkpoint root `root` (which must exist) without
/// waiting: [`LockError::Held`], naming the holder's pid from `_job`, when another
/// process (or another handle in this one) holds it. Real file system only: advisory
/// locks are not part of the [`Fs`] seam.
pub fn lock(root: &Path) -> Result<RootLock, LockError> {
    let path = layout::job_lock_file(root);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Io { path: path.clone(), source })?;
    try_lock(root, path, file)
}

/// [`lock`] without creating anything: None when the root has no `_job.lock` (no daemon
/// of this version ever ran there, so none runs now). For readers that must not modify
/// the root (`statetool gc --dry-run`).
pub fn lock_existing(root: &Path) -> Result<Option<RootLock>, LockError> {
    let path = layout::job_lock_file(root);
    match File::open(&path) {
        Ok(file) => try_lock(root, path, file).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LockError::Io { path, source }),
    }
}

fn try_lock(root: &Path, path: PathBuf, file: File) -> Result<RootLock, LockError> {
    match file.try_lock() {
        Ok(()) => Ok(RootLock { _file: file, root: root.to_owned() }),
        Err(TryLockError::WouldBlock) => {
            Err(LockError::Held { root: root.to_owned(), holder: read(&crate::fs::StdFs, root).ok().flatten() })
        }
        Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JobFile {
        JobFile { job: "wc".into(), pid: 4242, retain: 3, pinned: vec![CheckpointId(7)], started_ms: 1_700_000_000_000 }
    }

    #[test]
    fn a_job_file_round_trips_and_is_checked() {
        // Pins §15's body and invariants: round trip, retain ≥ 1, a valid job name,
        // unknown fields refused, the envelope kind checked.
        let j = sample();
        assert_eq!(JobFile::decode(&j.encode().expect("encode")).expect("decode"), j);
        assert!(JobFile { retain: 0, ..sample() }.encode().is_err());
        assert!(JobFile { job: "../x".into(), ..sample() }.encode().is_err());
        let body = br#"{"job":"wc","pid":1,"retain":1,"pinned":[],"started_ms":0,"extra":1}"#;
        assert!(JobFile::decode(&envelope::encode(Kind::JobFile, 1, body).expect("enc")).is_err());
        let manifest_kind = envelope::encode(Kind::CheckpointManifest, 1, br#"{}"#).expect("enc");
        assert!(JobFile::decode(&manifest_kind).is_err());
    }

    #[test]
    fn a_second_lock_on_a_root_is_refused_naming_the_holder() {
        // Pins §15.3: one holder at a time, the refusal names the root and the pid in
        // `_job`, and the lock is free again once the holder drops it.
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        let held = lock(root).expect("first lock");
        publish(&mut crate::fs::StdFs, root, &sample()).expect("publish _job");
        let e = lock(root).expect_err("second lock");
        let msg = e.to_string();
        assert!(matches!(e, LockError::Held { .. }), "{msg}");
        assert!(msg.contains(&root.display().to_string()) && msg.contains("pid 4242"), "{msg}");
        assert!(matches!(lock_existing(root), Err(LockError::Held { .. })), "a read-only handle sees it too");
        drop(held);
        let again = lock(root).expect("free after drop");
        let empty = tempfile::tempdir().expect("tmp");
        assert!(matches!(lock_existing(empty.path()), Ok(None)), "nothing to lock, nothing created");
        assert!(!layout::job_lock_file(empty.path()).exists());
        assert_eq!(read(&crate::fs::StdFs, root).expect("read"), Some(sample()));
        assert_eq!(again.root(), root);
    }
}
