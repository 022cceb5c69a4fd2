//! statetool as users run it: output shapes and exit codes.
use std::process::Command;

fn statetool(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_statetool")).args(args).output().expect("run statetool");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn key_group_agrees_with_formats() {
    let (code, out, _) = statetool(&["key-group", "alice", "bob", "--shards", "4", "--json"]);
    assert_eq!(code, 0);
    for (line, key) in out.lines().zip(["alice", "bob"]) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let kg = formats::keygroup::key_group_of(key.as_bytes(), 128);
        assert_eq!(v["key_group"], u64::from(kg.0));
        assert_eq!(v["shard"], u64::from(formats::keygroup::shard_of(kg, 4, 128).0));
    }
}

#[test]
fn ranges_table_and_json() {
    let (code, out, _) = statetool(&["ranges", "--shards", "3"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["0", "0", "42", "42"]));
    let (code, out, _) = statetool(&["ranges", "--shards", "3", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[2]["end"], 128);
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = statetool(&["ranges", "--shards", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("shards"), "{err}");
    let (code, _, err) = statetool(&["key-group", "x", "--key-type", "u64"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a u64"), "{err}");
    let (code, _, _) = statetool(&["frobnicate"]);
    assert_eq!(code, 2);
}
