//! Full snapshots of a shard's keyed state in the backend-independent format of
//! `formats::snapshot`, and restore clipped to a key-group range. Works over any
//! [`Backend`], so a snapshot taken from RocksDB restores into the heap and back, onto
//! any shard count.
use formats::keygroup::KeyGroupRange;
use formats::snapshot::{SnapshotReader, SnapshotWriter};
use formats::statekey;
use formats::KeyGroup;

use super::backend::{Backend, StateId};
use crate::error::StateError;

fn mismatch(reason: String) -> StateError {
    StateError::Format(formats::FormatError::Invalid { what: "snapshot", offset: 0, reason })
}

/// A shard's state as copied out of its backend: per state, entries sorted by key. The
/// copy is the synchronous part of a snapshot; [`Collected::encode`] (compression) can
/// run on another thread.
pub struct Collected {
    pub descriptors: Vec<formats::value::StateDescriptor>,
    pub range: KeyGroupRange,
    pub states: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Collected {
    pub fn entries(&self) -> usize {
        self.states.iter().map(Vec::len).sum()
    }

    pub fn encode(self) -> Result<Vec<u8>, StateError> {
        let mut w = SnapshotWriter::new(self.descriptors, self.range);
        for (i, entries) in self.states.into_iter().enumerate() {
            for (k, v) in entries {
                let kg = statekey::decode(&k)?.key_group;
                w.add(i as u32, kg, &k, &v)?;
            }
        }
        Ok(w.finish()?)
    }
}

/// Copies every entry of `backend` whose key group lies in `range`.
pub fn collect(backend: &mut dyn Backend, range: KeyGroupRange) -> Result<Collected, StateError> {
    backend.flush()?;
    let descriptors = backend.descriptors().to_vec();
    let mut states = Vec::with_capacity(descriptors.len());
    for (i, _) in descriptors.iter().enumerate() {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut bad = None;
        backend.scan_prefix(StateId(i as u32), &[], &mut |k, v| {
            match statekey::decode(k) {
                Ok(sk) if range.contains(sk.key_group) => entries.push((k.to_vec(), v.to_vec())),
                Ok(sk) => bad = Some(mismatch(format!("key group {} outside the shard's range", sk.key_group.0))),
                Err(e) => bad = Some(e.into()),
            }
            bad.is_none()
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        // State keys start with the big-endian key group, so key order is (key group,
        // key) order. RocksDB scans are sorted already; hash maps are not.
        if !entries.windows(2).all(|w| w.first().map(|a| &a.0) < w.get(1).map(|b| &b.0)) {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        states.push(entries);
    }
    Ok(Collected { descriptors, range, states })
}

/// Every entry of the states in `backend` whose key group lies in `range`, encoded.
pub fn write(backend: &mut dyn Backend, range: KeyGroupRange) -> Result<Vec<u8>, StateError> {
    collect(backend, range)?.encode()
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
            Some(_) => {
                return Err(mismatch(format!(
                    "state {:?} has a different kind, encoding or TTL than the job declares",
                    d.name
                )))
            }
            None => return Err(mismatch(format!("state {:?} is in the snapshot but not declared by the job", d.name))),
        }
    }
    let mut restored = 0u64;
    for b in rd.index.blocks.iter().filter(|b| clip.contains(KeyGroup(b.key_group))) {
        let id = map
            .get(b.state as usize)
            .copied()
            .ok_or_else(|| mismatch(format!("block of unknown state {}", b.state)))?;
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut bad = None;
        rd.read_block(b, &mut |k, v| match statekey::decode(k) {
            Ok(sk) if sk.key_group.0 == b.key_group => batch.push((k.to_vec(), v.to_vec())),
            Ok(sk) => {
                bad = Some(mismatch(format!(
                    "entry of key group {} in a block of key group {}",
                    sk.key_group.0, b.key_group
                )))
            }
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
