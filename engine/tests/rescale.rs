//! Rescale through real checkpoints: a checkpoint taken mid-input by a job with 2 shards
//! restores onto 1 shard and onto 4 shards, on the RocksDB backend (incremental: shared
//! SSTs, old instances rebuilt and scanned per key-group range) and on the heap (full
//! snapshots clipped by key group), and both runs end with identical results, equal to a
//! failure-free model of every key's count, largest sequence number and sum.
mod common;

use std::path::Path;
use std::process::Command;

use common::{read_sequence_results, sequence_model, SeqResults};
use engine::Split;
use formats::checkpoint::{checkpoint_ids, load, Verify};
use formats::fs::StdFs;

const KEYS: u64 = 10_000;
const COUNT: u64 = 1_200_000;

fn sluice(d: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(d)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice");
    assert!(out.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A sequence aggregate over a generator throttled to about 1.5 s, checkpointed every
/// 100 ms, keeping every checkpoint.
fn write_job(d: &Path) {
    let spec = format!(
        "[job]\nname = \"r\"\n[source]\nkind = \"generator\"\ncount = {COUNT}\nkeys = {KEYS}\nrate_per_s = 800000\n\
         [key]\nfield = \"key\"\n[aggregate]\nkind = \"sequence\"\nfield = \"seq\"\n\
         [sink]\nkind = \"file\"\npath = \"out.jsonl\"\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\nretain = 1000\n"
    );
    std::fs::write(d.join("job.toml"), spec).expect("write job");
}

fn results(d: &Path) -> SeqResults {
    read_sequence_results(&d.join("out.jsonl"))
}

fn two_shard_checkpoint_restores_onto_one_and_four(backend: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_job(d);
    let base = ["run", "job.toml", "--state-backend", backend, "--data-dir", "data", "--no-pin"];
    sluice(d, &[&base[..], &["--shards", "2"]].concat());
    let want = sequence_model(COUNT, KEYS);
    assert_eq!(results(d), want, "{backend}: the uninterrupted 2-shard run");

    // The oldest checkpoint: taken mid-input by 2 shards.
    let root = d.join("ck").join("r");
    let oldest = *checkpoint_ids(&StdFs, &root).expect("ids").last().expect("a checkpoint");
    let m = load(&StdFs, &root, oldest, Verify::Checksums).expect("intact");
    assert_eq!(m.shards.len(), 2);
    let mut left = 0;
    for s in &m.shards {
        let splits: Option<Vec<Split>> = serde_json::from_value(s.source_position.clone()).expect("source position");
        left += splits
            .expect("resumable")
            .iter()
            .map(|x| x.end.saturating_sub(x.next).div_ceil(x.step.max(1)))
            .sum::<u64>();
    }
    assert!(left > 0, "{backend}: the checkpoint is taken before the input ends ({left} records left)");
    let chk = root.join(formats::layout::checkpoint_dir_name(oldest));
    let chk = chk.to_str().expect("utf8");

    let mut outcomes = Vec::new();
    for shards in ["1", "4"] {
        std::fs::remove_file(d.join("out.jsonl")).expect("clear output");
        sluice(d, &[&base[..], &["--shards", shards, "--from", chk]].concat());
        outcomes.push(results(d));
    }
    assert_eq!(outcomes.first(), outcomes.get(1), "{backend}: 1 and 4 shards end alike");
    assert_eq!(outcomes.first(), Some(&want), "{backend}: and equal the failure-free model");
}

#[test]
fn rocksdb_checkpoint_of_two_shards_restores_onto_one_and_four() {
    two_shard_checkpoint_restores_onto_one_and_four("rocksdb");
}

#[test]
fn heap_checkpoint_of_two_shards_restores_onto_one_and_four() {
    two_shard_checkpoint_restores_onto_one_and_four("heap");
}
