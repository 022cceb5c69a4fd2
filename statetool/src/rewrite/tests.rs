//! Property test of the rewrite against a model: a random keyed state (a value state, a
//! TTL list state and a TTL map state over random keys) written as a checkpoint of
//! random shards, rewritten by a random plan (shards, key groups, form, a state dropped
//! or renamed, expired entries purged), must read back as exactly what the model makes
//! of the input: every surviving entry under its output state, in the key group its key
//! hashes to under the new count, in the shard that owns that key group, with its
//! expired list elements gone. Covers both paths (streamed and sorted) and all forms.
use std::collections::BTreeSet;
use std::path::Path;

use formats::checkpoint::{publish, Payload};
use formats::fs::StdFs;
use formats::id::CheckpointId;
use formats::keygroup::{key_group_of, range_for_shard, KeyGroup, ShardId};
use formats::manifest::{FileRef, Manifest, ShardFormat, ShardSnapshot};
use formats::snapshot::SnapshotWriter;
use formats::statekey;
use formats::ttl::{self, TtlConfig, TtlUpdate};
use formats::value::{put_list_element, StateDescriptor, StateKind, ValueEncoding};
use proptest::prelude::*;

use super::plan::{Form, Request};
use crate::verbs::target;

const TTL: Option<TtlConfig> = Some(TtlConfig { ttl_ms: 1, update: TtlUpdate::OnCreateAndWrite });

fn states() -> Vec<StateDescriptor> {
    let d = |name: &str, kind, ttl| StateDescriptor {
        name: name.into(),
        kind,
        value: ValueEncoding::U64,
        user_key: (kind == StateKind::Map).then_some(ValueEncoding::U64),
        ttl,
    };
    vec![d("v", StateKind::Value, None), d("l", StateKind::List, TTL), d("m", StateKind::Map, TTL)]
}

/// One input entry: (state index, key, user key (map), value bytes as stored).
type Entry = (usize, Vec<u8>, Vec<u8>, Vec<u8>);

/// Stored value of `expiries` for state `s`: a plain u64, a list of TTL'd elements, a
/// TTL'd map value.
fn stored(s: usize, expiries: &[u64]) -> Vec<u8> {
    let ttl_value = |e: u64| {
        let mut b = Vec::new();
        ttl::put_header(&mut b, e);
        b.extend_from_slice(&e.to_le_bytes());
        b
    };
    match s {
        0 => expiries.first().copied().unwrap_or(0).to_le_bytes().to_vec(),
        1 => {
            let mut b = Vec::new();
            for e in expiries {
                put_list_element(&mut b, &ttl_value(*e));
            }
            b
        }
        _ => ttl_value(expiries.first().copied().unwrap_or(0)),
    }
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let one = (0usize..3, 0u16..60, 0u8..3, prop::collection::vec(0u64..10, 1..4));
    prop::collection::vec(one, 1..60).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter_map(|(s, k, uk, exp)| {
                let uk = if s == 2 { vec![uk] } else { Vec::new() };
                seen.insert((s, k, uk.clone())).then(|| (s, k.to_be_bytes().to_vec(), uk, stored(s, &exp)))
            })
            .collect()
    })
}

/// Writes `entries` as checkpoint 4 of a heap job under `root`, on `shards` shards of
/// `g` key groups.
fn write_input(root: &Path, entries: &[Entry], shards: u32, g: u32) {
    let st = states();
    let mut shard_snaps = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..shards {
        let range = range_for_shard(ShardId(i as u16), shards, g);
        let mut rows: Vec<(usize, u16, Vec<u8>, &[u8])> = entries
            .iter()
            .filter_map(|(s, k, uk, v)| {
                let kg = key_group_of(k, g);
                range.contains(kg).then(|| {
                    let mut key = Vec::new();
                    statekey::encode_prefix(&mut key, kg, k, b"");
                    key.extend_from_slice(uk);
                    (*s, kg.0, key, v.as_slice())
                })
            })
            .collect();
        rows.sort();
        let mut w = SnapshotWriter::new(st.clone(), range);
        for (s, kg, key, v) in rows {
            w.add(s as u32, KeyGroup(kg), &key, v).expect("add");
        }
        let bytes = w.finish().expect("finish");
        let path = formats::layout::snapshot_file_path(CheckpointId(4), i as u16);
        shard_snaps.push(ShardSnapshot {
            shard: i as u16,
            range,
            format: ShardFormat::Snapshot,
            files: vec![FileRef::of(&path, &bytes)],
            source_position: serde_json::Value::Null,
            operator_state: Vec::new(),
        });
        payloads.push(Payload { path, bytes });
    }
    let m = Manifest {
        job: "p".into(),
        checkpoint: CheckpointId(4),
        parent: None,
        created_ms: 0,
        max_key_groups: g,
        backend: "heap".into(),
        key: None,
        states: st,
        shards: shard_snaps,
    };
    std::fs::create_dir_all(root).expect("root");
    publish(&mut StdFs, root, &m, &payloads).expect("publish");
}

