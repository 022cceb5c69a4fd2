//! Timers are checkpointed and restored like any keyed state: a timer job checkpointed
//! mid-input on 2 shards restores onto another shard count and the other backend
//! (RocksDB 2 -> heap 3, heap 2 -> RocksDB 1) and ends with exactly the firings of a
//! failure-free run and of a model: none lost, none fired twice; so does the checkpoint
//! migrated by statetool to 64 key groups. Timers pending at the checkpoint are shown by
//! `statetool dump`, with their key and time.
//!
//! The job registers an event-time timer per record at the end of its 100 ms bucket plus
//! a delay (many records share one: at most one per key and time), and `on_timer`
//! registers a follow-up for some. Each key's firings are kept in a list state, so the
//! check reads final results (the restored run's `end_of_input`), not a sink that a
//! restart would write twice.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engine::{BackendKind, CheckpointConfig, CollectSink, Context, Error, Generator, Job, KeyedProcessFunction};
use engine::{RunConfig, TimeDomain, TimerService, ValueState, WatermarkStrategy};
use formats::checkpoint::{checkpoint_ids, load, Verify};
use formats::fs::StdFs;
use serde_json::Value;

#[path = "common/statetool.rs"]
mod statetool;
use statetool::statetool;

const RECORDS: u64 = 30_000;
const KEYS: u64 = 50;
const DELAY: i64 = 30;
/// Follow-ups are registered by timers before this time.
const FOLLOW_UP_BEFORE: i64 = 20_000;

fn bucket_timer(s: u64) -> i64 {
    (s as i64 / 100 + 1) * 100 + DELAY
}

/// A timer at `t` registers one at `t + 7` when `t` is a multiple of 3 (its own key).
fn follow_up(t: i64) -> Option<i64> {
    (t % 3 == 0 && t < FOLLOW_UP_BEFORE).then_some(t + 7)
}

/// Every key's firings, from the input alone.
fn model() -> BTreeMap<u64, Vec<i64>> {
    let mut m: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
    for s in 0..RECORDS {
        let mut t = Some(bucket_timer(s));
        while let Some(x) = t {
            if !m.entry(s % KEYS).or_default().insert(x) {
                break;
            }
            t = follow_up(x);
        }
    }
    m.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect()
}

struct Buckets {
    timers: TimerService,
    /// The key's firings, as decimal times separated by spaces (a value state, so that
    /// `end_of_input` can visit every key's).
    fired: ValueState<String>,
}

impl KeyedProcessFunction for Buckets {
    type Key = u64;
    type In = u64;
    type Out = (u64, Vec<i64>);

    fn process(&mut self, _: &u64, s: u64, ctx: &mut Context<'_>, _: &mut Vec<Self::Out>) -> Result<(), Error> {
        if s.is_multiple_of(1_000) {
            // Long enough for several checkpoints to be taken mid-way.
            std::thread::sleep(Duration::from_millis(15));
        }
        Ok(self.timers.register_event_time_timer(ctx, bucket_timer(s))?)
    }

    fn on_timer(
        &mut self,
        _: &u64,
        t: i64,
        d: TimeDomain,
        ctx: &mut Context<'_>,
        _: &mut Vec<Self::Out>,
    ) -> Result<(), Error> {
        assert_eq!(d, TimeDomain::EventTime);
        let mut fired = self.fired.get(ctx)?.unwrap_or_default();
        fired.push_str(&format!(" {t}"));
        self.fired.set(ctx, fired)?;
        if let Some(next) = follow_up(t) {
            self.timers.register_event_time_timer(ctx, next)?;
        }
        Ok(())
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<Self::Out>) -> Result<(), Error> {
        Ok(self.fired.for_each(ctx, |k, fired| {
            let key = u64::from_le_bytes(k.try_into().expect("u64 key"));
            out.push((key, fired.split_whitespace().map(|t| t.parse().expect("a time")).collect()));
        })?)
    }
}

/// Runs the job to its end, checkpointing every 20 ms; returns every key's firings,
/// sorted.
fn run(dir: &Path, shards: u32, backend: BackendKind, from: Option<&Path>) -> BTreeMap<u64, Vec<i64>> {
    run_with_key_groups(dir, shards, backend, from, formats::keygroup::KEY_GROUPS_DEFAULT)
}

