//! Backward compatibility against each format version's own bytes (docs/FORMAT.md §12).
//!
//! `tests/fixtures/vN/` holds files written by format version N, committed once and never
//! regenerated: a round trip cannot catch a change made to encoder and decoder alike,
//! these files can. Each version has a complete checkpoint root (`checkpoint/fixture/`)
//! that must be discovered, verified and decoded to exactly the contents listed here,
//! and `corrupt/` copies of its files with one byte flipped, each of which must fail
//! with a checksum error naming the part that was damaged.
//!
//! - v1: a heap checkpoint: a version 1 manifest (no `format`, no `local`, no `key`)
//!   and a version 1 snapshot file with three small states and one map state whose one
//!   key group spans two blocks.
//! - v2: a RocksDB checkpoint: a version 2 manifest, shards in `rocksdb` format whose
//!   SSTs are in `shared/` under content-derived names with a `local` name.
//!
//! - v3: savepoints (FORMAT.md §13, savepoint metadata version 1): a canonical savepoint
//!   of two shards (snapshot files holding a value, a TTL list and a map state) written
//!   here, and a native one (real RocksDB files holding the same entries) written by
//!   `reader`'s `generate_native_savepoint_fixture`; corrupt copies: flipped metadata
//!   bytes, a missing file, an incomplete savepoint (marker only).
//!
//! The files were written by `generate_fixtures` (ignored), which refuses to overwrite
//! a version that already exists: a new format version gets a new directory.
use std::path::{Path, PathBuf};

use formats::checkpoint::{self, Payload, Verify};
use formats::envelope::{self, Kind};
use formats::fs::StdFs;
use formats::keygroup::key_group_of;
use formats::manifest::{CheckpointId, FileRef, Manifest, ShardFormat, ShardSnapshot};
use formats::savepoint::{self, Form, SavepointMeta};
use formats::snapshot::{SnapshotReader, SnapshotWriter};
use formats::statekey;
use formats::ttl::{self, TtlConfig, TtlUpdate};
use formats::value::{self, StateDescriptor, StateKind, ValueEncoding};
use formats::{FormatError, KeyGroup, KeyGroupRange};

/// Key groups of every fixture job.
const G: u32 = 8;
const JOB: &str = "fixture";
const V1_CHECKPOINT: u64 = 3;
const V2_CHECKPOINT: u64 = 5;
/// Entries of the v1 `blob` state, all under one key, so one key group spans two blocks.
const BLOB_ENTRIES: u64 = 40;
/// The barrier the v3 savepoints were taken at.
const V3_CHECKPOINT: u64 = 9;
const BLOB_VALUE_LEN: usize = 8 << 10;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn root(version: &str) -> PathBuf {
    fixtures().join(version).join("checkpoint").join(JOB)
}

