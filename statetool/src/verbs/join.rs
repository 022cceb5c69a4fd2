//! A merge-join of two checkpoints' (or savepoints') entries, for `diff`, without
//! holding either state in memory.
//!
//! Order: `reader::for_each` visits a shard's entries in (state, key) order: a snapshot
//! file's blocks are written grouped by (state index, key group) with strictly
//! increasing keys (FORMAT.md §11, checked by the writer), and a RocksDB shard is scanned
//! state by state in key order; a state key starts with its key group, big-endian
//! (§3), so key order is key-group order. Two shards of different ranges are not in one
//! order, so the key-group space is cut at every shard boundary of either side
//! (segments); within a segment each side has one shard and both streams are sorted by
//! (state rank, key), where the rank orders the union of both sides' states consistently
//! with each. When the sides declare common states in conflicting orders, each segment
//! is read once per state instead. Every entry is checked to come after the previous
//! one; a stream out of order is an error, never a wrong answer.
//!
//! Each side is read on its own thread and handed over in batches through a bounded
//! channel: memory is bounded by [`IN_FLIGHT_BYTES_MAX`] per side (each batch may
//! exceed [`BATCH_BYTES_MAX`] by its last entry; plus the reader's own block), whatever
//! the state size.
use std::cmp::Ordering;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};

use anyhow::Context;
use formats::keygroup::KeyGroupRange;
use formats::manifest::Manifest;
use formats::value::StateDescriptor;

/// A batch is handed over once its keys and values reach this size.
pub const BATCH_BYTES_MAX: usize = 1 << 20;
/// Batches waiting in a side's channel.
const CHANNEL_BATCHES: usize = 2;
/// Per side: the batch being filled, the queued ones and the one being compared.
pub const IN_FLIGHT_BYTES_MAX: usize = (CHANNEL_BATCHES + 2) * BATCH_BYTES_MAX;
// The bound docs/STATETOOL.md names.
const _: () = assert!(IN_FLIGHT_BYTES_MAX == 4 << 20);
/// Bookkeeping counted per entry against the batch size (two `Vec`s and a rank).
const ENTRY_OVERHEAD_BYTES: usize = 56;

/// One side of the comparison: a checkpoint under its root, or a savepoint directory
/// and its metadata's manifest.
pub struct Side<'a> {
    pub root: &'a Path,
    pub manifest: &'a Manifest,
}

