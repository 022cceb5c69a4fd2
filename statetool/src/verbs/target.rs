//! Resolving a PATH argument: a `chk-<n>` directory, a job's checkpoint root, or a
//! savepoint directory of either form (FORMAT.md §13), complete or not.
//!
//! Every verb that reads state goes through here, so each works on all three alike: a
//! [`Target`] names one or more [`Member`]s (checkpoints, or the one savepoint); loading
//! a member gives a [`Loaded`]: its [`Kind`], its manifest, and the directory the
//! manifest's file paths are relative to (`base`: the checkpoint root, or the savepoint
//! directory), which is what `reader::for_each` takes as its root.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use formats::checkpoint::{self, Verify};
use formats::error::FormatError;
use formats::fs::StdFs;
use formats::layout;
use formats::manifest::{CheckpointId, Manifest};
use formats::savepoint::{self, Form, SavepointMeta};

/// How the reading stops when the crc32 pass beside it has found a problem.
const CRC_FAILED: &str = "stopped: the crc32 pass found a damaged file";

/// What PATH names.
#[derive(Debug, Clone)]
pub enum Target {
    /// A job's checkpoint root; `ids` are its `chk-<n>` directories, newest first.
    Root { root: PathBuf, ids: Vec<CheckpointId> },
    /// One `chk-<n>` directory of the root `root`.
    Checkpoint { root: PathBuf, id: CheckpointId },
    /// A savepoint directory: it holds `_savepoint` or only the in-progress marker.
    Savepoint { dir: PathBuf },
}

/// What one piece of state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Checkpoint,
    Savepoint(Form),
}

impl Kind {
    /// `checkpoint`, `savepoint (canonical)` or `savepoint (native)`.
    pub fn label(self) -> String {
        match self {
            Kind::Checkpoint => "checkpoint".into(),
            Kind::Savepoint(f) => format!("savepoint ({f})"),
        }
    }

    /// `{"kind": "checkpoint"}` or `{"kind": "savepoint", "form": "native"}` fields.
    pub fn json(self) -> serde_json::Map<String, serde_json::Value> {
        let mut o = serde_json::Map::new();
        match self {
            Kind::Checkpoint => {
                o.insert("kind".into(), "checkpoint".into());
            }
            Kind::Savepoint(f) => {
                o.insert("kind".into(), "savepoint".into());
                o.insert("form".into(), f.to_string().into());
            }
        }
        o
    }
}

/// One checkpoint or savepoint of a target, not read yet.
#[derive(Debug, Clone)]
pub enum Member {
    Checkpoint { root: PathBuf, id: CheckpointId },
    Savepoint { dir: PathBuf },
}

/// A checkpoint or savepoint whose manifest has been read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub kind: Kind,
    /// The directory the manifest's file paths are relative to: the checkpoint root,
    /// or the savepoint directory.
    pub base: PathBuf,
    /// The `chk-<n>` directory or the savepoint directory, for messages.
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Whether every file's crc32 has been checked already; when not, [`Loaded::for_each`]
    /// checks them on a second thread while it reads.
    pub crc_checked: bool,
}

impl Loaded {
    fn checkpoint(root: &Path, manifest: Manifest, crc_checked: bool) -> Loaded {
        let dir = layout::checkpoint_dir(root, manifest.checkpoint);
        Loaded { kind: Kind::Checkpoint, base: root.to_path_buf(), dir, manifest, crc_checked }
    }

    fn savepoint(dir: &Path, meta: SavepointMeta, crc_checked: bool) -> Loaded {
        Loaded {
            kind: Kind::Savepoint(meta.form),
            base: dir.to_path_buf(),
            dir: dir.to_path_buf(),
            manifest: meta.manifest,
            crc_checked,
        }
    }

    /// `checkpoint 11 of job "seq"` or `savepoint (native) at checkpoint 11 of job "seq"`.
    pub fn title(&self) -> String {
        let m = &self.manifest;
        match self.kind {
            Kind::Checkpoint => format!("checkpoint {} of job {:?}", m.checkpoint.0, m.job),
            Kind::Savepoint(f) => format!("savepoint ({f}) at checkpoint {} of job {:?}", m.checkpoint.0, m.job),
        }
    }

    /// Visits every entry whose key group lies in `clip` (see `entries::for_each`).
    /// Unless done already ([`Loaded::crc_checked`]), every file's crc32 is checked on a
    /// second thread meanwhile, so the data is read from disk once and the two passes
    /// overlap; a crc32 that does not match stops the reading and is the error (naming
    /// the file), whatever was visited before it was found. (What is visited was read
    /// through the block checksums of RocksDB and of snapshot files, FORMAT.md §11.)
    pub fn for_each(
        &self,
        clip: formats::keygroup::KeyGroupRange,
        visit: &mut super::entries::Visit<'_>,
    ) -> anyhow::Result<u64> {
        if self.crc_checked {
            return super::entries::for_each(&self.base, &self.manifest, clip, visit);
        }
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let crc = s.spawn(|| {
                let checked = self.check_crc();
                failed.store(checked.is_err(), Ordering::Relaxed);
                checked
            });
            let read = super::entries::for_each(&self.base, &self.manifest, clip, &mut |d, k, v| {
                if failed.load(Ordering::Relaxed) {
                    return Err(reader::ReadError::Visit(CRC_FAILED.into()));
                }
                visit(d, k, v)
            });
            match crc.join() {
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(())) => read,
                Err(_) => Err(anyhow::anyhow!("{}: the crc32 pass panicked", self.dir.display())),
            }
        })
    }

    /// Checks every file's crc32 against the manifest, unless done already
    /// ([`Loaded::crc_checked`]); the error names the file.
    pub fn check_crc(&self) -> Result<(), FormatError> {
        if self.crc_checked {
            return Ok(());
        }
        checkpoint::verify_files(&StdFs, &self.base, &self.manifest, Verify::Checksums)
    }

    /// The total size of the files the manifest names (a shared file counted once per
    /// reference, as the manifest lists it).
    pub fn bytes(&self) -> u64 {
        self.manifest.files().map(|f| f.size).sum()
    }
}