fn corrupt(version: &str, name: &str) -> PathBuf {
    fixtures().join(version).join("corrupt").join(name)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn v1_states() -> Vec<StateDescriptor> {
    let d = |name: &str, kind, value, user_key, ttl| StateDescriptor { name: name.into(), kind, value, user_key, ttl };
    let ttl = TtlConfig { ttl_ms: 60_000, update: TtlUpdate::OnReadAndWrite };
    vec![
        d("count", StateKind::Value, ValueEncoding::U64, None, None),
        d("recent", StateKind::List, ValueEncoding::Utf8, None, Some(ttl)),
        d("by_name", StateKind::Map, ValueEncoding::I64, Some(ValueEncoding::Utf8), None),
        d("blob", StateKind::Map, ValueEncoding::Bytes, Some(ValueEncoding::U64), None),
    ]
}

fn state_key(key: &str, user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::new();
    statekey::encode_prefix(&mut k, key_group_of(key.as_bytes(), G), key.as_bytes(), b"");
    k.extend_from_slice(user_key);
    k
}

fn ttl_list(elements: &[(u64, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (expiry_ms, e) in elements {
        let mut el = Vec::new();
        ttl::put_header(&mut el, *expiry_ms);
        el.extend_from_slice(e.as_bytes());
        value::put_list_element(&mut out, &el);
    }
    out
}

fn blob_value(i: u64) -> Vec<u8> {
    (0..BLOB_VALUE_LEN).map(|j| ((i as usize * 7 + j) % 251) as u8).collect()
}

/// (state index, state key, stored value).
type Entry = (u32, Vec<u8>, Vec<u8>);

/// Every entry of the v1 snapshot, (state, key, value), in the order they are written.
fn v1_entries() -> Vec<Entry> {
    let mut e = vec![
        (0, state_key("alice", b""), 3u64.to_le_bytes().to_vec()),
        (0, state_key("bob", b""), 7u64.to_le_bytes().to_vec()),
        (0, state_key("carol", b""), 1u64.to_le_bytes().to_vec()),
        (1, state_key("alice", b""), ttl_list(&[(1_700_000_060_000, "hello"), (1_700_000_061_000, "world")])),
        (1, state_key("bob", b""), ttl_list(&[(1_700_000_062_000, "hi")])),
        (2, state_key("alice", b"x"), (-1i64).to_le_bytes().to_vec()),
        (2, state_key("alice", b"y"), 42i64.to_le_bytes().to_vec()),
        (2, state_key("carol", b"z"), 0i64.to_le_bytes().to_vec()),
    ];
    for i in 0..BLOB_ENTRIES {
        e.push((3, state_key("dave", &i.to_le_bytes()), blob_value(i)));
    }
    // The writer takes entries grouped by (state, key group), keys increasing; a state
    // key starts with its key group, big-endian, so sorting by key sorts by group.
    e.sort();
    e
}

fn v1_snapshot_bytes() -> Vec<u8> {
    let mut w = SnapshotWriter::new(v1_states(), KeyGroupRange { start: 0, end: G as u16 });
    for (s, k, v) in v1_entries() {
        let kg = statekey::decode(&k).expect("state key").key_group;
        w.add(s, kg, &k, &v).expect("add");
    }
    w.finish().expect("finish")
}

fn v1_snapshot_path() -> String {
    format!("chk-{V1_CHECKPOINT}/shard-0.snapshot")
}

/// A version 1 manifest body, as version 1 wrote it: its fields in struct order, no
/// `format`, `local` or `key`.
fn v1_manifest_body(snapshot: &FileRef) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        path: &'a str,
        size: u64,
        crc32: u32,
    }
    #[derive(serde::Serialize)]
    struct Shard<'a> {
        shard: u16,
        range: KeyGroupRange,
        files: Vec<File<'a>>,
        source_position: serde_json::Value,
    }
    #[derive(serde::Serialize)]
    struct ManifestV1<'a> {
        job: &'a str,
        checkpoint: u64,
        parent: Option<u64>,
        created_ms: u64,
        max_key_groups: u32,
        backend: &'a str,
        states: Vec<StateDescriptor>,
        shards: Vec<Shard<'a>>,
    }
    let m = ManifestV1 {
        job: JOB,
        checkpoint: V1_CHECKPOINT,
        parent: Some(V1_CHECKPOINT - 1),
        created_ms: 1_700_000_000_000,
        max_key_groups: G,
        backend: "heap",
        states: v1_states(),
        shards: vec![Shard {
            shard: 0,
            range: KeyGroupRange { start: 0, end: G as u16 },
            files: vec![File { path: &snapshot.path, size: snapshot.size, crc32: snapshot.crc32 }],
            source_position: serde_json::json!([{"id": 0, "next": 120, "end": 1000, "step": 1}]),
        }],
    };
    serde_json::to_vec_pretty(&m).expect("json")
}

fn v2_states() -> Vec<StateDescriptor> {
    vec![StateDescriptor {
        name: "count".into(),
        kind: StateKind::Value,
        value: ValueEncoding::U64,
        user_key: None,
        ttl: None,
    }]
}

/// The instance files of each shard of the v2 checkpoint: (local name, content). The
/// SSTs are stand-ins: `formats` names, copies and checks them but never parses them.
fn v2_instance_files(shard: u16) -> Vec<(String, Vec<u8>)> {
    let ssts: &[u32] = if shard == 0 { &[9] } else { &[11, 12] };
    let mut files: Vec<(String, Vec<u8>)> = ssts
        .iter()
        .map(|n| (format!("{n:06}.sst"), format!("sst {n} of shard {shard}\n").repeat(8).into_bytes()))
        .collect();
    files.push(("CURRENT".into(), b"MANIFEST-000005\n".to_vec()));
    files.push(("MANIFEST-000005".into(), format!("rocksdb manifest of shard {shard}\n").into_bytes()));
    files.push(("OPTIONS-000007".into(), format!("[Version]\n# shard {shard}\n").into_bytes()));
    files
}

