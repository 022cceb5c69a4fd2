//! Every entry of a checkpoint, whatever its shards' format, clipped to a key-group
//! range: the dispatch that the engine's restore and statetool share.
use std::path::Path;

use formats::fs::Fs;
use formats::keygroup::KeyGroupRange;
use formats::layout;
use formats::manifest::{Manifest, ShardFormat, ShardSnapshot};
use formats::value::StateDescriptor;

use crate::error::ReadError;
use crate::rocks;
use crate::snapshot::{for_each_in_snapshot, Visit};

/// Every key group.
pub const ALL_KEY_GROUPS: KeyGroupRange = KeyGroupRange { start: 0, end: u16::MAX };

/// Calls `visit` for every entry of checkpoint `m`, reading through `fs`, (under its root `root`; or of a
/// savepoint, `root` being the savepoint directory and `m` its metadata's manifest) whose key
/// group lies in `clip`, old shard by old shard. RocksDB shards are rebuilt under
/// `scratch` (a directory this call creates and removes; it must be outside the
/// checkpoint; only needed when a shard is a RocksDB instance). Returns the number of entries visited. The first error, of a file or of
/// `visit`, ends the walk.
pub fn for_each(
    fs: &mut dyn Fs,
    root: &Path,
    m: &Manifest,
    clip: KeyGroupRange,
    scratch: Option<&Path>,
    visit: &mut Visit<'_>,
) -> Result<u64, ReadError> {
    let mut visited = 0u64;
    let mut counted = |d: &StateDescriptor, k: &[u8], v: &[u8]| {
        visited += 1;
        visit(d, k, v)
    };
    for sh in m.shards.iter().filter(|s| s.range.start < clip.end && clip.start < s.range.end) {
        match sh.format {
            ShardFormat::Snapshot => {
                for f in &sh.files {
                    for_each_in_snapshot(&*fs, &layout::resolve(root, &f.path), clip, &mut counted)?;
                }
            }
            ShardFormat::Rocksdb => in_instance(fs, root, sh, scratch, "reading", |dir| {
                rocks::scan(dir, &m.states, clip, &mut |i, k, v| match m.states.get(i) {
                    Some(d) => counted(d, k, v),
                    None => Ok(()),
                })
            })?,
        }
    }
    Ok(visited)
}

/// Rebuilds RocksDB shard `sh`'s instance from checkpoint `root` under `scratch`
/// (`what`ing it needs one), runs `f` on it, then removes it; a corruption RocksDB
/// reports names the checkpoint's file ([`name_the_file`]).
pub(crate) fn in_instance<T>(
    fs: &mut dyn Fs,
    root: &Path,
    sh: &ShardSnapshot,
    scratch: Option<&Path>,
    what: &str,
    f: impl FnOnce(&Path) -> Result<T, ReadError>,
) -> Result<T, ReadError> {
    let scratch = scratch.ok_or_else(|| ReadError::Invalid {
        path: root.to_path_buf(),
        reason: format!("{what} RocksDB shard {} needs a scratch directory", sh.shard),
    })?;
    rocks::materialize(fs, root, sh, scratch)?;
    let done = f(scratch);
    let removed = fs.remove_dir_all(scratch).map_err(|e| ReadError::io(scratch, e));
    let done = done.map_err(|e| name_the_file(e, root, sh))?;
    removed?;
    Ok(done)
}

/// A RocksDB corruption error of shard `sh`, which names the table by its name in the
/// rebuilt instance, as [`ReadError::CorruptFile`] naming the checkpoint's file instead;
/// any other error as it is.
fn name_the_file(e: ReadError, root: &Path, sh: &ShardSnapshot) -> ReadError {
    match e {
        ReadError::Rocks { path, source } if source.kind() == rocksdb::ErrorKind::Corruption => {
            match rocks::file_named_in(source.as_ref(), root, sh) {
                Some(file) => ReadError::CorruptFile { path: file, source },
                None => ReadError::Rocks { path, source },
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use formats::checkpoint::{self as protocol, Payload};
    use formats::id::CheckpointId;
    use formats::keygroup::KeyGroup;
    use formats::manifest::{FileRef, ShardFormat, ShardSnapshot};
    use formats::simfs::SimFs;
    use formats::snapshot::SnapshotWriter;
    use formats::value::{StateKind, ValueEncoding};

    use super::*;

    #[test]
    fn reads_a_checkpoint_through_the_given_file_system_only() {
        // Pins: the reader goes through `Fs` (here the simulated one: nothing of this
        // checkpoint exists on disk), visits exactly the entries of the key groups asked
        // for, and names the file it cannot read.
        let d = StateDescriptor {
            name: "v".into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: None,
        };
        let range = KeyGroupRange { start: 0, end: 4 };
        let mut w = SnapshotWriter::new(vec![d.clone()], range);
        let mut want = Vec::new();
        for kg in 0..4u16 {
            for k in 0..3u64 {
                let mut key = Vec::new();
                formats::statekey::encode_prefix(&mut key, KeyGroup(kg), &k.to_be_bytes(), &[]);
                w.add(0, KeyGroup(kg), &key, &k.to_le_bytes()).expect("add");
                if kg == 2 {
                    want.push(key);
                }
            }
        }
        let bytes = w.finish().expect("finish");
        let id = CheckpointId(1);
        let path = layout::snapshot_file_path(id, 0);
        let m = Manifest {
            job: "job".into(),
            checkpoint: id,
            parent: None,
            created_ms: 0,
            max_key_groups: 4,
            backend: "heap".into(),
            key: None,
            states: vec![d],
            shards: vec![ShardSnapshot {
                shard: 0,
                range,
                format: ShardFormat::Snapshot,
                files: vec![FileRef::of(&path, &bytes)],
                source_position: serde_json::Value::Null,
                operator_state: Vec::new(),
            }],
        };
        let mut sim = SimFs::new();
        let root = PathBuf::from("/ck/job");
        formats::fs::create_dir_all(&mut sim, &root).expect("root");
        protocol::publish(&mut sim, &root, &m, &[Payload { path: path.clone(), bytes }]).expect("publish");
        let mut got = Vec::new();
        let clip = KeyGroupRange { start: 2, end: 3 };
        let n = for_each(&mut sim, &root, &m, clip, None, &mut |_, k, _| {
            got.push(k.to_vec());
            Ok(())
        })
        .expect("read");
        assert_eq!(n, 3);
        assert!(got == want, "exactly key group 2's entries");
        let mut empty = SimFs::new();
        let err = for_each(&mut empty, &root, &m, clip, None, &mut |_, _, _| Ok(())).expect_err("missing");
        assert!(err.to_string().contains("shard-0.snapshot"), "{err}");
    }
}
