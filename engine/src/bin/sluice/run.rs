//! `sluice run`: a job from its TOML file, with its control endpoint.
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use engine::{
    available_cores, pipeline, BackendKind, CheckpointConfig, JobControl, JobError, RestartStrategy, Restore, RunConfig,
};

use crate::endpoint::{self, EndpointArgs};
use crate::LogFormat;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The job file.
    job: PathBuf,
    /// Shards (one executor each); defaults to one per available core. More shards than
    /// cores is allowed: they then share cores.
    #[arg(long)]
    shards: Option<u32>,
    /// Where keyed state lives.
    #[arg(long, value_name = "rocksdb|heap", default_value = "rocksdb")]
    state_backend: BackendKind,
    /// Directory for working state (RocksDB instances). Defaults to a fresh directory
    /// under the system's temporary directory, removed at exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stop with an error at the first malformed record instead of skipping it.
    #[arg(long)]
    fail_on_bad_record: bool,
    /// Write malformed records, with source, position and reason, to this file (JSON lines).
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Seconds between progress lines in the log (0: none).
    #[arg(long)]
    report_interval_s: Option<u64>,
    /// Do not pin shards to cores.
    #[arg(long)]
    no_pin: bool,
    /// Take checkpoints under DIR/<job>/ (overrides the job file's [checkpoint] dir).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Milliseconds between checkpoints (default: the job file's, else 10000).
    #[arg(long)]
    checkpoint_interval_ms: Option<u64>,
    /// Published checkpoints to keep (default: the job file's, else 1).
    #[arg(long)]
    checkpoints_retained: Option<usize>,
    /// Start from a checkpoint or a savepoint: a chk-<n> directory, a job's checkpoint
    /// root (its newest intact checkpoint) or a savepoint directory. Any --shards value
    /// and either --state-backend work. Its files are never modified or deleted.
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
    /// With --from: drop states the job no longer declares instead of refusing to start
    /// (Flink's --allowNonRestoredState).
    #[arg(long, requires = "from")]
    allow_non_restored_state: bool,
    /// Where savepoints go when `sluice savepoint` names no directory (each one in a new
    /// directory `savepoint-<job>-<id>-<nonce>` under this one).
    #[arg(long, value_name = "DIR")]
    savepoint_dir: Option<PathBuf>,
    /// The control endpoint's port: default 8081 (Flink's REST port; any free port when
    /// it is taken), 0 for any free port. The CLI finds it through the data directory.
    #[arg(long, value_name = "PORT")]
    control_port: Option<u16>,
    /// The address the control endpoint binds to. Anything but loopback requires
    /// --control-token-file.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    control_bind: std::net::IpAddr,
    /// A file holding the bearer token every control request must carry (readable only
    /// by its owner).
    #[arg(long, value_name = "FILE")]
    control_token_file: Option<PathBuf>,
    /// Do not open a control endpoint.
    #[arg(long, conflicts_with_all = ["control_port", "control_token_file"])]
    no_control: bool,
}

pub fn run(args: RunArgs, log_format: LogFormat) -> Result<(), JobError> {
    let mut plan = pipeline::load(&args.job).map_err(JobError::Setup)?;
    if args.fail_on_bad_record {
        plan.fail_on_bad_record = true;
    }
    if let Some(d) = args.dead_letter {
        plan.dead_letter = Some(d);
    }
    let shards = args.shards.unwrap_or_else(available_cores);
    let (data_dir, temporary) = match args.data_dir {
        Some(d) => (d, false),
        None => (std::env::temp_dir().join(format!("sluice-{}", std::process::id())), true),
    };
    let mut cfg = RunConfig::new(shards, args.state_backend, data_dir.clone());
    cfg.pin = !args.no_pin;
    let mut ck = plan.checkpoint.clone();
    if let Some(dir) = &args.checkpoint_dir {
        let mut c = ck.take().unwrap_or_else(|| CheckpointConfig::new(dir.clone(), Duration::from_secs(10)));
        c.dir = dir.clone();
        ck = Some(c);
    }
    if let Some(c) = &mut ck {
        if let Some(ms) = args.checkpoint_interval_ms {
            c.interval = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = args.checkpoints_retained {
            c.retain = n.max(1);
        }
    }
    cfg.restart = match (&plan.restart, &ck) {
        (Some(r), _) => r.clone(),
        (None, Some(_)) => RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_secs(1) },
        (None, None) => RestartStrategy::None,
    };
    cfg.checkpoint = ck;
    if let Some(from) = &args.from {
        let restore = Restore::load(from).map_err(JobError::Setup)?;
        cfg.restore = Some(Arc::new(restore.allow_non_restored_state(args.allow_non_restored_state)));
    }
    // Before the endpoint is published or any output file created: a second daemon on
    // this job's checkpoints touches nothing of the first one's.
    engine::lock_checkpoint_root(&plan.name, &mut cfg).map_err(JobError::Setup)?;
    let interval = args.report_interval_s.or(plan.report_interval_s).unwrap_or(10);
    cfg.report_interval = (interval > 0).then(|| Duration::from_secs(interval));
    cfg.stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping exits at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, cfg.stop.clone());
        let _ = signal_hook::flag::register(sig, cfg.stop.clone());
    }
    // The endpoint lives as long as the job: dropping it stops the server and removes
    // the published address.
    let _endpoint = if args.no_control {
        None
    } else {
        let savepoint_dir = args.savepoint_dir.as_ref().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()));
        let job = JobControl::new(&plan.name, &cfg, savepoint_dir);
        cfg.control = Some(job.clone());
        let ep = EndpointArgs {
            bind: args.control_bind,
            port: args.control_port,
            token_file: args.control_token_file.clone(),
        };
        match endpoint::start(&ep, job, &data_dir) {
            Ok(e) => Some(e),
            Err(e) => {
                engine::release_after_failed_setup(&mut cfg);
                return Err(JobError::Setup(engine::Error::Config(format!("control endpoint: {e}"))));
            }
        }
    };
    tracing::info!(job = %plan.name, shards, backend = %args.state_backend, "starting");
    let result = pipeline::run(&plan, &cfg);
    if matches!(result, Err(JobError::Setup(_))) {
        // Refused at setup (an output that cannot be created): leave nothing behind.
        engine::release_after_failed_setup(&mut cfg);
    }
    if let Some(c) = &cfg.control {
        c.wait_stop_reported();
    }
    drop(_endpoint);
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    let report = result?;
    if log_format == LogFormat::Json {
        tracing::info!(
            job = %plan.name,
            records_in = report.records_in,
            records_out = report.records_out,
            bad_records = report.bad_records,
            elapsed_s = report.elapsed.as_secs_f64(),
            records_per_s = report.records_per_s(),
            expired_removed = ?report.expired_per_state,
            shards,
            backend = %args.state_backend,
            "job finished"
        );
        return Ok(());
    }
    eprintln!(
        "job {} finished: {} records in, {} out, {} bad, {:.2} s, {:.0} records/s ({} shards, {})",
        plan.name,
        report.records_in,
        report.records_out,
        report.bad_records,
        report.elapsed.as_secs_f64(),
        report.records_per_s(),
        shards,
        args.state_backend
    );
    for (state, removed) in &report.expired_per_state {
        eprintln!("state {state}: {removed} expired entries removed");
    }
    Ok(())
}
