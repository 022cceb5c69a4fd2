//! Full snapshots of a shard's keyed state in the backend-independent format of
//! `formats::snapshot`, and restore clipped to a key-group range. Works over any
//! [`Backend`], so a snapshot taken from RocksDB restores into the heap and back, onto
//! any shard count.
use formats::keygroup::KeyGroupRange;
use std::io::Write;
use std::path::PathBuf;

use formats::snapshot::{SnapshotSummary, SnapshotWriter};
use formats::statekey;
use formats::value::Purged;

use super::backend::{Backend, StateId};
use super::cleanup;
use super::sweeper::SnapshotExpiry;
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
    pub states: Vec<Entries>,
}

/// The entries of one state: keys and values copied back to back into one arena (no
/// allocation per entry), and an index in key order.
#[derive(Default)]
pub struct Entries {
    arena: Vec<u8>,
    /// (offset of the key in `arena`, key length, value length); the value follows the key.
    index: Vec<(usize, u32, u32)>,
}

impl Entries {
    fn push(&mut self, k: &[u8], v: &[u8]) {
        self.index.push((self.arena.len(), k.len() as u32, v.len() as u32));
        self.arena.extend_from_slice(k);
        self.arena.extend_from_slice(v);
    }

    fn key(&self, e: &(usize, u32, u32)) -> &[u8] {
        self.arena.get(e.0..e.0 + e.1 as usize).unwrap_or_default()
    }

    fn value(&self, e: &(usize, u32, u32)) -> &[u8] {
        let at = e.0 + e.1 as usize;
        self.arena.get(at..at + e.2 as usize).unwrap_or_default()
    }

    /// State keys start with the big-endian key group, so key order is (key group, key)
    /// order. RocksDB scans come sorted; hash maps do not.
    fn sort(&mut self) {
        let sorted = self.index.windows(2).all(|w| match w {
            [a, b] => self.key(a) < self.key(b),
            _ => true,
        });
        if !sorted {
            let arena = &self.arena;
            let key = |e: &(usize, u32, u32)| arena.get(e.0..e.0 + e.1 as usize).unwrap_or_default();
            self.index.sort_unstable_by(|a, b| key(a).cmp(key(b)));
        }
    }
}

impl Collected {
    /// Encodes the entries as a snapshot file into `out`, block by block as they are
    /// cut (memory: one block), and returns its size and crc32. `path` names `out` in
    /// errors.
    pub fn write_to<W: Write>(self, out: W, path: PathBuf) -> Result<SnapshotSummary, StateError> {
        let mut w = SnapshotWriter::to_writer(self.descriptors, self.range, out, path);
        for (i, entries) in self.states.iter().enumerate() {
            for e in &entries.index {
                let (k, v) = (entries.key(e), entries.value(e));
                let kg = statekey::decode(k)?.key_group;
                w.add(i as u32, kg, k, v)?;
            }
        }
        Ok(w.finish()?)
    }

    /// The whole snapshot file in memory (tests, and the harness).
    pub fn encode(self) -> Result<Vec<u8>, StateError> {
        let mut out = Vec::new();
        self.write_to(&mut out, PathBuf::from("<memory>"))?;
        Ok(out)
    }
}

/// Copies every entry of `backend` whose key group lies in `range`.
#[cfg_attr(
    not(any(test, feature = "internals")),
    expect(dead_code, reason = "the runtime collects with its expiry; benchmarks and tests without")
)]
pub fn collect(backend: &mut dyn Backend, range: KeyGroupRange) -> Result<Collected, StateError> {
    collect_with(backend, range, None)
}

/// Like [`collect`]; with `expiry`, the states with full-snapshot cleanup leave out what
/// has expired (a list keeps its live elements), and what is left out is removed from
/// the backend too (no read would ever return it) and counted.
pub fn collect_with(
    backend: &mut dyn Backend,
    range: KeyGroupRange,
    expiry: Option<&SnapshotExpiry<'_>>,
) -> Result<Collected, StateError> {
    backend.flush()?;
    let descriptors = backend.descriptors().to_vec();
    let mut states = Vec::with_capacity(descriptors.len());
    for (i, desc) in descriptors.iter().enumerate() {
        let s = StateId(i as u32);
        let purge_at = expiry.filter(|e| desc.ttl.is_some() && e.full_snapshot.get(i) == Some(&true)).map(|e| e.now_ms);
        let mut entries = Entries::default();
        // Keys whose stored value changes: dropped (`None`) or a list trimmed (`Some`).
        let mut purged: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut removed = 0;
        let mut bad = None;
        backend.scan_prefix(s, &[], &mut |k, v| {
            match statekey::decode(k) {
                Ok(sk) if range.contains(sk.key_group) => match purge_at.map(|now| cleanup::purge(desc, v, now)) {
                    None | Some((Purged::Keep, _)) => entries.push(k, v),
                    Some((Purged::Drop, n)) => {
                        removed += n;
                        purged.push((k.to_vec(), None));
                    }
                    Some((Purged::Rewritten(kept), n)) => {
                        removed += n;
                        entries.push(k, &kept);
                        purged.push((k.to_vec(), Some(kept)));
                    }
                },
                Ok(sk) => bad = Some(mismatch(format!("key group {} outside the shard's range", sk.key_group.0))),
                Err(e) => bad = Some(e.into()),
            }
            bad.is_none()
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        if let Some(e) = expiry.filter(|_| !purged.is_empty()) {
            backend.write_batch(s, &mut purged.iter().map(|(k, v)| (&k[..], v.as_deref())))?;
            e.counts.add(s, removed);
        }
        entries.sort();
        states.push(entries);
    }
    Ok(Collected { descriptors, range, states })
}
