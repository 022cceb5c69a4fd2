//! Kafka clients for tests, through rdkafka: topics made with the admin API, and
//! transactional producers writing payloads into committed or aborted transactions.
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub const TIMEOUT: Duration = Duration::from_secs(15);

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let made = futures_lite::future::block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
    ))
    .expect("create_topics");
    for r in made {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// Grows `topic` to `partitions` partitions.
#[allow(dead_code, reason = "not every test binary that includes this module uses it")]
pub fn add_partitions(bootstrap: &str, topic: &str, partitions: usize) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let made = futures_lite::future::block_on(admin.create_partitions(
        &[rdkafka::admin::NewPartitions::new(topic, partitions)],
        &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
    ))
    .expect("create_partitions");
    for r in made {
        r.unwrap_or_else(|(t, e)| panic!("add partitions to {t}: {e}"));
    }
}

/// The offsets consumer group `group` committed for `topic`'s partitions `0..partitions`
/// (partitions without a committed offset are left out).
#[allow(dead_code, reason = "not every test binary that includes this module uses it")]
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i32, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, TIMEOUT).expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Every payload a `read_committed` consumer reads from `topic`'s partitions
/// `0..partitions`, from the beginning to the last stable offset of each.
#[allow(dead_code, reason = "not every test binary that includes this module uses it")]
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Vec<u8>> {
    read_all_with(bootstrap, topic, partitions, "read_committed")
}

#[allow(dead_code, reason = "not every test binary that includes this module uses it")]
pub fn read_all_with(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<Vec<u8>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("read-all-{topic}"))
        .set("isolation.level", isolation)
        // One fetch per partition: the test broker lists, for a fetch that starts past
        // an aborted transaction, that transaction as if it covered the fetch, and
        // librdkafka then drops the producer's later (committed) batches (TESTING.md).
        .set("fetch.max.bytes", "500000000")
        .set("max.partition.fetch.bytes", "500000000")
        .set("receive.message.max.bytes", "1000000000")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let (mut got, mut at_end) = (Vec::new(), std::collections::BTreeSet::new());
    let started = std::time::Instant::now();
    while at_end.len() < partitions as usize {
        assert!(started.elapsed() < TIMEOUT * 8, "no end of {topic} after {} records", got.len());
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(m.payload().unwrap_or_default().to_vec()),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    got
}

/// A transactional producer, its transactions initialised (fencing any older producer
/// with the same id).
pub fn producer(bootstrap: &str, transactional_id: &str) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .create()
        .expect("producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

/// Sends `(partition, payload)` pairs inside one transaction, then commits or aborts it.
pub fn transaction<'a>(
    p: &BaseProducer,
    topic: &str,
    records: impl IntoIterator<Item = (i32, &'a str)>,
    commit: bool,
) -> Result<(), KafkaError> {
    p.begin_transaction()?;
    for (partition, payload) in records {
        loop {
            match p.send(BaseRecord::<(), str>::to(topic).partition(partition).payload(payload)) {
                Ok(()) => break,
                // The local queue is full: let deliveries drain, then retry.
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), _)) => {
                    p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    p.flush(TIMEOUT)?;
    if commit {
        p.commit_transaction(TIMEOUT)
    } else {
        p.abort_transaction(TIMEOUT)
    }
}
