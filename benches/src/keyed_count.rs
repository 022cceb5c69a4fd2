//! Whole-job throughput: the same keyed count as the Flink peer
//! (`../shared/peers/flink/KeyedCount.java`): the sequence 0..records, key = seq % keys,
//! a ValueState<i64> count per key, an output when `seq & 0xFFFFF == 0`, discarded.
//!
//!     cargo run --release -p sluice-benches --bin keyed-count -- \
//!         --records 20000000 --keys 1000000 --backend rocksdb --shards 2
//!
//! Prints one line per run, in the peer's format, so the two can be compared directly.
mod count;
use count::Count;

use clap::Parser;
use engine::DiscardSink;
use engine::Generator;
use engine::{BackendKind, Job, RunConfig};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000_000)]
    records: u64,
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    #[arg(long, default_value = "rocksdb")]
    backend: BackendKind,
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Repeat the run this many times and print each.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Entries per state in the write-back cache before RocksDB (0: off).
    #[arg(long)]
    cache_entries: Option<usize>,
    /// Take checkpoints at this interval (the log shows each one's duration and bytes).
    #[arg(long)]
    checkpoint_interval_ms: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let a = Args::parse();
    let base = match &a.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id())),
    };
    for _ in 0..a.runs {
        let keys = a.keys;
        let mut cfg = RunConfig::new(a.shards, a.backend, base.clone());
        if let Some(c) = a.cache_entries {
            cfg.rocks.cache_entries_max = c;
        }
        if let Some(ms) = a.checkpoint_interval_ms {
            let ck = engine::CheckpointConfig::new(base.join("checkpoints"), std::time::Duration::from_millis(ms));
            cfg.checkpoint = Some(ck);
        }
        let report = Job::new("keyed-count")
            .source(Generator::new(Some(a.records), |seq| seq))
            .key_by(move |seq: &u64| seq % keys)
            .process(|reg| Ok(Count { count: reg.value("count", None)? }))
            .sink(DiscardSink)
            .run(&cfg)?;
        anyhow::ensure!(
            report.records_processed == a.records,
            "processed {} of {}",
            report.records_processed,
            a.records
        );
        println!(
            "sluice records={} keys={} backend={} par={} cache_entries={} checkpoint_ms={} seconds={:.2} rec_per_s={:.0}",
            a.records,
            a.keys,
            a.backend,
            a.shards,
            cfg.rocks.cache_entries_max,
            a.checkpoint_interval_ms.map_or("none".to_string(), |m| m.to_string()),
            report.elapsed.as_secs_f64(),
            report.records_per_s()
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
