//! Operator (non-keyed) state through the runtime: a function keeps per-shard tallies in
//! list state and a marker per shard in union state; the job's final checkpoint, taken on
//! 3 shards, is restored onto 1-5 shards and each shard reports what it got back.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{
    BackendKind, CheckpointConfig, CollectSink, Context, Error, Generator, Job, KeyedProcessFunction, OperatorStates,
    Restore, RunConfig, ValueState,
};

const RECORDS: u64 = 30_000;

/// Counts records per shard; its operator state is `tally` (list: one item per count
/// this shard carries, as restored plus its own) and `shards` (union: one marker per
/// shard of the run that wrote it).
struct Tally {
    /// Counts restored (list items) and counted in this run.
    tallies: Vec<u64>,
    mine: u64,
    markers: usize,
    shard_marker: Arc<Mutex<u64>>,
    _unused: ValueState<u64>,
}

impl KeyedProcessFunction for Tally {
    type Key = u64;
    type In = u64;
    type Out = (Vec<u64>, usize);

    fn process(&mut self, _: &u64, _: u64, _: &mut Context<'_>, _: &mut Vec<Self::Out>) -> Result<(), Error> {
        self.mine += 1;
        Ok(())
    }

    fn initialize_state(&mut self, restored: &OperatorStates) -> Result<(), Error> {
        self.tallies = restored.items("tally").iter().map(|b| u64::from_le_bytes(b[..8].try_into().unwrap())).collect();
        self.markers = restored.items("shards").len();
        Ok(())
    }

    fn snapshot_state(&mut self, _: u64, store: &mut OperatorStates) -> Result<(), Error> {
        let mut items: Vec<Vec<u8>> = self.tallies.iter().map(|t| t.to_le_bytes().to_vec()).collect();
        items.push(self.mine.to_le_bytes().to_vec());
        *store.list("tally") = items;
        let mut m = self.shard_marker.lock().unwrap();
        *m += 1;
        store.union("shards").push(m.to_le_bytes().to_vec());
        Ok(())
    }

    fn end_of_input(&mut self, _: &mut Context<'_>, out: &mut Vec<Self::Out>) -> Result<(), Error> {
        out.push((self.tallies.clone(), self.markers));
        Ok(())
    }
}

/// Runs on `shards` shards, checkpointing into `dir/<ck>`.
fn run(dir: &std::path::Path, ck: &str, shards: u32, restore: Option<Restore>, records: u64) -> Vec<(Vec<u64>, usize)> {
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(shards, BackendKind::Heap, dir.join(format!("data-{shards}")));
    cfg.pin = false;
    cfg.checkpoint = Some(CheckpointConfig::new(dir.join(ck), Duration::from_secs(3600)));
    cfg.restore = restore.map(Arc::new);
    let marker = Arc::new(Mutex::new(0));
    Job::new("opstate")
        .source(Generator::new(Some(records), |s| s))
        .key_by(|s: &u64| s % 100)
        .process(move |reg| {
            Ok(Tally {
                tallies: Vec::new(),
                mine: 0,
                markers: 0,
                shard_marker: marker.clone(),
                _unused: reg.value("v", None)?,
            })
        })
        .sink(sink)
        .run(&cfg)
        .expect("job");
    let got = out.lock().unwrap().clone();
    got
}

#[test]
fn list_state_is_dealt_once_and_union_state_reaches_every_shard_on_1_to_5_shards() {
    // Pins: restored onto 1-5 shards, the 3 old shards' list items (their record counts)
    // are dealt as the model says (contiguous runs, sizes differing by at most one, each
    // item once, summing to every record) and every new shard gets all 3 union items.
    // Planted (union dealt like list, or list given whole to every shard): fails.
    let dir = tempfile::tempdir().expect("tempdir");
    run(dir.path(), "ck", 3, None, RECORDS);
    let root = dir.path().join("ck").join("opstate");
    for m in 1..=5u32 {
        let restore = Restore::latest(&root).expect("root").expect("a final checkpoint");
        // Each restored run checkpoints elsewhere: every one restores the 3-shard run.
        let got = run(dir.path(), &format!("ck-{m}"), m, Some(restore), RECORDS);
        assert_eq!(got.len(), m as usize, "one report per shard on {m}");
        let sizes: Vec<usize> = {
            let mut s: Vec<usize> = got.iter().map(|(t, _)| t.len()).collect();
            s.sort_unstable_by(|a, b| b.cmp(a));
            s
        };
        let model: Vec<usize> = (0..m as usize).map(|i| 3 / m as usize + usize::from(i < 3 % m as usize)).collect();
        assert_eq!(sizes, model, "list items per shard on {m}");
        let total: u64 = got.iter().flat_map(|(t, _)| t.iter()).sum();
        assert_eq!(total, RECORDS, "every old shard's count once on {m}");
        assert!(got.iter().all(|(_, markers)| *markers == 3), "union items on {m}: {got:?}");
    }
}
