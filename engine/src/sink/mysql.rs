//! A MySQL/MariaDB table as a [`Transactional`] target: exactly-once through XA
//! transactions, at-least-once through idempotent upserts.
//!
//! **Exactly-once.** Each shard writes into an XA transaction of its own (`XA START`),
//! in multi-row `INSERT .. ON DUPLICATE KEY UPDATE` statements of at most
//! [`BATCH_ROWS_MAX`] rows. On a checkpoint's barrier it sends what it buffered, ends and
//! prepares the transaction (`XA END`, `XA PREPARE`: durable, invisible to readers) and
//! hands its xid to the checkpoint; once the checkpoint is published it commits it
//! (`XA COMMIT`). On restore, [`MysqlSink::recover`] commits the restored checkpoint's
//! xids and rolls back every other prepared xid of the job (what crashed runs left,
//! whatever their shard count).
//!
//! Xids are `'<gtrid>','<bqual>'` with format id 1: the gtrid `sluice:<job>` names the
//! job (longer job names are cut and completed by a hash: a gtrid holds 64 bytes), the
//! bqual `<shard>.<next>.<run>` the shard, the checkpoint whose barrier is to prepare
//! the transaction, and a nonce drawn when the shard's writer opens. The nonce is needed:
//! every run begins its first transaction as checkpoint 0, and an xid reused by a later
//! run would let a restore of an older checkpoint commit that run's rows.
//!
//! Three properties of the server shape the writer (MariaDB 10.11, checked by hand and
//! by tests/tests/mariadb_xa.rs and mysql_sink.rs):
//! - a prepared transaction stays attached to its connection, which cannot start
//!   another until it commits or closes: so a writer keeps each prepared transaction's
//!   connection (at most [`PREPARED_CONNECTIONS_MAX`]) and commits on it;
//! - `XA COMMIT` or `XA ROLLBACK` from another connection answers "unknown xid" (1397,
//!   XAER_NOTA) while the preparing connection is still attached, even as it closes: so
//!   an unknown xid counts as already committed only when `XA RECOVER` does not list it;
//!   while it is listed, the commit is retried for up to [`DETACH_TIMEOUT`];
//! - a prepared transaction holds its row locks: rows of the next transaction that touch
//!   a row it wrote would wait for a commit the same shard thread has to make. So while a
//!   shard has a transaction prepared and not committed, its new rows stay in memory
//!   (up to [`HELD_ROWS_MAX`]) and are sent after the commit, or on the next barrier.
//!
//! **At-least-once** writes the same upserts in a plain transaction committed at every
//! barrier (a replay after a restore writes the same rows again, to the same values);
//! **none** commits each batch as it is sent.
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Params};
pub use mysql::{Opts, Value};

use super::two_phase::{Guarantee, Pending, Transactional, TransactionalWriter, TwoPhaseCommitSink, TxnContext};
use crate::error::Error;

/// Rows per INSERT statement (fewer when the columns would exceed the placeholders a
/// prepared statement may have).
pub const BATCH_ROWS_MAX: usize = 500;
/// Placeholders a prepared statement may have (the protocol counts them in 16 bits).
const PLACEHOLDERS_MAX: usize = 65_535;
/// Rows a shard keeps in memory while one of its transactions is prepared and not yet
/// committed; past this many it sends them anyway (they may then wait for row locks).
pub const HELD_ROWS_MAX: usize = 100_000;
/// Prepared transactions whose connections a writer keeps to commit them on; an older one
/// is detached by closing its connection and committed from another.
const PREPARED_CONNECTIONS_MAX: usize = 4;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a commit or rollback from another connection waits for a prepared
/// transaction to leave the connection that prepared it (a closing or dead client's).
const DETACH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two attempts while waiting for that.
const DETACH_POLL: Duration = Duration::from_millis(20);
/// Bytes in an xid's gtrid and in its bqual (the XA standard's limits).
const XID_PART_BYTES_MAX: usize = 64;
const GTRID_PREFIX: &str = "sluice:";
/// Bytes of a long job name kept in the gtrid, before `~` and a hash of the whole name.
const GTRID_JOB_BYTES_KEPT: usize = 40;
/// The format id of every xid the sink writes (the default of `XA START 'g','b'`).
const XID_FORMAT_ID: i64 = 1;
/// The server's "unknown xid" (XAER_NOTA).
const ER_XAER_NOTA: u16 = 1397;

