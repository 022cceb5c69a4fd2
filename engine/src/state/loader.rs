//! Loading entries read from a checkpoint (by `reader`) into a backend: each entry's
//! state is matched by name to the job's, which must declare it with the same
//! descriptor (a state the job no longer declares is an error: nothing is dropped
//! silently), and entries are written in batches per state.
use std::collections::HashMap;

use formats::value::StateDescriptor;

use super::backend::{Backend, StateId};
use crate::error::StateError;

/// Entries per write batch while loading.
const LOAD_BATCH_ENTRIES: usize = 4096;

pub struct Loader<'a> {
    backend: &'a mut dyn Backend,
    ids: HashMap<String, StateId>,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    current: Option<StateId>,
    loaded: u64,
}

fn mismatch(reason: String) -> StateError {
    StateError::Format(formats::error::FormatError::Invalid { what: "checkpoint state", offset: 0, reason })
}

impl<'a> Loader<'a> {
    pub fn new(backend: &'a mut dyn Backend) -> Self {
        let ids = backend.descriptors().iter().enumerate().map(|(i, d)| (d.name.clone(), StateId(i as u32))).collect();
        Loader { backend, ids, batch: Vec::with_capacity(LOAD_BATCH_ENTRIES), current: None, loaded: 0 }
    }

    fn state_id(&self, d: &StateDescriptor) -> Result<StateId, StateError> {
        let id =
            self.ids.get(&d.name).copied().ok_or_else(|| {
                mismatch(format!("state {:?} is in the snapshot but not declared by the job", d.name))
            })?;
        if self.backend.descriptors().get(id.0 as usize) != Some(d) {
            return Err(mismatch(format!(
                "state {:?} has a different kind, encoding or TTL than the job declares",
                d.name
            )));
        }
        Ok(id)
    }

    /// Adds one entry of state `d`.
    pub fn add(&mut self, d: &StateDescriptor, key: &[u8], value: &[u8]) -> Result<(), StateError> {
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
    pub fn finish(mut self) -> Result<u64, StateError> {
        self.write()?;
        self.backend.flush()?;
        Ok(self.loaded)
    }
}
