//! `statetool diff` on checkpoints written by real jobs (the `sluice` binary, built by
//! `common/bins.rs`: never skipped): what it says, its exit codes, and that it never
//! modifies its input.
#[path = "common/bins.rs"]
mod bins;
#[path = "../../engine/tests/common/tree.rs"]
mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use formats::checkpoint::{checkpoint_ids, load, publish, Payload, Verify};
use formats::fs::StdFs;
use formats::keygroup::{range_for_shard, KeyGroup};
use formats::manifest::{CheckpointId, FileRef, Manifest, ShardFormat, ShardSnapshot};
use formats::savepoint;
use formats::snapshot::SnapshotWriter;
use formats::ShardId;
use serde_json::Value;

use bins::{sluice_bin, statetool};

/// Runs a count over 2000 generator keys throttled to about 1 s, checkpointed every
/// 150 ms and keeping every checkpoint, on `backend` with 2 shards; returns the root.
/// 300,500 records, so the final checkpoint's counts differ (150 and 151).
fn run_job(d: &Path, backend: &str) -> PathBuf {
    let spec = "[job]\nname = \"t\"\n[source]\nkind = \"generator\"\ncount = 300500\nkeys = 2000\n\
                rate_per_s = 300000\n[key]\nfield = \"key\"\n[aggregate]\nkind = \"count\"\n[sink]\nkind = \"file\"\n\
                path = \"out.jsonl\"\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 150\nretain = 1000\n";
    std::fs::write(d.join("job.toml"), spec).expect("write job");
    let out = Command::new(sluice_bin())
        .args(["run", "job.toml", "--state-backend", backend, "--data-dir", "data", "--no-pin", "--shards", "2"])
        .current_dir(d)
        .output()
        .expect("run sluice");
    assert!(out.status.success(), "sluice: {}", String::from_utf8_lossy(&out.stderr));
    let root = d.join("ck").join("t");
    assert!(checkpoint_ids(&StdFs, &root).expect("ids").len() >= 3, "several checkpoints");
    root
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect()
}

/// (state, key) -> rendered value object, from `statetool dump`.
fn dump(path: &Path) -> BTreeMap<(String, String), Value> {
    let (code, out, err) = statetool(&["dump", s(path)]);
    assert_eq!(code, 0, "{err}");
    json_lines(&out)
        .into_iter()
        .map(|mut v| {
            let id = (v["state"].as_str().expect("state").to_owned(), v["key"].to_string());
            let o = v.as_object_mut().expect("object");
            for f in ["state", "key", "key_group", "user_key"] {
                o.remove(f);
            }
            (id, v)
        })
        .collect()
}

/// (change, key as JSON) -> (A's rendered value, B's).
type Changes = BTreeMap<(String, String), (Option<Value>, Option<Value>)>;

/// The entry lines of `diff --json`, each once.
fn changes(lines: &[Value]) -> Changes {
    let mut out = Changes::new();
    for v in lines.iter().filter(|v| v["kind"] == "entry") {
        let id = (v["change"].as_str().expect("change").to_owned(), v["key"].to_string());
        let prev = out.insert(id, (v.get("a").cloned(), v.get("b").cloned()));
        assert!(prev.is_none(), "listed twice: {v}");
    }
    out
}

fn manifests(root: &Path) -> Vec<Manifest> {
    let mut ids = checkpoint_ids(&StdFs, root).expect("ids");
    ids.sort();
    ids.iter().map(|id| load(&StdFs, root, *id, Verify::Checksums).expect("intact")).collect()
}

