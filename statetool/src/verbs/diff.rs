//! `statetool diff A B`: what differs between two checkpoints or savepoints (each a
//! `chk-<n>`, a job's root, then its newest intact checkpoint, or a savepoint). First the manifest differences that
//! matter (job, key-group count, key encoding, state descriptors), then the files (for
//! two checkpoints of one root: the shared files B copied and those it reused, the owned
//! files of each), then per state the entries added, removed and changed, with both
//! values rendered as `dump` renders them, then counts. Entries are compared through a
//! streaming merge-join (`join`): memory stays bounded whatever the state size.
//!
//! Exit 0 when A and B hold the same state (the files may differ; the last line says
//! so), 1 when entries, key-group counts, key encodings or state descriptors differ, 2 on
//! usage or I/O errors. Neither input is modified.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use formats::manifest::Manifest;
use formats::value::{StateDescriptor, ValueEncoding};
use serde_json::{json, Value};

use super::join::{self, Pair, Side};
use super::render::add_identity;
use super::target::{self, Kind, Loaded};

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint (`chk-<n>`), a job's checkpoint root or a savepoint.
    a: PathBuf,
    /// The checkpoint to compare A with, in the same forms.
    b: PathBuf,
    /// Counts only: files per kind of change, entries per state.
    #[arg(long)]
    summary: bool,
    /// One JSON object per difference, then a summary object.
    #[arg(long)]
    json: bool,
}

fn load(path: &Path) -> anyhow::Result<Loaded> {
    target::resolve(path)?.newest_intact()
}

/// A manifest difference; `matters` when it makes the states differ.
struct ManifestDiff {
    field: &'static str,
    state: Option<String>,
    a: Value,
    b: Value,
    matters: bool,
}

fn manifest_differences(a: &Manifest, b: &Manifest) -> Vec<ManifestDiff> {
    let mut out = Vec::new();
    let mut field = |field, a: Value, b: Value, matters| {
        if a != b {
            out.push(ManifestDiff { field, state: None, a, b, matters });
        }
    };
    field("job", json!(a.job), json!(b.job), false);
    field("max_key_groups", json!(a.max_key_groups), json!(b.max_key_groups), true);
    field("key", json!(a.key), json!(b.key), true);
    let find = |m: &Manifest, n: &str| m.states.iter().find(|d| d.name == n).cloned();
    let names = a.states.iter().chain(&b.states).map(|d| d.name.clone()).collect::<std::collections::BTreeSet<_>>();
    for n in names {
        let (da, db) = (find(a, &n), find(b, &n));
        if da != db {
            out.push(ManifestDiff { field: "state", state: Some(n), a: json!(da), b: json!(db), matters: true });
        }
    }
    out
}

/// How a file of A or B fares between them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FileChange {
    /// A shared file of B that A does not list: what B's incremental checkpoint copied.
    Copied,
    /// A file of B that A does not list, owned by B (or anything of B when A and B are
    /// under different roots).
    Added,
    /// A shared file both list.
    Reused,
    /// An owned file both list (A and B are the same checkpoint).
    Unchanged,
    /// A file of A that B does not list.
    Removed,
}

const FILE_CHANGES: [FileChange; 5] =
    [FileChange::Copied, FileChange::Added, FileChange::Reused, FileChange::Unchanged, FileChange::Removed];

impl FileChange {
    fn name(self) -> &'static str {
        match self {
            FileChange::Copied => "copied",
            FileChange::Added => "added",
            FileChange::Reused => "reused",
            FileChange::Unchanged => "unchanged",
            FileChange::Removed => "removed",
        }
    }
}

/// Every file of A and B once, with what happened to it, ordered by change then path.
fn file_changes(a: &Loaded, b: &Loaded) -> Vec<(FileChange, String, u64)> {
    // Paths name the same files only under one checkpoint root (a savepoint's are its own).
    let same_root = a.kind == Kind::Checkpoint
        && b.kind == Kind::Checkpoint
        && matches!((a.base.canonicalize(), b.base.canonicalize()), (Ok(x), Ok(y)) if x == y);
    let files = |m: &Manifest| m.files().map(|f| (f.path.clone(), f.size)).collect::<BTreeMap<_, _>>();
    let (fa, fb) = (files(&a.manifest), files(&b.manifest));
    let mut out = Vec::new();
    for (p, size) in &fb {
        let shared = formats::layout::is_in_shared(p);
        let change = match (same_root && fa.contains_key(p), same_root && shared) {
            (true, true) => FileChange::Reused,
            (true, false) => FileChange::Unchanged,
            (false, true) => FileChange::Copied,
            (false, false) => FileChange::Added,
        };
        out.push((change, p.clone(), *size));
    }
    for (p, size) in &fa {
        if !(same_root && fb.contains_key(p)) {
            out.push((FileChange::Removed, p.clone(), *size));
        }
    }
    out.sort();
    out
}

#[derive(Default, Clone, Copy)]
struct Counts {
    added: u64,
    removed: u64,
    changed: u64,
    unchanged: u64,
}

