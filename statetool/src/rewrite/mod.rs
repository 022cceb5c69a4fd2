//! Rewriting state offline: what `statetool compact` and `statetool migrate` share. The
//! input (a checkpoint, a job's newest intact checkpoint, or a savepoint of either form,
//! every file's crc32 checked first) is read entry by entry; each entry is mapped by the
//! [`plan::Plan`] (its state renamed or dropped, expired TTL values dropped, its key
//! moved to its key group under a new key-group count) and put into the [`sort::Sorter`];
//! then each new shard is written from it ([`write::Output`], [`shard::ShardSink`]) and
//! the output published. When the input already arrives in a shard's order (`in_order`:
//! the same key groups, and one state or no new shard spanning two old ones) each new
//! shard streams straight from the input instead, with no sorter.
//!
//! The input is only read (RocksDB shards are rebuilt from hard links in a temporary
//! directory). The scratch directory (`.statetool-rewrite-*` beside the output, so
//! instances move into it without copies) is removed when the rewrite ends, whether it
//! succeeds or fails; a failed rewrite removes its unfinished output too.
pub mod plan;
pub mod shard;
pub mod sort;
#[cfg(test)]
mod tests;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use formats::keygroup::{key_group_of, range_for_shard, KeyGroup, ShardId};
use formats::manifest::{Manifest, ShardSnapshot};
use formats::operator_state::OperatorState;
use formats::statekey;
use formats::timerkey;
use formats::value::{purge_expired, Purged, StateKind};

use crate::progress::{Progress, ENTRIES_PER_UPDATE};
use crate::verbs::entries::ALL;
use crate::verbs::target::Loaded;
use plan::{Form, Plan};
use sort::Sorter;
use write::Output;

/// What a rewrite did, for the report.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub output: PathBuf,
    pub form: String,
    pub shards: u32,
    pub key_groups: u32,
    pub entries_read: u64,
    pub entries_written: u64,
    /// Entries (or whole lists) dropped because every value in them had expired.
    pub expired_dropped: u64,
    /// List entries kept with some of their elements dropped as expired.
    pub lists_trimmed: u64,
    /// Entries of dropped states.
    pub state_dropped: u64,
    /// Whether entries went through the sorter (false: streamed in order, see `in_order`).
    pub sorted: bool,
    /// Bytes of the input's files (as its manifest lists them) and of the output's.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub seconds: f64,
}

/// Refuses an output inside the input (or the input itself): the input is never modified.
fn check_apart(input: &Loaded, to: &Path) -> anyhow::Result<()> {
    let abs = |p: &Path| std::path::absolute(p).with_context(|| format!("resolving {}", p.display()));
    let (to_abs, base) = (abs(to)?, abs(&input.base)?);
    anyhow::ensure!(
        !to_abs.starts_with(&base) && !base.starts_with(&to_abs),
        "--to {}: must lie outside the input {} (statetool never modifies its input)",
        to.display(),
        input.base.display()
    );
    Ok(())
}

/// The source positions of the new shards. Splits go to shard `id % shards`, as a
/// restore onto that many shards would give them (FORMAT.md §9); on the same shard count
/// each shard keeps its own. A source that cannot be resumed (`null`) stays so.
fn positions(m: &Manifest, shards: u32) -> anyhow::Result<Vec<serde_json::Value>> {
    if m.shards.len() == shards as usize {
        return Ok(m.shards.iter().map(|s| s.source_position.clone()).collect());
    }
    let mut out = vec![Vec::new(); shards as usize];
    for s in &m.shards {
        let Some(splits) = s.source_position.as_array() else {
            return Ok(vec![serde_json::Value::Null; shards as usize]);
        };
        for split in splits {
            let id = split.get("id").and_then(serde_json::Value::as_u64).with_context(|| {
                format!("shard {}'s source position has a split without a numeric id: {split}", s.shard)
            })?;
            if let Some(v) = out.get_mut((id % u64::from(shards)) as usize) {
                v.push(split.clone());
            }
        }
    }
    Ok(out.into_iter().map(serde_json::Value::from).collect())
}

/// New shard `shard`'s operator states: as they are on the same shard count, else
/// dealt as a restore onto `shards` shards would deal them (FORMAT.md §9.7).
fn operator_states(m: &Manifest, shard: u32, shards: u32) -> anyhow::Result<Vec<OperatorState>> {
    if m.shards.len() == shards as usize {
        return Ok(m.shards.get(shard as usize).map(|s| s.operator_state.clone()).unwrap_or_default());
    }
    let old: Vec<&[OperatorState]> = m.shards.iter().map(|s| s.operator_state.as_slice()).collect();
    Ok(formats::operator_state::redistribute(&old, shard, shards)?)
}

/// Where mapped entries go: (output state, key group, state key, value).
type Emit<'a> = dyn FnMut(usize, KeyGroup, &[u8], &[u8]) -> anyhow::Result<()> + 'a;

