//! `statetool inspect PATH`: what a checkpoint is: job, parent, backend, key groups,
//! shards with their ranges and bytes, and the states with their encodings.
use std::path::PathBuf;

use super::target;

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory or a job's checkpoint root (then its newest readable manifest).
    path: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let l = t.newest_readable()?;
    let m = &l.manifest;
    let total = l.bytes();
    if a.json {
        let mut v = l.kind.json();
        v.insert("manifest".into(), serde_json::to_value(m)?);
        v.insert("total_bytes".into(), total.into());
        v.insert("root".into(), l.base.display().to_string().into());
        super::out(&format!("{}\n", serde_json::Value::Object(v)));
        return Ok(0);
    }
    let mut s = format!(
        "{} {} of job {:?}  parent {}  backend {}  key groups {}  shards {}  size {}\n\n",
        l.kind.label(),
        m.checkpoint.0,
        m.job,
        m.parent.map_or("-".to_string(), |p| p.0.to_string()),
        m.backend,
        m.max_key_groups,
        m.shards.len(),
        target::human_bytes(total)
    );
    s.push_str(&format!(
        "{:>5}  {:>11}  {:<8}  {:>5}  {:>10}  {:>10}\n",
        "shard", "key_groups", "format", "files", "bytes", "shared"
    ));
    for sh in &m.shards {
        let bytes: u64 = sh.files.iter().map(|f| f.size).sum();
        let shared: u64 = sh.files.iter().filter(|f| formats::layout::is_in_shared(&f.path)).map(|f| f.size).sum();
        let format =
            serde_json::to_value(sh.format).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        s.push_str(&format!(
            "{:>5}  {:>11}  {format:<8}  {:>5}  {:>10}  {:>10}\n",
            sh.shard,
            format!("{}..{}", sh.range.start, sh.range.end),
            sh.files.len(),
            target::human_bytes(bytes),
            target::human_bytes(shared)
        ));
    }
    let w = m.states.iter().map(|d| d.name.len()).max().unwrap_or(5).max(5);
    s.push_str(&format!("\n{:<w$}  {:<11}  {:<8}  {}\n", "state", "kind", "value", "ttl"));
    for d in &m.states {
        let kind = serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let enc = serde_json::to_value(&d.value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let ttl = d.ttl.map_or("-".to_string(), |t| format!("{} ms", t.ttl_ms));
        s.push_str(&format!("{:<w$}  {kind:<11}  {enc:<8}  {ttl}\n", d.name));
    }
    super::out(&s);
    Ok(0)
}
