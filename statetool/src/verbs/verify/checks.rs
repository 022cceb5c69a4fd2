//! The named checks `verify` runs on one checkpoint or savepoint, in this order:
//!
//! | check | passes when |
//! |---|---|
//! | `manifest` | the manifest (`_savepoint`) decodes: envelope checksums, version, invariants (FORMAT.md §9, §13) |
//! | `key_groups` | the shards' ranges cover `[0, max_key_groups)` exactly once (§9.1); else which key groups are missing or covered twice |
//! | `parent` | the parent chain resolves ([`super::parent`]); a savepoint has none |
//! | `files` | every file the manifest lists exists with its size and crc32 (`--quick`: the crc32s of metadata files only, not of SSTs and snapshot files) |
//! | `structure` | every data file's own checksummed metadata: a snapshot file's footer and index, each SST's footer, properties and index blocks (RocksDB opens each shard's instance) |
//! | `sst_blocks` | every data block of every SST of the RocksDB shards passes its checksum (the full scan) |
//! | `entries` | every entry reads back (snapshot blocks decode, RocksDB shards open and scan) |
//!
//! A manifest that does not validate is still read, without validation, so that
//! `key_groups` and `parent` can say what is wrong; `files` needs a valid manifest,
//! and the rest intact files. `--quick` reads no data block: `files` checks sizes and
//! the metadata files' crc32s, then `structure`; it skips the last two. The full check
//! computes every file's crc32 on a second thread while the others read the entries.
use std::path::{Path, PathBuf};

use formats::checkpoint::Verify;
use formats::envelope;
use formats::keygroup::{range_for_shard, validate_key_groups, validate_shards, ShardId};
use formats::layout;
use formats::manifest::{Location, Manifest, ShardFormat};
use formats::savepoint::{Form, SavepointMeta};

use super::coverage;
use super::parent::Chain;
use crate::verbs::entries;
use crate::verbs::target::{human_bytes, Kind, Loaded, Member};

pub const MANIFEST: &str = "manifest";
pub const KEY_GROUPS: &str = "key_groups";
pub const PARENT: &str = "parent";
pub const FILES: &str = "files";
pub const STRUCTURE: &str = "structure";
pub const SST_BLOCKS: &str = "sst_blocks";
pub const ENTRIES: &str = "entries";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problem,
    /// Not run: `--quick`, nothing it applies to, or an earlier check failed.
    Skipped,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Problem => "problem",
            Status::Skipped => "skipped",
        }
    }
}

/// One named check and what it found (a problem names the file).
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

/// Every check of one member.
#[derive(Debug, Clone)]
pub struct Report {
    /// Known once the manifest decodes.
    pub kind: Option<Kind>,
    /// Entries read (none with `--quick` or when reading did not finish).
    pub entries: Option<u64>,
    pub checks: Vec<Check>,
}

impl Report {
    /// The first check with a problem, if any.
    pub fn problem(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == Status::Problem)
    }

    fn add(&mut self, name: &'static str, result: Result<String, String>) {
        let (status, detail) = match result {
            Ok(d) => (Status::Ok, d),
            Err(d) => (Status::Problem, d),
        };
        self.checks.push(Check { name, status, detail });
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        self.checks.push(Check { name, status: Status::Skipped, detail: why.to_owned() });
    }
}

/// The manifest file of a member: `chk-<n>/_manifest` or `<sp>/_savepoint`.
fn manifest_file(m: &Member) -> PathBuf {
    match m {
        Member::Checkpoint { root, id } => layout::manifest_path(root, *id),
        Member::Savepoint { dir } => layout::savepoint_metadata_path(dir),
    }
}

/// The manifest read past its validation (its envelope's checksums must still hold),
/// with a savepoint's form; `None` when even that fails.
fn read_unvalidated(m: &Member, file: &Path) -> Option<(Manifest, Option<Form>)> {
    let kind = match m {
        Member::Checkpoint { .. } => envelope::Kind::CheckpointManifest,
        Member::Savepoint { .. } => envelope::Kind::SavepointMetadata,
    };
    let bytes = std::fs::read(file).ok()?;
    let (_, body) = envelope::decode(kind, &bytes).ok()?;
    let manifest: Manifest = serde_json::from_slice(body).ok()?;
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    let form = body.get("form").and_then(serde_json::Value::as_str).and_then(|f| f.parse().ok());
    Some((manifest, form))
}

