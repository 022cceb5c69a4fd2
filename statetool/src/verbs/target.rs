//! Resolving a PATH argument: a `chk-<n>` directory or a job's checkpoint root.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use formats::checkpoint::{self, Verify};
use formats::fs::StdFs;
use formats::manifest::{CheckpointId, Manifest};

pub struct Target {
    pub root: PathBuf,
    /// The checkpoints PATH names: one for `chk-<n>`, every one for a root.
    pub ids: Vec<CheckpointId>,
}

pub fn resolve(path: &Path) -> anyhow::Result<Target> {
    if !path.is_dir() {
        bail!("{}: not a directory (expected chk-<n> or a job's checkpoint root)", path.display());
    }
    if let Some((root, id)) = formats::layout::split_checkpoint_dir(path) {
        return Ok(Target { root, ids: vec![id] });
    }
    let ids = checkpoint::checkpoint_ids(&StdFs, path).with_context(|| format!("listing {}", path.display()))?;
    if ids.is_empty() {
        bail!("{}: no chk-<n> directories", path.display());
    }
    Ok(Target { root: path.to_path_buf(), ids })
}

/// The manifest of `id`, checking only that it decodes (not the files).
pub fn manifest(root: &Path, id: CheckpointId) -> anyhow::Result<Manifest> {
    let p = formats::layout::manifest_path(root, id);
    let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    Manifest::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

/// The newest checkpoint of a target that fully verifies, for verbs that read state.
pub fn newest_intact(t: &Target) -> anyhow::Result<Manifest> {
    if let [id] = t.ids.as_slice() {
        return checkpoint::load(&StdFs, &t.root, *id, Verify::Checksums).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let d = checkpoint::latest(&StdFs, &t.root, Verify::Checksums)?;
    d.latest.ok_or_else(|| anyhow::anyhow!("{}: no intact checkpoint", t.root.display()))
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B"))
    }
}
