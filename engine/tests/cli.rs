//! The `sluice` binary as users run it: TOML jobs end to end, bad input, bad job files,
//! missing inputs, unusable data directories, and stopping by signal. Each test runs the
//! real binary in a temporary directory and says in a line what it pins.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sluice(dir: &Path, args: &[&str]) -> Run {
    sluice_logging(dir, args, "warn")
}

/// [`sluice`] with the log filter `level` (`info` shows each published checkpoint).
fn sluice_logging(dir: &Path, args: &[&str], level: &str) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env("SLUICE_LOG", level)
        .output()
        .expect("run sluice");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, body: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

fn job(source: &str, key: &str, aggregate: &str, field: Option<&str>, sink: &str) -> String {
    let field = field.map(|f| format!("field = \"{f}\"\n")).unwrap_or_default();
    format!("[job]\nname = \"t\"\n\n[source]\n{source}\n\n[key]\nfield = \"{key}\"\n\n[aggregate]\nkind = \"{aggregate}\"\n{field}\n[sink]\n{sink}\n")
}

fn read_results(path: &Path, field: &str) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).expect("read output");
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let key = v["key"].as_str().expect("key").to_owned();
        let val = v[field].as_f64().expect("value");
        assert!(m.insert(key, val).is_none(), "one output per key: {line}");
    }
    m
}

/// Rows of (user, amount, item), deterministic.
fn rows(n: u64) -> Vec<(String, i64, String)> {
    (0..n)
        .map(|i| (format!("u{}", (i * 7919) % 37), ((i * 31) % 200) as i64 - 50, format!("item{}", (i * 13) % 11)))
        .collect()
}

fn reference(rows: &[(String, i64, String)], agg: &str) -> BTreeMap<String, f64> {
    let mut groups: BTreeMap<String, Vec<&(String, i64, String)>> = BTreeMap::new();
    for r in rows {
        groups.entry(r.0.clone()).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let amounts = rs.iter().map(|r| r.1 as f64);
            let v = match agg {
                "count" => rs.len() as f64,
                "sum" => amounts.sum(),
                "min" => amounts.fold(f64::INFINITY, f64::min),
                "max" => amounts.fold(f64::NEG_INFINITY, f64::max),
                "average" => amounts.sum::<f64>() / rs.len() as f64,
                "distinct_count" => rs.iter().map(|r| &r.2).collect::<std::collections::BTreeSet<_>>().len() as f64,
                other => panic!("unknown aggregate {other}"),
            };
            (k, v)
        })
        .collect()
}

#[test]
fn toml_aggregates_equal_reference_for_csv_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = rows(3000);
    let csv: String = std::iter::once("user,amount,item\n".to_string())
        .chain(data.iter().map(|(u, a, i)| format!("{u},{a},\"{i}\"\n")))
        .collect();
    write(d, "in.csv", csv);
    let json: String = data
        .iter()
        .map(|(u, a, i)| format!("{{\"user\":\"{u}\",\"order\":{{\"amount\":{a}}},\"item\":\"{i}\"}}\n"))
        .collect();
    write(d, "in.jsonl", json);
    for agg in ["count", "sum", "min", "max", "average", "distinct_count"] {
        let want = reference(&data, agg);
        for (format, source, amount) in [
            ("csv", "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true", "amount"),
            ("json", "kind = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"", "order.amount"),
        ] {
            let field = match agg {
                "count" => None,
                "distinct_count" => Some("item"),
                _ => Some(amount),
            };
            write(d, "job.toml", job(source, "user", agg, field, "kind = \"file\"\npath = \"out.jsonl\""));
            for backend in ["heap", "rocksdb"] {
                for shards in ["1", "2"] {
                    let r = sluice(
                        d,
                        &[
                            "run",
                            "job.toml",
                            "--shards",
                            shards,
                            "--state-backend",
                            backend,
                            "--data-dir",
                            "data",
                            "--no-pin",
                        ],
                    );
                    assert_eq!(r.code, 0, "{agg} {format} {backend} x{shards}: {}", r.stderr);
                    let got = read_results(&d.join("out.jsonl"), agg);
                    assert_eq!(got.len(), want.len(), "{agg} {format} {backend} x{shards}");
                    for (k, w) in &want {
                        let g = got.get(k).copied().unwrap_or(f64::NAN);
                        assert!((g - w).abs() < 1e-9, "{agg} {format} {backend} x{shards} key {k}: got {g}, want {w}");
                    }
                }
            }
        }
    }
}

