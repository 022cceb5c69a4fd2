//! Builds a binary of the workspace for a test that runs it but cannot name it through
//! `CARGO_BIN_EXE_*` (another package's binary). Included by `#[path]` from the tests of
//! engine, statetool and tests, so all three build it one way.
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `bin` of workspace package `package` into `profile_dir` (the directory of this
/// test build's binaries, `<target>/<profile>`), from the crate at `manifest_dir`, and
/// returns its path. A no-op when it is up to date, so never a stale binary; the test
/// fails, never skips, when that does not produce it.
pub fn build_in(profile_dir: &Path, package: &str, bin: &str, manifest_dir: &str) -> PathBuf {
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("profile directory name");
    let target_dir = profile_dir.parent().expect("the target directory");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--profile"])
        .arg(if profile == "debug" { "dev" } else { profile })
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(manifest_dir)
        .output()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(out.status.success(), "cannot build {bin}: {}", String::from_utf8_lossy(&out.stderr));
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "{bin} not found at {} after building it", path.display());
    path
}