/// Flips every bit of the byte at `at`, after checking the fixture is at least that long.
fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let byte = b.get_mut(at).expect("offset inside the file");
    *byte ^= 0xff;
    b
}

/// Byte offsets flipped in the corrupt snapshot copies: (file name, offset).
fn v1_snapshot_corruptions(good: &[u8]) -> Vec<(&'static str, usize)> {
    let rd = SnapshotReader::open(good).expect("open");
    let first = rd.index.blocks.first().expect("a block").offset as usize;
    let index_offset = rd.index.blocks.iter().map(|b| (b.offset + u64::from(b.len)) as usize).max().unwrap_or(0);
    vec![
        // The entries field of the first block's header.
        ("shard-0.snapshot.block-header", first + 12),
        // The first payload byte after the first block's header.
        ("shard-0.snapshot.block-payload", first + 32 + 5),
        // Inside the index's JSON body (envelope header is 16 bytes).
        ("shard-0.snapshot.index-body", index_offset + 16 + 3),
        // The footer's index_offset (footer is the last 16 bytes).
        ("shard-0.snapshot.footer", good.len() - 16 + 4),
    ]
}

/// Offsets flipped in the corrupt manifest copies: the body length (header) and a byte
/// of the JSON body.
const MANIFEST_CORRUPTIONS: [(&str, usize); 2] = [("_manifest.header", 9), ("_manifest.body", 16 + 10)];

fn write_new(p: &Path, bytes: &[u8]) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(p, bytes).expect("write");
}

/// Writes the fixtures of every version not yet present. Run once per new format
/// version: `cargo test -p sluice-formats --test backward_compatibility -- --ignored`.
#[test]
#[ignore = "writes the committed fixtures; run only for a new format version"]
fn generate_fixtures() {
    generate_v3();
    if !fixtures().join("v1").exists() {
        let snapshot = v1_snapshot_bytes();
        let path = v1_snapshot_path();
        let file = FileRef::of(&path, &snapshot);
        let r = root("v1");
        write_new(&formats::layout::resolve(&r, &path), &snapshot);
        let manifest = envelope::encode(Kind::CheckpointManifest, 1, &v1_manifest_body(&file)).expect("envelope");
        write_new(&formats::layout::manifest_path(&r, CheckpointId(V1_CHECKPOINT)), &manifest);
        for (name, at) in v1_snapshot_corruptions(&snapshot) {
            write_new(&corrupt("v1", name), &flip(&snapshot, at));
        }
        for (name, at) in MANIFEST_CORRUPTIONS {
            write_new(&corrupt("v1", name), &flip(&manifest, at));
        }
    }
    if !fixtures().join("v2").exists() {
        let r = root("v2");
        std::fs::create_dir_all(&r).expect("mkdir");
        let mut fs = StdFs;
        let id = CheckpointId(V2_CHECKPOINT);
        let mut shards = Vec::new();
        let mut payloads = Vec::new();
        for shard in 0..2u16 {
            let mut files = Vec::new();
            for (local, bytes) in v2_instance_files(shard) {
                if formats::layout::is_shared_file(&local) {
                    files.push(
                        checkpoint::put_shared(&mut fs, &r, &local, &mut &bytes[..], Path::new(&local))
                            .expect("put shared")
                            .0,
                    );
                } else {
                    let path = formats::layout::owned_file_path(id, shard, &local);
                    files.push(FileRef::of(&path, &bytes));
                    payloads.push(Payload { path, bytes });
                }
            }
            shards.push(ShardSnapshot {
                shard,
                range: formats::keygroup::range_for_shard(formats::ShardId(shard), 2, G),
                format: ShardFormat::Rocksdb,
                files,
                source_position: serde_json::json!([{"id": shard, "next": 40 + shard, "end": u64::MAX, "step": 2}]),
                operator_state: Vec::new(),
            });
        }
        let m = Manifest {
            job: JOB.into(),
            checkpoint: id,
            parent: Some(CheckpointId(V2_CHECKPOINT - 1)),
            created_ms: 1_700_000_100_000,
            max_key_groups: G,
            backend: "rocksdb".into(),
            key: Some(ValueEncoding::Utf8),
            states: v2_states(),
            shards,
        };
        checkpoint::publish(&mut fs, &r, &m, &payloads).expect("publish");
        let manifest = read(&formats::layout::manifest_path(&r, id));
        for (name, at) in MANIFEST_CORRUPTIONS {
            write_new(&corrupt("v2", name), &flip(&manifest, at));
        }
    }
}

