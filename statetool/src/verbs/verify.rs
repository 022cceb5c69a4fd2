//! `statetool verify PATH`: every checkpoint PATH names, or the savepoint it is, is
//! intact: the manifest (a savepoint's `_savepoint`) decodes and validates (key groups
//! covered exactly once), every file exists with its size and crc32, and every entry
//! reads back (snapshot blocks decode; RocksDB shards open read-only and scan, which
//! checks RocksDB's own block checksums). An incomplete savepoint (only its in-progress
//! marker) is reported as such. `--quick` stops after the files: metadata, sizes and
//! crc32s, no entry read. Exit 0 when all are intact, 1 otherwise.
use std::path::PathBuf;

use formats::checkpoint::Verify;

use super::target::{self, Member};

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (every checkpoint in it) or a savepoint.
    path: PathBuf,
    #[arg(long)]
    json: bool,
    /// Check the metadata and every file's size and crc32 only; read no entry.
    #[arg(long)]
    quick: bool,
}

/// The member's kind and entry count (none with `quick`) when intact, the problem
/// (naming the file) if not.
fn check(m: &Member, quick: bool) -> Result<(target::Kind, Option<u64>), String> {
    let l = m.load(Some(Verify::Checksums)).map_err(|e| e.to_string())?;
    if quick {
        return Ok((l.kind, None));
    }
    let n = l.for_each(super::entries::ALL, &mut |_, _, _| Ok(())).map_err(|e| format!("{e:#}"))?;
    Ok((l.kind, Some(n)))
}

/// "1234 entries", or what a quick check did instead.
fn entries(n: &Option<u64>) -> String {
    n.map_or_else(|| "files only (--quick)".to_owned(), |n| format!("{n} entries"))
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let savepoint = matches!(t, target::Target::Savepoint { .. });
    let results: Vec<_> = t.members().into_iter().map(|m| (m.clone(), check(&m, a.quick))).collect();
    let bad = results.iter().filter(|(_, r)| r.is_err()).count();
    if a.json {
        for (m, r) in &results {
            let mut o = serde_json::Map::new();
            match m {
                Member::Checkpoint { id, .. } => o.insert("checkpoint".into(), id.0.into()),
                Member::Savepoint { dir } => o.insert("savepoint".into(), dir.display().to_string().into()),
            };
            match r {
                Ok((kind, n)) => {
                    o.extend(kind.json());
                    o.insert("ok".into(), true.into());
                    o.insert("entries".into(), n.map_or(serde_json::Value::Null, Into::into));
                    o.insert("quick".into(), a.quick.into());
                }
                Err(e) => {
                    o.insert("ok".into(), false.into());
                    o.insert("problem".into(), e.clone().into());
                }
            }
            super::out(&format!("{}\n", serde_json::Value::Object(o)));
        }
    } else {
        let mut s = String::new();
        for (m, r) in &results {
            match r {
                Ok((kind, n)) if savepoint => {
                    s.push_str(&format!("{}  ok       {}, {}\n", m.name(), kind.label(), entries(n)))
                }
                Ok((_, n)) => s.push_str(&format!("{}  ok       {}\n", m.name(), entries(n))),
                Err(e) => s.push_str(&format!("{}  PROBLEM  {e}\n", m.name())),
            }
        }
        let what = if savepoint { "savepoint(s)" } else { "checkpoint(s)" };
        s.push_str(&format!("{} {what}, {} intact, {bad} with problems\n", results.len(), results.len() - bad));
        super::out(&s);
    }
    Ok(u8::from(bad > 0))
}
