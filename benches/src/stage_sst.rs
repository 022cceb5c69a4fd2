//! Memory of staging one large SST into `shared/` (issue 8, "bounded memory"): writes a
//! file of `--mib` MiB named like an SST into a fake RocksDB checkpoint directory, stages
//! it with the incremental checkpoint's `SharedFiles::stage`, and prints the time. Run it
//! under `/usr/bin/time -f %M` for the peak RSS: staging streams the file (hashed while
//! copied), so the peak stays near the process's baseline whatever the file's size.
use std::io::Write;

use clap::Parser;
use engine::internals::SharedFiles;
use formats::fs::StdFs;
use formats::id::CheckpointId;

#[derive(Parser)]
struct Args {
    /// Size of the SST in MiB.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Where to write (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let chk = tmp.path().join("chk");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&chk)?;
    std::fs::create_dir_all(&root)?;
    // Written in 1 MiB pieces, so making the file costs no memory either.
    let mut f = std::fs::File::create(chk.join("000042.sst"))?;
    let mut piece = vec![0u8; 1 << 20];
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..a.mib {
        rng.fill(&mut piece);
        f.write_all(&piece)?;
    }
    f.sync_all()?;
    drop(f);
    let started = std::time::Instant::now();
    let staged = SharedFiles::default().stage(&mut StdFs, &root, CheckpointId(1), 0, &chk, 1)?;
    println!("stage-sst mib={} copied_bytes={} seconds={:.2}", a.mib, staged.copied, started.elapsed().as_secs_f64());
    Ok(())
}
