//! A Kafka sink (Flink's `KafkaSink`) on the two-phase-commit protocol of
//! [`super::two_phase`], through rdkafka's blocking producer, polled from the shard's
//! thread (no async runtime).
//!
//! # Exactly once without resuming transactions
//!
//! Flink commits a pre-committed transaction after a restart by *resuming* it: it sets
//! the producer id and epoch recorded in the checkpoint into a new producer (by
//! reflection) and sends the commit. librdkafka cannot: a new producer's
//! `init_transactions` with the same `transactional.id` *aborts* whatever that id left
//! open. So "pre-commit = flush, commit after the checkpoint is published" alone would
//! lose a checkpoint's records when the process dies between the publication and the
//! commit. This sink makes the records themselves part of the checkpoint instead:
//!
//! - **The handle is a write-ahead copy.** `pre_commit` returns a handle holding the
//!   transaction's records (partition, key and value bytes), the `transactional.id`, the
//!   run's token and the run's shard count. The runtime keeps it in the checkpoint
//!   (operator state `_sink.pending`) until the commit. It costs checkpoint space in
//!   proportion to the shard's outputs per checkpoint interval.
//! - **Every transaction commits a marker with its records.** Before the commit, the
//!   transaction sends, with `send_offsets_to_transaction`, an offset for the consumer
//!   group named like the shard's `transactional.id` (`<prefix>-<shard>`) on partition 0
//!   of the output topic: offset = checkpoint id + 1, metadata = `sluice-run:<token>`.
//!   Kafka commits a transaction's offsets atomically with its records, so the group's
//!   committed offset answers "did checkpoint n's transaction of shard s commit?": yes
//!   exactly when the token is that of the run that wrote it and the offset exceeds n
//!   (a shard commits its transactions in checkpoint order, and checkpoint ids grow
//!   within a run and across the restores of a run's checkpoints).
//! - **Recovery replays what did not commit.** At start, `recover` first calls
//!   `init_transactions` for every `transactional.id` an earlier run may have left open:
//!   `<prefix>-<i>` for i below max(the restored run's shard count, recorded in each
//!   handle, and the new count). That aborts lingering transactions (a shard count
//!   lowered by a rescale included) and fences zombie producers. Then, for each pending
//!   transaction, oldest first per shard, it reads the marker with a `read_committed`
//!   consumer (stable once the id is fenced) and, unless it is marked committed, writes
//!   the copy's records again in a fresh transaction with the marker, and commits. A
//!   second recovery with the same pending transactions finds them marked and writes
//!   nothing: commits are idempotent, across processes too.
//! - **Why the token.** Checkpoint ids start again at 1 when a job starts from scratch
//!   (a new checkpoint root, or `cleanup = "delete"`), and a restore from an older
//!   checkpoint forks the history; the marker of another run then says nothing about
//!   this run's transactions. Comparing ids across runs would take them for committed
//!   (data loss); with the token they are replayed, which can only duplicate, and only
//!   in the fork case, where a restore from a checkpoint older than the newest committed
//!   one repeats every later output anyway.
//!
//! In the running process a shard keeps one producer. The Kafka transaction holds the
//! oldest transaction not yet committed: records are sent as they are written, and on
//! the barrier the shard sends the marker and flushes (the pre-commit). Kafka allows one
//! open transaction per producer, so the next checkpoint's records are only kept in the
//! copy until the commit (normally as soon as the checkpoint is published), then sent in
//! the next Kafka transaction, and streamed from there on. A commit that fails (the
//! broker aborted the transaction after `transaction.timeout.ms`, a lost connection)
//! falls back to recovery's path with a new producer: fence, read the marker, replay.
//! So a transaction that outlives its timeout costs a second write, never correctness.
//!
//! `AtLeastOnce`: an idempotent producer without transactions, flushed (and its
//! deliveries checked) on every barrier; `None`: the same, flushed only at the end.
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::two_phase::{Guarantee, Pending, Transactional, TransactionalWriter, TwoPhaseCommitSink, TxnContext};
use crate::error::Error;

/// How long `check` waits for the broker's metadata.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a metadata, offset or transaction request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `transaction.timeout.ms` unless a property sets it: the default largest value a
/// Kafka broker accepts (`transaction.max.timeout.ms`), as Flink recommends.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 900_000;
/// The marker's metadata: this prefix and the run's token in hex.
const RUN_PREFIX: &str = "sluice-run:";
/// Sends between two polls of the producer's delivery reports.
const POLL_EVERY: u32 = 1024;
/// The handle's encoding version.
const HANDLE_V1: u8 = 1;

