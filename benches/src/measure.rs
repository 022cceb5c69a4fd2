//! What the benches that time disk work share: the page cache dropped, apparent sizes,
//! the load beside a run, medians. Included by path (`mod measure;`) by each bin.
use std::path::Path;

/// The 1, 5 and 15 minute load averages, `a/b/c`.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join("/"))
        .unwrap_or_default()
}

/// Bytes as MB (10^6).
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Bytes of every file under `p` (apparent sizes, like `du -sb`).
pub fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Syncs and drops the page cache (needs root) when `enabled`, so the next run reads
/// the disk; says so when it cannot.
pub fn drop_caches(enabled: bool) {
    if !enabled {
        return;
    }
    let _ = std::process::Command::new("sync").status();
    if std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_err() {
        eprintln!("note: cannot drop the page cache (not root?); runs may read cached files");
    }
}

/// Median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}
