//! Savepoint and restore throughput (issue 9), against the disk's sequential speed.
//!
//! The keyed count of `keyed_count.rs` (key = seq % keys, a `ValueState<i64>` per key)
//! runs over an unbounded generator until every key exists (records_in >= 2 * keys),
//! then takes a native savepoint and a canonical one (sequentially, each into a new
//! directory, timed from the request to `Operation::Completed`), measures the live
//! RocksDB instances beside them, and cancels. Then each savepoint is restored into a
//! job whose source is empty, so the run is setup + restore + shutdown:
//!
//!   native    -> rocksdb, same shard count (reopen: SSTs hard-linked, no scan)
//!   native    -> rocksdb, shards + 1       (rescale: rebuilt and scanned)
//!   canonical -> rocksdb, same shard count (rebuild)
//!   canonical -> heap,    same shard count (rebuild)
//!
//! Each restore starts from a cold page cache and is timed as `sluice run --from` does
//! it: `Restore::load` (every file's size and crc32 checked), then the run. An empty run
//! of the same job without a restore gives the setup cost, subtracted.
//! A heap job takes a canonical savepoint too (the heap has no native form).
//! `dd` measures the file system's sequential write (conv=fdatasync) and read (after
//! dropping the page cache) in the same directory.
//!
//!     cargo run --release -p sluice-benches --bin savepoint-bench -- \
//!         --keys 1000000,10000000 --runs 3 --dir /work/sp-bench
//!
//! One `key=value` line per measurement, then a table of medians. MB = 10^6 bytes.
mod count;
mod measure;
use count::Count;
use measure::{dir_bytes, drop_caches, load_avg, mb, median};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use engine::{
    BackendKind, DiscardSink, Error, Generator, Job, JobControl, Operation, Restore, RunConfig, RunReport, Source,
    SourceContext, SourceReader,
};
use formats::savepoint::Form;

const JOB: &str = "savepoint-bench";

#[derive(Parser)]
struct Args {
    /// Key counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000000")]
    keys: Vec<u64>,
    /// Runs per key count (each: fill, savepoints, restores).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Working directory: data dirs, savepoints and the dd file (one file system).
    #[arg(long, default_value = "/tmp/sluice-sp-bench")]
    dir: PathBuf,
    /// Backends whose jobs take savepoints (heap: canonical only).
    #[arg(long, value_delimiter = ',', default_value = "rocksdb,heap")]
    backends: Vec<BackendKind>,
    /// Size of the dd file; 0 skips dd.
    #[arg(long, default_value_t = 2048)]
    dd_mib: u64,
    /// Drop the page cache before each restore (needs root), so restores read the disk.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    drop_caches: bool,
    /// Entries per state in the write-back cache before RocksDB (default: the engine's).
    #[arg(long)]
    cache_entries: Option<usize>,
    /// The same, for the job that is filled and savepointed only (not the restores):
    /// lets 50M keys be filled at the cache's speed instead of RocksDB's.
    #[arg(long)]
    fill_cache_entries: Option<usize>,
}

/// A source with no records: the restore runs end as soon as their state is loaded.
struct Empty;

struct EmptyReader;

impl Source<u64> for Empty {
    fn name(&self) -> String {
        "empty".into()
    }
    fn open(&self, _: &SourceContext) -> Result<Box<dyn SourceReader<u64>>, Error> {
        Ok(Box::new(EmptyReader))
    }
}

impl SourceReader<u64> for EmptyReader {
    fn read<'a>(
        &'a mut self,
        _: &'a mut Vec<u64>,
        _: usize,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<bool, Error>> + 'a>> {
        Box::pin(async { Ok(false) })
    }
}

fn run_job(source: impl Source<u64>, keys: u64, cfg: &RunConfig) -> anyhow::Result<RunReport> {
    let keys = keys.max(1);
    Ok(Job::new(JOB)
        .source(source)
        .key_by(move |seq: &u64| seq % keys)
        .process(|reg| Ok(Count { count: reg.value("count", None)? }))
        .sink(DiscardSink)
        .run(cfg)?)
}

/// The live RocksDB instances of the job (`<data-dir>/<job>/work/shard-*`).
fn live_rocks_bytes(data_dir: &Path) -> u64 {
    let work = data_dir.join(JOB).join("work");
    let Ok(rd) = std::fs::read_dir(&work) else { return 0 };
    rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("shard-")).map(|e| dir_bytes(&e.path())).sum()
}

