//! Human tables for the CLI: plain text columns, no colour. `--json` prints the api
//! types instead, so these take the same types.
use crate::api::{CheckpointingStats, JobDetail, JobOverview};
use crate::discovery::Endpoint;

/// Columns padded to their widest cell; `right` marks the right-aligned (numeric) ones.
fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A byte count in B, KiB, MiB, GiB or TiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
}

/// A duration in ms, s, or hours and minutes.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `sluice list`: one line per running job; `None` for an endpoint that did not answer.
pub fn list(rows: &[(Endpoint, Option<JobOverview>)]) -> String {
    if rows.is_empty() {
        return "no sluice job is running on this machine\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(e, job)| {
            let (jid, name, state, uptime) = match job {
                Some(j) => (j.jid.clone(), j.name.clone(), j.state.as_str().to_owned(), duration_ms(j.duration)),
                None => (e.jid.clone(), e.job.clone(), "UNREACHABLE".to_owned(), "-".to_owned()),
            };
            vec![e.pid.to_string(), jid, name, e.address.clone(), state, uptime]
        })
        .collect();
    table(&["PID", "JID", "JOB", "ADDRESS", "STATE", "UPTIME"], &[true, false, false, false, false, true], &cells)
}

/// `sluice status`: the job, its shards, its last checkpoints and its savepoints.
pub fn status(job: &JobDetail, checkpoints: &CheckpointingStats) -> String {
    let mut out = format!(
        "job {} ({})  {}  up {}\nbackend {}, {} shards, {} key groups\nrecords in {}, out {}, {:.0} records/s\n",
        job.name,
        job.jid,
        job.state.as_str(),
        duration_ms(job.duration),
        job.backend,
        job.parallelism,
        job.max_key_groups,
        job.records_in,
        job.records_out,
        job.records_per_second,
    );
    out.push_str("\nshards\n");
    let shards: Vec<Vec<String>> = job
        .shards
        .iter()
        .map(|s| {
            vec![
                s.shard.to_string(),
                format!("{}..{}", s.key_groups.start, s.key_groups.end),
                s.records_in.to_string(),
                s.records_processed.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["SHARD", "KEY GROUPS", "RECORDS IN", "PROCESSED"], &[true, false, true, true], &shards));
    if !job.expired.is_empty() {
        out.push_str(&format!("\nTTL cleanup ({} entries stored)\n", job.state_entries));
        let rows: Vec<Vec<String>> = job.expired.iter().map(|e| vec![e.state.clone(), e.removed.to_string()]).collect();
        out.push_str(&table(&["STATE", "EXPIRED REMOVED"], &[false, true], &rows));
    }
    let c = &checkpoints.counts;
    out.push_str(&format!(
        "\ncheckpoints: {} completed, {} failed, {} in progress\n",
        c.completed, c.failed, c.in_progress
    ));
    if let Some(p) = &checkpoints.sync_pause {
        out.push_str(&format!(
            "synchronous pause per shard: p50 {}, max {} ({} samples)\n",
            duration_ms(p.p50),
            duration_ms(p.max),
            p.samples
        ));
    }
    if !checkpoints.history.is_empty() {
        let rows: Vec<Vec<String>> = checkpoints
            .history
            .iter()
            .map(|h| {
                vec![
                    h.id.to_string(),
                    format!(
                        "{}{}",
                        h.status.as_str(),
                        match (h.is_savepoint, h.is_final) {
                            (true, _) => " (savepoint)",
                            (false, true) => " (final)",
                            (false, false) => "",
                        }
                    ),
                    duration_ms(h.end_to_end_duration),
                    duration_ms(h.sync_duration),
                    bytes(h.checkpointed_size),
                    bytes(h.reused_size),
                    bytes(h.state_size),
                ]
            })
            .collect();
        let headers = ["ID", "STATUS", "DURATION", "PAUSE", "COPIED", "REUSED", "STATE SIZE"];
        out.push_str(&table(&headers, &[true, false, true, true, true, true, true], &rows));
    }
    out.push_str(&format!("\nsavepoints: {}\n", job.savepoints.len()));
    if !job.savepoints.is_empty() {
        let rows: Vec<Vec<String>> = job
            .savepoints
            .iter()
            .map(|s| {
                vec![
                    s.location.clone(),
                    s.form.as_str().to_owned(),
                    s.checkpoint_id.to_string(),
                    bytes(s.bytes),
                    duration_ms(s.duration_ms),
                ]
            })
            .collect();
        let headers = ["LOCATION", "FORM", "CHECKPOINT", "BYTES", "DURATION"];
        out.push_str(&table(&headers, &[false, false, true, true, true], &rows));
    }
    out
}
