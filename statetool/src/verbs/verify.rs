//! `statetool verify PATH`: every checkpoint PATH names is intact: the manifest decodes
//! and validates (key groups covered exactly once), every file exists with its size and
//! crc32, and every entry reads back (snapshot blocks decode; RocksDB shards open
//! read-only and scan, which checks RocksDB's own block checksums). Exit 0 when all are intact, 1 otherwise.
use std::path::PathBuf;

use formats::checkpoint::{self, Verify};
use formats::fs::StdFs;
use formats::id::CheckpointId;
use formats::layout;

use super::target;

#[derive(clap::Args)]
pub struct Args {
    path: PathBuf,
    #[arg(long)]
    json: bool,
}

fn check(root: &std::path::Path, id: CheckpointId) -> Result<u64, String> {
    let m = checkpoint::load(&StdFs, root, id, Verify::Checksums).map_err(|e| e.to_string())?;
    super::entries::for_each(root, &m, super::entries::ALL, &mut |_, _, _| Ok(())).map_err(|e| format!("{e:#}"))
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let results: Vec<_> = t.ids.iter().map(|id| (id.0, check(&t.root, *id))).collect();
    let bad = results.iter().filter(|(_, r)| r.is_err()).count();
    if a.json {
        for (id, r) in &results {
            let v = match r {
                Ok(n) => serde_json::json!({ "checkpoint": id, "ok": true, "entries": n }),
                Err(e) => serde_json::json!({ "checkpoint": id, "ok": false, "problem": e }),
            };
            super::out(&format!("{v}\n"));
        }
    } else {
        let mut s = String::new();
        for (id, r) in &results {
            match r {
                Ok(n) => {
                    s.push_str(&format!("{}  ok       {n} entries\n", layout::checkpoint_dir_name(CheckpointId(*id))))
                }
                Err(e) => s.push_str(&format!("{}  PROBLEM  {e}\n", layout::checkpoint_dir_name(CheckpointId(*id)))),
            }
        }
        s.push_str(&format!("{} checkpoint(s), {} intact, {bad} with problems\n", results.len(), results.len() - bad));
        super::out(&s);
    }
    Ok(u8::from(bad > 0))
}
