//! The two-phase-commit protocol under crashes forced by a fault seam in the sink: the
//! job fails between a pre-commit and its commit, or between a commit and its
//! acknowledgment; the restart strategy restores the last checkpoint, whose recovery
//! commits its pending transactions (again, for the second case: commits are
//! idempotent), and the finished part files hold every output exactly once.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::{
    BackendKind, CheckpointConfig, Context, Error, Generator, Guarantee, Job, KeyedProcessFunction, PartFiles, Pending,
    RestartStrategy, RunConfig, Transactional, TransactionalWriter, TwoPhaseCommitSink, TxnContext, ValueState,
};

const KEYS: u64 = 300;
const RECORDS: u64 = 300_000;

/// Counts records per key and emits every new count (one output per record).
struct Count {
    count: ValueState<u64>,
}

impl KeyedProcessFunction for Count {
    type Key = u64;
    type In = u64;
    type Out = (u64, u64);

    fn process(&mut self, key: &u64, _: u64, ctx: &mut Context<'_>, out: &mut Vec<(u64, u64)>) -> Result<(), Error> {
        let c = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, c)?;
        out.push((*key, c));
        Ok(())
    }
}

/// Where the seam fails the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seam {
    /// The commit of the 3rd completed checkpoint fails before it renames anything.
    BeforeCommit,
    /// ... after it renamed every file (the acknowledgment is lost).
    AfterCommit,
}

/// Part files whose writers fail once at `seam`.
struct Faulty {
    files: PartFiles<(u64, u64)>,
    seam: Seam,
    /// Commits until the failure (shared by every shard and attempt).
    left: Arc<AtomicU32>,
}

impl Transactional<(u64, u64)> for Faulty {
    fn name(&self) -> String {
        self.files.name()
    }
    fn recover(&self, pending: &[Pending], shards: u32) -> Result<(), Error> {
        self.files.recover(pending, shards)
    }
    fn open(&self, ctx: TxnContext) -> Result<Box<dyn TransactionalWriter<(u64, u64)>>, Error> {
        Ok(Box::new(FaultyWriter { inner: self.files.open(ctx)?, seam: self.seam, left: self.left.clone() }))
    }
}

struct FaultyWriter {
    inner: Box<dyn TransactionalWriter<(u64, u64)>>,
    seam: Seam,
    left: Arc<AtomicU32>,
}

impl TransactionalWriter<(u64, u64)> for FaultyWriter {
    fn begin(&mut self, next: u64) -> Result<(), Error> {
        self.inner.begin(next)
    }
    fn write(&mut self, v: (u64, u64)) -> Result<(), Error> {
        self.inner.write(v)
    }
    fn pre_commit(&mut self, id: u64) -> Result<Vec<u8>, Error> {
        self.inner.pre_commit(id)
    }
    fn commit(&mut self, p: &Pending) -> Result<(), Error> {
        // Only transactions with files count: empty ones commit nothing.
        let fires = p.handle != b"[]"
            && self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) == Ok(1);
        let planted = || Err(Error::Sink { name: "seam".into(), reason: format!("planted {:?}", self.seam) });
        match (fires, self.seam) {
            (true, Seam::BeforeCommit) => planted(),
            (true, Seam::AfterCommit) => self.inner.commit(p).and_then(|()| planted()),
            _ => self.inner.commit(p),
        }
    }
    fn abort(&mut self) -> Result<(), Error> {
        self.inner.abort()
    }
}

/// Every (key, count) in the finished files of `dir`, with how often it appears.
fn finished(dir: &Path) -> BTreeMap<(u64, u64), u32> {
    let mut got = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("out").flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for line in std::fs::read_to_string(e.path()).expect("part file").lines() {
            let (k, c) = line.split_once(' ').expect("key count");
            *got.entry((k.parse().expect("key"), c.parse().expect("count"))).or_default() += 1;
        }
    }
    got
}

fn run(seam: Seam, backend: BackendKind) -> (u32, BTreeMap<(u64, u64), u32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let files = PartFiles::new(
        &out,
        "part",
        ".txt",
        Arc::new(|v: &(u64, u64), s: &mut String| {
            s.push_str(&format!("{} {}", v.0, v.1));
        }),
    );
    let left = Arc::new(AtomicU32::new(3));
    let target = Faulty { files, seam, left: left.clone() };
    let mut cfg = RunConfig::new(2, backend, dir.path().join("data"));
    cfg.pin = false;
    cfg.checkpoint = Some(CheckpointConfig::new(dir.path().join("ck"), Duration::from_millis(20)));
    cfg.restart = RestartStrategy::FixedDelay { attempts: 2, delay: Duration::from_millis(10) };
    Job::new("faults")
        .source(Generator::new(Some(RECORDS), |s| s).rate_per_s(Some(1_000_000)))
        .key_by(|s: &u64| s % KEYS)
        .process(|reg| Ok(Count { count: reg.value("count", None)? }))
        .sink(TwoPhaseCommitSink::new(target, Guarantee::ExactlyOnce))
        .run(&cfg)
        .unwrap_or_else(|e| panic!("{seam:?} {backend:?}: the restarted job succeeds: {e}"));
    let fired = u32::from(left.load(Ordering::SeqCst) == 0);
    (fired, finished(&out))
}

#[test]
fn a_crash_before_or_after_a_commit_still_commits_every_output_once() {
    // Pins: a failure between pre-commit and commit (the restore's recovery commits the
    // pending files) and between commit and acknowledgment (the recovery's second commit
    // is a no-op) both end with each (key, count) in the finished files exactly once,
    // on both backends. Planted (recovery skips the pending, or a commit of a finished
    // file fails or duplicates it): outputs lost or the restart fails.
    for seam in [Seam::BeforeCommit, Seam::AfterCommit] {
        for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
            let (fired, got) = run(seam, backend);
            assert_eq!(fired, 1, "{seam:?} {backend:?}: the seam fired");
            let per_key = RECORDS / KEYS;
            let want: BTreeMap<(u64, u64), u32> =
                (0..KEYS).flat_map(|k| (1..=per_key).map(move |c| ((k, c), 1))).collect();
            let lost = want.keys().filter(|k| !got.contains_key(k)).count();
            let doubled = got.values().filter(|n| **n > 1).count();
            assert_eq!((lost, doubled), (0, 0), "{seam:?} {backend:?}: every output once");
            assert_eq!(got, want, "{seam:?} {backend:?}");
        }
    }
}
