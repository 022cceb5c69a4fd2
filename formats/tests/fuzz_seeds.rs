//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`): valid files made with this
//! crate's own writers, so a fuzzer starts past the checksums and magic numbers instead
//! of rediscovering them byte by byte.
//!
//! Pins: every fuzz target has a committed seed corpus, each committed seed is accepted
//! by the parser its target fuzzes (a format change that makes the seeds stale fails
//! here), and the committed seeds are the ones generated below. To regenerate after a
//! format change: `SLUICE_WRITE_SEEDS=1 cargo test -p sluice-formats --test fuzz_seeds`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use formats::envelope::{self, Kind};
use formats::keygroup::{key_group_of, KeyGroupRange};
use formats::layout;
use formats::manifest::{CheckpointId, FileRef, Manifest, ShardFormat, ShardSnapshot};
use formats::savepoint::{Form, SavepointMeta};
use formats::snapshot::{SnapshotReader, SnapshotWriter};
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::{put_list_element, StateDescriptor, StateKind, ValueEncoding};
use formats::{statekey, ttl, varint, KeyGroup};

/// Target name -> (seed file name -> bytes).
type Seeds = BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz").join("corpus")
}

fn desc(name: &str, kind: StateKind, value: ValueEncoding, ttl_ms: Option<u64>) -> StateDescriptor {
    StateDescriptor {
        name: name.into(),
        kind,
        value,
        user_key: (kind == StateKind::Map).then_some(ValueEncoding::Utf8),
        ttl: ttl_ms.map(|ttl_ms| TtlConfig { ttl_ms, update: TtlUpdate::OnCreateAndWrite }),
    }
}

fn state_key(key: &[u8], user_key: &[u8]) -> (KeyGroup, Vec<u8>) {
    let kg = key_group_of(key, 128);
    let mut k = Vec::new();
    statekey::encode_prefix(&mut k, kg, key, b"");
    k.extend_from_slice(user_key);
    (kg, k)
}

fn with_ttl(expiry_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    ttl::put_header(&mut v, expiry_ms);
    v.extend_from_slice(payload);
    v
}

fn framed(elements: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for e in elements {
        put_list_element(&mut v, e);
    }
    v
}

/// The states of the snapshot seeds: a plain value, a TTL'd value, a list and a map.
fn snapshot_states() -> Vec<StateDescriptor> {
    vec![
        desc("count", StateKind::Value, ValueEncoding::I64, None),
        desc("last_seen", StateKind::Value, ValueEncoding::Utf8, Some(60_000)),
        desc("items", StateKind::List, ValueEncoding::U64, None),
        desc("totals", StateKind::Map, ValueEncoding::F64, None),
    ]
}