fn run_with_key_groups(
    dir: &Path,
    shards: u32,
    backend: BackendKind,
    from: Option<&Path>,
    key_groups: u32,
) -> BTreeMap<u64, Vec<i64>> {
    let mut cfg = RunConfig::new(shards, backend, dir.join(format!("data-{shards}-{backend}")));
    cfg.pin = false;
    cfg.max_key_groups = key_groups;
    let mut ck = CheckpointConfig::new(dir.join("ck"), Duration::from_millis(20));
    ck.retain = 10_000;
    cfg.checkpoint = Some(ck);
    if let Some(f) = from {
        cfg.restore = Some(Arc::new(engine::Restore::load(f).expect("restore loads")));
    }
    let sink = CollectSink::default();
    let out = sink.handle();
    Job::new("timers")
        .source(Generator::new(Some(RECORDS), |s| s))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|s: &u64| *s as i64)
                .with_emit_interval(Duration::from_millis(2)),
        )
        .key_by(|s: &u64| s % KEYS)
        .process(|reg| Ok(Buckets { timers: reg.timers()?, fired: reg.value("fired", None)? }))
        .sink(sink)
        .run(&cfg)
        .expect("job runs");
    let mut m: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for (k, v) in out.lock().expect("lock").drain(..) {
        // One entry per key: a timer fired in a key group other than its key's would
        // have written the key's firings into a second entry.
        assert!(m.insert(k, v).is_none(), "key {k}'s firings are in two entries");
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// A checkpoint taken mid-input that holds pending timers and fired ones: the one in
/// the middle of those that do.
fn mid_checkpoint(root: &Path) -> PathBuf {
    let ids = checkpoint_ids(&StdFs, root).expect("ids");
    let usable: Vec<_> = ids
        .iter()
        .filter(|id| {
            let m = load(&StdFs, root, **id, Verify::Checksums).expect("intact");
            let left: u64 = m
                .shards
                .iter()
                .filter_map(|s| serde_json::from_value::<Option<Vec<engine::Split>>>(s.source_position.clone()).ok())
                .flatten()
                .flatten()
                .map(|x| x.end.saturating_sub(x.next))
                .sum();
            left > RECORDS / 10 && left < RECORDS * 9 / 10
        })
        .collect();
    let id = **usable.get(usable.len() / 2).expect("a checkpoint taken mid-input");
    root.join(formats::layout::checkpoint_dir_name(id))
}

fn dump(chk: &Path, state: &str) -> Vec<Value> {
    let out = statetool(&["dump", chk.to_str().expect("utf-8"), "--state", state]);
    out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

// Pins: timers restore onto another shard count and the other backend, and the run
// fires exactly the failure-free run's timers (the model's), none lost, none twice;
// statetool shows the checkpoint's pending timers by key and time.
fn restore_elsewhere(from: (u32, BackendKind), to: (u32, BackendKind)) {
    let dir = tempfile::tempdir().expect("tmp");
    let want = model();
    let free = run(dir.path(), from.0, from.1, None);
    assert!(free == want, "{from:?}: the failure-free run fires the model's timers");
    let chk = mid_checkpoint(&dir.path().join("ck").join("timers"));

    let inspect: Value =
        serde_json::from_str(&statetool(&["inspect", "--json", chk.to_str().expect("utf-8")])).expect("json");
    let timer_state = inspect["manifest"]["states"].as_array().and_then(|s| s.iter().find(|d| d["name"] == "_timers"));
    assert_eq!(timer_state.map(|d| d["kind"].clone()), Some(Value::from("timer")), "inspect lists the timer state");
    let pending = dump(&chk, "_timers");
    let fired = dump(&chk, "fired");
    assert!(
        !pending.is_empty() && !fired.is_empty(),
        "{from:?}: the checkpoint {} holds pending ({}) and fired ({}) timers",
        chk.display(),
        pending.len(),
        fired.len()
    );
    for t in &pending {
        let (key, time) = (t["key"].as_u64().expect("key"), t["timer"]["time"].as_i64().expect("time"));
        assert_eq!(t["timer"]["domain"], "event_time");
        assert!(want.get(&key).is_some_and(|w| w.contains(&time)), "{from:?}: pending timer {t} is one of the model's");
    }

    let restored = run(dir.path(), to.0, to.1, Some(&chk));
    check(&want, &restored, &format!("{from:?} -> {to:?}"));

    // statetool migrate to another key-group count moves each timer to its user key's
    // key group (not its time's): the migrated savepoint restores to the same firings.
    let sp = dir.path().join("sp-64");
    let (chk_s, sp_s) = (chk.to_str().expect("utf-8"), sp.to_str().expect("utf-8"));
    statetool(&["migrate", chk_s, "--to", sp_s, "--shards", "2", "--key-groups", "64"]);
    let moved = dump(&sp, "_timers");
    assert_eq!(moved.len(), pending.len(), "{from:?}: migrate keeps every timer");
    for t in &moved {
        let key = t["key"].as_u64().expect("key");
        let kg = formats::keygroup::key_group_of(&key.to_le_bytes(), 64).0;
        assert_eq!(t["key_group"].as_u64(), Some(u64::from(kg)), "{from:?}: timer {t} is in its key's key group");
    }
    std::fs::remove_dir_all(dir.path().join("ck")).expect("a fresh checkpoint root");
    let migrated = run_with_key_groups(dir.path(), 2, to.1, Some(&sp), 64);
    check(&want, &migrated, &format!("{from:?} -> migrated to 64 key groups -> {to:?}"));
}

fn check(want: &BTreeMap<u64, Vec<i64>>, got: &BTreeMap<u64, Vec<i64>>, what: &str) {
    let lost: usize =
        want.iter().map(|(k, w)| w.iter().filter(|t| !got.get(k).is_some_and(|r| r.contains(t))).count()).sum();
    let twice: usize = got.values().map(|r| r.windows(2).filter(|w| w[0] == w[1]).count()).sum();
    assert!(got == want, "{what}: {lost} timers lost, {twice} fired twice");
}

#[test]
fn rocksdb_two_shards_restore_onto_heap_three() {
    restore_elsewhere((2, BackendKind::Rocksdb), (3, BackendKind::Heap));
}

#[test]
fn heap_two_shards_restore_onto_rocksdb_one() {
    restore_elsewhere((2, BackendKind::Heap), (1, BackendKind::Rocksdb));
}
