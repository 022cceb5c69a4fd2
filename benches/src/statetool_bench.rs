//! statetool on a big checkpoint (issue 10): how long each verb takes, how fast it reads,
//! and its peak memory, against the disk's sequential read speed measured beside it.
//!
//! The input is built by a real job through the engine's API: RocksDB, 2 shards, a
//! `ValueState<Vec<u8>>` per key holding `--value-bytes` of pseudo-random bytes (so
//! nothing compresses), derived from the key and a version so every run builds the same
//! state. The source emits keys `0..keys` (version 0); once every one is processed, the
//! next checkpoint triggered after that is checkpoint A. Then it emits updates of
//! `--update-percent` of the keys (version 1, spread evenly over the key space), and the
//! next checkpoint triggered after those are processed is B: an incremental checkpoint
//! whose parent is A, sharing A's unchanged SST files. Then the job is cancelled and its
//! live RocksDB instances deleted; the checkpoint root is what is measured.
//!
//! Checkpoints are triggered by the engine's own interval. The bench sets
//! `min_pause` (the least time from one checkpoint's end to the next one's start) so
//! that the update phase normally fits between A and B; if a checkpoint comes between
//! them anyway, A may be garbage-collected (`retain`), which the bench detects and
//! reports (raise `--min-pause-s`).
//!
//! Then the `statetool` binary beside this one (`cargo build --release -p statetool`)
//! runs on that root, `--runs` times each, every run from a cold page cache
//! (`sync; echo 3 > /proc/sys/vm/drop_caches`, needs root), timed from spawn to exit,
//! peak RSS from `/usr/bin/time -f %M`. First the verbs that only read, one of each per
//! run in this order:
//!
//!   inspect B, verify --quick B        (each also warm: run again at once)
//!   dd and a plain read, cold          (beside verify: the disk's read speed swings)
//!   verify B                           MB/s of B's files
//!   dump B > /dev/null                 entries/s (`--dump-runs`: it is the slowest)
//!   du B --by state
//!   diff A B --summary                 MB/s of A's and B's files together
//!
//! then the rewrites, one of each per run, each output deleted at once:
//!
//!   compact B --to X                   MB/s of B's files
//!   migrate B --to Y --shards 3        likewise
//!   migrate B --to Z --key-groups 256  likewise
//!
//! with the disk they hold at peak (output and scratch, sampled). `--gc-before-rewrites`
//! removes A first (`statetool gc --retain 1`), as they need only B and about three
//! times the state's size of free disk.
//!
//! The disk figures, all from a cold cache: `dd` reading the root's largest SST, `dd`
//! writing (`conv=fdatasync`) then reading a `--dd-mib` file in the same directory
//! (deleted at once), and a plain read of every file of the root in 1 MiB pieces.
//!
//!     cargo build --release -p statetool -p sluice-benches
//!     B=$CARGO_TARGET_DIR/release/statetool-bench
//!     $B --keys 4600000 --build-only --dir /work/statetool-bench
//!     $B --input /work/statetool-bench/checkpoints/statetool-bench --gc-before-rewrites
//!
//! One `key=value` line per measurement, then a table of medians. MB = 10^6 bytes.
mod measure;
use measure::{dir_bytes, drop_caches, load_avg, mb, median};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use engine::{
    BackendKind, CheckpointConfig, CheckpointRecord, Context, DiscardSink, Error, Job, JobControl,
    KeyedProcessFunction, RunConfig, Source, SourceContext, SourceReader, Split, ValueState,
};

const JOB: &str = "statetool-bench";

/// How often a waiting loop looks at the job again.
const POLL: Duration = Duration::from_millis(50);

/// How long a source reader waits when it has emitted everything it may for now.
const IDLE_SLEEP: Duration = Duration::from_millis(10);

/// How often the disk use of a rewrite (output and scratch) is sampled.
const DISK_SAMPLE: Duration = Duration::from_millis(200);