/// A snapshot of `range` holding every state of [`snapshot_states`] for `keys` keys.
fn snapshot(range: KeyGroupRange, keys: u32) -> Vec<u8> {
    let mut entries: Vec<(u32, u16, Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..keys {
        let key = format!("user-{i}");
        let (kg, k) = state_key(key.as_bytes(), b"");
        if !range.contains(kg) {
            continue;
        }
        entries.push((0, kg.0, k.clone(), i64::from(i).to_le_bytes().to_vec()));
        entries.push((1, kg.0, k.clone(), with_ttl(1_700_000_000_000, key.as_bytes())));
        let (a, b) = (u64::from(i).to_le_bytes(), 7u64.to_le_bytes());
        entries.push((2, kg.0, k, framed(&[&a, &b])));
        for uk in ["a", "b"] {
            let (_, mk) = state_key(key.as_bytes(), uk.as_bytes());
            entries.push((3, kg.0, mk, (f64::from(i) / 2.0).to_le_bytes().to_vec()));
        }
    }
    entries.sort();
    let mut w = SnapshotWriter::new(snapshot_states(), range);
    for (state, kg, k, v) in &entries {
        w.add(*state, KeyGroup(*kg), k, v).expect("entries are sorted");
    }
    w.finish().expect("finish")
}

/// A manifest of checkpoint 3: shard 0 a snapshot file, shard 1 a RocksDB instance with
/// shared SSTs (one borrowed with a local name) and owned metadata files.
fn manifest() -> Manifest {
    let sst = |name: &str, local: &str| FileRef {
        path: format!("shared/{name}"),
        size: 4096,
        crc32: 0x1234_5678,
        local: Some(local.into()),
    };
    Manifest {
        job: "orders".into(),
        checkpoint: CheckpointId(3),
        parent: Some(CheckpointId(2)),
        created_ms: 1_700_000_000_000,
        max_key_groups: 128,
        backend: "rocksdb".into(),
        key: Some(ValueEncoding::Utf8),
        states: snapshot_states(),
        shards: vec![
            ShardSnapshot {
                shard: 0,
                range: KeyGroupRange { start: 0, end: 64 },
                format: ShardFormat::Snapshot,
                files: vec![FileRef::of("chk-3/shard-0.snapshot", b"snapshot bytes")],
                source_position: serde_json::json!([{ "id": 0, "next": 1200, "end": 5000, "step": 1 }]),
                operator_state: Vec::new(),
            },
            ShardSnapshot {
                shard: 1,
                range: KeyGroupRange { start: 64, end: 128 },
                format: ShardFormat::Rocksdb,
                files: vec![
                    sst("0f1e2d3c4b5a69788796a5b4c3d2e1f0-000009.sst", "000009.sst"),
                    sst("00112233445566778899aabbccddeeff-000012.sst", "000012.sst"),
                    FileRef::of("chk-3/shard-1/MANIFEST-000005", b"rocksdb manifest"),
                    FileRef::of("chk-3/shard-1/CURRENT", b"MANIFEST-000005\n"),
                ],
                source_position: serde_json::json!([{ "id": 1, "next": 3100, "end": 9000, "step": 1 }]),
                operator_state: Vec::new(),
            },
        ],
    }
}

/// Savepoint metadata of `m`'s shards, at the barrier of checkpoint 3: canonical (one
/// snapshot file per shard) or native (shard 1's RocksDB files under `shard-1/`).
fn savepoint_meta(form: Form) -> SavepointMeta {
    let mut m = Manifest { parent: None, ..manifest() };
    for s in &mut m.shards {
        s.files = match (form, s.format) {
            (Form::Native, ShardFormat::Rocksdb) => s
                .files
                .iter()
                .map(|f| FileRef {
                    path: layout::savepoint_owned_path(s.shard, f.local_name()),
                    local: None,
                    ..f.clone()
                })
                .collect(),
            _ => {
                s.format = ShardFormat::Snapshot;
                vec![FileRef::of(&layout::savepoint_snapshot_path(s.shard), b"snapshot bytes")]
            }
        };
    }
    SavepointMeta { form, manifest: m }
}

/// The first byte of a `stored_value` input picks the descriptor, as the target does:
/// encoding `sel % 8` (I64, U64, F64, Bool, Unit, Utf8, Bytes, MsgPack), kind
/// `(sel >> 3) % 3` (Value, List, Map), a TTL when `sel & 0x80`.
fn stored_value_descriptor(sel: u8) -> StateDescriptor {
    let encs = [
        ValueEncoding::I64,
        ValueEncoding::U64,
        ValueEncoding::F64,
        ValueEncoding::Bool,
        ValueEncoding::Unit,
        ValueEncoding::Utf8,
        ValueEncoding::Bytes,
        ValueEncoding::MsgPack,
    ];
    let kinds = [StateKind::Value, StateKind::List, StateKind::Map];
    StateDescriptor {
        name: "f".into(),
        kind: kinds[(sel as usize >> 3) % kinds.len()],
        value: encs[sel as usize % encs.len()].clone(),
        user_key: None,
        ttl: (sel & 0x80 != 0).then_some(TtlConfig { ttl_ms: 1, update: TtlUpdate::OnCreateAndWrite }),
    }
}

fn generate() -> Seeds {
    let mut seeds = Seeds::new();
    let mut put = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.entry(target).or_default().insert(name.to_owned(), bytes);
    };

    put("snapshot", "empty", snapshot(KeyGroupRange { start: 0, end: 128 }, 0));
    put("snapshot", "all-states-20-keys", snapshot(KeyGroupRange { start: 0, end: 128 }, 20));
    put("snapshot", "clipped-range-40-keys", snapshot(KeyGroupRange { start: 32, end: 96 }, 40));

    let m = manifest();
    put("manifest", "two-shards-snapshot-and-rocksdb", m.encode().expect("valid manifest"));
    let first = Manifest { checkpoint: CheckpointId(1), parent: None, key: None, ..m.clone() };
    let first = Manifest {
        shards: first
            .shards
            .iter()
            .map(|s| ShardSnapshot {
                format: ShardFormat::Snapshot,
                files: vec![FileRef::of(&format!("chk-1/shard-{}.snapshot", s.shard), b"x")],
                ..s.clone()
            })
            .collect(),
        ..first
    };
    put("manifest", "first-checkpoint-snapshots", first.encode().expect("valid manifest"));

    put("envelope", "manifest", m.encode().expect("valid manifest"));
    put(
        "envelope",
        "snapshot-index",
        envelope::encode(Kind::SnapshotIndex, 1, br#"{"states":[],"range":{"start":0,"end":128},"blocks":[]}"#)
            .expect("encode"),
    );
    let native = savepoint_meta(Form::Native).encode().expect("valid savepoint metadata");
    put("savepoint_meta", "canonical-two-shards", savepoint_meta(Form::Canonical).encode().expect("valid"));
    put("savepoint_meta", "native-snapshot-and-rocksdb", native.clone());
    put("envelope", "savepoint-metadata", native);
    for (name, pinned) in [("no-pins", vec![]), ("pinned", vec![CheckpointId(3), CheckpointId(7)])] {
        let j = formats::jobfile::JobFile {
            job: "orders".into(),
            pid: 4242,
            retain: 3,
            pinned,
            started_ms: 1_795_500_000_000,
        };
        let bytes = j.encode().expect("valid job file");
        if name == "pinned" {
            put("envelope", "job-file", bytes.clone());
        }
        put("jobfile", name, bytes);
    }
    put("envelope", "empty-body", envelope::encode(Kind::CheckpointManifest, 2, b"").expect("encode"));

    for (name, key, user_key) in [
        ("plain", &b"user-7"[..], &b""[..]),
        ("empty-key", b"", b""),
        ("map-entry", b"user-7", b"item-3"),
        ("numeric-key", &42u64.to_le_bytes()[..], b""),
    ] {
        put("statekey", name, state_key(key, user_key).1);
    }
    let mut ns = Vec::new();
    statekey::encode_prefix(&mut ns, KeyGroup(127), b"k", b"window-1");
    put("statekey", "namespace", ns);

    for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
        let mut b = Vec::new();
        varint::put(&mut b, v);
        put("varint", &format!("v{v}"), b);
    }
    let mut several = Vec::new();
    for v in [5u64, 1 << 20, u64::MAX, 0] {
        varint::put(&mut several, v);
    }
    put("varint", "several", several);

    put("ttl", "header-only", with_ttl(1_700_000_000_000, b""));
    put("ttl", "header-and-value", with_ttl(1_700_000_000_000, &42i64.to_le_bytes()));

    put("list_elements", "empty", Vec::new());
    put("list_elements", "one", framed(&[b"x"]));
    put("list_elements", "three-u64", framed(&[&1u64.to_le_bytes(), &2u64.to_le_bytes(), &3u64.to_le_bytes()]));
    let long = vec![b'a'; 200];
    put("list_elements", "with-ttl-and-long", framed(&[&with_ttl(5, b"short"), &long]));

    // stored_value: the selector byte, then a stored value valid under its descriptor.
    let msgpack = rmp_serde::to_vec_named(&serde_json::json!({ "sum": 12, "n": 3 })).expect("msgpack");
    let values: [(u8, Vec<u8>, ValueEncoding); 8] = [
        (0, (-5i64).to_le_bytes().to_vec(), ValueEncoding::I64),
        (1, 7u64.to_le_bytes().to_vec(), ValueEncoding::U64),
        (2, 2.5f64.to_le_bytes().to_vec(), ValueEncoding::F64),
        (3, vec![1], ValueEncoding::Bool),
        (4, Vec::new(), ValueEncoding::Unit),
        (5, b"hello".to_vec(), ValueEncoding::Utf8),
        (6, vec![0, 1, 2, 255], ValueEncoding::Bytes),
        (7, msgpack, ValueEncoding::MsgPack),
    ];
    // The first selector byte that picks (kind, encoding, TTL).
    let sel = |kind: StateKind, enc: u8, ttl: bool| -> u8 {
        (0..=u8::MAX)
            .find(|s| {
                let d = stored_value_descriptor(*s);
                d.kind == kind && d.value == values[usize::from(enc)].2 && d.ttl.is_some() == ttl
            })
            .expect("every combination has a selector")
    };
    for (enc, v, _) in &values {
        let (enc, v) = (*enc, v.as_slice());
        put("stored_value", &format!("value-enc{enc}"), [&[sel(StateKind::Value, enc, false)][..], v].concat());
        let ttl_value = with_ttl(99, v);
        put(
            "stored_value",
            &format!("value-ttl-enc{enc}"),
            [&[sel(StateKind::Value, enc, true)][..], &ttl_value].concat(),
        );
        let list = framed(&[v, v]);
        put("stored_value", &format!("list-enc{enc}"), [&[sel(StateKind::List, enc, false)][..], &list].concat());
        let ttl_list = framed(&[&with_ttl(99, v), &with_ttl(100, v)]);
        put(
            "stored_value",
            &format!("list-ttl-enc{enc}"),
            [&[sel(StateKind::List, enc, true)][..], &ttl_list].concat(),
        );
        put("stored_value", &format!("map-enc{enc}"), [&[sel(StateKind::Map, enc, false)][..], v].concat());
    }
    seeds
}