/// Turns one output into one row: a value per configured column, in order.
pub type RowFn<T> = Arc<dyn Fn(&T) -> Vec<Value> + Send + Sync>;

/// A table written by a job. Build it, then make it a sink with [`MysqlSink::into_sink`].
pub struct MysqlSink<T> {
    opts: Opts,
    /// Where the server is, for messages (never the password).
    address: String,
    gtrid: String,
    /// The table as given (`table` or `db.table`), and its quoted SQL name.
    table: String,
    schema: Option<String>,
    table_name: String,
    columns: Vec<String>,
    row: RowFn<T>,
    guarantee: Guarantee,
    batch_rows: usize,
}

impl<T> MysqlSink<T> {
    /// Writes the outputs of job `job` into `table` (`table`, or `db.table`; else the
    /// URL's database), one row per output: `row` gives a value per column of `columns`.
    /// Exactly-once unless [`MysqlSink::guarantee`] says otherwise.
    pub fn new(
        opts: Opts,
        job: &str,
        table: &str,
        columns: &[&str],
        row: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        formats::layout::validate_job_name(job).map_err(Error::Config)?;
        let (schema, table_name) = match table.split_once('.') {
            Some((s, t)) => (Some(s.to_owned()), t.to_owned()),
            None => (None, table.to_owned()),
        };
        if table_name.is_empty() || schema.as_ref().is_some_and(String::is_empty) {
            return Err(Error::Config(format!("mysql sink: table {table:?} must be `table` or `db.table`")));
        }
        if columns.is_empty() || columns.iter().any(|c| c.is_empty()) {
            return Err(Error::Config(format!("mysql sink: table {table:?} needs at least one column, none empty")));
        }
        let opts: Opts = OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(CONNECT_TIMEOUT)).into();
        Ok(MysqlSink {
            address: address_of(&opts),
            opts,
            gtrid: gtrid_of(job),
            table: table.to_owned(),
            schema,
            table_name,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            row: Arc::new(row),
            guarantee: Guarantee::ExactlyOnce,
            batch_rows: BATCH_ROWS_MAX.min(PLACEHOLDERS_MAX / columns.len()).max(1),
        })
    }

    /// [`MysqlSink::new`] from a URL: `mysql://user:password@host:port/db`, or
    /// `mysql://user@localhost/db?socket=/path/to/mysqld.sock`.
    pub fn from_url(
        url: &str,
        job: &str,
        table: &str,
        columns: &[&str],
        row: impl Fn(&T) -> Vec<Value> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let opts = Opts::from_url(url).map_err(|e| Error::Config(format!("mysql sink: bad URL: {e}")))?;
        Self::new(opts, job, table, columns, row)
    }

    /// What [`MysqlSink::check`] checks the table for; [`MysqlSink::into_sink`] passes it
    /// on to the shards' writers.
    pub fn guarantee(mut self, guarantee: Guarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Rows per INSERT statement, at most [`BATCH_ROWS_MAX`].
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.clamp(1, BATCH_ROWS_MAX.min(PLACEHOLDERS_MAX / self.columns.len()).max(1));
        self
    }

    /// The xid gtrid of this job's transactions.
    pub fn gtrid(&self) -> &str {
        &self.gtrid
    }

    fn fail(&self, reason: impl std::fmt::Display) -> Error {
        Error::Sink { name: self.label(), reason: reason.to_string() }
    }

    fn label(&self) -> String {
        format!("mysql {}, table {}", self.address, self.table)
    }

    fn connect(&self) -> Result<Conn, Error> {
        connect(&self.opts).map_err(|e| self.fail(format!("cannot connect: {e}")))
    }

    /// The quoted `db`.`table` (or `table`).
    fn quoted_table(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote(s), quote(&self.table_name)),
            None => quote(&self.table_name),
        }
    }

    /// `INSERT INTO t (a, b) VALUES (?, ?), .. ON DUPLICATE KEY UPDATE a = VALUES(a), ..`
    /// for `rows` rows. `VALUES(col)` rather than MySQL 8's row alias: MariaDB has only
    /// the former.
    fn insert_sql(&self, rows: usize) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        let updates: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES {} ON DUPLICATE KEY UPDATE {}",
            self.quoted_table(),
            cols.join(", "),
            vec![one.as_str(); rows].join(", "),
            updates.join(", ")
        )
    }

    /// Commits `xid` from `conn`, which did not prepare it. An unknown xid is committed
    /// already, unless `XA RECOVER` still lists it (its connection has not let go yet).
    fn commit_detached(&self, conn: &mut Conn, xid: &Xid) -> Result<(), Error> {
        self.finish_detached(conn, xid, "COMMIT")
    }

    fn finish_detached(&self, conn: &mut Conn, xid: &Xid, verb: &str) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            match conn.query_drop(format!("XA {verb} {}", xid.sql())) {
                Ok(()) => return Ok(()),
                Err(e) if is_unknown_xid(&e) => {
                    if !xa_recover(conn).map_err(|e| self.fail(format!("XA RECOVER: {e}")))?.contains(xid) {
                        return Ok(());
                    }
                    if started.elapsed() > DETACH_TIMEOUT {
                        return Err(self.fail(format!(
                            "XA {verb} {}: still held by another connection after {DETACH_TIMEOUT:?}",
                            xid.sql()
                        )));
                    }
                    std::thread::sleep(DETACH_POLL);
                }
                Err(e) => return Err(self.fail(format!("XA {verb} {}: {e}", xid.sql()))),
            }
        }
    }
}

