//! Restoring from RocksDB checkpoints (FORMAT.md §9, format `rocksdb`): an old shard's
//! instance is rebuilt from the checkpoint's files in a scratch directory, opened
//! read-only, and the entries of the key groups asked for are read out of it. The files
//! were verified (size, crc32) when the checkpoint was loaded; the rebuilt copy is
//! hard links when the checkpoint is on the same file system, else copies.
use std::path::Path;

use formats::keygroup::KeyGroupRange;
use formats::manifest::ShardSnapshot;
use formats::statekey;
use formats::value::StateDescriptor;
use rocksdb::{Direction, IteratorMode};

use super::backend::{Backend, StateId};
use super::rocks::RocksBackend;
use crate::error::StateError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |e| StateError::Format(formats::FormatError::io(path, e))
}

/// Callback of [`scan`]: (index of the state, key, value).
pub type EntryVisit<'a> = dyn FnMut(usize, &[u8], &[u8]) -> Result<(), StateError> + 'a;

/// Rebuilds `shard`'s instance from checkpoint `root` in `scratch` (created; replaced
/// if present).
pub fn materialize(root: &Path, shard: &ShardSnapshot, scratch: &Path) -> Result<(), StateError> {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch).map_err(io(scratch))?;
    }
    std::fs::create_dir_all(scratch).map_err(io(scratch))?;
    for f in &shard.files {
        let from = formats::layout::resolve(root, &f.path);
        let to = scratch.join(f.local_name());
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

/// Visits, per state in `states` order, every entry of the instance in `dir` whose key
/// group lies in `clip`, in key order: `visit(state index, key, value)`.
pub fn scan(
    dir: &Path,
    states: &[StateDescriptor],
    clip: KeyGroupRange,
    visit: &mut EntryVisit<'_>,
) -> Result<(), StateError> {
    let db = RocksBackend::open_read_only(dir, states)?;
    let start = statekey::key_group_prefix(formats::KeyGroup(clip.start));
    for (i, d) in states.iter().enumerate() {
        let cf = db.cf_handle(&d.name).ok_or_else(|| {
            StateError::Format(formats::FormatError::Invalid {
                what: "rocksdb checkpoint",
                offset: 0,
                reason: format!("{}: no column family for state {:?}", dir.display(), d.name),
            })
        })?;
        for item in db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item?;
            let kg = statekey::decode(&k)?.key_group;
            if u32::from(kg.0) >= u32::from(clip.end) {
                break;
            }
            visit(i, &k, &v)?;
        }
    }
    Ok(())
}

/// Loads the entries of old shard `shard` (of checkpoint `root`, with states `states`)
/// whose key group lies in `clip` into `backend`, rebuilding the instance in `scratch`
/// and removing it afterwards. Returns the number of entries loaded.
pub fn restore(
    backend: &mut dyn Backend,
    root: &Path,
    shard: &ShardSnapshot,
    states: &[StateDescriptor],
    clip: KeyGroupRange,
    scratch: &Path,
) -> Result<u64, StateError> {
    let map = super::snapshot::map_states(backend.descriptors(), states)?;
    materialize(root, shard, scratch)?;
    let result = load(backend, scratch, states, &map, clip);
    let removed = std::fs::remove_dir_all(scratch).map_err(io(scratch));
    let n = result?;
    removed?;
    Ok(n)
}

const BATCH: usize = 4096;

fn load(
    backend: &mut dyn Backend,
    dir: &Path,
    states: &[StateDescriptor],
    map: &[StateId],
    clip: KeyGroupRange,
) -> Result<u64, StateError> {
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH);
    let mut current = None;
    let mut loaded = 0u64;
    let write = |backend: &mut dyn Backend, id: Option<StateId>, batch: &mut Vec<(Vec<u8>, Vec<u8>)>| {
        if let Some(id) = id {
            backend.write_batch(id, &mut batch.iter().map(|(k, v)| (&k[..], Some(&v[..]))))?;
        }
        batch.clear();
        Ok::<(), StateError>(())
    };
    scan(dir, states, clip, &mut |i, k, v| {
        let id = map.get(i).copied();
        if id != current || batch.len() >= BATCH {
            write(backend, current, &mut batch)?;
            current = id;
        }
        batch.push((k.to_vec(), v.to_vec()));
        loaded += 1;
        Ok(())
    })?;
    write(backend, current, &mut batch)?;
    backend.flush()?;
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use formats::value::{StateKind, ValueEncoding};
    use formats::KeyGroup;

    use super::*;
    use crate::state::{CachedBackend, RocksConfig};

    #[test]
    fn a_checkpoint_holds_exactly_the_cached_state_also_when_written_as_files() {
        // 40k dirty entries, more than a write batch takes at a checkpoint: the cache's
        // run is ingested as an SST. Deletes of keys RocksDB holds must win too.
        let tmp = tempfile::tempdir().expect("tempdir");
        let states = vec![StateDescriptor {
            name: "v".into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: None,
        }];
        let rocks = RocksBackend::open(
            &tmp.path().join("db"),
            states.clone(),
            &RocksConfig::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("open");
        let mut b = CachedBackend::new(rocks, 1 << 20);
        let mut model = BTreeMap::new();
        let key = |k: u64| {
            let mut out = Vec::new();
            statekey::encode_prefix(&mut out, KeyGroup((k % 7) as u16), &k.to_be_bytes(), &[]);
            out
        };
        for round in 0..3u64 {
            for k in 0..40_000u64 {
                let kb = key(k);
                if (k + round) % 5 == 0 {
                    b.delete(StateId(0), &kb).expect("delete");
                    model.remove(&kb);
                } else {
                    let v = (k * 10 + round).to_le_bytes().to_vec();
                    b.put(StateId(0), &kb, &v).expect("put");
                    model.insert(kb, v);
                }
            }
            let dir = tmp.path().join(format!("chk-{round}"));
            b.native_checkpoint(&dir).expect("checkpoint");
            let mut got = BTreeMap::new();
            scan(&dir, &states, KeyGroupRange { start: 0, end: 7 }, &mut |_, k, v| {
                got.insert(k.to_vec(), v.to_vec());
                Ok(())
            })
            .expect("scan");
            assert_eq!(got.len(), model.len(), "round {round}");
            assert!(got == model, "round {round}: the checkpoint differs from the model");
        }
        assert!(!formats::layout::ingest_scratch_file(&tmp.path().join("db")).exists(), "no scratch file left");
    }
}
