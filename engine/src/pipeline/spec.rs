//! The TOML job file: parsed with spans, validated, resolved into a [`JobPlan`].
//! Every error names the file, the line and the field.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ctx::Ctx;
use super::plan::{AggregateKind, CsvPlan, Emit, Format, ValueType};
use super::sink_spec::{output_plan, RawOutput, RawSink};
pub use super::sink_spec::{FilesPlan, KafkaSinkPlan, MysqlPlan, SinkKind};
use super::ttl::{ttl_plan, RawTtl, TtlPlan};
use crate::error::Error;
use crate::runtime::checkpoint::config::{CheckpointConfig, CheckpointMode, Cleanup};
use crate::runtime::restart::RestartStrategy;
use crate::source::kafka::StartFrom;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    job: Spanned<RawJob>,
    source: Spanned<RawSource>,
    key: Spanned<RawKey>,
    aggregate: Spanned<RawAggregate>,
    #[serde(default)]
    output: Option<Spanned<RawOutput>>,
    sink: Spanned<RawSink>,
    #[serde(default)]
    errors: Option<RawErrors>,
    #[serde(default)]
    checkpoint: Option<Spanned<RawCheckpoint>>,
    #[serde(default)]
    restart: Option<Spanned<RawRestart>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    dir: Spanned<String>,
    interval_ms: Option<Spanned<u64>>,
    retain: Option<Spanned<usize>>,
    mode: Option<CheckpointMode>,
    min_pause_ms: Option<u64>,
    timeout_ms: Option<Spanned<u64>>,
    tolerable_failures: Option<u32>,
    cleanup: Option<Cleanup>,
    incremental: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StrategyKind {
    None,
    FixedDelay,
    FailureRate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    strategy: Spanned<StrategyKind>,
    attempts: Option<u32>,
    delay_ms: Option<u64>,
    max_failures: Option<u32>,
    interval_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Spanned<String>,
    max_key_groups: Option<Spanned<u32>>,
    report_interval_s: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    File,
    Tcp,
    Kafka,
    Generator,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Spanned<SourceKind>,
    path: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    format: Option<Spanned<Format>>,
    header: Option<Spanned<bool>>,
    columns: Option<Spanned<Vec<String>>>,
    delimiter: Option<Spanned<String>>,
    count: Option<Spanned<u64>>,
    keys: Option<Spanned<u64>>,
    rate_per_s: Option<Spanned<u64>>,
    bootstrap: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    bounded: Option<Spanned<bool>>,
    group: Option<Spanned<String>>,
    discovery_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    field: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregate {
    kind: Spanned<AggregateKind>,
    field: Option<Spanned<String>>,
    #[serde(rename = "type")]
    value_type: Option<Spanned<ValueType>>,
    ttl: Option<RawTtl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErrors {
    dead_letter: Option<Spanned<String>>,
    fail_on_bad_record: Option<bool>,
}

/// Where records come from, resolved.
#[derive(Debug, Clone)]
pub enum SourcePlan {
    File {
        path: PathBuf,
        format: Format,
        csv: CsvPlan,
    },
    Tcp {
        address: SocketAddr,
        format: Format,
        csv: CsvPlan,
    },
    /// Each message's payload is one line in `format`.
    Kafka {
        bootstrap: String,
        topic: String,
        start: StartFrom,
        bounded: bool,
        /// The consumer group offsets are committed to (None: `sluice-<topic>`).
        group: Option<String>,
        /// Partition discovery interval (None: never).
        discovery: Option<Duration>,
        format: Format,
        csv: CsvPlan,
    },
    Generator {
        count: Option<u64>,
        keys: u64,
        rate_per_s: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct JobPlan {
    pub name: String,
    pub max_key_groups: Option<u32>,
    pub report_interval_s: Option<u64>,
    pub source: SourcePlan,
    pub key_field: String,
    pub aggregate: AggregateKind,
    pub value_field: Option<String>,
    /// The type values of `value_field` are read and aggregated in: the job's `type`,
    /// else [`default_type`].
    pub value_type: ValueType,
    /// `[aggregate.ttl]`: a time-to-live on the aggregate's state, and its cleanup.
    pub ttl: Option<TtlPlan>,
    pub emit: Emit,
    pub sink: SinkKind,
    pub sink_path: Option<PathBuf>,
    pub sink_files: Option<FilesPlan>,
    /// `kind = "kafka"`: its settings.
    pub sink_kafka: Option<KafkaSinkPlan>,
    pub mysql: Option<MysqlPlan>,
    pub top: Option<usize>,
    pub dead_letter: Option<PathBuf>,
    pub fail_on_bad_record: bool,
    pub checkpoint: Option<CheckpointConfig>,
    /// `None`: the default (fixed-delay, 3 attempts, 1 s, when checkpointing; else none).
    pub restart: Option<RestartStrategy>,
}

fn fields_of(format: Format, csv: &CsvPlan) -> Option<Vec<String>> {
    match format {
        Format::Lines => Some(vec!["line".into()]),
        Format::Words => Some(vec!["word".into()]),
        Format::Csv => Some(csv.columns.clone()),
        Format::Json => None,
    }
}

fn read_header(path: &Path, delimiter: u8) -> Result<Vec<String>, Error> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut line = Vec::new();
    std::io::BufReader::new(f).read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(super::records::trim(&line))
        .map_err(|_| Error::Config(format!("{}: CSV header is not valid UTF-8", path.display())))?;
    super::records::split_csv(text, delimiter)
        .map_err(|e| Error::Config(format!("{}: CSV header: {e}", path.display())))
}

/// Parses and validates a job file.
pub fn load(file: &Path) -> Result<JobPlan, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    parse(file, &text)
}

/// Parses and validates a job file's text: each section is resolved by its own function,
/// in file order, so the first error reported is the first one a reader meets.
pub fn parse(file: &Path, text: &str) -> Result<JobPlan, Error> {
    let cx = Ctx { file, text };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| cx.line_col(s));
        Error::Config(format!("{}:{line}:{col}: {}", file.display(), e.message()))
    })?;

    let job = raw.job.into_inner();
    formats::layout::validate_job_name(job.name.get_ref()).map_err(|m| cx.err(job.name.span(), "job.name", m))?;
    let source = source_plan(&cx, &raw.source)?;
    let known = known_fields(&source);
    let key_field = check_field(&cx, known.as_deref(), &raw.key.get_ref().field, "key.field")?;
    let (aggregate, value_field, value_type) = aggregate_plan(&cx, &raw.aggregate, known.as_deref())?;
    let ttl = raw.aggregate.get_ref().ttl.as_ref().map(ttl_plan).transpose().map_err(|(s, f, m)| cx.err(s, f, m))?;
    let out = output_plan(&cx, &raw.sink, raw.output.as_ref(), job.name.get_ref())?;
    let errors = raw.errors.as_ref();
    let checkpoint = raw.checkpoint.as_ref().map(|c| checkpoint_plan(&cx, c.get_ref())).transpose()?;
    let restart = raw.restart.as_ref().map(|r| restart_plan(&cx, r.get_ref())).transpose()?;
    Ok(JobPlan {
        name: job.name.into_inner(),
        max_key_groups: job.max_key_groups.map(Spanned::into_inner),
        report_interval_s: job.report_interval_s.map(Spanned::into_inner),
        source,
        key_field,
        aggregate,
        value_field,
        value_type,
        ttl,
        emit: out.emit,
        sink: out.sink,
        sink_path: out.sink_path,
        sink_files: out.files,
        sink_kafka: out.kafka,
        mysql: out.mysql,
        top: out.top,
        dead_letter: errors.and_then(|e| e.dead_letter.as_ref()).map(|p| cx.path(p.get_ref())),
        fail_on_bad_record: errors.and_then(|e| e.fail_on_bad_record).unwrap_or(false),
        checkpoint,
        restart,
    })
}

