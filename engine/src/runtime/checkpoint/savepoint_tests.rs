//! Savepoint round trips through the runtime's own paths: random state of every kind
//! (value, list, map, reducing, aggregating, and a value with TTL) written by N shards on either
//! backend, taken as each shard's barrier snapshot (a RocksDB checkpoint or a heap copy),
//! written as a savepoint in either form, then restored onto M shards of either backend
//! (reopening the instances when shard count and backend allow) equals the model.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use formats::id::CheckpointId;
use formats::keygroup::{key_group_of, range_for_shard, shard_of, KEY_GROUPS_DEFAULT};
use formats::savepoint::Form;
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::ValueEncoding;
use formats::ShardId;
use proptest::prelude::*;

use super::ack::{self, Ack};
use super::publish::JobInfo;
use super::restore::{Origin, Restore};
use super::savepoint;
use crate::state::context::StateRegistry;
use crate::state::handles::{AggregateFunction, AggregatingState, ListState, MapState, ReducingState, ValueState};
use crate::{BackendKind, ManualClock, StateHarness};

/// Count and sum of the inputs: an accumulator that is not the output.
struct CountSum;

impl AggregateFunction for CountSum {
    type In = i64;
    type Acc = (u64, i64);
    type Out = (u64, i64);
    fn create(&self) -> (u64, i64) {
        (0, 0)
    }
    fn add(&self, v: i64, (n, s): (u64, i64)) -> (u64, i64) {
        (n + 1, s + v)
    }
    fn result(&self, acc: &(u64, i64)) -> (u64, i64) {
        *acc
    }
}

struct S {
    agg: AggregatingState<CountSum>,
    value: ValueState<u64>,
    list: ListState<String>,
    map: MapState<String, i64>,
    sum: ReducingState<i64>,
    ttl: ValueState<String>,
}

fn declare(reg: &mut StateRegistry) -> S {
    let ttl = TtlConfig { ttl_ms: 3_600_000, update: TtlUpdate::OnCreateAndWrite };
    S {
        agg: reg.aggregating("agg", CountSum, None).expect("agg"),
        value: reg.value("value", None).expect("value"),
        list: reg.list("list", None).expect("list"),
        map: reg.map("map", None).expect("map"),
        sum: reg.reducing("sum", |a: i64, b: i64| a + b, None).expect("sum"),
        ttl: reg.value("ttl", Some(ttl)).expect("ttl"),
    }
}

type Entry = (u64, Vec<String>, BTreeMap<String, i64>, i64, String);
type Model = BTreeMap<String, Entry>;

fn model() -> impl Strategy<Value = Model> {
    proptest::collection::btree_map(
        "k[0-9]{1,3}",
        (
            1u64..1000,
            proptest::collection::vec("[a-z]{0,4}", 0..3),
            proptest::collection::btree_map("[a-c]", -9i64..9, 0..3),
            -50i64..50,
            "[a-z]{1,6}",
        ),
        1..60,
    )
}

fn open(kind: BackendKind, dir: &std::path::Path) -> (StateHarness, S) {
    let mut reg = StateRegistry::new();
    let s = declare(&mut reg);
    let clock = ManualClock::new(1_000) as Arc<_>;
    (StateHarness::open(kind, reg, Some(dir), 16, clock).expect("open"), s)
}

fn owner(k: &str, shards: u32) -> u16 {
    shard_of(key_group_of(k.as_bytes(), KEY_GROUPS_DEFAULT), shards, KEY_GROUPS_DEFAULT).0
}

fn write(h: &mut StateHarness, s: &S, k: &str, e: &Entry) {
    h.with_key(k.as_bytes(), |c| {
        s.value.set(c, e.0).expect("set");
        for x in &e.1 {
            s.list.add(c, x.clone()).expect("add");
        }
        for (mk, mv) in &e.2 {
            s.map.put(c, mk, *mv).expect("put");
        }
        s.sum.add(c, e.3).expect("reduce");
        s.agg.add(c, e.3).expect("aggregate");
        s.agg.add(c, 1).expect("aggregate");
        s.ttl.set(c, e.4.clone()).expect("ttl");
    });
}

fn read(h: &mut StateHarness, s: &S, k: &str) -> Option<Entry> {
    h.with_key(k.as_bytes(), |c| {
        let v = s.value.get(c).expect("get")?;
        let m = s.map.entries(c).expect("entries").into_iter().collect();
        let sum = s.sum.get(c).expect("sum").unwrap_or(0);
        // The accumulator holds two inputs per key: the reduced value and 1.
        assert_eq!(s.agg.get(c).expect("agg"), Some((2, sum + 1)), "the aggregate of {k}");
        Some((v, s.list.get(c).expect("list"), m, sum, s.ttl.get(c).expect("ttl").unwrap_or_default()))
    })
}

fn backend(rocks: bool) -> BackendKind {
    if rocks {
        BackendKind::Rocksdb
    } else {
        BackendKind::Heap
    }
}

