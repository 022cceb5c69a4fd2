//! Savepoints (docs/FORMAT.md §13): a self-contained, relocatable copy of a job's state
//! at one barrier, owned by the user. Every path inside is relative to the savepoint
//! directory, so the directory can be copied anywhere and restored.
//!
//! ```text
//! <sp>/_savepoint.inprogress   empty marker, written first, removed last
//! <sp>/shard-<i>.snapshot      canonical form: one snapshot file (§11) per shard
//! <sp>/shard-<i>/<local>       native form: every file of shard i's RocksDB checkpoint
//! <sp>/_savepoint              envelope kind 3 (§8), JSON body; published last
//! ```
//!
//! Protocol: [`begin`] (directory and marker), then the files ([`copy_in`], or
//! `checkpoint::OwnedFile` for streamed snapshot files), then [`commit`] (directory
//! fsyncs, `_savepoint` through `publish`, marker removed). `_savepoint` is the only
//! thing that makes a savepoint complete, and it is written after every file it names
//! is durable; so after a crash a savepoint either loads with every file intact or is
//! refused as incomplete or as not a savepoint.
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::canary::{planted, Canary};
use crate::checkpoint::{verify_files, Verify};
use crate::envelope::{self, Kind};
use crate::error::FormatError;
use crate::fs::{self, Fs};
use crate::layout;
use crate::manifest::{FileRef, Location, Manifest, ShardFormat};
use crate::publish;

/// §13: the version of the `_savepoint` body this code writes (and the only one it reads).
pub const SAVEPOINT_VERSION: u16 = 1;
const _: () = assert!(SAVEPOINT_VERSION == 1);

/// How a savepoint stores its shards' state (§13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Backend-independent: one snapshot file (§11) per shard.
    Canonical,
    /// The backend's own files (RocksDB: every file of a checkpoint of the instance).
    Native,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::Canonical => "canonical",
            Form::Native => "native",
        })
    }
}

impl FromStr for Form {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "canonical" => Ok(Form::Canonical),
            "native" => Ok(Form::Native),
            _ => Err(format!("savepoint form {s:?} is neither \"canonical\" nor \"native\"")),
        }
    }
}

/// The content of `_savepoint`: the form, and a manifest (§9) whose paths are relative
/// to the savepoint directory (§13.2), whose `checkpoint` is the barrier the savepoint
/// was taken at and whose `parent` is null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointMeta {
    pub form: Form,
    pub manifest: Manifest,
}

/// The JSON body: `form` first, then the manifest's fields.
#[derive(Serialize)]
struct BodyOut<'a> {
    form: Form,
    #[serde(flatten)]
    manifest: &'a Manifest,
}

#[derive(Deserialize)]
struct BodyIn {
    form: Form,
    #[serde(flatten)]
    manifest: Manifest,
}

fn invalid(reason: String) -> FormatError {
    FormatError::Invalid { what: "savepoint metadata", offset: 0, reason }
}

