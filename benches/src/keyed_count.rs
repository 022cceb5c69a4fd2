//! Whole-job throughput: the same keyed count as the Flink peer
//! (`../shared/peers/flink/KeyedCount.java`): the sequence 0..records, key = seq % keys,
//! a ValueState<i64> count per key, an output when `seq & 0xFFFFF == 0`, discarded.
//!
//!     cargo run --release -p sluice-benches --bin keyed-count -- \
//!         --records 20000000 --keys 1000000 --backend rocksdb --shards 2
//!
//! Prints one line per run, in the peer's format, so the two can be compared directly.
//!
//! `--ttl-ms T` gives the count state a TTL (with the default cleanup: incremental on
//! the heap, the compaction filter on RocksDB); `--compare-ttl` runs TTL off and on in
//! turn, `--runs` times each, and prints the medians and their ratio (docs/PERFORMANCE.md,
//! "TTL cleanup").
mod count;
#[expect(dead_code, reason = "this bench times no disk work: only the load and medians")]
mod measure;
use count::Count;
use formats::ttl::{TtlConfig, TtlUpdate};

use clap::Parser;
use engine::DiscardSink;
use engine::Generator;
use engine::{BackendKind, Job, RunConfig, TtlCleanup};

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
    /// A TTL on the count state (default cleanup strategies).
    #[arg(long)]
    ttl_ms: Option<u64>,
    /// With a TTL: `default` (every strategy), `none`, `no-incremental` (the default
    /// without incremental cleanup) or `incremental-N` (N entries per record), to tell
    /// the TTL header's cost from the sweep's.
    #[arg(long, default_value = "default")]
    ttl_cleanup: String,
    /// Alternate runs without a TTL and with `--ttl-ms` (default 1 hour: nothing expires,
    /// so the counts and the work are the same), then print medians and the ratio.
    #[arg(long)]
    compare_ttl: bool,
    /// Skewed keys: this percentage of the records go to the hottest fifth of the keys
    /// (chosen by a hash of the sequence number; e.g. 80 for an 80/20 skew). Off: the
    /// key is `seq % keys`, every key in turn.
    #[arg(long)]
    hot_percent: Option<u64>,
}

/// splitmix64: a cheap, well-mixed hash of the sequence number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key of record `seq`: in turn, or with `hot_percent`% of records on the hottest
/// fifth of the keys.
fn key_of(seq: u64, keys: u64, hot_percent: Option<u64>) -> u64 {
    let Some(hot) = hot_percent else { return seq % keys };
    let h = mix(seq);
    if h % 100 < hot {
        (h >> 8) % (keys / 5).max(1)
    } else {
        (h >> 8) % keys
    }
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
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let variants: Vec<Option<u64>> =
        if a.compare_ttl { vec![None, Some(a.ttl_ms.unwrap_or(3_600_000))] } else { vec![a.ttl_ms] };
    for _ in 0..a.runs {
        for (v, ttl_ms) in variants.iter().enumerate() {
            let rate = run(&a, &base, *ttl_ms)?;
            if let Some(r) = rates.get_mut(v) {
                r.push(rate);
            }
        }
    }
    if a.compare_ttl {
        let (off, on) = (measure::median(&rates[0]), measure::median(&rates[1]));
        println!(
            "ttl-compare backend={} par={} runs={} ttl_cleanup={} load={} median_rec_per_s ttl_off={off:.0} ttl_on={on:.0} on/off={:.3}",
            a.backend,
            a.shards,
            a.runs,
            a.ttl_cleanup,
            measure::load_avg(),
            on / off
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

/// One run; returns its records per second.
fn run(a: &Args, base: &std::path::Path, ttl_ms: Option<u64>) -> anyhow::Result<f64> {
    let cleanup = match a.ttl_cleanup.as_str() {
        "default" => TtlCleanup::default(),
        "none" => TtlCleanup::none(),
        "no-incremental" => TtlCleanup { incremental: None, ..TtlCleanup::default() },
        other => match other.strip_prefix("incremental-").and_then(|n| n.parse().ok()) {
            Some(n) => TtlCleanup::default().cleanup_incrementally(n, true),
            None => anyhow::bail!("--ttl-cleanup {other:?}: expected default, none, no-incremental or incremental-N"),
        },
    };
    {
        let (keys, hot_percent) = (a.keys, a.hot_percent);
        let mut cfg = RunConfig::new(a.shards, a.backend, base.to_owned());
        if let Some(c) = a.cache_entries {
            cfg.rocks.cache_entries_max = c;
        }
        if let Some(ms) = a.checkpoint_interval_ms {
            let ck = engine::CheckpointConfig::new(base.join("checkpoints"), std::time::Duration::from_millis(ms));
            cfg.checkpoint = Some(ck);
        }
        let report = Job::new("keyed-count")
            .source(Generator::new(Some(a.records), |seq| seq))
            .key_by(move |seq: &u64| key_of(*seq, keys, hot_percent))
            .process(move |reg| {
                let ttl = ttl_ms.map(|ttl_ms| TtlConfig { ttl_ms, update: TtlUpdate::OnCreateAndWrite });
                let count = Count { count: reg.value("count", ttl)? };
                if ttl.is_some() {
                    reg.set_ttl_cleanup("count", cleanup)?;
                }
                Ok(count)
            })
            .sink(DiscardSink)
            .run(&cfg)?;
        anyhow::ensure!(
            report.records_processed == a.records,
            "processed {} of {}",
            report.records_processed,
            a.records
        );
        println!(
            "sluice records={} keys={} hot_percent={} backend={} par={} cache_entries={} checkpoint_ms={} ttl_ms={} ttl_cleanup={} seconds={:.2} rec_per_s={:.0}",
            a.records,
            a.keys,
            a.hot_percent.map_or("none".to_string(), |p| p.to_string()),
            a.backend,
            a.shards,
            cfg.rocks.cache_entries_max,
            a.checkpoint_interval_ms.map_or("none".to_string(), |m| m.to_string()),
            ttl_ms.map_or("none".to_string(), |m| m.to_string()),
            if ttl_ms.is_some() { a.ttl_cleanup.as_str() } else { "-" },
            report.elapsed.as_secs_f64(),
            report.records_per_s()
        );
        Ok(report.records_per_s())
    }
}