#[test]
fn diff_of_a_checkpoint_with_itself_is_empty() {
    // Pins: `diff A A` (a root, a chk-<n>, both backends) lists no file change and no
    // entry, counts every entry unchanged, exits 0, and leaves the input as it was.
    for backend in ["rocksdb", "heap"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = run_job(dir.path(), backend);
        let before = tree::fingerprints(&root);
        let newest = manifests(&root).pop().expect("a checkpoint");
        let chk = formats::layout::checkpoint_dir(&root, newest.checkpoint);
        let entries = dump(&chk).len() as u64;
        assert!(entries > 0, "the job wrote state");
        for (a, b) in [(&root, &root), (&chk, &chk), (&root, &chk)] {
            let (code, out, err) = statetool(&["diff", s(a), s(b), "--json"]);
            assert_eq!(code, 0, "{backend}: {out}{err}");
            let lines = json_lines(&out);
            let changes: Vec<&Value> = lines
                .iter()
                .filter(|v| v["kind"] != "summary" && !(v["kind"] == "file" && v["change"] == "reused"))
                .filter(|v| !(v["kind"] == "file" && v["change"] == "unchanged"))
                .collect();
            assert!(changes.is_empty(), "{backend}: {changes:?}");
            let sum = lines.last().expect("a summary");
            assert_eq!(sum["kind"], "summary");
            assert_eq!((sum["same_state"].as_bool(), sum["same_files"].as_bool()), (Some(true), Some(true)), "{sum}");
            assert_eq!(sum["states"]["count"]["unchanged"].as_u64(), Some(entries), "{sum}");
            let (code, out, _) = statetool(&["diff", s(a), s(b)]);
            assert_eq!(code, 0);
            assert!(out.trim_end().ends_with("same state, same files"), "{out}");
        }
        assert_eq!(tree::fingerprints(&root), before, "{backend}: diff modified its input");
    }
}

#[test]
fn consecutive_checkpoints_show_what_the_second_copied_and_changed() {
    // Pins: for consecutive incremental (RocksDB) checkpoints, the files part lists as
    // copied exactly the shared files the second lists and the first does not, with
    // bytes summing to their sizes in the manifest; the entries part lists exactly the
    // keys whose values differ between the two `dump`s, with both values; exit 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = run_job(dir.path(), "rocksdb");
    let before = tree::fingerprints(&root);
    let ms = manifests(&root);
    let mut checked = 0;
    for w in ms.windows(2) {
        let [a, b] = w else { unreachable!() };
        let (pa, pb) = (
            formats::layout::checkpoint_dir(&root, a.checkpoint),
            formats::layout::checkpoint_dir(&root, b.checkpoint),
        );
        let shared = |m: &Manifest| {
            m.files()
                .filter(|f| f.path.starts_with("shared/"))
                .map(|f| (f.path.clone(), f.size))
                .collect::<BTreeMap<_, _>>()
        };
        let (sa, sb) = (shared(a), shared(b));
        let want_copied: BTreeMap<String, u64> =
            sb.iter().filter(|(p, _)| !sa.contains_key(*p)).map(|(p, n)| (p.clone(), *n)).collect();
        let (da, db) = (dump(&pa), dump(&pb));
        let mut want: Changes = BTreeMap::new();
        for id in da.keys().chain(db.keys()) {
            let (x, y) = (da.get(id), db.get(id));
            if x != y {
                let kind = match (x, y) {
                    (Some(_), None) => "removed",
                    (None, Some(_)) => "added",
                    _ => "changed",
                };
                want.insert((kind.into(), id.1.clone()), (x.cloned(), y.cloned()));
            }
        }
        let (code, out, err) = statetool(&["diff", s(&pa), s(&pb), "--json"]);
        let lines = json_lines(&out);
        let got_copied: BTreeMap<String, u64> = lines
            .iter()
            .filter(|v| v["kind"] == "file" && v["change"] == "copied")
            .map(|v| (v["path"].as_str().expect("path").to_owned(), v["bytes"].as_u64().expect("bytes")))
            .collect();
        assert_eq!(got_copied, want_copied, "{}..{}", a.checkpoint.0, b.checkpoint.0);
        let sum = lines.last().expect("summary");
        assert_eq!(sum["files"]["copied"]["bytes"].as_u64(), Some(want_copied.values().sum::<u64>()), "{sum}");
        let got = changes(&lines);
        assert_eq!(got, want, "{}..{}", a.checkpoint.0, b.checkpoint.0);
        assert_eq!(code, if want.is_empty() { 0 } else { 1 }, "{err}");
        if !want.is_empty() && !want_copied.is_empty() {
            checked += 1;
        }
        let (code, out, _) = statetool(&["diff", s(&pa), s(&pb), "--summary", "--json"]);
        assert_eq!(code, if want.is_empty() { 0 } else { 1 });
        assert_eq!(json_lines(&out).len(), 1, "--summary --json prints the summary only: {out}");
        // --summary counts without rendering: the same summary as the full listing's.
        assert_eq!(json_lines(&out).last(), Some(sum), "--summary counts as the listing does");
    }
    assert!(checked > 0, "some consecutive pair copied files and changed entries");
    assert_eq!(tree::fingerprints(&root), before, "diff modified its input");
}

