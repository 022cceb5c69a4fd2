//! Loading entries read from a checkpoint (by `reader`) into a backend: each entry's
//! state is matched by name to the job's, which must declare it with the same
//! descriptor (a state the job no longer declares is an error: nothing is dropped
//! silently), and entries are written in batches per state.
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
    read: impl FnOnce(&mut Visit<'_>) -> Result<T, ReadError>,
) -> Result<u64, LoadError> {
    let mut loader = Loader::new(backend);
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

/// Entries per write batch while loading.
const LOAD_BATCH_ENTRIES: usize = 4096;

/// The job's state (among `declared`, in registry order) that checkpoint state `d`
/// loads into: the one of the same name, which must have the same descriptor. The
/// setup phase checks a whole checkpoint with this before anything starts; loading
/// checks every entry with it again.
pub fn match_state(declared: &[StateDescriptor], d: &StateDescriptor) -> Result<StateId, String> {
    match declared.iter().position(|j| j.name == d.name) {
        None => Err(format!("state {:?} is in the snapshot but not declared by the job", d.name)),
        Some(i) if declared.get(i) != Some(d) => {
            Err(format!("state {:?} has a different kind, encoding or TTL than the job declares", d.name))
        }
        Some(i) => Ok(StateId(i as u32)),
    }
}

struct Loader<'a> {
    backend: &'a mut dyn Backend,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    current: Option<StateId>,
    loaded: u64,
}

fn mismatch(reason: String) -> StateError {
    StateError::Format(formats::error::FormatError::Invalid { what: "checkpoint state", offset: 0, reason })
}

impl<'a> Loader<'a> {
    fn new(backend: &'a mut dyn Backend) -> Self {
        Loader { backend, batch: Vec::with_capacity(LOAD_BATCH_ENTRIES), current: None, loaded: 0 }
    }

    fn state_id(&self, d: &StateDescriptor) -> Result<StateId, StateError> {
        match_state(self.backend.descriptors(), d).map_err(mismatch)
    }

    /// Adds one entry of state `d`.
    fn add(&mut self, d: &StateDescriptor, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let id = self.state_id(d)?;
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
            self.backend.write_batch(id, &mut self.batch.iter().map(|(k, v)| (&k[..], Some(&v[..]))))?;
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
