//! Pins: encode then decode is the identity for the metadata types that had no property
//! test of their own: the checkpoint manifest (§9, invariants 9.1–9.6 hold by
//! construction) and the savepoint metadata (§13, 13.1–13.3), over generated shard
//! counts, key-group counts, state descriptors, file lists and source positions; and a
//! manifest valid for one location is refused at the other.
use formats::keygroup::range_for_shard;
use formats::layout;
use formats::manifest::{CheckpointId, FileRef, Location, Manifest, ShardFormat, ShardSnapshot};
use formats::savepoint::{Form, SavepointMeta};
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::{StateDescriptor, StateKind, ValueEncoding};
use formats::ShardId;
use proptest::prelude::*;

fn encoding() -> impl Strategy<Value = ValueEncoding> {
    prop_oneof![
        Just(ValueEncoding::I64),
        Just(ValueEncoding::U64),
        Just(ValueEncoding::F64),
        Just(ValueEncoding::Bool),
        Just(ValueEncoding::Unit),
        Just(ValueEncoding::Utf8),
        Just(ValueEncoding::Bytes),
        Just(ValueEncoding::MsgPack),
        Just(ValueEncoding::Decimal),
    ]
}

fn descriptor(i: usize) -> impl Strategy<Value = StateDescriptor> {
    let kind = prop_oneof![
        Just(StateKind::Value),
        Just(StateKind::List),
        Just(StateKind::Map),
        Just(StateKind::Reducing),
        Just(StateKind::Aggregating),
    ];
    let ttl = proptest::option::of((any::<u64>(), any::<bool>()).prop_map(|(ttl_ms, rw)| TtlConfig {
        ttl_ms,
        update: if rw { TtlUpdate::OnReadAndWrite } else { TtlUpdate::OnCreateAndWrite },
    }));
    (kind, encoding(), encoding(), ttl, "[a-z_]{0,12}").prop_map(move |(kind, value, uk, ttl, name)| StateDescriptor {
        name: format!("{name}{i}"),
        kind,
        value,
        user_key: (kind == StateKind::Map).then_some(uk),
        ttl,
    })
}

/// Per shard: rocksdb (with this many SSTs) or snapshot, a file size and crc, a position.
type ShardSpec = (Option<u8>, u64, u32, Option<u64>);

fn shard_spec() -> impl Strategy<Value = ShardSpec> {
    (proptest::option::of(0u8..4), any::<u64>(), any::<u32>(), proptest::option::of(any::<u64>()))
}

/// A manifest for `location` (checkpoint paths or savepoint paths), valid by construction.
fn manifest(location: Location) -> impl Strategy<Value = Manifest> {
    let states = (0usize..4).prop_flat_map(|n| (0..n).map(descriptor).collect::<Vec<_>>());
    (1u32..6, any::<u16>(), any::<u64>(), any::<u64>(), states, proptest::collection::vec(shard_spec(), 1..5)).prop_map(
        move |(extra_g, id, parent_gap, created_ms, states, specs)| {
            let n = specs.len() as u32;
            let g = n * extra_g;
            let id = u64::from(id) + 1;
            let shards = specs
                .into_iter()
                .enumerate()
                .map(|(i, (ssts, size, crc32, pos))| {
                    let shard = i as u16;
                    let mut files = Vec::new();
                    let format = match ssts {
                        None => {
                            let path = match location {
                                Location::Checkpoint => layout::snapshot_file_path(CheckpointId(id), shard),
                                Location::Savepoint => layout::savepoint_snapshot_path(shard),
                            };
                            files.push(FileRef { path, size, crc32, local: None });
                            ShardFormat::Snapshot
                        }
                        Some(k) => {
                            for j in 0..=k {
                                let local = format!("{:06}.sst", u32::from(j) + 8);
                                let (path, local) = match location {
                                    Location::Checkpoint => (
                                        layout::shared_file_path(&layout::shared_file_name(
                                            u128::from(size) << 8 | u128::from(j) << 4 | u128::from(shard),
                                            &local,
                                        )),
                                        Some(local),
                                    ),
                                    Location::Savepoint => (layout::savepoint_owned_path(shard, &local), None),
                                };
                                files.push(FileRef { path, size: size ^ u64::from(j), crc32, local });
                            }
                            let path = match location {
                                Location::Checkpoint => layout::owned_file_path(CheckpointId(id), shard, "CURRENT"),
                                Location::Savepoint => layout::savepoint_owned_path(shard, "CURRENT"),
                            };
                            files.push(FileRef { path, size: 16, crc32, local: None });
                            ShardFormat::Rocksdb
                        }
                    };
                    ShardSnapshot {
                        shard,
                        range: range_for_shard(ShardId(shard), n, g),
                        format,
                        files,
                        source_position: pos
                            .map_or(serde_json::Value::Null, |p| serde_json::json!([{"id": i, "next": p}])),
                        operator_state: Vec::new(),
                    }
                })
                .collect();
            Manifest {
                job: "job-1".into(),
                checkpoint: CheckpointId(id),
                parent: match location {
                    Location::Checkpoint => id.checked_sub(1 + parent_gap % id).map(CheckpointId),
                    Location::Savepoint => None,
                },
                created_ms,
                max_key_groups: g,
                backend: if created_ms % 2 == 0 { "heap" } else { "rocksdb" }.into(),
                key: (created_ms % 3 != 0).then_some(ValueEncoding::Utf8),
                states,
                shards,
            }
        },
    )
}

proptest! {
    /// 9.1–9.6: Manifest::decode(encode(m)) = m, and its paths are refused in a savepoint.
    #[test]
    fn manifest_round_trip(m in manifest(Location::Checkpoint)) {
        let bytes = m.encode().expect("valid by construction");
        prop_assert_eq!(Manifest::decode(&bytes).expect("decode"), m.clone());
        prop_assert!(m.validate_for(Location::Savepoint).is_err());
    }

    /// 13.1–13.3: SavepointMeta::decode(encode(s)) = s for both forms (canonical only when
    /// every shard is a snapshot), and its paths are refused in a checkpoint.
    #[test]
    fn savepoint_meta_round_trip(m in manifest(Location::Savepoint), canonical in any::<bool>()) {
        let all_snapshots = m.shards.iter().all(|s| s.format == ShardFormat::Snapshot);
        let form = if canonical && all_snapshots { Form::Canonical } else { Form::Native };
        let meta = SavepointMeta { form, manifest: m };
        let bytes = meta.encode().expect("valid by construction");
        prop_assert_eq!(SavepointMeta::decode(&bytes).expect("decode"), meta.clone());
        prop_assert!(meta.manifest.validate().is_err());
        prop_assert_eq!(meta.form.to_string().parse::<Form>(), Ok(meta.form));
    }
}
