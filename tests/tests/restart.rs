//! Restart strategies: a job that fails while running restarts from its newest
//! checkpoint and ends with exactly-once results (at-least-once: every record applied
//! at least once); strategies give up when they should, with a message saying why.
mod common;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::CollectSink;
use engine::Generator;
use engine::RestartStrategy;
use engine::ValueState;
use engine::{BackendKind, Context, Error, Job, KeyedProcessFunction, RunConfig};
use engine::{CheckpointConfig, CheckpointMode};

type Outcome = (Result<engine::RunReport, engine::JobError>, BTreeMap<u64, u64>, u32);

/// Returns the result, the collected sums, and the planted failures not yet fired.
fn run(records: u64, failures: u32, strategy: RestartStrategy, backend: BackendKind, mode: CheckpointMode) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(2, backend, dir.path().join("data"));
    cfg.pin = false;
    let mut ck = CheckpointConfig::new(dir.path().join("ck"), Duration::from_millis(5));
    ck.mode = mode;
    cfg.checkpoint = Some(ck);
    cfg.restart = strategy;
    let left = Arc::new(AtomicU32::new(failures));
    let remaining = left.clone();
    let fail_at = records * 3 / 4;
    let r = Job::new("restart")
        .source(Generator::new(Some(records), |s| s))
        .key_by(|s: &u64| s % common::KEYS)
        .process(move |reg| Ok(common::Sum { sum: reg.value("sum", None)?, fail_at, failures_left: left.clone() }))
        .sink(sink)
        .run(&cfg);
    let got = out.lock().expect("lock").iter().copied().collect();
    (r, got, remaining.load(Ordering::SeqCst))
}

#[test]
fn fixed_delay_restarts_from_the_checkpoint_with_exact_results() {
    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        let records = 3_000_000;
        let (r, got, left) = run(
            records,
            2,
            RestartStrategy::FixedDelay { attempts: 3, delay: Duration::ZERO },
            backend,
            CheckpointMode::ExactlyOnce,
        );
        let report = r.expect("job recovers");
        assert_eq!(left, 0, "{backend}: both planted failures fired");
        // From scratch it would read all of them (the failing record sits mid-way through
        // shard 1's split while shard 0 is about a quarter through, hence not far less).
        assert!(
            report.records_in < records * 9 / 10,
            "{backend}: the last attempt resumed from a checkpoint, reading {} of {records}",
            report.records_in
        );
        assert_eq!(got, common::model(records), "{backend}: every record counted exactly once across two restarts");
    }
}

/// Records per key of [`Tally`]: a key's records are one bit each of a `u64`.
const PER_KEY: u64 = 64;

/// Tracks which records were applied and how often: record `seq` belongs to key
/// `seq / PER_KEY` and sets bit `seq % PER_KEY` of its `seen` mask (lost records leave a
/// bit clear), and every application counts in `times` (replayed records count twice).
/// Fails once, while `failures_left` is positive: once this shard has read past
/// `fail_at`, at the first record after a checkpoint triggered after that point was
/// published (so the restart resumes from positions past the start, however slowly the
/// backend opened: a RocksDB shard can take the first checkpoint before reading at all).
struct Tally {
    seen: ValueState<u64>,
    times: ValueState<u64>,
    fail_at: u64,
    failures_left: Arc<AtomicU32>,
    checkpoint_root: std::path::PathBuf,
    /// The newest published checkpoint when this shard passed `fail_at`.
    armed: Option<u64>,
}

/// The newest published checkpoint under `root` (0 if none).
fn newest_published(root: &std::path::Path) -> u64 {
    std::fs::read_dir(root).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.path().join("_manifest").exists())
            .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("chk-").and_then(|n| n.parse().ok()))
            .max()
            .unwrap_or(0)
    })
}

impl KeyedProcessFunction for Tally {
    type Key = u64;
    type In = u64;
    type Out = (u64, (u64, u64));

    fn process(&mut self, _: &u64, seq: u64, ctx: &mut Context<'_>, _: &mut Vec<Self::Out>) -> Result<(), Error> {
        // The file system is looked at every 1024th record only, past `fail_at`.
        if seq >= self.fail_at && seq.is_multiple_of(1024) && self.failures_left.load(Ordering::SeqCst) > 0 {
            let newest = newest_published(&self.checkpoint_root);
            let armed = *self.armed.get_or_insert(newest);
            // Checkpoint armed + 1 may have been triggered before the shard got here (its
            // positions can be at the very start); armed + 2 was triggered after.
            if newest >= armed + 2
                && self.failures_left.compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            {
                return Err(Error::user(format!("planted failure at seq {seq}")));
            }
        }
        let seen = self.seen.get(ctx)?.unwrap_or(0) | 1 << (seq % PER_KEY);
        self.seen.set(ctx, seen)?;
        let n = self.times.get(ctx)?.unwrap_or(0) + 1;
        Ok(self.times.set(ctx, n)?)
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<Self::Out>) -> Result<(), Error> {
        let mut seen = BTreeMap::new();
        self.seen.for_each(ctx, |k, v| {
            seen.insert(k.to_vec(), v);
        })?;
        self.times.for_each(ctx, |k, v| {
            let key = u64::from_le_bytes(k.try_into().unwrap_or([0; 8]));
            out.push((key, (seen.get(k).copied().unwrap_or(0), v)));
        })?;
        Ok(())
    }
}

