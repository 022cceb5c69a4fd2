//! The setup phase of a run: everything a user can get wrong (job name, shard count,
//! source, sink, data directory, the checkpoint to restore) is checked before any
//! thread is started or any file is created. Errors here are setup errors (exit 2,
//! never restarted).
use std::path::PathBuf;

use formats::keygroup;
use formats::layout;

use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::graph::Program;
use crate::runtime::config::RunConfig;
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
