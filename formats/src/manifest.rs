//! The checkpoint manifest (docs/FORMAT.md §9): a JSON body inside an envelope (§8). Its
//! presence, with valid checksums, is what makes a checkpoint published. It lists, per
//! shard, the key-group range and every file with size and crc32, and whether the
//! checkpoint owns the file (under its `chk-<n>/`) or borrows it (under `shared/`).
use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind};
use crate::error::FormatError;
pub use crate::id::CheckpointId;
use crate::keygroup::{validate_key_groups, KeyGroupRange};
use crate::layout;
use crate::value::StateDescriptor;

/// Written by this version; 1 (every shard a snapshot file, no `format`/`local`) is still read.
pub const MANIFEST_VERSION: u16 = 2;
const OLDEST_READABLE_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Relative to the job's checkpoint root: `chk-<n>/...` or `shared/...`; in a
    /// savepoint's metadata, relative to the savepoint: `shard-<i>...` (FORMAT.md §13).
    pub path: String,
    pub size: u64,
    pub crc32: u32,
    /// The file's name inside the shard's instance (`000012.sst`) when it differs from the
    /// last component of `path`: shared files are named by content, not by instance name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
}

impl FileRef {
    /// The entry for a file with contents `bytes`.
    pub fn of(path: &str, bytes: &[u8]) -> Self {
        FileRef { path: path.to_owned(), size: bytes.len() as u64, crc32: crc32fast::hash(bytes), local: None }
    }

    /// The file's name inside its shard's instance directory.
    pub fn local_name(&self) -> &str {
        self.local.as_deref().unwrap_or_else(|| self.path.rsplit('/').next().unwrap_or(&self.path))
    }
}

/// How a shard's state is stored in a checkpoint (FORMAT.md §9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardFormat {
    /// One snapshot file (§11) under `chk-<n>/`.
    #[default]
    Snapshot,
    /// A RocksDB instance: its SST files in `shared/`, its MANIFEST, CURRENT and OPTIONS
    /// under `chk-<n>/shard-<i>/`; each file's `local` name rebuilds the directory.
    Rocksdb,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub shard: u16,
    pub range: KeyGroupRange,
    #[serde(default)]
    pub format: ShardFormat,
    pub files: Vec<FileRef>,
    /// Source position to resume from (opaque to this crate).
    pub source_position: serde_json::Value,
    /// The shard's operator (non-keyed) states (§9.7); absent when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_state: Vec<crate::operator_state::OperatorState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub job: String,
    pub checkpoint: CheckpointId,
    pub parent: Option<CheckpointId>,
    pub created_ms: u64,
    pub max_key_groups: u32,
    pub backend: String,
    /// How keys are encoded (FORMAT.md §2); absent in manifests written before it was
    /// recorded, when tools fall back to text-or-bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<crate::value::ValueEncoding>,
    pub states: Vec<StateDescriptor>,
    pub shards: Vec<ShardSnapshot>,
}

/// Where a manifest lies, which decides where its files may be (FORMAT.md §9.2, §13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `chk-<n>/_manifest` of a checkpoint root: files under `chk-<n>/` or `shared/`.
    Checkpoint,
    /// Inside a savepoint's `_savepoint`: files `shard-<i>.snapshot` or `shard-<i>/<name>`.
    Savepoint,
}

pub(crate) fn invalid(reason: String) -> FormatError {
    FormatError::Invalid { what: "manifest", offset: 0, reason }
}

impl Manifest {
    /// Invariants 9.1–9.4 and 9.6 of a checkpoint's manifest, checked before writing and
    /// after reading: [`Manifest::validate_for`] with [`Location::Checkpoint`].
    pub fn validate(&self) -> Result<(), FormatError> {
        self.validate_for(Location::Checkpoint)
    }

    /// The invariants of a manifest found at `location`: 9.1–9.4 and 9.6, with 9.2's
    /// path rule for a checkpoint, or 13.2's for a savepoint (FORMAT.md §13).
    pub fn validate_for(&self, location: Location) -> Result<(), FormatError> {
        layout::validate_job_name(&self.job).map_err(invalid)?;
        validate_key_groups(self.max_key_groups)?;
        if let Some(p) = self.parent {
            if p >= self.checkpoint {
                return Err(invalid(format!("parent {} is not older than checkpoint {}", p.0, self.checkpoint.0)));
            }
        }
        // 9.1: shard ranges are in order and cover [0, G) exactly once.
        let mut next = 0u32;
        for (i, s) in self.shards.iter().enumerate() {
            if usize::from(s.shard) != i {
                return Err(invalid(format!("shard {} listed at position {i}", s.shard)));
            }
            if u32::from(s.range.start) != next || s.range.is_empty() {
                return Err(invalid(format!(
                    "shard {} range {}..{} does not continue at {next}",
                    s.shard, s.range.start, s.range.end
                )));
            }
            next = u32::from(s.range.end);
        }
        if next != self.max_key_groups {
            return Err(invalid(format!("shard ranges end at {next}, not at {}", self.max_key_groups)));
        }
        // 9.2 (checkpoints) or 13.2 (savepoints): where files may lie; no escapes.
        self.check_paths(location)?;
        // 9.3: an owned path is listed once; a shared one (named by its content) may be
        // listed again, with the same size and checksum.
        let mut seen = std::collections::BTreeMap::new();
        for f in self.files() {
            let shared = location == Location::Checkpoint && layout::is_in_shared(&f.path);
            if let Some(prev) = seen.insert(&f.path, (f.size, f.crc32)) {
                if !shared || prev != (f.size, f.crc32) {
                    return Err(invalid(format!("file {:?} listed twice", f.path)));
                }
            }
        }
        // 9.6: local names are plain file names, unique within their shard.
        for s in &self.shards {
            let mut locals = std::collections::BTreeSet::new();
            for f in &s.files {
                let l = f.local_name();
                if l.is_empty() || l == "." || l == ".." || l.contains('/') || l.contains('\\') {
                    return Err(invalid(format!("file {:?} has local name {l:?}, not a plain file name", f.path)));
                }
                if !locals.insert(l) {
                    return Err(invalid(format!("shard {} lists local name {l:?} twice", s.shard)));
                }
            }
        }
        // 9.4: state names are unique.
        let mut names = std::collections::BTreeSet::new();
        if let Some(d) = self.states.iter().find(|d| !names.insert(&d.name)) {
            return Err(invalid(format!("state {:?} listed twice", d.name)));
        }
        Ok(())
    }

