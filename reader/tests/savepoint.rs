//! Savepoints read through `reader::for_each` (FORMAT.md §13), against the committed v3
//! fixtures of `formats/tests/fixtures/v3/`: the canonical savepoint (snapshot files,
//! read mapped) and the native one (real RocksDB files, rebuilt in a scratch directory)
//! hold the same entries and restore to exactly them.
//!
//! The native fixture is written by `generate_native_savepoint_fixture` (ignored) from
//! the canonical fixture's entries, once; it refuses to overwrite one that exists.
use std::path::{Path, PathBuf};

use formats::checkpoint::Verify;
use formats::fs::{Fs, StdFs};
use formats::keygroup::KeyGroupRange;
use formats::layout;
use formats::manifest::ShardFormat;
use formats::savepoint::{self, Form, SavepointMeta};
use formats::simfs::SimFs;
use reader::{for_each, ALL_KEY_GROUPS};

fn v3(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/v3/savepoint").join(name)
}

/// (state name, key, value) of every entry of the savepoint `sp` in `clip`.
type Entries = Vec<(String, Vec<u8>, Vec<u8>)>;

fn entries(fs: &mut dyn Fs, sp: &Path, meta: &SavepointMeta, clip: KeyGroupRange) -> Entries {
    let scratch = tempfile::tempdir().expect("scratch");
    let scratch = scratch.path().join("instance");
    let mut out = Vec::new();
    let n = for_each(fs, sp, &meta.manifest, clip, Some(&scratch), &mut |d, k, v| {
        out.push((d.name.clone(), k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", sp.display()));
    assert_eq!(n as usize, out.len());
    out.sort();
    out
}

/// Builds a RocksDB instance holding `entries` (one column family per state, WAL off,
/// flushed, as the engine's backend does) and takes a RocksDB checkpoint of it at `chk`.
fn checkpoint_instance(dir: &Path, chk: &Path, meta: &SavepointMeta, entries: &Entries) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = meta.manifest.states.iter().map(|d| {
        let mut o = rocksdb::Options::default();
        if d.kind == formats::value::StateKind::List {
            o.set_merge_operator_associative(reader::LIST_MERGE_OPERATOR, reader::concat_merge);
        }
        rocksdb::ColumnFamilyDescriptor::new(d.name.clone(), o)
    });
    let db = rocksdb::DB::open_cf_descriptors(&opts, dir, cfs).expect("open");
    let mut w = rocksdb::WriteOptions::default();
    w.disable_wal(true);
    for (state, k, v) in entries {
        let cf = db.cf_handle(state).expect("column family");
        db.put_cf_opt(cf, k, v, &w).expect("put");
    }
    let cfs: Vec<_> = meta.manifest.states.iter().filter_map(|d| db.cf_handle(&d.name)).collect();
    db.flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default()).expect("flush");
    rocksdb::checkpoint::Checkpoint::new(&db).expect("checkpoint").create_checkpoint(chk).expect("create");
}

/// Writes a native savepoint at `sp` holding the entries of the canonical one.
fn write_native(sp: &Path) -> SavepointMeta {
    let canonical = savepoint::load(&StdFs, &v3("canonical"), Verify::Checksums).expect("canonical fixture");
    let work = tempfile::tempdir().expect("work");
    let mut fs = StdFs;
    savepoint::begin(&mut fs, sp).expect("begin");
    let mut manifest = canonical.manifest.clone();
    manifest.backend = "rocksdb".into();
    for shard in &mut manifest.shards {
        let all = entries(&mut StdFs, &v3("canonical"), &canonical, shard.range);
        let chk = work.path().join(format!("shard-{}.chk", shard.shard));
        checkpoint_instance(&work.path().join(format!("shard-{}", shard.shard)), &chk, &canonical, &all);
        let mut files = Vec::new();
        for name in fs.list(&chk).expect("ls") {
            let rel = layout::savepoint_owned_path(shard.shard, &name);
            files.push(savepoint::copy_in(&mut fs, sp, &rel, &chk.join(&name), None).expect("copy in"));
        }
        shard.format = ShardFormat::Rocksdb;
        shard.files = files;
    }
    let meta = SavepointMeta { form: Form::Native, manifest };
    savepoint::commit(&mut fs, sp, &meta).expect("commit");
    meta
}

#[test]
#[ignore = "writes the committed native savepoint fixture; run once"]
fn generate_native_savepoint_fixture() {
    if !v3("native").exists() {
        write_native(&v3("native"));
    }
}

#[test]
fn v3_canonical_and_native_savepoints_restore_to_the_same_entries() {
    // Pins: both committed v3 savepoints load with checksums and restore, whole and
    // clipped to each half of the key groups, to the same entries (the canonical
    // fixture's exact entries are pinned in formats/tests/backward_compatibility.rs);
    // the canonical one read mapped (StdFs) and in memory (SimFs) alike.
    let canonical = savepoint::load(&StdFs, &v3("canonical"), Verify::Checksums).expect("canonical");
    let native = savepoint::load(&StdFs, &v3("native"), Verify::Checksums).expect("native");
    assert_eq!((canonical.form, native.form), (Form::Canonical, Form::Native));
    assert!(native.manifest.shards.iter().all(|s| s.format == ShardFormat::Rocksdb));
    assert!(native.manifest.files().any(|f| f.path.ends_with(".sst")), "real SSTs");
    let whole = entries(&mut StdFs, &v3("canonical"), &canonical, ALL_KEY_GROUPS);
    assert_eq!(whole.len(), 8);
    assert_eq!(entries(&mut StdFs, &v3("native"), &native, ALL_KEY_GROUPS), whole);
    for clip in
        [KeyGroupRange { start: 0, end: 4 }, KeyGroupRange { start: 4, end: 8 }, KeyGroupRange { start: 5, end: 6 }]
    {
        let c = entries(&mut StdFs, &v3("canonical"), &canonical, clip);
        assert_eq!(entries(&mut StdFs, &v3("native"), &native, clip), c, "{clip:?}");
        assert!(c.len() < whole.len() && !c.is_empty(), "{clip:?}");
    }
    let mut sim = SimFs::new();
    let root = PathBuf::from("/sp");
    formats::fs::create_dir_all(&mut sim, &root).expect("mkdir");
    for name in StdFs.list(&v3("canonical")).expect("ls") {
        sim.write(&root.join(&name), &std::fs::read(v3("canonical").join(&name)).expect("read")).expect("write");
    }
    assert_eq!(entries(&mut sim, &root, &canonical, ALL_KEY_GROUPS), whole);
}

#[test]
fn a_savepoint_copied_elsewhere_restores() {
    // Pins: savepoints are relocatable: a copy of the native fixture in another
    // directory loads and restores the same entries.
    let native = savepoint::load(&StdFs, &v3("native"), Verify::Checksums).expect("native");
    let d = tempfile::tempdir().expect("tempdir");
    let copy = d.path().join("moved");
    for f in native.manifest.files().map(|f| f.path.clone()).chain([layout::SAVEPOINT_METADATA_NAME.to_owned()]) {
        let to = layout::resolve(&copy, &f);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(layout::resolve(&v3("native"), &f), &to).expect("copy");
    }
    let moved = savepoint::load(&StdFs, &copy, Verify::Checksums).expect("moved");
    assert_eq!(
        entries(&mut StdFs, &copy, &moved, ALL_KEY_GROUPS),
        entries(&mut StdFs, &v3("native"), &native, ALL_KEY_GROUPS)
    );
}

#[test]
fn a_mapped_snapshot_that_is_empty_or_cut_is_an_error_naming_it() {
    // Pins: the mapped read path refuses an empty or truncated snapshot file with an
    // error naming the file (no panic, no SIGBUS on a file that is not changing).
    let d = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(v3("canonical").join("shard-0.snapshot")).expect("read");
    for len in [0, 7, good.len() / 2, good.len() - 1] {
        let p = d.path().join(format!("cut-{len}.snapshot"));
        std::fs::write(&p, good.get(..len).expect("prefix")).expect("write");
        let e = reader::for_each_in_snapshot(&StdFs, &p, ALL_KEY_GROUPS, &mut |_, _, _| Ok(()))
            .expect_err("a cut file is refused");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    }
}