/// Whether the parser that `target` fuzzes accepts `bytes` completely.
fn accepted(target: &str, bytes: &[u8]) -> Result<(), String> {
    let e = |e: formats::FormatError| e.to_string();
    match target {
        "snapshot" => {
            let r = SnapshotReader::open(bytes).map_err(e)?;
            r.for_each_in(KeyGroupRange { start: 0, end: u16::MAX }, &mut |_, _, _| {}).map_err(e)
        }
        "manifest" => Manifest::decode(bytes).map(drop).map_err(e),
        "savepoint_meta" => SavepointMeta::decode(bytes).map(drop).map_err(e),
        "jobfile" => formats::jobfile::JobFile::decode(bytes).map(drop).map_err(e),
        "envelope" => envelope::decode(Kind::CheckpointManifest, bytes)
            .or_else(|_| envelope::decode(Kind::SnapshotIndex, bytes))
            .or_else(|_| envelope::decode(Kind::SavepointMetadata, bytes))
            .or_else(|_| envelope::decode(Kind::JobFile, bytes))
            .map(drop)
            .map_err(e),
        "statekey" => statekey::decode(bytes).map(drop).map_err(e),
        "varint" => {
            let mut at = 0;
            while at < bytes.len() {
                at += varint::get(bytes.get(at..).unwrap_or_default(), at).map_err(e)?.1;
            }
            Ok(())
        }
        "ttl" => ttl::split(bytes).map(drop).map_err(e),
        "list_elements" => formats::value::list_elements(bytes).try_for_each(|r| r.map(drop)).map_err(e),
        "stored_value" => {
            let (sel, rest) = bytes.split_first().ok_or("empty input")?;
            formats::value::render_stored(&stored_value_descriptor(*sel), rest).map(drop).map_err(e)
        }
        other => Err(format!("no parser known for fuzz target {other}")),
    }
}

