//! `[aggregate.ttl]` in a TOML job: the TTL and its cleanup strategies resolve with
//! Flink's names and `TtlCleanup::default()` for what is not written, bad values are
//! job-file errors naming the line and field, and a job with a TTL removes expired
//! entries and reports how many per state.
use std::path::Path;

use engine::pipeline::{self, JobPlan};
use engine::{BackendKind, Error, RunConfig, TtlCleanup};
use formats::ttl::TtlUpdate;

fn job(ttl: &str) -> String {
    format!(
        "[job]\nname = \"t\"\n\n[source]\nkind = \"generator\"\ncount = 3000\nkeys = 3000\nrate_per_s = 3000\n\n\
         [key]\nfield = \"key\"\n\n[aggregate]\nkind = \"count\"\n\n[aggregate.ttl]\n{ttl}\n\n[sink]\nkind = \"file\"\npath = \"/dev/null\"\n"
    )
}

fn parse(text: &str) -> Result<JobPlan, Error> {
    pipeline::parse(Path::new("job.toml"), text)
}

#[test]
fn ttl_and_cleanup_resolve_with_defaults() {
    // Pins: unwritten cleanup keys take TtlCleanup::default(); `false` turns a strategy
    // off; a table sets the fields it names; the update type defaults to on-create-and-write.
    let p = parse(&job("ttl_ms = 500")).expect("valid");
    let t = p.ttl.expect("a ttl");
    assert_eq!((t.config.ttl_ms, t.config.update), (500, TtlUpdate::OnCreateAndWrite));
    assert_eq!(t.cleanup, TtlCleanup::default());

    let text = "ttl_ms = 9\nupdate = \"on_read_and_write\"\ncleanup_full_snapshot = false\n\
                cleanup_incrementally = { cleanup_size = 50, run_cleanup_for_every_record = false }\n\
                cleanup_in_rocksdb_compact_filter = false";
    let t = parse(&job(text)).expect("valid").ttl.expect("a ttl");
    assert_eq!(t.config.update, TtlUpdate::OnReadAndWrite);
    assert_eq!(t.cleanup, TtlCleanup::none().cleanup_incrementally(50, false));

    let text = "ttl_ms = 9\ncleanup_incrementally = false\n\
                cleanup_in_rocksdb_compact_filter = { periodic_compaction_time_ms = 0 }";
    let t = parse(&job(text)).expect("valid").ttl.expect("a ttl");
    let want = TtlCleanup::none()
        .cleanup_full_snapshot()
        .cleanup_in_rocksdb_compact_filter(1000, Some(std::time::Duration::ZERO));
    assert_eq!(t.cleanup, want);
    assert!(parse(&job("ttl_ms = 9").replace("[aggregate.ttl]\nttl_ms = 9\n", "")).expect("valid").ttl.is_none());
}

#[test]
fn bad_ttl_settings_name_line_and_field() {
    // Pins: a zero TTL, a cleanup size out of 1..=CLEANUP_SIZE_MAX, a zero query interval
    // and an unknown key are refused, naming the file, line and field.
    for (ttl, words) in [
        ("ttl_ms = 0", "job.toml:17:10: field `aggregate.ttl.ttl_ms`: must be at least 1"),
        ("ttl_ms = 5\ncleanup_incrementally = { cleanup_size = 0 }", "field `aggregate.ttl.cleanup_incrementally`"),
        ("ttl_ms = 5\ncleanup_incrementally = { cleanup_size = 1001 }", "cleanup_size must be 1..=1000, not 1001"),
        (
            "ttl_ms = 5\ncleanup_in_rocksdb_compact_filter = { query_time_after_num_entries = 0 }",
            "query_time_after_num_entries must be at least 1",
        ),
        ("ttl_ms = 5\ncleanup_sometimes = true", "unknown field `cleanup_sometimes`"),
    ] {
        let e = parse(&job(ttl)).expect_err(ttl).to_string();
        assert!(e.contains(words), "{ttl}: expected {words:?} in {e}");
    }
}

#[test]
fn a_ttl_job_reports_expired_entries_removed() {
    // Pins: a count job with a 200 ms TTL over keys that each come once (1 s of input)
    // removes the expired counts and says so per state, on both backends; without a TTL
    // nothing is reported.
    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = RunConfig::new(1, backend, dir.path().join("data"));
        cfg.pin = false;
        let out = dir.path().join("out.jsonl");
        let text = job("ttl_ms = 200\ncleanup_in_rocksdb_compact_filter = false");
        let plan = parse(&text.replace("/dev/null", out.to_str().expect("utf-8"))).expect("valid");
        let report = pipeline::run(&plan, &cfg).expect("runs");
        let expired = &report.expired_per_state;
        assert_eq!(expired.len(), 1, "{backend}: {expired:?}");
        let (state, removed) = &expired[0];
        assert_eq!(state, "count");
        match backend {
            // Incremental cleanup removes all but the last 200 ms of keys (about 600).
            BackendKind::Heap => assert!(*removed >= 1500, "{backend}: {removed} removed"),
            // Without the filter, RocksDB removes only what a read meets: no key repeats.
            BackendKind::Rocksdb => assert_eq!(*removed, 0, "{backend}"),
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = RunConfig::new(1, BackendKind::Heap, dir.path().join("data"));
    cfg.pin = false;
    let text = job("ttl_ms = 9").replace("[aggregate.ttl]\nttl_ms = 9\n", "");
    let plan = parse(&text.replace("/dev/null", dir.path().join("out.jsonl").to_str().expect("utf-8"))).expect("valid");
    assert!(pipeline::run(&plan, &cfg).expect("runs").expired_per_state.is_empty());
}