impl SavepointMeta {
    /// Invariants 13.1–13.3 (and the manifest's 9.1, 9.3, 9.4, 9.6).
    pub fn validate(&self) -> Result<(), FormatError> {
        self.manifest.validate_for(Location::Savepoint)?;
        if let Some(p) = self.manifest.parent {
            return Err(invalid(format!("a savepoint has no parent, found parent {}", p.0)));
        }
        if self.form == Form::Canonical {
            if let Some(s) = self.manifest.shards.iter().find(|s| s.format != ShardFormat::Snapshot) {
                return Err(invalid(format!("shard {} of a canonical savepoint is not a snapshot", s.shard)));
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.validate()?;
        let body = serde_json::to_vec_pretty(&BodyOut { form: self.form, manifest: &self.manifest })
            .map_err(|e| invalid(e.to_string()))?;
        envelope::encode(Kind::SavepointMetadata, SAVEPOINT_VERSION, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = envelope::decode(Kind::SavepointMetadata, bytes)?;
        if version != SAVEPOINT_VERSION {
            return Err(FormatError::Invalid {
                what: "savepoint metadata version",
                offset: envelope::VERSION_OFFSET,
                reason: format!("unsupported version {version}"),
            });
        }
        let b: BodyIn = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let meta = SavepointMeta { form: b.form, manifest: b.manifest };
        meta.validate()?;
        Ok(meta)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |e| FormatError::io(path, e)
}

fn refuse(sp: &Path, reason: String) -> FormatError {
    FormatError::Savepoint { path: sp.to_path_buf(), reason }
}

fn parent_of(p: &Path) -> &Path {
    p.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Step 1: refuses a target that exists and is not an empty directory, creates `sp`
/// (and missing parents, each fsynced), writes and fsyncs the in-progress marker, then
/// fsyncs `sp` and its parent.
pub fn begin(fs: &mut dyn Fs, sp: &Path) -> Result<(), FormatError> {
    if fs.exists(sp) && !(fs.is_dir(sp) && fs.list(sp).map_err(io(sp))?.is_empty()) {
        return Err(refuse(sp, format!("savepoint target {} already exists", sp.display())));
    }
    fs::create_dir_all(fs, sp).map_err(io(sp))?;
    let marker = layout::savepoint_marker_path(sp);
    fs.write(&marker, &[]).map_err(io(&marker))?;
    fs.sync_file(&marker).map_err(io(&marker))?;
    fs.sync_dir(sp).map_err(io(sp))?;
    let parent = parent_of(sp);
    fs.sync_dir(parent).map_err(io(parent))
}

fn check_relative(sp: &Path, relative: &str) -> Result<(), FormatError> {
    if layout::parse_savepoint_path(relative).is_none() {
        return Err(refuse(
            sp,
            format!("{relative:?} is not a savepoint file path (shard-<i>.snapshot or shard-<i>/<name>)"),
        ));
    }
    Ok(())
}

/// Creates the directories between `sp` and `file` that are missing (each fsynced in its
/// parent by `fs::create_dir_all`).
fn make_parents(fs: &mut dyn Fs, file: &Path) -> Result<(), FormatError> {
    let dir = parent_of(file);
    fs::create_dir_all(fs, dir).map_err(io(dir))
}

/// Copies the local file `src` (a RocksDB checkpoint's hard link, say) to
/// `<sp>/<relative>` in pieces of at most `publish::STREAM_CHUNK_BYTES`, through `fs`,
/// and fsyncs it. Returns its manifest entry (`local` as given).
pub fn copy_in(
    fs: &mut dyn Fs,
    sp: &Path,
    relative: &str,
    src: &Path,
    local: Option<String>,
) -> Result<FileRef, FormatError> {
    check_relative(sp, relative)?;
    let dest = layout::resolve(sp, relative);
    make_parents(fs, &dest)?;
    let mut from = fs.open_read(src).map_err(io(src))?;
    let mut crc = crc32fast::Hasher::new();
    // Files are invisible until `_savepoint` names them: written in place.
    let size = publish::stream_durable(fs, &dest, &mut from, src, &mut |piece| crc.update(piece))?;
    Ok(FileRef { path: relative.to_owned(), size, crc32: crc.finalize(), local })
}

/// Last step: validates `meta`, checks every file it names is there with its size,
/// fsyncs every directory written (deepest first), publishes `_savepoint` (temporary
/// file, fsync, rename, fsync `sp`), removes the marker and fsyncs `sp`.
pub fn commit(fs: &mut dyn Fs, sp: &Path, meta: &SavepointMeta) -> Result<(), FormatError> {
    let encoded = meta.encode()?;
    let mp = layout::savepoint_metadata_path(sp);
    if fs.exists(&mp) {
        return Err(refuse(sp, format!("savepoint {} is already complete", sp.display())));
    }
    let mut dirs = BTreeSet::new();
    for f in meta.manifest.files() {
        let p = layout::resolve(sp, &f.path);
        let size = fs.size(&p).map_err(io(&p))?;
        if size != f.size {
            return Err(invalid(format!("size {size}, metadata says {}", f.size)).in_file(&p));
        }
        let mut d = p.parent().map(Path::to_path_buf);
        while let Some(dir) = d.filter(|d| d.starts_with(sp) && d.as_path() != sp) {
            d = dir.parent().map(Path::to_path_buf);
            dirs.insert(dir);
        }
    }
    // Deepest first, so each directory's own entry is made durable by its parent's.
    if !planted(Canary::SkipDirFsync) {
        for d in dirs.iter().rev() {
            fs.sync_dir(d).map_err(io(d))?;
        }
        fs.sync_dir(sp).map_err(io(sp))?;
    }
    publish::publish_file(fs, &mp, &encoded)?;
    let marker = layout::savepoint_marker_path(sp);
    if fs.exists(&marker) {
        fs.remove_file(&marker).map_err(io(&marker))?;
    }
    fs.sync_dir(sp).map_err(io(sp))
}

/// Reads `<sp>/_savepoint` and checks every file it names under `verify`. A directory
/// with only the in-progress marker is refused as incomplete; one with neither as not a
/// savepoint.
pub fn load(fs: &dyn Fs, sp: &Path, verify: Verify) -> Result<SavepointMeta, FormatError> {
    let mp = layout::savepoint_metadata_path(sp);
    if !fs.exists(&mp) {
        let reason = if fs.exists(&layout::savepoint_marker_path(sp)) {
            format!(
                "savepoint {} is incomplete (interrupted while being written); dispose of it \
                 (`sluice savepoint --dispose`) and take a new one",
                sp.display()
            )
        } else {
            format!("{} is not a savepoint (no {})", sp.display(), layout::SAVEPOINT_METADATA_NAME)
        };
        return Err(refuse(sp, reason));
    }
    let bytes = fs.read(&mp).map_err(io(&mp))?;
    let meta = SavepointMeta::decode(&bytes).map_err(|e| e.in_file(&mp))?;
    verify_files(fs, sp, &meta.manifest, verify)?;
    Ok(meta)
}

/// Removes the savepoint `sp`, complete or incomplete, after checking that it is one
/// (it holds `_savepoint` or the marker; an empty directory, what a crash in [`begin`]
/// may leave, is removed too). Anything else is refused. The marker is put back first
/// and `_savepoint` removed next, so a crash midway leaves an incomplete savepoint that
/// a second dispose removes; then the rest; then the parent is fsynced.
pub fn dispose(fs: &mut dyn Fs, sp: &Path) -> Result<(), FormatError> {
    let mp = layout::savepoint_metadata_path(sp);
    let marker = layout::savepoint_marker_path(sp);
    let empty = fs.is_dir(sp) && fs.list(sp).map_err(io(sp))?.is_empty();
    if !empty && !(fs.is_dir(sp) && (fs.exists(&mp) || fs.exists(&marker))) {
        return Err(refuse(
            sp,
            format!(
                "refusing to dispose of {}: not a savepoint (no {} and no {})",
                sp.display(),
                layout::SAVEPOINT_METADATA_NAME,
                layout::SAVEPOINT_MARKER_NAME
            ),
        ));
    }
    if fs.exists(&mp) {
        if !fs.exists(&marker) {
            fs.write(&marker, &[]).map_err(io(&marker))?;
            fs.sync_file(&marker).map_err(io(&marker))?;
        }
        fs.remove_file(&mp).map_err(io(&mp))?;
        fs.sync_dir(sp).map_err(io(sp))?;
    }
    fs.remove_dir_all(sp).map_err(io(sp))?;
    let parent = parent_of(sp);
    fs.sync_dir(parent).map_err(io(parent))
}

#[cfg(test)]
#[path = "savepoint_tests.rs"]
mod tests;