/// Shard `i` of `n`'s barrier snapshot of `m` (the keys it owns), as its ack.
fn shard_ack(m: &Model, i: u16, n: u32, kind: BackendKind, dir: &std::path::Path) -> Ack {
    let range = range_for_shard(ShardId(i), n, KEY_GROUPS_DEFAULT);
    let (mut h, s) = open(kind, &dir.join(format!("in-{i}")));
    for (k, e) in m.iter().filter(|(k, _)| owner(k, n) == i) {
        write(&mut h, &s, k, e);
    }
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let state = ack::take_snapshot(h.backend_mut(), range, Some(&work), i, 7, None).expect("snapshot");
    Ack {
        shard: i,
        id: 7,
        range,
        states: h.backend_mut().descriptors().to_vec(),
        snapshot: Ok(state),
        splits: None,
        operator_state: Vec::new(),
        sync: Duration::ZERO,
    }
}

fn info(kind: BackendKind, shards: usize) -> JobInfo {
    JobInfo {
        job: "job".into(),
        key: ValueEncoding::Utf8,
        max_key_groups: KEY_GROUPS_DEFAULT,
        backend: kind.to_string(),
        shards,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn a_savepoint_restores_every_state_onto_any_shard_count_and_backend(
        m in model(), n in 1u32..4, to in 1u32..4, from_rocks in any::<bool>(), to_rocks in any::<bool>(), native in any::<bool>()
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, form) = (backend(from_rocks), if native { Form::Native } else { Form::Canonical });
        let acks = (0..n as u16).map(|i| shard_ack(&m, i, n, from, dir.path())).collect();
        let target = dir.path().join("sp");
        let written = savepoint::write(&info(from, n as usize), CheckpointId(7), &target, form, acks, 1.0).expect("write");
        // A heap job has no native form: it is written canonically.
        prop_assert_eq!(written.form, if from_rocks { form } else { Form::Canonical });
        // Relocatable: restore from a copy under another name, the original removed.
        let moved = dir.path().join("moved");
        std::fs::rename(&target, &moved).expect("move");
        let r = Restore::load(&moved).expect("load");
        prop_assert_eq!(r.origin, Origin::Savepoint(written.form));
        let mut restored = Model::new();
        for j in 0..to as u16 {
            let range = range_for_shard(ShardId(j), to, KEY_GROUPS_DEFAULT);
            let inst = dir.path().join(format!("out-{j}"));
            let kind = backend(to_rocks);
            let reopened = to_rocks && {
                let mut reg = StateRegistry::new();
                declare(&mut reg);
                r.reopen(ShardId(j), to, range, &reg.into_descriptors(), &inst).expect("reopen")
            };
            prop_assert_eq!(reopened, to_rocks && from_rocks && native && n == to, "reopen only a native savepoint of as many shards");
            let (mut h, s) = open(kind, &inst);
            if !reopened {
                r.restore_into(h.backend_mut(), range, Some(&dir.path().join("rwork")), ShardId(j)).expect("restore");
            }
            for k in m.keys() {
                if let Some(e) = read(&mut h, &s, k) {
                    prop_assert_eq!(owner(k, to), j, "key {} restored on shard {} it does not own", k, j);
                    restored.insert(k.clone(), e);
                }
            }
        }
        prop_assert_eq!(restored, m);
    }
}

/// Pins full-snapshot cleanup in savepoints: a canonical savepoint leaves out the values
/// of a TTL state that had expired at its barrier, on both backends (RocksDB: from the
/// instance's checkpoint, whose files still hold them), and keeps every other entry.
#[test]
fn a_canonical_savepoint_leaves_out_expired_entries() {
    const TTL_MS: u64 = 3_600_000;
    for kind in [BackendKind::Heap, BackendKind::Rocksdb] {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(1_000);
        let mut reg = StateRegistry::new();
        let s = declare(&mut reg);
        let mut h = StateHarness::open(kind, reg, Some(&dir.path().join("in")), 16, clock.clone()).expect("open");
        let e = |i: u64| (i, vec![], BTreeMap::new(), 1, format!("v{i}"));
        for i in 0..10 {
            write(&mut h, &s, &format!("old{i}"), &e(i));
        }
        // The old values expire exactly now; the new ones a TTL later.
        clock.advance_ms(TTL_MS);
        for i in 0..10 {
            write(&mut h, &s, &format!("new{i}"), &e(i));
        }
        let range = range_for_shard(ShardId(0), 1, KEY_GROUPS_DEFAULT);
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let state = h.barrier_snapshot(range, &work, 7).expect("snapshot");
        let states = h.backend_mut().descriptors().to_vec();
        let a = Ack {
            shard: 0,
            id: 7,
            range,
            states,
            snapshot: Ok(state),
            splits: None,
            operator_state: Vec::new(),
            sync: Duration::ZERO,
        };
        let target = dir.path().join("sp");
        savepoint::write(&info(kind, 1), CheckpointId(7), &target, Form::Canonical, vec![a], 1.0).expect("write");

        let r = Restore::load(&target).expect("load");
        let mut reg = StateRegistry::new();
        declare(&mut reg);
        let mut back = StateHarness::open(BackendKind::Heap, reg, None, 0, clock.clone()).expect("open");
        r.restore_into(back.backend_mut(), range, Some(&dir.path().join("rwork")), ShardId(0)).expect("restore");
        let ttl_state = 5;
        assert_eq!(back.stored(ttl_state).expect("stored").len(), 10, "{kind}: only the live TTL values");
        assert_eq!(back.stored(1).expect("stored").len(), 20, "{kind}: every plain value");
    }
}
