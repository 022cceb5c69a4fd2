//! The MySQL/MariaDB sink (`engine/src/sink/mysql.rs`) against a real MariaDB, driven
//! through the two-phase-commit traits directly (as the runtime will: begin, write,
//! pre_commit on a barrier, commit once the checkpoint is published, recover at start).
#[path = "common/mariadb.rs"]
mod mariadb;

use engine::mysql_sink::{gtrid_of, Value};
use engine::{Error, Guarantee, MysqlSink, Pending, Transactional, TransactionalWriter, TxnContext};
use formats::ShardId;
use mysql::prelude::Queryable;

type Row = (String, i64);

/// `t.out`, keyed by `k`, and `t.log`, without a key (every insert adds a row, so a row
/// written twice shows).
fn database() -> mariadb::MariaDb {
    let db = mariadb::MariaDb::start();
    let mut c = db.conn();
    c.query_drop("CREATE DATABASE t").expect("create database");
    c.query_drop("CREATE TABLE t.out (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB")
        .expect("create t.out");
    c.query_drop("CREATE TABLE t.log (k VARCHAR(64) NOT NULL, v BIGINT NOT NULL) ENGINE=InnoDB").expect("create t.log");
    // A row lock that is waited for fails fast (the default is 50 s).
    c.query_drop("SET GLOBAL innodb_lock_wait_timeout = 3").expect("lock wait timeout");
    db
}

fn sink(db: &mariadb::MariaDb, job: &str, table: &str) -> MysqlSink<Row> {
    MysqlSink::new(db.opts(), job, table, &["k", "v"], |(k, v): &Row| {
        vec![Value::Bytes(k.as_bytes().to_vec()), Value::Int(*v)]
    })
    .expect("sink")
}

fn open(sink: &MysqlSink<Row>, shard: u16, guarantee: Guarantee) -> Box<dyn TransactionalWriter<Row>> {
    sink.open(TxnContext { shard: ShardId(shard), shards: u32::from(shard) + 1, guarantee }).expect("open")
}

fn rows(c: &mut mysql::Conn, table: &str) -> Vec<Row> {
    c.query(format!("SELECT k, v FROM {table} ORDER BY k, v")).expect("select")
}

/// The xids `XA RECOVER` lists, as `gtrid,bqual`.
fn prepared(c: &mut mysql::Conn) -> Vec<String> {
    let listed: Vec<(i64, usize, usize, Vec<u8>)> = c.query("XA RECOVER").expect("xa recover");
    let mut xids: Vec<String> = listed
        .into_iter()
        .map(|(_, g, _, d)| {
            let d = String::from_utf8_lossy(&d).into_owned();
            format!("{},{}", &d[..g], &d[g..])
        })
        .collect();
    xids.sort();
    xids
}

fn write_all(w: &mut dyn TransactionalWriter<Row>, rows: &[Row]) {
    for r in rows {
        w.write(r.clone()).expect("write");
    }
}

fn numbered(prefix: &str, n: i64) -> Vec<Row> {
    (0..n).map(|i| (format!("{prefix}{i:05}"), i)).collect()
}

fn sorted(mut v: Vec<Row>) -> Vec<Row> {
    v.sort();
    v
}

fn pending(checkpoint: u64, shard: u16, handle: Vec<u8>) -> Pending {
    Pending { checkpoint, shard, handle }
}

#[test]
fn prepared_rows_are_invisible_until_commit_then_visible_once() {
    // Pins: rows written and pre-committed (more than one INSERT batch) are invisible
    // until commit and visible exactly once after it; a second commit of the same
    // transaction, from the same writer or from another, is success and changes nothing.
    let db = database();
    let mut c = db.conn();
    let sink = sink(&db, "orders", "t.log");
    sink.check().expect("check");
    sink.recover(&[], 1).expect("recover");
    let mut w = open(&sink, 0, Guarantee::ExactlyOnce);
    w.begin(0).expect("begin");
    let first = numbered("a", 1200);
    write_all(&mut *w, &first);
    let h1 = w.pre_commit(1).expect("pre-commit");
    assert_eq!(rows(&mut c, "t.log"), vec![], "prepared rows are invisible");
    assert_eq!(prepared(&mut c).len(), 1, "one transaction prepared: {:?}", prepared(&mut c));
    assert!(prepared(&mut c)[0].starts_with(&format!("{},0.0.", gtrid_of("orders"))), "{:?}", prepared(&mut c));

    w.begin(2).expect("begin");
    let second = numbered("b", 700);
    write_all(&mut *w, &second);
    assert_eq!(rows(&mut c, "t.log"), vec![], "nothing visible before the first commit");
    w.commit(&pending(1, 0, h1.clone())).expect("commit");
    assert_eq!(rows(&mut c, "t.log"), first, "the first transaction, once; the open one not");
    w.commit(&pending(1, 0, h1.clone())).expect("a second commit is success");
    let mut other = open(&sink, 1, Guarantee::ExactlyOnce);
    other.commit(&pending(1, 0, h1)).expect("a commit from another connection is success");
    assert_eq!(rows(&mut c, "t.log"), first, "committing again changed nothing");

    let h2 = w.pre_commit(2).expect("pre-commit");
    assert_eq!(rows(&mut c, "t.log"), first);
    w.commit(&pending(2, 0, h2)).expect("commit");
    assert_eq!(rows(&mut c, "t.log"), sorted([first, second].concat()), "both transactions, each once");
    assert_eq!(prepared(&mut c), Vec::<String>::new(), "nothing left prepared");
}

