//! `statetool gc` as users run it, on roots built through `formats` (the code the engine
//! publishes with): the root's lock, defaults from `_job`, `--keep-savepoint`, exit
//! codes, and savepoints left byte for byte as they were.
#[path = "../../engine/tests/common/tree.rs"]
mod tree;

use std::path::{Path, PathBuf};
use std::process::Command;

use formats::checkpoint::{publish, Payload, Verify};
use formats::fs::StdFs;
use formats::jobfile::{self, JobFile};
use formats::keygroup::KeyGroupRange;
use formats::manifest::{CheckpointId, FileRef, Manifest, ShardFormat, ShardSnapshot};
use formats::savepoint::{self, Form, SavepointMeta};

fn statetool(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_statetool")).args(args).output().expect("run statetool");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Checkpoint `id` of job "j": one new shared file, the previous checkpoint's shared
/// file again (as an incremental checkpoint reuses SSTs), one owned file.
fn checkpoint(root: &Path, id: u64) -> Manifest {
    let file = |path: String, bytes: Vec<u8>| (FileRef::of(&path, &bytes), Payload { path, bytes });
    let (new, p1) = file(format!("shared/sst-{id}"), format!("sst {id} ").repeat(20).into_bytes());
    let (own, p2) = file(format!("chk-{id}/shard-0/MANIFEST"), format!("meta {id}").into_bytes());
    let mut files = vec![new, own];
    if id > 1 {
        let prev = format!("sst {} ", id - 1).repeat(20).into_bytes();
        files.push(FileRef::of(&format!("shared/sst-{}", id - 1), &prev));
    }
    let m = Manifest {
        job: "j".into(),
        checkpoint: CheckpointId(id),
        parent: (id > 1).then(|| CheckpointId(id - 1)),
        created_ms: id,
        max_key_groups: 128,
        backend: "rocksdb".into(),
        key: None,
        states: Vec::new(),
        shards: vec![ShardSnapshot {
            shard: 0,
            range: KeyGroupRange { start: 0, end: 128 },
            format: ShardFormat::Snapshot,
            files,
            source_position: serde_json::Value::Null,
            operator_state: Vec::new(),
        }],
    };
    publish(&mut StdFs, root, &m, &[p1, p2]).expect("publish");
    m
}

/// A root with checkpoints 1..=4, and `_job` when `job` is given.
fn root_with(job: Option<JobFile>) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path().join("j");
    std::fs::create_dir(&root).expect("mkdir");
    for id in 1..=4 {
        checkpoint(&root, id);
    }
    if let Some(j) = job {
        jobfile::publish(&mut StdFs, &root, &j).expect("_job");
    }
    (d, root)
}

fn job(retain: usize, pinned: &[u64]) -> JobFile {
    JobFile {
        job: "j".into(),
        pid: 31337,
        retain,
        pinned: pinned.iter().copied().map(CheckpointId).collect(),
        started_ms: 0,
    }
}

fn chk_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chk-"))
        .collect();
    v.sort();
    v
}

/// A native savepoint of checkpoint `id` of `root` at `sp`: every file copied.
fn savepoint_of(root: &Path, id: u64, sp: &Path) {
    let m = formats::checkpoint::load(&StdFs, root, CheckpointId(id), Verify::Checksums).expect("load");
    savepoint::begin(&mut StdFs, sp).expect("begin");
    let mut files = Vec::new();
    for f in m.files() {
        let rel = formats::layout::savepoint_owned_path(0, f.local_name());
        let src = formats::layout::resolve(root, &f.path);
        files.push(savepoint::copy_in(&mut StdFs, sp, &rel, &src, None).expect("copy"));
    }
    let mut manifest = m;
    manifest.parent = None;
    if let Some(sh) = manifest.shards.first_mut() {
        sh.files = files;
        sh.format = ShardFormat::Rocksdb;
    }
    savepoint::commit(&mut StdFs, sp, &SavepointMeta { form: Form::Native, manifest }).expect("commit");
}

