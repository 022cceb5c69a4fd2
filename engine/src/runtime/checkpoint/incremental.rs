//! The asynchronous half of an incremental RocksDB checkpoint, on the coordinator's
//! thread: a shard's RocksDB checkpoint (hard links, taken on the shard's thread) is
//! turned into manifest entries. SST files go to `shared/` under a name derived from
//! their content (`formats::checkpoint::put_shared`), so a file another checkpoint
//! already holds is never copied again, and a file RocksDB numbered like an older one
//! (as it does in an instance rebuilt after a restore) is never mistaken for it. The
//! instance's other files (MANIFEST, CURRENT, OPTIONS) are owned by the checkpoint.
//!
//! Hashing a file means reading it, so each instance's files are remembered once put:
//! within one instance a file name always names the same content (RocksDB never reuses
//! a file number while an instance is open, and SSTs are immutable).
use std::collections::HashMap;
use std::path::Path;

use formats::checkpoint::{self as protocol, Payload};
use formats::fs::Fs;
use formats::layout;
use formats::manifest::{CheckpointId, FileRef};

use crate::error::Error;

/// Manifest entries of a shard's checkpoint, and the bytes it wrote and reused.
pub struct Staged {
    pub files: Vec<FileRef>,
    /// Owned files, written by `publish`.
    pub payloads: Vec<Payload>,
    pub copied: u64,
    pub reused: u64,
}

/// The instance files each shard has put into `shared/`, for its current instance.
#[derive(Default)]
pub struct SharedFiles {
    shards: HashMap<u16, (u64, HashMap<String, FileRef>)>,
}

impl SharedFiles {
    /// Puts the new SST files of shard `shard`'s checkpoint in `dir` (taken from instance
    /// `instance`) into `shared/` under `root`, streaming each (hashed while copied), and
    /// reads its other files as payloads of checkpoint `id`. Everything goes through
    /// `fs`, so fault seams cover staging too.
    pub fn stage(
        &mut self,
        fs: &mut dyn Fs,
        root: &Path,
        id: CheckpointId,
        shard: u16,
        dir: &Path,
        instance: u64,
    ) -> Result<Staged, Error> {
        let entry = self.shards.entry(shard).or_insert_with(|| (instance, HashMap::new()));
        if entry.0 != instance {
            *entry = (instance, HashMap::new());
        }
        let known = &mut entry.1;
        let names = fs.list(dir).map_err(|e| Error::io(dir, e))?;
        let mut staged = Staged { files: Vec::new(), payloads: Vec::new(), copied: 0, reused: 0 };
        for name in names {
            let path = dir.join(&name);
            if !layout::is_shared_file(&name) {
                // MANIFEST, CURRENT, OPTIONS: small, and new at every checkpoint.
                let bytes = fs.read(&path).map_err(|e| Error::io(&path, e))?;
                let owned = layout::owned_file_path(id, shard, &name);
                staged.copied += bytes.len() as u64;
                staged.files.push(FileRef::of(&owned, &bytes));
                staged.payloads.push(Payload { path: owned, bytes });
                continue;
            }
            if let Some(f) = known.get(&name) {
                staged.reused += f.size;
                staged.files.push(f.clone());
                continue;
            }
            let mut from = fs.open_read(&path).map_err(|e| Error::io(&path, e))?;
            let (f, written) = protocol::put_shared(fs, root, &name, &mut from, &path)?;
            if written {
                staged.copied += f.size;
            } else {
                staged.reused += f.size;
            }
            known.insert(name, f.clone());
            staged.files.push(f);
        }
        Ok(staged)
    }

    /// Forgets every remembered file (after a failed checkpoint: its files may not all
    /// have been put, or something else may have removed them); they are hashed again.
    pub fn forget(&mut self) {
        self.shards.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use formats::keygroup::KeyGroup;
    use formats::value::{StateDescriptor, StateKind, ValueEncoding};

    use super::*;
    use crate::state::backend::{Backend, StateId};
    use crate::state::rocks::{RocksBackend, RocksConfig};

    fn descriptors() -> Vec<StateDescriptor> {
        vec![StateDescriptor {
            name: "count".into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: None,
        }]
    }

    /// A fresh instance holding keys 0..1000 with value `seed * key`, checkpointed into
    /// `<dir>/chk`: every instance opened like this names its one SST alike.
    fn instance(dir: &Path, seed: u64) -> (std::path::PathBuf, u64) {
        let mut b = RocksBackend::open(
            &dir.join("db"),
            descriptors(),
            &RocksConfig::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("open");
        for k in 0..1000u64 {
            let mut key = Vec::new();
            formats::statekey::encode_prefix(&mut key, KeyGroup(0), &k.to_be_bytes(), &[]);
            b.put(StateId(0), &key, &(seed.wrapping_mul(k)).to_le_bytes()).expect("put");
        }
        let chk = dir.join("chk");
        let id = b.native_checkpoint(&chk).expect("checkpoint").expect("rocksdb has one");
        (chk, id)
    }

    fn ssts(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().expect("stat").len()))
            .filter(|(n, _)| layout::is_shared_file(n))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_reused_file_number_with_the_same_size_and_other_content_is_copied() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("ck");
        std::fs::create_dir_all(&root).expect("root");
        let mut fs = formats::fs::StdFs;
        let mut shared = SharedFiles::default();
        let (a_dir, a_id) = instance(&tmp.path().join("a"), 3);
        let a = shared.stage(&mut fs, &root, CheckpointId(1), 0, &a_dir, a_id).expect("stage a");
        assert!(a.copied > 0 && a.reused == 0);
        // A second instance (as after a restore) numbers its files from the start again.
        // Look for a value seed whose SST has the same name and size as the first one's.
        let mut found = None;
        for seed in 4..200u64 {
            let dir = tmp.path().join(format!("b{seed}"));
            let (b_dir, b_id) = instance(&dir, seed);
            if ssts(&b_dir) == ssts(&a_dir) {
                found = Some((b_dir, b_id));
                break;
            }
        }
        let (b_dir, b_id) = found.expect("an SST with the same name and size");
        assert_ne!(a_id, b_id);
        let b = shared.stage(&mut fs, &root, CheckpointId(2), 0, &b_dir, b_id).expect("stage b");
        let sst = |s: &Staged| s.files.iter().filter(|f| f.path.starts_with("shared/")).cloned().collect::<Vec<_>>();
        let (fa, fb) = (sst(&a), sst(&b));
        assert_eq!(fa.len(), fb.len());
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!((x.local_name(), x.size), (y.local_name(), y.size), "same name and size");
            assert_ne!(x.path, y.path, "other content, other shared file");
            assert_ne!(x.crc32, y.crc32);
        }
        assert_eq!(b.reused, 0, "nothing of instance a is reused for instance b");
        assert!(b.copied >= fb.iter().map(|f| f.size).sum::<u64>());
        // Within one instance a name is remembered: staging it again copies nothing.
        let again = shared.stage(&mut fs, &root, CheckpointId(3), 0, &b_dir, b_id).expect("stage b again");
        assert_eq!(again.reused, fb.iter().map(|f| f.size).sum::<u64>());
    }
}
