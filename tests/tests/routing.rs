//! Routing: every record is processed on the shard that owns its key's key group, for
//! any shard count and key-group count, and every record is processed exactly once.
use std::collections::BTreeMap;

use engine::CollectSink;
use engine::Generator;
use engine::{BackendKind, Context, Error, Job, KeyedProcessFunction, RunConfig};
use formats::keygroup::{key_group_of, range_for_shard, shard_of};
use formats::{KeyGroup, ShardId};
use proptest::prelude::*;

/// Emits, per record, where it was processed.
struct WhereAmI;

impl KeyedProcessFunction for WhereAmI {
    type Key = String;
    type In = String;
    type Out = (String, ShardId, KeyGroup);

    fn process(
        &mut self,
        key: &String,
        _: String,
        ctx: &mut Context<'_>,
        out: &mut Vec<Self::Out>,
    ) -> Result<(), Error> {
        out.push((key.clone(), ctx.shard(), ctx.key_group()));
        Ok(())
    }
}

fn run(shards: u32, key_groups: u32, records: u64, keys: u64) -> Vec<(String, ShardId, KeyGroup)> {
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(shards, BackendKind::Heap, std::env::temp_dir());
    cfg.max_key_groups = key_groups;
    cfg.pin = false;
    cfg.batch_records = 7; // small batches: many channel messages, partial flushes
    cfg.channel_batches = 2;
    let report = Job::new("routing")
        .source(Generator::new(Some(records), move |seq| format!("key-{}", seq % keys)))
        .key_by(|s: &String| s.clone())
        .process(|_| Ok(WhereAmI))
        .sink(sink)
        .run(&cfg)
        .expect("job runs");
    assert_eq!(report.records_processed, records);
    let v = out.lock().expect("lock").clone();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_key_on_its_owner(shards in 1u32..=5, extra_groups in 0u32..300, records in 1u64..3000, keys in 1u64..500) {
        let key_groups = shards + extra_groups;
        let out = run(shards, key_groups, records, keys);
        prop_assert_eq!(out.len() as u64, records, "each record processed exactly once");
        let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
        for (key, shard, kg) in &out {
            let want_kg = key_group_of(key.as_bytes(), key_groups);
            prop_assert_eq!(*kg, want_kg);
            prop_assert_eq!(*shard, shard_of(want_kg, shards, key_groups));
            prop_assert!(range_for_shard(*shard, shards, key_groups).contains(*kg));
            *per_key.entry(key.clone()).or_default() += 1;
        }
        for k in 0..keys.min(records) {
            let expected = records / keys + u64::from(k < records % keys);
            prop_assert_eq!(per_key.get(&format!("key-{k}")).copied().unwrap_or(0), expected);
        }
    }
}
