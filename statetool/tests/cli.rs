//! statetool as users run it: output shapes and exit codes.
use std::process::Command;

fn statetool(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_statetool")).args(args).output().expect("run statetool");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn key_group_agrees_with_formats() {
    // Pins: `key-group --json` prints exactly one line per key, in argument order, with
    // the key group and shard `formats` computes (empty or partial output fails), and the
    // table form holds the same rows under a header.
    let keys = ["alice", "bob", "carol"];
    let want: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            let kg = formats::keygroup::key_group_of(key.as_bytes(), 128);
            serde_json::json!({
                "key": key,
                "key_group": kg.0,
                "shard": formats::keygroup::shard_of(kg, 4, 128).0,
            })
        })
        .collect();
    let mut args = vec!["key-group"];
    args.extend(keys);
    args.extend(["--shards", "4", "--json"]);
    let (code, out, err) = statetool(&args);
    assert_eq!(code, 0, "{err}");
    let got: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect();
    assert_eq!(got, want, "{out:?}");

    args.pop();
    let (code, out, err) = statetool(&args);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<String>> = out.lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
    let mut want_rows = vec![vec!["key".to_string(), "key_group".into(), "shard".into()]];
    want_rows.extend(want.iter().map(|v| {
        vec![v["key"].as_str().unwrap_or_default().to_string(), v["key_group"].to_string(), v["shard"].to_string()]
    }));
    assert_eq!(rows, want_rows, "{out:?}");
}

