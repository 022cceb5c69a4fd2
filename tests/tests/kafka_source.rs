//! The Kafka source against the test broker: a keyed job over a topic's committed
//! records (aborted transactions interleaved) sums exactly what was committed; its
//! checkpoint holds each partition's offset, so a restore onto another shard count and
//! backend reads only what came after; a missing topic or an unreachable broker stops
//! the job before it starts, naming them.
#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::{BackendKind, CheckpointConfig, CollectSink, Job, JobError, KafkaSource, LineParser, Restore, RunConfig};

const PARTITIONS: i32 = 3;
/// Records per committed transaction; each is followed by an aborted one of `ABORTED`
/// records whose values would break every sum if they were read.
const PER_TRANSACTION: u64 = 1000;
const ABORTED: u64 = 100;
const POISON: u64 = 1 << 40;

/// Writes `seq` for every `seq` in `range` (partition `seq % PARTITIONS`) in committed
/// transactions, each followed by an aborted one. The aborted ones come from a producer
/// of their own: the test broker hides every later record of a producer from a
/// `read_committed` consumer that starts after one of its aborted transactions
/// (docs/TESTING.md, "Servers the tests start"), which real Kafka does not.
fn produce(bootstrap: &str, topic: &str, range: Range<u64>) {
    let p = kafka::producer(bootstrap, &format!("test-{topic}"));
    let aborting = kafka::producer(bootstrap, &format!("test-{topic}-aborted"));
    let mut at = range.start;
    while at < range.end {
        let end = (at + PER_TRANSACTION).min(range.end);
        let texts: Vec<(i32, String)> = (at..end).map(|s| ((s % PARTITIONS as u64) as i32, s.to_string())).collect();
        kafka::transaction(&p, topic, texts.iter().map(|(p, t)| (*p, t.as_str())), true).expect("commit");
        let poison: Vec<(i32, String)> =
            (0..ABORTED).map(|i| ((i % PARTITIONS as u64) as i32, (POISON + i).to_string())).collect();
        kafka::transaction(&aborting, topic, poison.iter().map(|(p, t)| (*p, t.as_str())), false).expect("abort");
        at = end;
    }
}

fn parse() -> LineParser<u64> {
    Arc::new(|line, out| {
        let s = std::str::from_utf8(line).map_err(|e| e.to_string())?;
        out.push(s.parse().map_err(|e| format!("not a number: {e}"))?);
        Ok(())
    })
}

type Run = Result<(engine::RunReport, BTreeMap<u64, u64>), JobError>;

/// Sums `seq` per key `seq % KEYS` over the topic, read to its end, on `shards` shards of
/// `backend`, checkpointing every hour (only the final checkpoint falls inside the run).
fn run(dir: &Path, source: KafkaSource<u64>, shards: u32, backend: BackendKind, restore: Option<Restore>) -> Run {
    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(shards, backend, dir.join(format!("data-{backend}-{shards}")));
    cfg.pin = false;
    cfg.checkpoint = Some(CheckpointConfig::new(dir.join("ck"), Duration::from_secs(3600)));
    cfg.restore = restore.map(Arc::new);
    let report = Job::new("kafka")
        .source(source)
        .key_by(|s: &u64| s % common::KEYS)
        .process(common::Sum::never_failing)
        .sink(sink)
        .run(&cfg)?;
    let sums = out.lock().expect("lock").iter().copied().collect();
    Ok((report, sums))
}

