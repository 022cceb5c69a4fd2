//! Exactly-once outputs across kill -9, through the files sink: the `sequence` job with
//! `emit = "updates"` writes one line per record (key, count so far, ...) into part
//! files committed with checkpoints. Killed at random moments (half of the cycles aim at
//! an open checkpoint, when pre-commits and commits happen) and restarted on 1-3 shards
//! and either backend, the finished files together must hold, for every key, each count
//! 1..=n exactly once, with n the model's: zero lost, zero duplicated outputs.
//!
//! Cycles: `SLUICE_KILL_CYCLES` (default 12 here, what CI runs); `make soak` runs more.
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::kill::{published, run_then_kill, CheckpointLog, CycleEnd, LOG_FILTER};

const KEYS: u64 = 2_000;
/// The generator's rate: a cycle lasts up to ~0.7 s, so ~100K outputs per cycle.
const RATE: u64 = 150_000;

fn job(d: &Path, count: u64) -> std::path::PathBuf {
    let text = format!(
        "[job]\nname = \"seqfiles\"\n\n[source]\nkind = \"generator\"\ncount = {count}\nkeys = {KEYS}\nrate_per_s = {RATE}\n\n\
         [key]\nfield = \"key\"\n\n[aggregate]\nkind = \"sequence\"\nfield = \"seq\"\n\n[output]\nemit = \"updates\"\n\n\
         [sink]\nkind = \"files\"\ndir = \"out\"\nroll_bytes = 400000\n\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 80\n"
    );
    let p = d.join("job.toml");
    std::fs::write(&p, text).expect("job file");
    p
}

fn sluice(d: &Path, job: &Path, root: &Path, rng: &mut fastrand::Rng, log: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    let shards = 1 + rng.u64(..3);
    let backend = if rng.bool() { "heap" } else { "rocksdb" };
    c.args(["--log-format", "json", "run", job.to_str().unwrap_or_default(), "--shards", &shards.to_string()]);
    c.args(["--state-backend", backend, "--no-pin", "--data-dir", "data"]);
    if published(root) {
        c.arg("--from").arg(root);
    }
    let log = std::fs::File::create(log).expect("log file");
    c.current_dir(d).env("SLUICE_LOG", LOG_FILTER).stdout(Stdio::null()).stderr(log);
    c
}

/// Every count each key emitted, over the finished part files of `dir` (hidden
/// unfinished files are not read: readers must not see them).
fn emitted(dir: &Path) -> (BTreeMap<u64, Vec<u64>>, usize) {
    let mut got: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut files = 0;
    for e in std::fs::read_dir(dir).expect("output dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(e.path()).expect("part file");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            let key: u64 = v["key"].as_str().and_then(|k| k.parse().ok()).expect("key");
            got.entry(key).or_default().push(v["count"].as_u64().expect("count"));
        }
    }
    (got, files)
}

#[test]
fn every_output_is_in_the_finished_files_exactly_once_across_kill_9() {
    // Pins: the files sink is exactly-once across kill -9 (at random moments, half aimed
    // at open checkpoints) and restarts on 1-3 shards and both backends: every key's
    // updates 1..=n are in finished files once each (fails if a pending file is
    // committed twice or lost, or an in-progress file is shown to readers).
    let cycles: u64 = std::env::var("SLUICE_KILL_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    let seed: u64 = std::env::var("SLUICE_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xf11e_5eed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let count = cycles * 60_000 + 200_000;
    let job = job(d, count);
    let root = d.join("ck").join("seqfiles");
    let log_path = d.join("sluice.log");
    let (mut kills, mut during) = (0u64, 0u64);
    for _ in 0..cycles {
        let mut child = sluice(d, &job, &root, &mut rng, &log_path).spawn().expect("spawn sluice");
        let mut log = CheckpointLog::new(log_path.clone());
        let aim = rng.bool();
        let wait = Duration::from_millis(if aim { 3000 } else { 100 + rng.u64(..600) });
        match run_then_kill(&mut child, &mut log, aim, wait) {
            CycleEnd::Exited(status) => {
                let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                assert!(status.success(), "sluice failed on its own: {status}\n{err}");
            }
            CycleEnd::Killed { during_checkpoint } => {
                kills += 1;
                during += u64::from(during_checkpoint);
            }
        }
    }
    let status = sluice(d, &job, &root, &mut rng, &log_path).status().expect("final run");
    assert!(status.success(), "final run: {}", std::fs::read_to_string(&log_path).unwrap_or_default());

    let (got, files) = emitted(&d.join("out"));
    let want = common::sequence_model(count, KEYS);
    let (mut lost, mut doubled) = (0u64, 0u64);
    for (key, w) in &want {
        let mut counts = got.get(key).cloned().unwrap_or_default();
        counts.sort_unstable();
        let total = counts.len() as u64;
        counts.dedup();
        doubled += total - counts.len() as u64;
        lost += w.0 - counts.iter().filter(|c| (1..=w.0).contains(c)).count() as u64;
    }
    let unfinished = std::fs::read_dir(d.join("out"))
        .expect("out")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    eprintln!(
        "files sink exactly-once: seed {seed:#x}, {cycles} cycles, {kills} kills ({during} while a checkpoint was open), \
         {count} records over {KEYS} keys, {files} finished files, {unfinished} unfinished left: {lost} lost, {doubled} duplicated"
    );
    assert_eq!((lost, doubled), (0, 0), "every update exactly once in the finished files");
    assert_eq!(got.keys().count(), want.len(), "no key beyond the model's");
    assert_eq!(unfinished, 0, "a run that ended well leaves no in-progress or pending part file");
    assert!(kills * 2 >= cycles, "most cycles end in a kill ({kills} of {cycles})");
    assert!(during * 10 >= kills * 3, "at least 30% of kills hit an open checkpoint ({during} of {kills})");
}