impl<T: 'static> MysqlSink<T> {
    /// The sink factory, with this sink's guarantee.
    pub fn into_sink(self) -> TwoPhaseCommitSink<T> {
        let guarantee = self.guarantee;
        TwoPhaseCommitSink::new(self, guarantee)
    }
}

impl<T: 'static> Transactional<T> for MysqlSink<T> {
    fn name(&self) -> String {
        self.label()
    }

    /// The server answers, the table exists with every configured column, and, for
    /// exactly-once, its engine has XA transactions and this user may list them.
    fn check(&self) -> Result<(), Error> {
        let mut conn = self.connect()?;
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => conn
                .query_first::<Option<String>, _>("SELECT DATABASE()")
                .map_err(|e| self.fail(e))?
                .flatten()
                .ok_or_else(|| {
                    self.fail("no database: name it in the URL (mysql://host/db) or the table (db.table)")
                })?,
        };
        let found: Vec<(String, Option<String>)> = conn
            .exec(
                "SELECT c.COLUMN_NAME, e.XA FROM information_schema.COLUMNS c \
                 JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                 LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE \
                 WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ?",
                (&schema, &self.table_name),
            )
            .map_err(|e| self.fail(format!("reading the table's columns: {e}")))?;
        if found.is_empty() {
            return Err(self.fail(format!("table `{schema}`.`{}` does not exist", self.table_name)));
        }
        // Column names are case-insensitive in MySQL.
        let have: Vec<String> = found.iter().map(|(c, _)| c.to_lowercase()).collect();
        if let Some(missing) = self.columns.iter().find(|c| !have.contains(&c.to_lowercase())) {
            let all: Vec<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
            return Err(self.fail(format!(
                "table `{schema}`.`{}` has no column `{missing}` (its columns: {})",
                self.table_name,
                all.join(", ")
            )));
        }
        if self.guarantee == Guarantee::ExactlyOnce {
            if found.first().is_some_and(|(_, xa)| !xa.as_deref().is_some_and(|x| x.eq_ignore_ascii_case("YES"))) {
                return Err(self.fail(format!(
                    "table `{schema}`.`{}`: its engine has no XA transactions, which exactly_once needs \
                     (use InnoDB, or guarantee = \"at_least_once\")",
                    self.table_name
                )));
            }
            xa_recover(&mut conn).map_err(|e| self.fail(format!("cannot list XA transactions (XA RECOVER): {e}")))?;
        }
        Ok(())
    }

    /// Commits every pending xid (an unknown one was committed before the crash), then
    /// rolls back every other prepared xid of this job, of any shard and shard count.
    fn recover(&self, pending: &[Pending], _shards: u32) -> Result<(), Error> {
        let mut conn = self.connect()?;
        let mut keep = BTreeSet::new();
        for p in pending.iter().filter(|p| !p.handle.is_empty()) {
            let xid = Xid::decode(&p.handle).map_err(|e| self.fail(e))?;
            self.commit_detached(&mut conn, &xid)?;
            keep.insert(xid);
        }
        let prepared = xa_recover(&mut conn).map_err(|e| self.fail(format!("XA RECOVER: {e}")))?;
        let lingering: Vec<&Xid> = prepared.iter().filter(|x| x.gtrid == self.gtrid && !keep.contains(x)).collect();
        for xid in &lingering {
            self.finish_detached(&mut conn, xid, "ROLLBACK")?;
        }
        if !pending.is_empty() || !lingering.is_empty() {
            tracing::info!(sink = %self.label(), committed = keep.len(), rolled_back = lingering.len(), "recovered XA transactions");
        }
        Ok(())
    }

    fn open(&self, ctx: TxnContext) -> Result<Box<dyn TransactionalWriter<T>>, Error> {
        let conn = self.connect()?;
        Ok(Box::new(MysqlWriter {
            full_sql: self.insert_sql(self.batch_rows),
            sink: MysqlSink {
                opts: self.opts.clone(),
                address: self.address.clone(),
                gtrid: self.gtrid.clone(),
                table: self.table.clone(),
                schema: self.schema.clone(),
                table_name: self.table_name.clone(),
                columns: self.columns.clone(),
                row: self.row.clone(),
                guarantee: ctx.guarantee,
                batch_rows: self.batch_rows,
            },
            shard: ctx.shard.0,
            run: run_nonce(ctx.shard.0),
            conn: Some(conn),
            xid: None,
            rows: Vec::new(),
            rows_len: 0,
            prepared: VecDeque::new(),
            spare: None,
            control: None,
            warned_held: false,
        }))
    }
}

