//! The classic pipeline end to end under kill -9: a Kafka topic of sequence-numbered
//! records -> the `sequence` aggregate with `emit = "updates"` (one output per record:
//! key, count so far, largest seq, sum) -> a Kafka topic read back with
//! `read_committed`, or a MariaDB table without a key (so a duplicate stays visible).
//! The real `sluice` binary is killed at random moments (half of the cycles aim at an
//! open checkpoint, where pre-commits and commits happen) and restarted from its latest
//! checkpoint on 1-3 shards and either backend; a last run reads the topic to its end.
//! Every key's counts 1..=n must be in the output exactly once.
//!
//! Cycles: `SLUICE_KILL_CYCLES` (default 6, what CI runs); `make soak` runs 300.
#[path = "common/broker.rs"]
mod broker;
#[path = "../../engine/tests/common/cargo_build.rs"]
mod cargo_build;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "../../engine/tests/common/kill.rs"]
mod kill;
#[path = "common/mariadb.rs"]
mod mariadb;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kill::{published, run_then_kill, CheckpointLog, CycleEnd, LOG_FILTER};

const KEYS: u64 = 500;
const PARTITIONS: i32 = 3;

fn sluice_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile directory");
    cargo_build::build_in(profile_dir, "sluice-engine", "sluice", env!("CARGO_MANIFEST_DIR"))
}

/// Writes `key,seq` lines for seq in 0..count (key = seq % KEYS, partition = key %
/// PARTITIONS, so each key's records stay in order) in committed transactions.
fn produce(bootstrap: &str, count: u64) {
    let p = kafka::producer(bootstrap, "seq-writer");
    let lines: Vec<(i32, String)> =
        (0..count).map(|s| (((s % KEYS) % PARTITIONS as u64) as i32, format!("{},{s}", s % KEYS))).collect();
    for chunk in lines.chunks(5000) {
        kafka::transaction(&p, "seq", chunk.iter().map(|(p, t)| (*p, t.as_str())), true).expect("commit");
    }
}

fn job(bootstrap: &str, sink: &str) -> String {
    format!(
        "[job]\nname = \"kseq\"\n\n[source]\nkind = \"kafka\"\nbootstrap = \"{bootstrap}\"\ntopic = \"seq\"\nbounded = true\n\
         format = \"csv\"\ncolumns = [\"key\", \"seq\"]\n\n[key]\nfield = \"key\"\n\n[aggregate]\nkind = \"sequence\"\n\
         field = \"seq\"\n\n[output]\nemit = \"updates\"\n\n{sink}\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 150\n"
    )
}

/// What a kill loop saw.
struct Loop {
    kills: u64,
    during: u64,
}

/// Kill cycles of the job in `d`, then a run to the end.
fn kill_loop(d: &Path, cycles: u64, seed: u64) -> Loop {
    let mut rng = fastrand::Rng::with_seed(seed);
    let root = d.join("ck").join("kseq");
    let log_path = d.join("sluice.log");
    let run = |rng: &mut fastrand::Rng| {
        let mut c = Command::new(sluice_bin());
        let (shards, backend) = (1 + rng.u64(..3), if rng.bool() { "heap" } else { "rocksdb" });
        c.args(["--log-format", "json", "run", "job.toml", "--shards", &shards.to_string()]);
        c.args(["--state-backend", backend, "--no-pin", "--data-dir", "data"]);
        if published(&root) {
            c.arg("--from").arg(&root);
        }
        let log = std::fs::File::create(&log_path).expect("log file");
        c.current_dir(d).env("SLUICE_LOG", LOG_FILTER).stdout(Stdio::null()).stderr(log);
        c
    };
    let (mut kills, mut during) = (0, 0);
    for _ in 0..cycles {
        let mut child = run(&mut rng).spawn().expect("spawn sluice");
        let mut log = CheckpointLog::new(log_path.clone());
        let aim = rng.bool();
        let wait = Duration::from_millis(if aim { 5000 } else { 300 + rng.u64(..1200) });
        match run_then_kill(&mut child, &mut log, aim, wait) {
            CycleEnd::Exited(status) => {
                let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                assert!(status.success(), "sluice failed on its own: {status}\n{err}");
            }
            CycleEnd::Killed { during_checkpoint } => {
                kills += 1;
                during += u64::from(during_checkpoint);
            }
        }
    }
    let status = run(&mut rng).status().expect("final run");
    assert!(status.success(), "final run: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
    Loop { kills, during }
}

/// Lost and duplicated updates: `got` holds every (key, count) output, `count` records
/// went in.
fn compare(got: &[(u64, u64)], count: u64) -> (u64, u64) {
    let mut seen: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for kc in got {
        *seen.entry(*kc).or_default() += 1;
    }
    let doubled = seen.values().map(|n| n - 1).sum();
    let mut lost = 0;
    for k in 0..KEYS {
        let n = count / KEYS + u64::from(k < count % KEYS);
        lost += (1..=n).filter(|c| !seen.contains_key(&(k, *c))).count() as u64;
    }
    (lost, doubled)
}

fn parse_line(line: &[u8]) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_slice(line).expect("json line");
    (v["key"].as_str().and_then(|k| k.parse().ok()).expect("key"), v["count"].as_u64().expect("count"))
}

