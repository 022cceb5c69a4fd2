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
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::error::FormatError;
use crate::fs::Fs;
use crate::layout;
use crate::manifest::{CheckpointId, FileRef, Manifest};
use crate::publish;

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
/// the attempt added to `shared/` become orphans for `gc::plan_gc`.
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
    /// ... and, for files that are not data files ([`layout::is_data_file`]: RocksDB's
    /// MANIFEST, CURRENT, OPTIONS, all small), the crc32 matches: what
    /// `statetool verify --quick` checks, together with the data files' own checksummed
    /// metadata, without reading the state's bytes.
    MetadataChecksums,
    /// ... and every file's crc32 matches.
    Checksums,
}

/// The crc32 of the file at `p`, read in pieces of [`publish::STREAM_CHUNK_BYTES`]: the
/// memory a check takes does not follow the size of the file.
fn crc32_of(fs: &dyn Fs, p: &Path) -> Result<u32, FormatError> {
    let mut from = fs.open_read(p).map_err(io(p))?;
    let mut buf = vec![0u8; publish::STREAM_CHUNK_BYTES];
    let mut crc = crc32fast::Hasher::new();
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(crc.finalize()),
            Ok(n) => crc.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FormatError::io(p, e)),
        }
    }
}

/// Checks one file of a manifest under `root`: that it exists with the recorded size
/// and, with [`Verify::Checksums`], the recorded crc32 (read in bounded pieces).
pub fn verify_file(fs: &dyn Fs, root: &Path, f: &FileRef, verify: Verify) -> Result<(), FormatError> {
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
    let check_crc = match verify {
        Verify::Sizes => false,
        Verify::MetadataChecksums => !layout::is_data_file(&f.path),
        Verify::Checksums => true,
    };
    if check_crc {
        let computed = crc32_of(fs, &p)?;
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
    verify_files(fs, root, &m, verify)?;
    Ok(m)
}

/// Checks every file `m` lists (under `base`: the checkpoint root or the savepoint
/// directory) with [`verify_file`], in the manifest's order; the first problem names
/// the file.
pub fn verify_files(fs: &dyn Fs, base: &Path, m: &Manifest, verify: Verify) -> Result<(), FormatError> {
    for f in m.files() {
        verify_file(fs, base, f, verify)?;
    }
    Ok(())
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
#[path = "checkpoint_tests.rs"]
mod tests;
