//! Garbage collection of a checkpoint root (docs/FORMAT.md §10): a pure plan computed
//! from the manifests and what the caller says must be kept ([`Keep`]), then the
//! removals it implies. The engine keeps its `retain` newest checkpoints and the one it
//! was restored from; `statetool gc` adds what the job's `_job` file pins (§15) and what
//! the operator names (`--keep-savepoint`).
//!
//! Must not run while a checkpoint is being written: the engine runs it between
//! checkpoints, statetool under the root's lock.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::canary::{planted, Canary};
use crate::error::FormatError;
use crate::fs::Fs;
use crate::layout;
use crate::manifest::{CheckpointId, Manifest};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |e| FormatError::io(path, e)
}

/// What a garbage collection keeps besides nothing: the `retain` newest published
/// checkpoints (at least 1), and whatever the other fields name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keep {
    pub retain: usize,
    /// Kept whatever their age: a checkpoint a job was restored from (the job does not
    /// own it, §10), the `pinned` of `_job` (§15).
    pub pinned: Vec<CheckpointId>,
    /// Kept because the operator named them (`statetool gc --keep-savepoint chk-<n>`).
    pub named: Vec<CheckpointId>,
    /// Files of the root (relative paths, as a manifest writes them) that something
    /// outside it refers to, with who (a savepoint's path): a shared file is kept, a
    /// file under `chk-<n>/` keeps that whole directory.
    pub files: BTreeMap<String, Vec<String>>,
}

/// Why a checkpoint directory is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// One of the `retain` newest published checkpoints.
    Newest,
    /// Pinned ([`Keep::pinned`]).
    Pinned,
    /// Named by the operator ([`Keep::named`]).
    Named,
    /// It holds a file that this holder (a savepoint) refers to.
    HoldsFileOf(String),
}

/// What garbage collection keeps and removes, and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Published checkpoints kept, newest first.
    pub retained: Vec<CheckpointId>,
    /// Why each kept directory stays: every retained checkpoint, and any unpublished
    /// directory that holds a file a holder refers to.
    pub why: BTreeMap<CheckpointId, Vec<Why>>,
    /// Published, but none of the reasons of [`Why`] applies.
    pub subsumed: Vec<CheckpointId>,
    /// Directories without a valid manifest, older than the newest published checkpoint.
    pub aborted: Vec<CheckpointId>,
    /// Directories without a valid manifest, newer than the newest published one: an
    /// attempt in progress or interrupted. Left alone.
    pub unfinished: Vec<CheckpointId>,
    /// Names in `shared/` nothing kept refers to.
    pub orphaned_shared: Vec<String>,
    /// Shared files kept, with the retained checkpoints that refer to them.
    pub live_shared: BTreeMap<String, Vec<CheckpointId>>,
    /// Shared files kept because a holder outside the root refers to them, with who.
    pub held_shared: BTreeMap<String, Vec<String>>,
}

/// Plans garbage collection keeping the `retain` newest published checkpoints, and the
/// `pinned` ones whatever their age. Computed from the manifests alone.
pub fn plan_gc(fs: &dyn Fs, root: &Path, retain: usize, pinned: &[CheckpointId]) -> Result<GcPlan, FormatError> {
    plan_gc_keeping(fs, root, &Keep { retain, pinned: pinned.to_vec(), ..Keep::default() })
}

