//! A Kafka source (Flink's `KafkaSource`): a topic's partitions dealt to shards, read
//! with `read_committed` isolation through rdkafka's blocking consumer, polled without
//! blocking from the shard's executor (no async runtime, no thread per partition).
//!
//! Partitions are the splits: split `id` is partition `id`, `next` the offset of the
//! first record not yet emitted. Partition p goes to shard p % shards on a fresh start,
//! and a restore deals the checkpoint's splits by the same rule onto any shard count, so
//! each partition resumes exactly where the checkpoint's barrier cut it. Each message's
//! payload is one line for the job's parser.
//!
//! After each published checkpoint a reader commits its partitions' checkpointed
//! offsets to the consumer group (for monitoring with Kafka's tools, and for
//! `StartFrom::Committed`); the checkpoint, not the group, is what a restore resumes
//! from. An unbounded reader looks for new partitions of the topic every discovery
//! interval and reads the ones dealt to its shard (partition p to shard p % shards) from
//! their earliest offset, like Flink's partition discovery.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{LineParser, LocalBoxFuture, Source, SourceContext, SourceReader, Split};
use crate::error::Error;

/// How long a metadata or offset request to the broker may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the metadata request of a partition discovery may take (it runs on the
/// shard's thread, between reads).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an unbounded reader looks for new partitions, unless told otherwise.
pub const DISCOVERY_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
/// How long a reader with nothing to read waits before handing control back to the
/// producer (which looks at the stop flag and answers checkpoint requests).
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// Where partitions start when the job starts without a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
    /// The first record at or after this time (milliseconds since the epoch).
    Timestamp(i64),
    /// The consumer group's committed offsets; the earliest where it has none.
    Committed,
}

pub struct KafkaSource<T> {
    bootstrap: String,
    topic: String,
    start: StartFrom,
    bounded: bool,
    properties: Vec<(String, String)>,
    parse: LineParser<T>,
    group: Option<String>,
    /// None: no discovery (bounded sources never discover).
    discovery: Option<Duration>,
}

impl<T> KafkaSource<T> {
    /// Reads `topic` from the brokers `bootstrap` (`host:port[,host:port]`), each
    /// message's payload parsed by `parse`; from the earliest offsets, never ending.
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>, parse: LineParser<T>) -> Self {
        KafkaSource {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            start: StartFrom::Earliest,
            bounded: false,
            properties: Vec::new(),
            parse,
            group: None,
            discovery: Some(DISCOVERY_INTERVAL_DEFAULT),
        }
    }

    /// The consumer group offsets are committed to (default `sluice-<topic>`).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// How often an unbounded reader looks for new partitions (None: never).
    pub fn discover_partitions(mut self, every: Option<Duration>) -> Self {
        self.discovery = every;
        self
    }

    fn group_id(&self) -> String {
        self.group.clone().unwrap_or_else(|| format!("sluice-{}", self.topic))
    }

    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Ends each partition when the reader reaches its end (for `read_committed`: the
    /// last stable offset), and the source when every partition of the shard has ended.
    pub fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }

    /// A librdkafka consumer property (`security.protocol`, `group.id`, ...).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Source { name: self.label(), reason: format!("{what}: {e}") }
    }

    fn label(&self) -> String {
        format!("kafka://{}/{}", self.bootstrap, self.topic)
    }

    fn consumer(&self) -> Result<BaseConsumer, Error> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", self.group_id())
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", if self.bounded { "true" } else { "false" });
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.create().map_err(|e| self.fail("cannot create a consumer", e))
    }

    /// The topic's partition count; an unreachable broker or a missing topic is an error
    /// naming them.
    fn partitions(&self, consumer: &BaseConsumer) -> Result<i32, Error> {
        let meta = consumer
            .fetch_metadata(Some(&self.topic), REQUEST_TIMEOUT)
            .map_err(|e| self.fail(&format!("cannot reach the broker at {}", self.bootstrap), e))?;
        let topic = meta.topics().iter().find(|t| t.name() == self.topic);
        match topic {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
            _ => Err(self.fail("no such topic", format!("`{}` does not exist on {}", self.topic, self.bootstrap))),
        }
    }

    fn start_offset(&self, consumer: &BaseConsumer, partition: i32) -> Result<u64, Error> {
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, REQUEST_TIMEOUT)
            .map_err(|e| self.fail(&format!("cannot read the offsets of partition {partition}"), e))?;
        let at = match self.start {
            StartFrom::Earliest => low,
            StartFrom::Latest => high,
            StartFrom::Timestamp(ms) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, partition, Offset::Offset(ms))
                    .map_err(|e| self.fail("bad partition", e))?;
                let found = consumer
                    .offsets_for_times(tpl, REQUEST_TIMEOUT)
                    .map_err(|e| self.fail(&format!("cannot look up offsets at {ms} ms"), e))?;
                match found.find_partition(&self.topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    // No record at or after the time: start at the end.
                    _ => high,
                }
            }
            StartFrom::Committed => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.topic, partition);
                let committed = consumer.committed_offsets(tpl, REQUEST_TIMEOUT).map_err(|e| {
                    self.fail(&format!("cannot read the committed offsets of group {}", self.group_id()), e)
                })?;
                match committed.find_partition(&self.topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.clamp(low, high),
                    _ => low,
                }
            }
        };
        Ok(at.max(0) as u64)
    }
}