#[test]
fn gc_refuses_a_root_locked_by_a_running_job() {
    // Pins FORMAT.md §15 from statetool's side: while another process holds the root's
    // lock, gc (and gc --dry-run) exits 2 naming the root and the holder's pid from
    // `_job`, and removes nothing; once the lock is released, gc runs.
    let (_d, root) = root_with(Some(job(1, &[])));
    let held = jobfile::lock(&root).expect("lock");
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["gc", s(&root)];
        args.extend(extra);
        let (code, out, err) = statetool(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(s(&root)) && err.contains("pid 31337"), "{err}");
    }
    assert_eq!(chk_dirs(&root), ["chk-1", "chk-2", "chk-3", "chk-4"], "nothing removed under a running job");
    drop(held);
    let (code, _, err) = statetool(&["gc", s(&root)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(chk_dirs(&root), ["chk-4"]);
}

#[test]
fn gc_defaults_to_the_jobs_retain_and_keeps_its_pins() {
    // Pins: without --retain gc keeps the `retain` the job recorded in `_job` and the
    // checkpoints it pinned, says so, and removes the rest with the shared files only
    // they used; --retain overrides; without `_job` the default is 1.
    let (_d, root) = root_with(Some(job(2, &[1])));
    let (code, out, err) = statetool(&["gc", s(&root), "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retain    2 (the job's retain setting, from _job)"), "{out}");
    assert!(out.contains("keep      chk-1 (pinned by the job (_job)"), "{out}");
    assert!(out.contains("remove    chk-2 (subsumed"), "{out}");
    assert!(out.contains("keep      shared/sst-3 (used by chk-4 chk-3)"), "why a shared file lives: {out}");
    assert!(out.contains("keep      shared/sst-1 (used by chk-1)"), "the pinned one's files live: {out}");
    assert!(!out.contains("remove    shared/"), "every shared file is used by a kept checkpoint: {out}");
    assert_eq!(chk_dirs(&root).len(), 4, "dry run");

    let (code, out, err) = statetool(&["gc", s(&root), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!((v["retain"].as_u64(), v["retain_from"].as_str()), (Some(2), Some("_job")), "{out}");
    assert_eq!(v["why"]["1"], serde_json::json!(["pinned"]), "{out}");
    assert_eq!(chk_dirs(&root), ["chk-1", "chk-3", "chk-4"]);
    let (code, out, _) = statetool(&["verify", s(&root), "--quick"]);
    assert_eq!(code, 0, "every kept checkpoint intact: {out}");

    let (_d2, bare) = root_with(None);
    let (code, out, err) = statetool(&["gc", s(&bare), "--retain", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retain    3 (given by --retain)"), "{out}");
    assert_eq!(chk_dirs(&bare), ["chk-2", "chk-3", "chk-4"]);
    let (code, out, _) = statetool(&["gc", s(&bare)]);
    assert_eq!(code, 0);
    assert!(out.contains("retain    1 (default: no _job and no --retain)"), "{out}");
    assert!(out.contains("remove    shared/sst-2 (nothing kept refers to it)"), "{out}");
    assert_eq!(chk_dirs(&bare), ["chk-4"]);
}

#[test]
fn keep_savepoint_keeps_a_checkpoint_and_never_touches_a_savepoint() {
    // Pins --keep-savepoint: a chk-<n> of the root is kept with every file it refers to
    // (verify passes after gc, and it still loads as a restore would); a savepoint that
    // is a copy keeps nothing of the root and is said to; the savepoint directory is
    // the same byte for byte after gc.
    let (d, root) = root_with(None);
    let sp = d.path().join("sp");
    savepoint_of(&root, 2, &sp);
    let before = tree::fingerprints(&sp);
    let (code, out, err) =
        statetool(&["gc", s(&root), "--keep-savepoint", s(&root.join("chk-2")), "--keep-savepoint", s(&sp)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keep      chk-2 (named by --keep-savepoint"), "{out}");
    assert!(out.contains(&format!("savepoint {} refers to no file of", sp.display())), "{out}");
    assert!(out.contains("keep      shared/sst-1 (used by chk-2)"), "{out}");
    assert_eq!(chk_dirs(&root), ["chk-2", "chk-4"]);
    assert!(tree::fingerprints(&sp) == before, "gc changed the savepoint");
    // --quick: these files are not named as data files, so their sizes and crc32s are checked.
    let (code, out, _) = statetool(&["verify", s(&root), "--quick"]);
    assert_eq!(code, 0, "{out}");
    let kept = formats::checkpoint::load(&StdFs, &root, CheckpointId(2), Verify::Checksums);
    assert!(kept.is_ok(), "the kept checkpoint restores: {kept:?}");
    assert!(savepoint::load(&StdFs, &sp, Verify::Checksums).is_ok());
}

#[test]
fn a_bad_keep_savepoint_exits_2_naming_it() {
    // Pins: a --keep-savepoint that is missing, a plain directory, or a checkpoint of
    // another root is a usage error (exit 2) naming the path, and nothing is removed.
    let (d, root) = root_with(None);
    let (_d2, other) = root_with(None);
    let plain = d.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let missing = d.path().join("no-such-savepoint");
    for bad in [missing, plain, other.join("chk-1")] {
        let (code, out, err) = statetool(&["gc", s(&root), "--keep-savepoint", s(&bad)]);
        assert_eq!(code, 2, "{}: {out}{err}", bad.display());
        assert!(err.contains(s(&bad)), "{err}");
        assert_eq!(chk_dirs(&root).len(), 4);
    }
}