/// `[source]`: its kind's required fields, the CSV settings, and (for a CSV file with a
/// header) the column names read from the file.
fn source_plan(cx: &Ctx<'_>, raw: &Spanned<RawSource>) -> Result<SourcePlan, Error> {
    let src = raw.get_ref();
    let src_span = raw.span();
    let csv = csv_plan(cx, src)?;
    let source = match *src.kind.get_ref() {
        SourceKind::File | SourceKind::Tcp | SourceKind::Kafka => {
            let format = src
                .format
                .as_ref()
                .map(|f| *f.get_ref())
                .ok_or_else(|| cx.err(src_span.clone(), "source.format", "required: lines, words, csv or json"))?;
            match *src.kind.get_ref() {
                SourceKind::Kafka => kafka(cx, raw, format, csv)?,
                _ => file_or_tcp(cx, raw, format, csv)?,
            }
        }
        SourceKind::Generator => {
            let keys = src.keys.as_ref().map_or(1000, |k| *k.get_ref());
            if keys == 0 {
                return Err(cx.err(
                    src.keys.as_ref().map_or(src_span.clone(), Spanned::span),
                    "source.keys",
                    "must be at least 1",
                ));
            }
            SourcePlan::Generator {
                count: src.count.as_ref().map(|c| *c.get_ref()),
                keys,
                rate_per_s: src.rate_per_s.as_ref().map(|r| *r.get_ref()),
            }
        }
    };
    if let SourcePlan::File { format: Format::Csv, csv, .. }
    | SourcePlan::Tcp { format: Format::Csv, csv, .. }
    | SourcePlan::Kafka { format: Format::Csv, csv, .. } = &source
    {
        if csv.columns.is_empty() {
            return Err(cx.err(
                src_span,
                "source.columns",
                "CSV needs column names: set `columns`, or `header = true` for a file",
            ));
        }
    }
    Ok(source)
}