#[test]
fn every_fuzz_target_has_valid_committed_seeds() {
    let seeds = generate();
    for (target, files) in &seeds {
        for (name, bytes) in files {
            accepted(target, bytes).unwrap_or_else(|e| panic!("generated seed {target}/{name} is invalid: {e}"));
        }
    }
    if std::env::var_os("SLUICE_WRITE_SEEDS").is_some() {
        for (target, files) in &seeds {
            let dir = corpus_dir().join(target);
            std::fs::create_dir_all(&dir).expect("corpus dir");
            for (name, bytes) in files {
                std::fs::write(dir.join(name), bytes).expect("write seed");
            }
        }
    }
    // Every target in fuzz/fuzz_targets/ has seeds, and every committed seed is valid.
    let targets_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz").join("fuzz_targets");
    let mut targets: Vec<String> = std::fs::read_dir(&targets_dir)
        .expect("fuzz targets")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(String::from))
        .collect();
    targets.sort();
    assert!(targets.len() >= 8, "fuzz targets: {targets:?}");
    // Targets whose seeds another crate makes and checks (control/tests/fuzz_seeds.rs).
    const SEEDED_ELSEWHERE: &[&str] = &["control_request"];
    for t in targets.iter().filter(|t| !SEEDED_ELSEWHERE.contains(&t.as_str())) {
        let generated = seeds.get(t.as_str()).unwrap_or_else(|| panic!("no seeds generated for fuzz target {t}"));
        for (name, bytes) in generated {
            let path = corpus_dir().join(t).join(name);
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; regenerate with SLUICE_WRITE_SEEDS=1 (see this file's header)", path.display())
            });
            assert!(
                committed == *bytes,
                "{} differs from the generated seed; regenerate with SLUICE_WRITE_SEEDS=1",
                path.display()
            );
        }
        for entry in std::fs::read_dir(corpus_dir().join(t)).expect("corpus dir").flatten() {
            let bytes = std::fs::read(entry.path()).expect("read seed");
            accepted(t, &bytes).unwrap_or_else(|e| panic!("committed seed {} is invalid: {e}", entry.path().display()));
        }
    }
}