#[derive(Parser)]
struct Args {
    /// Keys of the state (each holds one value of `--value-bytes`).
    #[arg(long, default_value_t = 5_000_000)]
    keys: u64,
    /// Bytes of each value (pseudo-random: nothing compresses).
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Keys updated between checkpoint A and checkpoint B, in percent.
    #[arg(long, default_value_t = 10)]
    update_percent: u64,
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Working directory: the job's data and checkpoints, the outputs of compact and
    /// migrate, the dd file (one file system).
    #[arg(long, default_value = "/work/statetool-bench")]
    dir: PathBuf,
    /// Measure this existing checkpoint root (its two newest checkpoints are A and B)
    /// instead of building one.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Build the input and stop (nothing measured).
    #[arg(long)]
    build_only: bool,
    /// Runs of each verb.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Runs of `dump` (default: `--runs`); it is the slowest verb.
    #[arg(long)]
    dump_runs: Option<u32>,
    /// The statetool binary (default: the one beside this binary).
    #[arg(long)]
    statetool: Option<PathBuf>,
    /// Verbs to run (default: all): inspect, quick, verify, dump, du, diff, compact,
    /// migrate-shards, migrate-key-groups.
    #[arg(long, value_delimiter = ',')]
    verbs: Vec<String>,
    /// Checkpoint interval while building.
    #[arg(long, default_value_t = 5)]
    interval_s: u64,
    /// Least time between one checkpoint's end and the next one's start: the window
    /// the update phase has between A and B.
    #[arg(long, default_value_t = 30)]
    min_pause_s: u64,
    /// Size of the dd file; 0: dd reads the largest SST only.
    #[arg(long, default_value_t = 2048)]
    dd_mib: u64,
    /// Before compact and migrate (which run after every other verb's runs), remove
    /// checkpoint A from the root (`statetool gc --retain 1`): they read B only, and need
    /// about three times the state's size of free disk for their scratch and output.
    #[arg(long)]
    gc_before_rewrites: bool,
    /// Drop the page cache before each run (needs root).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    drop_caches: bool,
}

/// Emits the global sequence `0..limit` (shard i: i, i+n, i+2n, ...), waiting when it
/// reaches `limit` until the bench raises it. Never ends by itself, so checkpoints go on.
struct Phased {
    limit: Arc<AtomicU64>,
}

struct PhasedReader {
    limit: Arc<AtomicU64>,
    next: u64,
    step: u64,
    ctx: SourceContext,
}

impl Source<u64> for Phased {
    fn name(&self) -> String {
        "phased".into()
    }
    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<u64>>, Error> {
        Ok(Box::new(PhasedReader {
            limit: self.limit.clone(),
            next: u64::from(ctx.shard.0),
            step: u64::from(ctx.shards.max(1)),
            ctx: ctx.clone(),
        }))
    }
}

impl SourceReader<u64> for PhasedReader {
    fn read<'a>(
        &'a mut self,
        out: &'a mut Vec<u64>,
        max: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, Error>> + 'a>> {
        Box::pin(async move {
            if self.ctx.stopping() {
                return Ok(false);
            }
            let limit = self.limit.load(Ordering::Acquire);
            while out.len() < max && self.next < limit {
                out.push(self.next);
                self.next += self.step;
            }
            if out.is_empty() {
                glommio::timer::sleep(IDLE_SLEEP).await;
            }
            Ok(true)
        })
    }

    fn position(&self) -> Option<Vec<Split>> {
        Some(vec![Split { id: self.ctx.shard.0.into(), next: self.next, end: u64::MAX, step: self.step }])
    }
}

/// Record `seq` of the phased source: (key, version). The first `keys` records write
/// every key once (version 0); the next `updates` rewrite keys spread evenly over the
/// key space (version 1).
fn record(seq: u64, keys: u64, updates: u64) -> (u64, u64) {
    if seq < keys {
        (seq, 0)
    } else {
        let u = seq - keys;
        (u * keys / updates.max(1), 1)
    }
}

/// The value of `key` at `version`: `bytes` pseudo-random bytes (a wyrand stream seeded
/// from both), deterministic, incompressible.
fn value(key: u64, version: u64, bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    fastrand::Rng::with_seed(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version.rotate_right(1)).fill(&mut v);
    v
}

struct Load {
    blob: ValueState<Vec<u8>>,
    keys: u64,
    value_bytes: usize,
}