/// Plans garbage collection keeping everything `keep` names. Computed from the
/// manifests alone; nothing is read but manifests and directory listings.
pub fn plan_gc_keeping(fs: &dyn Fs, root: &Path, keep: &Keep) -> Result<GcPlan, FormatError> {
    let mut plan = GcPlan::default();
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut invalid = Vec::new();
    for id in crate::checkpoint::checkpoint_ids(fs, root)? {
        let mp = layout::manifest_path(root, id);
        match fs.read(&mp).ok().and_then(|b| Manifest::decode(&b).ok()) {
            Some(m) if m.checkpoint == id => manifests.push(m),
            _ => invalid.push(id),
        }
    }
    // Which directories hold a file someone outside the root refers to.
    let mut holders: BTreeMap<CheckpointId, Vec<String>> = BTreeMap::new();
    for (path, who) in &keep.files {
        match layout::shared_name_of(path) {
            Some(name) => {
                plan.held_shared.entry(name.to_owned()).or_default().extend(who.iter().cloned());
            }
            None => {
                let dir = path.split('/').next().and_then(layout::parse_checkpoint_dir_name);
                if let Some(id) = dir {
                    holders.entry(id).or_default().extend(who.iter().cloned());
                }
            }
        }
    }
    let pinned = |id: &CheckpointId| keep.pinned.contains(id) && !planted(Canary::GcDropsPinned);
    for (i, m) in manifests.iter().enumerate() {
        let id = m.checkpoint;
        let mut why = Vec::new();
        if i < keep.retain.max(1) {
            why.push(Why::Newest);
        }
        if pinned(&id) {
            why.push(Why::Pinned);
        }
        if keep.named.contains(&id) {
            why.push(Why::Named);
        }
        why.extend(holders.remove(&id).unwrap_or_default().into_iter().map(Why::HoldsFileOf));
        if why.is_empty() {
            plan.subsumed.push(id);
            continue;
        }
        plan.retained.push(id);
        plan.why.insert(id, why);
        for f in m.files() {
            if let Some(name) = layout::shared_name_of(&f.path) {
                let by = plan.live_shared.entry(name.to_owned()).or_default();
                // A checkpoint may list one shared file more than once (§9).
                if by.last() != Some(&id) {
                    by.push(id);
                }
            }
        }
    }
    let newest = manifests.first().map(|m| m.checkpoint);
    for id in invalid {
        if let Some(who) = holders.remove(&id) {
            plan.why.insert(id, who.into_iter().map(Why::HoldsFileOf).collect());
        } else if newest.is_some_and(|n| id < n) {
            plan.aborted.push(id);
        } else {
            plan.unfinished.push(id);
        }
    }
    let shared = layout::shared_dir(root);
    if fs.is_dir(&shared) {
        let kept: BTreeSet<&String> = plan.live_shared.keys().chain(plan.held_shared.keys()).collect();
        plan.orphaned_shared =
            fs.list(&shared).map_err(io(&shared))?.into_iter().filter(|n| !kept.contains(n)).collect();
    }
    Ok(plan)
}

/// Carries out a plan: first unpublishes and removes checkpoints (manifest first, so a
/// crash midway never leaves a published checkpoint with missing files), then removes
/// orphaned shared files.
pub fn execute_gc(fs: &mut dyn Fs, root: &Path, plan: &GcPlan) -> Result<(), FormatError> {
    for id in plan.subsumed.iter().chain(&plan.aborted) {
        let mp = layout::manifest_path(root, *id);
        let chk = layout::checkpoint_dir(root, *id);
        if fs.exists(&mp) {
            fs.remove_file(&mp).map_err(io(&mp))?;
            fs.sync_dir(&chk).map_err(io(&chk))?;
        }
        fs.remove_dir_all(&chk).map_err(io(&chk))?;
    }
    if !plan.subsumed.is_empty() || !plan.aborted.is_empty() {
        fs.sync_dir(root).map_err(io(root))?;
    }
    let shared = layout::shared_dir(root);
    for name in &plan.orphaned_shared {
        let p = shared.join(name);
        fs.remove_file(&p).map_err(io(&p))?;
    }
    if !plan.orphaned_shared.is_empty() {
        fs.sync_dir(&shared).map_err(io(&shared))?;
    }
    Ok(())
}

/// The files of checkpoint root `root` that savepoint `sp` refers to: the paths of its
/// `_savepoint` manifest, resolved under `sp`, that lie under `root`, relative to it.
/// Paths are compared as given, so the caller passes both canonical. Our savepoints are
/// self-contained copies, so this is usually empty. `sp` must be a complete savepoint
/// whose files are all present with their sizes.
pub fn savepoint_refs(fs: &dyn Fs, root: &Path, sp: &Path) -> Result<Vec<String>, FormatError> {
    let meta = crate::savepoint::load(fs, sp, crate::checkpoint::Verify::Sizes)?;
    let mut refs = BTreeSet::new();
    for f in meta.manifest.files() {
        let p = layout::resolve(sp, &f.path);
        if let Ok(rel) = p.strip_prefix(root) {
            let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            refs.insert(parts.join("/"));
        }
    }
    Ok(refs.into_iter().collect())
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
