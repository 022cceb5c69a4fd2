//! Tests of the savepoint protocol (FORMAT.md §13) over the simulated file system.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::canary;
use crate::checkpoint::OwnedFile;
use crate::id::CheckpointId;
use crate::keygroup::KeyGroupRange;
use crate::manifest::ShardSnapshot;
use crate::simfs::{LossModel, SimFs};

fn sp() -> PathBuf {
    PathBuf::from("/sps/savepoint-job-7-00002a")
}

fn meta(form: Form, files: Vec<Vec<FileRef>>) -> SavepointMeta {
    let n = files.len() as u16;
    let shards = files
        .into_iter()
        .enumerate()
        .map(|(i, files)| {
            let i = i as u16;
            ShardSnapshot {
                shard: i,
                range: KeyGroupRange { start: i * (128 / n), end: (i + 1) * (128 / n) },
                format: if files.iter().any(|f| f.path.contains('/')) {
                    ShardFormat::Rocksdb
                } else {
                    ShardFormat::Snapshot
                },
                files,
                source_position: serde_json::json!([{ "id": i, "next": 10 }]),
                operator_state: Vec::new(),
            }
        })
        .collect();
    SavepointMeta {
        form,
        manifest: Manifest {
            job: "job".into(),
            checkpoint: CheckpointId(7),
            parent: None,
            created_ms: 1,
            max_key_groups: 128,
            backend: "rocksdb".into(),
            key: None,
            states: Vec::new(),
            shards,
        },
    }
}

/// A file system holding `/sps` and a shard's local RocksDB checkpoint to copy from.
fn base() -> SimFs {
    let mut fs = SimFs::new();
    fs::create_dir_all(&mut fs, Path::new("/work/shard-1.chk-7")).expect("mkdir");
    fs::create_dir_all(&mut fs, Path::new("/sps")).expect("mkdir");
    for (name, data) in sources() {
        let p = Path::new("/work/shard-1.chk-7").join(name);
        fs.write(&p, data.as_bytes()).expect("write");
        fs.sync_file(&p).expect("sync");
    }
    fs.sync_dir(Path::new("/work/shard-1.chk-7")).expect("sync");
    fs.clear_history();
    fs
}

