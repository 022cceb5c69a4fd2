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

fn is_shared(name: &str) -> bool {
    name.ends_with(".sst")
}

impl SharedFiles {
    /// Puts the new SST files of shard `shard`'s checkpoint in `dir` (taken from instance
    /// `instance`) into `shared/` under `root`, and reads its other files as payloads of
    /// checkpoint `id`.
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
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|d| d.map(|d| d.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io(dir, e))?;
        names.sort();
        let mut staged = Staged { files: Vec::new(), payloads: Vec::new(), copied: 0, reused: 0 };
        let prefix = formats::layout::shard_files_prefix(id, shard);
        for name in names {
            if let Some(f) = known.get(&name).filter(|_| is_shared(&name)) {
                staged.reused += f.size;
                staged.files.push(f.clone());
                continue;
            }
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if is_shared(&name) {
                let (f, written) = protocol::put_shared(fs, root, &name, &bytes)?;
                if written {
                    staged.copied += f.size;
                } else {
                    staged.reused += f.size;
                }
                known.insert(name, f.clone());
                staged.files.push(f);
            } else {
                let owned = format!("{prefix}/{name}");
                staged.copied += bytes.len() as u64;
                staged.files.push(FileRef::of(&owned, &bytes));
                staged.payloads.push(Payload { path: owned, bytes });
            }
        }
        Ok(staged)
    }

    /// Forgets every remembered file (after a failed checkpoint: its files may not all
    /// have been put, or something else may have removed them); they are hashed again.
    pub fn forget(&mut self) {
        self.shards.clear();
    }
}
