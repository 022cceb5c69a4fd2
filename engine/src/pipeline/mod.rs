//! Jobs written as TOML files: a source, a key field, one aggregate, a sink. No Rust.
//! See docs/OPERATIONS.md for the file's fields.
mod aggregate;
mod ctx;
mod number;
mod plan;
mod records;
mod sink_spec;
mod spec;
mod table;
mod ttl;

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

pub use aggregate::{Aggregate, Output};
pub use number::Number;
pub use plan::{AggregateKind, CsvPlan, Emit, Format, ValueType};
pub use records::{parser, split_csv};
pub use spec::{load, parse, JobPlan, KafkaSinkPlan, MysqlPlan};
pub use ttl::TtlPlan;

use crate::badrecord::BadRecords;
use crate::error::{Error, JobError};
use crate::job::Job;
use crate::runtime::config::{RunConfig, RunReport};
use crate::sink::files::PartFiles;
use crate::sink::kafka::KafkaSink;
use crate::sink::mysql::{MysqlSink, Value};
use crate::sink::two_phase::TwoPhaseCommitSink;
use crate::sink::{LineSink, SinkFactory};
use crate::source::file::FileSource;
use crate::source::generator::Generator;
use crate::source::kafka::KafkaSource;
use crate::source::tcp::TcpSource;
use crate::source::Source;
use records::Input;
use spec::{SinkKind, SourcePlan};
use table::TopTable;

/// One output line: `{"key": .., "<aggregate>": <value>}`, the value as the exact JSON
/// number [`Number::to_json`] writes.
struct Line<'a> {
    key: &'a str,
    field: &'static str,
    value: Box<RawValue>,
}

impl serde::Serialize for Line<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", self.key)?;
        m.serialize_entry(self.field, &self.value)?;
        m.end()
    }
}

/// The `sequence` aggregate's line.
#[derive(serde::Serialize)]
struct SequenceLine<'a> {
    key: &'a str,
    count: u64,
    max: u64,
    sum: u64,
}

fn json_line(field: &'static str) -> impl Fn(&Output, &mut String) + Send + Sync + 'static {
    move |o, buf| {
        let line = match &o.extra {
            Some(s) => serde_json::to_string(&SequenceLine { key: &o.key, count: s.count, max: s.max, sum: s.sum }),
            None => serde_json::to_string(&Line { key: &o.key, field, value: o.value.to_json() }),
        };
        // Serializing strings, integers and a raw value that is already valid JSON into
        // a String cannot fail.
        buf.push_str(&line.unwrap_or_default());
    }
}

fn source_of(plan: &JobPlan) -> Arc<dyn Source<Input>> {
    let (agg, ty, vf) = (plan.aggregate, plan.value_type, plan.value_field.clone());
    let parser = |format, csv| records::parser(format, csv, &plan.key_field, agg, ty, vf.as_deref());
    match &plan.source {
        SourcePlan::File { path, format, csv } => {
            Arc::new(FileSource::with_parser(path, parser(*format, csv)).skip_header(csv.header))
        }
        SourcePlan::Tcp { address, format, csv } => Arc::new(TcpSource::new(*address, parser(*format, csv))),
        SourcePlan::Kafka { bootstrap, topic, start, bounded, group, discovery, format, csv } => {
            let mut source = KafkaSource::new(bootstrap, topic, parser(*format, csv))
                .start_from(*start)
                .discover_partitions(*discovery);
            if let Some(g) = group {
                source = source.group(g);
            }
            Arc::new(if *bounded { source.bounded() } else { source })
        }
        SourcePlan::Generator { count, keys, rate_per_s } => {
            let keys = *keys;
            Arc::new(
                Generator::new(*count, move |seq| records::generated(seq, keys, agg, ty, vf.as_deref()))
                    .rate_per_s(*rate_per_s),
            )
        }
    }
}

/// The columns a `mysql` sink writes: `key` and `value`, or for `sequence` `key`,
/// `count`, `max` and `sum` (the fields of its JSON line).
fn mysql_columns(aggregate: AggregateKind) -> &'static [&'static str] {
    match aggregate {
        AggregateKind::Sequence => &["key", "count", "max", "sum"],
        _ => &["key", "value"],
    }
}

/// One output as a row of [`mysql_columns`]. A decimal goes as its exact text (the
/// server converts it to the column's type), a float as a double.
fn mysql_row(o: &Output) -> Vec<Value> {
    let key = Value::Bytes(o.key.as_bytes().to_vec());
    match &o.extra {
        Some(s) => vec![key, Value::UInt(s.count), Value::UInt(s.max), Value::UInt(s.sum)],
        None => vec![
            key,
            match o.value {
                Number::Int(v) => Value::Int(v),
                Number::Decimal(_) => Value::Bytes(o.value.to_string().into_bytes()),
                Number::Float(v) => Value::Double(v),
            },
        ],
    }
}

