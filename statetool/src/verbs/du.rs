//! `statetool du PATH [--by state|key-group|shard] [--top-keys K [--state NAME]]`: where
//! a checkpoint's or savepoint's bytes are, largest first, with percentages.
//!
//! `--by shard` reads the manifest only: the bytes of each shard's files, owned (under
//! `chk-<n>/` or the savepoint) and shared (`shared/`, possibly referred to by other
//! checkpoints too). `--by state` and `--by key-group` read every entry once and sum
//! its stored size, key plus value before compression (`tally`); `--top-keys K` lists
//! the K largest entries with their rendered keys. Memory is bounded as `tally` says:
//! per state and key group counters and K keys, whatever the state size.
use std::path::PathBuf;

use serde_json::{json, Value};

use super::tally::{self, percent, Tally};
use super::target::{self, human_bytes, Loaded};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    State,
    KeyGroup,
    Shard,
}

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (its newest intact checkpoint) or a savepoint.
    path: PathBuf,
    /// How to group the bytes.
    #[arg(long, value_enum, default_value = "state")]
    by: By,
    /// Also list the K largest entries (key + value bytes), largest first.
    #[arg(long, value_name = "K")]
    top_keys: Option<usize>,
    /// Count only the entries of this state.
    #[arg(long, value_name = "NAME")]
    state: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let l = t.newest_intact()?;
    if let Some(s) = &a.state {
        anyhow::ensure!(
            l.manifest.states.iter().any(|d| &d.name == s),
            "{} {} has no state {s:?} (states: {})",
            l.kind.label(),
            l.dir.display(),
            l.manifest.states.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let reads = a.by != By::Shard || a.top_keys.is_some_and(|k| k > 0);
    let counted = if reads {
        let o =
            tally::Options { top: a.top_keys.unwrap_or(0), state: a.state.clone(), by_key_group: a.by == By::KeyGroup };
        Some(tally::tally(&l, &o)?)
    } else {
        None
    };
    let (total, rows) = match (a.by, &counted) {
        (By::Shard, _) => by_shard(&l),
        (By::State, Some(c)) => by_state(c),
        (By::KeyGroup, Some(c)) => by_key_group(&l, c),
        (_, None) => anyhow::bail!("nothing was read"),
    };
    let top: Vec<Value> = counted.as_ref().map(|c| top_keys(&l, c)).unwrap_or_default();
    if a.json {
        let mut v = l.kind.json();
        v.insert("path".into(), l.dir.display().to_string().into());
        v.insert("checkpoint".into(), l.manifest.checkpoint.0.into());
        v.insert("by".into(), by_name(a.by).into());
        v.insert("total_bytes".into(), total.into());
        if let Some(c) = &counted {
            v.insert("entries".into(), c.total.entries.into());
        }
        v.insert("rows".into(), rows.into_iter().map(|r| r.json).collect::<Vec<_>>().into());
        if a.top_keys.is_some() {
            v.insert("top_keys".into(), top.into());
        }
        super::out(&format!("{}\n", Value::Object(v)));
        return Ok(0);
    }
    super::out(&table(&l, a, total, &rows, counted.as_ref(), &top));
    Ok(0)
}

fn by_name(by: By) -> &'static str {
    match by {
        By::State => "state",
        By::KeyGroup => "key_group",
        By::Shard => "shard",
    }
}

/// A table row: its cells (the last is the bytes), its bytes, and its JSON form.
struct Row {
    cells: Vec<String>,
    bytes: u64,
    json: Value,
}

