//! The checkpoint protocol's tests, beside `checkpoint.rs` so that module does not
//! import `gc` (which imports it).
//!
//! Crash images (invariants 10.1–10.3): with checkpoint 1 published, crash after
//! every operation of publishing checkpoint 2 (and of garbage collection) under all
//! three loss models; restore must find checkpoint 1 or 2, intact, in 100% of images.
use super::*;
use crate::canary;
use crate::gc::{execute_gc, plan_gc};
use crate::keygroup::KeyGroupRange;
use crate::simfs::{LossModel, SimFs};

fn file(path: &str, bytes: &[u8]) -> (FileRef, Payload) {
    (FileRef::of(path, bytes), Payload { path: path.into(), bytes: bytes.to_vec() })
}

/// Checkpoint `id` with two shards: one new shared file each, one borrowed shared
/// file (from checkpoint 1) when `borrow`, and an owned metadata file per shard.
fn checkpoint(id: u64, borrow: bool) -> (Manifest, Vec<Payload>) {
    let mut payloads = Vec::new();
    let mut shards = Vec::new();
    for s in 0..2u16 {
        let mut files = Vec::new();
        let (r, p) = file(&format!("shared/sst-{id}-{s}"), format!("sst data {id} {s}").repeat(10).as_bytes());
        files.push(r);
        payloads.push(p);
        if borrow {
            let b = format!("sst data 1 {s}").repeat(10);
            files.push(file(&format!("shared/sst-1-{s}"), b.as_bytes()).0);
        }
        let (r, p) = file(&format!("chk-{id}/shard-{s}/MANIFEST"), format!("meta {id} {s}").as_bytes());
        files.push(r);
        payloads.push(p);
        shards.push(crate::manifest::ShardSnapshot {
            shard: s,
            range: KeyGroupRange { start: s * 64, end: (s + 1) * 64 },
            format: crate::manifest::ShardFormat::Snapshot,
            files,
            source_position: serde_json::json!({ "offset": id * 100 }),
            operator_state: Vec::new(),
        });
    }
    let m = Manifest {
        job: "job".into(),
        checkpoint: CheckpointId(id),
        parent: (id > 1).then(|| CheckpointId(id - 1)),
        created_ms: id,
        max_key_groups: 128,
        backend: "rocksdb".into(),
        key: None,
        states: Vec::new(),
        shards,
    };
    (m, payloads)
}

fn root() -> PathBuf {
    PathBuf::from("/ck/job")
}

fn base() -> SimFs {
    let mut fs = SimFs::new();
    fs.create_dir(Path::new("/ck")).expect("mkdir");
    fs.create_dir(&root()).expect("mkdir");
    fs.sync_dir(Path::new("/ck")).expect("sync");
    fs.sync_dir(Path::new("/")).expect("sync");
    let (m1, p1) = checkpoint(1, false);
    canary::paused(|| publish(&mut fs, &root(), &m1, &p1)).expect("publish 1");
    fs.clear_history();
    fs
}

fn latest_id(fs: &SimFs) -> Option<u64> {
    latest(fs, &root(), Verify::Checksums).expect("discover").latest.map(|m| m.checkpoint.0)
}

/// The crash table's last row: once `publish` has returned, a crash under any loss
/// model restores checkpoint 2 (the images of the last operation are the last three).
fn assert_published_survives(images: &[(String, LossModel, SimFs)]) {
    let last = images.len().saturating_sub(crate::simfs::LOSS_MODELS.len());
    for (step, model, img) in images.get(last..).unwrap_or_default() {
        assert_eq!(latest_id(img), Some(2), "crash after {step:?}, the end of the publish, under {model:?}");
    }
}

#[test]
fn publish_then_discover() {
    let mut fs = base();
    assert_eq!(latest_id(&fs), Some(1));
    let (m2, p2) = checkpoint(2, true);
    publish(&mut fs, &root(), &m2, &p2).expect("publish 2");
    assert_eq!(latest_id(&fs), Some(2));
    assert!(publish(&mut fs, &root(), &m2, &p2).is_err(), "a published checkpoint is never overwritten");
}