/// The v3 savepoints' states: v1's first three (a value, a TTL list, a map).
fn v3_states() -> Vec<StateDescriptor> {
    v1_states().into_iter().take(3).collect()
}

/// Every entry of the v3 savepoints: v1's entries of those states.
fn v3_entries() -> Vec<Entry> {
    v1_entries().into_iter().filter(|(s, _, _)| *s < 3).collect()
}

fn v3_dir(name: &str) -> PathBuf {
    fixtures().join("v3").join(name)
}

/// Writes the canonical savepoint's files into `sp` through the savepoint protocol.
fn write_v3_canonical(sp: &Path) -> SavepointMeta {
    let mut fs = StdFs;
    savepoint::begin(&mut fs, sp).expect("begin");
    let mut shards = Vec::new();
    for shard in 0..2u16 {
        let range = formats::keygroup::range_for_shard(formats::ShardId(shard), 2, G);
        let mut w = SnapshotWriter::new(v3_states(), range);
        for (s, k, v) in v3_entries() {
            let kg = statekey::decode(&k).expect("state key").key_group;
            if range.contains(kg) {
                w.add(s, kg, &k, &v).expect("add");
            }
        }
        let bytes = w.finish().expect("finish");
        let rel = formats::layout::savepoint_snapshot_path(shard);
        let mut f = checkpoint::OwnedFile::create(&mut fs, sp, &rel).expect("create");
        std::io::Write::write_all(&mut f, &bytes).expect("write");
        f.finish().expect("fsync");
        shards.push(ShardSnapshot {
            shard,
            range,
            format: ShardFormat::Snapshot,
            files: vec![FileRef::of(&rel, &bytes)],
            source_position: serde_json::json!([{"id": shard, "next": 70 + shard, "end": 1000, "step": 2}]),
            operator_state: Vec::new(),
        });
    }
    let meta = SavepointMeta {
        form: Form::Canonical,
        manifest: Manifest {
            job: JOB.into(),
            checkpoint: CheckpointId(V3_CHECKPOINT),
            parent: None,
            created_ms: 1_700_000_200_000,
            max_key_groups: G,
            backend: "heap".into(),
            key: Some(ValueEncoding::Utf8),
            states: v3_states(),
            shards,
        },
    };
    savepoint::commit(&mut fs, sp, &meta).expect("commit");
    meta
}

fn generate_v3() {
    let canonical = v3_dir("savepoint").join("canonical");
    if canonical.exists() {
        return;
    }
    let meta = write_v3_canonical(&canonical);
    let bytes = read(&formats::layout::savepoint_metadata_path(&canonical));
    for (name, at) in MANIFEST_CORRUPTIONS {
        let name = name.replace("_manifest", "_savepoint");
        write_new(&v3_dir("corrupt").join(name), &flip(&bytes, at));
    }
    // A complete savepoint but for one file, and one interrupted before its metadata.
    let missing = v3_dir("corrupt").join("missing-file");
    write_v3_canonical(&missing);
    std::fs::remove_file(missing.join(formats::layout::savepoint_snapshot_path(1))).expect("rm");
    let incomplete = v3_dir("corrupt").join("incomplete");
    savepoint::begin(&mut StdFs, &incomplete).expect("begin");
    let first = meta.manifest.files().next().expect("a file");
    std::fs::copy(
        formats::layout::resolve(&canonical, &first.path),
        formats::layout::resolve(&incomplete, &first.path),
    )
    .expect("copy");
}

/// The fixture next to `name` in `corrupt/` differs from `good` in exactly one byte.
fn corrupt_copy(version: &str, name: &str, good: &[u8]) -> Vec<u8> {
    let bad = read(&corrupt(version, name));
    let differing = good.iter().zip(&bad).filter(|(a, b)| a != b).count();
    assert!(bad.len() == good.len() && differing == 1, "{name}: one flipped byte, found {differing}");
    bad
}

fn read_all(rd: &SnapshotReader<'_>) -> Result<Vec<Entry>, FormatError> {
    let mut out = Vec::new();
    rd.for_each_in(KeyGroupRange { start: 0, end: G as u16 }, &mut |s, k, v| out.push((s, k.to_vec(), v.to_vec())))?;
    Ok(out)
}