#[test]
fn ranges_table_and_json() {
    // Pins: one row per shard, each with the range `formats` assigns, in both forms.
    let want: Vec<(u32, u16, u16)> = (0..3u32)
        .map(|i| {
            let r = formats::keygroup::range_for_shard(formats::ShardId(i as u16), 3, 128);
            (i, r.start, r.end)
        })
        .collect();
    let (code, out, _) = statetool(&["ranges", "--shards", "3"]);
    assert_eq!(code, 0);
    let rows: Vec<Vec<String>> = out.lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
    let mut want_rows = vec![vec!["shard".to_string(), "start".into(), "end".into(), "key_groups".into()]];
    want_rows
        .extend(want.iter().map(|(i, s, e)| vec![i.to_string(), s.to_string(), e.to_string(), (e - s).to_string()]));
    assert_eq!(rows, want_rows, "{out}");
    assert_eq!(rows.get(1).map(|r| r.join(" ")), Some("0 0 42 42".to_string()));
    let (code, out, _) = statetool(&["ranges", "--shards", "3", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let want_json: Vec<serde_json::Value> =
        want.iter().map(|(i, s, e)| serde_json::json!({ "shard": i, "start": s, "end": e })).collect();
    assert_eq!(v, serde_json::Value::Array(want_json));
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = statetool(&["ranges", "--shards", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("shards"), "{err}");
    let (code, _, err) = statetool(&["key-group", "x", "--key-type", "u64"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a u64"), "{err}");
    let (code, _, _) = statetool(&["frobnicate"]);
    assert_eq!(code, 2);
}

mod checkpoints {
    //! The checkpoint verbs on checkpoints built through `formats` (the same code the
    //! engine publishes with).
    use super::statetool;
    use formats::checkpoint::{publish, Payload};
    use formats::fs::StdFs;
    use formats::keygroup::KeyGroupRange;
    use formats::manifest::{CheckpointId, FileRef, Manifest, ShardSnapshot};
    use formats::snapshot::SnapshotWriter;
    use formats::value::{StateDescriptor, StateKind, ValueEncoding};
    use formats::KeyGroup;

    fn states() -> Vec<StateDescriptor> {
        vec![StateDescriptor {
            name: "count".into(),
            kind: StateKind::Value,
            value: ValueEncoding::I64,
            user_key: None,
            ttl: None,
        }]
    }

    /// Publishes checkpoint `id` of job `job` (one shard, state "count") holding
    /// `(key bytes, count)` entries, with keys encoded as `key`.
    fn publish_one(root: &std::path::Path, job: &str, id: u64, key: ValueEncoding, rows: &[(Vec<u8>, i64)]) {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = rows.iter().map(|(k, v)| (k.clone(), v.to_le_bytes().to_vec())).collect();
        publish_states(root, job, id, key, states(), &rows);
    }

    /// Publishes checkpoint `id` of job `job` (one shard) holding `(key bytes, encoded
    /// value)` entries of the first of `states`.
    fn publish_states(
        root: &std::path::Path,
        job: &str,
        id: u64,
        key: ValueEncoding,
        states: Vec<StateDescriptor>,
        rows: &[(Vec<u8>, Vec<u8>)],
    ) {
        let range = KeyGroupRange { start: 0, end: 128 };
        let mut entries: Vec<(u16, Vec<u8>, Vec<u8>)> = rows
            .iter()
            .map(|(k, v)| {
                let kg = formats::keygroup::key_group_of(k, 128);
                let mut sk = Vec::new();
                formats::statekey::encode_prefix(&mut sk, kg, k, b"");
                (kg.0, sk, v.clone())
            })
            .collect();
        entries.sort();
        let mut w = SnapshotWriter::new(states.clone(), range);
        for (kg, k, v) in &entries {
            w.add(0, KeyGroup(*kg), k, v).expect("add");
        }
        let bytes = w.finish().expect("finish");
        let path = format!("chk-{id}/shard-0.snapshot");
        let m = Manifest {
            job: job.into(),
            checkpoint: CheckpointId(id),
            parent: (id > 1).then(|| CheckpointId(id - 1)),
            created_ms: 0,
            max_key_groups: 128,
            backend: "heap".into(),
            key: Some(key),
            states,
            shards: vec![ShardSnapshot {
                shard: 0,
                range,
                format: Default::default(),
                files: vec![FileRef::of(&path, &bytes)],
                source_position: serde_json::Value::Null,
                operator_state: Vec::new(),
            }],
        };
        publish(&mut StdFs, root, &m, &[Payload { path, bytes }]).expect("publish");
    }

    /// Records `bytes` as the size and crc32 of chk-1's snapshot in its manifest, so that
    /// only what the files carry themselves can tell they were damaged.
    fn fix_crc(root: &std::path::Path, bytes: &[u8]) {
        let mp = formats::layout::manifest_path(root, CheckpointId(1));
        let mut m = Manifest::decode(&std::fs::read(&mp).expect("read")).expect("decode");
        let path = m.shards[0].files[0].path.clone();
        m.shards[0].files[0] = FileRef::of(&path, bytes);
        std::fs::write(&mp, m.encode().expect("encode")).expect("write");
    }

    /// Checkpoint `id` of job "j": key "k<i>" counted `i * id` for i in 0..10.
    fn checkpoint(root: &std::path::Path, id: u64) {
        let rows: Vec<(Vec<u8>, i64)> = (0..10u64).map(|i| (format!("k{i}").into_bytes(), (i * id) as i64)).collect();
        publish_one(root, "j", id, ValueEncoding::Utf8, &rows);
    }

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("j");
        std::fs::create_dir(&root).expect("mkdir");
        checkpoint(&root, 1);
        checkpoint(&root, 2);
        (d, root)
    }

    #[test]
    fn inspect_shows_the_newest_checkpoint() {
        let (_d, root) = setup();
        let (code, out, _) = statetool(&["inspect", root.to_str().expect("utf8")]);
        assert_eq!(code, 0);
        assert!(out.starts_with("checkpoint 2 of job \"j\"  parent 1"), "{out}");
        assert!(out.contains("count") && out.contains("i64"), "{out}");
        let (code, out, _) = statetool(&["inspect", root.join("chk-1").to_str().expect("utf8"), "--json"]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["manifest"]["checkpoint"], 1);
    }

    #[test]
    fn dump_renders_values_and_filters() {
        let (_d, root) = setup();
        // Pins: dump prints every entry of the newest checkpoint once, with its value.
        let (code, out, _) = statetool(&["dump", root.to_str().expect("utf8")]);
        assert_eq!(code, 0);
        let mut got: Vec<(String, i64)> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                (v["key"].as_str().expect("key").to_owned(), v["value"].as_i64().expect("value"))
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, i64)> = (0..10).map(|i| (format!("k{i}"), 2 * i)).collect();
        want.sort();
        assert_eq!(got, want, "{out}");
        let (code, out, _) = statetool(&["dump", root.to_str().expect("utf8"), "--key", "k7"]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one json line");
        assert_eq!(
            (v["key"].as_str(), v["value"].as_i64(), v["state"].as_str()),
            (Some("k7"), Some(14), Some("count"))
        );
    }

    #[test]
    fn numeric_keys_render_as_numbers() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("n");
        std::fs::create_dir(&root).expect("mkdir");
        publish_one(&root, "n", 1, ValueEncoding::U64, &[(77u64.to_le_bytes().to_vec(), 5)]);
        let (code, out, _) = statetool(&["dump", root.to_str().expect("utf8"), "--key", "77"]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one line");
        assert_eq!((v["key"].as_u64(), v["value"].as_i64()), (Some(77), Some(5)));
    }

    #[test]
    fn dump_renders_decimal_state_exactly() {
        // Pins FORMAT.md §4.2 through statetool: a `decimal` state (the pipeline's exact
        // sums) is listed as such by inspect and dumped as exact decimal text in a JSON
        // string, digits a double would lose included.
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("sums");
        std::fs::create_dir(&root).expect("mkdir");
        let sum = StateDescriptor {
            name: "sum".into(),
            kind: StateKind::Value,
            value: ValueEncoding::Decimal,
            user_key: None,
            ttl: None,
        };
        let dec = |negative, scale, mantissa| {
            formats::value::Decimal { negative, scale, mantissa }.encode().expect("in range").to_vec()
        };
        let rows = [
            (b"a".to_vec(), dec(false, 0, 9_007_199_254_740_994)),
            (b"b".to_vec(), dec(false, 2, 30)),
            (b"c".to_vec(), dec(true, 28, 79_228_162_514_264_337_593_543_950_335)),
        ];
        publish_states(&root, "sums", 1, ValueEncoding::Utf8, vec![sum], &rows);
        let (code, out, err) = statetool(&["inspect", root.to_str().expect("utf8")]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["sum", "value", "decimal", "-"]),
            "{out}"
        );
        let (code, out, err) = statetool(&["dump", root.to_str().expect("utf8")]);
        assert_eq!(code, 0, "{err}");
        let mut got: Vec<(String, serde_json::Value)> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .map(|v| (v["key"].as_str().unwrap_or_default().to_owned(), v["value"].clone()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("a".to_owned(), serde_json::json!("9007199254740994")),
                ("b".to_owned(), serde_json::json!("0.3")),
                ("c".to_owned(), serde_json::json!("-7.9228162514264337593543950335")),
            ]
        );
    }

    #[test]
    fn verify_finds_and_names_corruption() {
        let (_d, root) = setup();
        let (code, out, _) = statetool(&["verify", root.to_str().expect("utf8")]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("2 intact, 0 with problems"), "{out}");
        let snap = root.join("chk-1").join("shard-0.snapshot");
        let mut b = std::fs::read(&snap).expect("read");
        b[40] ^= 1;
        std::fs::write(&snap, b).expect("write");
        let (code, out, _) = statetool(&["verify", root.to_str().expect("utf8")]);
        assert_eq!(code, 1, "problems exit 1: {out}");
        assert!(
            out.contains("chk-1  PROBLEM") && out.contains("shard-0.snapshot") && out.contains("checksum"),
            "{out}"
        );
    }

    #[test]
    fn dump_of_many_batches_prints_every_entry_once_in_reading_order() {
        // Pins: a dump of several MiB (many of dump's 1 MiB batches, rendered on
        // parallel threads) prints every entry exactly once, with its value, in the order
        // the checkpoint holds them (key group, then key), as one JSON object per line.
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("big");
        std::fs::create_dir(&root).expect("mkdir");
        let blob = StateDescriptor {
            name: "blob".into(),
            kind: StateKind::Value,
            value: ValueEncoding::Bytes,
            user_key: None,
            ttl: None,
        };
        let rows: Vec<(Vec<u8>, Vec<u8>)> =
            (0..40_000u64).map(|i| (i.to_be_bytes().to_vec(), (0..100).map(|j| (i * 7 + j) as u8).collect())).collect();
        publish_states(&root, "big", 1, ValueEncoding::U64, vec![blob], &rows);
        let (code, out, err) = statetool(&["dump", root.to_str().expect("utf8")]);
        assert_eq!(code, 0, "{err}");
        let got: Vec<(u64, u64, Vec<u8>)> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
                let bytes =
                    v["value"].as_array().expect("bytes").iter().map(|b| b.as_u64().expect("n") as u8).collect();
                (v["key_group"].as_u64().expect("kg"), v["key"].as_u64().expect("key"), bytes)
            })
            .collect();
        // Stored keys sort by key group, then by their bytes; a u64 key renders from
        // its bytes read little-endian (FORMAT.md §4).
        let mut stored: Vec<(u64, &Vec<u8>, &Vec<u8>)> =
            rows.iter().map(|(k, v)| (u64::from(formats::keygroup::key_group_of(k, 128).0), k, v)).collect();
        stored.sort();
        let want: Vec<(u64, u64, Vec<u8>)> = stored
            .into_iter()
            .map(|(kg, k, v)| (kg, u64::from_le_bytes(k.as_slice().try_into().expect("8 bytes")), v.clone()))
            .collect();
        assert_eq!(got.len(), want.len());
        let first = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            first.is_none(),
            "entries out of order, lost or repeated from line {first:?}: {:?} against {:?}",
            first.map(|i| (&got[i].0, &got[i].1)),
            first.map(|i| (&want[i].0, &want[i].1))
        );
    }

    #[test]
    fn dump_checks_every_files_crc32_beside_what_it_reads() {
        // Pins: the crc32 pass that runs beside the reading: a flipped byte in the block
        // of the first key group of chk-2's snapshot, which `dump --key-group` of the
        // last key group never reads, still makes the dump exit 2 naming the file; the
        // undamaged checkpoint chk-1 dumps that key group, exit 0.
        let (_d, root) = setup();
        let kgs: Vec<u16> =
            (0..10).map(|i| formats::keygroup::key_group_of(format!("k{i}").as_bytes(), 128).0).collect();
        let (first, last) = (kgs.iter().min().copied().unwrap_or(0), kgs.iter().max().copied().unwrap_or(0));
        assert_ne!(first, last, "the keys span several key groups");
        let snap = root.join("chk-2").join("shard-0.snapshot");
        let mut b = std::fs::read(&snap).expect("read");
        b[40] ^= 1;
        std::fs::write(&snap, &b).expect("write");
        let last = last.to_string();
        let (code, out, err) = statetool(&["dump", root.join("chk-2").to_str().expect("utf8"), "--key-group", &last]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("chk-2/shard-0.snapshot") && err.contains("checksum"), "{err}");
        let (code, out, err) = statetool(&["dump", root.join("chk-1").to_str().expect("utf8"), "--key-group", &last]);
        assert!(code == 0 && !out.is_empty(), "{out}{err}");
    }

    #[test]
    fn verify_quick_checks_files_and_dump_limit_stops() {
        // Pins: `verify --quick` checks the files without reading a data block: a flipped
        // byte in a block's payload passes it (the full verify's work), one in the
        // snapshot's index or footer is named, exit 1; and `dump --limit N` prints exactly
        // N of the entries, exit 0.
        let (_d, root) = setup();
        let r = root.to_str().expect("utf8");
        let (code, out, _) = statetool(&["verify", "--quick", r]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("no entry read (--quick)") && out.contains("2 intact"), "{out}");
        let (code, out, _) = statetool(&["dump", r, "--limit", "3"]);
        assert_eq!((code, out.lines().count()), (0, 3), "{out}");
        let (code, out, _) = statetool(&["dump", r, "--limit", "100"]);
        assert_eq!((code, out.lines().count()), (0, 10), "{out}");
        let snap = root.join("chk-1").join("shard-0.snapshot");
        let good = std::fs::read(&snap).expect("read");
        let mut b = good.clone();
        b[40] ^= 1;
        std::fs::write(&snap, &b).expect("write");
        fix_crc(&root, &b);
        let (code, out, _) = statetool(&["verify", "--quick", r]);
        assert_eq!(code, 0, "a block's payload is not read: {out}");
        let (code, out, _) = statetool(&["verify", r]);
        assert!(code == 1 && out.contains("chk-1  PROBLEM") && out.contains("shard-0.snapshot"), "{out}");
        for from_end in [2, 12] {
            let mut b = good.clone();
            let at = b.len() - from_end;
            b[at] ^= 1;
            std::fs::write(&snap, &b).expect("write");
            fix_crc(&root, &b);
            let (code, out, _) = statetool(&["verify", "--quick", r]);
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("structure") && out.contains("shard-0.snapshot"), "byte {at}: {out}");
        }
    }

    #[test]
    fn gc_dry_run_then_remove() {
        let (_d, root) = setup();
        let (code, out, _) = statetool(&["gc", root.to_str().expect("utf8"), "--dry-run"]);
        assert_eq!(code, 0);
        assert!(out.contains("remove    chk-1 (subsumed") && out.contains("dry run"), "{out}");
        assert!(root.join("chk-1").exists(), "dry run removes nothing");
        let (code, _, _) = statetool(&["gc", root.to_str().expect("utf8")]);
        assert_eq!(code, 0);
        assert!(!root.join("chk-1").exists() && root.join("chk-2").join("_manifest").exists());
    }

    #[test]
    fn not_a_checkpoint_is_a_usage_error() {
        let d = tempfile::tempdir().expect("tempdir");
        let (code, _, err) = statetool(&["inspect", d.path().to_str().expect("utf8")]);
        assert_eq!(code, 2);
        assert!(err.contains("no chk-<n> directories"), "{err}");
    }
}
