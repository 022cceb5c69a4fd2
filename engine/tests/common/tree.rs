//! Every file under a directory with its length and a hash of its bytes: what "the
//! input is unchanged" means in the tests of the engine and of statetool (statetool's
//! tests include this file by path: one helper for both crates).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `root` (relative path) with its length and a hash of its bytes.
pub fn fingerprints(root: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    use std::hash::{DefaultHasher, Hasher};
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                let mut h = DefaultHasher::new();
                h.write(&bytes);
                out.insert(p.strip_prefix(root).expect("under root").to_owned(), (bytes.len() as u64, h.finish()));
            }
        }
    }
    out
}