#[test]
fn every_crash_image_of_a_publish_restores_old_or_new() {
    let mut fs = base();
    let before = fs.state().clone();
    let (m2, p2) = checkpoint(2, true);
    publish(&mut fs, &root(), &m2, &p2).expect("publish 2");
    let images = fs.crash_images(&before);
    assert!(images.len() >= 3 * 20, "the publish has many steps: {}", images.len());
    let mut seen = BTreeMap::new();
    for (step, model, img) in &images {
        let got = latest_id(img);
        assert!(matches!(got, Some(1) | Some(2)), "crash after {step:?} under {model:?}: restored {got:?}");
        *seen.entry((format!("{model:?}"), got)).or_insert(0) += 1;
    }
    assert_published_survives(&images);
    // Not vacuous: each model sees both outcomes.
    for m in [LossModel::KeepAll, LossModel::DropUnsyncedData, LossModel::DropUnsyncedDataAndNames] {
        assert!(
            seen.contains_key(&(format!("{m:?}"), Some(1))) && seen.contains_key(&(format!("{m:?}"), Some(2))),
            "{m:?}: {seen:?}"
        );
    }
}

#[test]
fn every_crash_image_of_gc_keeps_the_newest() {
    let mut fs = base();
    let (m2, p2) = checkpoint(2, true);
    publish(&mut fs, &root(), &m2, &p2).expect("publish 2");
    let (m3, p3) = checkpoint(3, false);
    publish(&mut fs, &root(), &m3, &p3).expect("publish 3");
    fs.clear_history();
    let before = fs.state().clone();
    let plan = plan_gc(&fs, &root(), 1, &[]).expect("plan");
    assert_eq!(plan.subsumed, vec![CheckpointId(2), CheckpointId(1)]);
    assert!(plan.orphaned_shared.contains(&"sst-1-0".to_string()));
    assert!(plan.live_shared.contains_key("sst-3-0"));
    execute_gc(&mut fs, &root(), &plan).expect("gc");
    for (step, model, img) in fs.crash_images(&before) {
        let d = latest(&img, &root(), Verify::Checksums).expect("discover");
        assert_eq!(d.latest.map(|m| m.checkpoint.0), Some(3), "crash after {step:?} under {model:?}");
    }
    assert_eq!(fs.list(&root()).expect("ls"), vec!["chk-3".to_string(), "shared".to_string()]);
}

#[test]
fn gc_keeps_a_pinned_checkpoint_and_its_shared_files_whatever_its_age() {
    // Pins no-claim restores (§10): the checkpoint a job was restored from is kept
    // with every shared file it names, while older unpinned ones still go.
    let mut fs = base();
    let (m2, p2) = checkpoint(2, true);
    publish(&mut fs, &root(), &m2, &p2).expect("publish 2");
    let (m3, p3) = checkpoint(3, false);
    publish(&mut fs, &root(), &m3, &p3).expect("publish 3");
    let plan = plan_gc(&fs, &root(), 1, &[CheckpointId(2)]).expect("plan");
    assert_eq!(plan.retained, vec![CheckpointId(3), CheckpointId(2)]);
    assert_eq!(plan.subsumed, vec![CheckpointId(1)]);
    execute_gc(&mut fs, &root(), &plan).expect("gc");
    let d = load(&fs, &root(), CheckpointId(2), Verify::Checksums).expect("the pinned checkpoint is intact");
    assert_eq!(d.checkpoint, CheckpointId(2));
}

#[test]
fn a_failed_publish_never_breaks_the_previous_checkpoint() {
    // Fail each operation of checkpoint 2 in turn (while copying shared files, while
    // writing the manifest, at the rename...), clean up, and restore checkpoint 1.
    let (m2, p2) = checkpoint(2, true);
    let mut probe = base();
    publish(&mut probe, &root(), &m2, &p2).expect("publish 2");
    let ops = probe.history_len();
    for n in 0..ops {
        let mut fs = base();
        fs.fail_at(n);
        assert!(publish(&mut fs, &root(), &m2, &p2).is_err(), "operation {n} fails");
        abort(&mut fs, &root(), CheckpointId(2)).expect("abort");
        assert_eq!(latest_id(&fs), Some(1), "after failing operation {n}");
        let plan = plan_gc(&fs, &root(), 1, &[]).expect("plan");
        execute_gc(&mut fs, &root(), &plan).expect("gc");
        assert_eq!(latest_id(&fs), Some(1), "gc after failing operation {n} keeps checkpoint 1 whole");
    }
}

