//! The CLI's human tables.
mod common;

use control::discovery::Endpoint;
use control::render;

#[test]
fn byte_sizes_and_durations_are_human_readable() {
    // Pins the units: B under 1 KiB, then KiB/MiB/GiB with one decimal; ms, s, m s, h m.
    assert_eq!(render::bytes(0), "0 B");
    assert_eq!(render::bytes(1023), "1023 B");
    assert_eq!(render::bytes(1536), "1.5 KiB");
    assert_eq!(render::bytes(5 * 1024 * 1024), "5.0 MiB");
    assert_eq!(render::bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    assert_eq!(render::duration_ms(250), "250 ms");
    assert_eq!(render::duration_ms(1500), "1.5 s");
    assert_eq!(render::duration_ms(125_000), "2m 5s");
    assert_eq!(render::duration_ms(3_723_000), "1h 2m");
}

#[test]
fn status_shows_shards_checkpoints_and_savepoints() {
    // Pins what `sluice status` shows: the job line, a shard row with its key groups and
    // counts, a checkpoint row with copied, reused and state sizes, a savepoint row.
    let mut job = common::detail();
    job.savepoints.push(control::api::SavepointInfo {
        request_id: "sp-1".into(),
        location: "/sp/sp-7".into(),
        form: control::api::SavepointForm::Native,
        checkpoint_id: 7,
        bytes: 2048,
        duration_ms: 900,
        completed_ms: 1_700_000_002_000,
    });
    let text = render::status(&job, &common::stats());
    assert!(text.starts_with("job orders (a1b2c3d4e5f60718293a4b5c6d7e8f90)  RUNNING  up 1h 2m\n"), "{text}");
    assert!(text.contains("records in 2001, out 1980, 4830000 records/s"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"SHARD  KEY GROUPS  RECORDS IN  PROCESSED"), "{text}");
    assert!(lines.contains(&"    1  64..128           1001        990"), "{text}");
    assert!(lines.contains(&" 7  COMPLETED    250 ms  12 ms  5.0 MiB  3.0 GiB     3.0 GiB"), "{text}");
    assert!(lines.contains(&"/sp/sp-7  NATIVE           7  2.0 KiB    900 ms"), "{text}");
}

#[test]
fn status_marks_the_final_checkpoint() {
    // Pins that the history row of the final checkpoint (taken at the input's end) says
    // so, and that the others do not.
    let mut stats = common::stats();
    if let Some(first) = stats.history.first_mut() {
        first.is_final = true;
    }
    let text = render::status(&common::detail(), &stats);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with(" 7  COMPLETED (final)")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with(" 6  COMPLETED  ")), "{text}");
}

#[test]
fn status_shows_the_synchronous_pause_per_shard() {
    // Pins the pause line of `sluice status`: p50 and max over every shard's pause in the
    // completed checkpoints shown (shards paused 12, 10 and 12, 9 ms: p50 10, max 12).
    let text = render::status(&common::detail(), &common::stats());
    assert!(text.lines().any(|l| l == "synchronous pause per shard: p50 10 ms, max 12 ms (4 samples)"), "{text}");
    let none = control::api::CheckpointingStats { sync_pause: None, ..common::stats() };
    assert!(!render::status(&common::detail(), &none).contains("synchronous pause"));
}

#[test]
fn status_shows_expired_entries_removed_per_state() {
    // Pins the TTL cleanup table of `sluice status`: one row per state with a TTL and the
    // expired entries removed from it; no table for a job without TTL state.
    let job = common::detail();
    let text = render::status(&job, &common::stats());
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"TTL cleanup (4321 entries stored)"), "{text}");
    assert!(lines.contains(&"STATE  EXPIRED REMOVED"), "{text}");
    assert!(lines.contains(&"seen           1234567"), "{text}");
    let none = control::api::JobDetail { expired: vec![], ..job };
    assert!(!render::status(&none, &common::stats()).contains("TTL cleanup"));
}

#[test]
fn list_shows_each_job_and_an_unreachable_one() {
    // Pins `sluice list`: pid, jid, job, address, state, uptime; a job whose endpoint did
    // not answer is listed as UNREACHABLE rather than dropped.
    let e =
        |pid, port| Endpoint { pid, jid: "j".into(), job: "old".into(), ..Endpoint::at(&format!("127.0.0.1:{port}")) };
    let text = render::list(&[(e(42, 8081), Some(common::overview())), (e(7, 8082), None)]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "PID  JID                               JOB     ADDRESS         STATE        UPTIME");
    assert_eq!(lines[1], " 42  a1b2c3d4e5f60718293a4b5c6d7e8f90  orders  127.0.0.1:8081  RUNNING       1h 2m");
    assert_eq!(lines[2], "  7  j                                 old     127.0.0.1:8082  UNREACHABLE       -");
    assert_eq!(render::list(&[]), "no sluice job is running on this machine\n");
}
