//! The binaries statetool's CLI tests run: `statetool` (this package's) and `sluice`
//! (the one beside it in the same target directory and profile, built when missing,
//! never skipped).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Runs statetool: (exit code, stdout, stderr).
pub fn statetool(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_statetool")).args(args).output().expect("run statetool");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The `sluice` binary beside `statetool`, built when missing.
pub fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_statetool")).parent().expect("bin dir").to_path_buf();
        let bin = dir.join("sluice");
        if !bin.is_file() {
            let target = dir.parent().expect("target dir");
            let mut c = Command::new(env!("CARGO"));
            c.args(["build", "-p", "sluice-engine", "--bin", "sluice", "--target-dir"]).arg(target);
            if dir.file_name().is_some_and(|n| n == "release") {
                c.arg("--release");
            }
            let st = c.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("cargo build sluice");
            assert!(st.success() && bin.is_file(), "building {} failed", bin.display());
        }
        bin
    })
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