/// One shard's writer: the open transaction's connection and buffered rows, and the
/// connections of its prepared transactions.
struct MysqlWriter<T> {
    /// The sink's settings; its guarantee is the context's.
    sink: MysqlSink<T>,
    full_sql: String,
    shard: u16,
    /// Drawn at open: makes this writer's xids unlike any earlier run's.
    run: String,
    /// The open transaction's connection (exactly-once), or the writer's only one.
    conn: Option<Conn>,
    /// The open XA transaction.
    xid: Option<Xid>,
    /// Rows not sent yet, flattened: `rows_len` rows of one value per column.
    rows: Vec<Value>,
    rows_len: usize,
    /// Prepared transactions not yet committed, oldest first, with the connections that
    /// prepared them.
    prepared: VecDeque<(Xid, Conn)>,
    /// A connection free for the next transaction.
    spare: Option<Conn>,
    /// For commits of transactions this writer holds no connection of.
    control: Option<Conn>,
    warned_held: bool,
}

impl<T> MysqlWriter<T> {
    fn exactly_once(&self) -> bool {
        self.sink.guarantee == Guarantee::ExactlyOnce
    }

    fn conn(&mut self) -> Result<&mut Conn, Error> {
        if self.conn.is_none() {
            self.conn = Some(self.sink.connect()?);
        }
        self.conn.as_mut().ok_or_else(|| self.sink.fail("no connection"))
    }