impl KeyedProcessFunction for Load {
    type Key = u64;
    type In = u64;
    type Out = u64;

    fn process(&mut self, key: &u64, seq: u64, ctx: &mut Context<'_>, _: &mut Vec<u64>) -> Result<(), Error> {
        let version = u64::from(seq >= self.keys);
        self.blob.set(ctx, value(*key, version, self.value_bytes))?;
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Bytes a rewrite has on disk in `dir`: its output `out` and its scratch directories
/// (`.statetool-rewrite-*`, created beside the output).
fn rewrite_bytes(dir: &Path, out: &Path) -> u64 {
    let scratch: u64 = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".statetool-rewrite"))
                .map(|e| dir_bytes(&e.path()))
                .sum()
        })
        .unwrap_or(0);
    scratch + dir_bytes(out)
}

/// The ids of the `chk-<n>` directories of a checkpoint root, ascending.
fn checkpoint_ids(root: &Path) -> anyhow::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Builds the input: runs the job until A and B are published, cancels it, deletes its
/// live instances. Returns the checkpoint root and the ids of A and B.
fn build(a: &Args) -> anyhow::Result<(PathBuf, u64, u64)> {
    let data = a.dir.join("data");
    let checkpoints = a.dir.join("checkpoints");
    for d in [&data, &checkpoints] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    let (keys, value_bytes) = (a.keys, a.value_bytes);
    let updates = (keys * a.update_percent / 100).max(1);
    let mut cfg = RunConfig::new(a.shards, BackendKind::Rocksdb, data.clone());
    let mut ck = CheckpointConfig::new(checkpoints.clone(), Duration::from_secs(a.interval_s));
    ck.min_pause = Duration::from_secs(a.min_pause_s);
    ck.retain = 2;
    cfg.checkpoint = Some(ck);
    let control = JobControl::new(JOB, &cfg, None);
    cfg.control = Some(control.clone());
    let limit = Arc::new(AtomicU64::new(keys));
    let started = Instant::now();
    let job = {
        let (cfg, limit) = (cfg.clone(), limit.clone());
        std::thread::spawn(move || {
            Job::new(JOB)
                .source(Phased { limit })
                .key_by(move |seq: &u64| record(*seq, keys, updates).0)
                .process(move |reg| Ok(Load { blob: reg.value("blob", None)?, keys, value_bytes }))
                .sink(DiscardSink)
                .run(&cfg)
        })
    };
    // Waits until the job has processed `n` records, printing progress.
    let wait_processed = |n: u64, phase: &str| -> anyhow::Result<()> {
        let t = Instant::now();
        let mut last_print = Instant::now();
        loop {
            if job.is_finished() {
                anyhow::bail!("the job ended during the {phase} phase");
            }
            let done: u64 = control.snapshot().processed_per_shard.iter().sum();
            if done >= n {
                let s = t.elapsed().as_secs_f64();
                println!(
                    "phase={phase} records={n} seconds={s:.1} rec_per_s={:.0} mb_per_s={:.1} load={}",
                    n as f64 / s,
                    mb(n * value_bytes as u64) / s,
                    load_avg()
                );
                return Ok(());
            }
            if last_print.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "  {phase}: {done}/{n} records after {:.0} s, load {}",
                    t.elapsed().as_secs_f64(),
                    load_avg()
                );
                last_print = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    };
    // Waits for the first checkpoint triggered at or after `after_ms` to be published.
    let wait_checkpoint = |after_ms: u64, name: &str| -> anyhow::Result<CheckpointRecord> {
        let t = Instant::now();
        loop {
            if job.is_finished() {
                anyhow::bail!("the job ended while waiting for checkpoint {name}");
            }
            let snap = control.snapshot();
            let mut after: Vec<_> =
                snap.history.into_iter().filter(|r| !r.savepoint && r.trigger_ms >= after_ms).collect();
            after.sort_by_key(|r| r.id);
            if let Some(r) = after.first() {
                anyhow::ensure!(r.completed, "checkpoint {} failed: {}", r.id, r.failure);
                println!(
                    "checkpoint name={name} id={} waited_s={:.1} duration_ms={} sync_ms={} state_bytes={} copied_bytes={} reused_bytes={}",
                    r.id,
                    t.elapsed().as_secs_f64(),
                    r.duration_ms,
                    r.sync_ms,
                    r.state_bytes,
                    r.copied_bytes,
                    r.reused_bytes
                );
                return Ok(r.clone());
            }
            std::thread::sleep(POLL);
        }
    };
    let result = (|| {
        wait_processed(keys, "fill")?;
        let a_rec = wait_checkpoint(now_ms(), "A")?;
        limit.store(keys + updates, Ordering::Release);
        wait_processed(keys + updates, "update")?;
        let b_rec = wait_checkpoint(now_ms(), "B")?;
        Ok::<_, anyhow::Error>((a_rec.id, b_rec.id))
    })();
    control.cancel();
    let report = job.join().map_err(|_| anyhow::anyhow!("job thread panicked"))?;
    let (ida, idb) = result?;
    let report = report?;
    let root = checkpoints.join(JOB);
    let ids = checkpoint_ids(&root)?;
    anyhow::ensure!(
        ids.contains(&ida) && ids.contains(&idb),
        "checkpoints {ida} and {idb} should both be in {} (found {ids:?}): a checkpoint came between them and \
         garbage collection removed A; raise --min-pause-s",
        root.display()
    );
    println!(
        "built keys={keys} value_bytes={value_bytes} updates={updates} shards={} records={} seconds={:.1} a=chk-{ida} b=chk-{idb} root_bytes={} load={}",
        a.shards,
        report.records_in,
        started.elapsed().as_secs_f64(),
        dir_bytes(&root),
        load_avg()
    );
    std::fs::remove_dir_all(&data)?;
    Ok((root, ida, idb))
}

