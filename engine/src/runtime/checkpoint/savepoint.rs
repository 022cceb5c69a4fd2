//! Writing a savepoint from the shards' acks of its barrier: a self-contained,
//! relocatable directory (FORMAT.md, "Savepoints") in one of two forms.
//!
//! - canonical: one snapshot file per shard, whatever the backend (heap shards encode
//!   their copied entries; RocksDB shards have their local checkpoint scanned in key
//!   order), so it restores into either backend;
//! - native: RocksDB shards' checkpoint files copied in whole (SSTs included); heap
//!   shards have no native form and are written canonically.
//!
//! Everything runs on the coordinator's thread, off the processing path. A savepoint
//! that fails is removed again (it is recognisably one of ours: it carries the
//! in-progress marker); a complete one is never deleted by the engine.
use std::path::Path;
use std::time::Instant;

use formats::checkpoint::OwnedFile;
use formats::fs::{Fs, StdFs};
use formats::id::CheckpointId;
use formats::keygroup::KeyGroupRange;
use formats::layout;
use formats::manifest::{FileRef, ShardFormat, ShardSnapshot};
use formats::savepoint::{self, Form, SavepointMeta};
use formats::snapshot::SnapshotWriter;
use formats::statekey;
use formats::value::{Purged, StateDescriptor};

use super::ack::{Ack, ExpiryAt, ShardState};
use super::publish::JobInfo;
use crate::error::Error;
use crate::priority::{Throttle, Throttled};
use crate::state::cleanup;
use crate::state::snapshot::Collected;

/// The share of wall time a canonical savepoint's encoding may take while the job goes
/// on (the rest it sleeps, in slices of `Throttle::SLICE`): on two vCPUs that are
/// hyperthread siblings, any work beside a shard slows it, whatever its priority. A
/// stop-with-savepoint, after which the job ends, runs at full speed.
pub const BACKGROUND_DUTY: f64 = 0.1;

/// What writing a savepoint produced.
#[derive(Debug, Clone)]
pub struct Written {
    /// The form written (a heap job's native request is written canonically).
    pub form: Form,
    /// Bytes of every file in the savepoint.
    pub bytes: u64,
}

/// Writes savepoint `id` of the shards' `acks` into `target` (which must not exist or be
/// empty) in `form`, encoding at most `duty` of the time (1.0: full speed). On failure
/// whatever was written is removed.
pub fn write(
    info: &JobInfo,
    id: CheckpointId,
    target: &Path,
    form: Form,
    acks: Vec<Ack>,
    duty: f64,
) -> Result<Written, Error> {
    let mut fs = StdFs;
    savepoint::begin(&mut fs, target)?;
    let result = write_begun(&mut Out { fs: &mut fs, target, duty }, info, id, form, acks);
    if result.is_err() {
        if let Err(e) = savepoint::dispose(&mut fs, target) {
            tracing::warn!(path = %target.display(), error = %e, "cannot remove a failed savepoint");
        }
    }
    result
}

/// Where a savepoint's files go, and how fast they are encoded.
struct Out<'a> {
    fs: &'a mut dyn Fs,
    target: &'a Path,
    duty: f64,
}

