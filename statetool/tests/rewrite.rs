//! `statetool compact` and `statetool migrate` on checkpoints written by real jobs: a
//! bounded `sum` job (the `sluice` binary, both backends) is checkpointed mid-way; its
//! state is compacted or migrated (1, 3 and 4 shards, another key-group count, both
//! forms, a renamed state); the job restarted from the output, with the original
//! checkpoints moved away, must end with exactly the results of an uninterrupted run.
//! No verb may change a byte of its input, and a kill -9 at any point of a rewrite
//! must leave no output that a restore accepts.
#[path = "common/bins.rs"]
mod bins;
#[path = "../../engine/tests/common/tree.rs"]
mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bins::{s, sluice_bin, statetool};
use formats::checkpoint::Verify;
use formats::fs::StdFs;

const RECORDS: u64 = 300_000;
const KEYS: u64 = 1_000;

/// The job file: a sum per key over a bounded, throttled generator, checkpointed every
/// 100 ms into `ck/`, with `key_groups` key groups.
fn job(dir: &Path, name: &str, key_groups: u32, keys: u64, records: u64) -> PathBuf {
    job_of("sum", dir, name, key_groups, keys, records)
}

/// The same job with another aggregate (`distinct_count`: two states).
fn job_of(aggregate: &str, dir: &Path, name: &str, key_groups: u32, keys: u64, records: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[job]\nname = \"sum\"\nmax_key_groups = {key_groups}\n\n[source]\nkind = \"generator\"\ncount = {records}\n\
             keys = {keys}\nrate_per_s = 300000\n\n[key]\nfield = \"key\"\n\n[aggregate]\nkind = \"{aggregate}\"\nfield = \"value\"\n\n\
             [sink]\nkind = \"file\"\npath = \"out.jsonl\"\n\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\nretain = 3\n"
        ),
    )
    .expect("job file");
    p
}