/// What the output must hold: (state name, state key, value).
fn model(entries: &[Entry], req: &Request, g: u32) -> BTreeSet<(String, Vec<u8>, Vec<u8>)> {
    let st = states();
    let mut out = BTreeSet::new();
    for (s, k, uk, v) in entries {
        let d = &st[*s];
        if req.drops.contains(&d.name) {
            continue;
        }
        let name = req.renames.iter().find_map(|r| r.strip_prefix(&format!("{}=", d.name))).unwrap_or(&d.name);
        let value = match (req.purge_at, *s) {
            (Some(now), 1) => {
                let mut kept = Vec::new();
                for e in formats::value::list_elements(v) {
                    let e = e.expect("element");
                    if ttl::split(e).expect("ttl").0 > now {
                        put_list_element(&mut kept, e);
                    }
                }
                if kept.is_empty() {
                    continue;
                }
                kept
            }
            (Some(now), 2) if ttl::split(v).expect("ttl").0 <= now => continue,
            _ => v.clone(),
        };
        let mut key = Vec::new();
        statekey::encode_prefix(&mut key, key_group_of(k, req.key_groups.unwrap_or(g)), k, b"");
        key.extend_from_slice(uk);
        out.insert((name.to_owned(), key, value));
    }
    out
}

fn plan() -> impl Strategy<Value = Request> {
    (
        prop::option::of(1u32..5),
        prop::option::of(prop::sample::select(vec![8u32, 16, 32])),
        prop::sample::select(vec![Form::Checkpoint, Form::Native, Form::Canonical]),
        0u8..3,
        prop::option::of(0u64..10),
    )
        .prop_map(|(shards, key_groups, form, change, purge_at)| Request {
            shards,
            key_groups,
            form: Some(form),
            renames: if change == 1 { vec!["l=list".into()] } else { Vec::new() },
            drops: if change == 2 { vec!["m".into()] } else { Vec::new() },
            purge_at,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_rewrite_holds_exactly_what_the_model_makes_of_its_input(
        input in entries(), in_shards in 1u32..4, req in plan(),
    ) {
        let g = 16;
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("in");
        write_input(&root, &input, in_shards, g);
        let loaded = target::resolve(&root).expect("resolve").newest_intact().expect("load");
        let p = req.plan(&loaded.manifest, Form::Canonical).expect("plan");
        let out = dir.path().join("out");
        super::run(&loaded, &p, &out).expect("rewrite");
        let got_target = target::resolve(&out).expect("resolve out").newest_intact().expect("load out");
        let m = &got_target.manifest;
        prop_assert_eq!(m.shards.len() as u32, req.shards.unwrap_or(in_shards));
        let mut got = BTreeSet::new();
        for sh in &m.shards {
            let mut one = m.clone();
            one.shards = vec![sh.clone()];
            let range = sh.range;
            let scratch = tempfile::tempdir().expect("scratch");
            reader::for_each(&mut StdFs, &got_target.base, &one, reader::ALL_KEY_GROUPS, Some(&scratch.path().join("i")), &mut |d, k, v| {
                let kg = statekey::decode(k)?.key_group;
                assert!(range.contains(kg), "key group {} in shard {} of range {:?}", kg.0, sh.shard, range);
                got.insert((d.name.clone(), k.to_vec(), v.to_vec()));
                Ok(())
            }).expect("read output");
        }
        prop_assert_eq!(got, model(&input, &req, g));
    }
}