/// Turns one output into a Kafka record's key (none: no key) and value.
pub type RecordFn<T> = Arc<dyn Fn(&T) -> (Option<Vec<u8>>, Vec<u8>) + Send + Sync>;

/// What the factory and its writers share.
struct Config<T> {
    bootstrap: String,
    topic: String,
    prefix: String,
    record: RecordFn<T>,
    guarantee: Guarantee,
    checkpoint_interval: Option<Duration>,
    properties: Vec<(String, String)>,
}

impl<T> Config<T> {
    fn name(&self) -> String {
        format!("kafka://{}/{}", self.bootstrap, self.topic)
    }

    fn fail(&self, what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
        Error::Sink { name: self.name(), reason: format!("{what}: {e}") }
    }

    fn transactional_id(&self, shard: u32) -> String {
        format!("{}-{shard}", self.prefix)
    }

    fn transaction_timeout_ms(&self) -> Result<u64, Error> {
        match self.properties.iter().rev().find(|(k, _)| k == "transaction.timeout.ms") {
            None => Ok(DEFAULT_TRANSACTION_TIMEOUT_MS),
            Some((_, v)) => {
                v.parse().map_err(|_| self.fail("transaction.timeout.ms", format!("{v:?} is not a number")))
            }
        }
    }

    /// A producer: transactional (its transactions initialised, which aborts what the id
    /// left open and fences older producers with it) when `transactional_id` is given.
    fn producer(&self, transactional_id: Option<&str>) -> Result<TxnProducer, Error> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("enable.idempotence", "true");
        if let Some(id) = transactional_id {
            c.set("transactional.id", id).set("transaction.timeout.ms", self.transaction_timeout_ms()?.to_string());
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        let deliveries = Deliveries::default();
        let producer: BaseProducer<Deliveries> =
            c.create_with_context(deliveries.clone()).map_err(|e| self.fail("cannot create a producer", e))?;
        if let Some(id) = transactional_id {
            producer.init_transactions(REQUEST_TIMEOUT).map_err(|e| {
                self.fail(format!("cannot initialise the transactions of `{id}` on {}", self.bootstrap), e)
            })?;
        }
        Ok(TxnProducer { producer, deliveries })
    }

    /// A `read_committed` consumer of group `group`, never subscribed: reads the group's
    /// markers and names the group in transactions.
    fn marker_consumer(&self, group: &str) -> Result<Markers, Error> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = c.create().map_err(|e| self.fail("cannot create a consumer", e))?;
        let group_metadata =
            consumer.group_metadata().ok_or_else(|| self.fail("no group metadata", format!("group `{group}`")))?;
        Ok(Markers { consumer, group: group.to_owned(), group_metadata })
    }

    /// The topic's partition count; an unreachable broker or a missing topic is an error
    /// naming them.
    fn partitions<C: ClientContext>(
        &self,
        client: &rdkafka::client::Client<C>,
        timeout: Duration,
    ) -> Result<i32, Error> {
        let meta = client
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| self.fail(format!("cannot reach the Kafka broker at {}", self.bootstrap), e))?;
        match meta.topics().iter().find(|t| t.name() == self.topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
            _ => Err(self.fail("no such topic", format!("`{}` does not exist on {}", self.topic, self.bootstrap))),
        }
    }

    /// Makes sure `pending`'s transaction is committed: nothing if its marker says so,
    /// else its records and marker again in a new transaction of `p`, committed. `p`
    /// must have no transaction open and hold the id that wrote `pending` (so that it
    /// fenced every other producer of the marker). True if it wrote.
    fn replay(&self, p: &TxnProducer, markers: &Markers, pending: &Pending, h: &Handle) -> Result<bool, Error> {
        if h.records.is_empty() {
            return Ok(false);
        }
        if markers.committed(self, h.run)?.is_some_and(|o| o >= marker_offset(pending.checkpoint)) {
            return Ok(false);
        }
        let id = &h.transactional_id;
        p.producer.begin_transaction().map_err(|e| self.fail(format!("`{id}`: cannot begin a transaction"), e))?;
        for r in &h.records {
            p.send(self, r)?;
        }
        p.mark(self, markers, pending.checkpoint, h.run)?;
        p.flush(self)?;
        p.producer.commit_transaction(REQUEST_TIMEOUT).map_err(|e| {
            self.fail(format!("`{id}`: cannot commit checkpoint {}'s transaction", pending.checkpoint), e)
        })?;
        Ok(true)
    }
}

