//! TTL cleanup never changes what a job sees: for every state kind with a TTL and both
//! update types, on the heap (incremental and full-snapshot cleanup) and RocksDB (the
//! compaction filter, full snapshots), random operations under a manual clock are run
//! twice, with every cleanup strategy on and with none.
//!
//! Invariants checked after every operation: each read returns exactly what the twin
//! without cleanup returns; the live (unexpired at the clock's now) stored entries and
//! list elements of every state are exactly the twin's, so cleanup never removed or
//! changed an entry that had not expired; after an idle tick (heap) or a full
//! compaction (RocksDB) no expired entry or list element is stored at all.
use engine::{AggregateFunction, AggregatingState, ListState, MapState, ReducingState, ValueState};
use engine::{BackendKind, ManualClock, StateHarness, StateRegistry, TtlCleanup};
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::{purge_expired, Purged, StateDescriptor, StateKind, ValueEncoding};
use proptest::prelude::*;

const TTL_MS: u64 = 100;
const KEYS: u8 = 4;

struct Sum;
impl AggregateFunction for Sum {
    type In = i64;
    type Acc = i64;
    type Out = i64;
    fn create(&self) -> i64 {
        0
    }
    fn add(&self, v: i64, acc: i64) -> i64 {
        acc + v
    }
    fn result(&self, acc: &i64) -> i64 {
        *acc
    }
}

struct States {
    value_cw: ValueState<i64>,
    value_rw: ValueState<i64>,
    list_cw: ListState<i64>,
    list_rw: ListState<i64>,
    map_cw: MapState<u64, i64>,
    map_rw: MapState<u64, i64>,
    reducing: ReducingState<i64>,
    aggregating: AggregatingState<Sum>,
}

/// The states in declaration order, with their kind and update type.
const KINDS: [(&str, StateKind, TtlUpdate); 8] = [
    ("value_cw", StateKind::Value, TtlUpdate::OnCreateAndWrite),
    ("value_rw", StateKind::Value, TtlUpdate::OnReadAndWrite),
    ("list_cw", StateKind::List, TtlUpdate::OnCreateAndWrite),
    ("list_rw", StateKind::List, TtlUpdate::OnReadAndWrite),
    ("map_cw", StateKind::Map, TtlUpdate::OnCreateAndWrite),
    ("map_rw", StateKind::Map, TtlUpdate::OnReadAndWrite),
    ("reducing", StateKind::Reducing, TtlUpdate::OnReadAndWrite),
    ("aggregating", StateKind::Aggregating, TtlUpdate::OnCreateAndWrite),
];

fn ttl(update: TtlUpdate) -> Option<TtlConfig> {
    Some(TtlConfig { ttl_ms: TTL_MS, update })
}

fn declare(reg: &mut StateRegistry, cleanup: TtlCleanup) -> States {
    let t = |i: usize| ttl(KINDS[i].2);
    let s = States {
        value_cw: reg.value("value_cw", t(0)).expect("declare"),
        value_rw: reg.value("value_rw", t(1)).expect("declare"),
        list_cw: reg.list("list_cw", t(2)).expect("declare"),
        list_rw: reg.list("list_rw", t(3)).expect("declare"),
        map_cw: reg.map("map_cw", t(4)).expect("declare"),
        map_rw: reg.map("map_rw", t(5)).expect("declare"),
        reducing: reg.reducing("reducing", |a, b| a + b, t(6)).expect("declare"),
        aggregating: reg.aggregating("aggregating", Sum, t(7)).expect("declare"),
    };
    for (name, _, _) in KINDS {
        reg.set_ttl_cleanup(name, cleanup).expect("cleanup");
    }
    s
}