/// Runs [`Tally`] over `0..records` on 2 shards, checkpointing every 5 ms in `mode`, with
/// one failure past a quarter of the input (after a checkpoint taken past it) and
/// fixed-delay restarts. Returns the last attempt's
/// report, per key (seen mask, applications), and whether the failure fired.
fn run_tally(
    records: u64,
    backend: BackendKind,
    mode: CheckpointMode,
) -> (engine::RunReport, BTreeMap<u64, (u64, u64)>, bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(2, backend, dir.path().join("data"));
    cfg.pin = false;
    let mut ck = CheckpointConfig::new(dir.path().join("ck"), Duration::from_millis(5));
    ck.mode = mode;
    cfg.checkpoint = Some(ck);
    cfg.restart = RestartStrategy::FixedDelay { attempts: 2, delay: Duration::ZERO };
    let left = Arc::new(AtomicU32::new(1));
    let remaining = left.clone();
    let fail_at = records / 4;
    let checkpoint_root = dir.path().join("ck").join("tally");
    let r = Job::new("tally")
        .source(Generator::new(Some(records), |s| s))
        .key_by(|s: &u64| s / PER_KEY)
        .process(move |reg| {
            Ok(Tally {
                seen: reg.value("seen", None)?,
                times: reg.value("times", None)?,
                fail_at,
                failures_left: left.clone(),
                checkpoint_root: checkpoint_root.clone(),
                armed: None,
            })
        })
        .sink(sink)
        .run(&cfg);
    let report = r.unwrap_or_else(|e| panic!("{mode:?} {backend}: the job recovers: {e}"));
    let got = out.lock().expect("lock").iter().copied().collect();
    (report, got, remaining.load(Ordering::SeqCst) == 0)
}

#[test]
fn at_least_once_replays_after_a_failure_and_loses_nothing() {
    // Pins: after a real failure and a restart from a checkpoint, at-least-once mode
    // applies every record at least once (replayed ones possibly twice, never lost), and
    // exactly-once mode applies every record exactly once; in both the last attempt
    // resumed from a checkpoint rather than from the start.
    let records = 6_000_000 / PER_KEY * PER_KEY;
    let keys = records / PER_KEY;
    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        for mode in [CheckpointMode::AtLeastOnce, CheckpointMode::ExactlyOnce] {
            let (report, got, fired) = run_tally(records, backend, mode);
            assert!(fired, "{mode:?} {backend}: the planted failure fired");
            // From the start, the last attempt would read every record again.
            assert!(
                report.records_in < records,
                "{mode:?} {backend}: the last attempt resumed from a checkpoint, reading {} of {records}",
                report.records_in
            );
            assert_eq!(got.len() as u64, keys, "{mode:?} {backend}: every key, no other");
            let lost: Vec<(u64, u64)> = got
                .iter()
                .filter(|(_, (seen, _))| *seen != u64::MAX)
                .map(|(k, (seen, _))| (*k, !seen))
                .take(5)
                .collect();
            assert!(lost.is_empty(), "{mode:?} {backend}: records never applied (key, missing bits): {lost:?}");
            let applied: u64 = got.values().map(|(_, n)| n).sum();
            let most = got.values().map(|(_, n)| *n).max().unwrap_or(0);
            eprintln!("{mode:?} {backend}: {records} records applied {applied} times");
            match mode {
                CheckpointMode::ExactlyOnce => {
                    assert_eq!(applied, records, "{backend}: exactly once, no record applied twice")
                }
                CheckpointMode::AtLeastOnce => {
                    assert!(most <= 2 * PER_KEY, "{backend}: one failure replays a record at most once more")
                }
            }
        }
    }
}

#[test]
fn at_least_once_mode_runs_to_exact_results_without_failures() {
    // Pins: without failures, at-least-once mode applies every record exactly once.
    let records = 1_000_000;
    let (r, got, _) = run(records, 0, RestartStrategy::None, BackendKind::Heap, CheckpointMode::AtLeastOnce);
    r.expect("job runs");
    assert_eq!(got, common::model(records));
}

#[test]
fn strategies_give_up_with_a_reason() {
    let (r, _, _) = run(
        200_000,
        u32::MAX,
        RestartStrategy::FixedDelay { attempts: 2, delay: Duration::ZERO },
        BackendKind::Heap,
        CheckpointMode::ExactlyOnce,
    );
    let msg = r.expect_err("gives up").to_string();
    assert!(msg.contains("gave up after 2 restart(s)") && msg.contains("planted failure"), "{msg}");

    let (r, _, _) = run(
        200_000,
        u32::MAX,
        RestartStrategy::FailureRate { max_failures: 2, interval: Duration::from_secs(60), delay: Duration::ZERO },
        BackendKind::Heap,
        CheckpointMode::ExactlyOnce,
    );
    let msg = r.expect_err("gives up").to_string();
    assert!(msg.contains("gave up after 2 restart(s)") && msg.contains("failure-rate"), "{msg}");

    let (r, _, _) = run(200_000, 1, RestartStrategy::None, BackendKind::Heap, CheckpointMode::ExactlyOnce);
    let msg = r.expect_err("no restarts").to_string();
    assert!(msg.contains("planted failure") && !msg.contains("gave up"), "{msg}");
}