#[test]
fn committed_records_are_read_once_and_a_restore_resumes_at_the_checkpointed_offsets() {
    // Pins: the source reads every committed record once and no aborted one (exact
    // sums), and the final checkpoint's offsets let a restore onto 3 shards and the other
    // backend read exactly the records produced after it.
    let b = broker::Broker::start();
    let topic = "numbers";
    kafka::create_topic(&b.bootstrap, topic, PARTITIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = || KafkaSource::new(&b.bootstrap, topic, parse()).bounded();

    produce(&b.bootstrap, topic, 0..20_000);
    let (first, sums) = run(dir.path(), source(), 2, BackendKind::Rocksdb, None).expect("first run");
    assert_eq!(first.records_in, 20_000, "every committed record, no aborted one");
    assert_eq!(sums, common::model(20_000), "the first run's sums");

    produce(&b.bootstrap, topic, 20_000..35_000);
    let root = formats::layout::checkpoint_root(&dir.path().join("ck"), "kafka");
    let latest = Restore::latest(&root).expect("root").expect("the final checkpoint");
    let (second, sums) = run(dir.path(), source(), 3, BackendKind::Heap, Some(latest)).expect("restored run");
    assert_eq!(second.records_in, 15_000, "the restore reads only what came after the checkpoint");
    assert_eq!(sums, common::model(35_000), "every record counted exactly once across the restore");
}

#[test]
fn a_missing_topic_or_an_unreachable_broker_stops_the_job_before_it_starts() {
    // Pins: setup errors (never restarted) that name the topic, and the broker's address.
    let b = broker::Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = run(dir.path(), KafkaSource::new(&b.bootstrap, "no-such-topic", parse()), 1, BackendKind::Heap, None);
    match missing {
        Err(JobError::Setup(e)) => assert!(e.to_string().contains("`no-such-topic` does not exist"), "{e}"),
        other => panic!("expected a setup error, got {:?}", other.map(|(r, _)| r.records_in)),
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let nowhere = closed.to_string();
    let unreachable = run(dir.path(), KafkaSource::new(&nowhere, "numbers", parse()), 1, BackendKind::Heap, None);
    match unreachable {
        Err(JobError::Setup(e)) => {
            assert!(e.to_string().contains(&format!("cannot reach the broker at {nowhere}")), "{e}")
        }
        other => panic!("expected a setup error, got {:?}", other.map(|(r, _)| r.records_in)),
    }
}

/// Every key's sum over `range` (the model of a job that reads only those records).
fn sums_of(range: Range<u64>) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for s in range {
        *m.entry(s % common::KEYS).or_default() += s;
    }
    m
}

#[test]
fn offsets_are_committed_to_the_group_and_a_new_job_starts_from_them() {
    // Pins: after the final checkpoint the source commits each partition's checkpointed
    // offset to its consumer group; a new job (no restore) with `start = committed`
    // reads exactly the records produced after them. Planted (no commit, or committed
    // before the checkpoint's offsets): the second job reads everything or misses some.
    let b = broker::Broker::start();
    let topic = "grouped";
    kafka::create_topic(&b.bootstrap, topic, PARTITIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = || KafkaSource::new(&b.bootstrap, topic, parse()).bounded().group("monitoring");
    produce(&b.bootstrap, topic, 0..20_000);
    let (first, _) = run(&dir.path().join("a"), source(), 2, BackendKind::Heap, None).expect("first run");
    assert_eq!(first.records_in, 20_000);
    assert_eq!(
        kafka::committed(&b.bootstrap, "monitoring", topic, PARTITIONS).len(),
        PARTITIONS as usize,
        "every partition committed"
    );

    produce(&b.bootstrap, topic, 20_000..30_000);
    let resumed = source().start_from(engine::StartFrom::Committed);
    let (second, sums) = run(&dir.path().join("b"), resumed, 3, BackendKind::Rocksdb, None).expect("second run");
    assert_eq!(second.records_in, 10_000, "only what came after the committed offsets");
    assert_eq!(sums, sums_of(20_000..30_000));
}

#[test]
fn partitions_added_while_the_job_runs_are_read() {
    // Pins: an unbounded source discovers partitions added to its topic while it runs
    // (every 200 ms here) and reads them from their start, each on the shard p % shards.
    // Planted (no discovery): the records of partitions 2 and 3 are missing.
    let b = broker::Broker::start();
    let topic = "growing";
    kafka::create_topic(&b.bootstrap, topic, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = KafkaSource::new(&b.bootstrap, topic, parse()).discover_partitions(Some(Duration::from_millis(200)));
    let p = kafka::producer(&b.bootstrap, "growing-writer");
    let texts: Vec<(i32, String)> = (0..6_000u64).map(|s| ((s % 2) as i32, s.to_string())).collect();
    kafka::transaction(&p, topic, texts.iter().map(|(p, t)| (*p, t.as_str())), true).expect("commit");

    let sink = CollectSink::default();
    let out = sink.handle();
    let mut cfg = RunConfig::new(2, BackendKind::Heap, dir.path().join("data"));
    cfg.pin = false;
    cfg.checkpoint = Some(CheckpointConfig::new(dir.path().join("ck"), Duration::from_millis(200)));
    let stop = cfg.stop.clone();
    let job = std::thread::spawn(move || {
        Job::new("growing")
            .source(source)
            .key_by(|s: &u64| s % common::KEYS)
            .process(common::Sum::never_failing)
            .sink(sink)
            .run(&cfg)
    });
    std::thread::sleep(Duration::from_millis(1500));
    kafka::add_partitions(&b.bootstrap, topic, 4);
    // A new producer: the first one's metadata does not know the new partitions yet.
    let p = kafka::producer(&b.bootstrap, "growing-writer-2");
    let texts: Vec<(i32, String)> = (6_000..12_000u64).map(|s| ((s % 4) as i32, s.to_string())).collect();
    kafka::transaction(&p, topic, texts.iter().map(|(p, t)| (*p, t.as_str())), true).expect("commit");
    std::thread::sleep(Duration::from_millis(3000));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = job.join().expect("job thread").expect("job");
    let sums: BTreeMap<u64, u64> = out.lock().expect("lock").iter().copied().collect();
    assert_eq!(report.records_in, 12_000, "records of the old and the new partitions");
    assert_eq!(sums, common::model(12_000));
}

#[path = "../../engine/tests/common/cargo_build.rs"]
mod cargo_build;

/// The workspace's `sluice`, built into this test's target directory and profile.
fn sluice_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile directory");
    cargo_build::build_in(profile_dir, "sluice-engine", "sluice", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_job_file_reads_a_topic_of_csv_lines() {
    // Pins the job-file source: `kind = "kafka"` with CSV payloads, bounded, sums per
    // user exactly over the committed records (aborted ones interleaved); a kafka source
    // without a topic is a job-file error naming the field (exit 2).
    let b = broker::Broker::start();
    kafka::create_topic(&b.bootstrap, "orders", PARTITIONS);
    let p = kafka::producer(&b.bootstrap, "orders");
    let aborting = kafka::producer(&b.bootstrap, "orders-aborted");
    let lines: Vec<(i32, String)> = (0..3000u64).map(|s| ((s % 3) as i32, format!("u{},{s}", s % 7))).collect();
    for chunk in lines.chunks(500) {
        kafka::transaction(&p, "orders", chunk.iter().map(|(p, t)| (*p, t.as_str())), true).expect("commit");
        kafka::transaction(&aborting, "orders", [(0, "u0,1000000000")], false).expect("abort");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let job = |extra: &str| {
        format!(
            "[job]\nname = \"orders\"\n[source]\nkind = \"kafka\"\nbootstrap = \"{}\"\n{extra}format = \"csv\"\n\
             columns = [\"user\", \"amount\"]\nbounded = true\n[key]\nfield = \"user\"\n[aggregate]\nkind = \"sum\"\n\
             field = \"amount\"\n[sink]\nkind = \"file\"\npath = \"out.jsonl\"\n",
            b.bootstrap
        )
    };
    let run = |text: String| {
        std::fs::write(dir.path().join("job.toml"), text).expect("job file");
        std::process::Command::new(sluice_bin())
            .args(["run", "job.toml", "--shards", "2", "--no-pin", "--data-dir", "data"])
            .current_dir(dir.path())
            .output()
            .expect("run sluice")
    };
    let out = run(job("topic = \"orders\"\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: BTreeMap<String, u64> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .expect("output")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (v["key"].as_str().expect("key").to_owned(), v["sum"].as_u64().expect("sum"))
        })
        .collect();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for s in 0..3000u64 {
        *want.entry(format!("u{}", s % 7)).or_default() += s;
    }
    assert_eq!(got, want, "sums per user over the committed records");

    let bad = run(job(""));
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("source.topic") && err.contains("required for source kind kafka"), "{err}");
}