/// One timed statetool run.
struct Outcome {
    seconds: f64,
    rss_kb: u64,
    stdout: String,
    /// Most bytes of output and scratch seen on disk while it ran (sampled), if sampled.
    disk_peak: Option<u64>,
}

struct Bench {
    a: Args,
    statetool: PathBuf,
    /// (measurement, unit) -> values over the runs.
    cells: BTreeMap<String, Vec<f64>>,
}

impl Bench {
    fn add(&mut self, name: &str, v: f64) {
        self.cells.entry(name.to_string()).or_default().push(v);
    }

    fn med(&self, name: &str) -> Option<f64> {
        self.cells.get(name).map(|v| median(v))
    }

    fn all(&self, name: &str, digits: usize) -> String {
        self.cells
            .get(name)
            .map(|v| v.iter().map(|x| format!("{x:.digits$}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }

    fn wants(&self, verb: &str) -> bool {
        self.a.verbs.is_empty() || self.a.verbs.iter().any(|v| v == verb)
    }

    /// Runs statetool with `args` under `/usr/bin/time -f %M`; `expect` are the exit
    /// codes that count as success. With `rewrite_out`, samples the bytes of that output
    /// and the rewrite's scratch directories while it runs.
    fn statetool(
        &self,
        args: &[&str],
        to_null: bool,
        expect: &[i32],
        rewrite_out: Option<&Path>,
    ) -> anyhow::Result<Outcome> {
        let rss_file = self.a.dir.join("rss.txt");
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(&self.statetool).args(args);
        cmd.stdout(if to_null { Stdio::null() } else { Stdio::piped() });
        cmd.stderr(Stdio::piped());
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = rewrite_out.map(|out| {
            let (stop, dir, out) = (stop.clone(), self.a.dir.clone(), out.to_path_buf());
            std::thread::spawn(move || {
                let mut most = 0;
                while !stop.load(Ordering::Relaxed) {
                    most = rewrite_bytes(&dir, &out).max(most);
                    std::thread::sleep(DISK_SAMPLE);
                }
                most
            })
        });
        let t = Instant::now();
        let out = cmd.spawn().context("spawning /usr/bin/time (apt-get install time)")?.wait_with_output()?;
        let seconds = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let disk_peak = sampler.and_then(|s| s.join().ok());
        let code = out.status.code().unwrap_or(-1);
        anyhow::ensure!(
            expect.contains(&code),
            "statetool {} exited {code}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let rss_kb = std::fs::read_to_string(&rss_file)?
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .next_back()
            .context("no %M in /usr/bin/time's output")?;
        Ok(Outcome { seconds, rss_kb, stdout: String::from_utf8_lossy(&out.stdout).into_owned(), disk_peak })
    }

    /// One measured run of a verb: prints its line and records seconds, RSS and `rate`
    /// (the amount per second of `per`, named `unit`).
    fn measure(
        &mut self,
        name: &str,
        args: &[&str],
        run: u32,
        cold: bool,
        per: Option<(f64, &str)>,
        rewrite_out: Option<&Path>,
    ) -> anyhow::Result<Outcome> {
        if cold {
            drop_caches(self.a.drop_caches);
        }
        let load = load_avg();
        let to_null = name.starts_with("dump");
        let expect: &[i32] = if name.starts_with("diff") { &[0, 1] } else { &[0] };
        let o = self.statetool(args, to_null, expect, rewrite_out)?;
        let mut line =
            format!("verb=\"{name}\" run={run} cold={cold} seconds={:.3} rss_kb={} load={load}", o.seconds, o.rss_kb);
        self.add(&format!("{name}|s"), o.seconds);
        // %M is in KiB.
        self.add(&format!("{name}|rss"), o.rss_kb as f64 / 1024.0);
        if let Some((amount, unit)) = per {
            let rate = amount / o.seconds;
            line.push_str(&format!(" {unit}={rate:.1}"));
            self.add(&format!("{name}|rate {unit}"), rate);
        }
        println!("{line}");
        Ok(o)
    }

    /// dd reads `file` from a cold cache; returns MB/s.
    fn dd_read(&mut self, file: &Path, what: &str, run: u32) -> anyhow::Result<f64> {
        let bytes = std::fs::metadata(file)?.len();
        drop_caches(self.a.drop_caches);
        let load = load_avg();
        let t = Instant::now();
        let st = Command::new("dd")
            .arg(format!("if={}", file.display()))
            .args(["of=/dev/null", "bs=1M"])
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "dd read of {} failed", file.display());
        let r = mb(bytes) / t.elapsed().as_secs_f64();
        println!("dd what={what} run={run} bytes={bytes} read_mb_per_s={r:.1} load={load}");
        self.add(&format!("dd {what}|MB/s"), r);
        Ok(r)
    }

    /// dd writes the `--dd-mib` file (`conv=fdatasync`); records MB/s.
    fn dd_write(&mut self, file: &Path, run: u32) -> anyhow::Result<()> {
        let n = self.a.dd_mib;
        let t = Instant::now();
        let st = Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", file.display()), "bs=1M", &format!("count={n}"), "conv=fdatasync"])
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "dd write of {} failed", file.display());
        let w = mb(n << 20) / t.elapsed().as_secs_f64();
        println!("dd what=write run={run} bytes={} write_mb_per_s={w:.1} load={}", n << 20, load_avg());
        self.add("dd write|MB/s", w);
        Ok(())
    }

    /// Reads every file of the checkpoint root once, in 1 MiB pieces, from a cold cache:
    /// the bytes verify reads, at the speed of plain sequential reads; records MB/s.
    fn read_all(&mut self, root: &Path, run: u32) -> anyhow::Result<()> {
        fn files(p: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                match e.file_type() {
                    Ok(t) if t.is_dir() => files(&e.path(), out),
                    Ok(t) if t.is_file() => out.push(e.path()),
                    _ => {}
                }
            }
        }
        let mut all = Vec::new();
        files(root, &mut all);
        drop_caches(self.a.drop_caches);
        let load = load_avg();
        let mut buf = vec![0u8; 1 << 20];
        let t = Instant::now();
        let mut bytes = 0u64;
        for f in &all {
            let mut r = std::fs::File::open(f)?;
            loop {
                let n = std::io::Read::read(&mut r, &mut buf)?;
                if n == 0 {
                    break;
                }
                bytes += n as u64;
            }
        }
        let r = mb(bytes) / t.elapsed().as_secs_f64();
        println!("read what=root files={} run={run} bytes={bytes} read_mb_per_s={r:.1} load={load}", all.len());
        self.add("dd root files|MB/s", r);
        Ok(())
    }

    /// The largest file under `<root>/shared` (an SST of the checkpoint).
    fn largest_sst(root: &Path) -> Option<PathBuf> {
        let rd = std::fs::read_dir(root.join("shared")).ok()?;
        rd.flatten().filter_map(|e| Some((e.metadata().ok()?.len(), e.path()))).max().map(|(_, p)| p)
    }

    fn total_bytes(&self, chk: &Path) -> anyhow::Result<u64> {
        let o = self.statetool(&["inspect", &chk.to_string_lossy(), "--json"], false, &[0], None)?;
        let v: serde_json::Value = serde_json::from_str(o.stdout.trim())?;
        v["total_bytes"].as_u64().context("inspect --json has no total_bytes")
    }

    /// Entries of `chk`, from `du --by state --json` (one unmeasured pass over every entry).
    fn entries(&self, chk: &str) -> anyhow::Result<u64> {
        let o = self.statetool(&["du", chk, "--by", "state", "--json"], false, &[0], None)?;
        let v: serde_json::Value = serde_json::from_str(o.stdout.trim())?;
        v["entries"].as_u64().with_context(|| format!("du --json gave no entry count: {}", o.stdout.trim()))
    }

    /// Measures every verb on checkpoints `ida` (A) and `idb` (B) of `root`; `entries`: B's
    /// entry count when known (a built input holds one entry per key).
    fn run_all(&mut self, root: &Path, ida: u64, idb: u64, entries: Option<u64>) -> anyhow::Result<()> {
        let (ca, cb) = (root.join(format!("chk-{ida}")), root.join(format!("chk-{idb}")));
        let (sa, sb) = (ca.to_string_lossy().into_owned(), cb.to_string_lossy().into_owned());
        let (bytes_a, bytes_b) = (self.total_bytes(&ca)?, self.total_bytes(&cb)?);
        // What dump's rate is counted in.
        let entries = match entries {
            Some(n) => n,
            None => self.entries(&sb)?,
        };
        let sst = Self::largest_sst(root).context("no SST under shared/")?;
        println!(
            "input root={} a=chk-{ida} b=chk-{idb} a_bytes={bytes_a} b_bytes={bytes_b} b_entries={entries} largest_sst={} largest_sst_bytes={} root_bytes={}",
            root.display(),
            sst.display(),
            std::fs::metadata(&sst)?.len(),
            dir_bytes(root)
        );
        self.add("input|b MB", mb(bytes_b));
        self.add("input|a MB", mb(bytes_a));
        self.add("input|entries", entries as f64);
        let dd_file = self.a.dir.join("dd.bin");
        let out = |n: &str| self.a.dir.join(n);
        let (x, y, z) = (out("out-compact"), out("out-migrate-shards"), out("out-migrate-kg"));
        for d in [&x, &y, &z] {
            let _ = std::fs::remove_dir_all(d);
        }
        let (xs, ys, zs) = (x.to_string_lossy(), y.to_string_lossy(), z.to_string_lossy());
        for run in 1..=self.a.runs {
            if self.wants("inspect") {
                self.measure("inspect B", &["inspect", &sb], run, true, None, None)?;
                self.measure("inspect B, warm", &["inspect", &sb], run, false, None, None)?;
            }
            if self.wants("quick") {
                let per = Some((mb(bytes_b), "MB/s"));
                self.measure("verify --quick B", &["verify", "--quick", &sb], run, true, per, None)?;
                self.measure("verify --quick B, warm", &["verify", "--quick", &sb], run, false, per, None)?;
            }
            if self.wants("verify") {
                self.dd_read(&sst, "largest SST", run)?;
                if self.a.dd_mib > 0 {
                    // Written for each run and deleted at once: the rewrites need the space.
                    self.dd_write(&dd_file, run)?;
                    self.dd_read(&dd_file, &format!("{} MiB file", self.a.dd_mib), run)?;
                    std::fs::remove_file(&dd_file)?;
                }
                self.read_all(root, run)?;
                self.measure("verify B", &["verify", &sb], run, true, Some((mb(bytes_b), "MB/s")), None)?;
            }
            if self.wants("dump") {
                let runs = self.a.dump_runs.unwrap_or(self.a.runs);
                if run <= runs {
                    let per = Some((entries as f64, "entries/s"));
                    self.measure("dump B > /dev/null", &["dump", &sb], run, true, per, None)?;
                }
            }
            if self.wants("du") {
                let per = Some((mb(bytes_b), "MB/s"));
                self.measure("du B --by state", &["du", &sb, "--by", "state"], run, true, per, None)?;
            }
            if self.wants("diff") {
                let o = self.measure(
                    "diff A B --summary",
                    &["diff", &sa, &sb, "--summary"],
                    run,
                    true,
                    Some((mb(bytes_a + bytes_b), "MB/s")),
                    None,
                )?;
                if run == 1 {
                    for l in o.stdout.lines().filter(|l| !l.trim().is_empty()) {
                        println!("  | {l}");
                    }
                }
            }
        }
        if self.a.gc_before_rewrites
            && ["compact", "migrate-shards", "migrate-key-groups"].iter().any(|v| self.wants(v))
        {
            // A's own files are not needed to rewrite B, and the rewrites need the space.
            let before = dir_bytes(root);
            self.statetool(&["gc", &root.to_string_lossy(), "--retain", "1"], false, &[0], None)?;
            println!("gc root={} retain=1 bytes_before={before} bytes_after={}", root.display(), dir_bytes(root));
        }
        for run in 1..=self.a.runs {
            let rewrites: [(&str, &str, Vec<&str>); 3] = [
                ("compact", "compact B", vec!["compact", &sb, "--to", &xs, "--json"]),
                (
                    "migrate-shards",
                    "migrate B --shards 3",
                    vec!["migrate", &sb, "--to", &ys, "--shards", "3", "--json"],
                ),
                (
                    "migrate-key-groups",
                    "migrate B --key-groups 256",
                    vec!["migrate", &sb, "--to", &zs, "--key-groups", "256", "--json"],
                ),
            ];
            for ((verb, name, args), dir) in rewrites.iter().zip([&x, &y, &z]) {
                if !self.wants(verb) {
                    continue;
                }
                let o = self.measure(name, args, run, true, Some((mb(bytes_b), "MB/s")), Some(dir))?;
                let out_bytes = dir_bytes(dir);
                let report: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap_or_default();
                let disk_peak = o.disk_peak.unwrap_or(0);
                println!(
                    "  {name}: bytes_in={} bytes_out={} out_dir_bytes={out_bytes} entries_written={} tool_seconds={} disk_peak_bytes={disk_peak}",
                    report["bytes_in"], report["bytes_out"], report["entries_written"], report["seconds"]
                );
                self.add(&format!("{name}|out MB"), mb(out_bytes));
                self.add(&format!("{name}|disk peak MB"), mb(disk_peak));
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        let _ = std::fs::remove_file(self.a.dir.join("rss.txt"));
        Ok(())
    }

    fn table(&self) {
        let b_mb = self.med("input|b MB").unwrap_or(f64::NAN);
        let entries = self.med("input|entries").unwrap_or(f64::NAN);
        let dd_sst = self.med("dd largest SST|MB/s");
        let dd_file = self.med(&format!("dd {} MiB file|MB/s", self.a.dd_mib));
        let dd_root = self.med("dd root files|MB/s");
        println!(
            "\n## medians of {} runs (MB = 10^6 bytes): B = {b_mb:.0} MB, {entries:.0} entries; A = {:.0} MB",
            self.a.runs,
            self.med("input|a MB").unwrap_or(f64::NAN)
        );
        let dd_line = |name: &str, m: Option<f64>, key: &str| {
            if let Some(m) = m {
                println!("dd {name}, cold: {m:.0} MB/s ({})", self.all(key, 0));
            }
        };
        dd_line("largest SST", dd_sst, "dd largest SST|MB/s");
        dd_line("every file of the root (1 MiB reads)", dd_root, "dd root files|MB/s");
        if let Some(w) = self.med("dd write|MB/s") {
            println!("dd write (fdatasync): {w:.0} MB/s ({})", self.all("dd write|MB/s", 0));
        }
        dd_line(&format!("{} MiB file", self.a.dd_mib), dd_file, &format!("dd {} MiB file|MB/s", self.a.dd_mib));
        println!("\n| verb | s (median) | runs (s) | rate (median) | peak RSS MiB | target |");
        println!("|---|---|---|---|---|---|");
        let names: Vec<&str> = vec![
            "inspect B",
            "inspect B, warm",
            "verify --quick B",
            "verify --quick B, warm",
            "verify B",
            "dump B > /dev/null",
            "du B --by state",
            "diff A B --summary",
            "compact B",
            "migrate B --shards 3",
            "migrate B --key-groups 256",
        ];
        for name in names {
            let Some(s) = self.med(&format!("{name}|s")) else { continue };
            let rss = self.med(&format!("{name}|rss")).unwrap_or(f64::NAN);
            let rate_key = self.cells.keys().find(|k| k.starts_with(&format!("{name}|rate "))).cloned();
            let (rate, rate_v) = match &rate_key {
                Some(k) => {
                    let v = self.med(k).unwrap_or(f64::NAN);
                    let unit = k.rsplit(' ').next().unwrap_or("");
                    (format!("{v:.1} {unit}"), Some(v))
                }
                None => (String::new(), None),
            };
            let target = match name {
                "inspect B" | "inspect B, warm" | "verify --quick B" | "verify --quick B, warm" => {
                    format!("< 1 s: {}", if s < 1.0 { "met" } else { "missed" })
                }
                "verify B" => {
                    let v = rate_v.unwrap_or(f64::NAN);
                    let of = |d: Option<f64>| v / d.unwrap_or(f64::NAN);
                    let ratios: Vec<String> = [(dd_file, "dd file"), (dd_sst, "dd SST"), (dd_root, "root read")]
                        .iter()
                        .filter(|(d, _)| d.is_some())
                        .map(|(d, what)| format!("{:.2} x {what}", of(*d)))
                        .collect();
                    // The peer is dd of an SST-sized file.
                    format!(">= 0.5 x dd: {}: {}", ratios.join(", "), if of(dd_sst) >= 0.5 { "met" } else { "missed" })
                }
                "dump B > /dev/null" => {
                    format!(">= 1M entries/s: {}", if rate_v.unwrap_or(0.0) >= 1e6 { "met" } else { "missed" })
                }
                _ => String::new(),
            };
            println!("| {name} | {s:.3} | {} | {rate} | {rss:.0} | {target} |", self.all(&format!("{name}|s"), 3));
        }
        for name in ["compact B", "migrate B --shards 3", "migrate B --key-groups 256"] {
            if let (Some(o), Some(d)) = (self.med(&format!("{name}|out MB")), self.med(&format!("{name}|disk peak MB")))
            {
                println!("{name}: output {o:.0} MB, disk used at peak (output + scratch, sampled) {d:.0} MB");
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let a = Args::parse();
    std::fs::create_dir_all(&a.dir)?;
    let statetool = match &a.statetool {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("statetool"),
    };
    anyhow::ensure!(
        statetool.is_file(),
        "{} not found: cargo build --release -p statetool (or give --statetool)",
        statetool.display()
    );
    let built = match &a.input {
        Some(root) => format!("input={}", root.display()),
        None => format!("keys={} value_bytes={}", a.keys, a.value_bytes),
    };
    println!(
        "machine nproc={} load={} statetool={} {built} runs={}",
        engine::available_cores(),
        load_avg(),
        statetool.display(),
        a.runs
    );
    let (root, ida, idb, entries) = match &a.input {
        Some(root) => {
            let ids = checkpoint_ids(root)?;
            let [.., ida, idb] = ids[..] else {
                anyhow::bail!("{} holds {} checkpoints; A and B need two", root.display(), ids.len())
            };
            (root.clone(), ida, idb, None)
        }
        None => {
            let (root, ida, idb) = build(&a)?;
            (root, ida, idb, Some(a.keys))
        }
    };
    if a.build_only {
        return Ok(());
    }
    let mut b = Bench { a, statetool, cells: BTreeMap::new() };
    b.run_all(&root, ida, idb, entries)?;
    b.table();
    Ok(())
}
