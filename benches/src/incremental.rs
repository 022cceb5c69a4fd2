//! Incremental RocksDB checkpoints: how many bytes each checkpoint copies when a fixed
//! fraction of the keys is updated between checkpoints, against the bytes that changed
//! and the whole state, over consecutive checkpoints. It drives the engine's own pieces:
//! the write-back cache over a RocksDB instance configured like a shard's, the native
//! checkpoint (flush + hard links), and the coordinator's staging into `shared/`.
//!
//!     cargo run --release -p sluice-benches --bin incremental-checkpoints -- --keys 1000000
//!
//! Prints a table, one row per checkpoint, then the averages. `changed` is the raw
//! bytes (state key + value) of the entries updated since the previous checkpoint;
//! `state` the SST bytes the checkpoint refers to; `full` the size of a full snapshot
//! (FORMAT.md §11) of the same state, measured at the first and the last checkpoint.
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use engine::internals::SharedFiles;
use engine::internals::{Backend, CachedBackend, RocksBackend, StateId};
use engine::RocksConfig;
use formats::keygroup::{key_group_of, KeyGroupRange};
use formats::manifest::CheckpointId;
use formats::value::{StateDescriptor, StateKind, ValueEncoding};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Fraction of the keys updated (uniformly at random) between checkpoints.
    #[arg(long, default_value_t = 0.01)]
    update_fraction: f64,
    #[arg(long, default_value_t = 20)]
    checkpoints: u64,
    /// Compaction shape; defaults are the engine's (`RocksConfig`).
    #[arg(long)]
    l0_trigger: Option<i32>,
    #[arg(long)]
    level_base_mb: Option<u64>,
    #[arg(long)]
    target_file_mb: Option<u64>,
    /// Where the instance and checkpoints go (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const KEY_GROUPS: u32 = 128;

fn state_key(k: u64, out: &mut Vec<u8>) {
    out.clear();
    let key = k.to_be_bytes();
    formats::statekey::encode_prefix(out, key_group_of(&key, KEY_GROUPS), &key, &[]);
}

fn mb(b: u64) -> String {
    format!("{:.2}", b as f64 / 1e6)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir()?;
    let base = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut cfg = RocksConfig::default();
    if let Some(t) = a.l0_trigger {
        cfg.l0_compaction_trigger = t;
    }
    if let Some(m) = a.level_base_mb {
        cfg.level_base_bytes = m << 20;
    }
    if let Some(m) = a.target_file_mb {
        cfg.target_file_bytes = m << 20;
    }
    let desc = vec![StateDescriptor {
        name: "count".into(),
        kind: StateKind::Value,
        value: ValueEncoding::I64,
        user_key: None,
        ttl: None,
    }];
    let rocks = RocksBackend::open(&base.join("db"), desc, &cfg, Arc::new(engine::SystemClock))?;
    let instance_dir = base.join("db");
    let mut b = CachedBackend::new(rocks, cfg.cache_entries_max);
    let root = base.join("ck");
    std::fs::create_dir_all(&root)?;
    let mut shared = SharedFiles::default();
    let mut fs = formats::fs::StdFs;
    let mut key = Vec::new();
    let mut val = Vec::new();
    eprintln!(
        "keys {}  updated per checkpoint {:.2}%  l0_trigger {}  level_base {} MiB  target_file {} MiB",
        a.keys,
        a.update_fraction * 100.0,
        cfg.l0_compaction_trigger,
        cfg.level_base_bytes >> 20,
        cfg.target_file_bytes >> 20
    );
    let started = Instant::now();
    for k in 0..a.keys {
        state_key(k, &mut key);
        b.put(StateId(0), &key, &1i64.to_le_bytes())?;
    }
    eprintln!("loaded in {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "{:>4} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9} {:>10} {:>8} {:>8} {:>9}",
        "chk",
        "updated",
        "changed_MB",
        "copied_MB",
        "reused_MB",
        "state_MB",
        "copied_%",
        "full_MB",
        "sync_ms",
        "async_ms",
        "update_ms"
    );
    // Seeded, so every run updates the same keys in the same order.
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let per = ((a.keys as f64) * a.update_fraction).round() as u64;
    let (mut sum_copied, mut sum_state, mut sum_changed) = (0u64, 0u64, 0u64);
    for n in 0..=a.checkpoints {
        let mut changed = 0u64;
        let t = Instant::now();
        if n > 0 {
            for _ in 0..per {
                let k = rng.u64(..a.keys);
                state_key(k, &mut key);
                let c = if b.get(StateId(0), &key, &mut val)? {
                    i64::from_le_bytes(val.get(..8).and_then(|s| s.try_into().ok()).unwrap_or_default())
                } else {
                    0
                };
                b.put(StateId(0), &key, &(c + 1).to_le_bytes())?;
                changed += (key.len() + 8) as u64;
            }
        }
        let update = t.elapsed();
        let id = CheckpointId(n + 1);
        let local = base.join(format!("chk-{}", id.0));
        let t = Instant::now();
        let instance = b.native_checkpoint(&local)?.ok_or_else(|| anyhow::anyhow!("no native checkpoint"))?;
        let sync = t.elapsed();
        let t = Instant::now();
        let staged = shared.stage(&mut fs, &root, id, 0, &local, instance)?;
        let asyn = t.elapsed();
        std::fs::remove_dir_all(&local)?;
        let state: u64 = staged.files.iter().map(|f| f.size).sum();
        let full = if n == 0 || n == a.checkpoints {
            let full = engine::internals::collect(&mut b, KeyGroupRange { start: 0, end: KEY_GROUPS as u16 })?;
            mb(full.encode()?.len() as u64)
        } else {
            "-".into()
        };
        println!(
            "{:>4} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9.1} {:>10} {:>8} {:>8} {:>9}",
            id.0,
            if n == 0 { a.keys } else { per },
            mb(if n == 0 { a.keys * (key.len() as u64 + 8) } else { changed }),
            mb(staged.copied),
            mb(staged.reused),
            mb(state),
            100.0 * staged.copied as f64 / state.max(1) as f64,
            full,
            sync.as_millis(),
            asyn.as_millis(),
            update.as_millis()
        );
        if n > 0 {
            sum_copied += staged.copied;
            sum_state += state;
            sum_changed += changed;
        }
    }
    let k = a.checkpoints.max(1);
    println!(
        "average over checkpoints 2..{}: copied {} MB of {} MB state ({:.1}%), changed {} MB; instance dir {}",
        a.checkpoints + 1,
        mb(sum_copied / k),
        mb(sum_state / k),
        100.0 * sum_copied as f64 / sum_state.max(1) as f64,
        mb(sum_changed / k),
        dir_size(&instance_dir) / 1_000_000
    );
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p).map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}