/// What the join found for one (state, key).
pub enum Pair<'a> {
    /// Only in A: (A's descriptor, key, A's value).
    OnlyA(&'a StateDescriptor, &'a [u8], &'a [u8]),
    /// Only in B.
    OnlyB(&'a StateDescriptor, &'a [u8], &'a [u8]),
    /// In both: (A's descriptor, B's descriptor, key, A's value, B's value).
    Both(&'a StateDescriptor, &'a StateDescriptor, &'a [u8], &'a [u8], &'a [u8]),
}

struct Entry {
    rank: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

type Batch = anyhow::Result<Vec<Entry>>;

/// The union of both sides' state names, in an order consistent with each side's; `None`
/// when two common states come in opposite orders.
fn merged_order(a: &[StateDescriptor], b: &[StateDescriptor]) -> Option<Vec<String>> {
    let in_a = |n: &str| a.iter().any(|d| d.name == n);
    let in_b = |n: &str| b.iter().any(|d| d.name == n);
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if x.name == y.name {
            out.push(x.name.clone());
            (i, j) = (i + 1, j + 1);
        } else if !in_b(&x.name) {
            out.push(x.name.clone());
            i += 1;
        } else if !in_a(&y.name) {
            out.push(y.name.clone());
            j += 1;
        } else {
            return None;
        }
    }
    out.extend(a.iter().skip(i).chain(b.iter().skip(j)).map(|d| d.name.clone()));
    Some(out)
}

/// The key-group space cut at every shard boundary of both sides.
fn segments(a: &Manifest, b: &Manifest) -> Vec<KeyGroupRange> {
    let mut cuts: Vec<u16> = a.shards.iter().chain(&b.shards).flat_map(|s| [s.range.start, s.range.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).filter_map(|w| Some(KeyGroupRange { start: *w.first()?, end: *w.get(1)? })).collect()
}

/// Calls `visit` for every (state, key) of A or B, in (state, key) order per segment.
pub fn join(a: &Side<'_>, b: &Side<'_>, visit: &mut dyn FnMut(Pair<'_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let (ma, mb) = (a.manifest, b.manifest);
    let passes: Vec<(Vec<String>, Option<String>)> = match merged_order(&ma.states, &mb.states) {
        Some(order) => vec![(order, None)],
        None => {
            let mut names: Vec<String> = ma.states.iter().map(|d| d.name.clone()).collect();
            names.extend(mb.states.iter().map(|d| d.name.clone()).filter(|n| !ma.states.iter().any(|d| d.name == *n)));
            names.into_iter().map(|n| (vec![n.clone()], Some(n))).collect()
        }
    };
    for seg in segments(ma, mb) {
        for (order, only) in &passes {
            std::thread::scope(|s| -> anyhow::Result<()> {
                let ra = spawn(s, a, seg, order, only.as_deref());
                let rb = spawn(s, b, seg, order, only.as_deref());
                let mut ca = Cursor::new(ra, a, seg);
                let mut cb = Cursor::new(rb, b, seg);
                merge(&mut ca, &mut cb, order, ma, mb, visit)
            })?;
        }
    }
    Ok(())
}

fn merge(
    ca: &mut Cursor<'_>,
    cb: &mut Cursor<'_>,
    order: &[String],
    ma: &Manifest,
    mb: &Manifest,
    visit: &mut dyn FnMut(Pair<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // Descriptors per rank, from each side's manifest (None where a side lacks the state).
    let descs = |m: &Manifest| -> Vec<Option<StateDescriptor>> {
        order.iter().map(|n| m.states.iter().find(|d| d.name == *n).cloned()).collect()
    };
    let (dsa, dsb) = (descs(ma), descs(mb));
    loop {
        ca.fill()?;
        cb.fill()?;
        let step = match (ca.peek(), cb.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => (x.rank, &x.key).cmp(&(y.rank, &y.key)),
        };
        match step {
            Ordering::Less => {
                let x = ca.take()?;
                visit(Pair::OnlyA(get(&dsa, x.rank)?, &x.key, &x.value))?;
            }
            Ordering::Greater => {
                let y = cb.take()?;
                visit(Pair::OnlyB(get(&dsb, y.rank)?, &y.key, &y.value))?;
            }
            Ordering::Equal => {
                let (x, y) = (ca.take()?, cb.take()?);
                visit(Pair::Both(get(&dsa, x.rank)?, get(&dsb, y.rank)?, &x.key, &x.value, &y.value))?;
            }
        }
    }
}

fn get(descs: &[Option<StateDescriptor>], rank: u32) -> anyhow::Result<&StateDescriptor> {
    descs.get(rank as usize).and_then(Option::as_ref).context("an entry of a state its manifest does not declare")
}

/// Reads `side`'s entries of `seg` on a thread of scope `s`, in batches; entries of
/// states outside `order`, or other than `only`, are skipped.
fn spawn<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    side: &'s Side<'_>,
    seg: KeyGroupRange,
    order: &'s [String],
    only: Option<&'s str>,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel::<Batch>(CHANNEL_BATCHES);
    let (root, m) = (side.root, side.manifest);
    s.spawn(move || {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut gone = false;
        let mut visit = |d: &StateDescriptor, k: &[u8], v: &[u8]| -> Result<(), reader::ReadError> {
            if only.is_some_and(|o| o != d.name) {
                return Ok(());
            }
            let Some(rank) = order.iter().position(|n| *n == d.name) else { return Ok(()) };
            bytes += k.len() + v.len() + ENTRY_OVERHEAD_BYTES;
            batch.push(Entry { rank: rank as u32, key: k.to_vec(), value: v.to_vec() });
            if bytes >= BATCH_BYTES_MAX {
                bytes = 0;
                if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    gone = true;
                    return Err(reader::ReadError::Visit("diff stopped reading".into()));
                }
            }
            Ok(())
        };
        let read = super::entries::for_each(root, m, seg, &mut visit);
        if gone {
            return;
        }
        let last = read.map(|_| batch);
        let _ = tx.send(last);
        // The receiver learns the stream ended when `tx` drops here.
    });
    rx
}

/// The head of one side's stream, checking the order as entries arrive.
struct Cursor<'a> {
    rx: Receiver<Batch>,
    batch: std::collections::VecDeque<Entry>,
    done: bool,
    last: Option<(u32, Vec<u8>)>,
    root: &'a Path,
    seg: KeyGroupRange,
}

impl<'a> Cursor<'a> {
    fn new(rx: Receiver<Batch>, side: &Side<'a>, seg: KeyGroupRange) -> Self {
        Cursor { rx, batch: Default::default(), done: false, last: None, root: side.root, seg }
    }

    /// Makes sure an entry is at the head unless the stream has ended.
    fn fill(&mut self) -> anyhow::Result<()> {
        while self.batch.is_empty() && !self.done {
            match self.rx.recv() {
                Ok(b) => self.batch = b?.into(),
                Err(_) => self.done = true,
            }
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Entry> {
        self.batch.front()
    }

    fn take(&mut self) -> anyhow::Result<Entry> {
        let e = self.batch.pop_front().context("take from an empty stream")?;
        if let Some((rank, key)) = &self.last {
            anyhow::ensure!(
                (*rank, key.as_slice()) < (e.rank, e.key.as_slice()),
                "{}: entries of key groups {}..{} are not in (state, key) order; diff cannot compare them",
                self.root.display(),
                self.seg.start,
                self.seg.end
            );
        }
        self.last = Some((e.rank, e.key.clone()));
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::value::{StateKind, ValueEncoding};

    fn d(name: &str) -> StateDescriptor {
        StateDescriptor {
            name: name.into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: None,
        }
    }

    #[test]
    fn merged_order_is_consistent_with_both_sides_or_none() {
        // Pins: the rank order keeps each side's own order (so both streams are sorted by
        // it), and opposite orders of common states give None (read state by state).
        let (x, y, z) = (d("x"), d("y"), d("z"));
        assert_eq!(
            merged_order(&[x.clone(), y.clone()], &[x.clone(), z.clone(), y.clone()]),
            Some(vec!["x".into(), "z".into(), "y".into()])
        );
        assert_eq!(merged_order(&[d("x")], &[d("z")]), Some(vec!["x".into(), "z".into()]));
        assert_eq!(merged_order(&[x.clone(), y.clone()], &[y, x]), None);
    }
}