/// Republishes checkpoint `m` of `root` as checkpoint 1 of the root `to` (or, with
/// `savepoint`, as the canonical savepoint `to`), in snapshot files cut for `shards`
/// shards, after `edit` changed its entries ((state index, state key) -> stored value).
fn republish(
    root: &Path,
    m: &Manifest,
    to: &Path,
    savepoint: bool,
    shards: u32,
    edit: impl FnOnce(&mut BTreeMap<(u32, Vec<u8>), Vec<u8>>),
) {
    let mut all = BTreeMap::new();
    let scratch = tempfile::tempdir().expect("scratch");
    reader::for_each(&mut StdFs, root, m, reader::ALL_KEY_GROUPS, Some(&scratch.path().join("i")), &mut |d, k, v| {
        let i = m.states.iter().position(|x| x.name == d.name).expect("declared") as u32;
        all.insert((i, k.to_vec()), v.to_vec());
        Ok(())
    })
    .expect("read");
    edit(&mut all);
    let id = CheckpointId(1);
    let mut payloads = Vec::new();
    let mut out = Manifest { checkpoint: id, parent: None, shards: Vec::new(), ..m.clone() };
    for sh in 0..shards {
        let range = range_for_shard(ShardId(sh as u16), shards, m.max_key_groups);
        let mut w = SnapshotWriter::new(m.states.clone(), range);
        for ((i, k), v) in &all {
            let kg = formats::statekey::decode(k).expect("key").key_group;
            if range.contains(kg) {
                w.add(*i, KeyGroup(kg.0), k, v).expect("add");
            }
        }
        let bytes = w.finish().expect("finish");
        let path = if savepoint {
            formats::layout::savepoint_snapshot_path(sh as u16)
        } else {
            formats::layout::snapshot_file_path(id, sh as u16)
        };
        out.shards.push(ShardSnapshot {
            shard: sh as u16,
            range,
            format: ShardFormat::Snapshot,
            files: vec![FileRef::of(&path, &bytes)],
            source_position: Value::Null,
            operator_state: Vec::new(),
        });
        payloads.push(Payload { path, bytes });
    }
    if savepoint {
        savepoint::begin(&mut StdFs, to).expect("begin");
        for p in &payloads {
            std::fs::write(formats::layout::resolve(to, &p.path), &p.bytes).expect("write");
        }
        let meta = savepoint::SavepointMeta { form: savepoint::Form::Canonical, manifest: out };
        savepoint::commit(&mut StdFs, to, &meta).expect("commit");
    } else {
        std::fs::create_dir_all(to).expect("mkdir");
        publish(&mut StdFs, to, &out, &payloads).expect("publish");
    }
}