fn sources() -> [(&'static str, String); 2] {
    [("000012.sst", "sst bytes ".repeat(50)), ("CURRENT", "MANIFEST-000005\n".into())]
}

/// Writes a savepoint the way the engine does: begin, a streamed snapshot file for
/// shard 0 (canonical shard) and shard 1's RocksDB files copied in, commit.
fn write(fs: &mut dyn Fs) -> Result<SavepointMeta, FormatError> {
    begin(fs, &sp())?;
    let rel = layout::savepoint_snapshot_path(0);
    let snapshot = b"not parsed here: a snapshot file's bytes".repeat(3);
    let mut f = OwnedFile::create(fs, &sp(), &rel)?;
    f.write_all(&snapshot).map_err(|e| FormatError::io(sp().join(&rel), e))?;
    f.finish()?;
    let mut shard1 = Vec::new();
    for (name, _) in sources() {
        let src = Path::new("/work/shard-1.chk-7").join(name);
        shard1.push(copy_in(fs, &sp(), &layout::savepoint_owned_path(1, name), &src, None)?);
    }
    let m = meta(Form::Native, vec![vec![FileRef::of(&rel, &snapshot)], shard1]);
    commit(fs, &sp(), &m)?;
    Ok(m)
}

fn is_refusal(e: &FormatError) -> bool {
    matches!(e, FormatError::Savepoint { .. })
}

#[test]
fn metadata_round_trips_and_refuses_checkpoint_shapes() {
    // Pins: 13.1–13.3: decode(encode(m)) = m; a parent, a checkpoint path, a canonical
    // savepoint with a RocksDB shard and another envelope kind are refused.
    let snap = |i: u16| vec![FileRef::of(&layout::savepoint_snapshot_path(i), b"x")];
    let m = meta(Form::Canonical, vec![snap(0), snap(1)]);
    let bytes = m.encode().expect("encode");
    assert_eq!(SavepointMeta::decode(&bytes).expect("decode"), m);
    let body = envelope::decode(Kind::SavepointMetadata, &bytes).expect("envelope").1;
    assert!(body.starts_with(b"{\n  \"form\": \"canonical\",\n  \"job\""), "form first");

    let mut parent = m.clone();
    parent.manifest.parent = Some(CheckpointId(6));
    assert!(parent.encode().is_err_and(|e| e.to_string().contains("no parent")));
    let mut chk = m.clone();
    if let Some(f) = chk.manifest.shards.get_mut(0).and_then(|s| s.files.get_mut(0)) {
        f.path = "chk-7/shard-0.snapshot".into();
    }
    assert!(chk.encode().is_err_and(|e| e.to_string().contains("not shard-0.snapshot")));
    let mut other_shard = m.clone();
    if let Some(f) = other_shard.manifest.shards.get_mut(0).and_then(|s| s.files.get_mut(0)) {
        f.path = "shard-1.snapshot".into();
    }
    assert!(other_shard.encode().is_err());
    let native = meta(Form::Canonical, vec![snap(0), vec![FileRef::of("shard-1/CURRENT", b"x")]]);
    assert!(native.encode().is_err_and(|e| e.to_string().contains("canonical")));
    assert!(SavepointMeta { form: Form::Native, ..native }.encode().is_ok());
    let as_manifest = envelope::encode(Kind::CheckpointManifest, 2, body).expect("envelope");
    assert!(matches!(SavepointMeta::decode(&as_manifest), Err(FormatError::Invalid { what: "envelope kind", .. })));
    assert_eq!("native".parse::<Form>(), Ok(Form::Native));
    assert_eq!(Form::Canonical.to_string(), "canonical");
    assert!("Native".parse::<Form>().is_err());
}

#[test]
fn write_load_relocate_dispose() {
    // Pins: a written savepoint loads with checksums, still loads after its directory
    // is moved (relocatable), and dispose removes it; copy_in refuses a path outside
    // the savepoint layout.
    let mut fs = base();
    let m = write(&mut fs).expect("write");
    assert_eq!(load(&fs, &sp(), Verify::Checksums).expect("load"), m);
    assert!(!fs.exists(&layout::savepoint_marker_path(&sp())), "marker removed");
    fs.rename(&sp(), Path::new("/sps/moved")).expect("move");
    assert_eq!(load(&fs, Path::new("/sps/moved"), Verify::Checksums).expect("load moved"), m);
    dispose(&mut fs, Path::new("/sps/moved")).expect("dispose");
    assert!(!fs.exists(Path::new("/sps/moved")));
    let e = copy_in(&mut fs, &sp(), "../escape", Path::new("/work/shard-1.chk-7/CURRENT"), None);
    assert!(e.is_err_and(|e| is_refusal(&e)));
}

#[test]
fn begin_refuses_an_existing_target_and_load_explains_what_it_found() {
    // Pins: begin refuses a non-empty or non-directory target ("already exists"),
    // accepts an empty directory; load names an incomplete savepoint and a directory
    // that is none; a damaged file is named by path.
    let mut fs = base();
    fs.write(Path::new("/sps/file"), b"x").expect("write");
    let e = begin(&mut fs, Path::new("/sps/file")).expect_err("a file");
    assert!(e.to_string().contains("savepoint target /sps/file already exists"), "{e}");
    fs.create_dir(&sp()).expect("mkdir");
    begin(&mut fs, &sp()).expect("an empty directory is fine");
    let e = load(&fs, &sp(), Verify::Sizes).expect_err("incomplete");
    assert!(is_refusal(&e) && e.to_string().contains("incomplete"), "{e}");
    let e = begin(&mut fs, &sp()).expect_err("not empty");
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = load(&fs, Path::new("/sps"), Verify::Sizes).expect_err("not one");
    assert!(e.to_string().contains("/sps is not a savepoint (no _savepoint)"), "{e}");

    let mut fs = base();
    write(&mut fs).expect("write");
    let p = sp().join("shard-1").join("CURRENT");
    fs.write(&p, b"MANIFEST-000006\n").expect("damage");
    let e = load(&fs, &sp(), Verify::Checksums).expect_err("damaged");
    assert!(matches!(&e, FormatError::File { path, .. } if path == &p), "{e}");
    fs.remove_file(&p).expect("rm");
    let e = load(&fs, &sp(), Verify::Sizes).expect_err("missing");
    assert!(matches!(&e, FormatError::Io { path, .. } if path == &p), "{e}");
}

#[test]
fn dispose_refuses_what_is_not_a_savepoint() {
    // Pins: dispose removes only savepoints (complete, incomplete, or the empty
    // directory a crash in begin leaves); a checkpoint root or any other directory is
    // refused and left untouched.
    let mut fs = base();
    fs::create_dir_all(&mut fs, Path::new("/ck/job/chk-3")).expect("mkdir");
    fs.write(Path::new("/ck/job/chk-3/_manifest"), b"m").expect("write");
    for not_one in ["/ck/job", "/ck/job/chk-3", "/work", "/nope"] {
        let e = dispose(&mut fs, Path::new(not_one)).expect_err(not_one);
        assert!(is_refusal(&e) && e.to_string().contains("not a savepoint"), "{e}");
    }
    assert!(fs.exists(Path::new("/ck/job/chk-3/_manifest")) && fs.exists(Path::new("/work/shard-1.chk-7/CURRENT")));
    begin(&mut fs, &sp()).expect("begin");
    dispose(&mut fs, &sp()).expect("an incomplete one");
    fs.create_dir(&sp()).expect("mkdir");
    dispose(&mut fs, &sp()).expect("an empty directory");
    assert!(!fs.exists(&sp()));
}

/// What a crash image holds at the savepoint: Ok(true) a complete savepoint with every
/// file intact, Ok(false) a refusal (incomplete or not a savepoint); Err anything else.
fn outcome(img: &SimFs, want: &SavepointMeta) -> Result<bool, String> {
    match load(img, &sp(), Verify::Checksums) {
        Ok(m) if &m == want => Ok(true),
        Ok(m) => Err(format!("loaded other metadata {m:?}")),
        Err(e) if is_refusal(&e) => Ok(false),
        Err(e) => Err(format!("half-valid: {e}")),
    }
}

#[test]
fn every_crash_image_of_a_savepoint_is_complete_or_refused() {
    // Pins: 13.4: a crash after any operation of a savepoint write, under every loss
    // model, leaves a savepoint that loads with every file intact or one that load
    // refuses as incomplete / not a savepoint; never one with a missing or short file.
    // Once commit returned, every model loads it; and both outcomes occur.
    let mut fs = base();
    let before = fs.state().clone();
    let m = write(&mut fs).expect("write");
    let images = fs.crash_images(&before);
    assert!(images.len() > 3 * 15, "the write has many steps: {}", images.len());
    let mut seen = BTreeSet::new();
    for (step, model, img) in &images {
        let got = outcome(img, &m);
        assert!(got.is_ok(), "crash after {step:?} under {model:?}: {got:?}");
        seen.insert((format!("{model:?}"), got.clone()));
        // Whatever a crash left, dispose removes it (or finds nothing to remove).
        let mut img = img.clone();
        if img.exists(&sp()) {
            dispose(&mut img, &sp()).unwrap_or_else(|e| panic!("dispose after {step:?} under {model:?}: {e}"));
        }
    }
    let last = images.len() - crate::simfs::LOSS_MODELS.len();
    for (step, model, img) in images.get(last..).unwrap_or_default() {
        assert_eq!(outcome(img, &m), Ok(true), "after commit ({step:?}) under {model:?}");
    }
    for model in [LossModel::KeepAll, LossModel::DropUnsyncedData, LossModel::DropUnsyncedDataAndNames] {
        for complete in [true, false] {
            assert!(seen.contains(&(format!("{model:?}"), Ok(complete))), "{model:?} {complete}: {seen:?}");
        }
    }
}

#[test]
fn every_crash_image_of_a_dispose_is_complete_or_refused() {
    // Pins: a crash during dispose never leaves a savepoint that loads with a file
    // missing, and a second dispose always finishes the job.
    let mut fs = base();
    let m = write(&mut fs).expect("write");
    fs.clear_history();
    let before = fs.state().clone();
    dispose(&mut fs, &sp()).expect("dispose");
    for (step, model, img) in fs.crash_images(&before) {
        assert!(outcome(&img, &m).is_ok(), "crash after {step:?} under {model:?}: {:?}", outcome(&img, &m));
        let mut img = img;
        if img.exists(&sp()) {
            dispose(&mut img, &sp()).unwrap_or_else(|e| panic!("re-dispose after {step:?} under {model:?}: {e}"));
        }
    }
}

#[test]
fn planted_bugs_are_caught_by_the_savepoint_crash_test() {
    // Pins: the crash-image test has teeth: without file fsyncs (copy_in) or directory
    // fsyncs (commit) it fails.
    for c in [canary::Canary::SkipFileFsync, canary::Canary::SkipDirFsync] {
        let caught =
            canary::with(c, || std::panic::catch_unwind(every_crash_image_of_a_savepoint_is_complete_or_refused));
        assert!(caught.is_err(), "{c:?} planted, yet the savepoint crash-image test passed");
    }
}