/// The delimiter, header flag and explicit column names of `[source]`.
fn csv_plan(cx: &Ctx<'_>, src: &RawSource) -> Result<CsvPlan, Error> {
    let mut csv = match src.delimiter.as_ref() {
        Some(d) if d.get_ref().len() != 1 => {
            return Err(cx.err(d.span(), "source.delimiter", "must be exactly one ASCII character"))
        }
        Some(d) => CsvPlan { delimiter: d.get_ref().as_bytes().first().copied().unwrap_or(b','), ..Default::default() },
        None => CsvPlan { delimiter: b',', ..Default::default() },
    };
    csv.header = src.header.as_ref().is_some_and(|h| *h.get_ref());
    if let Some(c) = &src.columns {
        csv.columns = c.get_ref().clone();
    }
    Ok(csv)
}

/// A file source (its path, and its CSV header when asked to read one) or a TCP source.
fn file_or_tcp(cx: &Ctx<'_>, raw: &Spanned<RawSource>, format: Format, mut csv: CsvPlan) -> Result<SourcePlan, Error> {
    let src = raw.get_ref();
    let src_span = raw.span();
    if *src.kind.get_ref() == SourceKind::File {
        let path = src.path.as_ref().map(|s| cx.path(s.get_ref())).ok_or_else(|| {
            cx.err(src_span.clone(), "source.path", format!("required for source kind {:?}", src.kind.get_ref()))
        })?;
        if format == Format::Csv && csv.header && csv.columns.is_empty() {
            csv.columns = read_header(&path, csv.delimiter)?;
        }
        return Ok(SourcePlan::File { path, format, csv });
    }
    let a = src.address.as_ref().ok_or_else(|| cx.err(src_span, "source.address", "required for source kind tcp"))?;
    let address =
        a.get_ref().parse().map_err(|e| cx.err(a.span(), "source.address", format!("{:?}: {e}", a.get_ref())))?;
    Ok(SourcePlan::Tcp { address, format, csv })
}

/// A Kafka source: its brokers and topic (required), where it starts without a
/// checkpoint (`earliest`, `latest`, `committed` group offsets, or a time in
/// milliseconds since the epoch), whether it ends at the end of each partition, its
/// consumer group and how often it looks for new partitions (`discovery_ms`, 0: never).
fn kafka(cx: &Ctx<'_>, raw: &Spanned<RawSource>, format: Format, csv: CsvPlan) -> Result<SourcePlan, Error> {
    let src = raw.get_ref();
    let required = |f: &Option<Spanned<String>>, name: &str| {
        f.as_ref()
            .map(|v| v.get_ref().clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| cx.err(raw.span(), name, "required for source kind kafka"))
    };
    let (bootstrap, topic) = (required(&src.bootstrap, "source.bootstrap")?, required(&src.topic, "source.topic")?);
    let start = match &src.start {
        None => StartFrom::Earliest,
        Some(s) => match s.get_ref().as_str() {
            "earliest" => StartFrom::Earliest,
            "latest" => StartFrom::Latest,
            "committed" => StartFrom::Committed,
            t => StartFrom::Timestamp(t.parse().map_err(|_| {
                cx.err(
                    s.span(),
                    "source.start",
                    format!("{t:?}: earliest, latest, committed, or milliseconds since the epoch"),
                )
            })?),
        },
    };
    let bounded = src.bounded.as_ref().is_some_and(|b| *b.get_ref());
    let group = src.group.as_ref().map(|g| g.get_ref().clone());
    let discovery = match &src.discovery_ms {
        None => Some(crate::source::kafka::DISCOVERY_INTERVAL_DEFAULT),
        Some(ms) if *ms.get_ref() == 0 => None,
        Some(ms) => Some(Duration::from_millis(*ms.get_ref())),
    };
    Ok(SourcePlan::Kafka { bootstrap, topic, start, bounded, group, discovery, format, csv })
}

/// The field names a source's records have; `None` when any name may exist (JSON).
fn known_fields(source: &SourcePlan) -> Option<Vec<String>> {
    match source {
        SourcePlan::File { format, csv, .. }
        | SourcePlan::Tcp { format, csv, .. }
        | SourcePlan::Kafka { format, csv, .. } => fields_of(*format, csv),
        SourcePlan::Generator { .. } => Some(vec!["key".into(), "seq".into(), "value".into()]),
    }
}