/// The v1 heap checkpoint is discovered, verified, and its manifest and snapshot decode
/// to exactly what version 1 wrote (invariants 9.1–9.4, 11.1 on old bytes).
#[test]
fn v1_checkpoint_decodes_to_its_exact_contents() {
    let r = root("v1");
    let found = checkpoint::latest(&StdFs, &r, Verify::Checksums).expect("discover");
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    let m = found.latest.expect("checkpoint 3 is published");
    let snapshot_file =
        FileRef { path: "chk-3/shard-0.snapshot".into(), size: 2753, crc32: 2_235_592_252, local: None };
    let expected = Manifest {
        job: JOB.into(),
        checkpoint: CheckpointId(3),
        parent: Some(CheckpointId(2)),
        created_ms: 1_700_000_000_000,
        max_key_groups: G,
        backend: "heap".into(),
        key: None,
        states: v1_states(),
        shards: vec![ShardSnapshot {
            shard: 0,
            range: KeyGroupRange { start: 0, end: 8 },
            format: ShardFormat::Snapshot,
            files: vec![snapshot_file],
            source_position: serde_json::json!([{"id": 0, "next": 120, "end": 1000, "step": 1}]),
            operator_state: Vec::new(),
        }],
    };
    assert_eq!(m, expected);

    let bytes = read(&formats::layout::resolve(&r, &v1_snapshot_path()));
    let rd = SnapshotReader::open(&bytes).expect("open");
    assert_eq!(rd.index.states, v1_states());
    assert_eq!(rd.index.range, KeyGroupRange { start: 0, end: 8 });
    let blocks: Vec<(u32, u16, u64, u32, u32)> =
        rd.index.blocks.iter().map(|b| (b.state, b.key_group, b.offset, b.len, b.entries)).collect();
    assert_eq!(
        blocks,
        [
            (0, 0, 0, 60, 1),
            (0, 4, 60, 60, 1),
            (0, 5, 120, 58, 1),
            (1, 0, 178, 80, 1),
            (1, 5, 258, 61, 1),
            (2, 0, 319, 72, 2),
            (2, 4, 391, 61, 1),
            // One key group of 320 KiB raw, cut at the 256 KiB block target.
            (3, 0, 452, 891, 32),
            (3, 0, 1343, 446, 8),
        ]
    );
    // Every entry's key group is its block's.
    for b in &rd.index.blocks {
        rd.read_block(b, &mut |k, _| {
            assert_eq!(statekey::decode(k).expect("state key").key_group, KeyGroup(b.key_group));
        })
        .expect("block");
    }

    let entries = read_all(&rd).expect("entries");
    let states = v1_states();
    let rendered: Vec<serde_json::Value> = entries
        .iter()
        .filter(|(s, _, _)| *s < 3)
        .map(|(s, k, v)| {
            let d = states.get(*s as usize).expect("state");
            let sk = statekey::decode(k).expect("state key");
            let uk = match &d.user_key {
                Some(enc) => value::render_json(enc, sk.user_key).expect("user key"),
                None => serde_json::Value::Null,
            };
            let key = std::str::from_utf8(sk.key).expect("utf8 key");
            serde_json::json!([
                d.name,
                sk.key_group.0,
                key,
                sk.namespace,
                uk,
                value::render_stored(d, v).expect("value")
            ])
        })
        .collect();
    let exp = |e: u64| serde_json::json!(e);
    assert_eq!(
        rendered,
        [
            serde_json::json!(["count", 0, "alice", [], null, {"value": 3}]),
            serde_json::json!(["count", 4, "carol", [], null, {"value": 1}]),
            serde_json::json!(["count", 5, "bob", [], null, {"value": 7}]),
            serde_json::json!(["recent", 0, "alice", [], null, {"list": [
                {"value": "hello", "expires_ms": exp(1_700_000_060_000)},
                {"value": "world", "expires_ms": exp(1_700_000_061_000)}]}]),
            serde_json::json!(["recent", 5, "bob", [], null, {"list": [{"value": "hi", "expires_ms": exp(1_700_000_062_000)}]}]),
            serde_json::json!(["by_name", 0, "alice", [], "x", {"value": -1}]),
            serde_json::json!(["by_name", 0, "alice", [], "y", {"value": 42}]),
            serde_json::json!(["by_name", 4, "carol", [], "z", {"value": 0}]),
        ]
    );
    let blob: Vec<(u64, Vec<u8>)> = entries
        .iter()
        .filter(|(s, _, _)| *s == 3)
        .map(|(_, k, v)| {
            let sk = statekey::decode(k).expect("state key");
            assert_eq!((sk.key_group, sk.key), (KeyGroup(0), &b"dave"[..]));
            let i = u64::from_le_bytes(sk.user_key.try_into().expect("u64 user key"));
            (i, v.clone())
        })
        .collect();
    assert_eq!(blob, (0..BLOB_ENTRIES).map(|i| (i, blob_value(i))).collect::<Vec<_>>());
}

