//! A stdout sink that prints the top N results as a table once the job ends.
//!
//! Memory is bounded by N, not by the number of keys: each shard keeps only its N best
//! rows in a heap whose root is the worst row kept ([`TopRows`]), and hands them over when
//! it closes; the table merges the shards' rows through one more such heap. A row a shard
//! drops cannot be in the overall top N, as N rows of that same shard rank above it. So
//! at most `shards × N` rows exist at the end, and `N` is capped by
//! [`super::sink_spec::TOP_ROWS_MAX`].
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use formats::ShardId;

use super::aggregate::Output;
use crate::error::Error;
use crate::sink::{Sink, SinkFactory};

/// The table's order: highest value first, ties by key (ascending). `Less` ranks higher.
pub fn rank(a: &Output, b: &Output) -> Ordering {
    b.value.total_cmp(&a.value).then_with(|| a.key.cmp(&b.key))
}

/// A row in a heap ordered by [`rank`], so the heap's root is the worst row kept.
struct Ranked(Output);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank(&self.0, &other.0)
    }
}

/// The best `top` rows of those pushed, and how many were pushed.
pub struct TopRows {
    top: usize,
    heap: BinaryHeap<Ranked>,
    seen: u64,
}

impl TopRows {
    pub fn new(top: usize) -> Self {
        TopRows { top, heap: BinaryHeap::with_capacity(top.saturating_add(1)), seen: 0 }
    }

    pub fn push(&mut self, row: Output) {
        self.seen += 1;
        if self.heap.len() < self.top {
            self.heap.push(Ranked(row));
        } else if self.heap.peek().is_some_and(|worst| rank(&row, &worst.0) == Ordering::Less) {
            self.heap.pop();
            self.heap.push(Ranked(row));
        }
    }

    /// Rows held now; never more than `top`.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// The rows kept, best first.
    pub fn into_sorted(self) -> Vec<Output> {
        // `into_sorted_vec` is ascending in `Ranked`'s order, which is best first.
        self.heap.into_sorted_vec().into_iter().map(|r| r.0).collect()
    }
}

/// What the shards hand over when they close: their best rows, and how many rows
/// (keys) they saw.
#[derive(Default)]
struct Merged {
    rows: Vec<Output>,
    seen: u64,
}

pub struct TopTable {
    top: usize,
    field: &'static str,
    merged: Arc<Mutex<Merged>>,
}

impl TopTable {
    pub fn new(top: usize, field: &'static str) -> Self {
        TopTable { top, field, merged: Arc::default() }
    }

    /// The table of the shards closed so far, and its footer.
    fn table(&self) -> String {
        let merged = std::mem::take(&mut *self.merged.lock().unwrap_or_else(|p| p.into_inner()));
        let mut best = TopRows::new(self.top);
        merged.rows.into_iter().for_each(|r| best.push(r));
        let mut rows = best.into_sorted();
        let mut s = render(&mut rows, self.top, self.field);
        s.push_str(&format!("({} of {} keys)\n", rows.len(), merged.seen));
        s
    }
}

/// Renders rows as an aligned table: rank, key, value; highest value first, ties by key.
pub fn render(rows: &mut [Output], top: usize, field: &str) -> String {
    rows.sort_by(rank);
    let shown = rows.get(..top.min(rows.len())).unwrap_or_default();
    let kw = shown.iter().map(|r| r.key.chars().count()).max().unwrap_or(0).max(3);
    let mut s = format!("{:>4}  {:<kw$}  {:>12}\n", "rank", "key", field);
    for (i, r) in shown.iter().enumerate() {
        s.push_str(&format!("{:>4}  {:<kw$}  {:>12}\n", i + 1, r.key, r.value.to_string()));
    }
    s
}

/// One shard's part of the table.
struct ShardTop {
    rows: TopRows,
    merged: Arc<Mutex<Merged>>,
}

impl Sink<Output> for ShardTop {
    fn write(&mut self, row: Output) -> Result<(), Error> {
        self.rows.push(row);
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        let top = self.rows.top;
        let rows = std::mem::replace(&mut self.rows, TopRows::new(top));
        let mut merged = self.merged.lock().unwrap_or_else(|p| p.into_inner());
        merged.seen += rows.seen;
        merged.rows.extend(rows.into_sorted());
        Ok(())
    }
}

impl SinkFactory<Output> for TopTable {
    fn open(&self, _: ShardId, _: u32) -> Result<Box<dyn Sink<Output>>, Error> {
        Ok(Box::new(ShardTop { rows: TopRows::new(self.top), merged: self.merged.clone() }))
    }

    fn finish(&self) -> Result<(), Error> {
        print!("{}", self.table());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Number;

    /// Pins the bound and the result: 3 shards see 30,000 keys (many tied), each keeps
    /// at most N rows, and the table is exactly the top N of a full sort (ties by key).
    #[test]
    fn keeps_n_rows_per_shard_and_the_exact_top_n() {
        const N: usize = 7;
        let table = TopTable::new(N, "count");
        let mut all = Vec::new();
        let mut sinks: Vec<_> = (0..3u16).map(|s| table.open(ShardId(s), 3).expect("open")).collect();
        for i in 0..30_000u64 {
            // Values repeat every 1000 keys, so the top values are tied across shards.
            let row = Output { key: format!("k{i:05}"), value: Number::Int((i * 7919 % 1000) as i64), extra: None };
            all.push(row.clone());
            if let Some(sink) = sinks.get_mut((i % 3) as usize) {
                sink.write(row).expect("write");
            }
        }
        for sink in &mut sinks {
            sink.close().expect("close");
        }
        assert_eq!(table.merged.lock().expect("lock").rows.len(), 3 * N, "each shard handed over N rows");
        all.sort_by(rank);
        let want = render(&mut all.get(..N).expect("N rows").to_vec(), N, "count") + &format!("({N} of 30000 keys)\n");
        assert_eq!(table.table(), want);
        let top: Vec<&str> = want.lines().skip(1).take(3).map(|l| l.split_whitespace().nth(1).unwrap_or("")).collect();
        assert_eq!(top, ["k00321", "k01321", "k02321"], "30 keys tie for the top value; ties go by key");
    }

    #[test]
    fn top_rows_never_holds_more_than_n() {
        let mut t = TopRows::new(2);
        for v in [5, 1, 9, 9, 3] {
            t.push(Output { key: format!("k{v}"), value: Number::Int(v), extra: None });
            assert!(t.len() <= 2);
        }
        let keys: Vec<String> = t.into_sorted().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["k9", "k9"]);
    }
}