/// A field named in the job must be one of the source's fields, when those are known.
fn check_field(cx: &Ctx<'_>, known: Option<&[String]>, f: &Spanned<String>, name: &str) -> Result<String, Error> {
    match known {
        Some(k) if !k.iter().any(|x| x == f.get_ref()) => Err(cx.err(
            f.span(),
            name,
            format!("{:?} is not a field of this source (fields: {})", f.get_ref(), k.join(", ")),
        )),
        _ => Ok(f.get_ref().clone()),
    }
}

/// The type of an aggregate's values when the job names none: counts are ints, and
/// sum, min, max and average are decimals, which hold integers and decimal text such as
/// `0.1` exactly (docs/OPERATIONS.md, "Numbers", says why).
pub fn default_type(aggregate: AggregateKind) -> ValueType {
    match aggregate {
        AggregateKind::Sum | AggregateKind::Min | AggregateKind::Max | AggregateKind::Average => ValueType::Decimal,
        AggregateKind::Count | AggregateKind::DistinctCount | AggregateKind::Sequence => ValueType::Int,
    }
}

/// `[aggregate]`: the kind, for every kind but count the field it reads, and the type of
/// that field's values.
fn aggregate_plan(
    cx: &Ctx<'_>,
    raw: &Spanned<RawAggregate>,
    known: Option<&[String]>,
) -> Result<(AggregateKind, Option<String>, ValueType), Error> {
    let agg = raw.get_ref();
    let aggregate = *agg.kind.get_ref();
    let value_field = match (&agg.field, aggregate.needs_field()) {
        (Some(f), true) => Some(check_field(cx, known, f, "aggregate.field")?),
        (None, true) => {
            return Err(cx.err(raw.span(), "aggregate.field", format!("required for aggregate {}", aggregate.name())))
        }
        (Some(f), false) => return Err(cx.err(f.span(), "aggregate.field", "count takes no field")),
        (None, false) => None,
    };
    let value_type = match &agg.value_type {
        Some(t)
            if !matches!(
                aggregate,
                AggregateKind::Sum | AggregateKind::Min | AggregateKind::Max | AggregateKind::Average
            ) =>
        {
            return Err(cx.err(t.span(), "aggregate.type", "only sum, min, max and average take a type"))
        }
        Some(t) => *t.get_ref(),
        None => default_type(aggregate),
    };
    Ok((aggregate, value_field, value_type))
}

/// `[checkpoint]`, with its defaults.
fn checkpoint_plan(cx: &Ctx<'_>, c: &RawCheckpoint) -> Result<CheckpointConfig, Error> {
    let interval_ms = c.interval_ms.as_ref().map_or(10_000, |i| *i.get_ref());
    if interval_ms == 0 {
        return Err(cx.err(
            c.interval_ms.as_ref().map_or(0..0, Spanned::span),
            "checkpoint.interval_ms",
            "must be at least 1",
        ));
    }
    let mut ck = CheckpointConfig::new(cx.path(c.dir.get_ref()), Duration::from_millis(interval_ms));
    ck.retain = c.retain.as_ref().map_or(1, |r| *r.get_ref()).max(1);
    ck.mode = c.mode.unwrap_or(CheckpointMode::ExactlyOnce);
    ck.min_pause = Duration::from_millis(c.min_pause_ms.unwrap_or(0));
    if let Some(t) = &c.timeout_ms {
        if *t.get_ref() == 0 {
            return Err(cx.err(t.span(), "checkpoint.timeout_ms", "must be at least 1"));
        }
        ck.timeout = Duration::from_millis(*t.get_ref());
    }
    ck.tolerable_failures = c.tolerable_failures.unwrap_or(0);
    ck.cleanup = c.cleanup.unwrap_or(Cleanup::Retain);
    ck.incremental = c.incremental.unwrap_or(true);
    Ok(ck)
}

/// `[restart]`, with each strategy's defaults.
fn restart_plan(cx: &Ctx<'_>, r: &RawRestart) -> Result<RestartStrategy, Error> {
    let delay = Duration::from_millis(r.delay_ms.unwrap_or(1000));
    Ok(match r.strategy.get_ref() {
        StrategyKind::None => RestartStrategy::None,
        StrategyKind::FixedDelay => RestartStrategy::FixedDelay { attempts: r.attempts.unwrap_or(3), delay },
        StrategyKind::FailureRate => {
            let interval = r.interval_ms.as_ref().map_or(60_000, |i| *i.get_ref());
            if interval == 0 {
                return Err(cx.err(
                    r.interval_ms.as_ref().map_or(r.strategy.span(), Spanned::span),
                    "restart.interval_ms",
                    "must be at least 1",
                ));
            }
            RestartStrategy::FailureRate {
                max_failures: r.max_failures.unwrap_or(3),
                interval: Duration::from_millis(interval),
                delay,
            }
        }
    })
}
