//! A dedupe job with a 1-second TTL over unique keys arriving at a steady rate, on the
//! heap and on RocksDB: the entries the state stores (sampled through the job's control,
//! as `sluice status` shows them) stay within a bound proportional to rate × TTL for the
//! whole run, the heap's RSS (from /proc) stops growing once the first keys expire, and
//! the final checkpoint (taken when the input ends) holds no entry that had expired when
//! it was triggered, on either backend (RocksDB compacts its TTL states through their
//! filter before it).
//!
//! `cargo test` runs 2M keys at 200K/s (10 s per backend). The full size runs with
//! `SLUICE_TTL_SOAK_KEYS=20000000` (`make ttl-soak`); figures in docs/PERFORMANCE.md.
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{BackendKind, CheckpointConfig, Context, DiscardSink, Error, Generator, Job, JobControl};
use engine::{KeyedProcessFunction, RunConfig, ValueState};
use formats::ttl::{TtlConfig, TtlUpdate};

#[path = "common/statetool.rs"]
mod statetool;

const TTL_MS: u64 = 1_000;
const RATE_PER_S: u64 = 200_000;
const KEYS_DEFAULT: u64 = 2_000_000;
/// Live entries are rate × TTL; incremental cleanup (5 entries checked per record, one
/// new entry per record) keeps at most 5/4 of that, and batching and sampling add slack.
const HEAP_ENTRIES_FACTOR: f64 = 2.0;
/// RocksDB's estimate also counts what memtables and files younger than the periodic
/// compaction age (the TTL, in whole seconds, checked at flushes) hold: about
/// rate × (TTL + checkpoint interval + 1 s) more than the live entries.
const ROCKS_ENTRIES_FACTOR: f64 = 5.0;

struct Dedupe {
    seen: ValueState<bool>,
}

impl KeyedProcessFunction for Dedupe {
    type Key = u64;
    type In = u64;
    type Out = u64;

