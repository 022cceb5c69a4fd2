//! statetool on checkpoints and savepoints written by real jobs: the `sluice` binary
//! runs a job in the background (`--control-port 0`), takes a savepoint of each form and
//! stops; then `inspect`, `du`, `dump` and `verify` must agree with what the job wrote,
//! figures computed in the test independently (manifests read through `formats`, entries
//! through `reader`), and no verb may change a byte of its input.
//!
//! The `sluice` binary is the workspace's, built into this test's target directory and
//! profile by `common/bins.rs` (never skipped, never stale).
#[path = "common/bins.rs"]
mod bins;
#[path = "../../engine/tests/common/tree.rs"]
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use formats::checkpoint::Verify;
use formats::fs::StdFs;
use formats::manifest::Manifest;
use serde_json::Value;

use bins::{s, sluice_bin, statetool};

/// How long any one wait may take before it fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs statetool and checks that none of `inputs` changed a byte (hashes of every file
/// before and after).
fn statetool_on(inputs: &[&Path], args: &[&str]) -> (i32, String, String) {
    let before: Vec<_> = inputs.iter().map(|p| tree::fingerprints(p)).collect();
    let r = statetool(args);
    for (p, b) in inputs.iter().zip(before) {
        assert!(tree::fingerprints(p) == b, "statetool {args:?} changed {}", p.display());
    }
    r
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A `sluice run` child, killed and reaped when dropped (a failing test leaves no process).
struct Daemon {
    child: Option<Child>,
    data: PathBuf,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    /// `sluice run job.toml <args> --control-port 0 --no-pin --data-dir <dir>/data`, in
    /// `dir`, with its own registry; returns once the endpoint is published.
    fn start(dir: &Path, args: &[&str]) -> Daemon {
        let data = dir.join("data");
        let log = dir.join("run.log");
        let rt = dir.join("runtime");
        std::fs::create_dir_all(&rt).expect("runtime dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let child = Command::new(sluice_bin())
            .arg("run")
            .arg("job.toml")
            .args(args)
            .args(["--control-port", "0", "--no-pin", "--data-dir", s(&data)])
            .current_dir(dir)
            .env("SLUICE_RUNTIME_DIR", &rt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn sluice run");
        let mut d = Daemon { child: Some(child), data, log };
        let until = Instant::now() + PATIENCE;
        let pid = u64::from(d.child.as_ref().map_or(0, Child::id));
        loop {
            let published = std::fs::read_to_string(d.data.join("control.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["pid"].as_u64() == Some(pid));
            if published {
                return d;
            }
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().expect("try_wait")) {
                panic!("sluice run exited ({st}) before publishing its endpoint:\n{}", d.log());
            }
            assert!(Instant::now() < until, "no endpoint after {PATIENCE:?}:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `sluice` control verb against this daemon (`savepoint`, `stop`), which must succeed.
    fn control(&self, verb: &str, args: &[&str]) {
        let out = Command::new(sluice_bin())
            .arg(verb)
            .args(["--data-dir", s(&self.data)])
            .args(args)
            .args(["--timeout-s", &PATIENCE.as_secs().to_string()])
            .env("SLUICE_RUNTIME_DIR", self.data.parent().expect("dir").join("runtime"))
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "sluice {verb} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Waits for the process to exit 0 after a stop.
    fn wait(mut self) {
        let until = Instant::now() + PATIENCE;
        let mut c = self.child.take().expect("running");
        loop {
            if let Some(st) = c.try_wait().expect("try_wait") {
                assert!(st.success(), "sluice run exited {st}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < until, "still running after {PATIENCE:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls `until_ok` every 20 ms for at most [`PATIENCE`].
fn wait_for(what: &str, mut until_ok: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !until_ok() {
        assert!(Instant::now() < until, "{what}: not after {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newest checkpoint of `root` that loads with every file intact.
fn newest_checkpoint(root: &Path) -> Option<Manifest> {
    formats::checkpoint::latest(&StdFs, root, Verify::Checksums).ok().and_then(|d| d.latest)
}

/// Keys of the generator job.
const KEYS: u64 = 2_000;

/// What one real generator job left: its checkpoint root and a savepoint of each form.
struct Written {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    native: PathBuf,
    canonical: PathBuf,
}

/// One run for the whole file (tests run in parallel and share it, reading only): the
/// `sequence` job over [`KEYS`] keys, unbounded and throttled, 2 RocksDB shards,
/// checkpoints every 100 ms. Once a checkpoint shows every split past `2 * KEYS` (so
/// every key has state), `sluice savepoint --form native`, then `sluice stop --savepoint
/// --form canonical`.
fn written() -> &'static Written {
    static W: OnceLock<Written> = OnceLock::new();
    W.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        std::fs::write(
            dir.join("job.toml"),
            format!(
                "[job]\nname = \"seq\"\n\n[source]\nkind = \"generator\"\nkeys = {KEYS}\nrate_per_s = 100000\n\n\
                 [key]\nfield = \"key\"\n\n[aggregate]\nkind = \"sequence\"\nfield = \"seq\"\n\n\
                 [sink]\nkind = \"file\"\npath = \"out.jsonl\"\n\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\nretain = 2\n"
            ),
        )
        .expect("job file");
        let d = Daemon::start(dir, &["--shards", "2", "--state-backend", "rocksdb"]);
        let root = dir.join("ck").join("seq");
        wait_for("a checkpoint with every key", || {
            newest_checkpoint(&root).is_some_and(|m| {
                m.shards.iter().all(|sh| {
                    sh.source_position.as_array().is_some_and(|a| {
                        a.iter().all(|sp| sp["next"].as_u64().is_some_and(|n| n > 2 * KEYS))
                    })
                })
            })
        });
        let (native, canonical) = (dir.join("sp-native"), dir.join("sp-canonical"));
        d.control("savepoint", &["--to", s(&native), "--form", "native"]);
        d.control("stop", &["--savepoint", s(&canonical), "--form", "canonical"]);
        d.wait();
        Written { _tmp: tmp, root, native, canonical }
    })
}

/// The manifest statetool should read for PATH, through `formats`: a savepoint's
/// metadata, or the newest intact checkpoint of a root.
fn manifest_of(path: &Path) -> (PathBuf, Manifest) {
    if formats::layout::is_savepoint_dir(path) {
        let meta = formats::savepoint::load(&StdFs, path, Verify::Checksums).expect("savepoint loads");
        (path.to_path_buf(), meta.manifest)
    } else {
        (path.to_path_buf(), newest_checkpoint(path).expect("an intact checkpoint"))
    }
}

/// Every entry of PATH through `reader`: (state, key group, stored key + value bytes).
fn entries_of(path: &Path) -> Vec<(String, u16, u64)> {
    let (base, m) = manifest_of(path);
    let scratch = tempfile::tempdir().expect("scratch");
    let mut out = Vec::new();
    reader::for_each(&mut StdFs, &base, &m, reader::ALL_KEY_GROUPS, Some(&scratch.path().join("i")), &mut |d, k, v| {
        let kg = formats::statekey::decode(k)?.key_group.0;
        out.push((d.name.clone(), kg, (k.len() + v.len()) as u64));
        Ok(())
    })
    .expect("reader reads it");
    out
}

/// Records the job processed up to PATH's source positions: per split `(next - id) / step`
/// (split `id` emits `id, id + step, ...`).
fn processed(m: &Manifest) -> u64 {
    m.shards
        .iter()
        .flat_map(|sh| sh.source_position.as_array().cloned().unwrap_or_default())
        .map(|sp| {
            let (id, next, step) = (sp["id"].as_u64(), sp["next"].as_u64(), sp["step"].as_u64());
            let (id, next, step) = (id.expect("id"), next.expect("next"), step.expect("step"));
            (next - id).div_ceil(step)
        })
        .sum()
}

#[test]
fn inspect_tells_kind_time_positions_and_entries() {
    // Pins: inspect of a native savepoint, a canonical one and a checkpoint root says
    // which it is (and the form), the creation time (UTC, the manifest's created_ms),
    // every shard's source position, and with --entries exactly KEYS entries for the
    // `sequence` state with the key + value bytes `reader` finds; inputs untouched.
    let w = written();
    for (path, kind, form) in [
        (&w.native, "savepoint", Some("native")),
        (&w.canonical, "savepoint", Some("canonical")),
        (&w.root, "checkpoint", None),
    ] {
        let (_, m) = manifest_of(path);
        let (code, out, err) = statetool_on(&[path], &["inspect", s(path), "--entries", "--json"]);
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        assert_eq!(v["kind"], kind, "{out}");
        assert_eq!(v["form"].as_str(), form, "{out}");
        assert_eq!(v["manifest"]["checkpoint"], m.checkpoint.0, "{out}");
        let bytes: u64 = entries_of(path).iter().map(|e| e.2).sum();
        assert_eq!(v["states"]["sequence"], serde_json::json!({ "entries": KEYS, "bytes": bytes }), "{out}");
        assert_eq!(v["entries"], KEYS);

        let (code, out, err) = statetool_on(&[path], &["inspect", s(path)]);
        assert_eq!(code, 0, "{err}");
        let title = match form {
            Some(f) => format!("savepoint ({f}) at checkpoint {} of job \"seq\"", m.checkpoint.0),
            None => format!("checkpoint {} of job \"seq\"  parent", m.checkpoint.0),
        };
        assert!(out.starts_with(&title), "{out}");
        let secs = m.created_ms / 1000;
        let hms =
            format!("{:02}:{:02}:{:02}.{:03}Z", secs % 86_400 / 3600, secs % 3600 / 60, secs % 60, m.created_ms % 1000);
        assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("created 20") && l.contains(&hms)), "{out}");
        for sh in &m.shards {
            let sp = &sh.source_position[0];
            let want = format!("#{} next {} end - step 2", sp["id"], sp["next"]);
            assert!(out.contains(&want), "shard {} position {want:?} missing:\n{out}", sh.shard);
        }
        assert!(!out.contains("read "), "without --entries inspect reads no entry:\n{out}");
    }
}

#[test]
fn du_figures_match_the_manifest_and_the_entries() {
    // Pins: du --by shard gives each shard the sum of its manifest file sizes (owned and
    // shared split by path) and the total; du --by state and --by key-group total the
    // key + value bytes of every entry read independently, per state and per key group,
    // sorted by bytes descending; --top-keys K lists K entries, largest first, the first
    // as large as the largest entry; all on both savepoint forms and a checkpoint root,
    // inputs untouched.
    let w = written();
    for path in [&w.native, &w.canonical, &w.root] {
        let (_, m) = manifest_of(path);
        let (code, out, err) = statetool_on(&[path], &["du", s(path), "--by", "shard", "--json"]);
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        let total: u64 = m.files().map(|f| f.size).sum();
        assert_eq!(v["total_bytes"], total, "{out}");
        let mut rows: Vec<(u64, u64, u64)> = v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r["shard"].as_u64().expect("shard"),
                    r["bytes"].as_u64().expect("b"),
                    r["shared_bytes"].as_u64().expect("s"),
                )
            })
            .collect();
        assert!(rows.windows(2).all(|p| p[0].1 >= p[1].1), "sorted by bytes: {out}");
        rows.sort();
        let want: Vec<(u64, u64, u64)> = m
            .shards
            .iter()
            .map(|sh| {
                let shared = sh.files.iter().filter(|f| f.path.starts_with("shared/")).map(|f| f.size).sum();
                (u64::from(sh.shard), sh.files.iter().map(|f| f.size).sum(), shared)
            })
            .collect();
        assert_eq!(rows, want, "{out}");

        let entries = entries_of(path);
        let mut per_kg: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (_, kg, b) in &entries {
            let e = per_kg.entry(u64::from(*kg)).or_default();
            e.0 += 1;
            e.1 += b;
        }
        let bytes: u64 = entries.iter().map(|e| e.2).sum();
        let (code, out, err) = statetool_on(&[path], &["du", s(path), "--json"]);
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        assert_eq!(
            (v["by"].as_str(), v["total_bytes"].as_u64(), v["entries"].as_u64()),
            (Some("state"), Some(bytes), Some(KEYS))
        );
        assert_eq!(v["rows"], serde_json::json!([{ "state": "sequence", "entries": KEYS, "bytes": bytes }]), "{out}");

        let (code, out, err) =
            statetool_on(&[path], &["du", s(path), "--by", "key-group", "--top-keys", "5", "--json"]);
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        let rows = v["rows"].as_array().expect("rows");
        let got: BTreeMap<u64, (u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r["key_group"].as_u64().expect("kg"),
                    (r["entries"].as_u64().expect("e"), r["bytes"].as_u64().expect("b")),
                )
            })
            .collect();
        assert_eq!(got, per_kg, "per key group");
        assert!(rows.windows(2).all(|p| p[0]["bytes"].as_u64() >= p[1]["bytes"].as_u64()), "sorted: {out}");
        let top = v["top_keys"].as_array().expect("top_keys");
        assert_eq!(top.len(), 5, "{out}");
        assert!(top.windows(2).all(|p| p[0]["bytes"].as_u64() >= p[1]["bytes"].as_u64()), "largest first: {out}");
        assert_eq!(top[0]["bytes"].as_u64(), entries.iter().map(|e| e.2).max(), "{out}");
        let key: u64 = top[0]["key"].as_str().expect("key renders as text").parse().expect("a generator key");
        assert!(key < KEYS, "{out}");

        let (code, out, _) = statetool_on(&[path], &["du", s(path), "--top-keys", "3"]);
        assert_eq!(code, 0);
        assert!(out.contains("100.0%") && out.contains("largest 3 entries"), "{out}");
    }
}

/// `dump` of PATH: its lines parsed and sorted.
fn dump(path: &Path) -> Vec<Value> {
    let (code, out, err) = statetool_on(&[path], &["dump", s(path)]);
    assert_eq!(code, 0, "{err}");
    let mut v: Vec<Value> = out.lines().map(json).collect();
    v.sort_by_key(|x| x.to_string());
    v
}

#[test]
fn dump_of_savepoints_holds_what_the_job_counted() {
    // Pins: dump of a native and a canonical savepoint gives one line per key, KEYS in
    // all, each a `sequence` value whose counts add up to the records the job had
    // processed at the savepoint's source positions (a dump that drops or repeats an
    // entry, or reads the wrong file of a savepoint, fails this).
    let w = written();
    for path in [&w.native, &w.canonical] {
        let (_, m) = manifest_of(path);
        let lines = dump(path);
        assert_eq!(lines.len() as u64, KEYS);
        let counted: u64 = lines.iter().map(|l| l["value"]["count"].as_u64().expect("count")).sum();
        assert_eq!(counted, processed(&m), "{}", path.display());
        assert!(lines.iter().all(|l| l["state"] == "sequence"));
    }
}

#[test]
fn verify_passes_on_good_savepoints_and_names_every_planted_fault() {
    // Pins: verify exits 0 on both savepoint forms and the root; on copies of them it exits
    // 1 and names the file for a flipped byte (an SST of the native form, the snapshot of
    // the canonical), a missing file and a truncated file, and says "incomplete" for a
    // savepoint holding only its in-progress marker; no input is changed.
    let w = written();
    for path in [&w.native, &w.canonical, &w.root] {
        let (code, out, err) = statetool_on(&[path], &["verify", s(path)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(" intact, 0 with problems"), "{out}");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = |from: &Path, name: &str| -> PathBuf {
        let to = tmp.path().join(name);
        for (rel, _) in tree::fingerprints(from) {
            let dst = to.join(&rel);
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::copy(from.join(&rel), &dst).expect("copy");
        }
        to
    };
    let first = |sp: &Path, suffix: &str| -> String {
        let (_, m) = manifest_of(sp);
        let found = m.files().map(|f| f.path.clone()).find(|p| p.ends_with(suffix));
        found.expect("such a file")
    };
    let planted: [Planted<'_>; 5] = [
        (&w.native, "flip", ".sst", |p| flip(p)),
        (&w.canonical, "flip", ".snapshot", |p| flip(p)),
        (&w.native, "missing", "CURRENT", |p| std::fs::remove_file(p).expect("rm")),
        (&w.canonical, "missing", ".snapshot", |p| std::fs::remove_file(p).expect("rm")),
        (&w.native, "short", ".sst", |p| {
            let len = std::fs::metadata(p).expect("meta").len();
            std::fs::OpenOptions::new().write(true).open(p).expect("open").set_len(len - 1).expect("truncate");
        }),
    ];
    for (i, (from, what, suffix, plant)) in planted.into_iter().enumerate() {
        let sp = copy(from, &format!("{what}-{i}"));
        let rel = first(&sp, suffix);
        plant(&sp.join(&rel));
        let (code, out, err) = statetool_on(&[&sp], &["verify", s(&sp)]);
        assert_eq!(code, 1, "{what} {rel}: {out}{err}");
        assert!(out.contains("PROBLEM") && out.contains(&rel), "{what}: the problem names {rel}:\n{out}");
    }
    let sp = copy(&w.native, "incomplete");
    std::fs::remove_file(sp.join("_savepoint")).expect("rm metadata");
    std::fs::write(sp.join("_savepoint.inprogress"), b"").expect("marker");
    let (code, out, err) = statetool_on(&[&sp], &["verify", s(&sp)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("PROBLEM") && out.contains("incomplete"), "{out}");
    let (code, _, err) = statetool_on(&[&sp], &["dump", s(&sp)]);
    assert_eq!(code, 2, "dump refuses an incomplete savepoint");
    assert!(err.contains("incomplete"), "{err}");
}

/// A planted fault: the savepoint to copy, a name, the suffix of the file to damage and how.
type Planted<'a> = (&'a Path, &'a str, &'a str, fn(&Path));

/// Flips one bit in the middle of a file.
fn flip(p: &Path) {
    let mut b = std::fs::read(p).expect("read");
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(p, b).expect("write");
}

#[test]
fn dump_of_a_savepoint_equals_dump_of_a_checkpoint_of_the_same_state() {
    // Pins: a job whose state stops changing (distinct values of `seq % 100` over 10
    // generator keys: once every split is past 200 records, every key has seen its 10
    // values) has a checkpoint and a savepoint of the same state; on a heap job with a
    // canonical savepoint and a RocksDB job with a native one, their dumps are equal line
    // for line and hold exactly the model (10 per key in `distinct_count`, the values
    // `k, k+10, ..., k+90` of key k in the map state `distinct_seen`), and inspect
    // --entries counts 10 and 100 entries per state in both (a savepoint read through the
    // wrong root, a form whose entries render differently, or map entries dropped, fail
    // this); verify passes on the checkpoints and the savepoint of both; no input changes.
    for (backend, form) in [("heap", "canonical"), ("rocksdb", "native")] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        std::fs::write(
            dir.join("job.toml"),
            "[job]\nname = \"dc\"\n\n[source]\nkind = \"generator\"\nkeys = 10\nrate_per_s = 20000\n\n\
             [key]\nfield = \"key\"\n\n[aggregate]\nkind = \"distinct_count\"\nfield = \"value\"\n\n\
             [sink]\nkind = \"file\"\npath = \"out.jsonl\"\n\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\nretain = 1\n",
        )
        .expect("job file");
        let d = Daemon::start(dir, &["--shards", "2", "--state-backend", backend]);
        let root = dir.join("ck").join("dc");
        wait_for("a checkpoint past 200 records per split", || {
            newest_checkpoint(&root).is_some_and(|m| {
                m.shards.iter().all(|sh| {
                    sh.source_position.as_array().is_some_and(|a| a.iter().all(|sp| sp["next"].as_u64() > Some(200)))
                })
            })
        });
        let sp = dir.join("sp");
        d.control("stop", &["--savepoint", s(&sp), "--form", form]);
        d.wait();
        let mut want: Vec<Value> = Vec::new();
        for k in 0..10u64 {
            want.push(serde_json::json!({ "state": "distinct_count", "key": k.to_string(), "value": 10 }));
            for j in 0..10u64 {
                let v = (k + 10 * j).to_string();
                want.push(
                    serde_json::json!({ "state": "distinct_seen", "key": k.to_string(), "user_key": v, "value": null }),
                );
            }
        }
        want.sort_by_key(|x| x.to_string());
        let strip = |lines: Vec<Value>| -> Vec<Value> {
            let mut out: Vec<Value> = lines
                .into_iter()
                .map(|mut l| {
                    l.as_object_mut().expect("object").remove("key_group");
                    l
                })
                .collect();
            out.sort_by_key(|x| x.to_string());
            out
        };
        let (from_root, from_sp) = (dump(&root), dump(&sp));
        assert!(from_root == from_sp, "{backend}/{form}: dumps differ:\n{from_root:?}\n{from_sp:?}");
        assert_eq!(strip(from_sp), want, "{backend}/{form}");
        for path in [&root, &sp] {
            let (code, out, err) = statetool_on(&[path], &["inspect", s(path), "--entries", "--json"]);
            assert_eq!(code, 0, "{err}");
            let v = json(&out);
            assert_eq!(
                (v["states"]["distinct_count"]["entries"].as_u64(), v["states"]["distinct_seen"]["entries"].as_u64()),
                (Some(10), Some(100)),
                "{out}"
            );
        }
        let (code, out, _) = statetool_on(&[&sp], &["inspect", s(&sp)]);
        assert_eq!(code, 0);
        assert!(out.starts_with(&format!("savepoint ({form}) at checkpoint")), "{out}");
        for path in [&root, &sp] {
            let (code, members) = verify_json(path, false);
            assert!(code == 0 && !members.is_empty(), "{backend}: verify {}: {members:?}", path.display());
        }
    }
}

/// A copy of the tree `from` (every file) at `to`.
fn copy_tree(from: &Path, to: &Path) -> PathBuf {
    for (rel, _) in tree::fingerprints(from) {
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(&rel), &dst).expect("copy");
    }
    to.to_path_buf()
}

/// `verify --json PATH` (inputs untouched): exit code and the one object per member.
fn verify_json(path: &Path, quick: bool) -> (i32, Vec<Value>) {
    let mut args = vec!["verify", "--json", s(path)];
    if quick {
        args.push("--quick");
    }
    let (code, out, err) = statetool_on(&[path], &args);
    assert!(err.is_empty(), "verify writes nothing to stderr: {err}");
    (code, out.lines().map(json).collect())
}

/// The named check `name` of a `verify --json` object: (status, detail).
fn check<'a>(member: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = member["checks"].as_array().expect("checks").iter().find(|c| c["check"] == name);
    let c = c.unwrap_or_else(|| panic!("no check {name}: {member}"));
    (c["status"].as_str().expect("status"), c["detail"].as_str().expect("detail"))
}

/// The newest checkpoint of the root `root` whose parent directory is still there.
fn newest_with_parent(root: &Path) -> Manifest {
    let m = newest_checkpoint(root).expect("a checkpoint");
    let p = m.parent.expect("an incremental checkpoint has a parent");
    assert!(formats::layout::checkpoint_dir(root, p).is_dir(), "retain = 2 keeps the parent of the newest");
    m
}

/// Writes `m` as checkpoint `m.checkpoint`'s manifest through `formats` (checksums valid).
fn rewrite_manifest(root: &Path, m: &Manifest) {
    std::fs::write(formats::layout::manifest_path(root, m.checkpoint), m.encode().expect("encode")).expect("write");
}

#[test]
fn verify_reports_every_named_check_on_good_state() {
    // Pins: on the RocksDB root and both savepoint forms, verify --json lists the seven
    // named checks in order, every one ok (or sst_blocks skipped: a canonical savepoint
    // has no SST); key groups are covered exactly once, a checkpoint's parent resolves
    // and a savepoint has none; --quick runs `structure` and skips the two that read
    // entries; exit 0.
    let w = written();
    let names = ["manifest", "key_groups", "parent", "files", "structure", "sst_blocks", "entries"];
    for path in [&w.root, &w.native, &w.canonical] {
        for quick in [false, true] {
            let (code, members) = verify_json(path, quick);
            assert_eq!(code, 0, "{members:?}");
            for m in &members {
                let got: Vec<&str> =
                    m["checks"].as_array().expect("checks").iter().filter_map(|c| c["check"].as_str()).collect();
                assert_eq!(got, names, "{m}");
                assert_eq!(check(m, "key_groups"), ("ok", "0..128 covered exactly once by 2 shard(s)"), "{m}");
                let (status, parent) = check(m, "parent");
                assert_eq!(status, "ok", "{m}");
                let read = if quick { "skipped" } else { "ok" };
                assert_eq!(check(m, "entries").0, read, "{m}");
                assert_eq!(check(m, "structure").0, "ok", "{m}");
                if path == &w.canonical {
                    assert_eq!(parent, "none (a savepoint has no parent)");
                    assert_eq!(check(m, "sst_blocks"), ("skipped", if quick { "--quick" } else { "no RocksDB shard" }));
                } else {
                    assert_eq!(check(m, "sst_blocks").0, read, "{m}");
                }
                if path == &w.root {
                    // The root may still hold the job's first (full) checkpoint.
                    assert!(parent.starts_with("parent chk-") || parent == "none (a full checkpoint)", "{m}");
                }
            }
            if path == &w.root {
                let parented = members.iter().filter(|m| check(m, "parent").1.starts_with("parent chk-")).count();
                assert!(parented >= 1, "the newest checkpoint is incremental: {members:?}");
            }
        }
    }
}

#[test]
fn verify_names_a_wrong_size_a_key_group_gap_and_a_broken_parent() {
    // Pins: on copies of the RocksDB root, with each manifest rewritten through
    // `formats` so its own checksums hold: a file's size off by one in the manifest is a
    // `files` problem naming the file; a shard range shrunk (a gap) is a `key_groups`
    // problem naming the manifest and the missing key groups (the other invariants
    // still pass); a parent whose manifest is damaged is a `parent` problem naming that
    // manifest; a parent removed as GC would is information, exit 0, while a shared file
    // missing with it is a problem. Exit 1 for every fault.
    let w = written();
    let tmp = tempfile::tempdir().expect("tempdir");

    let root = copy_tree(&w.root, &tmp.path().join("size"));
    let mut m = newest_with_parent(&root);
    let chk = formats::layout::checkpoint_dir(&root, m.checkpoint);
    let f = &mut m.shards[1].files[0];
    f.size += 1;
    let named = f.path.clone();
    rewrite_manifest(&root, &m);
    let (code, v) = verify_json(&chk, true);
    assert_eq!(code, 1, "{v:?}");
    let (status, detail) = check(&v[0], "files");
    assert!(status == "problem" && detail.contains(&named) && detail.contains("size"), "{}", v[0]);

    let root = copy_tree(&w.root, &tmp.path().join("gap"));
    let mut m = newest_with_parent(&root);
    let chk = formats::layout::checkpoint_dir(&root, m.checkpoint);
    let was = m.shards[1].range.start;
    m.shards[1].range.start = was + 6;
    let body = serde_json::to_vec(&m).expect("json");
    let bytes = formats::envelope::encode(
        formats::envelope::Kind::CheckpointManifest,
        formats::manifest::MANIFEST_VERSION,
        &body,
    )
    .expect("envelope");
    std::fs::write(formats::layout::manifest_path(&root, m.checkpoint), bytes).expect("write");
    let (code, v) = verify_json(&chk, false);
    assert_eq!(code, 1, "{v:?}");
    let (status, detail) = check(&v[0], "key_groups");
    let gap = format!("key groups {was}..{} covered by no shard", was + 6);
    assert!(status == "problem" && detail.contains("_manifest") && detail.contains(&gap), "{}", v[0]);
    assert_eq!(check(&v[0], "manifest").0, "ok", "only 9.1 is broken: {}", v[0]);
    assert!(v[0]["problem"].as_str().is_some_and(|p| p.contains(&gap)), "{}", v[0]);

    let root = copy_tree(&w.root, &tmp.path().join("parent"));
    let m = newest_with_parent(&root);
    let chk = formats::layout::checkpoint_dir(&root, m.checkpoint);
    let parent_manifest = formats::layout::manifest_path(&root, m.parent.expect("parent"));
    flip(&parent_manifest);
    let (code, v) = verify_json(&chk, true);
    assert_eq!(code, 1, "{v:?}");
    let (status, detail) = check(&v[0], "parent");
    assert!(status == "problem" && detail.contains(s(&parent_manifest)), "{}", v[0]);

    std::fs::remove_dir_all(parent_manifest.parent().expect("chk dir")).expect("collect the parent");
    let (code, v) = verify_json(&chk, true);
    assert_eq!(code, 0, "{v:?}");
    let (status, detail) = check(&v[0], "parent");
    assert!(status == "ok" && detail.contains("collected") && detail.contains("are present"), "{}", v[0]);
    let shared = m.files().find(|f| f.path.starts_with("shared/")).expect("a shared file");
    std::fs::remove_file(root.join(&shared.path)).expect("rm");
    let (code, v) = verify_json(&chk, true);
    assert_eq!(code, 1, "{v:?}");
    let (status, detail) = check(&v[0], "parent");
    assert!(status == "problem" && detail.contains("collected") && detail.contains(&shared.path), "{}", v[0]);
}

#[test]
fn verify_finds_a_corrupt_sst_block_whose_crc32_the_manifest_agrees_with() {
    // Pins: a flipped bit in an SST's first data block, with the manifest's crc32 (and
    // size) recomputed through `formats` so only RocksDB's block checksum can see it:
    // --quick passes (it reads no data block), the full verify exits 1 with an
    // `sst_blocks` problem naming that SST, in a native savepoint (`shard-<i>/<n>.sst`,
    // the first shard's) and in a checkpoint (`shared/<hash>.sst`, the last shard's).
    let w = written();
    let tmp = tempfile::tempdir().expect("tempdir");
    for (i, from) in [&w.native, &w.root].into_iter().enumerate() {
        let copy = copy_tree(from, &tmp.path().join(i.to_string()));
        let (target, sst) = if formats::layout::is_savepoint_dir(&copy) {
            let mut meta = formats::savepoint::load(&StdFs, &copy, Verify::Checksums).expect("loads");
            let f = meta.manifest.shards[0].files.iter_mut().find(|f| f.path.ends_with(".sst")).expect("an SST");
            *f = damage(&copy, f);
            let sst = f.path.clone();
            let meta_path = formats::layout::savepoint_metadata_path(&copy);
            std::fs::write(meta_path, meta.encode().expect("encode")).expect("write");
            (copy, sst)
        } else {
            // The last shard's: verify reads shards on parallel threads.
            let mut m = newest_checkpoint(&copy).expect("a checkpoint");
            let last = m.shards.last_mut().expect("a shard");
            let f = last.files.iter_mut().find(|f| f.path.ends_with(".sst")).expect("an SST");
            *f = damage(&copy, f);
            let sst = f.path.clone();
            rewrite_manifest(&copy, &m);
            (formats::layout::checkpoint_dir(&copy, m.checkpoint), sst)
        };
        let (code, v) = verify_json(&target, true);
        assert_eq!(code, 0, "the crc32s agree and --quick reads no data block: {v:?}");
        let (code, v) = verify_json(&target, false);
        assert_eq!(code, 1, "{v:?}");
        let (status, detail) = check(&v[0], "sst_blocks");
        assert!(status == "problem" && detail.contains(&sst), "{sst}: {}", v[0]);
        let (code, out, _) = statetool_on(&[&target], &["verify", s(&target)]);
        assert!(code == 1 && out.contains("PROBLEM") && out.contains(&sst), "{out}");
    }
}

/// Flips a bit in the first data block of the SST `f` under `base` and returns its
/// manifest entry recomputed through `formats` (size and crc32 of the damaged bytes).
fn damage(base: &Path, f: &formats::manifest::FileRef) -> formats::manifest::FileRef {
    // A block-based table starts with its data blocks: byte 8 is in the first one.
    damage_at(base, f, 8)
}

/// Flips a bit of byte `at` of the file `f` under `base` (negative: from the end) and
/// returns its manifest entry recomputed through `formats`.
fn damage_at(base: &Path, f: &formats::manifest::FileRef, at: i64) -> formats::manifest::FileRef {
    let p = base.join(&f.path);
    let mut b = std::fs::read(&p).expect("read");
    let i = if at < 0 { b.len() - at.unsigned_abs() as usize } else { at as usize };
    b[i] ^= 0x04;
    std::fs::write(&p, &b).expect("write");
    formats::manifest::FileRef { local: f.local.clone(), ..formats::manifest::FileRef::of(&f.path, &b) }
}

#[test]
fn verify_quick_finds_a_broken_sst_footer_whose_crc32_the_manifest_agrees_with() {
    // Pins: `verify --quick` reads no data block but opens every SST: a flipped bit in
    // an SST's footer (its last bytes, the table's magic number), with the manifest's
    // crc32 recomputed so that `files` passes, is a `structure` problem naming that SST,
    // exit 1, in a checkpoint root; the full verify names it too.
    let w = written();
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = copy_tree(&w.root, tmp.path());
    let mut m = newest_checkpoint(&copy).expect("a checkpoint");
    let f = m.shards[0].files.iter_mut().find(|f| f.path.ends_with(".sst")).expect("an SST");
    *f = damage_at(&copy, f, -2);
    let sst = f.path.clone();
    rewrite_manifest(&copy, &m);
    let target = formats::layout::checkpoint_dir(&copy, m.checkpoint);
    for quick in [true, false] {
        let (code, v) = verify_json(&target, quick);
        assert_eq!(code, 1, "quick {quick}: {v:?}");
        assert_eq!(check(&v[0], "files").0, "ok", "the crc32 agrees: {}", v[0]);
        let (status, detail) = check(&v[0], "structure");
        assert!(status == "problem" && detail.contains(&sst), "quick {quick}: {sst}: {}", v[0]);
    }
}

#[test]
fn no_verb_writes_to_stderr_when_it_is_not_a_terminal() {
    // Pins: the progress bar of the verbs that read entries is drawn only on a
    // terminal: with stderr captured (a pipe), verify, dump, du, inspect --entries and
    // diff write nothing to it, and succeed.
    let w = written();
    for args in [
        vec!["verify", s(&w.root)],
        vec!["dump", s(&w.native)],
        vec!["du", s(&w.canonical)],
        vec!["inspect", "--entries", s(&w.root)],
        vec!["diff", s(&w.native), s(&w.canonical), "--summary"],
    ] {
        let (code, _, err) = statetool(&args);
        assert!(code <= 1, "{args:?}: exit {code}: {err}");
        assert!(err.is_empty(), "{args:?} wrote to stderr: {err:?}");
    }
}

#[test]
fn the_progress_bar_is_drawn_on_a_terminal() {
    // Pins: with stderr a terminal (a pseudo-terminal from util-linux `script`), a verb
    // that reads entries draws the bar (its label, the shard being read) through the
    // central reading path; the run still exits 0.
    let w = written();
    let cmd = format!("{} verify {}", env!("CARGO_BIN_EXE_statetool"), s(&w.root));
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run statetool under `script` (util-linux), for a terminal");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("reading seq checkpoint") && out.contains("shard 1/2"), "no bar drawn:\n{out:?}");
    assert!(out.contains("intact, 0 with problems"), "{out}");
}

/// The checkpoint ids under `root`, oldest first.
fn chk_ids(root: &Path) -> Vec<u64> {
    let mut v: Vec<u64> =
        formats::checkpoint::checkpoint_ids(&StdFs, root).expect("ls").into_iter().map(|c| c.0).collect();
    v.reverse();
    v
}

#[test]
fn gc_and_a_second_daemon_respect_a_running_job_and_its_job_file() {
    // Pins the root's lock (FORMAT.md §15) with the real binaries: while a job runs,
    // `statetool gc` and a second `sluice run` of the job exit 2 naming the root and the
    // daemon's pid; once it stopped, gc defaults to the job's `retain` from `_job`,
    // `--keep-savepoint chk-<n>` keeps that checkpoint (verify passes, the job restores
    // from it), a run restored from it pins it in `_job` and gc keeps it, and gc never
    // changes a byte of a savepoint it was told to keep.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(
        dir.join("job.toml"),
        "[job]\nname = \"g\"\n\n[source]\nkind = \"generator\"\nkeys = 100\nrate_per_s = 20000\n\n\
         [key]\nfield = \"key\"\n\n[aggregate]\nkind = \"count\"\n\n\
         [sink]\nkind = \"file\"\npath = \"out.jsonl\"\n\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\nretain = 3\n",
    )
    .expect("job file");
    let d = Daemon::start(dir, &["--shards", "2", "--state-backend", "rocksdb"]);
    let root = dir.join("ck").join("g");
    wait_for("four checkpoints", || chk_ids(&root).last().is_some_and(|n| *n >= 4));
    let pid = d.child.as_ref().map(Child::id).expect("running");
    let job = formats::jobfile::read(&StdFs, &root).expect("read _job").expect("_job written");
    assert_eq!((job.pid, job.retain, job.pinned.len()), (pid, 3, 0), "{job:?}");

    let (code, out, err) = statetool(&["gc", s(&root)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(s(&root)) && err.contains(&format!("pid {pid}")), "{err}");
    let second = Command::new(sluice_bin())
        .args(["run", "job.toml", "--no-control", "--no-pin", "--data-dir"])
        .arg(dir.join("data2"))
        .current_dir(dir)
        .output()
        .expect("second sluice run");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("ck/g") && err.contains(&format!("pid {pid}")), "{err}");

    let sp = dir.join("sp");
    d.control("savepoint", &["--to", s(&sp), "--form", "native"]);
    d.control("stop", &[]);
    d.wait();
    let ids = chk_ids(&root);
    assert_eq!(ids.len(), 3, "the job kept its retain: {ids:?}");
    let (code, out, err) = statetool(&["gc", s(&root), "--keep-savepoint", s(&sp)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retain    3 (the job's retain setting, from _job)"), "{out}");
    assert!(out.contains("refers to no file of"), "{out}");
    assert_eq!(chk_ids(&root), ids, "retain 3 from _job: nothing to remove");

    let oldest = *ids.first().expect("a checkpoint");
    let chk = root.join(format!("chk-{oldest}"));
    let before = tree::fingerprints(&sp);
    let (code, out, err) =
        statetool(&["gc", s(&root), "--retain", "1", "--keep-savepoint", s(&chk), "--keep-savepoint", s(&sp)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("keep      chk-{oldest} (named by --keep-savepoint")), "{out}");
    assert_eq!(chk_ids(&root), [oldest, *ids.last().expect("newest")], "{out}");
    assert!(tree::fingerprints(&sp) == before, "gc changed the savepoint it kept");
    let (code, out, _) = statetool(&["verify", s(&root)]);
    assert_eq!(code, 0, "{out}");

    // The job restores from the kept checkpoint, pins it, and gc keeps it by default.
    let d = Daemon::start(dir, &["--shards", "2", "--state-backend", "rocksdb", "--from", s(&chk)]);
    let job = formats::jobfile::read(&StdFs, &root).expect("read _job").expect("_job");
    assert_eq!(job.pinned, vec![formats::manifest::CheckpointId(oldest)], "{job:?}");
    wait_for("a checkpoint after the restore", || chk_ids(&root).last().is_some_and(|n| *n > ids[2] + 3));
    d.control("stop", &[]);
    d.wait();
    let (code, out, err) = statetool(&["gc", s(&root), "--retain", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("keep      chk-{oldest} (pinned by the job")), "{out}");
    assert!(chk_ids(&root).contains(&oldest));
}
