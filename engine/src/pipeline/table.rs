//! A stdout sink that prints the top N results as a table once the job ends.
use std::sync::{Arc, Mutex};

use formats::ShardId;

use super::Output;
use crate::error::Error;
use crate::sink::{CollectSink, Sink, SinkFactory};

pub struct TopTable {
    top: usize,
    field: &'static str,
    rows: CollectSink<Output>,
}

impl TopTable {
    pub fn new(top: usize, field: &'static str) -> Self {
        TopTable { top, field, rows: CollectSink::default() }
    }
}

/// Renders rows as an aligned table: rank, key, value; highest value first, ties by key.
pub fn render(rows: &mut [Output], top: usize, field: &str) -> String {
    rows.sort_by(|a, b| b.value.total_cmp(&a.value).then_with(|| a.key.cmp(&b.key)));
    let shown = rows.get(..top.min(rows.len())).unwrap_or_default();
    let kw = shown.iter().map(|r| r.key.chars().count()).max().unwrap_or(0).max(3);
    let mut s = format!("{:>4}  {:<kw$}  {:>12}\n", "rank", "key", field);
    for (i, r) in shown.iter().enumerate() {
        s.push_str(&format!("{:>4}  {:<kw$}  {:>12}\n", i + 1, r.key, r.value.to_string()));
    }
    s
}

impl SinkFactory<Output> for TopTable {
    fn open(&self, shard: ShardId) -> Result<Box<dyn Sink<Output>>, Error> {
        self.rows.open(shard)
    }

    fn finish(&self) -> Result<(), Error> {
        let handle: Arc<Mutex<Vec<Output>>> = self.rows.handle();
        let mut rows = handle.lock().unwrap_or_else(|p| p.into_inner());
        let n = rows.len();
        print!("{}", render(&mut rows, self.top, self.field));
        println!("({} of {n} keys)", self.top.min(n));
        Ok(())
    }
}
