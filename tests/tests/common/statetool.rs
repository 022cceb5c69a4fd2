//! Runs the workspace's `statetool` binary from tests that link the engine (which
//! statetool itself must not: it links no runtime).
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../engine/tests/common/cargo_build.rs"]
mod cargo_build;

/// The workspace's `statetool`, built into this test's target directory and profile once
/// per test binary (a no-op when up to date, so never a stale one): this test links the
/// engine to run a real TTL job, which statetool itself must not (it links no runtime).
pub fn statetool_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile directory");
        cargo_build::build_in(profile_dir, "statetool", "statetool", env!("CARGO_MANIFEST_DIR"))
    })
}

pub fn statetool(args: &[&str]) -> String {
    let o = Command::new(statetool_bin()).args(args).output().expect("run statetool");
    assert!(o.status.success(), "statetool {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("utf-8")
}
