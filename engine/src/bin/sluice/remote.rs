//! The CLI verbs that talk to a running job's control endpoint: `savepoint`, `stop`,
//! `cancel`, `status`, `list` (and `savepoint --dispose`, which needs no job). People
//! read tables on stdout; `--json` prints the endpoint's JSON for scripts. Progress and
//! errors go to stderr.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use control::api::{SavepointForm, SavepointRequest, StopRequest};
use control::{Client, ControlError, Token};

/// Which running job: the one publishing in `--data-dir`, the one at `--address`, or
/// the only one on this machine.
#[derive(clap::Args)]
pub struct Target {
    /// The job's data directory (where `sluice run` published its endpoint).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The endpoint's address, `host:port`.
    #[arg(long, value_name = "HOST:PORT")]
    address: Option<String>,
    /// A bearer token file, when the endpoint requires one and did not publish it.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SavepointArgs {
    #[command(flatten)]
    target: Target,
    /// The savepoint's directory (must not exist, or be empty). Default: a new directory
    /// under the job's --savepoint-dir.
    #[arg(long, value_name = "DIR", conflicts_with = "dispose")]
    to: Option<PathBuf>,
    /// canonical (backend-independent; restores into either backend) or native (the
    /// RocksDB files; faster to write and to restore).
    #[arg(long, value_name = "canonical|native", default_value = "canonical", value_parser = parse_form)]
    form: SavepointForm,
    /// Remove the savepoint DIR (after checking that it is one) instead; needs no job.
    #[arg(long, value_name = "DIR")]
    dispose: Option<PathBuf>,
    /// Give up waiting after this many seconds (the savepoint goes on).
    #[arg(long, value_name = "S", default_value_t = 3600)]
    timeout_s: u64,
}

#[derive(clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    target: Target,
    /// Take a final savepoint first, into DIR (default: under the job's --savepoint-dir).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    savepoint: Option<Option<PathBuf>>,
    #[arg(long, value_name = "canonical|native", default_value = "canonical", value_parser = parse_form)]
    form: SavepointForm,
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "S", default_value_t = 3600)]
    timeout_s: u64,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Print the endpoint's JSON (`{"job": ..., "checkpoints": ...}`).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON: one object per job.
    #[arg(long)]
    json: bool,
}

fn parse_form(s: &str) -> Result<SavepointForm, String> {
    SavepointForm::parse(s).ok_or_else(|| format!("{s:?} is not a savepoint form (canonical or native)"))
}

/// What a verb failed with, and its exit code.
pub enum Failure {
    /// Bad usage, no such job, a refused request: exit 2.
    Usage(String),
    /// The operation itself failed (a savepoint that could not be written): exit 1.
    Failed(String),
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::SavepointFailed { .. } | ControlError::Timeout { .. } => Failure::Failed(e.to_string()),
            e => Failure::Usage(e.to_string()),
        }
    }
}

pub fn exit(r: Result<(), Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

fn connect(t: &Target) -> Result<(Client, String), Failure> {
    let endpoint = control::discovery::find(t.data_dir.as_deref(), t.address.as_deref())?;
    let mut client = Client::new(endpoint)?;
    if let Some(f) = &t.token_file {
        client = client.with_token(Some(Token::read(f)?));
    }
    let jid = client.job_id()?;
    Ok((client, jid))
}

/// Prints how long a savepoint has been running, every few seconds, on stderr.
fn progress(what: &'static str) -> impl FnMut(Duration) {
    let mut last = Instant::now();
    move |waited| {
        if last.elapsed() >= Duration::from_secs(5) {
            eprintln!("{what}: still writing after {:.0} s", waited.as_secs_f64());
            last = Instant::now();
        }
    }
}

pub fn savepoint(a: &SavepointArgs) -> Result<(), Failure> {
    if let Some(dir) = &a.dispose {
        formats::savepoint::dispose(&mut formats::fs::StdFs, dir).map_err(|e| Failure::Usage(e.to_string()))?;
        eprintln!("removed savepoint {}", dir.display());
        return Ok(());
    }
    let (client, jid) = connect(&a.target)?;
    let to = a.to.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let rid =
        client.trigger_savepoint(&jid, &SavepointRequest { target_directory: to, form: a.form, cancel_job: false })?;
    eprintln!("savepoint {rid} triggered");
    let location = client.wait_savepoint(&jid, &rid, Duration::from_secs(a.timeout_s), &mut progress("savepoint"))?;
    println!("{location}");
    Ok(())
}

pub fn stop(a: &StopArgs) -> Result<(), Failure> {
    let (client, jid) = connect(&a.target)?;
    let Some(dir) = &a.savepoint else {
        client.cancel(&jid)?;
        eprintln!("stopping job {jid} without a savepoint");
        return wait_gone(&client, &jid, a.timeout_s);
    };
    let to = dir.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let rid = client.stop(&jid, &StopRequest { target_directory: to, form: a.form, drain: false })?;
    let location = client.wait_savepoint(&jid, &rid, Duration::from_secs(a.timeout_s), &mut progress("stop"))?;
    println!("{location}");
    wait_gone(&client, &jid, a.timeout_s)
}

/// Waits until the job has ended (its endpoint stops answering, or says it ended).
fn wait_gone(client: &Client, jid: &str, timeout_s: u64) -> Result<(), Failure> {
    let until = Instant::now() + Duration::from_secs(timeout_s);
    while Instant::now() < until {
        match client.job(jid) {
            Err(ControlError::Connect { .. }) => {
                eprintln!("job {jid} stopped");
                return Ok(());
            }
            Ok(j) if matches!(j.state.as_str(), "FINISHED" | "CANCELED" | "FAILED") => {
                eprintln!("job {jid} {}", j.state.as_str().to_lowercase());
                return Ok(());
            }
            _ => std::thread::sleep(control::POLL_INTERVAL),
        }
    }
    Err(Failure::Failed(format!("job {jid} has not stopped after {timeout_s} s")))
}

pub fn cancel(t: &Target) -> Result<(), Failure> {
    let (client, jid) = connect(t)?;
    client.cancel(&jid)?;
    eprintln!("cancelling job {jid}");
    wait_gone(&client, &jid, 3600)
}

pub fn status(a: &StatusArgs) -> Result<(), Failure> {
    let (client, jid) = connect(&a.target)?;
    let (job, checkpoints) = (client.job(&jid)?, client.checkpoints(&jid)?);
    if a.json {
        let v = serde_json::json!({ "job": job, "checkpoints": checkpoints });
        println!("{}", serde_json::to_string_pretty(&v).map_err(|e| Failure::Failed(e.to_string()))?);
    } else {
        print!("{}", control::render::status(&job, &checkpoints));
    }
    Ok(())
}

pub fn list(a: &ListArgs) -> Result<(), Failure> {
    let mut rows = Vec::new();
    for e in control::discovery::running()? {
        let overview =
            Client::new(e.clone()).ok().and_then(|c| c.overview().ok()).and_then(|o| o.jobs.into_iter().next());
        rows.push((e, overview));
    }
    if a.json {
        let v: Vec<_> = rows.iter().map(|(e, j)| serde_json::json!({ "endpoint": e, "job": j })).collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(|e| Failure::Failed(e.to_string()))?);
    } else {
        print!("{}", control::render::list(&rows));
    }
    Ok(())
}
