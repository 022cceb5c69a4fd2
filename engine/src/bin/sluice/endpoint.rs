//! The daemon's control endpoint: `control::Controller` over the job's `JobControl`
//! (engine types to the Flink-shaped JSON of `control::api`), the server started on its
//! own thread, and the endpoint published for the CLI (data directory and registry).
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use control::api::{self, AfterSavepoint, SavepointForm};
use control::discovery::Registration;
use control::{ApiError, Controller, Server, ServerConfig};
use engine::{CheckpointRecord, JobControl, JobState, Operation};
use formats::keygroup::range_for_shard;
use formats::savepoint::Form;
use formats::ShardId;

/// How `sluice run` opens its endpoint.
pub struct EndpointArgs {
    pub bind: IpAddr,
    /// None: 8081, or any free port when 8081 is taken.
    pub port: Option<u16>,
    pub token_file: Option<PathBuf>,
}

/// The running endpoint and its published address; both go when dropped (the
/// registration first).
pub struct Running {
    _registration: Arc<Mutex<Option<Registration>>>,
    _server: Server,
}

/// Starts the endpoint for `job`; it is published in `data_dir` and the registry once
/// the job has passed its setup phase (a job refused at setup creates nothing).
pub fn start(args: &EndpointArgs, job: Arc<JobControl>, data_dir: &Path) -> Result<Running, control::ControlError> {
    let controller: Arc<dyn Controller> = Arc::new(Endpoint(job.clone()));
    let cfg = |port| ServerConfig { bind: args.bind, port, token_file: args.token_file.clone() };
    let server = match args.port {
        Some(port) => Server::start(cfg(port), controller)?,
        // The default port is Flink's; a second daemon on the machine takes any free one
        // (the CLI finds it through the data directory or the registry).
        None => match Server::start(cfg(control::DEFAULT_PORT), controller.clone()) {
            Err(control::ControlError::Bind { message, .. }) => {
                tracing::warn!(port = control::DEFAULT_PORT, reason = %message, "control port taken; listening on a free port");
                Server::start(cfg(0), controller)?
            }
            started => started?,
        },
    };
    let endpoint = control::discovery::Endpoint {
        pid: std::process::id(),
        port: server.port(),
        address: server.local_address().to_string(),
        jid: job.jid.clone(),
        job: job.job.clone(),
        data_dir: data_dir.to_owned(),
        token_file: args.token_file.clone(),
    };
    let registration = Arc::new(Mutex::new(None));
    let slot = registration.clone();
    job.on_start(Box::new(move || {
        let published = std::fs::create_dir_all(&endpoint.data_dir)
            .map_err(|e| e.to_string())
            .and_then(|()| Registration::write(&endpoint).map_err(|e| e.to_string()));
        match published {
            Ok(r) => {
                tracing::info!(address = %endpoint.address, jid = %endpoint.jid, "control endpoint published");
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            }
            Err(e) => tracing::warn!(error = %e, "cannot publish the control endpoint; the CLI needs --address"),
        }
    }));
    Ok(Running { _registration: registration, _server: server })
}

struct Endpoint(Arc<JobControl>);

