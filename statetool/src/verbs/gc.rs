//! `statetool gc ROOT`: removes subsumed and aborted checkpoints and shared files no
//! retained checkpoint refers to, computed from the manifests alone, and says why each
//! kept shared file is alive. `--dry-run` only reports. Run it on a stopped job.
use std::path::PathBuf;

use formats::checkpoint::{execute_gc, plan_gc};
use formats::fs::StdFs;

#[derive(clap::Args)]
pub struct Args {
    /// A job's checkpoint root.
    root: PathBuf,
    /// Published checkpoints to keep (newest first).
    #[arg(long, default_value_t = 1)]
    retain: usize,
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    anyhow::ensure!(a.root.is_dir(), "{}: not a directory", a.root.display());
    let plan = plan_gc(&StdFs, &a.root, a.retain, &[])?;
    if a.json {
        let v = serde_json::json!({
            "retained": plan.retained.iter().map(|c| c.0).collect::<Vec<_>>(),
            "subsumed": plan.subsumed.iter().map(|c| c.0).collect::<Vec<_>>(),
            "aborted": plan.aborted.iter().map(|c| c.0).collect::<Vec<_>>(),
            "orphaned_shared": plan.orphaned_shared,
            "live_shared": plan.live_shared.iter().map(|(k, v)| (k.clone(), v.iter().map(|c| c.0).collect::<Vec<_>>())).collect::<std::collections::BTreeMap<_, _>>(),
            "dry_run": a.dry_run,
        });
        super::out(&format!("{v}\n"));
    } else {
        let ids = |v: &[formats::manifest::CheckpointId]| {
            v.iter().map(|c| formats::layout::checkpoint_dir_name(*c)).collect::<Vec<_>>().join(" ")
        };
        let mut s = String::new();
        s.push_str(&format!("keep      {}\n", ids(&plan.retained)));
        if !plan.subsumed.is_empty() {
            s.push_str(&format!("remove    {} (subsumed)\n", ids(&plan.subsumed)));
        }
        if !plan.aborted.is_empty() {
            s.push_str(&format!("remove    {} (aborted: no valid manifest)\n", ids(&plan.aborted)));
        }
        for f in &plan.orphaned_shared {
            s.push_str(&format!("remove    shared/{f} (no retained checkpoint refers to it)\n"));
        }
        for (f, by) in &plan.live_shared {
            s.push_str(&format!("keep      shared/{f} (used by {})\n", ids(by)));
        }
        if a.dry_run {
            s.push_str("dry run: nothing removed\n");
        }
        super::out(&s);
    }
    if !a.dry_run {
        execute_gc(&mut StdFs, &a.root, &plan)?;
    }
    Ok(0)
}
