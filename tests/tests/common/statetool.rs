//! Runs the workspace's `statetool` binary from tests that link the engine (which
//! statetool itself must not: it links no runtime).
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `statetool`, built into this test's target directory and profile once
/// per test binary (a no-op when up to date, so never a stale one): this test links the
/// engine to run a real TTL job, which statetool itself must not (it links no runtime).
pub fn statetool_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile directory");
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("profile directory name");
        let bin = profile_dir.join(format!("statetool{}", std::env::consts::EXE_SUFFIX));
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "statetool", "--bin", "statetool", "--profile"])
            .arg(if profile == "debug" { "dev" } else { profile })
            .env("CARGO_TARGET_DIR", profile_dir.parent().expect("target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo build -p statetool");
        assert!(out.status.success(), "cannot build statetool: {}", String::from_utf8_lossy(&out.stderr));
        assert!(bin.is_file(), "statetool not found at {} after building it", bin.display());
        bin
    })
}

pub fn statetool(args: &[&str]) -> String {
    let o = Command::new(statetool_bin()).args(args).output().expect("run statetool");
    assert!(o.status.success(), "statetool {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("utf-8")
}