/// Runs `sluice run JOB` in `dir` to its end (it must exit 0) and returns the output
/// lines, sorted (one final sum per key).
fn run_job(dir: &Path, job: &Path, shards: u32, backend: &str, from: Option<&Path>) -> Vec<String> {
    let _ = std::fs::remove_file(dir.join("out.jsonl"));
    let mut c = Command::new(sluice_bin());
    c.arg("run").arg(job).args([
        "--shards",
        &shards.to_string(),
        "--state-backend",
        backend,
        "--no-control",
        "--no-pin",
    ]);
    c.arg("--data-dir").arg(dir.join("data"));
    if let Some(f) = from {
        c.arg("--from").arg(f);
    }
    let o = c.current_dir(dir).stdin(Stdio::null()).output().expect("run sluice");
    assert!(o.status.success(), "sluice run {from:?}: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(dir.join("out.jsonl")).expect("output");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// One job run per backend, shared by the tests (which only read it): its checkpoint
/// root (chk-<n> mid-way through the input) and the results of the whole run.
struct Source {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    results: Vec<String>,
}

fn source(backend: &'static str) -> &'static Source {
    static ROCKS: OnceLock<Source> = OnceLock::new();
    static HEAP: OnceLock<Source> = OnceLock::new();
    let cell = if backend == "rocksdb" { &ROCKS } else { &HEAP };
    cell.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tmp");
        let j = job(tmp.path(), "job.toml", 128, KEYS, RECORDS);
        let results = run_job(tmp.path(), &j, 2, backend, None);
        assert_eq!(results.len() as u64, KEYS, "one final sum per key");
        let root = tmp.path().join("ck").join("sum");
        let m =
            formats::checkpoint::latest(&StdFs, &root, Verify::Checksums).expect("root").latest.expect("a checkpoint");
        assert!(m.parent.is_some(), "an incremental chain to squash");
        Source { _tmp: tmp, root, results }
    })
}

/// Runs a statetool rewrite of `input`, checking it exits 0 and leaves `input` as it was.
fn rewrite(input: &Path, args: &[&str]) -> String {
    let before = tree::fingerprints(input);
    let (code, out, err) = statetool(args);
    assert_eq!(code, 0, "statetool {args:?}: {err}");
    assert!(tree::fingerprints(input) == before, "statetool {args:?} changed its input");
    out
}

/// Restarts the job from `state` in a fresh directory where the original checkpoints do
/// not exist, and checks its results are the uninterrupted run's.
fn restores_identically(src: &Source, state: &Path, key_groups: u32, shards: u32, backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let j = job(dir.path(), "job.toml", key_groups, KEYS, RECORDS);
    let got = run_job(dir.path(), &j, shards, backend, Some(state));
    assert!(got == src.results, "restored from {} onto {shards} {backend} shards: results differ", state.display());
}

/// Moves the source root away while `f` runs (the output must not need it), then back.
fn without_original<T>(src: &Source, f: impl FnOnce() -> T) -> T {
    let away = src.root.with_extension("away");
    std::fs::rename(&src.root, &away).expect("move root away");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::fs::rename(&away, &src.root).expect("move root back");
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

#[test]
fn compact_output_is_self_contained_and_restores_identically_on_both_backends() {
    // Pins: compact squashes a chain into one checkpoint with no parent whose files are
    // all its own, that diff finds equal in state to its input, and that a job restores
    // from (same and other backend) with the original root gone, to identical results.
    for (backend, other) in [("rocksdb", "heap"), ("heap", "rocksdb")] {
        let src = source(backend);
        // A test-private copy: the shared root is moved away below.
        let out_dir = tempfile::tempdir().expect("tmp");
        let out = out_dir.path().join("compacted");
        let report = rewrite(&src.root, &["compact", s(&src.root), "--to", s(&out), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&report).expect("json report");
        assert_eq!(v["entries_written"].as_u64(), Some(KEYS), "{v}");
        let m = formats::checkpoint::latest(&StdFs, &out, Verify::Checksums).expect("out").latest.expect("published");
        assert_eq!(m.parent, None);
        let shared: Vec<_> =
            std::fs::read_dir(out.join("shared")).expect("shared").map(|e| e.expect("e").file_name()).collect();
        let listed = m.files().filter(|f| f.path.starts_with("shared/")).count();
        assert_eq!(shared.len(), listed, "shared/ holds exactly the files the checkpoint lists");
        let (code, diff, err) = statetool(&["diff", s(&src.root), s(&out), "--summary"]);
        assert_eq!(code, 0, "compacted state differs from its input: {diff}{err}");
        without_original(src, || {
            restores_identically(src, &out, 128, 2, backend);
            restores_identically(src, &out, 128, 3, other);
        });
    }
}

#[test]
fn migrate_to_other_shard_and_key_group_counts_restores_identically_on_both_backends() {
    // Pins: migrate's output for 1, 3 and 4 shards (native and canonical) and for 64 key
    // groups (every key rehashed) restores, into either backend, to the results of the
    // uninterrupted run; inspect shows the new layout.
    for backend in ["rocksdb", "heap"] {
        let src = source(backend);
        let tmp = tempfile::tempdir().expect("tmp");
        let cases: [(&str, u32, u32, &str); 4] = [
            ("native", 1, 128, "heap"),
            ("canonical", 3, 128, "rocksdb"),
            ("native", 4, 128, "rocksdb"),
            ("canonical", 3, 64, "heap"),
        ];
        let mut outs = Vec::new();
        for (form, shards, key_groups, into) in cases {
            let out = tmp.path().join(format!("{form}-{shards}-{key_groups}"));
            let (n, g) = (shards.to_string(), key_groups.to_string());
            rewrite(
                &src.root,
                &["migrate", s(&src.root), "--to", s(&out), "--shards", &n, "--key-groups", &g, "--form", form],
            );
            let (code, info, err) = statetool(&["inspect", s(&out), "--json"]);
            assert_eq!(code, 0, "{err}");
            let v: serde_json::Value = serde_json::from_str(&info).expect("json");
            assert_eq!(v["manifest"]["shards"].as_array().map(Vec::len), Some(shards as usize), "{v}");
            assert_eq!(v["manifest"]["max_key_groups"].as_u64(), Some(u64::from(key_groups)), "{v}");
            outs.push((out, shards, key_groups, into));
        }
        without_original(src, || {
            for (out, shards, key_groups, into) in &outs {
                restores_identically(src, out, *key_groups, *shards, into);
            }
        });
    }
}

#[test]
fn migrate_renames_and_drops_states_and_refuses_bad_arguments() {
    // Pins: a renamed state carries its entries under the new name (diff: the old state
    // removed, the new one added, exit 1); dropping the only state leaves none; bad
    // arguments exit 2 naming what is wrong, and create nothing.
    let src = source("rocksdb");
    let tmp = tempfile::tempdir().expect("tmp");
    let renamed = tmp.path().join("renamed");
    rewrite(&src.root, &["migrate", s(&src.root), "--to", s(&renamed), "--rename-state", "sum=total"]);
    let (code, out, _) = statetool(&["dump", s(&renamed), "--state", "total"]);
    assert_eq!((code, out.lines().count() as u64), (0, KEYS));
    let (code, _, _) = statetool(&["diff", s(&src.root), s(&renamed), "--summary"]);
    assert_eq!(code, 1, "a renamed state is a difference");
    let dropped = tmp.path().join("dropped");
    rewrite(&src.root, &["migrate", s(&src.root), "--to", s(&dropped), "--drop-state", "sum", "--form", "canonical"]);
    let (code, out, _) = statetool(&["dump", s(&dropped)]);
    assert_eq!((code, out.as_str()), (0, ""));
    let bad = tmp.path().join("bad");
    for (args, want) in [
        (vec!["--drop-state", "nope"], "no state \"nope\""),
        (vec!["--rename-state", "sum"], "expected OLD=NEW"),
        (vec!["--shards", "0"], "--shards 0"),
        (vec!["--key-groups", "40000"], "--key-groups 40000"),
        (vec!["--format-version", "9"], "--format-version 9"),
    ] {
        let mut a = vec!["migrate", s(&src.root), "--to", s(&bad)];
        a.extend(args);
        let (code, _, err) = statetool(&a);
        assert_eq!(code, 2, "{a:?}");
        assert!(err.contains(want), "{a:?}: {err}");
        assert!(!bad.exists(), "{a:?} created its output");
    }
    let (code, _, err) = statetool(&["migrate", s(&src.root), "--to", s(&renamed)]);
    assert_eq!(code, 2, "an existing output is never overwritten");
    assert!(err.contains("already exists"), "{err}");
    let inside = src.root.join("x");
    let (code, _, err) = statetool(&["compact", s(&src.root), "--to", s(&inside)]);
    assert_eq!(code, 2);
    assert!(err.contains("outside the input") && !inside.exists(), "{err}");
}

/// Whether a restore would accept `out`: what `sluice run --from` loads (a savepoint's
/// metadata, or the newest published checkpoint of a root), every file checked.
fn restore_accepts(out: &Path) -> bool {
    if formats::layout::is_savepoint_dir(out) {
        return formats::savepoint::load(&StdFs, out, Verify::Checksums).is_ok();
    }
    out.is_dir() && formats::checkpoint::latest(&StdFs, out, Verify::Checksums).is_ok_and(|d| d.latest.is_some())
}

#[test]
fn a_kill_at_any_point_of_a_rewrite_leaves_no_output_a_restore_accepts() {
    // Pins: compact and migrate publish their output last: killed (SIGKILL) at spread
    // points of their run, the output is absent or refused by restore unless it was
    // published, and then it is intact (every crc32) and equal in state to the input;
    // the input is untouched throughout.
    let tmp = tempfile::tempdir().expect("tmp");
    let j = job(tmp.path(), "job.toml", 128, 200_000, 600_000);
    run_job(tmp.path(), &j, 2, "rocksdb", None);
    let root = tmp.path().join("ck").join("sum");
    let before = tree::fingerprints(&root);
    // How long an uninterrupted rewrite takes, to spread the kills over it.
    let timed = Instant::now();
    let probe = tmp.path().join("probe");
    let (code, _, err) = statetool(&["compact", s(&root), "--to", s(&probe)]);
    assert_eq!(code, 0, "{err}");
    let full = timed.elapsed();
    let mut refused = 0;
    for (i, form) in ["checkpoint", "native", "canonical"].iter().cycle().take(12).enumerate() {
        let out = tmp.path().join(format!("out-{i}"));
        let verb = if i % 2 == 0 { "compact" } else { "migrate" };
        let mut c = Command::new(env!("CARGO_BIN_EXE_statetool"));
        c.args([verb, s(&root), "--to", s(&out), "--form", form]);
        if verb == "migrate" {
            c.args(["--shards", "3"]);
        }
        let mut child = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(full.mul_f64(i as f64 / 10.0) + Duration::from_millis(5));
        let _ = child.kill();
        let st = child.wait().expect("wait");
        if restore_accepts(&out) {
            // Published before the kill (the kill may land after the manifest, while
            // the scratch directory is removed): then it is complete and equal in state.
            let (code, diff, err) = statetool(&["diff", s(&root), s(&out), "--summary"]);
            assert_eq!(
                code, 0,
                "{verb} killed after {i}/10 of its run (exit {st}) left a published output that differs: {diff}{err}"
            );
        } else {
            assert!(!st.success(), "a finished {verb} left an output restore refuses");
            refused += 1;
        }
    }
    assert!(refused >= 6, "most kills must land mid-run ({refused} of 12 did)");
    assert!(tree::fingerprints(&root) == before, "the input changed");
}

#[test]
fn migrate_upgrades_a_version_1_checkpoint_to_the_current_manifest_version() {
    // Pins: --format-version 2 on the v1 fixture writes a version-2 manifest envelope
    // holding the same state (diff exit 0), the fixture untouched.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/v1/checkpoint/fixture");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("v2");
    rewrite(&fixture, &["migrate", s(&fixture), "--to", s(&out), "--form", "checkpoint", "--format-version", "2"]);
    let m = formats::checkpoint::latest(&StdFs, &out, Verify::Checksums).expect("out").latest.expect("published");
    let bytes = std::fs::read(formats::layout::manifest_path(&out, m.checkpoint)).expect("manifest");
    let (version, _) =
        formats::envelope::decode(formats::envelope::Kind::CheckpointManifest, &bytes).expect("envelope");
    assert_eq!(version, formats::manifest::MANIFEST_VERSION);
    let (code, out_text, err) = statetool(&["diff", s(&fixture), s(&out), "--summary"]);
    assert_eq!(code, 0, "{out_text}{err}");
}

#[test]
fn migrate_merging_old_shards_of_several_states_goes_through_the_sorter_and_restores_identically() {
    // Pins: with two states (distinct_count: a map and a value state), a new shard that
    // takes key groups of two old shards cannot stream (the old shards come state by
    // state), so the entries are sorted first (the report says so); 1 and 3 shards,
    // both forms, restore to the uninterrupted run's results. The same layout streams.
    let tmp = tempfile::tempdir().expect("tmp");
    let j = job_of("distinct_count", tmp.path(), "job.toml", 128, KEYS, RECORDS);
    let results = run_job(tmp.path(), &j, 2, "rocksdb", None);
    let root = tmp.path().join("ck").join("sum");
    let src = Source { _tmp: tempfile::tempdir().expect("tmp"), root: root.clone(), results };
    for (form, shards, sorted) in [("native", 1, true), ("canonical", 3, true), ("canonical", 2, false)] {
        let out = tmp.path().join(format!("{form}-{shards}"));
        let report = rewrite(
            &root,
            &["migrate", s(&root), "--to", s(&out), "--shards", &shards.to_string(), "--form", form, "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(&report).expect("json");
        assert_eq!(v["sorted"].as_bool(), Some(sorted), "{form} onto {shards}: {v}");
        let dir = tempfile::tempdir().expect("tmp");
        let j = job_of("distinct_count", dir.path(), "job.toml", 128, KEYS, RECORDS);
        let got = run_job(dir.path(), &j, shards, "heap", Some(&out));
        assert!(got == src.results, "{form} onto {shards}: results differ");
    }
}
