//! Timers against a model (a sorted set), on both backends: random register, delete and
//! fire sequences in both domains, with `on_timer` registering and deleting timers of
//! its own key (some already due, so they fire in the same pass).
//!
//! Invariants checked after every firing pass: the pass fires exactly the model's timers
//! (at most one per (key, namespace, time) and domain, deleted ones never), in time
//! order; and the timers stored afterwards are exactly the model's.
use std::collections::BTreeSet;
use std::sync::Arc;

use engine::{BackendKind, Context, Error, ManualClock, StateHarness, StateRegistry, TimeDomain, TimerService};
use formats::timerkey;
use proptest::prelude::*;

/// (domain, time, key, namespace): the model's order is the firing order (up to ties).
type Timer = (TimeDomain, i64, String, Vec<u8>);

#[derive(Debug, Clone)]
enum Op {
    Register { key: u8, ns: bool, domain: TimeDomain, ts: i64 },
    Delete { key: u8, ns: bool, domain: TimeDomain, ts: i64 },
    Fire { domain: TimeDomain, until: i64 },
}

fn domain() -> impl Strategy<Value = TimeDomain> {
    prop_oneof![Just(TimeDomain::EventTime), Just(TimeDomain::ProcessingTime)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<bool>(), domain(), -20i64..60).prop_map(|(key, ns, domain, ts)| Op::Register { key, ns, domain, ts }),
        2 => (0u8..6, any::<bool>(), domain(), -20i64..60).prop_map(|(key, ns, domain, ts)| Op::Delete { key, ns, domain, ts }),
        1 => (domain(), -25i64..80).prop_map(|(domain, until)| Op::Fire { domain, until }),
    ]
}

fn key(k: u8) -> String {
    format!("k{k}")
}

fn namespace(ns: bool) -> Vec<u8> {
    if ns {
        b"w".to_vec()
    } else {
        Vec::new()
    }
}

/// What `on_timer` does for a timer at `ts` of `key`: only with timers of its own key and
/// namespace at later times, so the outcome does not depend on the order of ties.
/// `Some((true, t))` registers `t`, `Some((false, t))` deletes it.
fn reaction(key: &str, ts: i64) -> Option<(bool, i64)> {
    let h = key.bytes().fold(ts.rem_euclid(97) as u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    match h % 5 {
        0 | 1 => Some((true, ts + 1 + (h / 5 % 4) as i64)),
        2 => Some((false, ts + 1 + (h / 5 % 3) as i64)),
        3 => Some((true, ts + 50)),
        _ => None,
    }
}

fn model_fire(model: &mut BTreeSet<Timer>, domain: TimeDomain, until: i64) -> Vec<(i64, String, Vec<u8>)> {
    let mut fired = Vec::new();
    loop {
        let next = model.iter().find(|t| t.0 == domain && t.1 <= until).cloned();
        let Some(t) = next else { break };
        model.remove(&t);
        let (_, ts, k, ns) = t;
        if let Some((register, at)) = reaction(&k, ts) {
            let other = (domain, at, k.clone(), ns.clone());
            if register {
                model.insert(other);
            } else {
                model.remove(&other);
            }
        }
        fired.push((ts, k, ns));
    }
    fired
}

fn stored(h: &mut StateHarness) -> BTreeSet<Timer> {
    h.stored(0)
        .expect("stored")
        .iter()
        .map(|(k, v)| {
            assert!(v.is_empty(), "a timer's value is empty");
            let t = timerkey::decode(k).expect("a timer key");
            (t.domain, t.timestamp, String::from_utf8(t.key.to_vec()).expect("utf8"), t.namespace.to_vec())
        })
        .collect()
}

fn run(kind: BackendKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut reg = StateRegistry::new();
    let timers: TimerService = reg.timers().expect("timers");
    let mut h = StateHarness::open(kind, reg, Some(dir.path()), 16, ManualClock::new(0) as Arc<_>).expect("open");
    let mut model = BTreeSet::new();
    for op in ops {
        match op.clone() {
            Op::Register { key: k, ns, domain, ts } => {
                let (k, ns) = (key(k), namespace(ns));
                h.with_key(k.as_bytes(), |c| timers.register(c, domain, ts, &ns)).expect("register");
                model.insert((domain, ts, k, ns));
            }
            Op::Delete { key: k, ns, domain, ts } => {
                let (k, ns) = (key(k), namespace(ns));
                h.with_key(k.as_bytes(), |c| timers.delete(c, domain, ts, &ns)).expect("delete");
                model.remove(&(domain, ts, k, ns));
            }
            Op::Fire { domain, until } => {
                let mut fired = Vec::new();
                let mut on_timer = |k: &[u8], ts: i64, c: &mut Context<'_>| -> Result<(), Error> {
                    let k = String::from_utf8(k.to_vec()).expect("utf8");
                    assert_eq!(c.timestamp(), Some(ts), "on_timer sees the timer's time");
                    let ns = c.timer_namespace().to_vec();
                    match reaction(&k, ts) {
                        Some((true, at)) => timers.register(c, domain, at, &ns)?,
                        Some((false, at)) => timers.delete(c, domain, at, &ns)?,
                        None => {}
                    }
                    fired.push((ts, k, ns));
                    Ok(())
                };
                let n = h.fire_timers(domain, until, &mut on_timer).expect("fire");
                prop_assert_eq!(n as usize, fired.len());
                prop_assert!(fired.windows(2).all(|w| w[0].0 <= w[1].0), "fired in time order: {:?}", fired);
                let mut want = model_fire(&mut model, domain, until);
                want.sort();
                fired.sort();
                prop_assert_eq!(fired, want, "{:?} fired up to {}", domain, until);
                prop_assert_eq!(stored(&mut h), model.clone(), "stored timers after the pass");
            }
        }
    }
    prop_assert_eq!(stored(&mut h), model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn heap_timers_match_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(BackendKind::Heap, &ops)?;
    }

    #[test]
    fn rocksdb_timers_match_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(BackendKind::Rocksdb, &ops)?;
    }
}
