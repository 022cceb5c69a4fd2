//! The engine half of the checkpoint protocol under injected I/O errors (a fault seam
//! in the checkpoint writer's file system): a failed fsync fails the job over to its
//! restart strategy even when failed checkpoints are otherwise tolerated, and the
//! restarted job still ends with exactly-once results.
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::{BackendKind, CheckpointConfig, CollectSink, FsFactory, Generator, Job, JobError};
use engine::{RestartStrategy, RunConfig};
use formats::fs::{FaultFs, FaultOp, StdFs};

const RECORDS: u64 = 2_000_000;

/// Runs 2M records with checkpoints every 5 ms whose 6th fsync fails; returns the
/// result, the sums, and how many checkpoint writers were opened.
fn run(
    backend: BackendKind,
    restart: RestartStrategy,
) -> (Result<engine::RunReport, JobError>, BTreeMap<u64, u64>, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(2, backend, dir.path().join("data"));
    cfg.pin = false;
    let mut ck = CheckpointConfig::new(dir.path().join("ck"), Duration::from_millis(5));
    ck.tolerable_failures = 100;
    let (syncs, writers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let opened = writers.clone();
    ck.fs = Some(FsFactory(Arc::new(move || {
        opened.fetch_add(1, Ordering::SeqCst);
        Box::new(FaultFs::new(StdFs, FaultOp::Sync, 5, syncs.clone()))
    })));
    cfg.checkpoint = Some(ck);
    cfg.restart = restart;
    let r = Job::new("fault")
        .source(Generator::new(Some(RECORDS), |s| s))
        .key_by(|s: &u64| s % common::KEYS)
        .process(|reg| {
            let no_failure = Arc::new(AtomicU32::new(0));
            Ok(common::Sum { sum: reg.value("sum", None)?, fail_at: 0, failures_left: no_failure })
        })
        .sink(sink)
        .run(&cfg);
    let got = out.lock().expect("lock").iter().copied().collect();
    (r, got, writers.load(Ordering::SeqCst))
}

#[test]
fn an_fsync_error_fails_over_even_when_failures_are_tolerated() {
    // Pins: with 100 tolerated checkpoint failures and no restart strategy, one fsync
    // error still fails the job (a run error naming the I/O failure): the writer
    // refuses further publishes, it does not retry. Planted (retry after an fsync
    // error): the job would succeed and this test fails.
    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        let (r, _, writers) = run(backend, RestartStrategy::None);
        let err = r.expect_err("the job fails");
        assert!(matches!(err, JobError::Run(_)), "{backend:?}: a run error: {err}");
        assert!(err.to_string().contains("I/O error"), "{backend:?}: {err}");
        assert_eq!(writers, 1, "{backend:?}");
    }
}

#[test]
fn the_restart_after_an_fsync_error_reopens_the_writer_and_counts_exactly_once() {
    // Pins: the restart opens a new writer, resumes from the last published checkpoint
    // and every record is applied exactly once, on both backends.
    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        let strategy = RestartStrategy::FixedDelay { attempts: 1, delay: Duration::from_millis(10) };
        let (r, got, writers) = run(backend, strategy);
        r.unwrap_or_else(|e| panic!("{backend:?}: the restarted job succeeds: {e}"));
        assert_eq!(writers, 2, "{backend:?}: the restart opened a second writer");
        assert!(got == common::model(RECORDS), "{backend:?}: results differ from the model");
    }
}
