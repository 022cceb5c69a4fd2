//! Savepoints and the control endpoint through the real `sluice` binary: stop with a
//! savepoint then restore (the uninterrupted result, on other shard counts and
//! backends), throughput while a savepoint is written, refused requests (the job keeps
//! running), kill -9 while a savepoint is written, upgraded jobs restoring older
//! savepoints, ownership of restored files, and `sluice list` / `sluice status`.
//!
//! Every daemon runs with `--control-port 0`, its own `--data-dir` and its own
//! `SLUICE_RUNTIME_DIR` (tests run in parallel); the tests find its endpoint in
//! `<data-dir>/control.json`. A [`Daemon`] is killed when dropped, so a failing test
//! leaves no process behind. The throughput test holds [`EXCLUSIVE`] for writing, so no
//! other test of this file runs beside it; every other test holds it for reading.
mod common;
#[path = "common/tree.rs"]
mod tree;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Held for writing by the throughput test, for reading by every other test.
static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|p| p.into_inner())
}

/// How long any one wait of these tests may take before it fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

/// A test's temporary directory, with its own registry (`SLUICE_RUNTIME_DIR`).
struct Dir {
    tmp: tempfile::TempDir,
}

/// A finished CLI command.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rt = tmp.path().join("runtime");
        std::fs::create_dir(&rt).expect("runtime dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).expect("chmod runtime dir");
        Dir { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn join(&self, p: &str) -> PathBuf {
        self.path().join(p)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env("SLUICE_RUNTIME_DIR", self.join("runtime"))
            .env("SLUICE_LOG", "info")
            .env_remove("NO_COLOR");
        c
    }

    /// Runs a CLI verb to its end.
    fn cli(&self, args: &[&str]) -> Run {
        let out = self.command(args).stdin(Stdio::null()).output().expect("run sluice");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Starts `sluice run <args>` with `--control-port 0 --no-pin --data-dir <data>` and
    /// waits for its endpoint.
    fn daemon(&self, data: &str, args: &[&str]) -> Daemon {
        let mut d = self.spawn(data, args);
        d.wait_endpoint();
        d
    }

    /// Starts `sluice run <args>` (as [`Dir::daemon`]) without waiting for anything.
    fn spawn(&self, data: &str, args: &[&str]) -> Daemon {
        let data_dir = self.join(data);
        let log = self.join(&format!("{data}.log"));
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--control-port", "0", "--no-pin", "--data-dir"]);
        let data_arg = data_dir.to_str().expect("utf-8 path").to_owned();
        let mut c = self.command(&all);
        c.arg(&data_arg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).expect("log"));
        let child = c.spawn().expect("spawn sluice run");
        Daemon { child: Some(child), data_dir, log, address: String::new(), jid: String::new() }
    }
}

/// A `sluice run` child, killed (SIGKILL) and reaped when dropped.
struct Daemon {
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
    /// From `<data-dir>/control.json`, once [`Daemon::wait_endpoint`] has seen it.
    address: String,
    jid: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `<data-dir>/control.json` until this child has published its endpoint.
    fn wait_endpoint(&mut self) {
        let path = self.data_dir.join("control.json");
        let until = Instant::now() + PATIENCE;
        loop {
            if let Ok(Ok(v)) = std::fs::read_to_string(&path).map(|t| serde_json::from_str::<Value>(&t)) {
                if v["pid"].as_u64() == Some(u64::from(self.pid())) {
                    self.address = v["address"].as_str().expect("address").to_owned();
                    self.jid = v["jid"].as_str().expect("jid").to_owned();
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait")) {
                panic!("sluice run exited ({status}) before publishing its endpoint:\n{}", self.log());
            }
            assert!(Instant::now() < until, "no endpoint in {} after {PATIENCE:?}:\n{}", path.display(), self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit; its exit code and log.
    fn wait(&mut self) -> (i32, String) {
        let until = Instant::now() + PATIENCE;
        let child = self.child.as_mut().expect("a running child");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return (status.code().unwrap_or(-1), self.log());
            }
            assert!(Instant::now() < until, "sluice run still running after {PATIENCE:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            let _ = c.wait();
        }
    }

    fn data_arg(&self) -> &str {
        self.data_dir.to_str().expect("utf-8 path")
    }

    fn http(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let (status, text) = http(&self.address, method, path, bearer, body);
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}")))
    }

    fn job(&self) -> Value {
        let (status, v) = self.http("GET", &format!("/jobs/{}", self.jid), None, None);
        assert_eq!(status, 200, "{v}");
        v
    }

    fn records_in(&self) -> u64 {
        self.job()["records-in"].as_u64().expect("records-in")
    }

    /// Waits until the job has read at least `n` records.
    fn wait_records(&self, n: u64) {
        let until = Instant::now() + PATIENCE;
        while self.records_in() < n {
            assert!(Instant::now() < until, "fewer than {n} records after {PATIENCE:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Triggers a savepoint over raw HTTP; the request id.
    fn trigger(&self, to: &Path, form: &str) -> String {
        let body = serde_json::json!({ "target-directory": to, "formatType": form }).to_string();
        let (status, v) = self.http("POST", &format!("/jobs/{}/savepoints", self.jid), None, Some(&body));
        assert_eq!(status, 202, "{v}");
        v["request-id"].as_str().expect("request-id").to_owned()
    }

    /// Polls a savepoint request until it is no longer in progress; its answer.
    fn wait_savepoint(&self, rid: &str) -> Value {
        let until = Instant::now() + PATIENCE;
        loop {
            let (status, v) = self.http("GET", &format!("/jobs/{}/savepoints/{rid}", self.jid), None, None);
            assert_eq!(status, 200, "{v}");
            if v["status"]["id"] != "IN_PROGRESS" {
                return v;
            }
            assert!(Instant::now() < until, "savepoint {rid} still in progress after {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The job still runs and still reads records.
    fn assert_running(&self) {
        let (state, before) = (self.job()["state"].clone(), self.records_in());
        assert_eq!(state, "RUNNING", "{}", self.log());
        let until = Instant::now() + PATIENCE;
        while self.records_in() <= before {
            assert!(Instant::now() < until, "records-in stuck at {before}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One HTTP/1.1 request over a fresh connection: the status and the body.
fn http(address: &str, method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let body = body.unwrap_or("");
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read answer");
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {answer}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A generator job named `name` whose `sequence` aggregate keeps (count, largest seq,
/// sum of seqs) per key, written to `out` at the end.
fn seq_job(name: &str, count: Option<u64>, keys: u64, rate_per_s: Option<u64>, out: &str) -> String {
    let count = count.map(|c| format!("count = {c}\n")).unwrap_or_default();
    let rate = rate_per_s.map(|r| format!("rate_per_s = {r}\n")).unwrap_or_default();
    format!(
        "[job]\nname = \"{name}\"\n\n[source]\nkind = \"generator\"\n{count}keys = {keys}\n{rate}\n[key]\nfield = \"key\"\n\n\
         [aggregate]\nkind = \"sequence\"\nfield = \"seq\"\n\n[sink]\nkind = \"file\"\npath = \"{out}\"\n"
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------------------
// 1. Stop with a savepoint, then restore: the uninterrupted result.

const STOP_COUNT: u64 = 3_000_000;
const STOP_KEYS: u64 = 10_000;

/// Runs the sequence job on `first` (backend, shards), stops it with a savepoint of
/// `form` once it is under way, restores onto `second` and compares with the model.
fn stop_then_restore(first: (&str, u32), form: &str, second: (&str, u32), reopened: bool) {
    let _g = shared();
    let dir = Dir::new();
    dir.write("job.toml", &seq_job("seq", Some(STOP_COUNT), STOP_KEYS, None, "out.jsonl"));
    let sp = dir.join("sp");
    let shards = first.1.to_string();
    let mut d = dir.daemon("data1", &["job.toml", "--state-backend", first.0, "--shards", &shards]);
    d.wait_records(100_000);
    let r = dir.cli(&["stop", "--data-dir", d.data_arg(), "--savepoint", s(&sp), "--form", form]);
    assert_eq!(r.code, 0, "sluice stop: {r:?}\n{}", d.log());
    assert_eq!(r.stdout.trim(), s(&sp), "stop prints the savepoint's path");
    let (code, log) = d.wait();
    assert_eq!(code, 0, "the daemon exits 0 after stop with a savepoint:\n{log}");
    // The first run's own output (its final emission at the stop) covers only part of
    // the input: the savepoint was taken mid-stream, not after the end.
    let partial: u64 = common::read_sequence_results(&dir.join("out.jsonl")).values().map(|r| r.0).sum();
    assert!(partial > 0 && partial < STOP_COUNT, "the stop landed mid-stream ({partial} of {STOP_COUNT} records)");

    let shards = second.1.to_string();
    let from = ["job.toml", "--from", s(&sp), "--state-backend", second.0, "--shards", &shards];
    let (code, log) = dir.spawn("data2", &from).wait();
    assert_eq!(code, 0, "restored run:\n{log}");
    assert_eq!(
        log.contains("state restored (instance reopened)"),
        reopened,
        "a native savepoint onto RocksDB with the same shard count reopens the instance, anything else rebuilds:\n{log}"
    );
    let got = common::read_sequence_results(&dir.join("out.jsonl"));
    assert!(got == common::sequence_model(STOP_COUNT, STOP_KEYS), "restored result differs from the uninterrupted one");
}

#[test]
fn stop_canonical_rocksdb_restore_heap_3_shards() {
    // Pins: stop --savepoint (canonical) of a 2-shard RocksDB job, restored onto 3 heap
    // shards, outputs exactly the uninterrupted result (fails if the savepoint's barrier
    // and source position disagree, e.g. records read after the barrier counted in it or
    // replayed twice, or if the canonical snapshot loses keys when re-split).
    stop_then_restore(("rocksdb", 2), "canonical", ("heap", 3), false);
}

#[test]
fn stop_native_rocksdb_restore_rocksdb_same_shards_reopens() {
    // Pins: a native savepoint restored onto RocksDB with the same shard count takes the
    // reopen path (logged `state restored (instance reopened)`) and outputs exactly the
    // uninterrupted result (fails if the reopen path is skipped, or lays out the wrong
    // shard's files: keys of another range would then be missing or doubled).
    stop_then_restore(("rocksdb", 2), "native", ("rocksdb", 2), true);
}

#[test]
fn stop_native_rocksdb_restore_rocksdb_other_shards() {
    // Pins: a native savepoint restored onto another shard count rebuilds each new shard
    // from the old instances' files (no reopen) and outputs exactly the uninterrupted
    // result (fails if a rebuild does not clip the old ranges to the new ones).
    stop_then_restore(("rocksdb", 2), "native", ("rocksdb", 3), false);
}

#[test]
fn stop_heap_canonical_restore_rocksdb() {
    // Pins: a heap job's savepoint (canonical) restores into RocksDB on one shard with the
    // uninterrupted result (fails if heap shards' copies miss entries written after the
    // copy started, or the canonical load into RocksDB drops a state).
    stop_then_restore(("heap", 2), "canonical", ("rocksdb", 1), false);
}

// ---------------------------------------------------------------------------------------
// 3. Refused requests: a clear error each, and the job keeps running.

#[test]
fn bad_requests_are_refused_and_the_job_keeps_running() {
    // Pins: an unknown path (404), a target that exists (409), a target that cannot be
    // written (400), a second savepoint while one runs (409) and a bad body (400) each get
    // `{"errors": [...]}` naming the problem, the CLI exits 2 with it, nothing is written
    // to the refused targets, and the job keeps running (fails if a refusal is checked
    // only in the coordinator, so that the request is accepted and fails later, or if a
    // refused request stops the job or leaves the endpoint wedged).
    let _g = shared();
    let dir = Dir::new();
    dir.write("job.toml", &seq_job("seq", None, 200_000, None, "out.jsonl"));
    let d = dir.daemon("data", &["job.toml", "--shards", "2"]);
    d.wait_records(300_000);

    let (status, v) = d.http("GET", "/nope", None, None);
    assert_eq!(status, 404, "{v}");
    let msg = v["errors"][0].as_str().expect("errors[0]");
    assert!(msg.contains("unknown path") && msg.contains("/nope"), "{msg}");
    let (status, v) = d.http("GET", "/jobs/0123abcd", None, None);
    assert!(status == 404 && v["errors"][0].as_str().is_some_and(|m| m.contains("0123abcd")), "{status} {v}");
    let (status, v) = d.http("POST", &format!("/jobs/{}/savepoints", d.jid), None, Some("{\"formatType\": 7"));
    assert!(status == 400 && v["errors"][0].as_str().is_some_and(|m| m.contains("not valid JSON")), "{status} {v}");

    // The target exists and holds a file: 409, and the file is left alone.
    let taken = dir.join("taken");
    std::fs::create_dir(&taken).expect("mkdir");
    std::fs::write(taken.join("precious"), b"keep me").expect("write");
    let r = dir.cli(&["savepoint", "--data-dir", d.data_arg(), "--to", s(&taken)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("409") && r.stderr.contains("already exists"), "{r:?}");
    assert_eq!(std::fs::read_dir(&taken).expect("ls").count(), 1);
    assert_eq!(std::fs::read(taken.join("precious")).expect("read"), b"keep me");

    // The target's parent is a regular file (root ignores chmod, so a read-only
    // directory would not do): 400, and nothing is created.
    let file = dir.write("file", "not a directory");
    let r = dir.cli(&["savepoint", "--data-dir", d.data_arg(), "--to", s(&file.join("sp"))]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("400") && r.stderr.contains("not writable"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "not a directory");

    // Two savepoints at once: the second is refused while the first runs, the first
    // completes.
    let (first, second) = (dir.join("sp-first"), dir.join("sp-second"));
    let rid = d.trigger(&first, "CANONICAL");
    let body = serde_json::json!({ "target-directory": second }).to_string();
    let (status, v) = d.http("POST", &format!("/jobs/{}/savepoints", d.jid), None, Some(&body));
    assert_eq!(status, 409, "{v}");
    assert!(v["errors"][0].as_str().is_some_and(|m| m.contains("already in progress")), "{v}");
    assert!(!second.exists(), "a refused savepoint creates nothing");
    let done = d.wait_savepoint(&rid);
    assert_eq!(done["status"]["id"], "COMPLETED", "{done}");
    assert!(first.join("_savepoint").is_file());

    d.assert_running();
    let r = dir.cli(&["cancel", "--data-dir", d.data_arg()]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn off_loopback_the_endpoint_needs_a_token() {
    // Pins: bound off loopback, sluice run refuses to start without a token file (exit
    // 2) or with one others can read; with a 0600 token file a request without the token
    // or with a wrong one gets 401 (CLI exit 2) and the job keeps running, and the right
    // token (CLI --token-file, or the token file the daemon published) works (fails if
    // the token check is skipped for some route or the bind check only warns).
    use std::os::unix::fs::PermissionsExt;
    let _g = shared();
    let dir = Dir::new();
    dir.write("job.toml", &seq_job("seq", None, 1000, Some(200_000), "out.jsonl"));
    let mut d = dir.spawn("data0", &["job.toml", "--shards", "1", "--control-bind", "0.0.0.0"]);
    let (code, log) = d.wait();
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("refusing to listen on 0.0.0.0 without a token"), "{log}");

    let token = dir.write("token", "s3cret-token\n");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let tok = ["--control-bind", "0.0.0.0", "--control-token-file", s(&token)];
    let mut d = dir.spawn("data1", &[&["job.toml", "--shards", "1"][..], &tok].concat());
    let (code, log) = d.wait();
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("readable only by its owner"), "{log}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let wrong = dir.write("wrong", "not-the-token");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let d = dir.daemon("data2", &[&["job.toml", "--shards", "1"][..], &tok].concat());
    for path in ["/jobs/overview".to_owned(), format!("/jobs/{}", d.jid), "/nope".to_owned()] {
        let (status, v) = d.http("GET", &path, None, None);
        assert!(status == 401 && v["errors"][0].as_str().is_some_and(|m| m.contains("Bearer")), "{path}: {v}");
        let (status, v) = d.http("GET", &path, Some("not-the-token"), None);
        assert!(status == 401 && v["errors"][0].as_str().is_some_and(|m| m.contains("wrong")), "{path}: {v}");
    }
    let (status, v) = d.http("POST", &format!("/jobs/{}/stop", d.jid), Some("s3cret"), Some("{}"));
    assert_eq!(status, 401, "a prefix of the token is wrong: {v}");
    let (status, v) = d.http("GET", "/jobs/overview", Some("s3cret-token"), None);
    assert_eq!(status, 200, "{v}");

    let r = dir.cli(&["status", "--address", &d.address]);
    assert!(r.code == 2 && r.stderr.contains("401"), "no token: {r:?}");
    let r = dir.cli(&["status", "--address", &d.address, "--token-file", s(&wrong)]);
    assert!(r.code == 2 && r.stderr.contains("401") && r.stderr.contains("wrong"), "wrong token: {r:?}");
    let r = dir.cli(&["status", "--address", &d.address, "--token-file", s(&token)]);
    assert_eq!(r.code, 0, "--token-file: {r:?}");
    let sp = dir.join("sp");
    let r = dir.cli(&["savepoint", "--data-dir", d.data_arg(), "--to", s(&sp)]);
    assert_eq!(r.code, 0, "the published token file: {r:?}");
    assert_eq!(r.stdout.trim(), s(&sp));

    let (status, v) = d.http("GET", &format!("/jobs/{}", d.jid), Some("s3cret-token"), None);
    assert!(status == 200 && v["state"] == "RUNNING", "{v}");
    let before = v["records-in"].as_u64().expect("records-in");
    std::thread::sleep(Duration::from_millis(200));
    let (_, v) = d.http("GET", &format!("/jobs/{}", d.jid), Some("s3cret-token"), None);
    assert!(v["records-in"].as_u64().expect("records-in") > before, "the job keeps reading: {v}");
    let r = dir.cli(&["cancel", "--data-dir", d.data_arg()]);
    assert_eq!(r.code, 0, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 7. sluice list and sluice status.

#[test]
fn list_and_status_show_the_job_its_shards_and_savepoints() {
    // Pins: `sluice list` shows the running job (pid, jid, name, RUNNING) and forgets it
    // once it ends; `sluice status` shows every shard's key-group range (contiguous,
    // covering all 128 groups) and the savepoint taken, as a table and as JSON (fails if
    // the registry entry outlives the daemon, or a savepoint is missing from status).
    let _g = shared();
    let dir = Dir::new();
    dir.write("job.toml", &seq_job("listed", None, 10_000, Some(300_000), "out.jsonl"));
    let mut d = dir.daemon("data", &["job.toml", "--shards", "3"]);
    let pid = d.pid().to_string();

    let r = dir.cli(&["list"]);
    assert_eq!(r.code, 0, "{r:?}");
    let row = r.stdout.lines().find(|l| l.contains(&d.jid)).unwrap_or_else(|| panic!("no row for the job: {r:?}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells.first() == Some(&pid.as_str()) && cells.contains(&"listed") && cells.contains(&"RUNNING"), "{row}");
    let r = dir.cli(&["list", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).expect("list --json");
    let jobs = v.as_array().expect("array");
    assert_eq!(jobs.len(), 1, "{v}");
    assert_eq!(jobs[0]["endpoint"]["pid"].as_u64(), Some(u64::from(d.pid())), "{v}");
    assert!(jobs[0]["job"]["name"] == "listed" && jobs[0]["job"]["state"] == "RUNNING", "{v}");

    let sp = dir.join("sp");
    let r = dir.cli(&["savepoint", "--data-dir", d.data_arg(), "--to", s(&sp)]);
    assert_eq!(r.code, 0, "{r:?}");

    let r = dir.cli(&["status", "--data-dir", d.data_arg(), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).expect("status --json");
    let job = &v["job"];
    assert!(job["state"] == "RUNNING" && job["parallelism"] == 3 && job["max-key-groups"] == 128, "{job}");
    let shards = job["shards"].as_array().expect("shards");
    let mut ranges = Vec::new();
    for (i, sh) in shards.iter().enumerate() {
        let (start, end) =
            (sh["key-groups"]["start"].as_u64().expect("start"), sh["key-groups"]["end"].as_u64().expect("end"));
        assert!(sh["shard"].as_u64() == Some(i as u64) && start < end, "{sh}");
        assert_eq!(start, ranges.last().map_or(0, |r: &(u64, u64)| r.1), "contiguous ranges: {job}");
        ranges.push((start, end));
    }
    assert!(ranges.len() == 3 && ranges[2].1 == 128, "three ranges covering 0..128: {ranges:?}");
    let sps = job["savepoints"].as_array().expect("savepoints");
    assert_eq!(sps.len(), 1, "{job}");
    assert!(sps[0]["location"] == s(&sp) && sps[0]["form"] == "CANONICAL", "{job}");
    let latest = &v["checkpoints"]["latest"]["savepoint"];
    assert!(latest["is_savepoint"] == true && latest["status"] == "COMPLETED", "{v}");
    assert_eq!(latest["external_path"], s(&sp), "{v}");
    // Each shard's synchronous pause is reported, by shard.
    let pauses = latest["sync_duration_per_shard"].as_array().expect("sync_duration_per_shard");
    assert!(pauses.len() == 3 && pauses.iter().all(|p| p.as_u64().is_some()), "{v}");

    let r = dir.cli(&["status", "--data-dir", d.data_arg()]);
    assert_eq!(r.code, 0, "{r:?}");
    let t = &r.stdout;
    assert!(t.contains("RUNNING") && t.contains("3 shards, 128 key groups") && t.contains("KEY GROUPS"), "{t}");
    for (i, (start, end)) in ranges.iter().enumerate() {
        assert!(
            t.lines().any(|l| l.split_whitespace().take(2).eq([i.to_string(), format!("{start}..{end}")])),
            "shard {i}: {t}"
        );
    }
    assert!(t.contains("savepoints: 1") && t.lines().any(|l| l.starts_with(s(&sp)) && l.contains("CANONICAL")), "{t}");
    assert!(t.contains("COMPLETED (savepoint)"), "{t}");

    let r = dir.cli(&["cancel", "--data-dir", d.data_arg()]);
    assert_eq!(r.code, 0, "{r:?}");
    let (code, log) = d.wait();
    assert_eq!(code, 0, "{log}");
    let r = dir.cli(&["list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).expect("json"), serde_json::json!([]), "{r:?}");
    let r = dir.cli(&["list"]);
    assert!(r.stdout.contains("no sluice job is running"), "{r:?}");
    assert!(!d.data_dir.join("control.json").exists(), "the endpoint file goes with the daemon");
}

// ---------------------------------------------------------------------------------------
// 5. Upgrades: a changed job restores an older savepoint.

const UP_COUNT: u64 = 600_000;
const UP_KEYS: u64 = 1000;

/// The upgrade tests' job: generator over `0..UP_COUNT`, `aggregate` the body of its
/// `[aggregate]` table, output to `out`, `extra` appended (other tables).
fn up_job(aggregate: &str, rate_per_s: Option<u64>, out: &str, extra: &str) -> String {
    let rate = rate_per_s.map(|r| format!("rate_per_s = {r}\n")).unwrap_or_default();
    format!(
        "[job]\nname = \"up\"\n\n[source]\nkind = \"generator\"\ncount = {UP_COUNT}\nkeys = {UP_KEYS}\n{rate}\n\
         [key]\nfield = \"key\"\n\n[aggregate]\n{aggregate}\n\n[sink]\nkind = \"file\"\npath = \"{out}\"\n{extra}"
    )
}

/// Runs `job` on one shard (one generator split, so the savepoint's source position is
/// one sequence number) and stops it with a canonical savepoint into `sp` mid-stream.
fn savepoint_of(dir: &Dir, job: &str, data: &str, sp: &Path) {
    let mut d = dir.daemon(data, &[job, "--shards", "1"]);
    d.wait_records(20_000);
    let r = dir.cli(&["stop", "--data-dir", d.data_arg(), "--savepoint", s(sp)]);
    assert_eq!(r.code, 0, "{r:?}\n{}", d.log());
    let (code, log) = d.wait();
    assert_eq!(code, 0, "{log}");
}

/// Per key, a numeric field of the output (`{"key": "...", field: n}` lines).
fn read_numbers(path: &Path, field: &str) -> BTreeMap<u64, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            let key = v["key"].as_str().and_then(|k| k.parse().ok()).expect("key");
            (key, v[field].as_u64().unwrap_or_else(|| panic!("{field} in {l}")))
        })
        .collect()
}

#[test]
fn upgraded_jobs_restore_older_savepoints() {
    // Pins: a job whose TOML changed (sink, emit, backend, shards) continues a count
    // exactly; a savepoint state the new job no longer declares (`count`, restored by a
    // `sum` or `distinct_count` job) fails the restore with exit 2 naming it and the flag,
    // creating nothing; with --allow-non-restored-state the new state (`sum`) starts empty
    // and sums exactly the records after the savepoint (fails if states were matched by
    // position instead of name: `sum` would start from the old counts); a state whose
    // encoding changed (`sum` int -> decimal) is refused, even with the flag.
    let _g = shared();
    let dir = Dir::new();
    let count = dir.write("count.toml", &up_job("kind = \"count\"", Some(400_000), "count.jsonl", ""));
    let sp = dir.join("sp-count");
    savepoint_of(&dir, s(&count), "data1", &sp);

    // Changed TOML, same state: the count continues exactly.
    let extra = "\n[output]\nemit = \"final\"\n";
    dir.write("count2.toml", &up_job("kind = \"count\"", None, "count2.jsonl", extra));
    let (code, log) =
        dir.spawn("data2", &["count2.toml", "--from", s(&sp), "--shards", "2", "--state-backend", "heap"]).wait();
    assert_eq!(code, 0, "{log}");
    let counts = read_numbers(&dir.join("count2.jsonl"), "count");
    assert!(counts.len() as u64 == UP_KEYS && counts.values().all(|c| *c == UP_COUNT / UP_KEYS), "{counts:?}");

    // `count` in the savepoint, not declared by a sum job: refused, naming it.
    dir.write("sum.toml", &up_job("kind = \"sum\"\nfield = \"seq\"\ntype = \"int\"", None, "sum.jsonl", ""));
    let r = dir.cli(&["run", "sum.toml", "--from", s(&sp), "--shards", "1", "--no-control"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("state \"count\"") && r.stderr.contains("--allow-non-restored-state"), "{r:?}");
    assert!(!dir.join("sum.jsonl").exists(), "a refused restore creates nothing");
    dir.write("distinct.toml", &up_job("kind = \"distinct_count\"\nfield = \"value\"", None, "distinct.jsonl", ""));
    let r = dir.cli(&["run", "distinct.toml", "--from", s(&sp), "--no-control"]);
    assert!(r.code == 2 && r.stderr.contains("state \"count\""), "{r:?}");

    // With the flag: `count` is dropped, `sum` starts empty. The restored job sums the
    // seqs from the savepoint's position n on: sum over all keys = sum of n..UP_COUNT,
    // which gives n, and then every key's sum must be its share of n..UP_COUNT.
    let (code, log) =
        dir.spawn("data3", &["sum.toml", "--from", s(&sp), "--shards", "2", "--allow-non-restored-state"]).wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("state not restored: the job no longer declares it"), "{log}");
    let sums = read_numbers(&dir.join("sum.jsonl"), "sum");
    let total: u64 = sums.values().sum();
    let below = |n: u64| n * n.saturating_sub(1) / 2;
    let n = (0..UP_COUNT).find(|n| below(UP_COUNT) - below(*n) == total).expect("the total is a sum of n..count");
    assert!((20_000..UP_COUNT).contains(&n), "the savepoint lay mid-stream (n = {n})");
    let want: BTreeMap<u64, u64> =
        (0..UP_KEYS).map(|k| (k, (n..UP_COUNT).filter(|seq| seq % UP_KEYS == k).sum())).collect();
    assert!(sums == want, "`sum` did not start empty at seq {n}");

    // `sum` of i64, restored by `sum` of decimal: refused, naming the state.
    let sp_sum = dir.join("sp-sum");
    let sum_int = dir.write(
        "sum-int.toml",
        &up_job("kind = \"sum\"\nfield = \"seq\"\ntype = \"int\"", Some(400_000), "x.jsonl", ""),
    );
    savepoint_of(&dir, s(&sum_int), "data4", &sp_sum);
    dir.write("sum-dec.toml", &up_job("kind = \"sum\"\nfield = \"seq\"\ntype = \"decimal\"", None, "dec.jsonl", ""));
    // An upgrade usually keeps its output path: the old output must survive a refusal.
    dir.write("dec.jsonl", "the previous run's output\n");
    for flag in [None, Some("--allow-non-restored-state")] {
        let mut args = vec!["run", "sum-dec.toml", "--from", s(&sp_sum), "--no-control"];
        args.extend(flag);
        let r = dir.cli(&args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("state \"sum\" has a different kind, encoding or TTL"), "{r:?}");
        let kept = std::fs::read_to_string(dir.join("dec.jsonl")).expect("output");
        assert_eq!(kept, "the previous run's output\n", "a refused restore truncated the output");
    }
}

// ---------------------------------------------------------------------------------------
// 6. Ownership: restores never touch what they restore from.

/// Published checkpoints (`chk-<n>` with a `_manifest`) under a job's root, by id.
fn published_ids(root: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(root)
        .expect("checkpoint root")
        .flatten()
        .filter(|e| e.path().join("_manifest").is_file())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

fn completed_checkpoints(d: &Daemon) -> u64 {
    let (status, v) = d.http("GET", &format!("/jobs/{}/checkpoints", d.jid), None, None);
    assert_eq!(status, 200, "{v}");
    v["counts"]["completed"].as_u64().expect("completed")
}

fn wait_checkpoints(d: &Daemon, n: u64) {
    let until = Instant::now() + PATIENCE;
    while completed_checkpoints(d) < n {
        assert!(Instant::now() < until, "fewer than {n} checkpoints:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cancel(dir: &Dir, d: &mut Daemon) {
    let r = dir.cli(&["cancel", "--data-dir", d.data_arg()]);
    assert_eq!(r.code, 0, "{r:?}");
    let (code, log) = d.wait();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn restores_never_modify_what_they_restore_from() {
    // Pins: restoring from a retained checkpoint into the same checkpoint root (RocksDB,
    // same shard count: SSTs hard-linked into the new instance) leaves that checkpoint and
    // every file under the root (but the daemon's `_job`) byte-identical while the new job checkpoints and collects
    // its own garbage (only its newest checkpoint stays beside the pinned one); restoring
    // from a native savepoint leaves every savepoint file byte-identical; and `savepoint
    // --dispose` refuses checkpoint directories and other directories, removing nothing
    // (fails if GC ignores the pin, if a restore writes through a hard link, or if dispose
    // trusts any directory).
    let _g = shared();
    let dir = Dir::new();
    dir.write("job.toml", &seq_job("own", Some(50_000_000), 20_000, Some(400_000), "out.jsonl"));
    let ck = dir.join("ck");
    let root = ck.join("own");
    let ckargs = ["--checkpoint-dir", s(&ck), "--checkpoint-interval-ms", "100", "--checkpoints-retained", "1"];
    let mut d = dir.daemon("data1", &[&["job.toml", "--shards", "2"][..], &ckargs].concat());
    wait_checkpoints(&d, 3);
    cancel(&dir, &mut d);
    let ids = published_ids(&root);
    assert_eq!(ids.len(), 1, "retained 1: {ids:?}");
    let chk = root.join(format!("chk-{}", ids[0]));
    let before = tree::fingerprints(&root);
    assert!(before.keys().any(|p| p.starts_with("shared")), "incremental checkpoints share SSTs: {before:?}");

    let from = [&["job.toml", "--shards", "2", "--from", s(&chk)][..], &ckargs].concat();
    let mut d = dir.daemon("data2", &from);
    wait_checkpoints(&d, 4);
    let sp = dir.join("sp");
    let r = dir.cli(&["savepoint", "--data-dir", d.data_arg(), "--to", s(&sp), "--form", "native"]);
    assert_eq!(r.code, 0, "{r:?}");
    cancel(&dir, &mut d);
    assert!(d.log().contains("state restored (instance reopened)"), "{}", d.log());
    let after = tree::fingerprints(&root);
    // `_job` is the running daemon's record of itself (FORMAT.md §15), rewritten by each
    // daemon that takes the root; every checkpoint file must stay as it was.
    let daemons_own = |p: &std::path::Path| p == std::path::Path::new("_job") || p == std::path::Path::new("_job.lock");
    for (path, print) in before.iter().filter(|(p, _)| !daemons_own(p)) {
        assert_eq!(after.get(path), Some(print), "{} changed or vanished after the restore", path.display());
    }
    let now = published_ids(&root);
    assert!(now.len() == 2 && now[0] == ids[0] && now[1] > ids[0] + 3, "the pinned one and the newest: {now:?}");

    // A native savepoint restored onto the same shard count (SSTs hard-linked again),
    // checkpointing into a root of its own.
    let sp_before = tree::fingerprints(&sp);
    let ck2 = dir.join("ck2");
    let from =
        ["job.toml", "--shards", "2", "--from", s(&sp), "--checkpoint-dir", s(&ck2), "--checkpoint-interval-ms", "100"];
    let mut d = dir.daemon("data3", &from);
    wait_checkpoints(&d, 3);
    cancel(&dir, &mut d);
    assert!(d.log().contains("state restored (instance reopened)"), "{}", d.log());
    assert!(tree::fingerprints(&sp) == sp_before, "the savepoint's files changed");
    let fs = formats::fs::StdFs;
    formats::savepoint::load(&fs, &sp, formats::checkpoint::Verify::Checksums).expect("the savepoint still loads");

    // Dispose refuses anything that is not a savepoint.
    let other = dir.join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("data.csv"), "a,b\n").expect("write");
    let everything = tree::fingerprints(dir.path());
    for p in [&ck, &root, &chk, &other] {
        let r = dir.cli(&["savepoint", "--dispose", s(p)]);
        assert!(r.code == 2 && r.stderr.contains("not a savepoint"), "dispose {}: {r:?}", p.display());
    }
    assert!(tree::fingerprints(dir.path()) == everything, "a refused dispose removed something");
    let r = dir.cli(&["savepoint", "--dispose", s(&sp)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!sp.exists());
}

// ---------------------------------------------------------------------------------------
// 4. kill -9 while a savepoint is written.

const KILL_COUNT: u64 = 1_500_000;
const KILL_KEYS: u64 = 200_000;

/// When a kill -9 cycle kills the daemon, counted from the savepoint's trigger.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after the trigger was accepted (202).
    AfterTrigger(u64),
    /// This long after the in-progress marker appeared (files being written).
    AfterMarker(u64),
    /// After the savepoint completed.
    Completed,
}

/// What kill -9 left in the savepoint's directory.
#[derive(Debug, Default)]
struct Outcomes {
    absent: u32,
    /// An empty directory: the kill landed inside `begin`, before the marker.
    empty: u32,
    complete: u32,
    incomplete: u32,
}

#[test]
fn kill_9_during_a_savepoint_leaves_it_complete_or_recognisably_incomplete() {
    // Pins: after kill -9 at any moment of a savepoint, its directory is absent, empty,
    // complete (`--from` restores it and the run ends with exactly the model's result) or
    // incomplete (`--from` exits 2 saying "incomplete", `savepoint --dispose` removes it);
    // never a directory that is neither, or one that loads but restores wrongly (fails if
    // `_savepoint` were published before its files are durable, or the marker written
    // after the first file). At least one kill must leave it incomplete, so the test
    // cannot pass by never hitting the writing.
    let _g = shared();
    let dir = Dir::new();
    dir.write("job.toml", &seq_job("kill", Some(KILL_COUNT), KILL_KEYS, None, "out.jsonl"));
    let plan = [
        (KillAt::AfterTrigger(0), "CANONICAL"),
        (KillAt::AfterMarker(0), "CANONICAL"),
        (KillAt::AfterMarker(0), "NATIVE"),
        (KillAt::AfterMarker(40), "CANONICAL"),
        (KillAt::AfterTrigger(250), "NATIVE"),
        (KillAt::Completed, "NATIVE"),
        (KillAt::Completed, "CANONICAL"),
    ];
    let mut seen = Outcomes::default();
    let want = common::sequence_model(KILL_COUNT, KILL_KEYS);
    for (i, (at, form)) in plan.into_iter().enumerate() {
        let sp = dir.join(&format!("sp-{i}"));
        let mut d = dir.daemon(&format!("data-{i}"), &["job.toml", "--shards", "1"]);
        d.wait_records(300_000);
        let rid = d.trigger(&sp, form);
        let marker = sp.join("_savepoint.inprogress");
        let until = Instant::now() + PATIENCE;
        match at {
            KillAt::AfterTrigger(ms) => std::thread::sleep(Duration::from_millis(ms)),
            KillAt::AfterMarker(ms) => {
                while !marker.exists() {
                    assert!(Instant::now() < until, "no marker in {}", sp.display());
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
            KillAt::Completed => assert_eq!(d.wait_savepoint(&rid)["status"]["id"], "COMPLETED"),
        }
        d.kill9();

        let entries: Vec<String> = match std::fs::read_dir(&sp) {
            Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => {
                seen.absent += 1;
                continue;
            }
        };
        let restore = ["job.toml", "--from", s(&sp), "--shards", "2", "--state-backend", "heap"];
        if sp.join("_savepoint").is_file() {
            let (code, log) = dir.spawn(&format!("restore-{i}"), &restore).wait();
            assert_eq!(code, 0, "cycle {i} ({at:?}): a complete savepoint must restore:\n{log}");
            let got = common::read_sequence_results(&dir.join("out.jsonl"));
            assert!(got == want, "cycle {i} ({at:?}): the restored run's result differs from the model");
            seen.complete += 1;
            continue;
        }
        let r = dir.cli(&["run", "job.toml", "--from", s(&sp), "--no-control"]);
        assert_eq!(r.code, 2, "cycle {i} ({at:?}): {entries:?} {r:?}");
        if entries.is_empty() {
            seen.empty += 1;
        } else {
            assert!(marker.is_file(), "cycle {i} ({at:?}): neither complete nor marked incomplete: {entries:?}");
            assert!(r.stderr.contains("incomplete"), "cycle {i} ({at:?}): {r:?}");
            seen.incomplete += 1;
        }
        let r = dir.cli(&["savepoint", "--dispose", s(&sp)]);
        assert_eq!(r.code, 0, "cycle {i} ({at:?}): {r:?}");
        assert!(!sp.exists(), "cycle {i}: dispose removes it");
    }
    eprintln!("kill -9 during a savepoint, {} cycles: {seen:?}", plan.len());
    assert!(seen.incomplete >= 1, "no kill landed while the savepoint was written: {seen:?}");
    assert!(seen.complete >= 2, "{seen:?}");
}

// ---------------------------------------------------------------------------------------
// 2. Throughput while a savepoint is written.

/// One sample of the job's `records-in`, with the daemon's own clock (ms).
fn sample(d: &Daemon) -> (f64, u64) {
    let v = d.job();
    (v["now"].as_f64().expect("now"), v["records-in"].as_u64().expect("records-in"))
}

/// Records per second between the first sample at or after `from` and the last at or
/// before `to` (daemon ms).
fn rate(samples: &[(f64, u64)], from: f64, to: f64) -> f64 {
    let inside: Vec<_> = samples.iter().filter(|(t, _)| *t >= from && *t <= to).collect();
    let (Some(a), Some(b)) = (inside.first(), inside.last()) else { return 0.0 };
    if b.0 <= a.0 {
        return 0.0;
    }
    (b.1 - a.1) as f64 * 1000.0 / (b.0 - a.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// Measured on the 2-core development machine (2026-11-24), 1 shard, 1M keys, against the
// mean of the windows before and after: with the savepoint written at normal priority,
// canonical ratios 0.54-0.65; at nice 10 on a quiet machine 0.65-0.81 (the two vCPUs
// behave as hyperthread siblings: work on the second slows the first whatever its
// priority); with the encoding also throttled to a 25% duty cycle, 0.71-0.79 against
// that mean and 0.77-0.91 against the window before (a median of 0.77 in one clean-clone
// run: too close to the bar); at a 10% duty cycle 0.92-1.04 against the window before. Native savepoints take 0.3-0.9 s,
// most of it the synchronous part (RocksDB's flush of the memtable, 250-770 ms with no
// record read): their ratio is the stall, not the copy. Shortening the synchronous part
// is issue 15's; here the stall is bounded instead.
#[test]
fn savepoint_under_load_keeps_throughput() {
    // Pins: while a canonical savepoint (the default form) of a large state (1M keys,
    // RocksDB) is written, the job reads at least 80% of the records per second it read
    // just before (median over three savepoints, each compared with the window of the same
    // length before its trigger); a native savepoint stops reading for
    // less than a second (its synchronous flush). Fails if the savepoint is written on
    // the processing path (the shard stalls for the whole write), holds a lock the shard
    // needs, or the writer competes with the shard at equal priority (measured: 0.54-0.65). Samples are the daemon's own `records-in` and `now` (`sluice status --json`
    // shows the same fields) every 25 ms over raw HTTP, so no CLI process competes.
    let _g = EXCLUSIVE.write().unwrap_or_else(|p| p.into_inner());
    let dir = Dir::new();
    let keys = 1_000_000;
    dir.write("job.toml", &seq_job("load", None, keys, None, "out.jsonl"));
    let d = dir.daemon("data", &["job.toml", "--shards", "1"]);
    // Every key is in the state before the first savepoint.
    d.wait_records(keys + keys / 2);
    let mut samples = Vec::new();
    let mut report = Vec::new();
    let mut ratios = BTreeMap::<&str, Vec<f64>>::new();
    let poll = |samples: &mut Vec<(f64, u64)>, until: Instant| {
        while Instant::now() < until {
            samples.push(sample(&d));
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    let mut stalls = Vec::new();
    let forms = ["CANONICAL", "NATIVE", "CANONICAL", "NATIVE", "CANONICAL"];
    for (i, form) in forms.into_iter().enumerate() {
        poll(&mut samples, Instant::now() + Duration::from_millis(1500));
        let start = sample(&d).0;
        let rid = d.trigger(&dir.join(&format!("sp-{i}")), form);
        loop {
            samples.push(sample(&d));
            let (_, v) = d.http("GET", &format!("/jobs/{}/savepoints/{rid}", d.jid), None, None);
            if v["status"]["id"] != "IN_PROGRESS" {
                assert_eq!(v["status"]["id"], "COMPLETED", "{v}");
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let end = sample(&d).0;
        let len = (end - start).max(200.0);
        poll(&mut samples, Instant::now() + Duration::from_millis(len as u64));
        let (before, during, after) =
            (rate(&samples, start - len, start), rate(&samples, start, end), rate(&samples, end, end + len));
        // The reference is the steady state before the trigger: right after a savepoint
        // the job runs faster than before it (its flush emptied the memtable and the
        // write-back cache; measured after/before 1.1-1.4), so the window after would
        // inflate the reference. It is reported beside.
        let ratio = during / before.max(1.0);
        report.push(format!(
            "{form} {:.0} ms: before {before:.0}/s, during {during:.0}/s, after {after:.0}/s, ratio {ratio:.2}",
            end - start
        ));
        ratios.entry(form).or_default().push(ratio);
        if form == "NATIVE" {
            stalls.push(longest_stall(&samples, start, end));
        }
    }
    eprintln!("savepoint under load:\n  {}\n  native stalls (ms): {stalls:?}", report.join("\n  "));
    let m = median(ratios.remove("CANONICAL").unwrap_or_default());
    assert!(
        m >= 0.8,
        "canonical: median throughput during a savepoint is {m:.2} of it without:\n{}",
        report.join("\n")
    );
    let worst = stalls.iter().copied().fold(0.0, f64::max);
    assert!(worst < 1000.0, "native: the job read nothing for {worst:.0} ms:\n{}", report.join("\n"));
}

/// The longest time (ms) between `from` and `to` during which `records-in` did not move.
fn longest_stall(samples: &[(f64, u64)], from: f64, to: f64) -> f64 {
    let inside: Vec<_> = samples.iter().filter(|(t, _)| *t >= from && *t <= to).collect();
    let (mut longest, mut since) = (0.0f64, None::<(f64, u64)>);
    for &&(t, v) in &inside {
        match since {
            Some((t0, v0)) if v0 == v => longest = longest.max(t - t0),
            _ => since = Some((t, v)),
        }
    }
    longest
}

// ---------------------------------------------------------------------------------------
// 8. A source waiting for input does not hold barriers back.

#[test]
fn a_savepoint_of_a_tcp_job_with_no_input_completes() {
    // Pins: a job whose TCP source has nothing to read (no connection, then an idle one)
    // still answers a savepoint and a stop-with-savepoint within seconds: the source
    // hands control back to the producer every 100 ms, so barriers do not wait for data
    // (fails if the reader keeps waiting inside `read` until a line arrives: the savepoint
    // then times out after ten minutes).
    let _g = shared();
    let dir = Dir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    dir.write(
        "job.toml",
        &format!(
            "[job]\nname = \"sock\"\n\n[source]\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nformat = \"words\"\n\n\
             [key]\nfield = \"word\"\n\n[aggregate]\nkind = \"count\"\n\n[sink]\nkind = \"file\"\npath = \"out.jsonl\"\n"
        ),
    );
    let d = dir.daemon("data", &["job.toml", "--shards", "2"]);
    let data = d.data_dir.to_str().expect("utf-8").to_owned();
    let started = Instant::now();
    let r = dir.cli(&["savepoint", "--data-dir", &data, "--to", "sp-idle", "--timeout-s", "20"]);
    assert_eq!(r.code, 0, "no connection: {r:?}");
    let idle = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::thread::sleep(Duration::from_millis(300));
    let r = dir.cli(&["stop", "--data-dir", &data, "--savepoint", "sp-final", "--timeout-s", "20"]);
    assert_eq!(r.code, 0, "an idle connection: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    drop(idle);
    for sp in ["sp-idle", "sp-final"] {
        assert!(dir.join(sp).join("_savepoint").exists(), "{sp} complete");
    }
}