#[test]
fn rows_of_a_key_a_prepared_transaction_holds_wait_for_its_commit() {
    // Pins: while a shard's transaction is prepared (holding its row locks), the shard's
    // next transaction can update the same keys, over more than one batch, without
    // waiting for a lock only its own commit would release; the last write of a key
    // wins.
    let db = database();
    let mut c = db.conn();
    let sink = sink(&db, "orders", "t.out").batch_rows(2);
    let mut w = open(&sink, 0, Guarantee::ExactlyOnce);
    w.begin(0).expect("begin");
    write_all(&mut *w, &numbered("k", 5));
    let h1 = w.pre_commit(1).expect("pre-commit");
    w.begin(2).expect("begin");
    let updates: Vec<Row> = (0..5).map(|i| (format!("k{i:05}"), 100 + i)).collect();
    write_all(&mut *w, &updates);
    w.commit(&pending(1, 0, h1)).expect("commit");
    assert_eq!(rows(&mut c, "t.out"), numbered("k", 5));
    let h2 = w.pre_commit(2).expect("pre-commit");
    w.commit(&pending(2, 0, h2)).expect("commit");
    assert_eq!(rows(&mut c, "t.out"), updates, "the second transaction's values won");
}

#[test]
fn recover_commits_the_pending_and_rolls_back_what_else_the_job_left_prepared() {
    // Pins: recover commits the restored checkpoint's pending transactions (one of them
    // committed already: success), rolls back every other prepared transaction of the
    // job (a later checkpoint's, and one of a run on another shard count), leaves
    // another job's and another application's prepared transactions alone, and is
    // idempotent. The crashed writer's connections close as recovery starts.
    let db = database();
    let mut c = db.conn();
    let sink = sink(&db, "orders", "t.log");

    // An earlier run: checkpoint 1 committed; then 2 and 3 prepared, 4 open; crash.
    let (early, restored, later, open_rows) =
        (numbered("e", 3), numbered("r", 600), numbered("l", 4), numbered("o", 5));
    let mut w = open(&sink, 0, Guarantee::ExactlyOnce);
    w.begin(0).expect("begin");
    write_all(&mut *w, &early);
    let h1 = w.pre_commit(1).expect("pre-commit");
    w.begin(2).expect("begin");
    w.commit(&pending(1, 0, h1.clone())).expect("commit");
    write_all(&mut *w, &restored);
    let h2 = w.pre_commit(2).expect("pre-commit");
    w.begin(3).expect("begin");
    write_all(&mut *w, &later);
    let _h3 = w.pre_commit(3).expect("pre-commit");
    w.begin(4).expect("begin");
    write_all(&mut *w, &open_rows);
    // A run on 4 shards left shard 3's transaction prepared.
    let mut old = open(&sink, 3, Guarantee::ExactlyOnce);
    old.begin(7).expect("begin");
    write_all(&mut *old, &numbered("s", 2));
    let _h7 = old.pre_commit(7).expect("pre-commit");
    // Another job, and another application, each with a prepared transaction.
    let other_job = self::sink(&db, "orders2", "t.log");
    let mut ow = open(&other_job, 0, Guarantee::ExactlyOnce);
    ow.begin(1).expect("begin");
    write_all(&mut *ow, &numbered("x", 2));
    let other_handle = ow.pre_commit(1).expect("pre-commit");
    {
        let mut app = db.conn();
        app.query_drop("XA START 'billing-1'").expect("xa start");
        app.query_drop("INSERT INTO t.log VALUES ('billing', 1)").expect("insert");
        app.query_drop("XA END 'billing-1'").expect("xa end");
        app.query_drop("XA PREPARE 'billing-1'").expect("xa prepare");
    }
    assert_eq!(prepared(&mut c).len(), 5, "{:?}", prepared(&mut c));
    drop((w, old, ow));

    // Restored checkpoint 2 holds transactions 1 (already committed) and 2.
    let restored_pending = [pending(1, 0, h1), pending(2, 0, h2)];
    sink.recover(&restored_pending, 2).expect("recover");
    assert_eq!(rows(&mut c, "t.log"), sorted([early.clone(), restored.clone()].concat()));
    let other_xid = String::from_utf8(other_handle).expect("utf-8");
    assert_eq!(prepared(&mut c), vec!["billing-1,".to_string(), other_xid], "only others' transactions are left");
    sink.recover(&restored_pending, 2).expect("recover again");
    assert_eq!(rows(&mut c, "t.log"), sorted([early, restored].concat()), "recovering twice changed nothing");
}