#[test]
fn generator_job_and_updates_mode() {
    // Pins: the generator source splits 0..count exactly once across shards; emit =
    // "updates" outputs one line per record, the last per key being the final count.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spec = job(
        "kind = \"generator\"\ncount = 10000\nkeys = 7",
        "key",
        "count",
        None,
        "kind = \"file\"\npath = \"out.jsonl\"",
    ) + "\n[output]\nemit = \"updates\"\n";
    write(d, "job.toml", spec);
    let r = sluice(
        d,
        &["run", "job.toml", "--shards", "3", "--state-backend", "rocksdb", "--data-dir", "data", "--no-pin"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(d.join("out.jsonl")).expect("out");
    assert_eq!(text.lines().count(), 10000);
    let mut max: BTreeMap<String, u64> = BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let e = max.entry(v["key"].as_str().expect("key").to_owned()).or_default();
        *e = (*e).max(v["count"].as_u64().expect("count"));
    }
    let want: BTreeMap<String, u64> = (0..7).map(|k| (k.to_string(), 10000 / 7 + u64::from(k < 10000 % 7))).collect();
    assert_eq!(max, want);
}

#[test]
fn bad_records_are_counted_dead_lettered_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut input = b"user,amount\na,1\nb,2\na,not-a-number\nc\n".to_vec();
    input.extend_from_slice(b"\xff\xfe,3\n"); // invalid UTF-8
    input.extend_from_slice(b"b,5\n");
    write(d, "in.csv", &input);
    let spec = job(
        "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true",
        "user",
        "sum",
        Some("amount"),
        "kind = \"file\"\npath = \"out.jsonl\"",
    ) + "\n[errors]\ndead_letter = \"bad.jsonl\"\n";
    write(d, "job.toml", spec);
    let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("3 bad"), "summary counts bad records: {}", r.stderr);
    let got = read_results(&d.join("out.jsonl"), "sum");
    assert_eq!(got, BTreeMap::from([("a".into(), 1.0), ("b".into(), 7.0)]));
    let dead = std::fs::read_to_string(d.join("bad.jsonl")).expect("dead letters");
    let entries: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(entries.len(), 3, "{dead}");
    let reasons: Vec<String> = entries.iter().map(|e| e["reason"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(reasons.iter().any(|r| r.contains("not a number")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("expected 2 columns, found 1")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("invalid UTF-8")), "{reasons:?}");
    let offset_of_bad_number = input.windows(14).position(|w| w == b"a,not-a-number").expect("present");
    assert!(
        entries.iter().any(|e| e["position"] == format!("byte offset {offset_of_bad_number}")
            && e["source"].as_str().is_some_and(|s| s.ends_with("in.csv"))),
        "dead letter names source and offset: {dead}"
    );
}

#[test]
fn fail_on_bad_record_stops_with_the_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "in.jsonl", "{\"k\":\"a\"}\n{\"k\":\"b\"}\n{not json\n{\"k\":\"c\"}\n");
    write(
        d,
        "job.toml",
        job("kind = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"", "k", "count", None, "kind = \"stdout\""),
    );
    let r = sluice(d, &["run", "job.toml", "--shards", "1", "--fail-on-bad-record"]);
    assert_eq!(r.code, 1, "a failed job exits 1: {}", r.stderr);
    assert!(r.stderr.contains("in.jsonl at byte offset 20"), "names file and offset: {}", r.stderr);
    assert!(r.stderr.contains("invalid JSON"), "{}", r.stderr);
}

/// The start of a `mysql` sink section, without its table.
const MYSQL: &str = "kind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:1/db\"";