#[derive(Debug, Clone)]
enum Op {
    /// Write (set, add, put) state `s` of key `k`.
    Write(usize, u8, u64, i64),
    /// Read state `s` of key `k` (a map: entry `u`, or all entries when `u` is 9).
    Read(usize, u8, u64),
    Advance(u64),
    /// Incremental cleanup after this many records.
    AfterRecords(usize),
    IdleTick,
    Snapshot,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..KINDS.len();
    let k = 0..KEYS;
    let u = prop::sample::select(vec![0u64, 1, 2, 9]);
    prop_oneof![
        4 => (s.clone(), k.clone(), u.clone(), -9i64..9).prop_map(|(s, k, u, v)| Op::Write(s, k, u % 9, v)),
        4 => (s, k, u).prop_map(|(s, k, u)| Op::Read(s, k, u)),
        // Steps that land exactly on, just before and just after an expiry.
        3 => prop::sample::select(vec![1u64, 30, 49, 50, 51, 99, 100, 101]).prop_map(Op::Advance),
        2 => (1usize..4).prop_map(Op::AfterRecords),
        1 => Just(Op::IdleTick),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Compact),
    ]
}

/// What one operation returned, for comparing the twins.
#[derive(Debug, PartialEq)]
enum Seen {
    None,
    One(Option<i64>),
    Many(Vec<i64>),
    Entries(Vec<(u64, i64)>),
}

fn apply(h: &mut StateHarness, s: &States, op: &Op) -> Seen {
    let key = |k: u8| format!("key-{k}").into_bytes();
    match *op {
        Op::Write(i, k, u, v) => {
            h.with_key(&key(k), |c| match i {
                0 => s.value_cw.set(c, v),
                1 => s.value_rw.set(c, v),
                2 => s.list_cw.add(c, v),
                3 => s.list_rw.add(c, v),
                4 => s.map_cw.put(c, &u, v),
                5 => s.map_rw.put(c, &u, v),
                6 => s.reducing.add(c, v),
                _ => s.aggregating.add(c, v),
            })
            .expect("write");
            Seen::None
        }
        Op::Read(i, k, u) => h
            .with_key(&key(k), |c| {
                Ok::<_, engine::StateError>(match i {
                    0 => Seen::One(s.value_cw.get(c)?),
                    1 => Seen::One(s.value_rw.get(c)?),
                    2 => Seen::Many(s.list_cw.get(c)?),
                    3 => Seen::Many(s.list_rw.get(c)?),
                    4 if u == 9 => Seen::Entries(s.map_cw.entries(c)?),
                    4 => Seen::One(s.map_cw.get(c, &u)?),
                    5 if u == 9 => Seen::Entries(s.map_rw.entries(c)?),
                    5 => Seen::One(s.map_rw.get(c, &u)?),
                    6 => Seen::One(s.reducing.get(c)?),
                    _ => Seen::One(s.aggregating.get(c)?),
                })
            })
            .expect("read"),
        Op::Advance(_) => Seen::None,
        Op::AfterRecords(n) => {
            h.cleanup_after_records(n).expect("cleanup");
            Seen::None
        }
        Op::IdleTick => {
            h.cleanup_idle_tick().expect("idle tick");
            Seen::None
        }
        Op::Snapshot => {
            h.snapshot(formats::KeyGroupRange { start: 0, end: formats::keygroup::KEY_GROUPS_DEFAULT as u16 })
                .expect("snapshot");
            Seen::None
        }
        Op::Compact => {
            // RocksDB passes no merge operand to a filter: a list appended to since its
            // last merge is merged by the first compaction and filtered by the second.
            h.compact().expect("compact");
            h.compact().expect("compact");
            Seen::None
        }
    }
}

fn descriptor(i: usize) -> StateDescriptor {
    let (name, kind, update) = KINDS[i];
    StateDescriptor {
        name: name.into(),
        kind,
        value: ValueEncoding::I64,
        user_key: (kind == StateKind::Map).then_some(ValueEncoding::U64),
        ttl: ttl(update),
    }
}

/// The live part of stored entries at `now`: expired entries and list elements dropped.
fn live(i: usize, stored: Vec<(Vec<u8>, Vec<u8>)>, now: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let d = descriptor(i);
    stored
        .into_iter()
        .filter_map(|(k, v)| match purge_expired(&d, &v, now).expect("well-formed") {
            Purged::Keep => Some((k, v)),
            Purged::Drop => None,
            Purged::Rewritten(kept) => Some((k, kept)),
        })
        .collect()
}