/// Writes what it is given, as table lines or JSON lines, in chunks.
struct Report<'a> {
    args: &'a Args,
    buf: String,
}

impl Report<'_> {
    fn line(&mut self, s: &str) {
        self.buf.push_str(s);
        self.buf.push('\n');
        if self.buf.len() > 1 << 16 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        super::out(&self.buf);
        self.buf.clear();
    }

    /// Lists one difference (not in `--summary`).
    fn detail(&mut self, v: &Value, table: impl FnOnce() -> String) {
        if self.args.summary {
            return;
        }
        if self.args.json {
            self.line(&v.to_string());
        } else {
            self.line(&table());
        }
    }
}

/// A rendered stored value as the table shows it: the bare value when that is all
/// there is, else the whole object (`expires_ms`, `list`).
fn short(v: &Value) -> String {
    match v.as_object() {
        Some(o) if o.len() == 1 && o.contains_key("value") => o.get("value").map(Value::to_string).unwrap_or_default(),
        _ => v.to_string(),
    }
}

fn entry_row(
    change: &str,
    desc: &StateDescriptor,
    key: Option<&ValueEncoding>,
    k: &[u8],
    a: Option<(&StateDescriptor, &[u8])>,
    b: Option<(&StateDescriptor, &[u8])>,
) -> anyhow::Result<Value> {
    let mut row = serde_json::Map::new();
    row.insert("kind".into(), "entry".into());
    row.insert("change".into(), change.into());
    add_identity(&mut row, desc, key, k)?;
    for (side, v) in [("a", a), ("b", b)] {
        if let Some((d, bytes)) = v {
            let rendered = formats::value::render_stored(d, bytes)
                .map_err(|e| anyhow::anyhow!("{side}: state {:?}: rendering a value: {e}", d.name))?;
            row.insert(side.into(), rendered);
        }
    }
    Ok(Value::Object(row))
}

fn entry_table(v: &Value) -> String {
    let mut key = v["key"].to_string();
    if let Some(uk) = v.get("user_key") {
        key.push_str(&format!(" / {uk}"));
    }
    let mut s = format!(
        "{:<8} {}  {key}  key group {}",
        v["change"].as_str().unwrap_or_default(),
        v["state"].as_str().unwrap_or_default(),
        v["key_group"]
    );
    for side in ["a", "b"] {
        if let Some(x) = v.get(side) {
            s.push_str(&format!("  {side} {}", short(x)));
        }
    }
    s
}