/// Reads the entries of `input` whose key group lies in `clip`, maps each as `plan`
/// says (dropped state, expired, new key group) and hands the survivors to
/// `emit(output state, key group, state key, value)`, in the order read.
fn read_mapped(
    input: &Loaded,
    plan: &Plan,
    clip: formats::keygroup::KeyGroupRange,
    r: &mut Report,
    emit: &mut Emit<'_>,
) -> anyhow::Result<()> {
    let mut failed: Option<anyhow::Error> = None;
    let mut one = |d: &formats::value::StateDescriptor, k: &[u8], v: &[u8]| -> anyhow::Result<()> {
        r.entries_read += 1;
        let Some(state) = plan.mapping.get(&d.name).copied().flatten() else {
            r.state_dropped += 1;
            return Ok(());
        };
        let trimmed;
        let value = match plan.purge_at.map(|now| purge_expired(d, v, now)).transpose()? {
            None | Some(Purged::Keep) => v,
            Some(Purged::Drop) => {
                r.expired_dropped += 1;
                return Ok(());
            }
            Some(Purged::Rewritten(kept)) => {
                r.lists_trimmed += 1;
                trimmed = kept;
                &trimmed
            }
        };
        r.entries_written += 1;
        let sk = statekey::decode(k)?;
        if plan.rehash {
            // A timer's key group is its user key's (FORMAT.md §3.3), not its §3 key's.
            let user_key = if d.kind == StateKind::Timer { timerkey::decode(k)?.key } else { sk.key };
            let kg = key_group_of(user_key, plan.key_groups);
            emit(state, kg, &statekey::with_key_group(k, kg)?, value)
        } else {
            emit(state, sk.key_group, k, value)
        }
    };
    let read = input.for_each(clip, &mut |d, k, v| {
        one(d, k, v).map_err(|e| {
            let reason = format!("{e:#}");
            failed = Some(e);
            reader::ReadError::Visit(reason)
        })
    });
    match (failed, read) {
        (Some(e), _) => Err(e),
        (None, r) => r.map(|_| ()),
    }
}

/// Whether the input, read clipped to each new shard's range, already arrives in the
/// order a shard is written in (by state, then key): keys keep their key groups, and
/// either there is one state (old shards are read in key-group order) or every new
/// shard lies within one old shard (which is read state by state). Then no sorter is
/// needed: each new shard streams straight from the input.
fn in_order(m: &Manifest, plan: &Plan) -> bool {
    if plan.rehash {
        return false;
    }
    plan.states.len() <= 1
        || (0..plan.shards).all(|i| {
            let r = range_for_shard(ShardId(i as u16), plan.shards, plan.key_groups);
            m.shards.iter().filter(|s| s.range.start < r.end && r.start < s.range.end).count() <= 1
        })
}

/// Rewrites `input` by `plan` into `to`. On failure nothing that looks valid is left
/// at `to`.
pub fn run(input: &Loaded, plan: &Plan, to: &Path) -> anyhow::Result<Report> {
    check_apart(input, to)?;
    let started = Instant::now();
    let m = &input.manifest;
    let parent = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".statetool-rewrite-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a scratch directory in {}", parent.display()))?;
    let mut r = Report {
        output: to.to_owned(),
        form: plan.form.to_string(),
        shards: plan.shards,
        key_groups: plan.key_groups,
        bytes_in: input.bytes(),
        sorted: !in_order(m, plan),
        ..Report::default()
    };
    let positions = positions(m, plan.shards)?;
    let sorter = if r.sorted {
        let mut sorter = Sorter::create(&scratch.path().join("sort"), plan.states.len())?;
        read_mapped(input, plan, ALL, &mut r, &mut |state, _, k, v| sorter.put(state, k, v))?;
        sorter.seal()?;
        Some(sorter)
    } else {
        None
    };
    let backend = if plan.form == Form::Native { "rocksdb".to_owned() } else { m.backend.clone() };
    let format = Output::format_for(plan.form, &backend);
    let mut out = Output::begin(to, plan.form, format, m.checkpoint, scratch.path())?;
    let opts: Vec<rocksdb::Options> = plan.states.iter().map(shard::cf_options).collect();
    // Reading shows its own bar (`verbs::entries`); writing from the sorter shows this one.
    let bar = r.sorted.then(|| Progress::entries(Some(r.entries_written), "writing the new shards"));
    let count = |n: u64| bar.iter().for_each(|b| b.inc(n));
    let written = || -> anyhow::Result<Vec<ShardSnapshot>> {
        let mut shards = Vec::new();
        for (i, source_position) in positions.into_iter().enumerate() {
            let shard = ShardId(i as u16);
            let range = range_for_shard(shard, plan.shards, plan.key_groups);
            let mut sink = out.open(shard.0, range, &plan.states, &opts)?;
            match &sorter {
                Some(sorter) => {
                    bar.iter().for_each(|b| b.detail(format!("shard {}/{}", i + 1, plan.shards)));
                    let mut pending = 0u64;
                    for state in 0..plan.states.len() {
                        sorter.scan(state, range, &mut |kg, k, v| {
                            pending += 1;
                            if pending == ENTRIES_PER_UPDATE {
                                count(std::mem::take(&mut pending));
                            }
                            sink.add(state, kg, k, v)
                        })?;
                    }
                    count(pending);
                }
                None => read_mapped(input, plan, range, &mut r, &mut |state, kg, k, v| sink.add(state, kg, k, v))?,
            }
            let files = out.close(shard.0, sink)?;
            let operator_state = operator_states(m, i as u32, plan.shards)?;
            shards.push(ShardSnapshot { shard: shard.0, range, format, files, source_position, operator_state });
        }
        Ok(shards)
    };
    let shards = match written() {
        Ok(s) => s,
        Err(e) => {
            out.discard();
            return Err(e);
        }
    };
    let manifest = Manifest {
        job: m.job.clone(),
        checkpoint: m.checkpoint,
        parent: None,
        created_ms: m.created_ms,
        max_key_groups: plan.key_groups,
        backend,
        key: m.key.clone(),
        states: plan.states.clone(),
        shards,
    };
    drop(bar);
    r.bytes_out = manifest.files().map(|f| f.size).sum();
    out.commit(manifest)?;
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}
