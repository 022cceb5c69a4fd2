//! `statetool compact --purge-expired` on checkpoints of a real job with TTL state (a
//! value, a list and a map state, both backends): the output holds exactly the input's
//! entries whose expiry is after `--now-ms`, list elements filtered one by one, as
//! `statetool dump` renders both; and a job restores from it.
//!
//! The job runs on one shard with a manual clock set to each record's sequence number,
//! so expiries spread over the input; half the keys get no record after the middle of
//! the input, and "now" is the latest expiry of their values: their state expires
//! whole, the other keys' lists lose their older elements.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engine::{BackendKind, CheckpointConfig, Context, DiscardSink, Error, Generator, Job, KeyedProcessFunction};
use engine::{ListState, ManualClock, MapState, RunConfig, TtlCleanup, ValueState};
use formats::ttl::{TtlConfig, TtlUpdate};
use serde_json::Value;

#[path = "common/statetool.rs"]
mod statetool;
use statetool::statetool;

const RECORDS: u64 = 60_000;
const KEYS: u64 = 400;
/// Expiry is the record's sequence number plus this (the clock reads the sequence).
const TTL_MS: u64 = 20_000;

struct Remember {
    clock: Arc<ManualClock>,
    last: ValueState<u64>,
    seen: ListState<u64>,
    parity: MapState<u64, u64>,
}

impl KeyedProcessFunction for Remember {
    type Key = u64;
    type In = u64;
    type Out = u64;

    fn process(&mut self, _: &u64, seq: u64, ctx: &mut Context<'_>, _: &mut Vec<u64>) -> Result<(), Error> {
        self.clock.set_ms(seq);
        self.last.set(ctx, seq)?;
        self.seen.add(ctx, seq)?;
        self.parity.put(ctx, &(seq % 2), seq)?;
        if seq.is_multiple_of(2_000) {
            // Long enough for several checkpoints to be taken mid-way.
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Runs the job to its end, checkpointing every 5 ms; returns its checkpoint root.
fn run(dir: &Path, backend: BackendKind, from: Option<&Path>) -> PathBuf {
    let clock = ManualClock::new(0);
    let mut cfg = RunConfig::new(1, backend, dir.join("data"));
    cfg.pin = false;
    cfg.clock = clock.clone();
    cfg.checkpoint = Some(CheckpointConfig::new(dir.join("ck"), Duration::from_millis(5)));
    if let Some(f) = from {
        cfg.restore = Some(Arc::new(engine::Restore::load(f).expect("restore loads")));
    }
    let ttl = Some(TtlConfig { ttl_ms: TTL_MS, update: TtlUpdate::OnCreateAndWrite });
    Job::new("ttl")
        .source(Generator::new(Some(RECORDS), |s| s))
        // Half the keys stop in the middle of the input: their state expires first.
        .key_by(|s: &u64| if *s < RECORDS / 2 { s % KEYS } else { s % (KEYS / 2) })
        .process(move |reg| {
            let r = Remember {
                clock: clock.clone(),
                last: reg.value("last", ttl)?,
                seen: reg.list("seen", ttl)?,
                parity: reg.map("parity", ttl)?,
            };
            // The checkpoints must hold expired entries for statetool to purge: the job's
            // own cleanup is off.
            for state in ["last", "seen", "parity"] {
                reg.set_ttl_cleanup(state, TtlCleanup::none())?;
            }
            Ok(r)
        })
        .sink(DiscardSink)
        .run(&cfg)
        .expect("job runs");
    dir.join("ck").join("ttl")
}

fn dump(p: &Path) -> Vec<Value> {
    let out = statetool(&["dump", p.to_str().expect("utf-8")]);
    out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

fn expiry(v: &Value) -> u64 {
    v["expires_ms"].as_u64().expect("expires_ms")
}

/// The model: what purging at `now` leaves of a dumped entry.
fn purged(entry: &Value, now: u64) -> Option<Value> {
    match entry["list"].as_array() {
        Some(items) => {
            let live: Vec<Value> = items.iter().filter(|i| expiry(i) > now).cloned().collect();
            let mut e = entry.clone();
            e["list"] = Value::from(live.clone());
            (!live.is_empty()).then_some(e)
        }
        None => (expiry(entry) > now).then(|| entry.clone()),
    }
}

fn sorted(mut v: Vec<Value>) -> Vec<String> {
    let mut s: Vec<String> = v.drain(..).map(|e| e.to_string()).collect();
    s.sort();
    s
}

#[test]
fn purge_expired_drops_exactly_the_expired_values_and_list_elements() {
    // Pins: compact --purge-expired --now-ms T keeps exactly the values, map entries and
    // list elements expiring after T (lists trimmed element by element, dropped when
    // empty), on both backends, and a job restores from the output.
    for backend in [BackendKind::Rocksdb, BackendKind::Heap] {
        let dir = tempfile::tempdir().expect("tmp");
        let root = run(dir.path(), backend, None);
        let input = dump(&root);
        let now = input
            .iter()
            .filter(|e| e["state"] == "last" && e["key"].as_u64().is_some_and(|k| k >= KEYS / 2))
            .map(expiry)
            .max()
            .expect("keys that stopped early");
        let out = dir.path().join("purged");
        let (root_s, out_s, now_s) = (root.to_str().expect("utf-8"), out.to_str().expect("utf-8"), now.to_string());
        statetool(&["compact", root_s, "--to", out_s, "--purge-expired", "--now-ms", &now_s]);
        let want: Vec<Value> = input.iter().filter_map(|e| purged(e, now)).collect();
        let got = dump(&out);
        assert!(sorted(got) == sorted(want.clone()), "{backend:?}: the purged dump is not the model's");
        let lists = |v: &[Value]| v.iter().filter(|e| e.get("list").is_some()).count();
        let straddling = input
            .iter()
            .filter_map(|e| e["list"].as_array())
            .filter(|l| l.iter().any(|i| expiry(i) <= now) && l.iter().any(|i| expiry(i) > now))
            .count();
        assert!(want.len() < input.len() && !want.is_empty(), "{backend:?}: some entries expire, some live");
        assert!(lists(&want) > 0 && lists(&want) < lists(&input), "{backend:?}: some lists dropped, some kept");
        assert!(straddling > 0, "{backend:?}: some lists are trimmed, not only kept whole or dropped");
        // A job restores from the purged checkpoint and runs to its end.
        let again = tempfile::tempdir().expect("tmp");
        run(again.path(), backend, Some(&out));
    }
}
