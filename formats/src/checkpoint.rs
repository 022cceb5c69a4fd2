//! The checkpoint protocol's file-system side, over [`Fs`] so crash images can test it
//! (docs/FORMAT.md §10): publishing, finding the latest published checkpoint, aborting
//! a failed attempt, and garbage collection. Pure decisions plus the writes they imply;
//! no engine, no RocksDB.
//!
//! Publish order (each step completes before the next starts):
//! 1. create `shared/` and `chk-<n>/` if missing; fsync the root.
//! 2. each new shared file: write `shared/.<name>.tmp`, fsync, rename to `shared/<name>`.
//!    Each owned file: write `chk-<n>/<path>`, fsync.
//! 3. fsync `shared/`, the directories of owned files, `chk-<n>/`.
//! 4. write `chk-<n>/_manifest.tmp`, fsync, rename to `_manifest`, fsync `chk-<n>/`,
//!    fsync the root.
//!
//! A checkpoint is published once step 4's directory fsync returns; until then restore
//! ignores it. Shared files are renamed into place only after their data is durable, so
//! a name in `shared/` always holds complete data.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::FormatError;
use crate::fs::Fs;
use crate::layout;
use crate::manifest::{CheckpointId, FileRef, Manifest};
use crate::publish;

pub use crate::gc::{execute_gc, plan_gc, plan_gc_keeping, GcPlan, Keep, Why};

/// A file a checkpoint writes (a shared file not yet present, or an owned file).
#[derive(Debug, Clone)]
pub struct Payload {
    /// As in the manifest: `shared/<name>` or `chk-<n>/<path>`.
    pub path: String,
    pub bytes: Vec<u8>,
}

use crate::canary::{planted, Canary};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |e| FormatError::io(path, e)
}