    fn process(&mut self, id: &u64, _: u64, ctx: &mut Context<'_>, out: &mut Vec<u64>) -> Result<(), Error> {
        if self.seen.get(ctx)?.is_none() {
            self.seen.set(ctx, true)?;
            out.push(*id);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    records_in: u64,
    entries: u64,
    rss_bytes: u64,
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

struct Run {
    samples: Vec<Sample>,
    records_out: u64,
    expired_removed: u64,
    /// Entries of the final checkpoint, and how many of them had expired when it was
    /// triggered.
    checkpoint_entries: u64,
    checkpoint_expired: u64,
    /// Whether that checkpoint is the final one.
    final_checkpoint: bool,
    elapsed: Duration,
}

fn run(dir: &Path, backend: BackendKind, keys: u64) -> Run {
    let mut cfg = RunConfig::new(2, backend, dir.join("data"));
    cfg.pin = false;
    cfg.checkpoint = Some(CheckpointConfig::new(dir.join("ck"), Duration::from_millis(1_000)));
    let control = JobControl::new("dedupe", &cfg, None);
    cfg.control = Some(control.clone());
    let ttl = Some(TtlConfig { ttl_ms: TTL_MS, update: TtlUpdate::OnCreateAndWrite });

    let (done, samples) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let sampler = {
        let (done, samples, control) = (done.clone(), samples.clone(), control.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !done.load(Ordering::Relaxed) {
                let s = control.snapshot();
                let sample = Sample {
                    at_s: started.elapsed().as_secs_f64(),
                    records_in: s.records_in,
                    entries: s.state_entries,
                    rss_bytes: rss_bytes(),
                };
                samples.lock().expect("samples").push(sample);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let report = Job::new("dedupe")
        .source(Generator::new(Some(keys), |s| s).rate_per_s(Some(RATE_PER_S)))
        .key_by(|s: &u64| *s)
        .process(move |reg| Ok(Dedupe { seen: reg.value("seen", ttl)? }))
        .sink(DiscardSink)
        .run(&cfg)
        .expect("job runs");
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");

    let last = control
        .snapshot()
        .history
        .into_iter()
        .filter(|c| c.completed && !c.savepoint)
        .max_by_key(|c| c.id)
        .expect("a checkpoint completed");
    let chk = dir.join("ck").join("dedupe").join(format!("chk-{}", last.id));
    let dump = statetool::statetool(&["dump", chk.to_str().expect("utf-8")]);
    let (mut checkpoint_entries, mut checkpoint_expired) = (0, 0);
    for line in dump.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        checkpoint_entries += 1;
        if v["expires_ms"].as_u64().expect("expires_ms") <= last.trigger_ms {
            checkpoint_expired += 1;
        }
    }
    let samples = samples.lock().expect("samples").clone();
    Run {
        samples,
        records_out: report.records_out,
        expired_removed: report.expired_per_state.iter().map(|(_, n)| n).sum(),
        checkpoint_entries,
        checkpoint_expired,
        final_checkpoint: last.is_final,
        elapsed: report.elapsed,
    }
}

fn keys() -> u64 {
    std::env::var("SLUICE_TTL_SOAK_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(KEYS_DEFAULT)
}

#[test]
fn state_follows_live_keys_not_every_key_seen() {
    // Pins: with TTL cleanup, a dedupe job's stored entries stay within a bound
    // proportional to rate × TTL however many keys it has seen, the heap's RSS stops
    // growing, and the final checkpoint holds no expired entry (both backends).
    let keys = keys();
    let live = RATE_PER_S * TTL_MS / 1_000;
    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        let dir = tempfile::tempdir().expect("tmp");
        let r = run(dir.path(), backend, keys);
        assert_eq!(r.records_out, keys, "{backend}: every key is new once");
        // After the first keys expire (2 TTLs in, at the steady rate).
        let steady: Vec<&Sample> = r.samples.iter().filter(|s| s.records_in >= 2 * live).collect();
        assert!(steady.len() >= 5, "{backend}: too few samples in the steady state: {}", r.samples.len());
        let max_entries = steady.iter().map(|s| s.entries).max().unwrap_or(0);
        let rss = |s: &&Sample| s.rss_bytes;
        let (rss_first, rss_max) = (steady.first().map(rss).unwrap_or(0), steady.iter().map(rss).max().unwrap_or(0));
        let last = steady.last().copied().copied().expect("a sample");
        eprintln!(
            "{backend}: {keys} keys in {:.1} s ({:.0}/s), live {live}, stored max {max_entries} \
             ({:.2}x live), rss {} MiB at steady start, max {} MiB, last {} MiB at {:.1} s; \
             expired removed {}; final checkpoint {} entries, {} expired",
            r.elapsed.as_secs_f64(),
            keys as f64 / r.elapsed.as_secs_f64(),
            max_entries as f64 / live as f64,
            rss_first >> 20,
            rss_max >> 20,
            last.rss_bytes >> 20,
            last.at_s,
            r.expired_removed,
            r.checkpoint_entries,
            r.checkpoint_expired,
        );
        assert!(r.expired_removed > 0, "{backend}: the report counts expired entries removed");
        match backend {
            BackendKind::Heap => {
                let bound = (HEAP_ENTRIES_FACTOR * live as f64) as u64;
                assert!(max_entries <= bound, "{backend}: {max_entries} entries stored, bound {bound}");
                // Without cleanup the second half alone would add keys/2 entries (about
                // 150 bytes each); with it the RSS stays where the steady state began.
                let growth = rss_max.saturating_sub(rss_first);
                assert!(growth < 64 << 20, "{backend}: RSS grew {} MiB in the steady state", growth >> 20);
            }
            BackendKind::Rocksdb => {
                let bound = (ROCKS_ENTRIES_FACTOR * live as f64) as u64;
                assert!(max_entries <= bound, "{backend}: {max_entries} entries stored, bound {bound}");
                assert!(
                    r.checkpoint_entries <= bound,
                    "{backend}: the final checkpoint holds {} entries, bound {bound}",
                    r.checkpoint_entries
                );
            }
        }
        assert!(r.final_checkpoint, "{backend}: the last checkpoint is the final one (the input's end)");
        assert_eq!(r.checkpoint_expired, 0, "{backend}: the final checkpoint holds expired entries");
    }
}
