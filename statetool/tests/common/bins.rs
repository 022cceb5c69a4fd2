//! The binaries statetool's CLI tests run: `statetool` (this package's) and `sluice`
//! (the workspace's, built into the same target directory and profile).
#![allow(dead_code)] // each test file uses part of it
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "../../../engine/tests/common/cargo_build.rs"]
mod cargo_build;

/// Runs statetool: (exit code, stdout, stderr).
pub fn statetool(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_statetool")).args(args).output().expect("run statetool");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The workspace's `sluice`, built into this test's target directory and profile once
/// per test binary (a no-op when up to date, so never a stale one); the test fails,
/// never skips, if that does not produce it.
pub fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let statetool = Path::new(env!("CARGO_BIN_EXE_statetool"));
        let profile_dir = statetool.parent().expect("the binary's directory");
        cargo_build::build_in(profile_dir, "sluice-engine", "sluice", env!("CARGO_MANIFEST_DIR"))
    })
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