    fn sql(&mut self, sql: &str) -> Result<(), Error> {
        let r = self.conn()?.query_drop(sql);
        r.map_err(|e| self.sink.fail(format!("{sql}: {e}")))
    }

    /// Sends every buffered row, in statements of at most `batch_rows` rows, in order
    /// (a later row of the same key must win).
    fn flush(&mut self) -> Result<(), Error> {
        if self.rows_len == 0 {
            return Ok(());
        }
        let width = self.sink.columns.len();
        let mut values = std::mem::take(&mut self.rows).into_iter();
        let mut left = std::mem::take(&mut self.rows_len);
        while left > 0 {
            let n = left.min(self.sink.batch_rows);
            let params: Vec<Value> = values.by_ref().take(n * width).collect();
            let sql = if n == self.sink.batch_rows { self.full_sql.clone() } else { self.sink.insert_sql(n) };
            let r = self.conn()?.exec_drop(&sql, Params::Positional(params));
            r.map_err(|e| self.sink.fail(format!("inserting {n} rows: {e}")))?;
            left -= n;
        }
        Ok(())
    }

    /// Commits `xid` on the connection that prepared it, or from another one.
    fn commit_xid(&mut self, xid: &Xid) -> Result<(), Error> {
        if let Some(i) = self.prepared.iter().position(|(x, _)| x == xid) {
            let Some((_, mut conn)) = self.prepared.remove(i) else { return Ok(()) };
            return match conn.query_drop(format!("XA COMMIT {}", xid.sql())) {
                Ok(()) => {
                    self.spare.get_or_insert(conn);
                    Ok(())
                }
                // Let the connection go and commit from another (the server answered
                // for a transaction it may still hold).
                Err(_) => {
                    drop(conn);
                    self.commit_xid(xid)
                }
            };
        }
        if self.control.is_none() {
            self.control = Some(self.sink.connect()?);
        }
        let control = self.control.as_mut().ok_or_else(|| self.sink.fail("no connection"))?;
        let r = self.sink.commit_detached(control, xid);
        if r.is_err() {
            self.control = None;
        }
        r
    }
}

impl<T> TransactionalWriter<T> for MysqlWriter<T> {
    fn begin(&mut self, next: u64) -> Result<(), Error> {
        match self.sink.guarantee {
            Guarantee::ExactlyOnce => {
                if self.conn.is_none() {
                    self.conn = self.spare.take();
                }
                let xid = Xid { gtrid: self.sink.gtrid.clone(), bqual: format!("{}.{next}.{}", self.shard, self.run) };
                self.sql(&format!("XA START {}", xid.sql()))?;
                self.xid = Some(xid);
            }
            Guarantee::AtLeastOnce => self.sql("START TRANSACTION")?,
            Guarantee::None => {}
        }
        Ok(())
    }

    fn write(&mut self, value: T) -> Result<(), Error> {
        let row = (self.sink.row)(&value);
        if row.len() != self.sink.columns.len() {
            return Err(self.sink.fail(format!(
                "a row has {} values for the {} columns {}",
                row.len(),
                self.sink.columns.len(),
                self.sink.columns.join(", ")
            )));
        }
        self.rows.extend(row);
        self.rows_len += 1;
        if self.rows_len < self.sink.batch_rows {
            return Ok(());
        }
        if !self.prepared.is_empty() {
            if self.rows_len < HELD_ROWS_MAX {
                return Ok(());
            }
            if !std::mem::replace(&mut self.warned_held, true) {
                tracing::warn!(sink = %self.sink.label(), shard = self.shard, rows = HELD_ROWS_MAX, "a prepared transaction waits long for its commit: sending the rows held back, which may wait for its row locks");
            }
        }
        self.flush()
    }