/// The writer of today still writes version 1 snapshots byte for byte: a change to the
/// encoder that its own decoder would follow is caught here.
#[test]
fn snapshot_writer_still_writes_v1_bytes() {
    let fixture = read(&formats::layout::resolve(&root("v1"), &v1_snapshot_path()));
    assert!(v1_snapshot_bytes() == fixture, "the snapshot writer's output differs from the v1 fixture");
    // Streamed, too, with the size and crc32 the v1 manifest recorded for the file.
    let mut streamed = Vec::new();
    let mut w = SnapshotWriter::to_writer(
        v1_states(),
        KeyGroupRange { start: 0, end: G as u16 },
        &mut streamed,
        PathBuf::from(v1_snapshot_path()),
    );
    for (s, k, v) in v1_entries() {
        w.add(s, statekey::decode(&k).expect("state key").key_group, &k, &v).expect("add");
    }
    let summary = w.finish().expect("finish");
    assert!(streamed == fixture, "the streaming writer's output differs from the v1 fixture");
    assert_eq!((summary.size, summary.crc32), (2753, 2_235_592_252));
}

fn v2_expected() -> Manifest {
    let shared = |name: &str, size, crc32, local: &str| FileRef {
        path: format!("shared/{name}"),
        size,
        crc32,
        local: Some(local.into()),
    };
    let owned = |path: &str, size, crc32| FileRef { path: path.into(), size, crc32, local: None };
    let shard = |shard: u16, files| ShardSnapshot {
        shard,
        range: KeyGroupRange { start: shard * 4, end: shard * 4 + 4 },
        format: ShardFormat::Rocksdb,
        files,
        source_position: serde_json::json!([{"id": shard, "next": 40 + shard, "end": u64::MAX, "step": 2}]),
        operator_state: Vec::new(),
    };
    Manifest {
        job: JOB.into(),
        checkpoint: CheckpointId(5),
        parent: Some(CheckpointId(4)),
        created_ms: 1_700_000_100_000,
        max_key_groups: G,
        backend: "rocksdb".into(),
        key: Some(ValueEncoding::Utf8),
        states: v2_states(),
        shards: vec![
            shard(
                0,
                vec![
                    shared("8326baa808288bca3c895c2ab75afc71.sst", 136, 2_859_291_833, "000009.sst"),
                    owned("chk-5/shard-0/CURRENT", 16, 4_102_469_562),
                    owned("chk-5/shard-0/MANIFEST-000005", 28, 3_077_968_757),
                    owned("chk-5/shard-0/OPTIONS-000007", 20, 2_068_751_180),
                ],
            ),
            shard(
                1,
                vec![
                    shared("766121b61c29da9acd191da3157cb615.sst", 144, 3_778_088_391, "000011.sst"),
                    shared("3bca57178a3d9f96d21ae5e55e1a47a2.sst", 144, 2_891_008_863, "000012.sst"),
                    owned("chk-5/shard-1/CURRENT", 16, 4_102_469_562),
                    owned("chk-5/shard-1/MANIFEST-000005", 28, 2_926_387_764),
                    owned("chk-5/shard-1/OPTIONS-000007", 20, 1_649_775_117),
                ],
            ),
        ],
    }
}

/// The v2 RocksDB checkpoint is discovered and verified; its manifest decodes exactly,
/// shared files carry content-derived names (FORMAT.md §1, §7), every local name
/// rebuilds the instance's files, and today's encoder still writes these v2 bytes.
#[test]
fn v2_checkpoint_decodes_to_its_exact_contents() {
    let r = root("v2");
    let found = checkpoint::latest(&StdFs, &r, Verify::Checksums).expect("discover");
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    let m = found.latest.expect("checkpoint 5 is published");
    assert_eq!(m, v2_expected());
    for s in &m.shards {
        let mut rebuilt: Vec<(String, Vec<u8>)> =
            s.files.iter().map(|f| (f.local_name().to_owned(), read(&formats::layout::resolve(&r, &f.path)))).collect();
        rebuilt.sort();
        let mut instance = v2_instance_files(s.shard);
        instance.sort();
        assert_eq!(rebuilt, instance, "shard {}", s.shard);
        for f in s.files.iter().filter(|f| formats::layout::is_in_shared(&f.path)) {
            let bytes = read(&formats::layout::resolve(&r, &f.path));
            let name = formats::layout::shared_file_name(xxhash_rust::xxh3::xxh3_128(&bytes), f.local_name());
            assert_eq!(f.path, format!("shared/{name}"));
        }
    }
    let bytes = read(&formats::layout::manifest_path(&r, CheckpointId(V2_CHECKPOINT)));
    assert!(m.encode().expect("encode") == bytes, "the manifest encoder's output differs from the v2 fixture");
}

