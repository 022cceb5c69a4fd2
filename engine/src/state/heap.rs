//! The heap backend: hash maps per state on the shard's thread. Map states use an ordered
//! map so the entries of one key are a contiguous range.
use std::collections::{BTreeMap, HashMap};

use formats::value::{StateDescriptor, StateKind};

use super::backend::{Backend, StateId, Visit};
use crate::error::StateError;

enum Table {
    Hash(HashMap<Box<[u8]>, Vec<u8>, ahash::RandomState>),
    Ordered(BTreeMap<Box<[u8]>, Vec<u8>>),
}

pub struct HeapBackend {
    descriptors: Vec<StateDescriptor>,
    tables: Vec<Table>,
}

impl HeapBackend {
    pub fn new(descriptors: Vec<StateDescriptor>) -> Self {
        let tables = descriptors
            .iter()
            .map(|d| match d.kind {
                StateKind::Map => Table::Ordered(BTreeMap::new()),
                _ => Table::Hash(HashMap::default()),
            })
            .collect();
        HeapBackend { descriptors, tables }
    }

    fn table(&mut self, s: StateId) -> &mut Table {
        // StateIds are handed out by the registry that built `descriptors`; an unknown id
        // is a bug in the engine, not a user error.
        self.tables.get_mut(s.0 as usize).unwrap_or_else(|| panic!("unknown state id {}", s.0))
    }
}

impl Backend for HeapBackend {
    fn get(&mut self, s: StateId, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StateError> {
        out.clear();
        let v = match self.table(s) {
            Table::Hash(m) => m.get(key),
            Table::Ordered(m) => m.get(key),
        };
        Ok(v.map(|v| out.extend_from_slice(v)).is_some())
    }

    fn put(&mut self, s: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => match m.get_mut(key) {
                Some(v) => {
                    v.clear();
                    v.extend_from_slice(value);
                }
                None => {
                    m.insert(key.into(), value.to_vec());
                }
            },
            Table::Ordered(m) => {
                m.insert(key.into(), value.to_vec());
            }
        }
        Ok(())
    }

    fn delete(&mut self, s: StateId, key: &[u8]) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => m.remove(key),
            Table::Ordered(m) => m.remove(key),
        };
        Ok(())
    }

    fn append(&mut self, s: StateId, key: &[u8], framed: &[u8]) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => m.entry(key.into()).or_default().extend_from_slice(framed),
            Table::Ordered(m) => m.entry(key.into()).or_default().extend_from_slice(framed),
        }
        Ok(())
    }

    fn scan_prefix(&mut self, s: StateId, prefix: &[u8], visit: &mut Visit<'_>) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => {
                for (k, v) in m.iter().filter(|(k, _)| k.starts_with(prefix)) {
                    if !visit(k, v) {
                        break;
                    }
                }
            }
            Table::Ordered(m) => {
                for (k, v) in m.range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)) {
                    if !k.starts_with(prefix) || !visit(k, v) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn delete_prefix(&mut self, s: StateId, prefix: &[u8]) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => m.retain(|k, _| !k.starts_with(prefix)),
            Table::Ordered(m) => {
                let doomed: Vec<Box<[u8]>> = m
                    .range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    m.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn descriptors(&self) -> &[StateDescriptor] {
        &self.descriptors
    }
}