#[test]
fn a_planted_change_is_found_with_both_values() {
    // Pins: the same state in a canonical savepoint cut into other shard ranges (3
    // snapshot shards against a 2-shard RocksDB checkpoint) is the same state (exit 0,
    // "the files differ"); one value changed, one entry removed and one added in a copy
    // are exactly what diff reports (exit 1), against the checkpoint and against the
    // savepoint, with A's and B's values rendered as `dump` renders them.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = run_job(dir.path(), "rocksdb");
    let m = manifests(&root).pop().expect("a checkpoint");
    let chk = formats::layout::checkpoint_dir(&root, m.checkpoint);
    let same = dir.path().join("same");
    republish(&root, &m, &same, true, 3, |_| {});
    let want = dump(&chk);
    let ((_, changed_key), old) = want.iter().next().expect("an entry");
    let ((_, removed_key), _) = want.iter().nth(1).expect("a second entry");
    let (changed_key, removed_key, old) = (changed_key.clone(), removed_key.clone(), old.clone());
    let planted = dir.path().join("planted");
    let mut new_value = None;
    republish(&root, &m, &planted, false, 3, |all| {
        let key_of = |k: &[u8]| {
            let sk = formats::statekey::decode(k).expect("key");
            format!("{:?}", String::from_utf8_lossy(sk.key))
        };
        let find = |all: &BTreeMap<(u32, Vec<u8>), Vec<u8>>, want: &str| {
            all.keys().find(|(_, k)| key_of(k) == want).cloned().expect("the key")
        };
        // Changed: the value of another entry whose value differs; added: a new key
        // with that value too; removed: the second entry.
        let c = find(all, &changed_key);
        let (other, v) =
            all.iter().find(|(_, v)| **v != all[&c]).map(|(k, v)| (k.clone(), v.clone())).expect("a different value");
        assert_ne!(other, c);
        new_value = Some(other);
        all.insert(c, v.clone());
        let r = find(all, &removed_key);
        all.remove(&r);
        let kg = formats::keygroup::key_group_of(b"planted", m.max_key_groups);
        let mut k = Vec::new();
        formats::statekey::encode_prefix(&mut k, kg, b"planted", b"");
        all.insert((0, k), v);
    });
    let other = new_value.expect("edited");
    let other_value = want
        .iter()
        .find(|((_, k), _)| {
            *k == format!("{:?}", String::from_utf8_lossy(formats::statekey::decode(&other.1).expect("key").key))
        })
        .map(|(_, v)| v.clone())
        .expect("the other entry");
    let inputs = [root.clone(), same.clone(), planted.clone()];
    let before: Vec<_> = inputs.iter().map(|p| tree::fingerprints(p)).collect();
    let (code, out, err) = statetool(&["diff", s(&chk), s(&same)]);
    assert_eq!(code, 0, "{out}{err}");
    let n_files = m.files().map(|f| f.path.clone()).collect::<BTreeSet<_>>().len();
    let verdict = format!("same state; the files differ (0 copied, 3 added, {n_files} removed)");
    assert!(out.trim_end().ends_with(&verdict), "{out}");

    let (code, out, err) = statetool(&["diff", s(&chk), s(&planted), "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let got = changes(&json_lines(&out));
    let (code, out, err) = statetool(&["diff", s(&same), s(&planted), "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(changes(&json_lines(&out)), got, "the savepoint holds the checkpoint's state");
    let expect: Changes = [
        (("changed".to_string(), changed_key.clone()), (Some(old.clone()), Some(other_value.clone()))),
        (
            ("removed".to_string(), removed_key.clone()),
            (Some(want[&("count".to_string(), removed_key.clone())].clone()), None),
        ),
        (("added".to_string(), "\"planted\"".to_string()), (None, Some(other_value.clone()))),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expect);
    // The table says the same for people: the changed key with both values.
    let (code, out, _) = statetool(&["diff", s(&chk), s(&planted)]);
    assert_eq!(code, 1);
    let line = out.lines().find(|l| l.starts_with("changed") && l.contains(&changed_key)).expect("the changed line");
    let bare = |v: &Value| v["value"].to_string();
    assert!(line.ends_with(&format!("a {}  b {}", bare(&old), bare(&other_value))), "{line}");
    assert!(out.trim_end().ends_with("states differ: 1 added, 1 removed, 1 changed entries"), "{out}");
    for (p, h) in inputs.iter().zip(&before) {
        assert_eq!(&tree::fingerprints(p), h, "diff modified {}", p.display());
    }
}

#[test]
fn a_missing_input_is_a_usage_error_naming_it() {
    // Pins: exit 2 with the path in the message when A or B is not a checkpoint.
    let d = tempfile::tempdir().expect("tempdir");
    let missing = d.path().join("nope");
    let (code, _, err) = statetool(&["diff", s(d.path()), s(&missing)]);
    assert_eq!(code, 2);
    assert!(err.contains(s(d.path())) || err.contains(s(&missing)), "{err}");
}

/// A state's name, value encoding and `(key, u64 value)` rows.
type StateRows<'a> = (&'a str, formats::value::ValueEncoding, Vec<(&'a str, u64)>);

/// Publishes checkpoint 1 of the root `root` (one shard, 8 key groups) holding, per
/// state of `states`, the rows given for it.
fn publish_states(root: &Path, states: &[StateRows<'_>]) {
    use formats::value::{StateDescriptor, StateKind};
    let range = formats::keygroup::KeyGroupRange { start: 0, end: 8 };
    let descs: Vec<StateDescriptor> = states
        .iter()
        .map(|(n, enc, _)| StateDescriptor {
            name: (*n).into(),
            kind: StateKind::Value,
            value: enc.clone(),
            user_key: None,
            ttl: None,
        })
        .collect();
    let mut entries = Vec::new();
    for (i, (_, _, rows)) in states.iter().enumerate() {
        for (k, v) in rows {
            let kg = formats::keygroup::key_group_of(k.as_bytes(), 8);
            let mut sk = Vec::new();
            formats::statekey::encode_prefix(&mut sk, kg, k.as_bytes(), b"");
            entries.push((i as u32, sk, v.to_le_bytes().to_vec()));
        }
    }
    entries.sort();
    let mut w = SnapshotWriter::new(descs.clone(), range);
    for (i, k, v) in &entries {
        let kg = formats::statekey::decode(k).expect("key").key_group;
        w.add(*i, kg, k, v).expect("add");
    }
    let bytes = w.finish().expect("finish");
    let id = CheckpointId(1);
    let path = formats::layout::snapshot_file_path(id, 0);
    let m = Manifest {
        job: "j".into(),
        checkpoint: id,
        parent: None,
        created_ms: 0,
        max_key_groups: 8,
        backend: "heap".into(),
        key: Some(formats::value::ValueEncoding::Utf8),
        states: descs,
        shards: vec![ShardSnapshot {
            shard: 0,
            range,
            format: ShardFormat::Snapshot,
            files: vec![FileRef::of(&path, &bytes)],
            source_position: Value::Null,
            operator_state: Vec::new(),
        }],
    };
    std::fs::create_dir_all(root).expect("mkdir");
    publish(&mut StdFs, root, &m, &[Payload { path, bytes }]).expect("publish");
}

#[test]
fn state_differences_come_first_and_entries_follow_them() {
    // Pins: a state only B declares is reported as added and all its entries as added; a
    // state whose descriptor changed is reported as changed and its entries compared as
    // bytes (equal bytes: unchanged), exit 1 all the same; entry differences of the other
    // states are found whether B declares the common states in A's order (one merged
    // pass) or in the opposite order (read state by state).
    use formats::value::ValueEncoding::{I64, U64};
    let d = tempfile::tempdir().expect("tempdir");
    let rows = |n: u64| (0..5).map(|i| (["k0", "k1", "k2", "k3", "k4"][i as usize], i + n)).collect::<Vec<_>>();
    let a = d.path().join("a");
    publish_states(&a, &[("x", U64, rows(0)), ("y", U64, rows(10))]);
    let mut x_b = rows(0);
    x_b[2].1 = 99;
    let z = vec![("k0", 7), ("k1", 8)];
    let orders = [
        ("merged", vec![("x", U64, x_b.clone()), ("z", U64, z.clone()), ("y", I64, rows(10))]),
        ("opposite", vec![("z", U64, z.clone()), ("y", I64, rows(10)), ("x", U64, x_b.clone())]),
    ];
    for (what, states) in orders {
        let b = d.path().join(what);
        publish_states(&b, &states);
        let before = (tree::fingerprints(&a), tree::fingerprints(&b));
        let (code, out, err) = statetool(&["diff", s(&a), s(&b), "--json"]);
        assert_eq!(code, 1, "{what}: {out}{err}");
        let lines = json_lines(&out);
        // The state lines come before any file or entry line.
        let kinds: Vec<&str> = lines.iter().map(|v| v["kind"].as_str().expect("kind")).collect();
        assert_eq!(kinds.get(..2), Some(&["state", "state"][..]), "{what}: {out}");
        let states: BTreeMap<&str, &str> = lines
            .iter()
            .filter(|v| v["kind"] == "state")
            .map(|v| (v["state"].as_str().expect("state"), v["change"].as_str().expect("change")))
            .collect();
        assert_eq!(states, BTreeMap::from([("y", "changed"), ("z", "added")]), "{what}");
        let entries: BTreeSet<(String, String, String)> = lines
            .iter()
            .filter(|v| v["kind"] == "entry")
            .map(|v| (v["state"].to_string(), v["change"].to_string(), v["key"].to_string()))
            .collect();
        let want: BTreeSet<(String, String, String)> =
            [("x", "changed", "k2"), ("z", "added", "k0"), ("z", "added", "k1")]
                .iter()
                .map(|(s, c, k)| (format!("{s:?}"), format!("{c:?}"), format!("{k:?}")))
                .collect();
        assert_eq!(entries, want, "{what}: {out}");
        let x2 = lines.iter().find(|v| v["kind"] == "entry" && v["state"] == "x").expect("x's change");
        assert_eq!((x2["a"]["value"].as_u64(), x2["b"]["value"].as_u64()), (Some(2), Some(99)), "{what}");
        let sum = lines.last().expect("summary");
        assert_eq!(sum["states"]["y"]["unchanged"].as_u64(), Some(5), "{what}: {sum}");
        assert_eq!(sum["states"]["x"]["unchanged"].as_u64(), Some(4), "{what}: {sum}");
        assert_eq!(sum["same_state"].as_bool(), Some(false));
        assert_eq!((tree::fingerprints(&a), tree::fingerprints(&b)), before, "{what}: diff modified its input");
    }
}