/// Every invariant but 9.1 (and that a checkpoint's manifest names its directory): the
/// manifest is validated with its ranges replaced by a tiling of the same shard count,
/// so what `key_groups` reports is not reported twice, and nothing else goes unchecked.
fn validate_all_but_ranges(m: &Member, man: &Manifest, form: Option<Form>) -> Result<(), String> {
    let n = man.shards.len() as u32;
    validate_shards(n, man.max_key_groups).map_err(|e| e.to_string())?;
    let mut tiled = man.clone();
    for (i, s) in (0u16..).zip(tiled.shards.iter_mut()) {
        s.range = range_for_shard(ShardId(i), n, man.max_key_groups);
    }
    let checked = match (m, form) {
        (Member::Checkpoint { id, .. }, _) if man.checkpoint != *id => {
            return Err(format!("names checkpoint {}, found in {}", man.checkpoint.0, m.name()))
        }
        (Member::Checkpoint { .. }, _) => tiled.validate(),
        (Member::Savepoint { .. }, Some(form)) => SavepointMeta { form, manifest: tiled }.validate(),
        (Member::Savepoint { .. }, None) => tiled.validate_for(Location::Savepoint),
    };
    checked.map_err(|e| e.to_string())
}

/// Runs every check on `m` (`quick`: all but `sst_blocks` and `entries`); `chain`
/// remembers the ancestors decoded for earlier members.
pub fn run(m: &Member, quick: bool, chain: &mut Chain) -> Report {
    let mut r = Report { kind: None, entries: None, checks: Vec::new() };
    let file = manifest_file(m);
    let strict = m.load(None);
    let unvalidated = match &strict {
        Ok(l) => Some((l.manifest.clone(), None)),
        Err(_) => read_unvalidated(m, &file),
    };
    let faults = unvalidated.as_ref().map(|(man, _)| coverage::faults(man.max_key_groups, &man.shards));

    r.kind = match (&strict, m, &unvalidated) {
        (Ok(l), _, _) => Some(l.kind),
        (Err(_), Member::Checkpoint { .. }, Some(_)) => Some(Kind::Checkpoint),
        (Err(_), Member::Savepoint { .. }, Some((_, form))) => form.map(Kind::Savepoint),
        (Err(_), _, None) => None,
    };

    // manifest
    match (&strict, &unvalidated, &faults) {
        (Ok(_), _, _) => r.add(MANIFEST, Ok(format!("{}: decodes, checksums and invariants pass", file.display()))),
        (Err(_), Some((man, form)), Some(f)) if !f.is_empty() => {
            let passed = validate_all_but_ranges(m, man, *form)
                .map(|()| format!("{}: decodes, checksums pass; invariants but 9.1 pass", file.display()))
                .map_err(|why| format!("{}: {why}", file.display()));
            r.add(MANIFEST, passed);
        }
        (Err(e), _, _) => r.add(MANIFEST, Err(e.to_string())),
    }

    // key_groups
    match (&unvalidated, &faults) {
        (Some((man, _)), Some(f)) => {
            let g = man.max_key_groups;
            let found = match validate_key_groups(g) {
                Err(e) => Err(format!("{}: {e}", file.display())),
                Ok(()) if f.is_empty() => Ok(format!("0..{g} covered exactly once by {} shard(s)", man.shards.len())),
                Ok(()) => {
                    let said: Vec<String> = f.iter().map(ToString::to_string).collect();
                    Err(format!("{}: {} (of 0..{g})", file.display(), said.join("; ")))
                }
            };
            r.add(KEY_GROUPS, found);
        }
        _ => r.skip(KEY_GROUPS, "the manifest does not decode"),
    }

    // parent
    match (m, &unvalidated) {
        (_, None) => r.skip(PARENT, "the manifest does not decode"),
        (Member::Checkpoint { root, .. }, Some((man, _))) => {
            let walked = chain.check(root, man);
            r.add(PARENT, walked);
        }
        (Member::Savepoint { .. }, Some((man, _))) => match man.parent {
            None => r.add(PARENT, Ok("none (a savepoint has no parent)".into())),
            Some(p) => {
                r.add(PARENT, Err(format!("{}: a savepoint has no parent, found parent {}", file.display(), p.0)))
            }
        },
    }

    // files, structure, sst_blocks, entries
    if strict.is_err() {
        for name in [FILES, STRUCTURE, SST_BLOCKS, ENTRIES] {
            r.skip(name, "the manifest is invalid");
        }
        return r;
    }
    if quick {
        quick_checks(m, &mut r);
    } else {
        full_checks(m, &mut r);
    }
    r
}

