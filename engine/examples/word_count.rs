//! Word count with the Rust API: lines -> words -> key_by(word) -> count in ValueState,
//! emitting the final count per word when the input ends.
//!
//!     cargo run --release -p sluice-engine --example word_count -- data/corpus.txt [shards] [rocksdb|heap]
use engine::CollectSink;
use engine::FileSource;
use engine::ValueState;
use engine::{BackendKind, Context, Error, Job, KeyedProcessFunction, RunConfig};

struct Count {
    count: ValueState<u64>,
    final_only: bool,
}

impl KeyedProcessFunction for Count {
    type Key = String;
    type In = String;
    type Out = (String, u64);

    fn process(
        &mut self,
        word: &String,
        _: String,
        ctx: &mut Context<'_>,
        out: &mut Vec<(String, u64)>,
    ) -> Result<(), Error> {
        let n = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, n)?;
        if !self.final_only {
            out.push((word.clone(), n));
        }
        Ok(())
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<(String, u64)>) -> Result<(), Error> {
        self.count.for_each(ctx, |k, n| out.push((String::from_utf8_lossy(k).into_owned(), n)))?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| "data/corpus.txt".into());
    let shards = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or_else(engine::available_cores);
    let backend: BackendKind = args.get(3).map_or(Ok(BackendKind::Heap), |s| s.parse()).map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let sink = CollectSink::default();
    let results = sink.handle();
    let report = Job::new("word-count")
        .source(FileSource::lines(path))
        .flat_map(|line: String| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .key_by(|w: &String| w.clone())
        .process(|reg| Ok(Count { count: reg.value("count", None)?, final_only: true }))
        .sink(sink)
        .run(&RunConfig::new(shards, backend, dir.path().to_owned()))?;
    let mut rows = results.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (w, n) in rows.iter().take(10) {
        println!("{n:>8}  {w}");
    }
    println!("{} words, {:.0} lines/s", report.records_processed, report.records_per_s());
    Ok(())
}