fn cycles() -> u64 {
    std::env::var("SLUICE_KILL_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(6)
}

fn report(what: &str, l: &Loop, count: u64, lost: u64, doubled: u64) {
    eprintln!(
        "{what}: {} cycles, {} kills ({} while a checkpoint was open), {count} records over {KEYS} keys: {lost} lost, \
         {doubled} duplicated",
        cycles(),
        l.kills,
        l.during
    );
}

#[test]
fn kafka_to_kafka_is_exactly_once_across_kill_9() {
    // Pins: Kafka in, Kafka out (transactions, read back read_committed): every update
    // exactly once across kill -9 and restarts on other shard counts and backends.
    let b = broker::Broker::start();
    kafka::create_topic(&b.bootstrap, "seq", PARTITIONS);
    kafka::create_topic(&b.bootstrap, "totals", PARTITIONS);
    let count = 60_000 + cycles() * 20_000;
    produce(&b.bootstrap, count);
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = format!("[sink]\nkind = \"kafka\"\nbootstrap = \"{}\"\ntopic = \"totals\"\n", b.bootstrap);
    std::fs::write(dir.path().join("job.toml"), job(&b.bootstrap, &sink)).expect("job file");
    let l = kill_loop(dir.path(), cycles(), 0x6b61_666b);
    let got: Vec<(u64, u64)> =
        kafka::read_all(&b.bootstrap, "totals", PARTITIONS).iter().map(|v| parse_line(v)).collect();
    let (lost, doubled) = compare(&got, count);
    report("kafka -> kafka", &l, count, lost, doubled);
    assert_eq!((lost, doubled), (0, 0));
    assert!(l.during * 10 >= l.kills * 3, "at least 30% of kills hit an open checkpoint ({} of {})", l.during, l.kills);
}

#[test]
fn kafka_to_mariadb_is_exactly_once_across_kill_9() {
    // Pins: Kafka in, MariaDB out (XA transactions) into a table without a key: every
    // update exactly one row across kill -9 and restarts on other shard counts and backends.
    use mysql::prelude::Queryable;
    let b = broker::Broker::start();
    let db = mariadb::MariaDb::start();
    kafka::create_topic(&b.bootstrap, "seq", PARTITIONS);
    let count = 40_000 + cycles() * 10_000;
    produce(&b.bootstrap, count);
    let mut conn = db.conn();
    conn.query_drop("CREATE DATABASE sluice").expect("create database");
    conn.query_drop(
        "CREATE TABLE sluice.totals (`key` VARCHAR(32), count BIGINT, max BIGINT, sum BIGINT) ENGINE=InnoDB",
    )
    .expect("create table");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("mysql://root@localhost/sluice?socket={}", db.socket.display());
    let sink = format!("[sink]\nkind = \"mysql\"\nurl = \"{url}\"\ntable = \"totals\"\n");
    std::fs::write(dir.path().join("job.toml"), job(&b.bootstrap, &sink)).expect("job file");
    let l = kill_loop(dir.path(), cycles(), 0x6d61_7269);
    let rows: Vec<(String, u64)> = conn.query("SELECT `key`, count FROM sluice.totals").expect("rows");
    let got: Vec<(u64, u64)> = rows.into_iter().map(|(k, c)| (k.parse().expect("key"), c)).collect();
    let (lost, doubled) = compare(&got, count);
    report("kafka -> mariadb", &l, count, lost, doubled);
    assert_eq!((lost, doubled), (0, 0));
    assert!(l.during * 10 >= l.kills * 3, "at least 30% of kills hit an open checkpoint ({} of {})", l.during, l.kills);
}