/// The marker offset of checkpoint `checkpoint`'s transaction (the end of a job without
/// checkpoints, `u64::MAX`, saturates).
fn marker_offset(checkpoint: u64) -> i64 {
    checkpoint.min(i64::MAX as u64 - 1) as i64 + 1
}

/// A producer and the first failed delivery it reported.
struct TxnProducer {
    producer: BaseProducer<Deliveries>,
    deliveries: Deliveries,
}

impl TxnProducer {
    fn send<T>(&self, cfg: &Config<T>, r: &Rec) -> Result<(), Error> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&cfg.topic).partition(r.partition).payload(&r.value[..]);
        if let Some(k) = &r.key {
            record = record.key(&k[..]);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                // The local queue is full: serve deliveries, then retry.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(cfg.fail("cannot send a record", e)),
            }
        }
    }

    /// Whether `e` (or the producer's fatal error) says a newer producer with the same
    /// `transactional.id` fenced this one.
    fn fenced(&self, e: &KafkaError) -> bool {
        let fencing = |c: RDKafkaErrorCode| matches!(c, RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced);
        e.rdkafka_error_code().is_some_and(fencing)
            || self.producer.client().fatal_error().is_some_and(|(c, _)| fencing(c))
    }

    /// Flushes what was sent; an error if a delivery failed.
    fn flush<T>(&self, cfg: &Config<T>) -> Result<(), Error> {
        self.producer.flush(REQUEST_TIMEOUT).map_err(|e| cfg.fail("cannot flush", e))?;
        match self.deliveries.first_failure() {
            Some(e) => Err(cfg.fail("a record was not delivered", e)),
            None => Ok(()),
        }
    }

    /// Sends the marker of `checkpoint`'s transaction into the open transaction.
    fn mark<T>(&self, cfg: &Config<T>, markers: &Markers, checkpoint: u64, run: u64) -> Result<(), Error> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&cfg.topic, 0, Offset::Offset(marker_offset(checkpoint)))
            .map_err(|e| cfg.fail("bad marker", e))?;
        if let Some(mut e) = tpl.find_partition(&cfg.topic, 0) {
            e.set_metadata(format!("{RUN_PREFIX}{run:016x}"));
        }
        self.producer
            .send_offsets_to_transaction(&tpl, &markers.group_metadata, REQUEST_TIMEOUT)
            .map_err(|e| cfg.fail(format!("cannot add the marker of group `{}` to the transaction", markers.group), e))
    }
}

/// A shard's marker group.
struct Markers {
    consumer: BaseConsumer,
    group: String,
    group_metadata: ConsumerGroupMetadata,
}

impl Markers {
    /// The group's committed marker offset if run `run` wrote it, else `None` (no marker,
    /// or one of another run).
    fn committed<T>(&self, cfg: &Config<T>, run: u64) -> Result<Option<i64>, Error> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&cfg.topic, 0);
        let got = self
            .consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|e| cfg.fail(format!("cannot read the marker of group `{}`", self.group), e))?;
        let Some(e) = got.find_partition(&cfg.topic, 0) else { return Ok(None) };
        let ours = e.metadata().strip_prefix(RUN_PREFIX).and_then(|t| u64::from_str_radix(t, 16).ok()) == Some(run);
        Ok(match e.offset() {
            Offset::Offset(o) if ours => Some(o),
            _ => None,
        })
    }
}

/// Remembers the first delivery that failed. Sticky: a record lost before a checkpoint
/// must fail that checkpoint and every later one, which would otherwise cover the loss.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Option<String>>>);

impl Deliveries {
    fn first_failure(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
        }
    }
}

/// One record of a transaction, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

/// A pre-committed transaction's handle: its write-ahead copy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handle {
    transactional_id: String,
    /// The token of the run that wrote it (its marker's metadata).
    run: u64,
    /// That run's shard count: recovery aborts what ids up to it left open.
    shards: u32,
    records: Vec<Rec>,
}