/// Log lines captured from the engine (the per-shard "state restored" lines).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines logged since the last call; warnings and errors are echoed to stderr.
    fn take(&self) -> String {
        let s = String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner())))
            .into_owned();
        for l in s.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
            eprintln!("{l}");
        }
        s
    }
}

/// The largest `ms=` of the "state restored" lines (the slowest shard's restore).
fn restored_ms(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("state restored"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ms=")).and_then(|v| v.parse::<u64>().ok()))
        .max()
}

#[derive(Default)]
struct Results {
    /// (keys, measurement) -> values over the runs.
    cells: BTreeMap<(u64, String), Vec<f64>>,
}

impl Results {
    fn add(&mut self, keys: u64, name: impl Into<String>, v: f64) {
        self.cells.entry((keys, name.into())).or_default().push(v);
    }
    fn med(&self, keys: u64, name: &str) -> Option<f64> {
        self.cells.get(&(keys, name.to_string())).map(|v| median(v))
    }
    fn all(&self, keys: u64, name: &str) -> String {
        self.cells
            .get(&(keys, name.to_string()))
            .map(|v| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }
}

struct Bench {
    a: Args,
    log: Captured,
    res: Results,
}

impl Bench {
    fn cfg(&self, shards: u32, backend: BackendKind, data_dir: PathBuf) -> RunConfig {
        let mut cfg = RunConfig::new(shards, backend, data_dir);
        if let Some(c) = self.a.cache_entries {
            cfg.rocks.cache_entries_max = c;
        }
        cfg
    }

    /// Fills a job with `keys` keys on `backend`, takes a savepoint of each form in
    /// `forms`, cancels it. Returns the savepoint directories by form.
    fn savepoints(
        &mut self,
        keys: u64,
        backend: BackendKind,
        forms: &[Form],
        run: u32,
    ) -> anyhow::Result<Vec<(Form, PathBuf)>> {
        let data = self.a.dir.join(format!("data-{backend}"));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let mut cfg = self.cfg(self.a.shards, backend, data.clone());
        if let Some(c) = self.a.fill_cache_entries {
            cfg.rocks.cache_entries_max = c;
        }
        let control = JobControl::new(JOB, &cfg, None);
        cfg.control = Some(control.clone());
        let started = Instant::now();
        let job = {
            let cfg = cfg.clone();
            std::thread::spawn(move || run_job(Generator::new(None, |seq| seq), keys, &cfg))
        };
        let target = 2 * keys;
        loop {
            if job.is_finished() {
                anyhow::bail!("job ended before it was filled: {:?}", job.join());
            }
            if control.snapshot().records_in >= target {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let fill_s = started.elapsed().as_secs_f64();
        let records = control.snapshot().records_in;
        println!(
            "fill keys={keys} backend={backend} shards={} run={run} records={records} seconds={fill_s:.2} rec_per_s={:.0} load={}",
            self.a.shards,
            records as f64 / fill_s,
            load_avg()
        );
        let mut out = Vec::new();
        for &form in forms {
            let dir = self.a.dir.join(format!("sp-{backend}-{form}"));
            let _ = std::fs::remove_dir_all(&dir);
            let load = load_avg();
            let t = Instant::now();
            let id = control.request_savepoint(Some(dir.clone()), form, false).map_err(|r| anyhow::anyhow!("{r:?}"))?;
            loop {
                match control.operation(&id) {
                    Some(Operation::Completed { .. }) => break,
                    Some(Operation::Failed { cause }) => anyhow::bail!("savepoint failed: {cause}"),
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            let secs = t.elapsed().as_secs_f64();
            // Right after the savepoint: its barrier flushed the write-back cache.
            let live = if backend == BackendKind::Rocksdb { live_rocks_bytes(&data) } else { 0 };
            let bytes = dir_bytes(&dir);
            let rec = control.snapshot().history.into_iter().find(|r| r.request_id.as_deref() == Some(id.as_str()));
            let (dur_ms, sync_ms) = rec.map_or((0, 0), |r| (r.duration_ms, r.sync_ms));
            println!(
                "savepoint keys={keys} backend={backend} form={form} run={run} seconds={secs:.3} bytes={bytes} mb={:.1} mb_per_s={:.1} engine_ms={dur_ms} sync_ms={sync_ms} live_rocks_bytes={live} load={load}",
                mb(bytes),
                mb(bytes) / secs
            );
            let tag = format!("sp {backend} {form}");
            self.res.add(keys, format!("{tag} s"), secs);
            self.res.add(keys, format!("{tag} MB"), mb(bytes));
            self.res.add(keys, format!("{tag} MB/s"), mb(bytes) / secs);
            self.res.add(keys, format!("{tag} sync ms"), sync_ms as f64);
            if live > 0 {
                self.res.add(keys, format!("{tag} live MB"), mb(live));
            }
            out.push((form, dir));
        }
        control.cancel();
        let report = job.join().map_err(|_| anyhow::anyhow!("job thread panicked"))??;
        println!("stopped keys={keys} backend={backend} run={run} records={}", report.records_in);
        let _ = std::fs::remove_dir_all(&data);
        Ok(out)
    }

    /// One run of the empty job restoring `from` (or nothing) onto `shards` of `backend`,
    /// from a cold page cache, as `sluice run --from` does it: `Restore::load` (reads the
    /// metadata and checks every file's size and crc32), then the run. Returns the
    /// seconds of both parts and the slowest shard's "state restored" ms.
    fn restore(
        &mut self,
        from: Option<&Path>,
        shards: u32,
        backend: BackendKind,
    ) -> anyhow::Result<(f64, f64, Option<u64>)> {
        let data = self.a.dir.join("data-restore");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let mut cfg = self.cfg(shards, backend, data.clone());
        drop_caches(self.a.drop_caches);
        let _ = self.log.take();
        let t = Instant::now();
        if let Some(p) = from {
            cfg.restore = Some(Arc::new(Restore::load(p)?));
        }
        let verify = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let report = run_job(Empty, 1, &cfg)?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(report.records_in == 0);
        let ms = restored_ms(&self.log.take());
        let _ = std::fs::remove_dir_all(&data);
        Ok((verify, secs, ms))
    }

    fn restores(&mut self, keys: u64, sps: &[(Form, PathBuf)], run: u32) -> anyhow::Result<()> {
        let s = self.a.shards;
        let baseline: Vec<(BackendKind, f64)> = [BackendKind::Rocksdb, BackendKind::Heap]
            .into_iter()
            .map(|b| self.restore(None, s, b).map(|(_, secs, _)| (b, secs)))
            .collect::<anyhow::Result<_>>()?;
        for (b, secs) in &baseline {
            println!("empty keys={keys} backend={b} shards={s} run={run} seconds={secs:.3}");
        }
        let base = |b: BackendKind| baseline.iter().find(|(k, _)| *k == b).map_or(0.0, |(_, s)| *s);
        for (form, dir) in sps {
            let bytes = dir_bytes(dir);
            let cases: Vec<(&str, u32, BackendKind)> = match form {
                Form::Native => vec![("reopen", s, BackendKind::Rocksdb), ("rescale", s + 1, BackendKind::Rocksdb)],
                _ => vec![("rebuild", s, BackendKind::Rocksdb), ("rebuild", s, BackendKind::Heap)],
            };
            for (path, shards, backend) in cases {
                let load = load_avg();
                let (verify, secs, ms) = self.restore(Some(dir), shards, backend)?;
                // Checking plus the run minus an empty run, but never less than checking plus
                // the slowest shard's own restore time (they differ by noise when it is short).
                let net = (verify + secs - base(backend)).max(verify + ms.map_or(0.0, |m| m as f64 / 1e3)).max(1e-3);
                println!(
                    "restore keys={keys} form={form} onto={backend} shards={shards} path={path} run={run} verify_s={verify:.3} run_s={secs:.3} restore_s={net:.3} state_restored_ms={} bytes={bytes} mb_per_s={:.1} load={load}",
                    ms.map_or("-".into(), |m| m.to_string()),
                    mb(bytes) / net
                );
                let tag = format!("restore {form} -> {backend} {shards} ({path})");
                self.res.add(keys, format!("{tag} s"), net);
                self.res.add(keys, format!("{tag} MB/s"), mb(bytes) / net);
                self.res.add(keys, format!("{tag} verify s"), verify);
                if let Some(m) = ms {
                    self.res.add(keys, format!("{tag} shard ms"), m as f64);
                }
            }
        }
        Ok(())
    }

    fn dd(&mut self) -> anyhow::Result<()> {
        if self.a.dd_mib == 0 {
            return Ok(());
        }
        let f = self.a.dir.join("dd.bin");
        let n = self.a.dd_mib;
        let bytes = n * 1024 * 1024;
        let load = load_avg();
        let t = Instant::now();
        let st = std::process::Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", f.display()), "bs=1M", &format!("count={n}"), "conv=fdatasync"])
            .stderr(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "dd write failed");
        let w = mb(bytes) / t.elapsed().as_secs_f64();
        drop_caches(true);
        let t = Instant::now();
        let st = std::process::Command::new("dd")
            .args([&format!("if={}", f.display()), "of=/dev/null", "bs=1M"])
            .stderr(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "dd read failed");
        let r = mb(bytes) / t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&f);
        println!("dd mib={n} write_mb_per_s={w:.1} read_mb_per_s={r:.1} load={load}");
        self.res.add(0, "dd write MB/s", w);
        self.res.add(0, "dd read MB/s", r);
        Ok(())
    }

    fn table(&self) {
        let dw = self.res.med(0, "dd write MB/s").unwrap_or(f64::NAN);
        let dr = self.res.med(0, "dd read MB/s").unwrap_or(f64::NAN);
        println!(
            "\n## medians (MB = 10^6 bytes); dd write {dw:.0} MB/s, dd read {dr:.0} MB/s ({})",
            self.res.all(0, "dd write MB/s")
        );
        for &keys in &self.a.keys {
            println!("\nkeys={keys}");
            println!("| savepoint | s | MB | MB/s | vs dd write | sync ms | live RocksDB MB | runs (s) |");
            println!("|---|---|---|---|---|---|---|---|");
            for b in &self.a.backends {
                for form in ["native", "canonical"] {
                    let tag = format!("sp {b} {form}");
                    let Some(s) = self.res.med(keys, &format!("{tag} s")) else { continue };
                    let m = self.res.med(keys, &format!("{tag} MB")).unwrap_or(f64::NAN);
                    let r = self.res.med(keys, &format!("{tag} MB/s")).unwrap_or(f64::NAN);
                    let sync = self.res.med(keys, &format!("{tag} sync ms")).unwrap_or(f64::NAN);
                    let live = self.res.med(keys, &format!("{tag} live MB")).map_or("".into(), |l| format!("{l:.1}"));
                    println!(
                        "| {b} {form} | {s:.2} | {m:.1} | {r:.0} | {:.0}% | {sync:.0} | {live} | {} |",
                        100.0 * r / dw,
                        self.res.all(keys, &format!("{tag} s"))
                    );
                }
            }
            println!("| restore | s (check + run - empty run) | MB/s | vs dd read | of which crc check s | slowest shard ms | runs (s) |");
            println!("|---|---|---|---|---|---|---|");
            let tags: Vec<String> = self
                .res
                .cells
                .keys()
                .filter(|(k, n)| {
                    *k == keys && n.starts_with("restore ") && n.ends_with(" s") && !n.ends_with(" verify s")
                })
                .map(|(_, n)| n.trim_end_matches(" s").to_string())
                .collect();
            for tag in tags {
                let s = self.res.med(keys, &format!("{tag} s")).unwrap_or(f64::NAN);
                let r = self.res.med(keys, &format!("{tag} MB/s")).unwrap_or(f64::NAN);
                let ms = self.res.med(keys, &format!("{tag} shard ms")).map_or("".into(), |m| format!("{m:.0}"));
                let v = self.res.med(keys, &format!("{tag} verify s")).unwrap_or(f64::NAN);
                println!(
                    "| {tag} | {s:.2} | {r:.0} | {:.0}% | {v:.2} | {ms} | {} |",
                    100.0 * r / dr,
                    self.res.all(keys, &format!("{tag} s"))
                );
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let log = Captured::default();
    let a = Args::parse();
    {
        let log = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || log.clone())
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "warn,engine=info".into()),
            )
            .init();
    }
    std::fs::create_dir_all(&a.dir)?;
    let mut b = Bench { a, log, res: Results::default() };
    b.dd()?;
    let keys = b.a.keys.clone();
    for k in keys {
        for run in 1..=b.a.runs {
            for backend in b.a.backends.clone() {
                let forms: &[Form] = match backend {
                    BackendKind::Rocksdb => &[Form::Native, Form::Canonical],
                    _ => &[Form::Canonical],
                };
                let sps = b.savepoints(k, backend, forms, run)?;
                // Restores from the RocksDB job's savepoints (the heap job's canonical one
                // is the same format).
                if backend == BackendKind::Rocksdb {
                    b.restores(k, &sps, run)?;
                }
                for (_, dir) in sps {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            let _ = b.log.take();
        }
        b.dd()?;
    }
    b.table();
    Ok(())
}
