//! The setup phase of a run: everything a user can get wrong (job name, shard count,
//! source, sink, data directory, the checkpoint to restore) is checked before any
//! thread is started or any file is created. Errors here are setup errors (exit 2,
//! never restarted).
use std::path::{Path, PathBuf};

use std::sync::Arc;

use formats::fs::StdFs;
use formats::jobfile::{self, JobFile, LockError};
use formats::keygroup;
use formats::layout;

use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::graph::Program;
use crate::runtime::config::{HeldRoot, RunConfig};
use crate::state::backend::BackendKind;
use crate::state::context::StateRegistry;
use crate::state::loader::match_state;

/// Validates everything a user can get wrong before any thread or file is created.
pub fn preflight<S: 'static, T, K, P: KeyedProcessFunction, O: 'static>(
    p: &Program<S, T, K, P, O>,
    cfg: &RunConfig,
) -> Result<(), Error> {
    layout::validate_job_name(&p.name).map_err(Error::Config)?;
    keygroup::validate_shards(cfg.shards, cfg.max_key_groups).map_err(|e| Error::Config(e.to_string()))?;
    if cfg.batch_records == 0 || cfg.channel_batches == 0 {
        return Err(Error::Config("batch_records and channel_batches must be at least 1".into()));
    }
    check_restore(p, cfg)?;
    p.source.check()?;
    p.sink.check()
}

/// The checkpoint to restore must be this job's, with the same number of key groups,
/// and every state in it declared by the job with the same descriptor. The job's states
/// are what its process function's factory registers (run once here, on a scratch
/// registry).
fn check_restore<S, T, K, P: KeyedProcessFunction, O>(
    p: &Program<S, T, K, P, O>,
    cfg: &RunConfig,
) -> Result<(), Error> {
    check_restore_states(&p.name, cfg, true, |registry| (p.factory)(registry).map(|_| ()))
}

/// [`check_restore`] for a job named `job` whose states `register` declares, for callers
/// that must refuse a restore before they create anything (the TOML pipeline creates its
/// output file before the driver's preflight runs). `warn`: log each state skipped under
/// `--allow-non-restored-state` (once per run: only the preflight's check does).
pub(crate) fn check_restore_states(
    job: &str,
    cfg: &RunConfig,
    warn: bool,
    register: impl FnOnce(&mut StateRegistry) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(r) = &cfg.restore else { return Ok(()) };
    let m = &r.manifest;
    if m.job != job {
        return Err(Error::Config(format!("{} belongs to job {:?}, not {job:?}", r.describe(), m.job)));
    }
    if m.max_key_groups != cfg.max_key_groups {
        return Err(Error::Config(format!(
            "{} has {} key groups, the job {}",
            r.describe(),
            m.max_key_groups,
            cfg.max_key_groups
        )));
    }
    let mut registry = StateRegistry::new();
    register(&mut registry)?;
    let declared = registry.into_descriptors();
    for d in &m.states {
        match match_state(&declared, d, r.unmatched) {
            Ok(Some(_)) => {}
            Ok(None) if warn => tracing::warn!(state = %d.name, "state not restored: the job no longer declares it"),
            Ok(None) => {}
            Err(e) => return Err(Error::Config(format!("{}: {e}", r.describe()))),
        }
    }
    Ok(())
}

/// Checks that the data directory can be created and written, before anything else is
/// created. Only the RocksDB backend writes there.
pub fn check_data_dir(cfg: &RunConfig) -> Result<(), Error> {
    if cfg.backend != BackendKind::Rocksdb {
        return Ok(());
    }
    let existed = cfg.data_dir.exists();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| Error::io(&cfg.data_dir, e))?;
    let probe = layout::write_probe_file(&cfg.data_dir, std::process::id());
    let written = std::fs::write(&probe, b"").map_err(|e| Error::io(&cfg.data_dir, e));
    // The probe is ours and empty; failing to remove it changes nothing for the run.
    let _ = std::fs::remove_file(&probe);
    if written.is_err() && !existed {
        // Undo the directory we created for the probe; the write error is what matters.
        let _ = std::fs::remove_dir(&cfg.data_dir);
    }
    written
}