impl Handle {
    fn encode(&self) -> Vec<u8> {
        fn bytes(out: &mut Vec<u8>, b: &[u8]) {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        let size: usize = self.records.iter().map(|r| 13 + r.value.len() + r.key.as_ref().map_or(0, Vec::len)).sum();
        let mut out = Vec::with_capacity(32 + self.transactional_id.len() + size);
        out.push(HANDLE_V1);
        bytes(&mut out, self.transactional_id.as_bytes());
        out.extend_from_slice(&self.run.to_le_bytes());
        out.extend_from_slice(&self.shards.to_le_bytes());
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for r in &self.records {
            out.extend_from_slice(&r.partition.to_le_bytes());
            match &r.key {
                Some(k) => {
                    out.push(1);
                    bytes(&mut out, k);
                }
                None => out.push(0),
            }
            bytes(&mut out, &r.value);
        }
        out
    }

    fn decode(b: &[u8]) -> Result<Handle, Error> {
        struct Cursor<'a>(&'a [u8]);
        impl<'a> Cursor<'a> {
            fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
                if self.0.len() < n {
                    return Err(Error::Config(
                        "a Kafka sink's pending transaction in the checkpoint is truncated".into(),
                    ));
                }
                let (a, b) = self.0.split_at(n);
                self.0 = b;
                Ok(a)
            }
            fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
                let mut a = [0; N];
                a.copy_from_slice(self.take(N)?);
                Ok(a)
            }
            fn bytes(&mut self) -> Result<Vec<u8>, Error> {
                let n = u32::from_le_bytes(self.array()?) as usize;
                Ok(self.take(n)?.to_vec())
            }
        }
        let mut c = Cursor(b);
        let [version] = c.array()?;
        if version != HANDLE_V1 {
            return Err(Error::Config(format!("a Kafka sink's pending transaction has unknown version {version}")));
        }
        let transactional_id = String::from_utf8(c.bytes()?)
            .map_err(|_| Error::Config("a Kafka sink's transactional.id in the checkpoint is not UTF-8".into()))?;
        let run = u64::from_le_bytes(c.array()?);
        let shards = u32::from_le_bytes(c.array()?);
        let n = u64::from_le_bytes(c.array()?);
        let mut records = Vec::with_capacity((n as usize).min(b.len() / 9));
        for _ in 0..n {
            let partition = i32::from_le_bytes(c.array()?);
            let [has_key] = c.array()?;
            let key = if has_key == 1 { Some(c.bytes()?) } else { None };
            records.push(Rec { partition, key, value: c.bytes()? });
        }
        if !c.0.is_empty() {
            return Err(Error::Config("a Kafka sink's pending transaction has trailing bytes".into()));
        }
        Ok(Handle { transactional_id, run, shards, records })
    }
}

/// Kafka's default partitioner for keyed records (Java's `Utils.murmur2`, librdkafka's
/// `murmur2` partitioner), so that keys land where Java producers put them.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes(c.try_into().unwrap_or_default());
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Writes a job's outputs to a Kafka topic, each output turned into a key and a value by
/// a function. Use it through [`KafkaSink::into_factory`].
pub struct KafkaSink<T> {
    cfg: Arc<Config<T>>,
    /// This run's token, drawn again by every `recover`.
    run: Mutex<u64>,
}

fn new_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A random 64-bit number: the process's random hasher keys, the time and the pid.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