/// Checkpoint `id` the way the RocksDB backend writes one: each shard's SSTs
/// (`ssts(shard)`: local name, content) put into `shared/` by content first, then the
/// owned files and the manifest. Returns the manifest and how many SSTs were written
/// (not found present). Fallible, so every operation of it can be failed.
fn try_publish_rocksdb(
    fs: &mut dyn Fs,
    id: u64,
    ssts: impl Fn(u16) -> Vec<(String, String)>,
) -> Result<(Manifest, u32), FormatError> {
    let (mut m, _) = checkpoint(id, false);
    let mut payloads = Vec::new();
    let mut written = 0;
    for s in &mut m.shards {
        let mut files = Vec::new();
        for (local, content) in ssts(s.shard) {
            let (f, new) = put_shared(fs, &root(), &local, &mut content.as_bytes(), Path::new(&local))?;
            written += u32::from(new);
            files.push(f);
        }
        let (own, p) = file(&format!("chk-{id}/shard-{}/MANIFEST-000005", s.shard), b"meta");
        s.format = crate::manifest::ShardFormat::Rocksdb;
        files.push(own);
        s.files = files;
        payloads.push(p);
    }
    publish(fs, &root(), &m, &payloads)?;
    Ok((m, written))
}

/// Every shard's instance names its one SST `000009.sst` in every checkpoint, with
/// other content (as an instance rebuilt after a restore reuses file numbers).
fn publish_incremental(fs: &mut SimFs, id: u64) -> (Manifest, u32) {
    try_publish_rocksdb(fs, id, |shard| vec![("000009.sst".into(), format!("sst {id:04} of shard {shard}").repeat(8))])
        .expect("publish")
}

/// Checkpoint `id` of an instance that kept checkpoint `id - 1`'s SST (borrowed: put
/// again, found present, not written) and flushed one new SST, as RocksDB does
/// between two checkpoints.
fn try_publish_chain(fs: &mut dyn Fs, id: u64) -> Result<Manifest, FormatError> {
    let ssts = |shard: u16| {
        (id.saturating_sub(1).max(1)..=id)
            .map(|n| (format!("{:06}.sst", 8 + n), format!("sst {n:04} of shard {shard}").repeat(8)))
            .collect()
    };
    Ok(try_publish_rocksdb(fs, id, ssts)?.0)
}

#[test]
fn a_failed_incremental_checkpoint_never_breaks_the_previous_one() {
    // Checkpoint 1 published; checkpoint 2 (one borrowed SST, one new SST per shard)
    // fails at each operation in turn: while copying SSTs into shared/, while writing
    // the owned files or the manifest, at the manifest's rename, at a directory fsync.
    // Cleanup (abort, then GC keeping one) runs; checkpoint 1 restores with every
    // file present and intact, and a retry of checkpoint 2 then publishes.
    let fresh = || {
        let mut fs = SimFs::new();
        fs.create_dir(Path::new("/ck")).expect("mkdir");
        fs.create_dir(&root()).expect("mkdir");
        let m1 = try_publish_chain(&mut fs, 1).expect("publish 1");
        fs.clear_history();
        (fs, m1)
    };
    let (mut probe, _) = fresh();
    try_publish_chain(&mut probe, 2).expect("publish 2");
    let ops = probe.history_len();
    assert!(ops >= 15, "checkpoint 2 has many operations: {ops}");
    let mut steps = BTreeSet::new();
    for n in 0..ops {
        let (mut fs, m1) = fresh();
        fs.fail_at(n);
        let e = try_publish_chain(&mut fs, 2).expect_err("the injected failure surfaces");
        steps.insert(e.to_string());
        abort(&mut fs, &root(), CheckpointId(2)).expect("abort");
        let plan = plan_gc(&fs, &root(), 1, &[]).expect("plan");
        assert_eq!(plan.retained, vec![CheckpointId(1)], "after failing operation {n}");
        execute_gc(&mut fs, &root(), &plan).expect("gc");
        let got = load(&fs, &root(), CheckpointId(1), Verify::Checksums);
        assert_eq!(got.as_ref().ok(), Some(&m1), "after failing operation {n}: {got:?}");
        for f in m1.files() {
            assert!(fs.exists(&layout::resolve(&root(), &f.path)), "{} present after failing op {n}", f.path);
        }
        assert_eq!(latest_id(&fs), Some(1));
        let m2 = try_publish_chain(&mut fs, 2).expect("the retry publishes");
        assert_eq!(latest_id(&fs), Some(2));
        assert!(m2.files().any(|f| m1.files().any(|g| g.path == f.path)), "checkpoint 2 borrows from 1");
    }
    // Not vacuous: failures hit the SST copy (tmp files in shared/), the owned files,
    // the manifest's temporary file and its rename.
    let hit = |s: &str| steps.iter().any(|x| x.contains(s));
    assert!(hit("/ck/job/shared/.") && hit("MANIFEST-000005") && hit("_manifest"), "{steps:?}");
}