#[test]
fn a_mysql_sink_that_does_not_answer_is_a_setup_error_naming_its_address() {
    // Pins: a mysql sink whose server does not answer stops the job before it starts
    // (exit 2), naming the address, and never the password of its URL.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sink = "kind = \"mysql\"\nurl = \"mysql://root:hunter2@127.0.0.1:1/db\"\ntable = \"totals\"";
    write(d, "job.toml", job("kind = \"generator\"\ncount = 10", "key", "count", None, sink));
    let r = sluice(d, &["run", "job.toml", "--data-dir", "data"]);
    assert_eq!(r.code, 2, "a setup error exits 2: {}", r.stderr);
    assert!(r.stderr.contains("127.0.0.1:1") && r.stderr.contains("table totals"), "names the address: {}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "never the password: {}", r.stderr);
}

#[test]
fn bad_job_files_name_file_line_and_field() {
    // Pins: a bad job file exits 2 naming `file:line` and the offending field or the
    // TOML syntax error; no expectation is empty (an empty string is always contained).
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "in.csv", "user,amount\na,1\n");
    let good_source = "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true";
    let cases: Vec<(String, &str, &str)> = vec![
        // (job text, expected "file:line", expected words)
        (job(good_source, "user", "sum", None, "kind = \"stdout\""), "job.toml:13", "aggregate.field"),
        (job(good_source, "usr", "count", None, "kind = \"stdout\""), "job.toml:11", "key.field"),
        (job(good_source, "user", "median", None, "kind = \"stdout\""), "job.toml:14", "unknown variant `median`"),
        (job(good_source, "user", "count", None, "kind = \"file\""), "job.toml:16", "sink.path"),
        (
            job(&format!("{good_source}\npth = \"x\""), "user", "count", None, "kind = \"stdout\""),
            "job.toml:9",
            "unknown field `pth`",
        ),
        (
            job(good_source, "user", "count", None, "kind = \"stdout\"")
                .replace("name = \"t\"", "name = \"bad name!\""),
            "job.toml:2",
            "job.name",
        ),
        ("[job\nname = 1".to_string(), "job.toml:1:5", "invalid table header"),
        (job(good_source, "user", "count", None, "kind = \"stdout\"\ntop = 100001"), "job.toml:18:7", "at most 100000"),
        (job(good_source, "user", "count", None, "kind = \"mysql\""), "job.toml:16", "sink.url"),
        (job(good_source, "user", "count", None, &format!("{MYSQL}\ntable = \"\"")), "job.toml:16", "sink.table"),
        (
            job(good_source, "user", "count", None, "kind = \"mysql\"\nurl = \"pg://h/d\"\ntable = \"t\""),
            "job.toml:18:7",
            "sink.url",
        ),
        (
            job(good_source, "user", "count", None, &format!("{MYSQL}\ntable = \"a.b.c\"")),
            "job.toml:19:9",
            "sink.table",
        ),
        (job(good_source, "user", "count", None, "kind = \"stdout\"\ntable = \"t\""), "job.toml:18:9", "sink.table"),
        (
            job(good_source, "user", "count", None, &format!("{MYSQL}\ntable = \"t\"\nguarantee = \"twice\"")),
            "job.toml:20",
            "unknown variant `twice`",
        ),
    ];
    for (text, at, words) in cases {
        assert!(!words.is_empty() && !at.is_empty(), "an empty expectation is always contained");
        write(d, "job.toml", &text);
        let r = sluice(d, &["run", "job.toml"]);
        assert_eq!(r.code, 2, "bad job file exits 2:\n{text}\n{}", r.stderr);
        assert!(r.stderr.contains(at), "expected {at} in: {}", r.stderr);
        assert!(r.stderr.contains(words), "expected {words:?} in: {}", r.stderr);
    }
}

#[test]
fn missing_input_exits_2_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "job.toml",
        job(
            "kind = \"file\"\npath = \"nope.txt\"\nformat = \"lines\"",
            "line",
            "count",
            None,
            "kind = \"file\"\npath = \"out.jsonl\"",
        ),
    );
    let r = sluice(d, &["run", "job.toml", "--data-dir", "data", "--dead-letter", "bad.jsonl"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope.txt") && r.stderr.contains("No such file"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(d).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("job.toml")], "nothing created");
}

#[test]
fn unusable_data_dir_exits_2_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "in.txt", "a\nb\n");
    write(d, "blocker", "a regular file where a directory should be");
    write(
        d,
        "job.toml",
        job(
            "kind = \"file\"\npath = \"in.txt\"\nformat = \"lines\"",
            "line",
            "count",
            None,
            "kind = \"file\"\npath = \"out.jsonl\"",
        ),
    );
    let r = sluice(d, &["run", "job.toml", "--data-dir", "blocker/state", "--state-backend", "rocksdb"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("blocker/state"), "names the directory: {}", r.stderr);
    assert!(!d.join("out.jsonl").exists(), "no output half-created");
}