fn write_begun(
    out: &mut Out<'_>,
    info: &JobInfo,
    id: CheckpointId,
    requested: Form,
    mut acks: Vec<Ack>,
) -> Result<Written, Error> {
    let started = Instant::now();
    acks.sort_by_key(|a| a.shard);
    let states = acks.first().map(|a| a.states.clone()).unwrap_or_default();
    let mut form = requested;
    let mut shards = Vec::with_capacity(acks.len());
    for a in acks {
        let source_position = info.source_position(&a, "savepoint", id)?;
        let state = a
            .snapshot
            .map_err(|e| Error::Executor(format!("shard {} could not snapshot savepoint {}: {e}", a.shard, id.0)))?;
        let (format, files) = match (state, requested) {
            (ShardState::Full(collected), _) => {
                form = Form::Canonical;
                (ShardFormat::Snapshot, vec![encode_collected(out, a.shard, collected)?])
            }
            (ShardState::Rocksdb { dir, .. }, Form::Native) => {
                (ShardFormat::Rocksdb, copy_instance(out, a.shard, &dir)?)
            }
            (ShardState::Rocksdb { dir, expiry, .. }, Form::Canonical) => {
                let files = vec![encode_instance(out, a.shard, &dir, &a.states, a.range, expiry.as_ref())?];
                (ShardFormat::Snapshot, files)
            }
        };
        let operator_state = a.operator_state;
        shards.push(ShardSnapshot { shard: a.shard, range: a.range, format, files, source_position, operator_state });
    }
    let manifest = info.manifest(id, None, states, shards);
    let bytes = manifest.files().map(|f| f.size).sum();
    savepoint::commit(out.fs, out.target, &SavepointMeta { form, manifest })?;
    tracing::debug!(savepoint = id.0, ms = started.elapsed().as_millis() as u64, bytes, "savepoint files written");
    Ok(Written { form, bytes })
}

/// A heap shard's copied entries as its snapshot file, streamed block by block.
fn encode_collected(out: &mut Out<'_>, shard: u16, collected: Collected) -> Result<FileRef, Error> {
    let path = layout::savepoint_snapshot_path(shard);
    let mut file = OwnedFile::create(out.fs, out.target, &path)?;
    let label = file.path().to_owned();
    let summary = collected.write_to(Throttled { inner: &mut file, throttle: Throttle::new(out.duty) }, label)?;
    file.finish()?;
    Ok(FileRef { path, size: summary.size, crc32: summary.crc32, local: None })
}

/// A RocksDB shard's local checkpoint `dir` scanned in key order into its snapshot file
/// (state by state; within a state, key order is key-group order). With `expiry`, the
/// states with full-snapshot cleanup leave out what had expired at the barrier.
fn encode_instance(
    out: &mut Out<'_>,
    shard: u16,
    dir: &Path,
    states: &[StateDescriptor],
    range: KeyGroupRange,
    expiry: Option<&ExpiryAt>,
) -> Result<FileRef, Error> {
    let path = layout::savepoint_snapshot_path(shard);
    let mut file = OwnedFile::create(out.fs, out.target, &path)?;
    let label = file.path().to_owned();
    let mut w = SnapshotWriter::to_writer(states.to_vec(), range, &mut file, label);
    let mut failed: Option<formats::FormatError> = None;
    let mut throttle = Throttle::new(out.duty);
    let scanned = reader::scan(dir, states, range, &mut |i, k, v| {
        throttle.tick();
        let kept;
        let v = match (expiry.and_then(|e| e.purge_at(i)), states.get(i)) {
            (Some(now_ms), Some(desc)) => match cleanup::purge(desc, v, now_ms).0 {
                Purged::Drop => return Ok(()),
                Purged::Rewritten(live) => {
                    kept = live;
                    &kept[..]
                }
                Purged::Keep => v,
            },
            _ => v,
        };
        statekey::decode(k).and_then(|sk| w.add(i as u32, sk.key_group, k, v)).map_err(|e| {
            let reason = e.to_string();
            failed = Some(e);
            reader::ReadError::Visit(reason)
        })
    });
    if let Some(e) = failed {
        return Err(Error::from(e));
    }
    scanned?;
    let summary = w.finish()?;
    file.finish()?;
    Ok(FileRef { path, size: summary.size, crc32: summary.crc32, local: None })
}

/// Every file of a RocksDB shard's local checkpoint `dir`, copied into the savepoint.
fn copy_instance(out: &mut Out<'_>, shard: u16, dir: &Path) -> Result<Vec<FileRef>, Error> {
    let names = out.fs.list(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let relative = layout::savepoint_owned_path(shard, &name);
        files.push(savepoint::copy_in(out.fs, out.target, &relative, &dir.join(&name), None)?);
    }
    Ok(files)
}
