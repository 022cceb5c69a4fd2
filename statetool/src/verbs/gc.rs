//! `statetool gc ROOT`: removes subsumed and aborted checkpoints and shared files nothing
//! kept refers to, computed from the manifests alone (`formats::gc`), and says why each
//! thing stays or goes. `--dry-run` only reports.
//!
//! It holds the root's lock (FORMAT.md §15) for its whole run: a root locked by a
//! running daemon is refused (exit 2, naming the pid), and no daemon starts mid-gc. What
//! it keeps besides the `--retain` newest published checkpoints: the checkpoints the
//! job's `_job` pins, and what `--keep-savepoint` names (a `chk-<n>` of this root, or a
//! savepoint and every file of the root it refers to). `--retain` defaults to the job's
//! own setting from `_job`, else 1.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use formats::checkpoint::{self, Verify};
use formats::fs::StdFs;
use formats::gc::{execute_gc, plan_gc_keeping, savepoint_refs, GcPlan, Keep, Why};
use formats::jobfile::{self, JobFile, RootLock};
use formats::layout;
use formats::manifest::CheckpointId;

#[derive(clap::Args)]
pub struct Args {
    /// A job's checkpoint root.
    root: PathBuf,
    /// Published checkpoints to keep, newest first (default: the job's own `retain`
    /// from `<root>/_job`, else 1).
    #[arg(long)]
    retain: Option<usize>,
    /// Keep this checkpoint (a `chk-<n>` of ROOT) or savepoint (and every file of ROOT
    /// it refers to). Repeatable.
    #[arg(long, value_name = "PATH")]
    keep_savepoint: Vec<PathBuf>,
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

/// What the run resolved its arguments to, before planning.
struct Resolved {
    retain: usize,
    /// Where `retain` came from: `--retain`, `_job` or `default`.
    retain_from: &'static str,
    keep: Keep,
    /// Savepoints named that refer to no file of the root.
    unreferencing: Vec<PathBuf>,
    /// Who named each checkpoint kept by name.
    named_by: BTreeMap<CheckpointId, Vec<PathBuf>>,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let root = check_root(&a.root)?;
    // Held until the end of the run, so that no daemon starts mid-gc.
    let _lock = take_lock(&root, a.dry_run)?;
    let job = jobfile::read(&StdFs, &root).with_context(|| {
        format!(
            "cannot read {}; remove it if it is damaged (it only holds defaults)",
            layout::job_file(&root).display()
        )
    })?;
    let r = resolve(a, &root, job.as_ref())?;
    let plan = plan_gc_keeping(&StdFs, &root, &r.keep)?;
    if a.json {
        super::out(&format!("{}\n", json(a, &root, &r, &plan)));
    } else {
        super::out(&text(a, &root, &r, &plan));
    }
    if !a.dry_run {
        execute_gc(&mut StdFs, &root, &plan)?;
    }
    Ok(0)
}

/// The root, canonical: a directory that is neither one checkpoint nor a savepoint.
fn check_root(root: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(root.is_dir(), "{}: not a directory", root.display());
    if layout::split_checkpoint_dir(root).is_some() || layout::is_savepoint_dir(root) {
        bail!("{}: not a job's checkpoint root (a checkpoint or a savepoint)", root.display());
    }
    root.canonicalize().with_context(|| format!("{}", root.display()))
}

fn take_lock(root: &Path, dry_run: bool) -> anyhow::Result<Option<RootLock>> {
    let lock = if dry_run { jobfile::lock_existing(root) } else { jobfile::lock(root).map(Some) };
    lock.map_err(|e| match e {
        jobfile::LockError::Held { .. } => {
            anyhow::anyhow!("{e}: stop the job before collecting its garbage (a running job collects its own)")
        }
        e => e.into(),
    })
}

fn resolve(a: &Args, root: &Path, job: Option<&JobFile>) -> anyhow::Result<Resolved> {
    let (retain, retain_from) = match (a.retain, job) {
        (Some(n), _) => (n.max(1), "--retain"),
        (None, Some(j)) => (j.retain.max(1), "_job"),
        (None, None) => (1, "default"),
    };
    let mut r = Resolved {
        retain,
        retain_from,
        keep: Keep { retain, pinned: job.map(|j| j.pinned.clone()).unwrap_or_default(), ..Keep::default() },
        unreferencing: Vec::new(),
        named_by: BTreeMap::new(),
    };
    for given in &a.keep_savepoint {
        let p = given.canonicalize().with_context(|| format!("--keep-savepoint {}", given.display()))?;
        if let Some((r_root, id)) = layout::split_checkpoint_dir(&p) {
            if r_root != root {
                bail!(
                    "--keep-savepoint {}: a checkpoint of {}, not of {}",
                    given.display(),
                    r_root.display(),
                    root.display()
                );
            }
            checkpoint::load(&StdFs, root, id, Verify::Sizes)
                .with_context(|| format!("--keep-savepoint {}: not an intact published checkpoint", given.display()))?;
            r.keep.named.push(id);
            r.named_by.entry(id).or_default().push(given.clone());
        } else if layout::is_savepoint_dir(&p) {
            let refs = savepoint_refs(&StdFs, root, &p)
                .with_context(|| format!("--keep-savepoint {}: not a complete savepoint", given.display()))?;
            if refs.is_empty() {
                r.unreferencing.push(given.clone());
            }
            for f in refs {
                r.keep.files.entry(f).or_default().push(given.display().to_string());
            }
        } else {
            bail!(
                "--keep-savepoint {}: neither a chk-<n> directory of {} nor a savepoint",
                given.display(),
                root.display()
            );
        }
    }
    Ok(r)
}

fn ids(v: &[CheckpointId]) -> String {
    v.iter().map(|c| layout::checkpoint_dir_name(*c)).collect::<Vec<_>>().join(" ")
}

fn why_text(w: &Why, r: &Resolved, id: CheckpointId) -> String {
    match w {
        Why::Newest => format!("one of the {} newest", r.retain),
        Why::Pinned => "pinned by the job (_job): it was restored from".into(),
        Why::Named => {
            let by = r.named_by.get(&id).map(|v| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>());
            format!("named by --keep-savepoint {}", by.unwrap_or_default().join(", "))
        }
        Why::HoldsFileOf(sp) => format!("holds a file savepoint {sp} refers to"),
    }
}

fn why_json(w: &Why) -> serde_json::Value {
    match w {
        Why::Newest => "newest".into(),
        Why::Pinned => "pinned".into(),
        Why::Named => "named".into(),
        Why::HoldsFileOf(sp) => serde_json::json!({ "holds_file_of": sp }),
    }
}

fn text(a: &Args, root: &Path, r: &Resolved, plan: &GcPlan) -> String {
    let mut s = String::new();
    let from = match r.retain_from {
        "--retain" => "given by --retain",
        "_job" => "the job's retain setting, from _job",
        _ => "default: no _job and no --retain",
    };
    s.push_str(&format!("root      {}\n", root.display()));
    s.push_str(&format!("retain    {} ({from})\n", r.retain));
    for sp in &r.unreferencing {
        s.push_str(&format!("note      savepoint {} refers to no file of {}\n", sp.display(), root.display()));
    }
    for (id, why) in &plan.why {
        let w: Vec<String> = why.iter().map(|w| why_text(w, r, *id)).collect();
        s.push_str(&format!("keep      {} ({})\n", layout::checkpoint_dir_name(*id), w.join("; ")));
    }
    for id in &plan.subsumed {
        s.push_str(&format!(
            "remove    {} (subsumed: published, older than the {} newest, not pinned or named)\n",
            layout::checkpoint_dir_name(*id),
            r.retain
        ));
    }
    for id in &plan.aborted {
        s.push_str(&format!(
            "remove    {} (aborted: no valid manifest, older than the newest published checkpoint)\n",
            layout::checkpoint_dir_name(*id)
        ));
    }
    for id in &plan.unfinished {
        s.push_str(&format!(
            "leave     {} (no valid manifest, newer than the newest published checkpoint: an interrupted attempt)\n",
            layout::checkpoint_dir_name(*id)
        ));
    }
    for f in &plan.orphaned_shared {
        s.push_str(&format!("remove    shared/{f} (nothing kept refers to it)\n"));
    }
    for (f, by) in &plan.live_shared {
        s.push_str(&format!("keep      shared/{f} (used by {})\n", ids(by)));
    }
    for (f, by) in &plan.held_shared {
        s.push_str(&format!("keep      shared/{f} (referred to by savepoint {})\n", by.join(", ")));
    }
    if a.dry_run {
        s.push_str("dry run: nothing removed\n");
    }
    s
}

fn json(a: &Args, root: &Path, r: &Resolved, plan: &GcPlan) -> serde_json::Value {
    let n = |v: &[CheckpointId]| v.iter().map(|c| c.0).collect::<Vec<_>>();
    let why: BTreeMap<String, Vec<serde_json::Value>> =
        plan.why.iter().map(|(id, w)| (id.0.to_string(), w.iter().map(why_json).collect())).collect();
    serde_json::json!({
        "root": root.display().to_string(),
        "retain": r.retain,
        "retain_from": r.retain_from,
        "pinned": n(&r.keep.pinned),
        "named": n(&r.keep.named),
        "retained": n(&plan.retained),
        "why": why,
        "subsumed": n(&plan.subsumed),
        "aborted": n(&plan.aborted),
        "unfinished": n(&plan.unfinished),
        "orphaned_shared": plan.orphaned_shared,
        "live_shared": plan.live_shared.iter().map(|(k, v)| (k.clone(), n(v))).collect::<BTreeMap<_, _>>(),
        "held_shared": plan.held_shared,
        "savepoints_referring_to_nothing": r.unreferencing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "dry_run": a.dry_run,
    })
}
