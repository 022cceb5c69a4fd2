//! Where a checkpoint's or savepoint's entries and bytes are: one pass over every entry
//! (`reader::for_each`), summing per state and per key group, and keeping the K largest
//! entries. A stored entry's size is its key's bytes (the full §3 state key) plus its
//! value's bytes (§4, as stored, before compression).
//!
//! Memory is bounded whatever the state size: one counter pair per state and per key
//! group (at most 32768), and the K largest entries in a min-heap (each entry's key is
//! kept, its value is not); the reader holds one snapshot block (at most 80 MiB raw,
//! FORMAT.md §11) or one RocksDB iterator at a time.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use formats::value::StateDescriptor;

use super::target::Loaded;

/// Entries and stored bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sum {
    pub entries: u64,
    pub bytes: u64,
}

impl Sum {
    fn add(&mut self, bytes: u64) {
        self.entries += 1;
        self.bytes += bytes;
    }
}

/// One of the largest entries: its size, state and full state key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Big {
    pub bytes: u64,
    pub state: String,
    pub key: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub total: Sum,
    /// Per state name; every state of the manifest is present, read or not.
    pub by_state: BTreeMap<String, Sum>,
    pub by_key_group: BTreeMap<u16, Sum>,
    /// The largest entries, largest first (after [`tally`]).
    pub top: Vec<Big>,
}

/// What to tally.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep the `top` largest entries (0: none).
    pub top: usize,
    /// Only entries of this state.
    pub state: Option<String>,
    /// Count per key group too.
    pub by_key_group: bool,
}

/// Reads every entry of `l` once.
pub fn tally(l: &Loaded, o: &Options) -> anyhow::Result<Tally> {
    let mut t = Tally::default();
    for d in &l.manifest.states {
        if o.state.as_ref().is_none_or(|s| *s == d.name) {
            t.by_state.insert(d.name.clone(), Sum::default());
        }
    }
    // A min-heap of at most `o.top` entries: the smallest of the largest is on top.
    let mut heap: BinaryHeap<Reverse<Big>> = BinaryHeap::with_capacity(o.top.saturating_add(1).min(1 << 16));
    l.for_each(super::entries::ALL, &mut |d: &StateDescriptor, k: &[u8], v: &[u8]| {
        if o.state.as_ref().is_some_and(|s| *s != d.name) {
            return Ok(());
        }
        let bytes = (k.len() + v.len()) as u64;
        t.total.add(bytes);
        t.by_state.entry(d.name.clone()).or_default().add(bytes);
        if o.by_key_group {
            let kg = formats::statekey::decode(k)?.key_group.0;
            t.by_key_group.entry(kg).or_default().add(bytes);
        }
        if o.top > 0 && (heap.len() < o.top || heap.peek().is_some_and(|Reverse(b)| bytes > b.bytes)) {
            heap.push(Reverse(Big { bytes, state: d.name.clone(), key: k.to_vec() }));
            if heap.len() > o.top {
                heap.pop();
            }
        }
        Ok(())
    })?;
    // Largest first; ties by state and key, so the order is stable.
    let mut top: Vec<Big> = heap.into_iter().map(|Reverse(b)| b).collect();
    top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.state.cmp(&b.state)).then_with(|| a.key.cmp(&b.key)));
    t.top = top;
    Ok(t)
}

/// `part` as a percentage of `whole`, one decimal.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}