impl Member {
    /// `chk-<n>` for a checkpoint, the directory for a savepoint.
    pub fn name(&self) -> String {
        match self {
            Member::Checkpoint { id, .. } => layout::checkpoint_dir_name(*id),
            Member::Savepoint { dir } => dir.display().to_string(),
        }
    }

    /// Reads the manifest (savepoint: `_savepoint`). With `verify`, every file it names
    /// is checked too (`Sizes`, or `Checksums` as well); without, the manifest is only
    /// decoded and validated, which reads no data file (what `inspect` needs to stay
    /// fast on any state size). An incomplete savepoint is an error saying so.
    pub fn load(&self, verify: Option<Verify>) -> Result<Loaded, FormatError> {
        match self {
            Member::Checkpoint { root, id } => {
                let m = match verify {
                    Some(v) => checkpoint::load(&StdFs, root, *id, v)?,
                    None => {
                        let p = layout::manifest_path(root, *id);
                        let bytes = std::fs::read(&p).map_err(|e| FormatError::io(&p, e))?;
                        Manifest::decode(&bytes).map_err(|e| e.in_file(&p))?
                    }
                };
                Ok(Loaded::checkpoint(root, m, verify == Some(Verify::Checksums)))
            }
            Member::Savepoint { dir } => {
                let mp = layout::savepoint_metadata_path(dir);
                let meta = match verify {
                    Some(v) => savepoint::load(&StdFs, dir, v)?,
                    // Without `_savepoint`, load names the problem (incomplete, or not one).
                    None if !mp.is_file() => savepoint::load(&StdFs, dir, Verify::Sizes)?,
                    None => {
                        let bytes = std::fs::read(&mp).map_err(|e| FormatError::io(&mp, e))?;
                        SavepointMeta::decode(&bytes).map_err(|e| e.in_file(&mp))?
                    }
                };
                Ok(Loaded::savepoint(dir, meta, verify == Some(Verify::Checksums)))
            }
        }
    }
}

/// Resolves PATH; a usage error (exit 2) when it names none of the three.
pub fn resolve(path: &Path) -> anyhow::Result<Target> {
    if !path.is_dir() {
        bail!("{}: not a directory (expected chk-<n>, a job's checkpoint root or a savepoint)", path.display());
    }
    if layout::is_savepoint_dir(path) {
        return Ok(Target::Savepoint { dir: path.to_path_buf() });
    }
    if let Some((root, id)) = layout::split_checkpoint_dir(path) {
        return Ok(Target::Checkpoint { root, id });
    }
    let ids = checkpoint::checkpoint_ids(&StdFs, path).with_context(|| format!("listing {}", path.display()))?;
    if ids.is_empty() {
        bail!("{}: no chk-<n> directories and no {}", path.display(), layout::SAVEPOINT_METADATA_NAME);
    }
    Ok(Target::Root { root: path.to_path_buf(), ids })
}

impl Target {
    /// Every checkpoint or savepoint PATH names, newest first.
    pub fn members(&self) -> Vec<Member> {
        match self {
            Target::Root { root, ids } => {
                ids.iter().map(|id| Member::Checkpoint { root: root.clone(), id: *id }).collect()
            }
            Target::Checkpoint { root, id } => vec![Member::Checkpoint { root: root.clone(), id: *id }],
            Target::Savepoint { dir } => vec![Member::Savepoint { dir: dir.clone() }],
        }
    }

    /// The path the user gave, resolved: the root, `chk-<n>` or savepoint directory.
    pub fn path(&self) -> PathBuf {
        match self {
            Target::Root { root, .. } => root.clone(),
            Target::Checkpoint { root, id } => layout::checkpoint_dir(root, *id),
            Target::Savepoint { dir } => dir.clone(),
        }
    }

    /// The newest member whose manifest decodes, files unchecked (for `inspect`).
    pub fn newest_readable(&self) -> anyhow::Result<Loaded> {
        self.newest(None)
    }

    /// The newest member whose files all check out (for the verbs that read entries:
    /// `dump`, `du`, `diff`, the rewrites): sizes and the metadata files' crc32s here;
    /// the data files' crc32s while [`Loaded::for_each`] reads them.
    pub fn newest_intact(&self) -> anyhow::Result<Loaded> {
        self.newest(Some(Verify::MetadataChecksums))
    }

    fn newest(&self, verify: Option<Verify>) -> anyhow::Result<Loaded> {
        let mut newest_err = None;
        for m in self.members() {
            match m.load(verify) {
                Ok(l) => return Ok(l),
                Err(e) => {
                    newest_err.get_or_insert(e);
                }
            }
        }
        let Some(e) = newest_err else { bail!("{}: nothing to read", self.path().display()) };
        match self {
            Target::Root { root, .. } => {
                let what = if verify.is_some() { "intact" } else { "readable" };
                bail!("{}: no {what} checkpoint (the newest: {e})", root.display())
            }
            _ => Err(e.into()),
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B"))
    }
}