    fn pre_commit(&mut self, _id: u64) -> Result<Vec<u8>, Error> {
        self.flush()?;
        if !self.exactly_once() {
            return Ok(Vec::new());
        }
        let xid = self.xid.take().ok_or_else(|| self.sink.fail("pre-commit without a transaction"))?;
        self.sql(&format!("XA END {}", xid.sql()))?;
        self.sql(&format!("XA PREPARE {}", xid.sql()))?;
        let conn = self.conn.take().ok_or_else(|| self.sink.fail("no connection"))?;
        self.prepared.push_back((xid.clone(), conn));
        if self.prepared.len() > PREPARED_CONNECTIONS_MAX {
            // Closing the connection detaches its transaction, which stays prepared.
            drop(self.prepared.pop_front());
        }
        Ok(xid.encode())
    }

    fn commit(&mut self, pending: &Pending) -> Result<(), Error> {
        match self.sink.guarantee {
            Guarantee::ExactlyOnce if !pending.handle.is_empty() => {
                let xid = Xid::decode(&pending.handle).map_err(|e| self.sink.fail(e))?;
                self.commit_xid(&xid)?;
                // Rows held back while the transaction was prepared can go now.
                if self.prepared.is_empty() && self.rows_len >= self.sink.batch_rows && self.xid.is_some() {
                    self.flush()?;
                }
                Ok(())
            }
            Guarantee::AtLeastOnce => self.sql("COMMIT"),
            _ => Ok(()),
        }
    }

    fn abort(&mut self) -> Result<(), Error> {
        self.rows.clear();
        self.rows_len = 0;
        let rolled_back = match (self.sink.guarantee, self.xid.take()) {
            (Guarantee::ExactlyOnce, Some(xid)) => self
                .sql(&format!("XA END {}", xid.sql()))
                .and_then(|()| self.sql(&format!("XA ROLLBACK {}", xid.sql()))),
            (Guarantee::AtLeastOnce, _) => self.sql("ROLLBACK"),
            _ => Ok(()),
        };
        if let Err(e) = rolled_back {
            // The server rolls back a transaction that is not prepared when its
            // connection closes.
            tracing::debug!(sink = %self.sink.label(), error = %e, "rollback failed; closing the connection instead");
            self.conn = None;
        }
        Ok(())
    }
}

/// An XA transaction id of format 1: gtrid and bqual, both of [`xid_char`]s only (so
/// they can be quoted into SQL as they are).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Xid {
    pub gtrid: String,
    pub bqual: String,
}

fn xid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-~:".contains(c)
}

impl Xid {
    fn valid(part: &str) -> bool {
        !part.is_empty() && part.len() <= XID_PART_BYTES_MAX && part.chars().all(xid_char)
    }

    /// `'gtrid','bqual'`.
    pub fn sql(&self) -> String {
        format!("'{}','{}'", self.gtrid, self.bqual)
    }

    /// The handle kept in the checkpoint: `gtrid,bqual`.
    pub fn encode(&self) -> Vec<u8> {
        format!("{},{}", self.gtrid, self.bqual).into_bytes()
    }

    /// A handle read back from a checkpoint: refused unless both parts are made of
    /// [`xid_char`]s, since they are quoted into SQL.
    pub fn decode(handle: &[u8]) -> Result<Xid, String> {
        let text = std::str::from_utf8(handle).ok();
        match text.and_then(|t| t.split_once(',')) {
            Some((g, b)) if Xid::valid(g) && Xid::valid(b) => Ok(Xid { gtrid: g.to_owned(), bqual: b.to_owned() }),
            _ => Err(format!("not an XA transaction id of this sink: {:?}", String::from_utf8_lossy(handle))),
        }
    }
}

/// The gtrid of job `job`'s transactions: `sluice:<job>`, or for a name too long for
/// 64 bytes its first 40 bytes, `~` and the hash of the whole name.
pub fn gtrid_of(job: &str) -> String {
    let whole = format!("{GTRID_PREFIX}{job}");
    if whole.len() <= XID_PART_BYTES_MAX {
        return whole;
    }
    let kept = job.get(..GTRID_JOB_BYTES_KEPT).unwrap_or(job);
    format!("{GTRID_PREFIX}{kept}~{:016x}", xxhash_rust::xxh3::xxh3_64(job.as_bytes()))
}

