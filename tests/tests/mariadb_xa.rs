//! The test database itself (MariaDB from Debian's packages, started by
//! `common/mariadb.rs`), through the `mysql` client: rows written inside an XA
//! transaction are invisible until `XA COMMIT`; a prepared transaction survives its
//! connection's end and is listed by `XA RECOVER` on another connection, which can commit
//! or roll it back (what a two-phase-commit sink does on restore). Every exactly-once
//! test against MariaDB rests on these; if the server loses one, this test fails loudly.
#[path = "common/mariadb.rs"]
mod mariadb;

use mysql::prelude::Queryable;

fn rows(c: &mut mysql::Conn) -> Vec<(i64, i64)> {
    c.query("SELECT k, v FROM t.out ORDER BY k").expect("select")
}

/// Writes `(k, v)` in XA transaction `xid` and prepares it, on a connection that then
/// ends (as a sink's would when the job is killed after pre-commit).
fn prepare(db: &mariadb::MariaDb, xid: &str, k: i64, v: i64) {
    let mut c = db.conn();
    c.query_drop(format!("XA START '{xid}'")).expect("xa start");
    c.exec_drop("INSERT INTO t.out (k, v) VALUES (?, ?)", (k, v)).expect("insert");
    c.query_drop(format!("XA END '{xid}'")).expect("xa end");
    c.query_drop(format!("XA PREPARE '{xid}'")).expect("xa prepare");
}

fn recovered(c: &mut mysql::Conn) -> Vec<String> {
    // XA RECOVER: formatID, gtrid_length, bqual_length, data.
    let listed: Vec<(i64, i64, i64, Vec<u8>)> = c.query("XA RECOVER").expect("xa recover");
    let mut xids: Vec<String> =
        listed.into_iter().map(|(_, _, _, d)| String::from_utf8_lossy(&d).into_owned()).collect();
    xids.sort();
    xids
}

#[test]
fn prepared_xa_transactions_survive_their_connection_and_commit_or_roll_back_once() {
    // Pins the database's XA: prepared rows invisible until committed, prepared
    // transactions listed by XA RECOVER after their connection ended, committed or rolled
    // back from another connection, and a second XA COMMIT of the same xid an error.
    let db = mariadb::MariaDb::start();
    let mut c = db.conn();
    c.query_drop("CREATE DATABASE t").expect("create database");
    c.query_drop("CREATE TABLE t.out (k BIGINT PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB").expect("create table");

    prepare(&db, "sluice-1", 1, 10);
    prepare(&db, "sluice-2", 2, 20);
    assert_eq!(rows(&mut c), vec![], "prepared rows are not visible");
    assert_eq!(recovered(&mut c), vec!["sluice-1", "sluice-2"], "both prepared transactions are listed");

    c.query_drop("XA COMMIT 'sluice-1'").expect("xa commit");
    c.query_drop("XA ROLLBACK 'sluice-2'").expect("xa rollback");
    assert_eq!(rows(&mut c), vec![(1, 10)], "the committed row only");
    assert_eq!(recovered(&mut c), Vec::<String>::new(), "nothing left prepared");
    assert!(c.query_drop("XA COMMIT 'sluice-1'").is_err(), "a second commit of the same xid is an error");
}
