//! The final checkpoint: a bounded job with periodic checkpoints checkpoints the end of
//! its input, so a restart after the end (on another shard count and the other backend)
//! reads nothing again and holds exactly the finished job's state.
mod common;
use std::sync::Arc;
use std::time::Duration;

use engine::{BackendKind, CheckpointConfig, CollectSink, Generator, Job, JobControl, Restore, RunConfig};

const RECORDS: u64 = 200_000;

/// Runs the sum job over `RECORDS` records on `shards` shards of `backend`, checkpointing
/// every hour (so only the final checkpoint falls inside the run), from `restore` if
/// given. Returns the report, the sums emitted at the end, and the checkpoint history.
fn run(
    dir: &std::path::Path,
    shards: u32,
    backend: BackendKind,
    restore: Option<Restore>,
) -> (engine::RunReport, std::collections::BTreeMap<u64, u64>, Vec<engine::CheckpointRecord>) {
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(shards, backend, dir.join(format!("data-{backend}-{shards}")));
    cfg.pin = false;
    cfg.checkpoint = Some(CheckpointConfig::new(dir.join("ck"), Duration::from_secs(3600)));
    cfg.restore = restore.map(Arc::new);
    let control = JobControl::new("final", &cfg, None);
    cfg.control = Some(control.clone());
    let report = Job::new("final")
        .source(Generator::new(Some(RECORDS), |s| s))
        .key_by(|s: &u64| s % common::KEYS)
        .process(common::Sum::never_failing)
        .sink(sink)
        .run(&cfg)
        .expect("job runs");
    let sums = out.lock().expect("lock").iter().copied().collect();
    (report, sums, control.snapshot().history)
}

#[test]
fn the_end_of_a_bounded_input_is_checkpointed_and_a_restart_reads_nothing_again() {
    // Pins: with periodic checkpoints, the job takes one final checkpoint after every
    // source ended, holding all of its state and the sources' end positions: restored onto
    // three shards and the other backend, the job reads no record and ends with the same
    // sums.
    for (first, second) in [(BackendKind::Heap, BackendKind::Rocksdb), (BackendKind::Rocksdb, BackendKind::Heap)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (report, sums, history) = run(dir.path(), 2, first, None);
        assert_eq!(report.records_in, RECORDS, "{first}: the first run reads everything");
        assert_eq!(sums, common::model(RECORDS), "{first}: the first run's sums");
        let completed: Vec<_> = history.iter().filter(|c| c.completed).collect();
        assert_eq!(completed.len(), 1, "{first}: one checkpoint, the final one: {history:?}");
        assert!(completed.iter().all(|c| c.is_final), "{first}: it is marked final: {history:?}");

        let root = formats::layout::checkpoint_root(&dir.path().join("ck"), "final");
        let latest = Restore::latest(&root).expect("root readable").expect("a checkpoint to restore");
        let (again, sums_again, _) = run(dir.path(), 3, second, Some(latest));
        assert_eq!(again.records_in, 0, "{first} -> {second}: the restart resumes at the end of the input");
        assert_eq!(sums_again, common::model(RECORDS), "{first} -> {second}: the final checkpoint holds every sum");
    }
}
