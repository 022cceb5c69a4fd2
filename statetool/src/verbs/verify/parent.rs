//! The parent chain resolves (FORMAT.md §9.4, §10): a checkpoint's parent is older, and
//! each ancestor whose `chk-<n>` directory is still in the root has a manifest that
//! decodes, names itself and the same job. An ancestor that garbage collection removed
//! ends the walk: that is normal (GC keeps the newest checkpoints, and an incremental
//! checkpoint lists every shared file it needs), so it is information, provided every
//! shared file this checkpoint lists is present. A directory without a manifest counts
//! as removed: GC removes the manifest first (§10). A savepoint has no parent (§13).
//!
//! Ancestors are decoded once per run ([`Chain`]), so verifying a root of n checkpoints
//! decodes each manifest once, not once per descendant.
use std::collections::BTreeMap;
use std::path::Path;

use formats::layout;
use formats::manifest::{CheckpointId, Manifest};

/// An ancestor as far as the walk needs it: `None` when GC removed it, else the job and
/// the parent its manifest names.
type Ancestor = Option<(String, Option<CheckpointId>)>;

/// What is known of the ancestors met so far: their parent, or why they do not resolve.
#[derive(Debug, Default)]
pub struct Chain {
    /// Per checkpoint id: `Ok(None)` removed by GC, `Ok(Some(m))` its decoded manifest's
    /// (job, parent), `Err` why its manifest does not load.
    seen: BTreeMap<CheckpointId, Result<Ancestor, String>>,
}

/// How a chain ended: as it should (`Ok`, with what to say), or not.
pub type Outcome = Result<String, String>;

impl Chain {
    /// Walks the chain of checkpoint `m` of `root`.
    pub fn check(&mut self, root: &Path, m: &Manifest) -> Outcome {
        let Some(first) = m.parent else { return Ok("none (a full checkpoint)".into()) };
        let (mut child, mut next) = (m.checkpoint, first);
        let mut loaded = 0u32;
        loop {
            if next >= child {
                return Err(format!(
                    "{}: parent {} is not older than checkpoint {}",
                    layout::manifest_path(root, child).display(),
                    next.0,
                    child.0
                ));
            }
            match self.ancestor(root, next)? {
                Some((job, _)) if job != m.job => {
                    return Err(format!(
                        "{}: ancestor of job {job:?}, not {:?}",
                        layout::manifest_path(root, next).display(),
                        m.job
                    ))
                }
                Some((_, Some(p))) => {
                    loaded += 1;
                    (child, next) = (next, p);
                }
                Some((_, None)) => {
                    return Ok(format!("{} (and {} ancestor(s)) load", first_name(first), loaded));
                }
                None => return collected(root, m, first, next, loaded),
            }
        }
    }

    /// Ancestor `id`: `None` if removed, its (job, parent) if its manifest loads.
    fn ancestor(&mut self, root: &Path, id: CheckpointId) -> Result<Ancestor, String> {
        self.seen
            .entry(id)
            .or_insert_with(|| {
                let mp = layout::manifest_path(root, id);
                if !mp.exists() {
                    return Ok(None);
                }
                let bytes = std::fs::read(&mp).map_err(|e| format!("{}: {e}", mp.display()))?;
                let a = Manifest::decode(&bytes).map_err(|e| e.in_file(&mp).to_string())?;
                if a.checkpoint != id {
                    return Err(format!("{}: names checkpoint {}", mp.display(), a.checkpoint.0));
                }
                Ok(Some((a.job, a.parent)))
            })
            .clone()
    }
}

fn first_name(id: CheckpointId) -> String {
    format!("parent {}", layout::checkpoint_dir_name(id))
}

/// The walk reached `gone`, removed by GC: fine when every shared file `m` lists is
/// present (`loaded` ancestors before it loaded).
fn collected(root: &Path, m: &Manifest, parent: CheckpointId, gone: CheckpointId, loaded: u32) -> Outcome {
    let shared: Vec<&str> = m.files().map(|f| f.path.as_str()).filter(|p| layout::is_in_shared(p)).collect();
    let missing: Vec<&str> = shared.iter().copied().filter(|p| !layout::resolve(root, p).exists()).collect();
    let what = if gone == parent {
        format!("{} collected", first_name(parent))
    } else {
        format!("{} and {loaded} ancestor(s) load, {} collected", first_name(parent), layout::checkpoint_dir_name(gone))
    };
    match missing.as_slice() {
        [] => Ok(format!("{what}; the {} shared file(s) this checkpoint lists are present", shared.len())),
        [first, ..] => Err(format!(
            "{what}, and {} of the shared files this checkpoint lists are missing: {} (first of them)",
            missing.len(),
            layout::resolve(root, first).display()
        )),
    }
}
