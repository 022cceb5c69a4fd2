//! Tumbling event-time windows with an incremental aggregate (a count), 2 shards, both
//! backends: with a bound that covers the input's disorder every window's result equals
//! a brute-force count from the whole input, emitted once, nothing late; with a bound
//! that does not, every record is either counted in exactly one result or sent out as
//! late (after its window fired, with the watermark then), none lost.
use std::collections::BTreeMap;
use std::time::Duration;

use engine::{AggregateFunction, BackendKind, CollectSink, Generator, Job, RunConfig};
use engine::{TumblingEventTimeWindows, WatermarkStrategy, Windowed};

const N: u64 = 20_000;
const KEYS: u64 = 7;
const SIZE_MS: i64 = 100;

/// Event time of record `s`: three ms apart, up to 79 ms out of order (so most bursts
/// of a split's records straddle a window's end).
fn ts(s: u64) -> i64 {
    s as i64 * 3 - ((s * 7919) % 80) as i64
}

#[derive(Clone)]
struct Count;

impl AggregateFunction for Count {
    type In = u64;
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    fn add(&self, _: u64, acc: u64) -> u64 {
        acc + 1
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

type Out = Windowed<u64, u64, u64>;

fn run(backend: BackendKind, bound_ms: u64) -> Vec<Out> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = RunConfig::new(2, backend, dir.path().join("data"));
    cfg.pin = false;
    cfg.batch_records = 64;
    let sink = CollectSink::<Out>::default();
    let out = sink.handle();
    Job::new("windows")
        .source(Generator::new(Some(N), |s| s).rate_per_s(Some(40_000)))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(bound_ms))
                .with_timestamp_assigner(|s: &u64| ts(*s))
                .with_emit_interval(Duration::from_millis(10)),
        )
        .key_by(|s: &u64| s % KEYS)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(SIZE_MS as u64)))
        .aggregate(Count)
        .sink(sink)
        .run(&cfg)
        .expect("job runs");
    let v = out.lock().expect("lock").clone();
    v
}

/// (key, window start) -> count, from the whole input.
fn brute_force() -> BTreeMap<(u64, i64), u64> {
    let mut m = BTreeMap::new();
    for s in 0..N {
        let t = ts(s);
        *m.entry((s % KEYS, t - t.rem_euclid(SIZE_MS))).or_default() += 1;
    }
    m
}

fn results(out: &[Out]) -> BTreeMap<(u64, i64), u64> {
    let mut m = BTreeMap::new();
    for o in out {
        if let Windowed::Result { key, window_start, window_end, value } = o {
            assert_eq!(window_end - window_start, SIZE_MS);
            assert!(m.insert((*key, *window_start), *value).is_none(), "window ({key}, {window_start}) emitted twice");
        }
    }
    m
}

// Pins: on-time input gives exactly the brute-force count of every (key, window), each
// emitted once, nothing late.
fn on_time(backend: BackendKind) {
    let out = run(backend, 120);
    assert!(out.iter().all(|o| matches!(o, Windowed::Result { .. })), "{backend}: nothing is late");
    assert!(results(&out) == brute_force(), "{backend}: every window equals the brute-force count");
}

// Pins: with a bound smaller than the disorder, records come after their window fired;
// each is either in exactly one window's count or out as late (with a watermark past its
// window), never both, never lost; no window counts more than the brute force.
fn late(backend: BackendKind) {
    let out = run(backend, 0);
    let late: Vec<(i64, i64)> = out
        .iter()
        .filter_map(|o| match o {
            Windowed::Late { timestamp, watermark, .. } => Some((*timestamp, *watermark)),
            _ => None,
        })
        .collect();
    assert!(
        late.iter().all(|(t, w)| t - t.rem_euclid(SIZE_MS) + SIZE_MS - 1 <= *w),
        "{backend}: a late record's window had fired"
    );
    let got = results(&out);
    let want = brute_force();
    assert!(got.iter().all(|(k, v)| want.get(k).is_some_and(|w| v <= w)), "{backend}: no window over-counts");
    let counted: u64 = got.values().sum();
    assert_eq!(counted + late.len() as u64, N, "{backend}: every record counted once or late");
    assert!(!late.is_empty(), "{backend}: some records are late");
}

#[test]
fn heap_tumbling_windows_on_time() {
    on_time(BackendKind::Heap);
}

#[test]
fn rocksdb_tumbling_windows_on_time() {
    on_time(BackendKind::Rocksdb);
}

#[test]
fn heap_tumbling_windows_late_records() {
    late(BackendKind::Heap);
}

#[test]
fn rocksdb_tumbling_windows_late_records() {
    late(BackendKind::Rocksdb);
}