#[test]
fn a_commit_waits_for_a_transaction_its_crashed_writer_still_holds() {
    // Pins: while the connection that prepared a transaction has not let go of it (a
    // crashed run's, closing), the server calls its xid unknown to everyone else; recover
    // must not take that for "committed already" but wait, then commit it.
    let db = database();
    let mut c = db.conn();
    let sink = sink(&db, "orders", "t.log");
    let xid = format!("'{}','0.1.crashed'", gtrid_of("orders"));
    let mut holder = db.conn();
    holder.query_drop(format!("XA START {xid}")).expect("xa start");
    holder.query_drop("INSERT INTO t.log VALUES ('held', 1)").expect("insert");
    holder.query_drop(format!("XA END {xid}")).expect("xa end");
    holder.query_drop(format!("XA PREPARE {xid}")).expect("xa prepare");
    assert!(c.query_drop(format!("XA COMMIT {xid}")).is_err(), "the server refuses it while it is held");
    let closing = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        drop(holder);
    });
    let handle = format!("{},0.1.crashed", gtrid_of("orders")).into_bytes();
    sink.recover(&[pending(1, 0, handle)], 1).expect("recover");
    closing.join().expect("join");
    assert_eq!(rows(&mut c, "t.log"), vec![("held".to_string(), 1)], "committed once its connection let go");
    assert_eq!(prepared(&mut c), Vec::<String>::new());
}

#[test]
fn check_names_an_unreachable_server_a_missing_table_and_a_missing_column() {
    // Pins: check() fails with a sink error naming the address of a server that does not
    // answer, the table that does not exist, and the column the table lacks; a table
    // without XA transactions is refused for exactly-once only.
    let db = database();
    db.conn().query_drop("CREATE TABLE t.plain (k VARCHAR(64), v BIGINT) ENGINE=MyISAM").expect("create");
    let row = |(k, v): &Row| vec![Value::Bytes(k.as_bytes().to_vec()), Value::Int(*v)];
    let fails = |s: MysqlSink<Row>, words: &[&str]| {
        let e = s.check().expect_err("check fails");
        assert!(matches!(e, Error::Sink { .. }), "a sink error: {e:?}");
        for w in words {
            assert!(e.to_string().contains(w), "{w:?} in: {e}");
        }
    };
    let unreachable = MysqlSink::from_url("mysql://root@127.0.0.1:1/t", "j", "out", &["k", "v"], row).expect("sink");
    fails(unreachable, &["127.0.0.1:1", "cannot connect"]);
    fails(sink(&db, "j", "t.nope"), &["`t`.`nope` does not exist"]);
    let no_db = MysqlSink::new(db.opts(), "j", "out", &["k", "v"], row).expect("sink");
    fails(no_db, &["no database"]);
    let missing = MysqlSink::new(db.opts(), "j", "t.out", &["k", "v", "weight"], |_: &Row| vec![]).expect("sink");
    fails(missing, &["`t`.`out`", "no column `weight`"]);
    fails(sink(&db, "j", "t.plain"), &["`t`.`plain`", "no XA transactions"]);
    sink(&db, "j", "t.plain").guarantee(Guarantee::AtLeastOnce).check().expect("at-least-once takes MyISAM");
    sink(&db, "j", "t.out").check().expect("a good table passes");
}

#[test]
fn at_least_once_commits_on_the_barrier_and_a_replay_changes_nothing() {
    // Pins: at-least-once upserts are invisible until the barrier's commit, an abort
    // rolls back what followed it, and writing the same outputs again (a replay after a
    // restore) leaves the table as it was.
    let db = database();
    let mut c = db.conn();
    let sink = sink(&db, "orders", "t.out").guarantee(Guarantee::AtLeastOnce);
    let mut w = open(&sink, 0, Guarantee::AtLeastOnce);
    w.begin(0).expect("begin");
    let outputs = numbered("k", 1100);
    write_all(&mut *w, &outputs);
    assert_eq!(rows(&mut c, "t.out"), vec![], "not committed before the barrier");
    let h = w.pre_commit(1).expect("pre-commit");
    w.commit(&pending(1, 0, h)).expect("commit");
    assert_eq!(rows(&mut c, "t.out"), outputs);
    w.begin(2).expect("begin");
    write_all(&mut *w, &[("late".to_string(), 1)]);
    w.abort().expect("abort");
    drop(w);
    let mut replay = open(&sink, 0, Guarantee::AtLeastOnce);
    replay.begin(2).expect("begin");
    write_all(&mut *replay, &outputs);
    let h = replay.pre_commit(3).expect("pre-commit");
    replay.commit(&pending(3, 0, h)).expect("commit");
    assert_eq!(rows(&mut c, "t.out"), outputs, "the aborted row is gone, the replay changed nothing");
}
