//! Incremental RocksDB checkpoints through the real binary: SST files are shared between
//! checkpoints by content, a restored instance that reuses RocksDB's file numbers gets
//! its files copied (never mistaken for the older ones of the same name), and restore
//! refuses a shared file whose checksum does not match.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

#[path = "common/cargo_build.rs"]
mod cargo_build;

use formats::checkpoint::{checkpoint_ids, load, Verify};
use formats::fs::StdFs;
use formats::manifest::{CheckpointId, Manifest, ShardFormat};

const KEYS: u64 = 20_000;
const COUNT: u64 = 1_200_000;

fn sluice(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env("SLUICE_LOG", "info")
        .output()
        .expect("run sluice");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A count over `KEYS` keys of a generator throttled to about 1.5 s, checkpointed every
/// 150 ms, keeping every checkpoint.
fn write_job(d: &Path) {
    let spec = format!(
        "[job]\nname = \"t\"\n[source]\nkind = \"generator\"\ncount = {COUNT}\nkeys = {KEYS}\nrate_per_s = 800000\n\
         [key]\nfield = \"key\"\n[aggregate]\nkind = \"count\"\n[sink]\nkind = \"file\"\npath = \"out.jsonl\"\n\
         [checkpoint]\ndir = \"ck\"\ninterval_ms = 150\nretain = 1000\n"
    );
    std::fs::write(d.join("job.toml"), spec).expect("write job");
}

fn run(d: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["run", "job.toml", "--state-backend", "rocksdb", "--data-dir", "data", "--no-pin"];
    args.extend_from_slice(extra);
    sluice(d, &args)
}

fn manifests(root: &Path) -> Vec<Manifest> {
    let ids = checkpoint_ids(&StdFs, root).expect("ids");
    ids.iter().rev().map(|id| load(&StdFs, root, *id, Verify::Checksums).expect("intact")).collect()
}

/// Local SST name -> shared path, over the given checkpoints.
fn local_to_shared(ms: &[Manifest]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in ms.iter().flat_map(|m| m.files()).filter(|f| f.path.starts_with("shared/")) {
        out.entry(f.local_name().to_owned()).or_default().insert(f.path.clone());
    }
    out
}

fn assert_exact_counts(d: &Path) {
    let text = std::fs::read_to_string(d.join("out.jsonl")).expect("output");
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["count"].as_u64(), Some(COUNT / KEYS), "{line}");
        n += 1;
    }
    assert_eq!(n, KEYS, "every key once");
}

#[test]
fn checkpoints_share_ssts_and_a_restored_instance_reusing_file_numbers_is_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_job(d);
    let (code, log) = run(d, &["--shards", "2"]);
    assert_eq!(code, 0, "{log}");
    assert_exact_counts(d);
    let root = d.join("ck").join("t");
    let first = manifests(&root);
    assert!(first.len() >= 3, "several checkpoints: {}", first.len());
    assert!(first.iter().all(|m| m.shards.iter().all(|s| s.format == ShardFormat::Rocksdb)));
    // Incremental: a later checkpoint borrows SSTs an earlier one put into shared/.
    let shared_of = |m: &Manifest| {
        m.files().filter(|f| f.path.starts_with("shared/")).map(|f| f.path.clone()).collect::<BTreeSet<_>>()
    };
    assert!(
        first.windows(2).any(|w| !shared_of(&w[0]).is_disjoint(&shared_of(&w[1]))),
        "consecutive checkpoints share files"
    );
    assert!(log.contains("bytes_reused"), "the log reports reuse");

    // Restore checkpoint 1 (of many) with one shard: the rebuilt instance numbers its
    // files from the start again, so its SSTs take names the old checkpoints used.
    let (code, log) = run(d, &["--shards", "1", "--from", "ck/t/chk-1"]);
    assert_eq!(code, 0, "{log}");
    assert_exact_counts(d);
    let newest = first.iter().map(|m| m.checkpoint).max().expect("some");
    let all = manifests(&root);
    let (old, new): (Vec<Manifest>, Vec<Manifest>) = all.into_iter().partition(|m| m.checkpoint <= newest);
    assert!(!new.is_empty(), "the restored run checkpointed");
    assert!(new.iter().all(|m| m.checkpoint > newest && m.shards.len() == 1));
    let (before, after) = (local_to_shared(&old), local_to_shared(&new));
    let reused: Vec<&String> = after.keys().filter(|l| before.contains_key(*l)).collect();
    assert!(!reused.is_empty(), "the restored instance reused file names: {:?} / {:?}", before.keys(), after.keys());
    // Same name, other content: stored under another shared name, both intact.
    for l in &reused {
        let (b, a) = (&before[*l], &after[*l]);
        assert!(b.is_disjoint(a), "{l}: the new file was taken for the old one: {b:?} {a:?}");
    }
    // Every checkpoint, old and new, verifies with the offline tool: never skipped.
    let out = Command::new(statetool()).arg("verify").arg(&root).output().expect("run statetool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "statetool verify: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let intact = format!("{} intact, 0 with problems", old.len() + new.len());
    assert!(stdout.contains(&intact), "statetool verify saw every checkpoint ({intact}): {stdout}");
}

/// The workspace's `statetool`, built into the same target directory and profile as
/// this test's `sluice`. `cargo test --workspace` builds it already; `cargo test -p
/// sluice-engine` does not, so it is built here (a no-op when up to date).
fn statetool() -> std::path::PathBuf {
    let sluice = Path::new(env!("CARGO_BIN_EXE_sluice"));
    let profile_dir = sluice.parent().expect("the binary's directory");
    cargo_build::build_in(profile_dir, "statetool", "statetool", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn restore_refuses_a_shared_file_whose_checksum_does_not_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_job(d);
    let (code, log) = run(d, &["--shards", "2"]);
    assert_eq!(code, 0, "{log}");
    let root = d.join("ck").join("t");
    let newest = *checkpoint_ids(&StdFs, &root).expect("ids").first().expect("a checkpoint");
    let m = load(&StdFs, &root, newest, Verify::Checksums).expect("intact");
    let victim = m.files().find(|f| f.path.starts_with("shared/")).expect("a shared file").clone();
    let path = formats::layout::resolve(&root, &victim.path);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).expect("corrupt");
    let listing = |p: &Path| {
        let mut v: Vec<_> = walk(p);
        v.sort();
        v
    };
    let before = listing(&d.join("ck"));
    let chk = format!("ck/t/{}", formats::layout::checkpoint_dir_name(CheckpointId(newest.0)));
    let (code, log) = run(d, &["--shards", "2", "--from", &chk]);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains(&victim.path.replace('/', std::path::MAIN_SEPARATOR_STR)), "names the file: {log}");
    assert!(log.contains("checksum"), "{log}");
    assert_eq!(listing(&d.join("ck")), before, "nothing modified");
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

fn walk(p: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).expect("ls").flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push((path.display().to_string(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    out
}