impl<T: Send + 'static> Source<T> for KafkaSource<T> {
    fn name(&self) -> String {
        self.label()
    }

    fn check(&self) -> Result<(), Error> {
        let consumer = self.consumer()?;
        self.partitions(&consumer).map(drop)
    }

    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, Error> {
        let consumer = self.consumer()?;
        let splits = match &ctx.restored {
            Some(s) => s.clone(),
            None => {
                let n = self.partitions(&consumer)?;
                let mine = (0..n).filter(|p| (*p as u32) % ctx.shards.max(1) == u32::from(ctx.shard.0));
                mine.map(|p| Ok(Split { id: p as u32, next: self.start_offset(&consumer, p)?, end: u64::MAX, step: 1 }))
                    .collect::<Result<Vec<_>, Error>>()?
            }
        };
        let mut tpl = TopicPartitionList::new();
        for s in &splits {
            tpl.add_partition_offset(&self.topic, s.id as i32, Offset::Offset(s.next as i64))
                .map_err(|e| self.fail("bad partition", e))?;
        }
        consumer.assign(&tpl).map_err(|e| self.fail("cannot assign partitions", e))?;
        tracing::info!(shard = ctx.shard.0, topic = %self.topic, partitions = ?splits.iter().map(|s| s.id).collect::<Vec<_>>(), "reading kafka");
        let discovery = self.discovery.filter(|_| !self.bounded).map(|every| (every, Instant::now() + every));
        Ok(Box::new(KafkaReader {
            name: self.label(),
            topic: self.topic.clone(),
            consumer,
            splits,
            ended: BTreeSet::new(),
            bounded: self.bounded,
            parse: self.parse.clone(),
            ctx: ctx.clone(),
            discovery,
        }))
    }
}

struct KafkaReader<T> {
    name: String,
    topic: String,
    consumer: BaseConsumer,
    splits: Vec<Split>,
    /// Partitions that reached their end (bounded sources only).
    ended: BTreeSet<u32>,
    bounded: bool,
    parse: LineParser<T>,
    ctx: SourceContext,
    /// Partition discovery: the interval and the next look.
    discovery: Option<(Duration, Instant)>,
}

