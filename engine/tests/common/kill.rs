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