/// The job's sink; `interval` is the checkpoint interval the job runs with (a Kafka
/// sink checks its transaction timeout against it).
fn sink_of(plan: &JobPlan, interval: Option<Duration>) -> Result<Arc<dyn SinkFactory<Output>>, Error> {
    let field = plan.aggregate.name();
    if let Some(m) = &plan.mysql {
        let sink = MysqlSink::from_url(&m.url, &plan.name, &m.table, mysql_columns(plan.aggregate), mysql_row)?;
        return Ok(Arc::new(sink.guarantee(m.guarantee).into_sink()));
    }
    if let (SinkKind::Kafka, Some(k)) = (plan.sink, &plan.sink_kafka) {
        let line = json_line(field);
        let record = move |o: &Output| {
            let mut value = String::new();
            line(o, &mut value);
            (Some(o.key.as_bytes().to_vec()), value.into_bytes())
        };
        let mut sink =
            KafkaSink::new(&k.bootstrap, &k.topic, &k.transactional_id_prefix, record).guarantee(k.guarantee);
        if let Some(iv) = interval {
            sink = sink.checkpoint_interval(iv);
        }
        return Ok(Arc::new(sink.into_factory()));
    }
    Ok(match (plan.sink, &plan.sink_path, plan.top) {
        (SinkKind::Stdout, _, Some(top)) => Arc::new(TopTable::new(top, field)),
        (SinkKind::File, Some(p), _) => Arc::new(LineSink::file(p, json_line(field))?),
        (SinkKind::Files, _, _) => {
            let f =
                plan.sink_files.as_ref().ok_or_else(|| Error::Config("a files sink without its settings".into()))?;
            let format: crate::sink::LineFormat<Output> = Arc::new(json_line(field));
            let mut files = PartFiles::new(&f.dir, &f.prefix, ".jsonl", format);
            (files.roll_bytes, files.roll_interval) = (f.roll_bytes, f.roll_interval);
            Arc::new(TwoPhaseCommitSink::new(files, f.guarantee))
        }
        _ => Arc::new(LineSink::stdout(json_line(field))),
    })
}

/// Runs a TOML job. The source is checked before the sink is created, so a missing
/// input leaves no output file behind.
pub fn run(plan: &JobPlan, cfg: &RunConfig) -> Result<RunReport, JobError> {
    let source = source_of(plan);
    source.check().map_err(JobError::Setup)?;
    crate::runtime::setup::check_data_dir(cfg).map_err(JobError::Setup)?;
    let mut cfg = cfg.clone();
    if let Some(g) = plan.max_key_groups {
        cfg.max_key_groups = g;
    }
    let (kind, ty, emit, ttl) = (plan.aggregate, plan.value_type, plan.emit, plan.ttl);
    // A restore the job must refuse is refused before the dead-letter and output files
    // are created (truncated).
    let ignore = Arc::new(BadRecords::ignore());
    let states = |reg: &mut _| Aggregate::open(kind, ty, emit, ttl, ignore, reg).map(|_| ());
    crate::runtime::setup::check_restore_states(&plan.name, &cfg, false, states).map_err(JobError::Setup)?;
    if cfg.checkpoint.is_none() {
        cfg.checkpoint = plan.checkpoint.clone();
    }
    // A second daemon on this job's checkpoints is refused before it truncates the
    // first one's dead-letter and output files.
    crate::runtime::setup::lock_checkpoint_root(&plan.name, &mut cfg).map_err(JobError::Setup)?;
    let outputs = BadRecords::new(plan.fail_on_bad_record, plan.dead_letter.as_deref())
        .and_then(|bad| Ok((bad, sink_of(plan, cfg.checkpoint.as_ref().map(|c| c.interval))?)));
    let (bad, sink) = match outputs {
        Ok(o) => o,
        Err(e) => {
            crate::runtime::setup::release_after_failed_setup(&mut cfg);
            return Err(JobError::Setup(e));
        }
    };
    cfg.bad_records = Arc::new(bad);
    let bad = cfg.bad_records.clone();
    Job::new(plan.name.clone())
        .source(source)
        .key_by(|i: &Input| i.key.clone())
        .process(move |reg| Aggregate::open(kind, ty, emit, ttl, bad.clone(), reg))
        .sink(sink)
        .run(&cfg)
}
