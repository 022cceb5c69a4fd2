//! `statetool verify PATH`: every checkpoint PATH names, or the savepoint it is, is
//! intact, as a list of named checks per checkpoint (`verify/checks.rs` says what each
//! one means): `manifest`, `key_groups` (covered exactly once; else which are missing or
//! covered twice), `parent` (the chain resolves), `files` (sizes and crc32s),
//! `structure` (each data file's own checksummed metadata), `sst_blocks` (every RocksDB
//! data block's checksum) and `entries` (every entry reads back). An incomplete
//! savepoint (only its in-progress marker) is a `manifest` problem saying so. `--quick`
//! reads no data block: metadata, sizes, the crc32s of metadata files and the data
//! files' structure, so it takes about as long on 5 GB as on 5 MB. Exit 0 when all are
//! intact, 1 otherwise.
mod checks;
mod coverage;
mod parent;

use std::path::PathBuf;

use checks::{Report, Status};

use super::target::{self, Member};

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (every checkpoint in it) or a savepoint.
    path: PathBuf,
    #[arg(long)]
    json: bool,
    /// Check the metadata, every file's size, the metadata files' crc32s and each data
    /// file's footer, index and metadata blocks; read no data block and no entry.
    #[arg(long)]
    quick: bool,
}

/// "1234 entries", or what a quick check did instead.
fn entries(n: Option<u64>) -> String {
    n.map_or_else(|| "no entry read (--quick)".to_owned(), |n| format!("{n} entries"))
}

/// One JSON object per member: `checkpoint` or `savepoint`, its kind, `ok`, `entries`,
/// `quick`, `problem` (the first, naming the file) and `checks` (`{check, status,
/// detail}` in order).
fn json(m: &Member, r: &Report, quick: bool) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    match m {
        Member::Checkpoint { id, .. } => o.insert("checkpoint".into(), id.0.into()),
        Member::Savepoint { dir } => o.insert("savepoint".into(), dir.display().to_string().into()),
    };
    if let Some(k) = r.kind {
        o.extend(k.json());
    }
    o.insert("ok".into(), r.problem().is_none().into());
    o.insert("entries".into(), r.entries.map_or(serde_json::Value::Null, Into::into));
    o.insert("quick".into(), quick.into());
    if let Some(p) = r.problem() {
        o.insert("problem".into(), p.detail.clone().into());
    }
    let checks = r
        .checks
        .iter()
        .map(|c| serde_json::json!({ "check": c.name, "status": c.status.label(), "detail": c.detail }))
        .collect();
    o.insert("checks".into(), serde_json::Value::Array(checks));
    serde_json::Value::Object(o)
}

/// The member's line (`chk-5  ok  2000 entries`, or `PROBLEM` and the first problem),
/// then one indented line per check.
fn table(m: &Member, r: &Report, savepoint: bool) -> String {
    let mut s = match (r.problem(), r.kind) {
        (Some(p), _) => format!("{}  PROBLEM  {}\n", m.name(), p.detail),
        (None, Some(kind)) if savepoint => format!("{}  ok       {}, {}\n", m.name(), kind.label(), entries(r.entries)),
        (None, _) => format!("{}  ok       {}\n", m.name(), entries(r.entries)),
    };
    for c in &r.checks {
        let status = if c.status == Status::Problem { "PROBLEM" } else { c.status.label() };
        s.push_str(&format!("  {:<10}  {status:<7}  {}\n", c.name, c.detail));
    }
    s
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let savepoint = matches!(t, target::Target::Savepoint { .. });
    let mut chain = parent::Chain::default();
    let results: Vec<_> = t.members().into_iter().map(|m| (m.clone(), checks::run(&m, a.quick, &mut chain))).collect();
    let bad = results.iter().filter(|(_, r)| r.problem().is_some()).count();
    if a.json {
        for (m, r) in &results {
            super::out(&format!("{}\n", json(m, r, a.quick)));
        }
    } else {
        let mut s = String::new();
        for (m, r) in &results {
            s.push_str(&table(m, r, savepoint));
        }
        let what = if savepoint { "savepoint(s)" } else { "checkpoint(s)" };
        s.push_str(&format!("{} {what}, {} intact, {bad} with problems\n", results.len(), results.len() - bad));
        super::out(&s);
    }
    Ok(u8::from(bad > 0))
}