fn ensure_dir(fs: &mut dyn Fs, dir: &Path) -> Result<(), FormatError> {
    if !fs.is_dir(dir) {
        fs.create_dir(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// Streams the instance file `local` (read from `from`, which is `from_path`) into
/// `shared/` under a name derived from its content (xxh3-128, hashed while copying: one
/// read, memory bounded by `publish::STREAM_CHUNK_BYTES`), unless a file of that name and
/// size is already there. Returns the manifest entry and whether the file was added. The
/// copy goes to a temporary name, is fsynced, then renamed, so a name in `shared/` only
/// ever holds complete, durable data; `publish` fsyncs `shared/`.
pub fn put_shared(
    fs: &mut dyn Fs,
    root: &Path,
    local: &str,
    from: &mut dyn std::io::Read,
    from_path: &Path,
) -> Result<(FileRef, bool), FormatError> {
    let shared = layout::shared_dir(root);
    ensure_dir(fs, &shared)?;
    let tmp = layout::shared_incoming_file(root);
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut crc = crc32fast::Hasher::new();
    let size = publish::stream_durable(fs, &tmp, from, from_path, &mut |piece| {
        hash.update(piece);
        crc.update(piece);
    })?;
    let name = layout::shared_file_name(hash.digest128(), local);
    let path = shared.join(&name);
    let present = fs.exists(&path) && fs.size(&path).ok() == Some(size);
    if present {
        fs.remove_file(&tmp).map_err(io(&tmp))?;
    } else {
        fs.rename(&tmp, &path).map_err(io(&path))?;
    }
    let file =
        FileRef { path: layout::shared_file_path(&name), size, crc32: crc.finalize(), local: Some(local.to_owned()) };
    Ok((file, !present))
}

/// Publishes checkpoint `m` under `root`. Every file of `m` must be either in `payloads`
/// or already present in `shared/`; payload sizes and checksums must match `m`. Nothing
/// is touched when they do not.
pub fn publish(fs: &mut dyn Fs, root: &Path, m: &Manifest, payloads: &[Payload]) -> Result<(), FormatError> {
    check_payloads(fs, root, m, payloads, false)?;
    begin(fs, root, m.checkpoint)?;
    write_and_commit(fs, root, m, payloads)
}

/// Step 1 of a publish done in parts, for files too large to hold in memory: makes
/// `shared/` and an empty `chk-<id>/` (a leftover of an attempt that never published
/// is removed first). The caller then streams owned files into `chk-<id>/` (write in
/// pieces, fsync each: `publish::stream_durable` or [`OwnedFile`]) and calls [`commit`].
pub fn begin(fs: &mut dyn Fs, root: &Path, id: CheckpointId) -> Result<(), FormatError> {
    let shared = layout::shared_dir(root);
    let chk = layout::checkpoint_dir(root, id);
    ensure_dir(fs, &shared)?;
    if fs.exists(&layout::manifest_path(root, id)) {
        return Err(FormatError::Invalid {
            what: "checkpoint",
            offset: 0,
            reason: format!("{} is already published", chk.display()),
        });
    }
    if fs.exists(&chk) {
        // A leftover of an attempt that never published: start it over.
        fs.remove_dir_all(&chk).map_err(io(&chk))?;
    }
    fs.create_dir(&chk).map_err(io(&chk))?;
    fs.sync_dir(root).map_err(io(root))
}

/// Steps 2-4 after [`begin`]: like [`publish`], except that files of `m` under
/// `chk-<id>/` may also have been written (and fsynced) since `begin`, with the size
/// `m` gives them.
pub fn commit(fs: &mut dyn Fs, root: &Path, m: &Manifest, payloads: &[Payload]) -> Result<(), FormatError> {
    check_payloads(fs, root, m, payloads, true)?;
    write_and_commit(fs, root, m, payloads)
}

/// Every file of `m` is a matching payload, already in `shared/`, or (when `begun`)
/// already written under `chk-<n>/` with its size.
fn check_payloads(
    fs: &dyn Fs,
    root: &Path,
    m: &Manifest,
    payloads: &[Payload],
    begun: bool,
) -> Result<(), FormatError> {
    let by_path: BTreeMap<&str, &Payload> = payloads.iter().map(|p| (p.path.as_str(), p)).collect();
    let bad = |reason: String| FormatError::Invalid { what: "checkpoint payload", offset: 0, reason };
    for f in m.files() {
        let on_disk = || fs.size(&layout::resolve(root, &f.path)).ok();
        match by_path.get(f.path.as_str()) {
            Some(p) if p.bytes.len() as u64 != f.size || crc32fast::hash(&p.bytes) != f.crc32 => {
                return Err(bad(format!("{} does not match its manifest entry", f.path)));
            }
            Some(_) => {}
            None if layout::is_in_shared(&f.path) && on_disk().is_some() => {}
            None if begun && !layout::is_in_shared(&f.path) && on_disk() == Some(f.size) => {}
            None => return Err(bad(format!("{} is neither written nor already shared", f.path))),
        }
    }
    Ok(())
}

/// Steps 2-4: payloads, directory fsyncs, the manifest.
fn write_and_commit(fs: &mut dyn Fs, root: &Path, m: &Manifest, payloads: &[Payload]) -> Result<(), FormatError> {
    let encoded = m.encode()?;
    let shared = layout::shared_dir(root);
    let chk = layout::checkpoint_dir(root, m.checkpoint);
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for p in payloads {
        let path = layout::resolve(root, &p.path);
        if layout::is_in_shared(&p.path) {
            publish::write_durable(fs, &path, &p.bytes)?;
        } else {
            // Owned files are invisible until the manifest exists: write in place.
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_else(|| chk.clone());
            let mut missing = Vec::new();
            let mut d = parent.clone();
            while d != chk && !fs.is_dir(&d) {
                missing.push(d.clone());
                d = d.parent().map(Path::to_path_buf).unwrap_or_else(|| chk.clone());
            }
            for d in missing.into_iter().rev() {
                fs.create_dir(&d).map_err(io(&d))?;
                if let Some(pp) = d.parent() {
                    dirs.insert(pp.to_path_buf());
                }
            }
            fs.write(&path, &p.bytes).map_err(io(&path))?;
            if !planted(Canary::SkipFileFsync) {
                fs.sync_file(&path).map_err(io(&path))?;
            }
        }
        if let Some(parent) = path.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    // Deepest first, so a directory's own entry is made durable by its parent's fsync.
    // Shared files put before this call (`put_shared`) are made durable here too, and
    // so are owned files streamed since `begin`.
    if m.files().any(|f| layout::is_in_shared(&f.path)) {
        dirs.insert(shared.clone());
    }
    for f in m.files().filter(|f| !layout::is_in_shared(&f.path)) {
        if let Some(parent) = layout::resolve(root, &f.path).parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for d in dirs.iter().rev().filter(|_| !planted(Canary::SkipDirFsync)) {
        fs.sync_dir(d).map_err(io(d))?;
    }
    if !planted(Canary::SkipDirFsync) {
        fs.sync_dir(&chk).map_err(io(&chk))?;
    }

    let mp = layout::manifest_path(root, m.checkpoint);
    publish::write_durable(fs, &mp, &encoded)?;
    fs.sync_dir(&chk).map_err(io(&chk))?;
    fs.sync_dir(root).map_err(io(root))
}

/// An owned file of a checkpoint being written in pieces after [`begin`] (a heap
/// shard's snapshot): `std::io::Write` over [`Fs::append`], so what streams into it goes
/// through the same seam as every other write. [`OwnedFile::finish`] fsyncs it.
pub struct OwnedFile<'a> {
    fs: &'a mut dyn Fs,
    path: PathBuf,
}

impl<'a> OwnedFile<'a> {
    /// Creates the file `relative` (a path under `chk-<n>/`, as in the manifest; or
    /// under a savepoint directory, `root` then being the savepoint). Missing parent
    /// directories under `root` are created (a savepoint's `shard-<i>/`), each fsynced
    /// in its parent.
    pub fn create(fs: &'a mut dyn Fs, root: &Path, relative: &str) -> Result<Self, FormatError> {
        let path = layout::resolve(root, relative);
        if let Some(dir) = path.parent().filter(|d| !fs.is_dir(d)) {
            crate::fs::create_dir_all(fs, dir).map_err(io(dir))?;
        }
        fs.write(&path, &[]).map_err(io(&path))?;
        Ok(OwnedFile { fs, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file durable (its directory is fsynced by [`commit`]).
    pub fn finish(self) -> Result<(), FormatError> {
        self.fs.sync_file(&self.path).map_err(io(&self.path))
    }
}

impl std::io::Write for OwnedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.fs.append(&self.path, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Removes what a failed attempt at checkpoint `id` wrote under its own directory. It
/// never touches `shared/`: a published checkpoint may refer to any file there; files
/// the attempt added to `shared/` become orphans for [`plan_gc`].
pub fn abort(fs: &mut dyn Fs, root: &Path, id: CheckpointId) -> Result<(), FormatError> {
    let chk = layout::checkpoint_dir(root, id);
    if fs.exists(&chk) {
        fs.remove_dir_all(&chk).map_err(io(&chk))?;
        fs.sync_dir(root).map_err(io(root))?;
    }
    let shared = layout::shared_dir(root);
    if planted(Canary::AbortClearsShared) && fs.exists(&shared) {
        fs.remove_dir_all(&shared).map_err(io(&shared))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Every file exists with the size the manifest records.
    Sizes,
    /// ... and its crc32 matches.
    Checksums,
}

pub(crate) fn verify_file(fs: &dyn Fs, root: &Path, f: &FileRef, verify: Verify) -> Result<(), FormatError> {
    let p = layout::resolve(root, &f.path);
    let size = fs.size(&p).map_err(io(&p))?;
    if size != f.size {
        return Err(FormatError::Invalid {
            what: "checkpoint file",
            offset: 0,
            reason: format!("size {size}, manifest says {}", f.size),
        }
        .in_file(&p));
    }
    if verify == Verify::Checksums {
        let data = fs.read(&p).map_err(io(&p))?;
        let computed = crc32fast::hash(&data);
        if computed != f.crc32 {
            return Err(
                FormatError::Checksum { what: "checkpoint file", offset: 0, stored: f.crc32, computed }.in_file(&p)
            );
        }
    }
    Ok(())
}

/// Reads and checks checkpoint `id`: its manifest and every file it refers to.
pub fn load(fs: &dyn Fs, root: &Path, id: CheckpointId, verify: Verify) -> Result<Manifest, FormatError> {
    let mp = layout::manifest_path(root, id);
    let bytes = fs.read(&mp).map_err(io(&mp))?;
    let m = Manifest::decode(&bytes).map_err(|e| e.in_file(&mp))?;
    if m.checkpoint != id {
        return Err(FormatError::Invalid {
            what: "manifest",
            offset: 0,
            reason: format!("names checkpoint {}, found in {}", m.checkpoint.0, layout::checkpoint_dir_name(id)),
        }
        .in_file(&mp));
    }
    for f in m.files() {
        verify_file(fs, root, f, verify)?;
    }
    Ok(m)
}

/// Checkpoint ids that have a directory under `root`, newest first.
pub fn checkpoint_ids(fs: &dyn Fs, root: &Path) -> Result<Vec<CheckpointId>, FormatError> {
    let mut ids: Vec<CheckpointId> =
        fs.list(root).map_err(io(root))?.iter().filter_map(|n| layout::parse_checkpoint_dir_name(n)).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

#[derive(Debug)]
pub struct Discovery {
    /// The newest checkpoint whose manifest and files all check out.
    pub latest: Option<Manifest>,
    /// Newer directories that were skipped, and why.
    pub rejected: Vec<(CheckpointId, FormatError)>,
}

/// Finds the checkpoint to restore: the newest one that loads under `verify`.
pub fn latest(fs: &dyn Fs, root: &Path, verify: Verify) -> Result<Discovery, FormatError> {
    let mut rejected = Vec::new();
    for id in checkpoint_ids(fs, root)? {
        match load(fs, root, id, verify) {
            Ok(m) => return Ok(Discovery { latest: Some(m), rejected }),
            Err(e) => rejected.push((id, e)),
        }
    }
    Ok(Discovery { latest: None, rejected })
}

#[cfg(test)]
mod tests {
    //! Crash images (invariants 10.1–10.3): with checkpoint 1 published, crash after
    //! every operation of publishing checkpoint 2 (and of garbage collection) under all
    //! three loss models; restore must find checkpoint 1 or 2, intact, in 100% of images.
    use super::*;
    use crate::canary;
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
        try_publish_rocksdb(fs, id, |shard| {
            vec![("000009.sst".into(), format!("sst {id:04} of shard {shard}").repeat(8))]
        })
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
}
