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
use rdkafka::producer::{BaseProducer, Producer};
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

/// The offset of `topic`/0 that `group` has committed, with its metadata (`None` if it
/// has none), read as the Kafka sink reads its markers: a `read_committed` consumer of
/// the group.
fn committed(bootstrap: &str, group: &str, topic: &str) -> Option<(i64, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, TIMEOUT).expect("committed offsets");
    let elem = got.find_partition(topic, 0)?;
    match elem.offset() {
        Offset::Offset(o) => Some((o, elem.metadata().to_owned())),
        _ => None,
    }
}

/// Sends `group`'s offset `offset` of `topic`/0 (metadata `run-<offset>`) in a
/// transaction with one record, then commits or aborts it.
fn offsets_in_transaction(p: &BaseProducer, group: &str, topic: &str, offset: i64, commit: bool) {
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").set("group.id", group).create().expect("consumer");
    let meta = c.group_metadata().expect("group metadata");
    p.begin_transaction().expect("begin");
    p.send(rdkafka::producer::BaseRecord::<(), str>::to(topic).partition(0).payload("x")).expect("send");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset)).expect("partition");
    tpl.find_partition(topic, 0).expect("partition").set_metadata(format!("run-{offset}"));
    p.send_offsets_to_transaction(&tpl, &meta, TIMEOUT).expect("send_offsets_to_transaction");
    p.flush(TIMEOUT).expect("flush");
    if commit {
        p.commit_transaction(TIMEOUT).expect("commit");
    } else {
        p.abort_transaction(TIMEOUT).expect("abort");
    }
}

#[test]
fn offsets_sent_to_a_transaction_are_committed_with_it() {
    // Pins what the Kafka sink's markers rest on: a group's offset sent to a
    // transaction (send_offsets_to_transaction) is the group's committed offset once
    // the transaction commits (its metadata with it), never after it aborts, and not
    // while it is open; a new
    // producer with the same transactional.id aborts the open one, offset included.
    let b = broker::Broker::start();
    let topic = "offsets-test";
    create_topic(&b.bootstrap, topic, 1);
    let group = "sluice-offsets-test";
    assert_eq!(committed(&b.bootstrap, group, topic), None, "a new group has no offset");
    let p = producer(&b.bootstrap, "sluice-offsets-test");
    offsets_in_transaction(&p, group, topic, 5, true);
    assert_eq!(committed(&b.bootstrap, group, topic), Some((5, "run-5".into())), "committed with the transaction");
    offsets_in_transaction(&p, group, topic, 9, false);
    assert_eq!(
        committed(&b.bootstrap, group, topic),
        Some((5, "run-5".into())),
        "an aborted transaction's offset is not committed"
    );

    // Left open (a crash after the pre-commit), then aborted by the next producer.
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").set("group.id", group).create().expect("consumer");
    let meta = c.group_metadata().expect("group metadata");
    p.begin_transaction().expect("begin");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(7)).expect("partition");
    p.send_offsets_to_transaction(&tpl, &meta, TIMEOUT).expect("send_offsets_to_transaction");
    p.flush(TIMEOUT).expect("flush");
    drop(p);
    let next = producer(&b.bootstrap, "sluice-offsets-test");
    assert_eq!(
        committed(&b.bootstrap, group, topic),
        Some((5, "run-5".into())),
        "the open transaction's offset was aborted"
    );
    offsets_in_transaction(&next, group, topic, 12, true);
    assert_eq!(committed(&b.bootstrap, group, topic), Some((12, "run-12".into())));
}