    /// 9.2 (checkpoint): every path is under `chk-<n>/` or `shared/`. 13.2 (savepoint):
    /// every path is `shard-<i>.snapshot` (a `snapshot` shard i) or `shard-<i>/<name>`
    /// (a `rocksdb` shard i). Both: no empty, `.` or `..` component.
    fn check_paths(&self, location: Location) -> Result<(), FormatError> {
        let own = format!("{}/", layout::checkpoint_dir_name(self.checkpoint));
        for s in &self.shards {
            for f in &s.files {
                let clean = layout::is_clean_relative(&f.path);
                match location {
                    Location::Checkpoint => {
                        if !clean || !(f.path.starts_with(&own) || layout::is_in_shared(&f.path)) {
                            return Err(invalid(format!(
                                "file path {:?} is neither under {own} nor under {}/",
                                f.path,
                                layout::SHARED_DIR
                            )));
                        }
                    }
                    Location::Savepoint => {
                        let expected = match s.format {
                            ShardFormat::Snapshot => layout::SavepointFile::Snapshot,
                            ShardFormat::Rocksdb => {
                                layout::SavepointFile::Native(f.path.rsplit('/').next().unwrap_or(""))
                            }
                        };
                        if !clean || layout::parse_savepoint_path(&f.path) != Some((s.shard, expected)) {
                            let want = match s.format {
                                ShardFormat::Snapshot => layout::savepoint_snapshot_path(s.shard),
                                ShardFormat::Rocksdb => layout::savepoint_owned_path(s.shard, "<name>"),
                            };
                            return Err(invalid(format!(
                                "file path {:?} of shard {} in a savepoint is not {want}",
                                f.path, s.shard
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.validate()?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| invalid(e.to_string()))?;
        envelope::encode(Kind::CheckpointManifest, MANIFEST_VERSION, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = envelope::decode(Kind::CheckpointManifest, bytes)?;
        if !(OLDEST_READABLE_VERSION..=MANIFEST_VERSION).contains(&version) {
            return Err(FormatError::Invalid {
                what: "manifest version",
                offset: envelope::VERSION_OFFSET,
                reason: format!("unsupported version {version}"),
            });
        }
        let m: Manifest = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Every file the checkpoint refers to.
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        self.shards.iter().flat_map(|s| &s.files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_manifests_still_read_as_snapshot_shards() {
        let body = br#"{"job":"j","checkpoint":3,"parent":null,"created_ms":0,"max_key_groups":4,
            "backend":"heap","states":[],"shards":[{"shard":0,"range":{"start":0,"end":4},
            "files":[{"path":"chk-3/shard-0.snapshot","size":1,"crc32":2}],"source_position":null}]}"#;
        let bytes = envelope::encode(Kind::CheckpointManifest, 1, body).expect("encode");
        let m = Manifest::decode(&bytes).expect("version 1 decodes");
        let shard = m.shards.first().expect("a shard");
        assert_eq!(shard.format, ShardFormat::Snapshot);
        assert_eq!(shard.files.first().map(FileRef::local_name), Some("shard-0.snapshot"));
        let bytes = envelope::encode(Kind::CheckpointManifest, MANIFEST_VERSION + 1, body).expect("encode");
        assert!(Manifest::decode(&bytes).is_err_and(|e| e.to_string().contains("unsupported version")));
    }

    #[test]
    fn local_names_must_be_plain_and_unique_per_shard() {
        let body = |local: &str| {
            format!(
                r#"{{"job":"j","checkpoint":3,"parent":null,"created_ms":0,"max_key_groups":4,
            "backend":"rocksdb","states":[],"shards":[{{"shard":0,"range":{{"start":0,"end":4}},"format":"rocksdb",
            "files":[{{"path":"shared/ab.sst","size":1,"crc32":2,"local":"{local}"}},
                     {{"path":"chk-3/shard-0/CURRENT","size":1,"crc32":2}}],"source_position":null}}]}}"#
            )
        };
        let decode =
            |b: String| Manifest::decode(&envelope::encode(Kind::CheckpointManifest, 2, b.as_bytes()).expect("encode"));
        assert!(decode(body("000007.sst")).is_ok());
        for bad in ["../x", "a/b", "", "CURRENT"] {
            assert!(decode(body(bad)).is_err(), "local name {bad:?} accepted");
        }
    }
}
