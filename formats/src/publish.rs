//! The one way a file that must survive a crash is written: a temporary file in the same
//! directory, write, fsync, rename over the final name, fsync the directory. After a
//! crash a reader sees either the old file or the complete new one, never a torn one
//! (docs/FORMAT.md §6).
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::FormatError;

pub fn fsync_dir(dir: &Path) -> Result<(), FormatError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| FormatError::io(dir, e))
}

/// Atomically publishes `bytes` at `path`.
pub fn publish_file(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| FormatError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| FormatError::io(&tmp, e))?;
        f.sync_all().map_err(|e| FormatError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| FormatError::io(path, e))?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_replaces() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("f");
        publish_file(&p, b"one").expect("first");
        publish_file(&p, b"two").expect("second");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(d.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind: {names:?}");
    }

    #[test]
    fn error_names_the_path() {
        let err = publish_file(Path::new("/nonexistent-dir/x"), b"").expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }
}
