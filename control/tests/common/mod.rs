//! A fake job behind the control endpoint, for the server and client tests.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::sync::Mutex;

use control::api::{
    AfterSavepoint, AsyncOperation, CheckpointCounts, CheckpointStats, CheckpointStatus, CheckpointingStats, JobDetail,
    JobOverview, JobState, JobsOverview, KeyGroups, LatestCheckpoints, SavepointRequest, ShardStatus, StateExpired,
    TaskCounts,
};
use control::{ApiError, Controller};

pub const JID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// The fake's record of what it was asked.
#[derive(Debug, Default)]
pub struct Calls {
    pub triggered: Vec<(SavepointRequest, AfterSavepoint)>,
    pub savepoints: BTreeMap<String, AsyncOperation>,
    pub cancelled: bool,
}

#[derive(Debug, Default)]
pub struct FakeJob {
    pub calls: Mutex<Calls>,
}

impl FakeJob {
    /// Completes a running savepoint at `location`.
    pub fn complete(&self, request_id: &str, location: &str) {
        self.calls.lock().unwrap().savepoints.insert(request_id.into(), AsyncOperation::completed(location));
    }
    pub fn fail(&self, request_id: &str, message: &str) {
        self.calls
            .lock()
            .unwrap()
            .savepoints
            .insert(request_id.into(), AsyncOperation::failed("SavepointError", message));
    }
    pub fn cancelled(&self) -> bool {
        self.calls.lock().unwrap().cancelled
    }
}

pub fn overview() -> JobOverview {
    JobOverview {
        jid: JID.into(),
        name: "orders".into(),
        state: JobState::Running,
        start_time: 1_700_000_000_000,
        end_time: -1,
        duration: 3_723_000,
        tasks: TaskCounts { total: 2, running: 2 },
    }
}

pub fn detail() -> JobDetail {
    let shard = |i: u16, start, end| ShardStatus {
        shard: i,
        key_groups: KeyGroups { start, end },
        records_in: 1000 + u64::from(i),
        records_processed: 990,
    };
    JobDetail {
        jid: JID.into(),
        name: "orders".into(),
        state: JobState::Running,
        start_time: 1_700_000_000_000,
        end_time: -1,
        duration: 3_723_000,
        now: 1_700_003_723_000,
        backend: "rocksdb".into(),
        parallelism: 2,
        max_key_groups: 128,
        records_in: 2001,
        records_out: 1980,
        records_per_second: 4_830_000.0,
        shards: vec![shard(0, 0, 64), shard(1, 64, 128)],
        savepoints: vec![],
        expired: vec![StateExpired { state: "seen".into(), removed: 1_234_567 }],
        state_entries: 4321,
    }
}

pub fn checkpoint(id: u64) -> CheckpointStats {
    CheckpointStats {
        id,
        status: CheckpointStatus::Completed,
        is_savepoint: false,
        is_final: false,
        trigger_timestamp: 1_700_000_001_000,
        latest_ack_timestamp: 1_700_000_001_250,
        end_to_end_duration: 250,
        state_size: 3 * 1024 * 1024 * 1024,
        checkpointed_size: 5 * 1024 * 1024,
        reused_size: 3 * 1024 * 1024 * 1024 - 5 * 1024 * 1024,
        external_path: Some(format!("/data/chk-{id}")),
        failure_message: None,
        sync_duration: 12,
        sync_duration_per_shard: vec![12, 3 + id],
    }
}

pub fn stats() -> CheckpointingStats {
    CheckpointingStats {
        counts: CheckpointCounts { completed: 2, failed: 0, in_progress: 0, total: 2 },
        latest: LatestCheckpoints { completed: Some(checkpoint(7)), savepoint: None, failed: None },
        history: vec![checkpoint(7), checkpoint(6)],
        sync_pause: control::api::PauseSummary::over(&[checkpoint(7), checkpoint(6)]),
    }
}

fn known(jid: &str) -> Result<(), ApiError> {
    match jid {
        JID => Ok(()),
        "panic" => panic!("the fake controller panics for job `panic`"),
        _ => Err(ApiError::not_found(format!("job {jid} not found"))),
    }
}

impl Controller for FakeJob {
    fn overview(&self) -> JobsOverview {
        JobsOverview { jobs: vec![overview()] }
    }
    fn job(&self, jid: &str) -> Option<JobDetail> {
        known(jid).ok().map(|()| detail())
    }
    fn checkpoints(&self, jid: &str) -> Option<CheckpointingStats> {
        known(jid).ok().map(|()| stats())
    }
    fn trigger_savepoint(&self, jid: &str, req: SavepointRequest, after: AfterSavepoint) -> Result<String, ApiError> {
        known(jid)?;
        let mut calls = self.calls.lock().unwrap();
        if calls.savepoints.values().any(|op| op.outcome().is_none()) {
            return Err(ApiError::conflict("a savepoint is already running"));
        }
        if let Some(dir) = &req.target_directory {
            if dir.exists() {
                return Err(ApiError::conflict(format!("the target {} exists", dir.display())));
            }
        }
        let request_id = format!("sp-{}", calls.triggered.len() + 1);
        calls.triggered.push((req, after));
        calls.savepoints.insert(request_id.clone(), AsyncOperation::in_progress());
        Ok(request_id)
    }
    fn savepoint_status(&self, jid: &str, request_id: &str) -> Option<AsyncOperation> {
        known(jid).ok()?;
        self.calls.lock().unwrap().savepoints.get(request_id).cloned()
    }
    fn cancel(&self, jid: &str) -> Result<(), ApiError> {
        known(jid)?;
        self.calls.lock().unwrap().cancelled = true;
        Ok(())
    }
}

/// Sends raw bytes to `address` and returns the status and body of the answer.
pub fn raw(address: std::net::SocketAddr, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