/// Counts one pair of the join and, unless `--summary` (which renders nothing: a
/// changed entry's values are compared as bytes), lists it.
fn compare(
    args: &Args,
    ma: &Manifest,
    mb: &Manifest,
    counts: &mut BTreeMap<String, Counts>,
    r: &mut Report<'_>,
    p: Pair<'_>,
) -> anyhow::Result<()> {
    let (change, desc) = match p {
        Pair::OnlyA(d, ..) => ("removed", d),
        Pair::OnlyB(d, ..) => ("added", d),
        Pair::Both(da, _, _, va, vb) if va == vb => {
            counts.entry(da.name.clone()).or_default().unchanged += 1;
            return Ok(());
        }
        Pair::Both(da, ..) => ("changed", da),
    };
    let c = counts.entry(desc.name.clone()).or_default();
    match change {
        "removed" => c.removed += 1,
        "added" => c.added += 1,
        _ => c.changed += 1,
    }
    if args.summary {
        return Ok(());
    }
    let row = match p {
        Pair::OnlyA(d, k, v) => entry_row(change, d, ma.key.as_ref(), k, Some((d, v)), None)?,
        Pair::OnlyB(d, k, v) => entry_row(change, d, mb.key.as_ref(), k, None, Some((d, v)))?,
        Pair::Both(da, db, k, va, vb) => entry_row(change, da, ma.key.as_ref(), k, Some((da, va)), Some((db, vb)))?,
    };
    r.detail(&row, || entry_table(&row));
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let (la, lb) = (load(&args.a)?, load(&args.b)?);
    let (ma, mb) = (&la.manifest, &lb.manifest);
    let mut r = Report { args, buf: String::new() };
    if !args.json && !args.summary {
        for (side, l) in [("a", &la), ("b", &lb)] {
            r.line(&format!(
                "{side}  {}  {} {} of job {:?}",
                l.dir.display(),
                l.kind.label(),
                l.manifest.checkpoint.0,
                l.manifest.job
            ));
        }
    }

    let mdiffs = manifest_differences(ma, mb);
    let mdiff_json: Vec<Value> = mdiffs
        .iter()
        .map(|d| match &d.state {
            Some(n) => {
                let change = if d.a.is_null() {
                    "added"
                } else if d.b.is_null() {
                    "removed"
                } else {
                    "changed"
                };
                json!({ "kind": "state", "state": n, "change": change, "a": d.a, "b": d.b })
            }
            None => json!({ "kind": "manifest", "field": d.field, "a": d.a, "b": d.b }),
        })
        .collect();
    for (d, v) in mdiffs.iter().zip(&mdiff_json) {
        if args.json {
            if !args.summary {
                r.line(&v.to_string());
            }
        } else {
            let what = d
                .state
                .as_ref()
                .map_or(d.field.to_string(), |n| format!("state {n:?} {}", v["change"].as_str().unwrap_or_default()));
            r.line(&format!("manifest  {what}:  a {}  b {}", d.a, d.b));
        }
    }
    if mdiffs.iter().any(|d| d.field == "max_key_groups") {
        let note = "key-group counts differ: entries are compared by full state key, so a key whose group moved shows as removed and added";
        if !args.json {
            r.line(&format!("note      {note}"));
        }
    }

    // Files, from the manifests alone.
    let files = file_changes(&la, &lb);
    let mut totals: BTreeMap<FileChange, (u64, u64)> = FILE_CHANGES.iter().map(|c| (*c, (0, 0))).collect();
    if !args.json && !args.summary && !files.is_empty() {
        r.line("\nfiles");
    }
    for (change, path, size) in &files {
        if let Some(t) = totals.get_mut(change) {
            t.0 += 1;
            t.1 += size;
        }
        let v = json!({ "kind": "file", "change": change.name(), "path": path, "bytes": size });
        r.detail(&v, || format!("{:<9} {path}  {}", change.name(), target::human_bytes(*size)));
    }
    let files_differ = files.iter().any(|(c, _, _)| !matches!(c, FileChange::Reused | FileChange::Unchanged));

    // Entries, streamed.
    let mut counts: BTreeMap<String, Counts> =
        ma.states.iter().chain(&mb.states).map(|d| (d.name.clone(), Counts::default())).collect();
    if !args.json && !args.summary {
        r.line("\nentries");
    }
    let (sa, sb) = (Side { root: &la.base, manifest: ma }, Side { root: &lb.base, manifest: mb });
    // Both sides' crc32 passes run beside the reading (each side's reader is a thread of
    // its own, `join`); a damaged file is the error, whatever the comparison found.
    let (crc_a, crc_b, joined) = std::thread::scope(|s| {
        let ca = s.spawn(|| la.check_crc());
        let cb = s.spawn(|| lb.check_crc());
        let joined = join::join(&sa, &sb, &mut |p| compare(args, ma, mb, &mut counts, &mut r, p));
        (ca.join(), cb.join(), joined)
    });
    for (side, crc) in [("a", crc_a), ("b", crc_b)] {
        match crc {
            Ok(checked) => checked?,
            Err(_) => anyhow::bail!("{side}: the crc32 pass panicked"),
        }
    }
    joined?;

    let entries_differ = counts.values().any(|c| c.added + c.removed + c.changed > 0);
    let same_state = !entries_differ && !mdiffs.iter().any(|d| d.matters);
    let verdict = match (same_state, files_differ) {
        (true, false) => "same state, same files".to_string(),
        (true, true) => format!(
            "same state; the files differ ({} copied, {} added, {} removed)",
            totals[&FileChange::Copied].0,
            totals[&FileChange::Added].0,
            totals[&FileChange::Removed].0
        ),
        (false, _) => {
            let sum = |f: fn(&Counts) -> u64| counts.values().map(f).sum::<u64>();
            format!(
                "states differ: {} added, {} removed, {} changed entries",
                sum(|c| c.added),
                sum(|c| c.removed),
                sum(|c| c.changed)
            )
        }
    };
    if args.json {
        let side = |l: &Loaded| {
            let mut o = l.kind.json();
            o.insert("path".into(), l.dir.display().to_string().into());
            o.insert("job".into(), l.manifest.job.clone().into());
            o.insert("checkpoint".into(), l.manifest.checkpoint.0.into());
            Value::Object(o)
        };
        let v = json!({
            "kind": "summary",
            "a": side(&la),
            "b": side(&lb),
            "same_state": same_state,
            "same_files": !files_differ,
            "manifest_differences": mdiff_json,
            "files": totals.iter().map(|(c, (n, b))| (c.name().to_string(), json!({ "files": n, "bytes": b }))).collect::<serde_json::Map<_, _>>(),
            "states": counts.iter().map(|(n, c)| (n.clone(), json!({
                "added": c.added, "removed": c.removed, "changed": c.changed, "unchanged": c.unchanged
            }))).collect::<serde_json::Map<_, _>>(),
        });
        r.line(&v.to_string());
    } else {
        let t: Vec<String> =
            totals.iter().map(|(c, (n, b))| format!("{} {n} files {}", c.name(), target::human_bytes(*b))).collect();
        r.line(&format!("\nfiles     {}", t.join(", ")));
        let w = counts.keys().map(|n| n.len()).max().unwrap_or(5).max(5);
        r.line(&format!("\n{:<w$}  {:>9}  {:>9}  {:>9}  {:>9}", "state", "added", "removed", "changed", "unchanged"));
        for (n, c) in &counts {
            r.line(&format!("{n:<w$}  {:>9}  {:>9}  {:>9}  {:>9}", c.added, c.removed, c.changed, c.unchanged));
        }
        r.line(&format!("\n{verdict}"));
    }
    r.flush();
    Ok(u8::from(!same_state))
}