/// One flipped byte in each part of each fixture fails with a checksum error that names
/// the part (invariants 8.2, 11.2 on old bytes).
#[test]
fn corrupt_fixtures_fail_with_a_checksum_error_naming_the_part() {
    for version in ["v1", "v2"] {
        let id = if version == "v1" { V1_CHECKPOINT } else { V2_CHECKPOINT };
        let good = read(&formats::layout::manifest_path(&root(version), CheckpointId(id)));
        for (name, part) in [("_manifest.header", "envelope header"), ("_manifest.body", "envelope body")] {
            let e = Manifest::decode(&corrupt_copy(version, name, &good));
            assert!(matches!(e, Err(FormatError::Checksum { what, .. }) if what == part), "{version}/{name}: {e:?}");
        }
    }
    let good = read(&formats::layout::resolve(&root("v1"), &v1_snapshot_path()));
    let footer_offset = good.len() - 16;
    for (name, part, offset) in [
        ("shard-0.snapshot.block-header", "snapshot block header", 0),
        ("shard-0.snapshot.block-payload", "snapshot block", 32),
        // The index's body checksum, at its offset in the file.
        ("shard-0.snapshot.index-body", "envelope body", footer_offset - 4),
        ("shard-0.snapshot.footer", "snapshot footer", footer_offset),
    ] {
        let bad = corrupt_copy("v1", name, &good);
        let e = SnapshotReader::open(&bad).and_then(|rd| read_all(&rd));
        assert!(
            matches!(e, Err(FormatError::Checksum { what, offset: o, .. }) if what == part && o == offset),
            "{name}: {e:?}"
        );
    }
}

fn v3_expected(form: Form, files: [Vec<(&str, u64, u32)>; 2]) -> SavepointMeta {
    let native = form == Form::Native;
    let shards = files
        .into_iter()
        .enumerate()
        .map(|(i, files)| ShardSnapshot {
            shard: i as u16,
            range: KeyGroupRange { start: i as u16 * 4, end: i as u16 * 4 + 4 },
            format: if native { ShardFormat::Rocksdb } else { ShardFormat::Snapshot },
            files: files
                .into_iter()
                .map(|(path, size, crc32)| FileRef { path: path.into(), size, crc32, local: None })
                .collect(),
            source_position: serde_json::json!([{"id": i, "next": 70 + i, "end": 1000, "step": 2}]),
            operator_state: Vec::new(),
        })
        .collect();
    SavepointMeta {
        form,
        manifest: Manifest {
            job: JOB.into(),
            checkpoint: CheckpointId(V3_CHECKPOINT),
            parent: None,
            created_ms: 1_700_000_200_000,
            max_key_groups: G,
            backend: if native { "rocksdb" } else { "heap" }.into(),
            key: Some(ValueEncoding::Utf8),
            states: v3_states(),
            shards,
        },
    }
}

