//! Loading entries read from a checkpoint (by `reader`) into a backend: each entry's
//! state is matched by name to the job's, which must declare it with the same
//! descriptor, and entries are written in batches per state. A state the job no longer
//! declares is an error (nothing is dropped silently) unless the user allowed
//! non-restored state (Flink's `--allowNonRestoredState`): then its entries are skipped.
use formats::value::StateDescriptor;

use reader::{ReadError, Visit};

use super::backend::{Backend, StateId};
use crate::error::StateError;

/// Why [`load`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The job refused an entry (a state it does not declare, or declares differently).
    #[error(transparent)]
    Refused(StateError),
    /// The checkpoint could not be read.
    #[error(transparent)]
    Read(ReadError),
    /// The backend could not take what was read.
    #[error(transparent)]
    Write(StateError),
}

/// Loads everything `read` visits into `backend` (`read` is a `reader` walk: a whole
/// checkpoint, or one snapshot), keeping the job's refusal of an entry apart from
/// errors of reading; returns the entries loaded.
pub fn load<T>(
    backend: &mut dyn Backend,
    unmatched: Unmatched,
    read: impl FnOnce(&mut Visit<'_>) -> Result<T, ReadError>,
) -> Result<u64, LoadError> {
    let mut loader = Loader::new(backend, unmatched);
    let mut refused = None;
    let walked = read(&mut |d, k, v| {
        loader.add(d, k, v).map_err(|e| {
            let reason = e.to_string();
            refused = Some(e);
            ReadError::Visit(reason)
        })
    });
    if let Some(e) = refused {
        return Err(LoadError::Refused(e));
    }
    walked.map_err(LoadError::Read)?;
    loader.finish().map_err(LoadError::Write)
}

/// Entries per write while loading. A checkpoint's entries come sorted within a state
/// (snapshot blocks and RocksDB scans are in key order), so each full batch is handed to
/// the backend as a sorted run, which RocksDB ingests as a file instead of inserting
/// entry by entry into its memtable (a rescaling restore of 3M keys: see
/// docs/PERFORMANCE.md, "Savepoints and restores").
const LOAD_BATCH_ENTRIES: usize = 64 * 1024;

/// What happens to a state of the checkpoint that the job does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// The restore fails, naming the state (the default: nothing is dropped silently).
    #[default]
    Refuse,
    /// Its entries are skipped (`--allow-non-restored-state`).
    Skip,
}

/// The job's state (among `declared`, in registry order) that checkpoint state `d`
/// loads into: the one of the same name, which must have the same descriptor; None
/// when the job does not declare it and `unmatched` skips such states. The setup phase
/// checks a whole checkpoint with this before anything starts; loading checks every
/// entry with it again.
pub fn match_state(
    declared: &[StateDescriptor],
    d: &StateDescriptor,
    unmatched: Unmatched,
) -> Result<Option<StateId>, String> {
    match declared.iter().position(|j| j.name == d.name) {
        None if unmatched == Unmatched::Skip => Ok(None),
        None => Err(format!(
            "state {:?} is in the snapshot but not declared by the job (restore with \
             --allow-non-restored-state to drop it)",
            d.name
        )),
        Some(i) if declared.get(i) != Some(d) => Err(format!(
            "state {:?} has a different kind, encoding or TTL than the job declares (checkpoint: {}; job: {})",
            d.name,
            describe(d),
            declared.get(i).map(describe).unwrap_or_default()
        )),
        Some(i) => Ok(Some(StateId(i as u32))),
    }
}

/// A descriptor in a few words, for refusals: `list of u64, TTL 1000 ms`.
fn describe(d: &StateDescriptor) -> String {
    let mut s = format!("{:?} of {:?}", d.kind, d.value);
    if let Some(k) = &d.user_key {
        s.push_str(&format!(" keyed by {k:?}"));
    }
    if let Some(t) = &d.ttl {
        s.push_str(&format!(", TTL {t:?}"));
    }
    s.to_lowercase()
}

struct Loader<'a> {
    backend: &'a mut dyn Backend,
    unmatched: Unmatched,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    current: Option<StateId>,
    loaded: u64,
}

fn mismatch(reason: String) -> StateError {
    StateError::Format(formats::error::FormatError::Invalid { what: "checkpoint state", offset: 0, reason })
}

impl<'a> Loader<'a> {
    fn new(backend: &'a mut dyn Backend, unmatched: Unmatched) -> Self {
        Loader { backend, unmatched, batch: Vec::with_capacity(LOAD_BATCH_ENTRIES), current: None, loaded: 0 }
    }

    fn state_id(&self, d: &StateDescriptor) -> Result<Option<StateId>, StateError> {
        match_state(self.backend.descriptors(), d, self.unmatched).map_err(mismatch)
    }

    /// Adds one entry of state `d` (nothing for a state skipped as not restored).
    fn add(&mut self, d: &StateDescriptor, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let Some(id) = self.state_id(d)? else { return Ok(()) };
        if Some(id) != self.current || self.batch.len() >= LOAD_BATCH_ENTRIES {
            self.write()?;
            self.current = Some(id);
        }
        self.batch.push((key.to_vec(), value.to_vec()));
        self.loaded += 1;
        Ok(())
    }

    fn write(&mut self) -> Result<(), StateError> {
        if let Some(id) = self.current {
            let sorted = self.batch.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0));
            if sorted {
                let ops: Vec<(&[u8], Option<&[u8]>)> = self.batch.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
                self.backend.write_sorted(id, &ops)?;
            } else {
                self.backend.write_batch(id, &mut self.batch.iter().map(|(k, v)| (&k[..], Some(&v[..]))))?;
            }
        }
        self.batch.clear();
        Ok(())
    }

    /// Writes what is buffered and flushes the backend; returns the entries loaded.
    fn finish(mut self) -> Result<u64, StateError> {
        self.write()?;
        self.backend.flush()?;
        Ok(self.loaded)
    }
}