/// Creates the job's working directory for RocksDB, replacing a stale one.
pub fn prepare_work_dir(name: &str, cfg: &RunConfig) -> Result<Option<PathBuf>, Error> {
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

/// Takes the exclusive lock of the job's checkpoint root (created if missing) and
/// publishes its `_job` file (FORMAT.md §15): this process's pid, the job's `retain`, and
/// the checkpoint it restored from when that lies in the root (its garbage collection
/// keeps it). Nothing to do when the job takes no checkpoints, or when `cfg` already
/// holds the lock of that root (a TOML job takes it before creating its output files,
/// then the driver runs). The lock stays in `cfg` (and its clones) for the whole run.
/// Held by another process: a setup error naming the root and the holder's pid.
pub fn lock_checkpoint_root(job: &str, cfg: &mut RunConfig) -> Result<(), Error> {
    let Some(ck) = &cfg.checkpoint else { return Ok(()) };
    let root = layout::checkpoint_root(&ck.dir, job);
    if cfg.root_lock.as_ref().is_some_and(|l| l.root() == root) {
        return Ok(());
    }
    let mut created: Vec<PathBuf> =
        root.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).map(Path::to_path_buf).collect();
    created.reverse();
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let lock = jobfile::lock(&root).map_err(|e| match e {
        LockError::Io { path, source } => Error::io(path, source),
        held => Error::RootLocked(held),
    })?;
    let body = JobFile {
        job: job.to_owned(),
        pid: std::process::id(),
        retain: ck.retain.max(1),
        pinned: cfg.restore.as_ref().and_then(|r| r.pinned_in(&root)).into_iter().collect(),
        started_ms: crate::runtime::checkpoint::publish::now_ms(),
    };
    let held = HeldRoot { lock, created };
    if let Err(e) = jobfile::publish(&mut StdFs, &root, &body) {
        cfg.root_lock = Some(Arc::new(held));
        release_after_failed_setup(cfg);
        return Err(e.into());
    }
    cfg.root_lock = Some(Arc::new(held));
    Ok(())
}

/// Undoes [`lock_checkpoint_root`] for a setup that failed after it (an output file that
/// cannot be created): a job refused at setup leaves nothing behind. Releases the lock
/// and, when taking it created the root, removes `_job`, `_job.lock` and the directories
/// it created (only while empty: nothing else is ever removed).
pub fn release_after_failed_setup(cfg: &mut RunConfig) {
    let Some(held) = cfg.root_lock.take() else { return };
    let Ok(held) = Arc::try_unwrap(held) else { return };
    let HeldRoot { lock, created } = held;
    let root = lock.root().to_owned();
    drop(lock);
    if created.is_empty() {
        return;
    }
    let _ = std::fs::remove_file(layout::job_file(&root));
    let _ = std::fs::remove_file(layout::job_lock_file(&root));
    for d in created.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::checkpoint::config::CheckpointConfig;

    #[test]
    fn a_second_run_on_a_locked_checkpoint_root_is_refused_naming_the_pid() {
        // Pins FORMAT.md §15 in the engine: setup locks the root and writes `_job` (pid,
        // retain); the same config locks again without conflict (a TOML job locks before
        // the driver does); another run on the root is refused with `RootLocked` naming
        // the root and this pid, and succeeds once the first run's config is gone.
        let d = tempfile::tempdir().expect("tmp");
        let mut ck = CheckpointConfig::new(d.path().join("ck"), std::time::Duration::from_secs(1));
        ck.retain = 4;
        let mut first = RunConfig::new(1, BackendKind::Heap, d.path().join("data"));
        first.checkpoint = Some(ck);
        let mut second = first.clone();
        lock_checkpoint_root("wc", &mut first).expect("first lock");
        lock_checkpoint_root("wc", &mut first).expect("idempotent");
        let root = layout::checkpoint_root(&d.path().join("ck"), "wc");
        let job = jobfile::read(&StdFs, &root).expect("read").expect("_job");
        assert_eq!((job.pid, job.retain, job.pinned.len()), (std::process::id(), 4, 0));
        let e = lock_checkpoint_root("wc", &mut second).expect_err("second run");
        let msg = e.to_string();
        assert!(matches!(e, Error::RootLocked(_)), "{msg}");
        assert!(msg.contains(&root.display().to_string()) && msg.contains(&format!("pid {}", job.pid)), "{msg}");
        drop(first);
        lock_checkpoint_root("wc", &mut second).expect("free once the first run ended");
    }
}