/// The v3 canonical savepoint loads (checksums verified) to exactly its metadata (13.1–
/// 13.3 on old bytes), its snapshot files hold exactly the v3 entries split by shard
/// range, and today's encoders still write its bytes.
#[test]
fn v3_canonical_savepoint_decodes_to_its_exact_contents() {
    let sp = v3_dir("savepoint").join("canonical");
    let meta = savepoint::load(&StdFs, &sp, Verify::Checksums).expect("load");
    let expected = v3_expected(
        Form::Canonical,
        [vec![("shard-0.snapshot", 739, 3_242_261_309)], vec![("shard-1.snapshot", 827, 4_151_297_442)]],
    );
    assert_eq!(meta, expected);
    let mut all = Vec::new();
    for s in &meta.manifest.shards {
        let bytes = read(&formats::layout::resolve(&sp, &s.files.first().expect("a file").path));
        let rd = SnapshotReader::open(&bytes).expect("open");
        assert_eq!((rd.index.range, &rd.index.states), (s.range, &v3_states()));
        let entries = read_all(&rd).expect("entries");
        assert!(entries.iter().all(|(_, k, _)| s.range.contains(statekey::decode(k).expect("key").key_group)));
        all.extend(entries);
    }
    all.sort();
    assert_eq!(all, v3_entries());
    assert!(!sp.join(formats::layout::SAVEPOINT_MARKER_NAME).exists(), "a complete savepoint has no marker");
    let bytes = read(&formats::layout::savepoint_metadata_path(&sp));
    assert!(meta.encode().expect("encode") == bytes, "the savepoint encoder's output differs from the v3 fixture");
    // Streamed by today's writer, each shard's snapshot is still the same bytes.
    for s in &meta.manifest.shards {
        let mut w = SnapshotWriter::new(v3_states(), s.range);
        for (st, k, v) in v3_entries() {
            let kg = statekey::decode(&k).expect("state key").key_group;
            if s.range.contains(kg) {
                w.add(st, kg, &k, &v).expect("add");
            }
        }
        let file = s.files.first().expect("a file");
        assert!(w.finish().expect("finish") == read(&formats::layout::resolve(&sp, &file.path)), "{}", file.path);
    }
}

/// The v3 native savepoint (real RocksDB files, written by reader's generator) loads
/// with checksums to exactly its metadata: paths `shard-<i>/<name>`, no `local`, and
/// today's encoder still writes its bytes. Its entries are pinned in reader/tests.
#[test]
fn v3_native_savepoint_decodes_to_its_exact_metadata() {
    let sp = v3_dir("savepoint").join("native");
    let meta = savepoint::load(&StdFs, &sp, Verify::Checksums).expect("load");
    let expected = v3_expected(
        Form::Native,
        [
            vec![
                ("shard-0/000008.sst", 1043, 3_390_482_192),
                ("shard-0/000009.sst", 1075, 2_870_682_864),
                ("shard-0/000010.sst", 1067, 2_581_331_340),
                ("shard-0/CURRENT", 16, 4_102_469_562),
                ("shard-0/MANIFEST-000005", 624, 1_371_569_999),
                ("shard-0/OPTIONS-000007", 20799, 949_872_894),
            ],
            vec![
                ("shard-1/000008.sst", 1066, 2_091_370_193),
                ("shard-1/000009.sst", 1054, 674_887_161),
                ("shard-1/000010.sst", 1047, 3_751_188_028),
                ("shard-1/CURRENT", 16, 4_102_469_562),
                ("shard-1/MANIFEST-000005", 618, 1_422_646_028),
                ("shard-1/OPTIONS-000007", 20799, 949_872_894),
            ],
        ],
    );
    assert_eq!(meta, expected);
    let bytes = read(&formats::layout::savepoint_metadata_path(&sp));
    assert!(meta.encode().expect("encode") == bytes, "the savepoint encoder's output differs from the v3 fixture");
}

/// The v3 corrupt savepoints: a flipped metadata byte is a checksum error naming the
/// part (13.1 via 8.2); a missing file an I/O error naming it; an interrupted savepoint
/// (marker only) is refused as incomplete (13.4).
#[test]
fn v3_corrupt_savepoints_are_refused_with_a_named_error() {
    let good = read(&formats::layout::savepoint_metadata_path(&v3_dir("savepoint").join("canonical")));
    for (name, part) in [("_savepoint.header", "envelope header"), ("_savepoint.body", "envelope body")] {
        let e = SavepointMeta::decode(&corrupt_copy("v3", name, &good));
        assert!(matches!(e, Err(FormatError::Checksum { what, .. }) if what == part), "{name}: {e:?}");
    }
    let missing = v3_dir("corrupt").join("missing-file");
    let gone = missing.join("shard-1.snapshot");
    let e = savepoint::load(&StdFs, &missing, Verify::Sizes);
    assert!(matches!(&e, Err(FormatError::Io { path, .. }) if path == &gone), "{e:?}");
    let incomplete = v3_dir("corrupt").join("incomplete");
    let e = savepoint::load(&StdFs, &incomplete, Verify::Sizes).expect_err("incomplete");
    assert!(matches!(e, FormatError::Savepoint { .. }) && e.to_string().contains("is incomplete"), "{e}");
    assert!(formats::layout::is_savepoint_dir(&incomplete) && !formats::layout::is_savepoint_dir(&fixtures()));
}