#[test]
fn shared_files_are_named_by_content_not_by_instance_name() {
    let mut fs = base();
    let (m2, written) = publish_incremental(&mut fs, 2);
    assert_eq!(written, 2);
    let (m3, written) = publish_incremental(&mut fs, 3);
    assert_eq!(written, 2, "same name and size, other content: copied again");
    let names = |m: &Manifest| m.files().map(|f| f.path.clone()).collect::<Vec<_>>();
    assert!(names(&m2).iter().all(|p| !names(&m3).contains(p)), "{:?} {:?}", names(&m2), names(&m3));
    assert!(m3.files().all(|f| f.local_name() == "000009.sst" || f.local_name() == "MANIFEST-000005"));
    // Putting identical content again writes nothing and names the same file.
    let sst = "sst 0003 of shard 0".repeat(8);
    let (f, new) =
        put_shared(&mut fs, &root(), "000042.sst", &mut sst.as_bytes(), Path::new("000042.sst")).expect("put");
    assert!(!new);
    assert_eq!(Some(&f.path), m3.shards.first().and_then(|s| s.files.first()).map(|f| &f.path));
    assert_eq!(f.local_name(), "000042.sst");
    let d = latest(&fs, &root(), Verify::Checksums).expect("discover");
    assert_eq!(d.latest, Some(m3));
}

#[test]
fn every_crash_image_of_an_incremental_publish_restores_old_or_new() {
    let mut fs = base();
    let before = fs.state().clone();
    publish_incremental(&mut fs, 2);
    let images = fs.crash_images(&before);
    let mut outcomes = BTreeSet::new();
    for (step, model, img) in &images {
        let got = latest_id(img);
        assert!(matches!(got, Some(1) | Some(2)), "crash after {step:?} under {model:?}: restored {got:?}");
        outcomes.insert(got);
    }
    assert_eq!(outcomes.len(), 2, "both outcomes occur");
    assert_published_survives(&images);
}

#[test]
fn corruption_is_detected_and_named() {
    let mut fs = base();
    let p = root().join("shared").join("sst-1-0");
    let mut data = fs.read(&p).expect("read");
    if let Some(b) = data.get_mut(3) {
        *b ^= 1;
    }
    fs.write(&p, &data).expect("write");
    let d = latest(&fs, &root(), Verify::Checksums).expect("discover");
    assert!(d.latest.is_none());
    let msg = d.rejected.first().map(|(_, e)| e.to_string()).unwrap_or_default();
    assert!(msg.contains("sst-1-0") && msg.contains("checksum"), "{msg}");
    assert!(
        latest(&fs, &root(), Verify::Sizes).expect("discover").latest.is_some(),
        "sizes alone cannot see a flipped bit"
    );
}

#[test]
fn planted_bugs_are_caught() {
    // Pins: the crash-image and failure-injection tests have teeth. Each canary of
    // `canary::Canary`, planted alone, makes the test named next to it fail; the
    // tests pass unplanted (they run on their own above).
    let cases: [(Canary, &str, fn()); 5] = [
        (Canary::SkipFileFsync, "crash images of a publish", every_crash_image_of_a_publish_restores_old_or_new),
        (
            Canary::SkipFileFsync,
            "crash images of an incremental publish",
            every_crash_image_of_an_incremental_publish_restores_old_or_new,
        ),
        (Canary::SkipDirFsync, "crash images of a publish", every_crash_image_of_a_publish_restores_old_or_new),
        (
            Canary::SkipDirFsync,
            "crash images of an incremental publish",
            every_crash_image_of_an_incremental_publish_restores_old_or_new,
        ),
        (
            Canary::AbortClearsShared,
            "failed incremental checkpoints",
            a_failed_incremental_checkpoint_never_breaks_the_previous_one,
        ),
    ];
    for (c, what, test) in cases {
        let caught = canary::with(c, || std::panic::catch_unwind(test));
        assert!(caught.is_err(), "{c:?} planted, yet the {what} test passed");
    }
}
