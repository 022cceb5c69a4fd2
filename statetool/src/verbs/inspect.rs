//! `statetool inspect PATH`: what a checkpoint or savepoint is: kind (and a savepoint's
//! form), job, parent, time, backend, key groups, shards with their ranges, bytes and
//! source positions, and the states with their encodings.
//!
//! By default it reads the manifest only (no data file), so it takes the same time on
//! any state size. `--entries` reads every entry once (`tally`) and adds entries and
//! stored bytes (key + value) per state.
use std::path::PathBuf;

use formats::manifest::ShardSnapshot;

use super::tally::{self, Tally};
use super::target::{self, Kind, Loaded};

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (its newest readable manifest) or a savepoint.
    path: PathBuf,
    /// Also read every entry: entries and stored bytes per state (takes time on big state).
    #[arg(long)]
    entries: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let l = t.newest_readable()?;
    let counted = if a.entries { Some(tally::tally(&l, &tally::Options::default())?) } else { None };
    if a.json {
        super::out(&format!("{}\n", json(&l, counted.as_ref())?));
    } else {
        super::out(&table(&l, counted.as_ref()));
    }
    Ok(0)
}

fn json(l: &Loaded, counted: Option<&Tally>) -> anyhow::Result<serde_json::Value> {
    let m = &l.manifest;
    let mut v = l.kind.json();
    v.insert("path".into(), l.dir.display().to_string().into());
    v.insert("root".into(), l.base.display().to_string().into());
    v.insert("created".into(), super::utc::iso8601(m.created_ms).into());
    v.insert("total_bytes".into(), l.bytes().into());
    v.insert("manifest".into(), serde_json::to_value(m)?);
    if let Some(c) = counted {
        v.insert("entries".into(), c.total.entries.into());
        let states: serde_json::Map<String, serde_json::Value> = c
            .by_state
            .iter()
            .map(|(n, s)| (n.clone(), serde_json::json!({ "entries": s.entries, "bytes": s.bytes })))
            .collect();
        v.insert("states".into(), states.into());
    }
    Ok(serde_json::Value::Object(v))
}

/// One shard's splits, e.g. `#0 next 305720 end - step 2` (end `-`: unbounded); `-`
/// for a source that cannot be resumed.
fn positions(sh: &ShardSnapshot) -> String {
    let Some(splits) = sh.source_position.as_array() else { return "-".into() };
    let num = |v: &serde_json::Value| match v.as_u64() {
        Some(u64::MAX) | None => "-".to_string(),
        Some(n) => n.to_string(),
    };
    let parts: Vec<String> = splits
        .iter()
        .map(|s| format!("#{} next {} end {} step {}", num(&s["id"]), num(&s["next"]), num(&s["end"]), num(&s["step"])))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn table(l: &Loaded, counted: Option<&Tally>) -> String {
    let m = &l.manifest;
    let head = match l.kind {
        Kind::Checkpoint => {
            format!("{}  parent {}", l.title(), m.parent.map_or("-".to_string(), |p| p.0.to_string()))
        }
        Kind::Savepoint(_) => l.title(),
    };
    let mut s = format!(
        "{head}  backend {}  key groups {}  shards {}  size {}\ncreated {}",
        m.backend,
        m.max_key_groups,
        m.shards.len(),
        target::human_bytes(l.bytes()),
        super::utc::iso8601(m.created_ms),
    );
    match counted {
        Some(c) => s.push_str(&format!("  read {} entries\n\n", c.total.entries)),
        None => s.push_str("\n\n"),
    }
    s.push_str(&format!(
        "{:>5}  {:>11}  {:<8}  {:>5}  {:>10}  {:>10}  {}\n",
        "shard", "key_groups", "format", "files", "bytes", "shared", "source"
    ));
    for sh in &m.shards {
        let bytes: u64 = sh.files.iter().map(|f| f.size).sum();
        let shared: u64 = sh.files.iter().filter(|f| formats::layout::is_in_shared(&f.path)).map(|f| f.size).sum();
        let format =
            serde_json::to_value(sh.format).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        s.push_str(&format!(
            "{:>5}  {:>11}  {format:<8}  {:>5}  {:>10}  {:>10}  {}\n",
            sh.shard,
            format!("{}..{}", sh.range.start, sh.range.end),
            sh.files.len(),
            target::human_bytes(bytes),
            target::human_bytes(shared),
            positions(sh)
        ));
    }
    let w = m.states.iter().map(|d| d.name.len()).max().unwrap_or(5).max(5);
    let mut head = format!("\n{:<w$}  {:<11}  {:<8}  {:<10}", "state", "kind", "value", "ttl");
    if counted.is_some() {
        head.push_str(&format!("  {:>10}  {:>10}", "entries", "bytes"));
    }
    s.push_str(head.trim_end());
    s.push('\n');
    for d in &m.states {
        let kind = serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let enc = serde_json::to_value(&d.value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let ttl = d.ttl.map_or("-".to_string(), |t| format!("{} ms", t.ttl_ms));
        let mut row = format!("{:<w$}  {kind:<11}  {enc:<8}  {ttl:<10}", d.name);
        if let Some(c) = counted {
            let sum = c.by_state.get(&d.name).copied().unwrap_or_default();
            row.push_str(&format!("  {:>10}  {:>10}", sum.entries, target::human_bytes(sum.bytes)));
        }
        s.push_str(row.trim_end());
        s.push('\n');
    }
    s
}
