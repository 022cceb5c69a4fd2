//! Restore onto another shard count and another backend: state written by N shards is
//! snapshotted per shard, then restored into M shards clipped to their new ranges, on
//! the heap or RocksDB; every shard ends with exactly the keys it owns, with the same
//! values, for every state kind (FORMAT.md invariant 11.1, at the engine level).
use std::collections::BTreeMap;
use std::sync::Arc;

use engine::ManualClock;
use engine::StateHarness;
use engine::{BackendKind, StateRegistry};
use engine::{ListState, MapState, ValueState};
use formats::keygroup::{key_group_of, range_for_shard, shard_of, KEY_GROUPS_DEFAULT};
use formats::ShardId;
use proptest::prelude::*;

struct S {
    value: ValueState<u64>,
    list: ListState<String>,
    map: MapState<String, i64>,
}

fn declare(reg: &mut StateRegistry) -> S {
    S {
        value: reg.value("value", None).expect("v"),
        list: reg.list("list", None).expect("l"),
        map: reg.map("map", None).expect("m"),
    }
}

type Model = BTreeMap<String, (u64, Vec<String>, BTreeMap<String, i64>)>;

fn open(kind: BackendKind, dir: &std::path::Path) -> (StateHarness, S) {
    let mut reg = StateRegistry::new();
    let s = declare(&mut reg);
    let h = StateHarness::open(kind, reg, Some(dir), 16, ManualClock::new(0) as Arc<_>).expect("open");
    (h, s)
}

fn read_all(h: &mut StateHarness, s: &S, keys: &[String]) -> Model {
    let mut m = Model::new();
    for k in keys {
        let (v, l, e) = h.with_key(k.as_bytes(), |c| (s.value.get(c), s.list.get(c), s.map.entries(c)));
        let (v, l, e) = (v.expect("get"), l.expect("list"), e.expect("entries"));
        if v.is_some() || !l.is_empty() || !e.is_empty() {
            m.insert(k.clone(), (v.unwrap_or(0), l, e.into_iter().collect()));
        }
    }
    m
}

fn model() -> impl Strategy<Value = Model> {
    proptest::collection::btree_map(
        "k[0-9]{1,3}",
        (
            1u64..1000,
            proptest::collection::vec("[a-z]{0,4}", 0..3),
            proptest::collection::btree_map("[a-c]", -9i64..9, 0..3),
        ),
        1..60,
    )
}

fn backend(rocks: bool) -> BackendKind {
    if rocks {
        BackendKind::Rocksdb
    } else {
        BackendKind::Heap
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn restore_onto_any_shard_count_and_backend(m in model(), n in 1u32..4, to in 1u32..5, from_rocks in any::<bool>(), to_rocks in any::<bool>()) {
        let g = KEY_GROUPS_DEFAULT;
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = |k: &str, shards: u32| u32::from(shard_of(key_group_of(k.as_bytes(), g), shards, g).0);
        let keys: Vec<String> = m.keys().cloned().collect();
        let mut snapshots = Vec::new();
        for i in 0..n {
            let (mut h, s) = open(backend(from_rocks), &dir.path().join(format!("old-{i}")));
            for (k, (v, l, e)) in m.iter().filter(|(k, _)| owner(k, n) == i) {
                h.with_key(k.as_bytes(), |c| {
                    s.value.set(c, *v)?;
                    s.list.add_all(c, l.clone())?;
                    for (uk, x) in e {
                        s.map.put(c, uk, *x)?;
                    }
                    Ok::<_, engine::StateError>(())
                })
                .expect("write");
            }
            snapshots.push(h.snapshot(range_for_shard(ShardId(i as u16), n, g)).expect("snapshot"));
        }
        let mut union = Model::new();
        for j in 0..to {
            let (mut h, s) = open(backend(to_rocks), &dir.path().join(format!("new-{j}")));
            let range = range_for_shard(ShardId(j as u16), to, g);
            for snap in &snapshots {
                h.restore(snap, range).expect("restore");
            }
            let got = read_all(&mut h, &s, &keys);
            for k in got.keys() {
                prop_assert_eq!(owner(k, to), j, "key {} restored on shard {} of {}", k, j, to);
            }
            union.extend(got);
        }
        prop_assert_eq!(union, m);
    }
}

#[test]
fn restore_refuses_a_state_the_job_does_not_declare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut h, s) = open(BackendKind::Heap, dir.path());
    h.with_key(b"a", |c| s.value.set(c, 1)).expect("set");
    let all = range_for_shard(ShardId(0), 1, KEY_GROUPS_DEFAULT);
    let snap = h.snapshot(all).expect("snapshot");
    let mut reg = StateRegistry::new();
    let _only: ValueState<u64> = reg.value("other", None).expect("declare");
    let mut other = StateHarness::open(BackendKind::Heap, reg, None, 0, ManualClock::new(0) as Arc<_>).expect("open");
    let err = other.restore(&snap, all).expect_err("must refuse");
    assert!(err.to_string().contains("\"value\" is in the snapshot but not declared"), "{err}");
}