fn by_shard(l: &Loaded) -> (u64, Vec<Row>) {
    let mut rows: Vec<Row> = l
        .manifest
        .shards
        .iter()
        .map(|sh| {
            let bytes: u64 = sh.files.iter().map(|f| f.size).sum();
            let shared: u64 = sh.files.iter().filter(|f| formats::layout::is_in_shared(&f.path)).map(|f| f.size).sum();
            let range = format!("{}..{}", sh.range.start, sh.range.end);
            Row {
                cells: vec![
                    sh.shard.to_string(),
                    range.clone(),
                    sh.files.len().to_string(),
                    human_bytes(bytes - shared),
                    human_bytes(shared),
                ],
                bytes,
                json: json!({ "shard": sh.shard, "key_groups": range, "files": sh.files.len(),
                              "bytes": bytes, "owned_bytes": bytes - shared, "shared_bytes": shared }),
            }
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    (l.bytes(), rows)
}

fn by_state(c: &Tally) -> (u64, Vec<Row>) {
    let mut rows: Vec<Row> = c
        .by_state
        .iter()
        .map(|(name, s)| Row {
            cells: vec![name.clone(), s.entries.to_string()],
            bytes: s.bytes,
            json: json!({ "state": name, "entries": s.entries, "bytes": s.bytes }),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    (c.total.bytes, rows)
}

fn by_key_group(l: &Loaded, c: &Tally) -> (u64, Vec<Row>) {
    let m = &l.manifest;
    let shard_of = |kg: u16| m.shards.iter().find(|s| s.range.start <= kg && kg < s.range.end).map(|s| s.shard);
    let mut rows: Vec<Row> = c
        .by_key_group
        .iter()
        .map(|(kg, s)| Row {
            cells: vec![kg.to_string(), shard_of(*kg).map_or("-".into(), |s| s.to_string()), s.entries.to_string()],
            bytes: s.bytes,
            json: json!({ "key_group": kg, "shard": shard_of(*kg), "entries": s.entries, "bytes": s.bytes }),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    (c.total.bytes, rows)
}

/// The largest entries, keys rendered as `dump` renders them.
fn top_keys(l: &Loaded, c: &Tally) -> Vec<Value> {
    let m = &l.manifest;
    c.top
        .iter()
        .map(|b| {
            let mut o = serde_json::Map::new();
            o.insert("state".into(), b.state.clone().into());
            o.insert("bytes".into(), b.bytes.into());
            match formats::statekey::decode(&b.key) {
                Ok(sk) => {
                    o.insert("key_group".into(), sk.key_group.0.into());
                    o.insert("key".into(), super::dump::key_json(m.key.as_ref(), sk.key));
                    let uk = m.states.iter().find(|d| d.name == b.state).and_then(|d| d.user_key.as_ref());
                    if let Some(uk) = uk {
                        o.insert("user_key".into(), super::dump::key_json(Some(uk), sk.user_key));
                    }
                }
                Err(_) => {
                    o.insert("key".into(), super::dump::key_json(None, &b.key));
                }
            }
            Value::Object(o)
        })
        .collect()
}

fn table(l: &Loaded, a: &Args, total: u64, rows: &[Row], counted: Option<&Tally>, top: &[Value]) -> String {
    let what = if a.by == By::Shard { "in files" } else { "of keys and values (uncompressed)" };
    let mut s = format!("{}  total {} {what}", l.title(), human_bytes(total));
    if let Some(c) = counted {
        s.push_str(&format!("  read {} entries", c.total.entries));
    }
    if let Some(st) = &a.state {
        s.push_str(&format!("  state {st:?} only"));
    }
    s.push_str("\n\n");
    let head: Vec<&str> = match a.by {
        By::Shard => vec!["shard", "key_groups", "files", "owned", "shared", "bytes", "%"],
        By::State => vec!["state", "entries", "bytes", "%"],
        By::KeyGroup => vec!["key_group", "shard", "entries", "bytes", "%"],
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = r.cells.clone();
            cells.push(human_bytes(r.bytes));
            cells.push(percent(r.bytes, total));
            cells
        })
        .collect();
    s.push_str(&columns(&head, &body));
    if a.top_keys.is_some() {
        let head = ["state", "key_group", "bytes", "key"];
        let body: Vec<Vec<String>> = top
            .iter()
            .map(|v| {
                let mut key = v["key"].to_string();
                if let Some(uk) = v.get("user_key") {
                    key.push_str(&format!(" / {uk}"));
                }
                vec![
                    v["state"].as_str().unwrap_or("").to_string(),
                    v["key_group"].to_string(),
                    v["bytes"].to_string(),
                    key,
                ]
            })
            .collect();
        s.push_str(&format!("\nlargest {} entries (key + value bytes)\n", top.len()));
        s.push_str(&columns(&head, &body));
    }
    s
}

/// Left-aligns the first column and the last (free text in the top-keys table when it is
/// a key), right-aligns the others.
fn columns(head: &[&str], body: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in body {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        let mut out = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            if i > 0 {
                out.push_str("  ");
            }
            if i == 0 || (i + 1 == n && head.last() == Some(&"key")) {
                out.push_str(&format!("{c:<width$}"));
            } else {
                out.push_str(&format!("{c:>width$}"));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut s = line(head.to_vec());
    for r in body {
        s.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    s
}
