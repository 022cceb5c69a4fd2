//! The heap backend: hash maps per state on the shard's thread. Map states use an ordered
//! map so the entries of one key are a contiguous range (the timer state too: its key
//! groups' timers are queues in time order). The other states with a TTL use
//! an insertion-ordered hash map (`IndexMap`), whose positions let incremental cleanup
//! resume where it stopped (`remove_expired`).
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use formats::value::{Purged, StateDescriptor, StateKind};
use indexmap::IndexMap;

use super::backend::{Backend, StateId, Visit};
use super::cleanup;
use crate::error::StateError;

enum Table {
    Hash(HashMap<Box<[u8]>, Vec<u8>, ahash::RandomState>),
    /// A TTL state other than a map; `next` is where incremental cleanup resumes.
    Indexed {
        map: IndexMap<Box<[u8]>, Vec<u8>, ahash::RandomState>,
        next: usize,
    },
    /// A map state; incremental cleanup resumes after `after` (from the start if `None`).
    Ordered {
        map: BTreeMap<Box<[u8]>, Vec<u8>>,
        after: Option<Box<[u8]>>,
    },
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
                StateKind::Map | StateKind::Timer => Table::Ordered { map: BTreeMap::new(), after: None },
                _ if d.ttl.is_some() => Table::Indexed { map: IndexMap::default(), next: 0 },
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
            Table::Indexed { map, .. } => map.get(key),
            Table::Ordered { map, .. } => map.get(key),
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
            Table::Indexed { map, .. } => match map.get_mut(key) {
                Some(v) => {
                    v.clear();
                    v.extend_from_slice(value);
                }
                None => {
                    map.insert(key.into(), value.to_vec());
                }
            },
            Table::Ordered { map, .. } => {
                map.insert(key.into(), value.to_vec());
            }
        }
        Ok(())
    }

    fn delete(&mut self, s: StateId, key: &[u8]) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => m.remove(key),
            // Order does not matter (scans of hash tables are unordered): O(1).
            Table::Indexed { map, .. } => map.swap_remove(key),
            Table::Ordered { map, .. } => map.remove(key),
        };
        Ok(())
    }

    fn append(&mut self, s: StateId, key: &[u8], framed: &[u8]) -> Result<(), StateError> {
        match self.table(s) {
            Table::Hash(m) => m.entry(key.into()).or_default().extend_from_slice(framed),
            Table::Indexed { map, .. } => map.entry(key.into()).or_default().extend_from_slice(framed),
            Table::Ordered { map, .. } => map.entry(key.into()).or_default().extend_from_slice(framed),
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
            Table::Indexed { map, .. } => {
                for (k, v) in map.iter().filter(|(k, _)| k.starts_with(prefix)) {
                    if !visit(k, v) {
                        break;
                    }
                }
            }
            Table::Ordered { map, .. } => {
                for (k, v) in map.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded)) {
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
            Table::Indexed { map, .. } => map.retain(|k, _| !k.starts_with(prefix)),
            Table::Ordered { map, .. } => {
                let doomed: Vec<Box<[u8]>> = map
                    .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn remove_expired(&mut self, s: StateId, now_ms: u64, entries_max: usize) -> Result<u64, StateError> {
        let i = s.0 as usize;
        let (Some(desc), Some(table)) = (self.descriptors.get(i), self.tables.get_mut(i)) else { return Ok(0) };
        if desc.ttl.is_none() {
            return Ok(0);
        }
        let mut removed = 0;
        match table {
            Table::Hash(_) => {}
            // A pass walks positions downwards: a removal moves the last entry (checked
            // in this pass, or new since it began) into the hole, so every entry present
            // when a pass begins is checked once in it. A call finishes the pass under way
            // and stops at the end of the next one it begins (or when `entries_max` is
            // spent): a call whose budget is twice the table leaves nothing expired.
            Table::Indexed { map, next } => {
                let mut began_here = false;
                for _ in 0..entries_max {
                    *next = (*next).min(map.len());
                    if *next == 0 {
                        if began_here || map.is_empty() {
                            break;
                        }
                        *next = map.len();
                        began_here = true;
                    }
                    let i = *next - 1;
                    *next = i;
                    let Some((_, v)) = map.get_index_mut(i) else { break };
                    let (purged, n) = cleanup::purge(desc, v, now_ms);
                    removed += n;
                    match purged {
                        Purged::Drop => drop(map.swap_remove_index(i)),
                        Purged::Rewritten(kept) => *v = kept,
                        Purged::Keep => {}
                    }
                }
            }
            // A pass walks keys upwards from the first; same stopping rule.
            Table::Ordered { map, after } => {
                let mut began_here = after.is_none();
                let mut budget = entries_max;
                let mut seen: Vec<(Box<[u8]>, Purged)> = Vec::new();
                while budget > 0 {
                    let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                    seen.clear();
                    for (k, v) in map.range::<[u8], _>((from, Bound::Unbounded)).take(budget) {
                        let (purged, n) = cleanup::purge(desc, v, now_ms);
                        removed += n;
                        seen.push((k.clone(), purged));
                    }
                    let at_end = seen.len() < budget;
                    budget -= seen.len();
                    if let Some((k, _)) = seen.last() {
                        *after = Some(k.clone());
                    }
                    for (k, purged) in seen.drain(..) {
                        match purged {
                            Purged::Drop => drop(map.remove(&k)),
                            Purged::Rewritten(kept) => drop(map.insert(k, kept)),
                            Purged::Keep => {}
                        }
                    }
                    if at_end {
                        *after = None;
                        if began_here {
                            break;
                        }
                        began_here = true;
                    }
                }
            }
        }
        Ok(removed)
    }

    fn stored_entries(&self) -> u64 {
        let len = |t: &Table| match t {
            Table::Hash(m) => m.len(),
            Table::Indexed { map, .. } => map.len(),
            Table::Ordered { map, .. } => map.len(),
        };
        self.tables.iter().map(len).sum::<usize>() as u64
    }

    fn descriptors(&self) -> &[StateDescriptor] {
        &self.descriptors
    }
}
