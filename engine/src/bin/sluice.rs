//! `sluice`: runs a job. Exit codes: 0 success, 1 the job failed while running,
//! 2 bad usage, a bad job file, a missing input or an unusable data directory.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use engine::{available_cores, pipeline, BackendKind, CheckpointConfig, JobError, RestartStrategy, Restore, RunConfig};

#[derive(Parser)]
#[command(name = "sluice", version, about = "Thread-per-core stream processor with keyed state")]
struct Cli {
    /// Log lines on stderr: `text` for people (coloured only on a terminal), `json` for
    /// log shippers (one JSON object per line). The filter is SLUICE_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job described by a TOML file until its input ends or it is stopped
    /// (SIGTERM or SIGINT: sources stop, in-flight records drain, outputs flush).
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
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
    /// Start from a checkpoint: a chk-<n> directory, or a job's checkpoint root (its
    /// newest intact checkpoint). Any --shards value works.
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
}

fn run(args: RunArgs, log_format: LogFormat) -> Result<(), JobError> {
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
        cfg.restore = Some(Arc::new(Restore::load(from).map_err(JobError::Setup)?));
    }
    let interval = args.report_interval_s.or(plan.report_interval_s).unwrap_or(10);
    cfg.report_interval = (interval > 0).then(|| Duration::from_secs(interval));
    cfg.stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping exits at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, cfg.stop.clone());
        let _ = signal_hook::flag::register(sig, cfg.stop.clone());
    }
    tracing::info!(job = %plan.name, shards, backend = %args.state_backend, "starting");
    let result = pipeline::run(&plan, &cfg);
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
    Ok(())
}

/// Logs go to stderr. Colour codes only when stderr is a terminal (and NO_COLOR is not
/// set): journald, files and pipes get plain text. `json` writes one object per line
/// with the event's fields at the top level (`timestamp`, `level`, `message`, `target`,
/// and the event's own fields).
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Run(a) => run(a, cli.log_format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = ExitCode::from(match e {
                JobError::Setup(_) => 2,
                JobError::Run(_) => 1,
            });
            let mut causes = Vec::new();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                causes.push(s.to_string());
                src = s.source();
            }
            if cli.log_format == LogFormat::Json {
                tracing::error!(error = %e, causes = %causes.join("; "), "exiting with an error");
                return code;
            }
            eprintln!("error: {e}");
            for c in causes {
                eprintln!("  caused by: {c}");
            }
            code
        }
    }
}