impl<T: 'static> KafkaSink<T> {
    /// Writes to `topic` on the brokers `bootstrap` (`host:port[,host:port]`), with
    /// transactional ids `<transactional_id_prefix>-<shard>` (unique to the job: two
    /// jobs with one prefix fence each other), exactly once.
    pub fn new(
        bootstrap: impl Into<String>,
        topic: impl Into<String>,
        transactional_id_prefix: impl Into<String>,
        record: impl Fn(&T) -> (Option<Vec<u8>>, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        KafkaSink {
            cfg: Arc::new(Config {
                bootstrap: bootstrap.into(),
                topic: topic.into(),
                prefix: transactional_id_prefix.into(),
                record: Arc::new(record),
                guarantee: Guarantee::ExactlyOnce,
                checkpoint_interval: None,
                properties: Vec::new(),
            }),
            run: Mutex::new(new_token()),
        }
    }

    fn cfg_mut(&mut self) -> &mut Config<T> {
        Arc::get_mut(&mut self.cfg).unwrap_or_else(|| unreachable!("the config is shared only once writers open"))
    }

    pub fn guarantee(mut self, guarantee: Guarantee) -> Self {
        self.cfg_mut().guarantee = guarantee;
        self
    }

    /// The job's checkpoint interval: `check` refuses a `transaction.timeout.ms` that
    /// is not longer (every transaction would be aborted by the broker, and written
    /// twice).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.cfg_mut().checkpoint_interval = Some(interval);
        self
    }

    /// A librdkafka producer property (`security.protocol`, `transaction.timeout.ms`,
    /// `compression.type`, ...); it overrides the sink's own settings.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.cfg_mut().properties.push((key.into(), value.into()));
        self
    }

    /// The sink factory for a job, with this sink's guarantee.
    pub fn into_factory(self) -> TwoPhaseCommitSink<T> {
        let guarantee = self.cfg.guarantee;
        TwoPhaseCommitSink::new(self, guarantee)
    }

    fn token(&self) -> u64 {
        *self.run.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: 'static> Transactional<T> for KafkaSink<T> {
    fn name(&self) -> String {
        self.cfg.name()
    }

    fn check(&self) -> Result<(), Error> {
        let cfg = &*self.cfg;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.bootstrap);
        for (k, v) in &cfg.properties {
            c.set(k, v);
        }
        let consumer: BaseConsumer = c.create().map_err(|e| cfg.fail("cannot create a client", e))?;
        cfg.partitions(consumer.client(), CHECK_TIMEOUT)?;
        if cfg.guarantee == Guarantee::ExactlyOnce {
            let timeout = cfg.transaction_timeout_ms()?;
            if let Some(iv) = cfg.checkpoint_interval.filter(|iv| u128::from(timeout) <= iv.as_millis()) {
                return Err(cfg.fail(
                    "transaction.timeout.ms",
                    format!(
                        "{timeout} ms is not longer than the checkpoint interval ({} ms): the broker would abort \
                         every transaction before its checkpoint completes; raise it (and the broker's \
                         transaction.max.timeout.ms) or checkpoint more often",
                        iv.as_millis()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn recover(&self, pending: &[Pending], shards: u32) -> Result<(), Error> {
        let cfg = &*self.cfg;
        let handles = pending
            .iter()
            .filter(|p| !p.handle.is_empty())
            .map(|p| Ok((p, Handle::decode(&p.handle)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = new_token();
        if cfg.guarantee != Guarantee::ExactlyOnce && handles.is_empty() {
            return Ok(());
        }
        // Every id an earlier run may have left a transaction open on: fence and abort.
        let old = handles.iter().map(|(_, h)| h.shards).max().unwrap_or(0);
        let mut ids: BTreeMap<String, Vec<(&Pending, &Handle)>> =
            (0..old.max(shards)).map(|s| (cfg.transactional_id(s), Vec::new())).collect();
        for (p, h) in &handles {
            ids.entry(h.transactional_id.clone()).or_default().push((*p, h));
        }
        let (mut replayed, mut skipped) = (0, 0);
        for (id, mut mine) in ids {
            let producer = cfg.producer(Some(&id))?;
            if mine.is_empty() {
                continue;
            }
            let markers = cfg.marker_consumer(&id)?;
            mine.sort_by_key(|(p, _)| p.checkpoint);
            for (p, h) in mine {
                if cfg.replay(&producer, &markers, p, h)? {
                    replayed += 1;
                } else {
                    skipped += 1;
                }
            }
        }
        tracing::info!(sink = %cfg.name(), replayed, already_committed = skipped, aborted_ids = old.max(shards), "kafka sink recovered");
        Ok(())
    }

    fn open(&self, ctx: TxnContext) -> Result<Box<dyn TransactionalWriter<T>>, Error> {
        let cfg = self.cfg.clone();
        let exactly_once = ctx.guarantee == Guarantee::ExactlyOnce;
        let transactional_id = cfg.transactional_id(u32::from(ctx.shard.0));
        let producer = cfg.producer(exactly_once.then_some(transactional_id.as_str()))?;
        let partitions = cfg.partitions(producer.producer.client(), REQUEST_TIMEOUT)?;
        let markers = if exactly_once { Some(cfg.marker_consumer(&transactional_id)?) } else { None };
        Ok(Box::new(KafkaWriter {
            run: self.token(),
            shards: ctx.shards,
            round_robin: i32::from(ctx.shard.0) % partitions,
            cfg,
            guarantee: ctx.guarantee,
            transactional_id,
            producer,
            markers,
            partitions,
            records: Vec::new(),
            open: false,
            live: false,
            kafka: InKafka::Idle,
            precommitted: VecDeque::new(),
            committed: None,
            sends: 0,
        }))
    }
}

/// What the shard's producer has open in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InKafka {
    Idle,
    /// The transaction being written: its records stream in.
    Current,
    /// The pre-committed transaction of this checkpoint, marker sent and flushed.
    PreCommitted(u64),
}

struct KafkaWriter<T> {
    cfg: Arc<Config<T>>,
    guarantee: Guarantee,
    run: u64,
    shards: u32,
    transactional_id: String,
    producer: TxnProducer,
    /// Exactly once only.
    markers: Option<Markers>,
    partitions: i32,
    round_robin: i32,
    /// The copy of the transaction being written (exactly once only).
    records: Vec<Rec>,
    /// A transaction is begun and not yet pre-committed.
    open: bool,
    /// Its records are sent as they are written (else only kept until it can be).
    live: bool,
    kafka: InKafka,
    /// Checkpoints pre-committed and not yet committed, oldest first.
    precommitted: VecDeque<u64>,
    /// The newest checkpoint this writer committed.
    committed: Option<u64>,
    sends: u32,
}

impl<T> KafkaWriter<T> {
    fn exactly_once(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnce
    }

    fn partition(&mut self, key: Option<&[u8]>) -> i32 {
        match key {
            Some(k) => ((murmur2(k) & 0x7fff_ffff) % self.partitions as u32) as i32,
            None => {
                self.round_robin = (self.round_robin + 1) % self.partitions;
                self.round_robin
            }
        }
    }

    fn send(&mut self, r: &Rec) -> Result<(), Error> {
        self.producer.send(&self.cfg, r)?;
        self.sends += 1;
        if self.sends >= POLL_EVERY {
            self.sends = 0;
            self.producer.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Starts a Kafka transaction for the transaction being written, sending what it
    /// kept so far, once nothing older waits for its commit.
    fn go_live(&mut self) -> Result<(), Error> {
        if !self.open || self.live || self.kafka != InKafka::Idle || !self.precommitted.is_empty() {
            return Ok(());
        }
        self.producer
            .producer
            .begin_transaction()
            .map_err(|e| self.cfg.fail(format!("`{}`: cannot begin a transaction", self.transactional_id), e))?;
        self.kafka = InKafka::Current;
        self.live = true;
        let kept = std::mem::take(&mut self.records);
        let sent = kept.iter().try_for_each(|r| self.send(r));
        self.records = kept;
        sent
    }

    /// Commits `pending` by the path of recovery: a new producer (fencing the old one,
    /// aborting what it had open), the marker read, the copy written again if need be.
    fn commit_by_replay(&mut self, pending: &Pending) -> Result<(), Error> {
        let h = Handle::decode(&pending.handle)?;
        if h.transactional_id != self.transactional_id {
            // Another shard's (of another run): recovery's job, by its own id.
            let producer = self.cfg.producer(Some(&h.transactional_id))?;
            let markers = self.cfg.marker_consumer(&h.transactional_id)?;
            self.cfg.replay(&producer, &markers, pending, &h)?;
            return Ok(());
        }
        if let InKafka::PreCommitted(open) = self.kafka {
            if open < pending.checkpoint {
                // A new producer would abort it, and its copy is not here.
                return Err(self.cfg.fail(
                    format!("`{}`: cannot commit checkpoint {}", self.transactional_id, pending.checkpoint),
                    format!("checkpoint {open}'s transaction is not committed yet"),
                ));
            }
        }
        if self.kafka != InKafka::Idle {
            // Whatever it holds is aborted: the transaction being written is sent again
            // from its copy once this commit is done.
            self.producer = self.cfg.producer(Some(&self.transactional_id))?;
            self.kafka = InKafka::Idle;
            self.live = false;
        }
        let markers = self.markers.as_ref().ok_or_else(|| self.cfg.fail("commit", "not an exactly-once writer"))?;
        self.cfg.replay(&self.producer, markers, pending, &h)?;
        Ok(())
    }
}

impl<T> TransactionalWriter<T> for KafkaWriter<T> {
    fn begin(&mut self, _next: u64) -> Result<(), Error> {
        self.records.clear();
        self.open = true;
        self.live = !self.exactly_once();
        self.go_live()
    }

    fn write(&mut self, value: T) -> Result<(), Error> {
        let (key, value) = (self.cfg.record)(&value);
        let partition = self.partition(key.as_deref());
        let r = Rec { partition, key, value };
        if self.live {
            self.send(&r)?;
        }
        if self.exactly_once() {
            self.records.push(r);
        }
        Ok(())
    }

    fn pre_commit(&mut self, id: u64) -> Result<Vec<u8>, Error> {
        self.open = false;
        match self.guarantee {
            Guarantee::None if id != u64::MAX => return Ok(Vec::new()),
            Guarantee::None | Guarantee::AtLeastOnce => return self.producer.flush(&self.cfg).map(|()| Vec::new()),
            Guarantee::ExactlyOnce => {}
        }
        if self.kafka == InKafka::Current {
            let markers = self.markers.as_ref().ok_or_else(|| self.cfg.fail("pre-commit", "no markers"))?;
            self.producer.mark(&self.cfg, markers, id, self.run)?;
            self.producer.flush(&self.cfg)?;
            self.kafka = InKafka::PreCommitted(id);
        }
        self.live = false;
        self.precommitted.push_back(id);
        let h = Handle {
            transactional_id: self.transactional_id.clone(),
            run: self.run,
            shards: self.shards,
            records: std::mem::take(&mut self.records),
        };
        Ok(h.encode())
    }

    fn commit(&mut self, pending: &Pending) -> Result<(), Error> {
        if !self.exactly_once() || self.committed.is_some_and(|c| pending.checkpoint <= c) {
            return Ok(());
        }
        if self.kafka == InKafka::PreCommitted(pending.checkpoint) {
            match self.producer.producer.commit_transaction(REQUEST_TIMEOUT) {
                Ok(()) => self.kafka = InKafka::Idle,
                // Another producer took the id over (another run of the job): taking it
                // back would fence the owner. Fail; the next run's recovery commits.
                Err(e) if self.producer.fenced(&e) => {
                    return Err(self.cfg.fail(
                        format!("`{}` was fenced by a newer producer with its transactional.id", self.transactional_id),
                        e,
                    ))
                }
                Err(e) => {
                    tracing::warn!(sink = %self.cfg.name(), id = %self.transactional_id, checkpoint = pending.checkpoint, error = %e, "commit failed: committing from the checkpoint's copy");
                    self.commit_by_replay(pending)?;
                }
            }
        } else {
            self.commit_by_replay(pending)?;
        }
        self.committed = Some(pending.checkpoint);
        self.precommitted.retain(|c| *c > pending.checkpoint);
        self.go_live()
    }

    fn abort(&mut self) -> Result<(), Error> {
        self.open = false;
        self.live = false;
        self.records.clear();
        if self.exactly_once() && self.kafka != InKafka::Idle {
            self.kafka = InKafka::Idle;
            self.producer
                .producer
                .abort_transaction(REQUEST_TIMEOUT)
                .map_err(|e| self.cfg.fail(format!("`{}`: cannot abort the transaction", self.transactional_id), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // librdkafka's unit test vectors (rdmurmur2.c), which are Java's results.
        for (key, hash) in [
            ("kafka", 0xd067_cf64_u32),
            ("giberish123456789", 0x8f55_2b0c),
            ("1234", 0x9fc9_7b14),
            ("234", 0xe7c0_09ca),
            ("34", 0x8739_30da),
            ("4", 0x5a4b_5ca1),
            ("PreAmbleWillBeRemoved,ThePrePartThatIs", 0x7842_4f1c),
            ("", 0x106e_08d9),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key:?}");
        }
    }

    #[test]
    fn handles_round_trip_and_refuse_damage() {
        let h = Handle {
            transactional_id: "job-3".into(),
            run: 0xfeed_beef,
            shards: 4,
            records: vec![
                Rec { partition: 0, key: Some(b"k".to_vec()), value: b"v1".to_vec() },
                Rec { partition: 2, key: None, value: Vec::new() },
            ],
        };
        let b = h.encode();
        assert_eq!(Handle::decode(&b).expect("decodes"), h);
        for cut in 0..b.len() {
            assert!(Handle::decode(b.get(..cut).unwrap_or_default()).is_err(), "a handle cut at {cut} decoded");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(Handle::decode(&longer).is_err());
    }

    #[test]
    fn marker_offsets_grow_with_the_checkpoint_and_saturate() {
        assert_eq!(marker_offset(0), 1);
        assert_eq!(marker_offset(41), 42);
        assert_eq!(marker_offset(u64::MAX), i64::MAX);
    }
}
