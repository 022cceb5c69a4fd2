//! The test broker itself (`noida-db`, started by `common/broker.rs`), through rdkafka,
//! the client sluice's Kafka source and sink use: a committed transaction is visible to
//! a `read_committed` consumer, an aborted one is not (while `read_uncommitted` shows it
//! was written), and a second producer with the same `transactional.id` fences the
//! first. Every exactly-once test against Kafka rests on these three; if the broker
//! loses one, this test fails loudly instead of those passing for the wrong reason.
#[path = "common/broker.rs"]
mod broker;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka::{create_topic, producer, TIMEOUT};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

fn transaction(p: &BaseProducer, topic: &str, partition: i32, payload: &str, commit: bool) -> Result<(), KafkaError> {
    kafka::transaction(p, topic, [(partition, payload)], commit)
}

const PARTITIONS: i32 = 2;

/// Every payload of `topic` a consumer with `isolation` reads, up to the end of each
/// partition (for `read_committed`: the last stable offset).
fn read_all(bootstrap: &str, topic: &str, isolation: &str) -> BTreeSet<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("broker-test-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let (mut got, mut at_end) = (BTreeSet::new(), BTreeSet::new());
    let started = Instant::now();
    while at_end.len() < PARTITIONS as usize {
        assert!(started.elapsed() < TIMEOUT, "{isolation}: no end of {topic} within {TIMEOUT:?}; read {got:?}");
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                got.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("{isolation}: consume {topic}: {e}"),
            None => {}
        }
    }
    got
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_broker_hides_aborted_transactions_and_fences_an_old_producer() {
    // Pins the broker's transactions: committed visible and aborted hidden under
    // read_committed (read_uncommitted sees both, so the abort was written), and a
    // producer fenced by a newer one with its transactional.id cannot commit.
    let b = broker::Broker::start();
    let topic = "broker-test";
    create_topic(&b.bootstrap, topic, PARTITIONS);
    let first = producer(&b.bootstrap, "sluice-broker-test");
    transaction(&first, topic, 0, "committed-0", true).expect("commit");
    transaction(&first, topic, 0, "aborted", false).expect("abort");
    transaction(&first, topic, 1, "committed-1", true).expect("commit");

    let second = producer(&b.bootstrap, "sluice-broker-test");
    let zombie = transaction(&first, topic, 0, "zombie", true);
    assert!(zombie.is_err(), "a fenced producer committed a transaction");
    transaction(&second, topic, 1, "after-fencing", true).expect("the new producer commits");

    assert_eq!(
        read_all(&b.bootstrap, topic, "read_committed"),
        set(&["committed-0", "committed-1", "after-fencing"]),
        "read_committed sees exactly the committed records"
    );
    let uncommitted = read_all(&b.bootstrap, topic, "read_uncommitted");
    assert!(uncommitted.contains("aborted"), "read_uncommitted sees the aborted record: {uncommitted:?}");
}
