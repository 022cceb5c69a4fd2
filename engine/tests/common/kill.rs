//! What the kill -9 loops share: each run's checkpoint log (JSON lines), read while it
//! runs to tell whether a kill landed while a checkpoint was being taken.
#![allow(dead_code, reason = "each test binary that includes `common` uses part of it")]

use std::path::Path;

/// The log filter of every run: warnings, plus the coordinator's checkpoint lines.
pub const LOG_FILTER: &str = "warn,engine::runtime::checkpoint=info";

/// What one run's log says about its checkpoints, read incrementally while it runs.
pub struct CheckpointLog {
    path: std::path::PathBuf,
    read: usize,
    /// Checkpoints triggered and not yet published or failed.
    pub open: std::collections::BTreeSet<u64>,
    pub triggered: u64,
    pub ended: u64,
}

impl CheckpointLog {
    pub fn new(path: std::path::PathBuf) -> Self {
        CheckpointLog { path, read: 0, open: Default::default(), triggered: 0, ended: 0 }
    }

    /// Reads the complete lines appended since the last call.
    pub fn update(&mut self) {
        let Ok(bytes) = std::fs::read(&self.path) else { return };
        let Some(tail) = bytes.get(self.read..) else { return };
        let Some(end) = tail.iter().rposition(|b| *b == b'\n') else { return };
        for line in tail[..end].split(|b| *b == b'\n') {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
            let Some(id) = v["checkpoint"].as_u64() else { continue };
            match v["message"].as_str() {
                Some("checkpoint triggered") => {
                    self.triggered += 1;
                    self.open.insert(id);
                }
                Some("checkpoint published" | "checkpoint failed") => {
                    self.ended += 1;
                    self.open.remove(&id);
                }
                _ => {}
            }
        }
        self.read += end + 1;
    }

    pub fn in_progress(&mut self) -> bool {
        self.update();
        !self.open.is_empty()
    }
}

pub fn published(root: &Path) -> bool {
    std::fs::read_dir(root).is_ok_and(|rd| rd.flatten().any(|e| e.path().join("_manifest").exists()))
}

/// How one kill cycle ended.
pub enum CycleEnd {
    /// The run ended by itself.
    Exited(std::process::ExitStatus),
    /// Killed with SIGKILL; `during_checkpoint`: its log had a checkpoint open when it
    /// died (decided from what the process wrote, not from what was seen before).
    Killed { during_checkpoint: bool },
}

/// Lets `child` run for `wait`, or when `aim`, until its log shows an open checkpoint
/// (at most `wait`), then kills it with SIGKILL unless it ended by itself.
pub fn run_then_kill(
    child: &mut std::process::Child,
    log: &mut CheckpointLog,
    aim: bool,
    wait: std::time::Duration,
) -> CycleEnd {
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
        if aim && log.in_progress() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(if aim { 100 } else { 2000 }));
    }
    if let Some(status) = child.try_wait().expect("wait") {
        return CycleEnd::Exited(status);
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    CycleEnd::Killed { during_checkpoint: log.in_progress() }
}
