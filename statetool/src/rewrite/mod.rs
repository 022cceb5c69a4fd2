//! Rewriting state offline: what `statetool compact` and `statetool migrate` share. The
//! input (a checkpoint, a job's newest intact checkpoint, or a savepoint of either form,
//! every file's crc32 checked first) is read entry by entry; each entry is mapped by the
//! [`plan::Plan`] (its state renamed or dropped, expired TTL values dropped, its key
//! moved to its key group under a new key-group count) and put into the [`sort::Sorter`];
//! then each new shard is written from it ([`write::Output`]) and the output published.
//!
//! The input is only read (RocksDB shards are rebuilt from hard links in a temporary
//! directory). The scratch directory (`.statetool-rewrite-*` beside the output, so
//! instances move into it without copies) is removed when the rewrite ends, whether it
//! succeeds or fails; a failed rewrite removes its unfinished output too.
pub mod plan;
pub mod sort;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use formats::keygroup::{key_group_of, range_for_shard, shard_of, ShardId};
use formats::manifest::{Manifest, ShardSnapshot};
use formats::statekey;
use formats::value::{purge_expired, Purged};

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

/// Reads every entry of `input` into `sorter` as `plan` maps it.
fn fill(input: &Loaded, plan: &Plan, sorter: &mut Sorter, r: &mut Report) -> anyhow::Result<()> {
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
        if plan.rehash {
            let sk = statekey::decode(k)?;
            let moved = statekey::with_key_group(k, key_group_of(sk.key, plan.key_groups))?;
            sorter.put(state, &moved, value)
        } else {
            sorter.put(state, k, value)
        }
    };
    let read = input.for_each(crate::verbs::entries::ALL, &mut |d, k, v| {
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
        ..Report::default()
    };
    let positions = positions(m, plan.shards)?;
    let mut sorter = Sorter::create(&scratch.path().join("sort"), plan.states.len())?;
    fill(input, plan, &mut sorter, &mut r)?;
    sorter.seal()?;
    let mut out = Output::begin(to, plan.form, m.checkpoint, scratch.path())?;
    let backend = if plan.form == Form::Native { "rocksdb".to_owned() } else { m.backend.clone() };
    let written = (|| -> anyhow::Result<Manifest> {
        let format = out.shard_format(&backend);
        let mut shards = Vec::new();
        for (i, source_position) in positions.into_iter().enumerate() {
            let shard = ShardId(i as u16);
            let range = range_for_shard(shard, plan.shards, plan.key_groups);
            debug_assert_eq!(shard_of(formats::keygroup::KeyGroup(range.start), plan.shards, plan.key_groups), shard);
            let files = out.shard(format, shard.0, range, &plan.states, &sorter)?;
            shards.push(ShardSnapshot { shard: shard.0, range, format, files, source_position });
        }
        Ok(Manifest {
            job: m.job.clone(),
            checkpoint: m.checkpoint,
            parent: None,
            created_ms: m.created_ms,
            max_key_groups: plan.key_groups,
            backend,
            key: m.key.clone(),
            states: plan.states.clone(),
            shards,
        })
    })();
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            out.discard();
            return Err(e);
        }
    };
    r.bytes_out = manifest.files().map(|f| f.size).sum();
    out.commit(manifest)?;
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}
