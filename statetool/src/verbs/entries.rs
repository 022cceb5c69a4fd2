//! Reading every entry of a checkpoint through `reader` (the engine's restore reads the
//! same way). RocksDB shards are rebuilt in a temporary directory outside the checkpoint,
//! which stays untouched.
//!
//! Every verb that reads entries comes through [`for_each`], which is where the progress
//! bar is (`crate::progress`): entries read, entries per second, elapsed, and which of
//! the shards being read it is at. To know that, shards are handed to the reader one at
//! a time, each as a manifest of that shard alone, so the reader reads exactly what it
//! would have read of the whole manifest, in the same order.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use formats::keygroup::KeyGroupRange;
use formats::manifest::Manifest;

pub use reader::{Visit, ALL_KEY_GROUPS as ALL};

use crate::progress::{Progress, ENTRIES_PER_UPDATE};

/// Calls `visit(state, key, value)` for every entry of `m` (under `root`) whose key
/// group lies in `clip`; the first error, of a file or of `visit`, names the file. The
/// error of the reader is returned as a `reader::ReadError` (no context added), so a
/// caller may tell its kind.
pub fn for_each(root: &Path, m: &Manifest, clip: KeyGroupRange, visit: &mut Visit<'_>) -> anyhow::Result<u64> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().join("instance");
    let shards: Vec<_> = m.shards.iter().filter(|s| s.range.start < clip.end && clip.start < s.range.end).collect();
    let bar = Progress::entries(None, format!("reading {} checkpoint {}", m.job, m.checkpoint.0));
    let mut pending = 0u64;
    let mut counted = |d: &formats::value::StateDescriptor, k: &[u8], v: &[u8]| {
        pending += 1;
        if pending == ENTRIES_PER_UPDATE {
            bar.inc(pending);
            pending = 0;
        }
        visit(d, k, v)
    };
    // The manifest with one shard at a time (its header cloned once).
    let mut one = m.clone();
    one.shards.clear();
    let mut visited = 0;
    for (i, sh) in shards.iter().enumerate() {
        bar.detail(format!("shard {}/{} (shard {})", i + 1, shards.len(), sh.shard));
        one.shards = vec![(*sh).clone()];
        visited += reader::for_each(&mut formats::fs::StdFs, root, &one, clip, Some(&dir), &mut counted)?;
    }
    bar.inc(pending);
    Ok(visited)
}

/// Checks the structure of every data file of `m` (under `root`) without reading its
/// entries (`reader::check_structure`: snapshot footers and indexes; RocksDB instances
/// opened, which checks each SST's footer and metadata blocks). Returns the number of
/// data files checked; the error names the file.
pub fn check_structure(root: &Path, m: &Manifest) -> anyhow::Result<u64> {
    let scratch = tempfile::tempdir()?;
    Ok(reader::check_structure(&mut formats::fs::StdFs, root, m, Some(&scratch.path().join("instance")))?)
}

/// Reads every entry of `m` (under `root`) and drops it: what `verify` needs to know
/// every entry reads back (snapshot blocks decode with their crc32s; RocksDB's block
/// checksums pass). Unlike [`for_each`], shards are read on up to as many threads as
/// the machine has cores, each into a scratch instance of its own, since nothing has to
/// see the entries in order. The error of the first shard (in the manifest's order)
/// that failed is returned as the reader's error. Returns the number of entries.
pub fn read_all(root: &Path, m: &Manifest) -> anyhow::Result<u64> {
    let scratch = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = cores.min(m.shards.len()).max(1);
    let bar = Progress::entries(None, format!("reading {} checkpoint {}", m.job, m.checkpoint.0));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Result<u64, reader::ReadError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut one = m.clone();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(sh) = m.shards.get(i) else { break };
                    // The latest shard started (of those read on `workers` threads).
                    bar.detail(format!("shard {}/{} (shard {})", i + 1, m.shards.len(), sh.shard));
                    one.shards = vec![sh.clone()];
                    let dir = scratch.path().join(format!("instance-{}", sh.shard));
                    let mut pending = 0u64;
                    let read =
                        reader::for_each(&mut formats::fs::StdFs, root, &one, ALL, Some(&dir), &mut |_, _, _| {
                            pending += 1;
                            if pending == ENTRIES_PER_UPDATE {
                                bar.inc(pending);
                                pending = 0;
                            }
                            Ok(())
                        });
                    bar.inc(pending);
                    if let Ok(mut d) = done.lock() {
                        d.push((i, read));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    let mut n = 0;
    for (_, read) in done {
        n += read?;
    }
    Ok(n)
}
