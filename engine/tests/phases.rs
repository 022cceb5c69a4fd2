//! Exit codes by phase, through the real binary: what is wrong before the job starts
//! exits 2 and is never restarted; what fails while it runs goes through the restart
//! strategy and exits 1 with the reason.
use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stderr: String,
}

fn sluice(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice");
    Run { code: out.status.code().unwrap_or(-1), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn generator_job(dir: &Path, sink_path: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[job]\nname = \"full\"\n\n[source]\nkind = \"generator\"\ncount = 200000\nkeys = 1000\n\n[key]\nfield = \"key\"\n\n\
         [aggregate]\nkind = \"count\"\n\n[output]\nemit = \"updates\"\n\n[sink]\nkind = \"file\"\npath = \"{sink_path}\"\n\n{extra}"
    );
    let p = dir.join("job.toml");
    std::fs::write(&p, text).expect("job file");
    p
}

#[test]
fn a_full_disk_while_running_is_restarted_then_exits_1_with_the_reason() {
    // Pins: a run-time I/O failure (sink on /dev/full) is a run error: the restart
    // strategy is applied (attempts logged) and the exit code is 1, not 2 (bad usage).
    let d = tempfile::tempdir().expect("tempdir");
    let job = generator_job(
        d.path(),
        "/dev/full",
        "[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\n\n[restart]\nstrategy = \"fixed_delay\"\nattempts = 2\ndelay_ms = 10\n",
    );
    let r = sluice(d.path(), &["run", job.to_str().expect("utf8"), "--shards", "2", "--state-backend", "heap"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("job failed; restarting"), "restarts are attempted: {}", r.stderr);
    assert!(r.stderr.contains("gave up after 2 restart(s)"), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "the reason is shown: {}", r.stderr);
}

#[test]
fn a_sink_directory_that_does_not_exist_is_a_setup_error_and_never_restarted() {
    // Pins: what is wrong before anything starts exits 2 at once, with no restart.
    let d = tempfile::tempdir().expect("tempdir");
    let job = generator_job(
        d.path(),
        "no/such/dir/out.jsonl",
        "[checkpoint]\ndir = \"ck\"\ninterval_ms = 100\n\n[restart]\nstrategy = \"fixed_delay\"\nattempts = 5\ndelay_ms = 10\n",
    );
    let r = sluice(d.path(), &["run", job.to_str().expect("utf8"), "--state-backend", "heap"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("restarting"), "a setup error is not restarted: {}", r.stderr);
    assert!(r.stderr.contains("no/such/dir"), "the path is named: {}", r.stderr);
    assert!(!d.path().join("ck").exists(), "nothing is created");
}