impl<T> KafkaReader<T> {
    /// Looks for partitions of the topic dealt to this shard that it does not read yet
    /// (new since the start, or since the checkpoint restored) and reads them from their
    /// earliest offset. A broker that does not answer in time is asked again next time.
    fn discover(&mut self) -> Result<(), Error> {
        let Some((every, at)) = self.discovery else { return Ok(()) };
        if Instant::now() < at {
            return Ok(());
        }
        self.discovery = Some((every, Instant::now() + every));
        let meta = match self.consumer.fetch_metadata(Some(&self.topic), DISCOVERY_TIMEOUT) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "partition discovery failed; trying again later");
                return Ok(());
            }
        };
        let Some(t) = meta.topics().iter().find(|t| t.name() == self.topic) else { return Ok(()) };
        let (shard, shards) = (u32::from(self.ctx.shard.0), self.ctx.shards.max(1));
        let new: Vec<u32> = t
            .partitions()
            .iter()
            .map(|p| p.id() as u32)
            .filter(|p| p % shards == shard && !self.splits.iter().any(|s| s.id == *p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        for p in &new {
            let (low, _) = self
                .consumer
                .fetch_watermarks(&self.topic, *p as i32, REQUEST_TIMEOUT)
                .map_err(|e| Error::Source { name: self.name.clone(), reason: format!("partition {p}: {e}") })?;
            self.splits.push(Split { id: *p, next: low.max(0) as u64, end: u64::MAX, step: 1 });
        }
        let mut tpl = TopicPartitionList::new();
        for s in &self.splits {
            tpl.add_partition_offset(&self.topic, s.id as i32, Offset::Offset(s.next as i64))
                .map_err(|e| Error::Source { name: self.name.clone(), reason: e.to_string() })?;
        }
        self.consumer.assign(&tpl).map_err(|e| Error::Source { name: self.name.clone(), reason: e.to_string() })?;
        tracing::info!(shard, topic = %self.topic, partitions = ?new, "reading new partitions");
        Ok(())
    }

    /// Reads what the consumer has now, up to `max` records; false once a bounded
    /// reader's partitions have all ended.
    fn read_now(&mut self, out: &mut Vec<T>, max: usize) -> Result<bool, Error> {
        self.discover()?;
        let start_len = out.len();
        while out.len() - start_len < max {
            if self.bounded && self.ended.len() >= self.splits.len() {
                return Ok(false);
            }
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    let (partition, offset) = (m.partition() as u32, m.offset());
                    if let Some(s) = self.splits.iter_mut().find(|s| s.id == partition) {
                        s.next = (offset + 1).max(0) as u64;
                    }
                    let payload = m.payload().unwrap_or_default();
                    if let Err(reason) = (self.parse)(super::trim_eol(payload), out) {
                        let at = format!("partition {partition} offset {offset}");
                        self.ctx.bad.report(&self.name, &at, &reason, payload)?;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.ended.insert(p as u32);
                }
                Some(Err(e)) => return Err(Error::Source { name: self.name.clone(), reason: e.to_string() }),
            }
        }
        Ok(!(self.bounded && self.ended.len() >= self.splits.len()))
    }
}

impl<T> SourceReader<T> for KafkaReader<T> {
    fn read<'a>(&'a mut self, out: &'a mut Vec<T>, max: usize) -> LocalBoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let before = out.len();
            let more = self.read_now(out, max)?;
            if more && out.len() == before && !self.ctx.stopping() {
                glommio::timer::sleep(IDLE_WAIT).await;
            }
            Ok(more)
        })
    }

    fn position(&self) -> Option<Vec<Split>> {
        Some(self.splits.clone())
    }

    fn checkpoint_complete(&mut self, id: u64, position: &[Split]) {
        let mut tpl = TopicPartitionList::new();
        for s in position {
            if let Err(e) = tpl.add_partition_offset(&self.topic, s.id as i32, Offset::Offset(s.next as i64)) {
                tracing::warn!(partition = s.id, error = %e, "cannot commit a partition's offset");
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync) {
            tracing::warn!(topic = %self.topic, checkpoint = id, error = %e, "cannot commit the checkpoint's offsets to the consumer group");
        }
    }
}