fn state(s: JobState) -> api::JobState {
    match s {
        JobState::Running => api::JobState::Running,
        JobState::Restarting => api::JobState::Initializing,
        JobState::Finished => api::JobState::Finished,
        JobState::Failed => api::JobState::Failed,
        JobState::Canceled => api::JobState::Canceled,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn stats(r: &CheckpointRecord) -> api::CheckpointStats {
    api::CheckpointStats {
        id: r.id,
        status: if r.completed { api::CheckpointStatus::Completed } else { api::CheckpointStatus::Failed },
        is_savepoint: r.savepoint,
        is_final: r.is_final,
        trigger_timestamp: r.trigger_ms as i64,
        latest_ack_timestamp: (r.trigger_ms + r.duration_ms) as i64,
        end_to_end_duration: r.duration_ms,
        state_size: r.state_bytes,
        checkpointed_size: r.copied_bytes,
        reused_size: r.reused_bytes,
        external_path: r.location.as_ref().map(|p| p.display().to_string()),
        failure_message: (!r.completed).then(|| r.failure.clone()),
        sync_duration: r.sync_ms,
        sync_duration_per_shard: r.sync_per_shard_ms.clone(),
    }
}

impl Endpoint {
    fn known(&self, jid: &str) -> Result<(), ApiError> {
        if jid == self.0.jid {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no job {jid} (this daemon runs {} as {})", self.0.job, self.0.jid)))
        }
    }
}

impl Controller for Endpoint {
    fn overview(&self) -> api::JobsOverview {
        let (j, s) = (&self.0, self.0.snapshot());
        let running = if s.state == JobState::Running { j.shards } else { 0 };
        api::JobsOverview {
            jobs: vec![api::JobOverview {
                jid: j.jid.clone(),
                name: j.job.clone(),
                state: state(s.state),
                start_time: j.started_ms as i64,
                end_time: -1,
                duration: (now_ms() - j.started_ms as i64).max(0) as u64,
                tasks: api::TaskCounts { total: j.shards, running },
            }],
        }
    }

    fn job(&self, jid: &str) -> Option<api::JobDetail> {
        self.known(jid).ok()?;
        let (j, s) = (&self.0, self.0.snapshot());
        let now = now_ms();
        let duration = (now - j.started_ms as i64).max(0) as u64;
        let shards = (0..j.shards as u16)
            .map(|i| {
                let r = range_for_shard(ShardId(i), j.shards, j.max_key_groups);
                api::ShardStatus {
                    shard: i,
                    key_groups: api::KeyGroups { start: r.start.into(), end: r.end.into() },
                    records_in: s.in_per_shard.get(usize::from(i)).copied().unwrap_or(0),
                    records_processed: s.processed_per_shard.get(usize::from(i)).copied().unwrap_or(0),
                }
            })
            .collect();
        let savepoints = s
            .savepoints
            .iter()
            .map(|r| api::SavepointInfo {
                request_id: r.request_id.clone().unwrap_or_default(),
                location: r.location.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                form: match r.form {
                    Some(Form::Native) => SavepointForm::Native,
                    _ => SavepointForm::Canonical,
                },
                checkpoint_id: r.id,
                bytes: r.state_bytes,
                duration_ms: r.duration_ms,
                completed_ms: (r.trigger_ms + r.duration_ms) as i64,
            })
            .collect();
        Some(api::JobDetail {
            jid: j.jid.clone(),
            name: j.job.clone(),
            state: state(s.state),
            start_time: j.started_ms as i64,
            end_time: -1,
            duration,
            now,
            backend: j.backend.clone(),
            parallelism: j.shards,
            max_key_groups: j.max_key_groups,
            records_in: s.records_in,
            records_out: s.records_out,
            records_per_second: if duration > 0 { s.records_in as f64 * 1000.0 / duration as f64 } else { 0.0 },
            shards,
            savepoints,
            expired: s
                .expired_per_state
                .iter()
                .map(|(state, removed)| api::StateExpired { state: state.clone(), removed: *removed })
                .collect(),
            state_entries: s.state_entries,
        })
    }

    fn checkpoints(&self, jid: &str) -> Option<api::CheckpointingStats> {
        self.known(jid).ok()?;
        let s = self.0.snapshot();
        let latest = |f: &dyn Fn(&CheckpointRecord) -> bool| s.history.iter().find(|r| f(r)).map(stats);
        let history: Vec<api::CheckpointStats> = s.history.iter().map(stats).collect();
        Some(api::CheckpointingStats {
            counts: api::CheckpointCounts {
                completed: s.completed,
                failed: s.failed,
                in_progress: u64::from(s.in_progress),
                total: s.completed + s.failed + u64::from(s.in_progress),
            },
            latest: api::LatestCheckpoints {
                completed: latest(&|r| r.completed && !r.savepoint),
                savepoint: latest(&|r| r.completed && r.savepoint),
                failed: latest(&|r| !r.completed),
            },
            history: history.clone(),
            sync_pause: api::PauseSummary::over(&history),
        })
    }

    fn trigger_savepoint(
        &self,
        jid: &str,
        req: api::SavepointRequest,
        after: AfterSavepoint,
    ) -> Result<String, ApiError> {
        self.known(jid)?;
        let form = match req.form {
            SavepointForm::Canonical => Form::Canonical,
            SavepointForm::Native => Form::Native,
        };
        let stop_after = !matches!(after, AfterSavepoint::KeepRunning);
        self.0.request_savepoint(req.target_directory, form, stop_after).map_err(|r| ApiError::new(r.status, r.message))
    }

    fn savepoint_status(&self, jid: &str, request_id: &str) -> Option<api::AsyncOperation> {
        self.known(jid).ok()?;
        Some(match self.0.operation(request_id)? {
            Operation::InProgress => api::AsyncOperation::in_progress(),
            Operation::Completed { location } => api::AsyncOperation::completed(location.display().to_string()),
            Operation::Failed { cause } => api::AsyncOperation::failed("SavepointError", cause),
        })
    }

    fn cancel(&self, jid: &str) -> Result<(), ApiError> {
        self.known(jid)?;
        self.0.cancel();
        Ok(())
    }
}
