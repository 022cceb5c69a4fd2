//! `sluice`: runs a job (`run`), and talks to a running one through its control
//! endpoint (`savepoint`, `stop`, `cancel`, `status`, `list`). Exit codes of `run`: 0
//! success, 1 the job failed while running, 2 bad usage, a bad job file, a missing input
//! or an unusable data directory. Of the others: 0 done, 1 the operation failed (a
//! savepoint that could not be written), 2 bad usage, no such job, or a refused request.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::JobError;

mod endpoint;
mod remote;
mod run;

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
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job described by a TOML file until its input ends or it is stopped
    /// (SIGTERM or SIGINT: sources stop, in-flight records drain, outputs flush).
    Run(run::RunArgs),
    /// Take a savepoint of a running job and print its path.
    Savepoint(remote::SavepointArgs),
    /// Take a final savepoint, then stop the job (sources stop, outputs flush).
    Stop(remote::StopArgs),
    /// Stop a running job without a savepoint.
    Cancel(remote::Target),
    /// Show a running job: shards, records, checkpoints, savepoints.
    Status(remote::StatusArgs),
    /// Show the jobs running on this machine.
    List(remote::ListArgs),
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
        Command::Run(a) => run::run(a, cli.log_format),
        Command::Savepoint(a) => return remote::exit(remote::savepoint(&a)),
        Command::Stop(a) => return remote::exit(remote::stop(&a)),
        Command::Cancel(a) => return remote::exit(remote::cancel(&a)),
        Command::Status(a) => return remote::exit(remote::status(&a)),
        Command::List(a) => return remote::exit(remote::list(&a)),
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