/// The prepared transactions `XA RECOVER` lists, of format 1 and made of [`xid_char`]s
/// (anything else is no xid of a sluice sink).
fn xa_recover(conn: &mut Conn) -> Result<Vec<Xid>, mysql::Error> {
    // formatID, gtrid_length, bqual_length, data (gtrid and bqual back to back).
    let listed: Vec<(i64, usize, usize, Vec<u8>)> = conn.query("XA RECOVER")?;
    Ok(listed
        .into_iter()
        .filter(|(format, ..)| *format == XID_FORMAT_ID)
        .filter_map(|(_, g, b, data)| {
            let gtrid = std::str::from_utf8(data.get(..g)?).ok()?;
            let bqual = std::str::from_utf8(data.get(g..g + b)?).ok()?;
            (Xid::valid(gtrid) && Xid::valid(bqual)).then(|| Xid { gtrid: gtrid.to_owned(), bqual: bqual.to_owned() })
        })
        .collect())
}

fn is_unknown_xid(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if m.code == ER_XAER_NOTA)
}

/// A connection in READ COMMITTED: the sink reads nothing, and it takes fewer gap locks
/// than REPEATABLE READ, so shards' transactions block each other less.
fn connect(opts: &Opts) -> Result<Conn, mysql::Error> {
    let mut conn = Conn::new(opts.clone())?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")?;
    Ok(conn)
}

/// `host:port/db` or `socket/db`, without user or password.
fn address_of(opts: &Opts) -> String {
    let place = match opts.get_socket() {
        Some(s) => s.to_owned(),
        None => format!("{}:{}", opts.get_ip_or_hostname(), opts.get_tcp_port()),
    };
    match opts.get_db_name() {
        Some(db) => format!("{place}/{db}"),
        None => place,
    }
}

/// A quoted identifier.
fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// A nonce for one writer's xids: the time, the process and shard, and a counter, hashed.
fn run_nonce(shard: u16) -> String {
    static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{now}.{}.{shard}.{n}", std::process::id());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xids_fit_their_limits_and_round_trip_through_the_checkpoint() {
        // Pins: a gtrid is at most 64 bytes for the longest job name (128 bytes) and
        // still names the job; a handle decodes to the xid it encoded; a handle that
        // could inject SQL is refused.
        let long = "j".repeat(128);
        assert!(gtrid_of(&long).len() <= XID_PART_BYTES_MAX);
        assert!(gtrid_of(&long).starts_with("sluice:jjjj"));
        assert_ne!(gtrid_of(&long), gtrid_of(&format!("{}k", "j".repeat(127))));
        assert_eq!(gtrid_of("orders"), "sluice:orders");
        let xid = Xid { gtrid: gtrid_of("orders"), bqual: format!("65535.{}.{}", u64::MAX, run_nonce(1)) };
        assert!(xid.bqual.len() <= XID_PART_BYTES_MAX);
        assert_eq!(Xid::decode(&xid.encode()), Ok(xid));
        assert!(Xid::decode(b"sluice:a,1'; DROP TABLE t; --").is_err());
        assert!(Xid::decode(b"").is_err());
    }

    #[test]
    fn inserts_quote_identifiers_and_update_every_column() {
        // Pins: identifiers are quoted (`key` is a reserved word), and a duplicate key
        // takes the new row's values.
        let sink = MysqlSink::<u64>::from_url("mysql://root@localhost/db", "j", "db.out", &["key", "va`l"], |_| {
            vec![Value::NULL, Value::NULL]
        })
        .expect("sink");
        assert_eq!(
            sink.insert_sql(2),
            "INSERT INTO `db`.`out` (`key`, `va``l`) VALUES (?, ?), (?, ?) \
             ON DUPLICATE KEY UPDATE `key` = VALUES(`key`), `va``l` = VALUES(`va``l`)"
        );
        assert_eq!(sink.name(), "mysql localhost:3306/db, table db.out");
    }
}