fn run(kind: BackendKind, ops: &[Op], plant_late_sweep: bool) -> Result<(), TestCaseError> {
    let start = 1_000_000;
    let clock = ManualClock::new(start);
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let open = |cleanup, dir: &std::path::Path| {
        let mut reg = StateRegistry::new();
        let s = declare(&mut reg, cleanup);
        (StateHarness::open(kind, reg, Some(dir), 2, clock.clone()).expect("open"), s)
    };
    let (mut cleaned, sc) = open(TtlCleanup::default(), dir_a.path());
    let (mut twin, st) = open(TtlCleanup::none(), dir_b.path());
    let mut now = start;
    for (n, op) in ops.iter().enumerate() {
        if let Op::Advance(ms) = op {
            now += ms;
            clock.set_ms(now);
        }
        // A planted bug: cleanup that runs a moment late removes what expires then.
        if plant_late_sweep && matches!(op, Op::IdleTick) {
            clock.set_ms(now + 1);
        }
        let got = apply(&mut cleaned, &sc, op);
        clock.set_ms(now);
        let want = apply(&mut twin, &st, op);
        prop_assert_eq!(&got, &want, "op {}: {:?} on {}", n, op, kind);
        for (i, (name, _, _)) in KINDS.iter().enumerate() {
            let (c, t) = (cleaned.stored(i as u32).expect("stored"), twin.stored(i as u32).expect("stored"));
            let (live_c, live_t) = (live(i, c.clone(), now), live(i, t, now));
            prop_assert_eq!(&live_c, &live_t, "op {}: {:?}: state {} on {}", n, op, name, kind);
            let swept = match kind {
                BackendKind::Heap => matches!(op, Op::IdleTick | Op::Snapshot),
                BackendKind::Rocksdb => matches!(op, Op::Compact | Op::Snapshot),
            };
            if swept {
                prop_assert_eq!(&c, &live_c, "op {}: {:?} left expired entries in {} on {}", n, op, name, kind);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn heap_cleanup_removes_only_the_expired(ops in prop::collection::vec(op(), 1..80)) {
        run(BackendKind::Heap, &ops, false)?;
    }

    #[test]
    fn rocksdb_cleanup_removes_only_the_expired(ops in prop::collection::vec(op(), 1..60)) {
        run(BackendKind::Rocksdb, &ops, false)?;
    }
}

/// The harness has teeth: a sweep that runs 1 ms late (it removes entries that expire
/// one millisecond after now) is caught.
#[test]
fn a_sweep_one_millisecond_late_is_caught() {
    let ops = [Op::Write(0, 0, 0, 7), Op::Advance(99), Op::IdleTick, Op::Read(0, 0, 0)];
    let r = run(BackendKind::Heap, &ops, true);
    assert!(r.is_err(), "a late sweep went unnoticed");
    assert!(run(BackendKind::Heap, &ops, false).is_ok());
}

/// Incremental cleanup walks the whole table in bounded steps: `cleanup_size` entries per
/// record removes every expired entry of a table of n entries within n / cleanup_size
/// records, and no step checks more than `cleanup_size` per record.
#[test]
fn incremental_cleanup_is_bounded_and_complete() {
    let clock = ManualClock::new(1_000);
    let mut reg = StateRegistry::new();
    let seen: ValueState<bool> = reg.value("seen", ttl(TtlUpdate::OnCreateAndWrite)).expect("declare");
    reg.set_ttl_cleanup("seen", TtlCleanup::none().cleanup_incrementally(5, true)).expect("cleanup");
    let mut h = StateHarness::open(BackendKind::Heap, reg, None, 0, clock.clone()).expect("open");
    for k in 0..1000u32 {
        h.with_key(&k.to_le_bytes(), |c| seen.set(c, true)).expect("set");
    }
    clock.advance_ms(TTL_MS);
    for step in 1..=200 {
        h.cleanup_after_records(1).expect("cleanup");
        assert_eq!(h.expired_removed(), vec![5 * step], "5 entries checked per record, all expired");
    }
    assert_eq!(h.stored(0).expect("stored").len(), 0, "1000 entries / 5 per record = 200 records");
}
