//! Full snapshots of a shard's keyed state in the backend-independent format of
//! `formats::snapshot`, and restore clipped to a key-group range. Works over any
//! [`Backend`], so a snapshot taken from RocksDB restores into the heap and back, onto
//! any shard count.
use std::collections::BTreeMap;

use formats::keygroup::KeyGroupRange;
use formats::snapshot::{SnapshotReader, SnapshotWriter};
use formats::statekey;
use formats::KeyGroup;

use super::backend::{Backend, StateId};
use crate::error::StateError;

fn mismatch(reason: String) -> StateError {
    StateError::Format(formats::FormatError::Invalid { what: "snapshot", offset: 0, reason })
}

/// Every entry of the states in `backend` whose key group lies in `range`.
pub fn write(backend: &mut dyn Backend, range: KeyGroupRange) -> Result<Vec<u8>, StateError> {
    backend.flush()?;
    let descriptors = backend.descriptors().to_vec();
    let mut w = SnapshotWriter::new(descriptors.clone(), range);
    for (i, _) in descriptors.iter().enumerate() {
        // Sorted by (key group, key): state keys start with the big-endian key group.
        let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut bad = None;
        backend.scan_prefix(StateId(i as u32), &[], &mut |k, v| {
            match statekey::decode(k) {
                Ok(sk) if range.contains(sk.key_group) => {
                    entries.insert(k.to_vec(), v.to_vec());
                }
                Ok(sk) => bad = Some(mismatch(format!("key group {} outside the shard's range", sk.key_group.0))),
                Err(e) => bad = Some(e.into()),
            }
            bad.is_none()
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        for (k, v) in entries {
            let kg = statekey::decode(&k)?.key_group;
            w.add(i as u32, kg, &k, &v)?;
        }
    }
    Ok(w.finish()?)
}

/// Loads the entries of `snapshot` whose key group lies in `clip` into `backend`. States
/// are matched by name and must have the same descriptor; a state in the snapshot that
/// the job no longer declares is an error (nothing is dropped silently).
pub fn restore(backend: &mut dyn Backend, snapshot: &[u8], clip: KeyGroupRange) -> Result<u64, StateError> {
    let rd = SnapshotReader::open(snapshot)?;
    let mine = backend.descriptors().to_vec();
    let mut map = Vec::with_capacity(rd.index.states.len());
    for d in &rd.index.states {
        match mine.iter().position(|m| m.name == d.name) {
            Some(i) if mine.get(i) == Some(d) => map.push(StateId(i as u32)),
            Some(_) => return Err(mismatch(format!("state {:?} has a different kind, encoding or TTL than the job declares", d.name))),
            None => return Err(mismatch(format!("state {:?} is in the snapshot but not declared by the job", d.name))),
        }
    }
    let mut restored = 0u64;
    for b in rd.index.blocks.iter().filter(|b| clip.contains(KeyGroup(b.key_group))) {
        let id = map.get(b.state as usize).copied().ok_or_else(|| mismatch(format!("block of unknown state {}", b.state)))?;
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut bad = None;
        rd.read_block(b, &mut |k, v| match statekey::decode(k) {
            Ok(sk) if sk.key_group.0 == b.key_group => batch.push((k.to_vec(), v.to_vec())),
            Ok(sk) => bad = Some(mismatch(format!("entry of key group {} in a block of key group {}", sk.key_group.0, b.key_group))),
            Err(e) => bad = Some(e.into()),
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        restored += batch.len() as u64;
        backend.write_batch(id, &mut batch.iter().map(|(k, v)| (&k[..], Some(&v[..]))))?;
    }
    backend.flush()?;
    Ok(restored)
}
