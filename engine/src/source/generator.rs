//! A deterministic generator: the sequence 0..count (or unbounded), partitioned into
//! contiguous ranges per shard, each number turned into a record by a pure function.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{LocalBoxFuture, Source, SourceContext, SourceReader, Split};
use crate::error::Error;

pub struct Generator<T> {
    count: Option<u64>,
    rate_per_s: Option<u64>,
    make: Arc<dyn Fn(u64) -> T + Send + Sync>,
}

impl<T> Generator<T> {
    /// `count: None` never ends (until the job is stopped).
    pub fn new(count: Option<u64>, make: impl Fn(u64) -> T + Send + Sync + 'static) -> Self {
        Generator { count, rate_per_s: None, make: Arc::new(make) }
    }

    /// Caps the whole generator (all shards together) at `rate` records per second.
    pub fn rate_per_s(mut self, rate: Option<u64>) -> Self {
        self.rate_per_s = rate;
        self
    }
}

impl<T: Send + 'static> Source<T> for Generator<T> {
    fn name(&self) -> String {
        match self.count {
            Some(n) => format!("generator(count={n})"),
            None => "generator(unbounded)".into(),
        }
    }

    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, Error> {
        let n = u64::from(ctx.shards.max(1));
        let i = u64::from(ctx.shard.0);
        let initial = match self.count {
            Some(c) => Split { id: ctx.shard.0.into(), next: c * i / n, end: c * (i + 1) / n, step: 1 },
            // Unbounded: shard i yields i, i+n, i+2n, ... (disjoint, still deterministic).
            None => Split { id: ctx.shard.0.into(), next: i, end: u64::MAX, step: n },
        };
        let splits = ctx.restored.clone().unwrap_or_else(|| vec![initial]);
        let rate = self.rate_per_s.map(|r| (r / n).max(1));
        Ok(Box::new(GeneratorReader {
            splits,
            current: 0,
            make: self.make.clone(),
            rate,
            started: Instant::now(),
            made: 0,
            ctx: ctx.clone(),
        }))
    }
}

struct GeneratorReader<T> {
    splits: Vec<Split>,
    current: usize,
    make: Arc<dyn Fn(u64) -> T + Send + Sync>,
    rate: Option<u64>,
    started: Instant,
    made: u64,
    ctx: SourceContext,
}

impl<T> SourceReader<T> for GeneratorReader<T> {
    fn read<'a>(&'a mut self, out: &'a mut Vec<T>, max: usize) -> LocalBoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if self.ctx.stopping() {
                return Ok(false);
            }
            let mut budget = max as u64;
            if let Some(rate) = self.rate {
                let due = (self.started.elapsed().as_secs_f64() * rate as f64) as u64;
                budget = budget.min(due.saturating_sub(self.made));
                if budget == 0 {
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                    return Ok(true);
                }
            }
            let mut k = 0;
            while k < budget {
                let Some(split) = self.splits.get_mut(self.current) else { break };
                if split.next >= split.end {
                    self.current += 1;
                    continue;
                }
                out.push((self.make)(split.next));
                split.next = split.next.saturating_add(split.step);
                k += 1;
            }
            self.made += k;
            Ok(self.splits.get(self.current..).is_some_and(|rest| rest.iter().any(|s| s.next < s.end)))
        })
    }

    fn position(&self) -> Option<Vec<Split>> {
        Some(self.splits.clone())
    }
}