#[test]
fn bad_command_line_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = sluice(dir.path(), &["run", "job.toml", "--state-backend", "memory"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("memory"), "{}", r.stderr);
    write(dir.path(), "job.toml", job("kind = \"generator\"\ncount = 10", "key", "count", None, "kind = \"stdout\""));
    let r = sluice(dir.path(), &["run", "job.toml", "--shards", "0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("shards"), "{}", r.stderr);
}

#[test]
fn sigterm_stops_an_unbounded_tcp_job_and_flushes() {
    // Pins: a TCP listener job runs until SIGTERM, then drains, emits final results and
    // exits 0.
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let source = format!("kind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nformat = \"words\"");
    write(d, "job.toml", job(&source, "word", "count", None, "kind = \"file\"\npath = \"out.jsonl\""));
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "job.toml", "--shards", "2", "--no-pin", "--data-dir", "data"])
        .current_dir(d)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            conn = Some(c);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut conn = conn.expect("sluice listens");
    conn.write_all(b"to be or not to be\nthat is\n").expect("send");
    drop(conn);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let got = read_results(&d.join("out.jsonl"), "count");
    let want: BTreeMap<String, f64> = [("to", 2.0), ("be", 2.0), ("or", 1.0), ("not", 1.0), ("that", 1.0), ("is", 1.0)]
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn demo_job_prints_top_words_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let r = sluice(&root, &["run", "jobs/wordcount.toml", "--shards", "2", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = r.stdout.lines().next().unwrap_or_default();
    assert!(first.contains("rank") && first.contains("count"), "{}", r.stdout);
    let second = r.stdout.lines().nth(1).unwrap_or_default();
    assert!(second.split_whitespace().collect::<Vec<_>>() == ["1", "the", "2613"], "{}", r.stdout);
    assert!(r.stderr.contains("records/s"), "{}", r.stderr);
}

#[test]
fn restore_refuses_non_checkpoints_corruption_and_other_jobs() {
    // Pins: --from on something that is not a checkpoint, a corrupted checkpoint file,
    // or another job's checkpoint exits 2 naming the path; nothing is modified.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Throttled to run about half a second, so checkpoints are taken even on a loaded
    // machine (an unthrottled 20,000 records can end before the first one).
    let spec = job(
        "kind = \"generator\"\ncount = 20000\nkeys = 50\nrate_per_s = 40000",
        "key",
        "count",
        None,
        "kind = \"file\"\npath = \"out.jsonl\"",
    ) + "\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 20\n";
    write(d, "job.toml", &spec);
    let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin", "--state-backend", "heap"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = d.join("ck").join("t");
    let chk: Vec<String> = std::fs::read_dir(&root)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chk-"))
        .collect();
    assert_eq!(chk.len(), 1, "one checkpoint retained: {chk:?}");

    let r = sluice(d, &["run", "job.toml", "--from", "job.toml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("job.toml: not a checkpoint or savepoint directory"), "{}", r.stderr);

    write(d, "other.toml", spec.replace("name = \"t\"", "name = \"other\""));
    let r = sluice(d, &["run", "other.toml", "--from", root.to_str().expect("utf8")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("belongs to job \"t\""), "{}", r.stderr);

    let snap = root.join(&chk[0]).join("shard-1.snapshot");
    let mut bytes = std::fs::read(&snap).expect("snapshot");
    bytes[10] ^= 0x40;
    std::fs::write(&snap, &bytes).expect("corrupt");
    let before = std::fs::read_dir(&root).expect("ls").count();
    let r = sluice(d, &["run", "job.toml", "--from", root.join(&chk[0]).to_str().expect("utf8")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("shard-1.snapshot") && r.stderr.contains("checksum"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&root).expect("ls").count(), before, "nothing modified");
}

/// The `N` of the summary line "job t finished: N records in, ...".
fn records_in(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.split_once("finished: ").and_then(|(_, rest)| rest.split(' ').next()?.parse().ok()))
        .unwrap_or_else(|| panic!("no summary line in: {stderr}"))
}

#[test]
fn restore_continues_a_file_job_onto_another_shard_count() {
    // Pins: a file source resumes from its checkpointed byte positions after a restart
    // with a different shard count; the final counts equal a single uninterrupted run.
    // The checkpoint restored is proven mid-input (some bytes read, some not, per its
    // manifest) and the resumed run reads only the rest.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Large enough that the job outlives several 1 ms checkpoint intervals.
    let text: String = (0..400_000).map(|i| format!("w{} w{}\n", i % 101, i % 7)).collect();
    write(d, "in.txt", &text);
    let spec = job(
        "kind = \"file\"\npath = \"in.txt\"\nformat = \"words\"",
        "word",
        "count",
        None,
        "kind = \"file\"\npath = \"out.jsonl\"",
    ) + "\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 1\nretain = 1000\n";
    write(d, "job.toml", &spec);
    let r = sluice(d, &["run", "job.toml", "--shards", "3", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let full = read_results(&d.join("out.jsonl"), "count");
    let full_records = records_in(&r.stderr);
    // Every retained checkpoint, with the input bytes its splits still had to read.
    let root = d.join("ck").join("t");
    let fs = formats::fs::StdFs;
    let ids = formats::checkpoint::checkpoint_ids(&fs, &root).expect("ids");
    let unread: Vec<(u64, u64)> = ids
        .iter()
        .map(|id| {
            let m = formats::checkpoint::load(&fs, &root, *id, formats::checkpoint::Verify::Checksums).expect("intact");
            let mut left = 0;
            for s in &m.shards {
                let splits: Vec<engine::Split> =
                    serde_json::from_value(s.source_position.clone()).expect("file splits");
                left += splits.iter().map(|sp| sp.end.saturating_sub(sp.next)).sum::<u64>();
            }
            (id.0, left)
        })
        .collect();
    // Restore, with 2 shards, the checkpoint nearest the middle of the input.
    let len = text.len() as u64;
    let &(id, left) = unread.iter().min_by_key(|(_, left)| left.abs_diff(len / 2)).expect("a checkpoint");
    assert!(
        0 < left && left < len,
        "checkpoint {id} was taken mid-input: {left} of {len} bytes unread; all: {unread:?}"
    );
    let chk = root.join(format!("chk-{id}"));
    let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin", "--from", chk.to_str().expect("utf8")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read_results(&d.join("out.jsonl"), "count"), full);
    let resumed = records_in(&r.stderr);
    assert!(0 < resumed && resumed < full_records, "the resumed run read only the rest: {resumed} of {full_records}");
}

#[test]
fn checkpoint_timeouts_beyond_tolerance_fail_the_job() {
    // Pins: a checkpoint that outlives timeout_ms is declined; with no tolerance and no
    // restarts, the job fails with exit 1 and says why.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spec = job("kind = \"generator\"\ncount = 50000000\nkeys = 200000", "key", "count", None, "kind = \"file\"\npath = \"out.jsonl\"")
        + "\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 50\ntimeout_ms = 1\ntolerable_failures = 0\n\n[restart]\nstrategy = \"none\"\n";
    write(d, "job.toml", &spec);
    let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin", "--state-backend", "heap"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("1 consecutive checkpoint(s) failed (tolerated: 0)")
            && r.stderr.contains("took longer than 1 ms"),
        "{}",
        r.stderr
    );
}

/// How many "checkpoint published" lines a run logged (at `info`).
fn published_checkpoints(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("checkpoint published")).count()
}

#[test]
fn cleanup_delete_removes_checkpoints_after_a_clean_end() {
    // Pins: checkpoints are retained after a clean end by default and removed with
    // `cleanup = "delete"`; both runs are proven to have published checkpoints (a run
    // that took none would pass the deletion check vacuously).
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Throttled to about half a second, so checkpoints are taken even on a loaded machine.
    let base = job(
        "kind = \"generator\"\ncount = 300000\nkeys = 100\nrate_per_s = 600000",
        "key",
        "count",
        None,
        "kind = \"file\"\npath = \"out.jsonl\"",
    );
    write(d, "keep.toml", base.clone() + "\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 1\n");
    let r = sluice_logging(d, &["run", "keep.toml", "--shards", "2", "--no-pin"], "info");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(published_checkpoints(&r.stderr) > 0, "the retaining run checkpointed: {}", r.stderr);
    let kept =
        formats::checkpoint::latest(&formats::fs::StdFs, &d.join("ck").join("t"), formats::checkpoint::Verify::Sizes)
            .expect("discover");
    assert!(kept.latest.is_some(), "retained by default: a published checkpoint remains");
    write(
        d,
        "delete.toml",
        base.replace("name = \"t\"", "name = \"u\"")
            + "\n[checkpoint]\ndir = \"ck\"\ninterval_ms = 1\ncleanup = \"delete\"\n",
    );
    let r = sluice_logging(d, &["run", "delete.toml", "--shards", "2", "--no-pin"], "info");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(published_checkpoints(&r.stderr) > 0, "the deleting run checkpointed: {}", r.stderr);
    assert!(!d.join("ck").join("u").exists(), "deleted after a clean end");
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    // Pins: with stderr not a terminal (a pipe here; journald or a file in production),
    // log lines carry no ANSI escape codes.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "job.toml",
        job("kind = \"generator\"\ncount = 1000\nkeys = 3", "key", "count", None, "kind = \"stdout\""),
    );
    let r = sluice_logging(d, &["run", "job.toml", "--shards", "1", "--no-pin"], "info");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("INFO") && r.stderr.contains("starting"), "info lines were logged: {}", r.stderr);
    assert!(!r.stderr.contains("\x1b["), "no ANSI codes on a pipe: {:?}", r.stderr);
}

#[test]
fn json_logs_are_one_object_per_line() {
    // Pins: `--log-format json` (a global option, before or after the subcommand) makes
    // every stderr line a JSON object with `level` and `message`, the end-of-job summary
    // and a failing job's error included, without ANSI codes.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "job.toml",
        job("kind = \"generator\"\ncount = 1000\nkeys = 3", "key", "count", None, "kind = \"stdout\""),
    );
    let parse = |stderr: &str| -> Vec<serde_json::Value> {
        assert!(!stderr.contains("\x1b["), "no ANSI codes: {stderr:?}");
        stderr
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
                assert!(v["level"].is_string() && v["message"].is_string(), "level and message: {l}");
                v
            })
            .collect()
    };
    for args in [
        &["--log-format", "json", "run", "job.toml", "--shards", "1", "--no-pin"][..],
        &["run", "job.toml", "--shards", "1", "--no-pin", "--log-format", "json"][..],
    ] {
        let r = sluice_logging(d, args, "info");
        assert_eq!(r.code, 0, "{}", r.stderr);
        let lines = parse(&r.stderr);
        assert!(lines.iter().any(|v| v["message"] == "starting" && v["level"] == "INFO"), "{}", r.stderr);
        let done = lines.iter().find(|v| v["message"] == "job finished").unwrap_or_else(|| panic!("{}", r.stderr));
        assert_eq!(done["records_in"], 1000, "{done}");
    }
    write(d, "bad.toml", "[job\nname = 1");
    let r = sluice_logging(d, &["--log-format", "json", "run", "bad.toml"], "info");
    assert_eq!(r.code, 2, "{}", r.stderr);
    let lines = parse(&r.stderr);
    assert!(
        lines.iter().any(|v| v["level"] == "ERROR" && v["error"].as_str().is_some_and(|e| e.contains("bad.toml:1"))),
        "{}",
        r.stderr
    );
}
/// The output file's lines, sorted: the exact text, not numbers read back as f64.
fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).expect("output").lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn sums_are_exact_in_every_output() {
    // Pins issue 8's examples through the binary: 9007199254740993 + 1 = 9007199254740994
    // and 0.1 + 0.2 = 0.3 (decimal, the default), exactly, in the file sink, on stdout and
    // in the top-N table, from CSV and from JSON; `type = "float"` keeps f64 sums.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "in.csv", "k,v\na,9007199254740993\nb,0.1\na,1\nb,0.2\n");
    write(d, "in.jsonl", "{\"k\":\"a\",\"v\":9007199254740993}\n{\"k\":\"b\",\"v\":0.1}\n{\"k\":\"a\",\"v\":1}\n{\"k\":\"b\",\"v\":0.20}\n");
    let csv = "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true";
    let json = "kind = \"file\"\npath = \"in.jsonl\"\nformat = \"json\"";
    let exact = [r#"{"key":"a","sum":9007199254740994}"#, r#"{"key":"b","sum":0.3}"#];
    for source in [csv, json] {
        for backend in ["heap", "rocksdb"] {
            write(d, "job.toml", job(source, "k", "sum", Some("v"), "kind = \"file\"\npath = \"out.jsonl\""));
            let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin", "--state-backend", backend]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_eq!(sorted_lines(&d.join("out.jsonl")), exact, "{source} {backend}");
        }
    }
    write(d, "job.toml", job(csv, "k", "sum", Some("v"), "kind = \"stdout\""));
    let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, exact, "stdout");
    write(d, "job.toml", job(csv, "k", "sum", Some("v"), "kind = \"stdout\"\ntop = 2"));
    let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<Vec<&str>> = r.stdout.lines().skip(1).take(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [["1", "a", "9007199254740994"], ["2", "b", "0.3"]], "{}", r.stdout);
    write(d, "job.toml", job(csv, "k", "sum", Some("v\"\ntype = \"float"), "kind = \"file\"\npath = \"out.jsonl\""));
    let r = sluice(d, &["run", "job.toml", "--shards", "1", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        sorted_lines(&d.join("out.jsonl")),
        [r#"{"key":"a","sum":9007199254740992.0}"#, r#"{"key":"b","sum":0.30000000000000004}"#],
        "floats stay floats (and round) when the job says so"
    );
}

#[test]
fn int_min_max_average_and_distinct_print_exact_values() {
    // Pins: int sums are exact i64s; min and max keep the field's type; an average is the
    // exact sum over the count as a decimal, rounded to the 29 significant digits a
    // decimal holds; counts are ints.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "in.csv", "k,v\na,9007199254740993\na,1\na,-0.5\n");
    let src = "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true";
    for (agg, field, want) in [
        ("min", "v", r#"{"key":"a","min":-0.5}"#),
        ("max", "v", r#"{"key":"a","max":9007199254740993}"#),
        ("average", "v", r#"{"key":"a","average":3002399751580331.1666666666667}"#),
        ("distinct_count", "v", r#"{"key":"a","distinct_count":3}"#),
        ("count", "", r#"{"key":"a","count":3}"#),
    ] {
        let field = (!field.is_empty()).then_some(field);
        write(d, "job.toml", job(src, "k", agg, field, "kind = \"file\"\npath = \"out.jsonl\""));
        let r = sluice(d, &["run", "job.toml", "--shards", "1", "--no-pin"]);
        assert_eq!(r.code, 0, "{agg}: {}", r.stderr);
        assert_eq!(sorted_lines(&d.join("out.jsonl")), [want], "{agg}");
    }
    write(d, "in.csv", "k,v\na,9007199254740993\na,1\n");
    write(d, "job.toml", job(src, "k", "sum", Some("v\"\ntype = \"int"), "kind = \"file\"\npath = \"out.jsonl\""));
    let r = sluice(d, &["run", "job.toml", "--shards", "1", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sorted_lines(&d.join("out.jsonl")), [r#"{"key":"a","sum":9007199254740994}"#]);
}

#[test]
fn sum_overflow_is_a_bad_record_naming_the_key() {
    // Pins: an int sum never wraps: the record that would overflow is a bad record of its
    // key (counted, dead-lettered, skipped), or stops the job with fail_on_bad_record;
    // a decimal sum past 96 bits is refused the same way.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let src = "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true";
    write(d, "in.csv", format!("k,v\nbig,{}\nbig,1\nsmall,1\nbig,-1\n", i64::MAX));
    let spec = job(src, "k", "sum", Some("v\"\ntype = \"int"), "kind = \"file\"\npath = \"out.jsonl\"")
        + "\n[errors]\ndead_letter = \"bad.jsonl\"\n";
    write(d, "job.toml", &spec);
    // One shard: a file is read in per-shard byte ranges, so only one shard keeps the
    // records of a key in file order (max, then +1 overflows, then -1).
    let r = sluice(d, &["run", "job.toml", "--shards", "1", "--no-pin"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("1 bad"), "{}", r.stderr);
    let want = [format!(r#"{{"key":"big","sum":{}}}"#, i64::MAX - 1), r#"{"key":"small","sum":1}"#.to_string()];
    assert_eq!(sorted_lines(&d.join("out.jsonl")), want, "the overflowing record is skipped, nothing wraps");
    let dead: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(d.join("bad.jsonl")).expect("dead letters").trim()).expect("json");
    assert_eq!(dead["position"], "key \"big\"", "{dead}");
    assert_eq!(dead["source"], "the sum aggregate", "{dead}");
    let reason = dead["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("leaves the range of type int: {} + 1", i64::MAX)), "{reason}");

    let r = sluice(d, &["run", "job.toml", "--shards", "1", "--no-pin", "--fail-on-bad-record"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("key \"big\"") && r.stderr.contains("leaves the range of type int"), "{}", r.stderr);

    write(d, "in.csv", "k,v\nbig,79228162514264337593543950335\nbig,1\n");
    write(d, "job.toml", job(src, "k", "sum", Some("v"), "kind = \"file\"\npath = \"out.jsonl\""));
    let r = sluice(d, &["run", "job.toml", "--shards", "1", "--no-pin", "--fail-on-bad-record"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("key \"big\"") && r.stderr.contains("range of type decimal"), "{}", r.stderr);
}

#[test]
fn bad_value_types_name_file_line_and_column() {
    // Pins: an unknown `type` and a `type` on an aggregate that takes none are job-file
    // errors (exit 2) naming file:line:column and the field; a value that is not of the
    // type is a bad record saying which type.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "in.csv", "user,amount\na,1.5\n");
    let src = "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true";
    for (text, at, words) in [
        (
            job(src, "user", "sum", Some("amount\"\ntype = \"money"), "kind = \"stdout\""),
            "job.toml:16:8",
            "unknown variant `money`, expected one of `int`, `decimal`, `float`",
        ),
        (
            job(src, "user", "distinct_count", Some("amount\"\ntype = \"int"), "kind = \"stdout\""),
            "job.toml:16:8",
            "field `aggregate.type`: only sum, min, max and average take a type",
        ),
        (
            job(src, "user", "sum", Some("amount"), "kind = \"stdout\"")
                .replace("field = \"amount\"", "field = \"amount\"\ntype = 3"),
            "job.toml:16:8",
            "wanted string or table",
        ),
    ] {
        write(d, "job.toml", &text);
        let r = sluice(d, &["run", "job.toml"]);
        assert_eq!(r.code, 2, "{text}\n{}", r.stderr);
        assert!(r.stderr.contains(at) && r.stderr.contains(words), "expected {at} and {words:?} in: {}", r.stderr);
    }
    write(d, "job.toml", job(src, "user", "sum", Some("amount\"\ntype = \"int"), "kind = \"stdout\""));
    let r = sluice(d, &["run", "job.toml", "--fail-on-bad-record"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("field \"amount\": \"1.5\" is not a number of type int"), "{}", r.stderr);
}

#[test]
fn decimal_sums_survive_a_checkpoint_and_restore() {
    // Pins: a decimal state is checkpointed and restored exactly (both backends): a run
    // restored from the final checkpoint of a finished run prints the same exact sums.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Large enough that checkpoints are taken before the input ends.
    const ROWS: u64 = 300_000;
    let rows: String = (0..ROWS).map(|i| format!("k{},0.{:02}\n", i % 7, i % 100)).collect();
    write(d, "in.csv", format!("k,v\n{rows}"));
    let src = "kind = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\nheader = true";
    for backend in ["heap", "rocksdb"] {
        let spec = job(src, "k", "sum", Some("v"), "kind = \"file\"\npath = \"out.jsonl\"")
            + &format!("\n[checkpoint]\ndir = \"ck-{backend}\"\ninterval_ms = 1\n");
        write(d, "job.toml", &spec);
        let r = sluice(d, &["run", "job.toml", "--shards", "2", "--no-pin", "--state-backend", backend]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let first = sorted_lines(&d.join("out.jsonl"));
        let want: Vec<String> = (0..7)
            .map(|k| {
                let cents: u64 = (0..ROWS).filter(|i| i % 7 == k).map(|i| i % 100).sum();
                let text = match cents % 100 {
                    0 => format!("{}", cents / 100),
                    c if c % 10 == 0 => format!("{}.{}", cents / 100, c / 10),
                    c => format!("{}.{c:02}", cents / 100),
                };
                format!(r#"{{"key":"k{k}","sum":{text}}}"#)
            })
            .collect();
        assert_eq!(first, want, "{backend}");
        let root = d.join(format!("ck-{backend}")).join("t");
        let r = sluice(
            d,
            &[
                "run",
                "job.toml",
                "--shards",
                "1",
                "--no-pin",
                "--state-backend",
                backend,
                "--from",
                root.to_str().expect("utf8"),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(sorted_lines(&d.join("out.jsonl")), want, "{backend}: restored");
    }
}