/// `files` (sizes; crc32s of the metadata files only) and `structure`; `sst_blocks` and
/// `entries` skipped. Reads no data block, so its time follows the number of files and
/// the size of their metadata, not of the state.
fn quick_checks(m: &Member, r: &mut Report) {
    let loaded = match m.load(Some(Verify::MetadataChecksums)) {
        Ok(l) => {
            let n = l.manifest.files().count();
            let said = format!("{n} file(s), {}: sizes match; crc32s of metadata files match", human_bytes(l.bytes()));
            r.add(FILES, Ok(said));
            Some(l)
        }
        Err(e) => {
            r.add(FILES, Err(e.to_string()));
            None
        }
    };
    match loaded {
        Some(l) => structure_check(&l, r),
        None => r.skip(STRUCTURE, "the files do not check out"),
    }
    r.skip(SST_BLOCKS, "--quick");
    r.skip(ENTRIES, "--quick");
}

/// `structure` from the data files' own checksummed metadata.
fn structure_check(l: &Loaded, r: &mut Report) {
    let found = entries::check_structure(&l.base, &l.manifest)
        .map(|n| format!("{n} data file(s): footers, indexes and metadata blocks pass their checksums"))
        .map_err(|e| e.to_string());
    r.add(STRUCTURE, found);
}

/// Every check: the crc32 of every file (`files`) on one thread while `structure`,
/// `sst_blocks` and `entries` read the entries on this one, so the two passes over the
/// data overlap (the second reads from the page cache what the first has read). When
/// `files` finds a problem the others are reported skipped, whatever they found: what
/// they read was not the data the manifest recorded.
fn full_checks(m: &Member, r: &mut Report) {
    let l = match m.load(Some(Verify::Sizes)) {
        Ok(l) => l,
        Err(e) => {
            r.add(FILES, Err(e.to_string()));
            for name in [STRUCTURE, SST_BLOCKS, ENTRIES] {
                r.skip(name, "the files do not check out");
            }
            return;
        }
    };
    // The manifest is decoded and the sizes checked once (`l`); the thread checks the
    // crc32s of the same files.
    let (crc, read) = std::thread::scope(|s| {
        let crc = s.spawn(|| l.check_crc());
        let read = read_checks(&l);
        let crc = crc.join().unwrap_or_else(|_| {
            Err(formats::error::FormatError::Invalid {
                what: "verify",
                offset: 0,
                reason: "the crc32 pass panicked".into(),
            })
        });
        (crc, read)
    });
    match crc {
        Ok(()) => {
            let n = l.manifest.files().count();
            r.add(FILES, Ok(format!("{n} file(s), {}: sizes and crc32s match", human_bytes(l.bytes()))));
            r.entries = read.entries;
            r.checks.extend(read.checks);
        }
        Err(e) => {
            r.add(FILES, Err(e.to_string()));
            for name in [STRUCTURE, SST_BLOCKS, ENTRIES] {
                r.skip(name, "the files do not check out");
            }
        }
    }
}

/// `structure`, `sst_blocks` and `entries` of `l`, in a report of their own.
fn read_checks(l: &Loaded) -> Report {
    let mut r = Report { kind: None, entries: None, checks: Vec::new() };
    structure_check(l, &mut r);
    if r.problem().is_some() {
        r.skip(SST_BLOCKS, "the structure does not check out");
        r.skip(ENTRIES, "the structure does not check out");
        return r;
    }
    let rocks: Vec<_> = l.manifest.shards.iter().filter(|s| s.format == ShardFormat::Rocksdb).collect();
    let ssts = rocks.iter().flat_map(|s| &s.files).filter(|f| layout::is_shared_file(f.local_name())).count();
    match entries::read_all(&l.base, &l.manifest) {
        Ok(n) => {
            r.entries = Some(n);
            if rocks.is_empty() {
                r.skip(SST_BLOCKS, "no RocksDB shard");
            } else {
                let said = format!("{ssts} SST(s) in {} shard(s): every data block's checksum passes", rocks.len());
                r.add(SST_BLOCKS, Ok(said));
            }
            r.add(ENTRIES, Ok(format!("{n} entries read")));
        }
        Err(e) => match e.downcast_ref::<reader::ReadError>() {
            Some(reader::ReadError::CorruptFile { .. }) => {
                // Its message holds RocksDB's already; `{e:#}` would repeat it.
                r.add(SST_BLOCKS, Err(e.to_string()));
                r.add(ENTRIES, Err("reading stopped at the corrupt SST (sst_blocks)".into()));
            }
            _ => {
                r.skip(SST_BLOCKS, if rocks.is_empty() { "no RocksDB shard" } else { "reading stopped (entries)" });
                r.add(ENTRIES, Err(format!("{e:#}")));
            }
        },
    }
    r
}
