//! The TOML job file: parsed with spans, validated, resolved into a [`JobPlan`].
//! Every error names the file, the line and the field.
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::plan::{AggregateKind, CsvPlan, Emit, Format, ValueType};
use super::ttl::{ttl_plan, RawTtl, TtlPlan};
use crate::error::Error;
use crate::runtime::checkpoint::config::{CheckpointConfig, CheckpointMode, Cleanup};
use crate::runtime::restart::RestartStrategy;
use crate::sink::two_phase::Guarantee;
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
struct RawOutput {
    emit: Spanned<Emit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Stdout,
    File,
    /// Part files in a directory, committed with checkpoints (`sink::files`).
    Files,
    /// A Kafka topic, written in transactions (`sink::kafka`).
    Kafka,
    /// A MySQL or MariaDB table, written in XA transactions (`sink::mysql`).
    Mysql,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    kind: Spanned<SinkKind>,
    path: Option<Spanned<String>>,
    top: Option<Spanned<usize>>,
    dir: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    guarantee: Option<Spanned<Guarantee>>,
    roll_bytes: Option<Spanned<u64>>,
    roll_seconds: Option<Spanned<u64>>,
    bootstrap: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    transactional_id_prefix: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    table: Option<Spanned<String>>,
}

/// `[sink] kind = "files"`, resolved.
#[derive(Debug, Clone)]
pub struct FilesPlan {
    pub dir: PathBuf,
    pub prefix: String,
    pub guarantee: Guarantee,
    pub roll_bytes: u64,
    pub roll_interval: Option<std::time::Duration>,
}

/// A Kafka sink, resolved: key = the output's key, value = its JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkPlan {
    pub bootstrap: String,
    pub topic: String,
    pub guarantee: Guarantee,
    /// Transactional ids are `<prefix>-<shard>`; default: the job's name.
    pub transactional_id_prefix: String,
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

/// A `mysql` sink: where, which table, and how exactly.
#[derive(Debug, Clone)]
pub struct MysqlPlan {
    /// `mysql://user:password@host:port/db` or `mysql://user@localhost/db?socket=PATH`.
    pub url: String,
    /// `table` (in the URL's database) or `db.table`.
    pub table: String,
    pub guarantee: Guarantee,
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

/// Largest `sink.top`: the top-N table keeps this many rows per shard.
pub const TOP_ROWS_MAX: usize = 100_000;

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_col(&self, span: Range<usize>) -> (usize, usize) {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, col)
    }
    fn err(&self, span: Range<usize>, field: &str, msg: impl std::fmt::Display) -> Error {
        let (line, col) = self.line_col(span);
        Error::Config(format!("{}:{line}:{col}: field `{field}`: {msg}", self.file.display()))
    }
    /// A path in the job file is relative to the job file's directory.
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_owned();
        }
        self.file.parent().map_or_else(|| p.to_owned(), |d| d.join(p))
    }
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

/// `[sink]` and `[output]` resolved together: `top` depends on both.
struct OutputPlan {
    emit: Emit,
    sink: SinkKind,
    sink_path: Option<PathBuf>,
    files: Option<FilesPlan>,
    kafka: Option<KafkaSinkPlan>,
    mysql: Option<MysqlPlan>,
    top: Option<usize>,
}

fn output_plan(
    cx: &Ctx<'_>,
    raw: &Spanned<RawSink>,
    output: Option<&Spanned<RawOutput>>,
    job: &str,
) -> Result<OutputPlan, Error> {
    let sink = raw.get_ref();
    let sink_path = match (*sink.kind.get_ref(), &sink.path) {
        (SinkKind::File, Some(p)) => Some(cx.path(p.get_ref())),
        (SinkKind::File, None) => return Err(cx.err(raw.span(), "sink.path", "required for sink kind file")),
        (_, Some(p)) => return Err(cx.err(p.span(), "sink.path", "only a file sink takes a path")),
        (_, None) => None,
    };
    let files = files_plan(cx, raw, job)?;
    let kafka = kafka_sink(cx, raw, job)?;
    guarantee_only_for_transactional(cx, raw)?;
    let mysql = mysql_plan(cx, raw)?;
    let emit = output.map_or(Emit::Final, |o| *o.get_ref().emit.get_ref());
    if let Some(t) = &sink.top {
        if *sink.kind.get_ref() != SinkKind::Stdout || emit != Emit::Final || *t.get_ref() == 0 {
            return Err(cx.err(
                t.span(),
                "sink.top",
                "needs a stdout sink, emit = \"final\" and a value of at least 1",
            ));
        }
    }
    if let Some(t) = sink.top.as_ref().filter(|t| *t.get_ref() > TOP_ROWS_MAX) {
        return Err(cx.err(
            t.span(),
            "sink.top",
            format!("at most {TOP_ROWS_MAX}: each shard keeps that many rows in memory"),
        ));
    }
    let top = sink.top.as_ref().map(|t| *t.get_ref());
    Ok(OutputPlan { emit, sink: *sink.kind.get_ref(), sink_path, files, kafka, mysql, top })
}

/// `sink.guarantee` is for the sinks that commit with checkpoints.
fn guarantee_only_for_transactional(cx: &Ctx<'_>, raw: &Spanned<RawSink>) -> Result<(), Error> {
    let sink = raw.get_ref();
    match (&sink.guarantee, sink.kind.get_ref()) {
        (Some(g), SinkKind::Stdout | SinkKind::File) => {
            Err(cx.err(g.span(), "sink.guarantee", "only a files, kafka or mysql sink takes it"))
        }
        _ => Ok(()),
    }
}

/// The part-file settings of a `files` sink (None for the other kinds, which take none
/// of them). The prefix defaults to the job's name.
fn files_plan(cx: &Ctx<'_>, raw: &Spanned<RawSink>, job: &str) -> Result<Option<FilesPlan>, Error> {
    let sink = raw.get_ref();
    if *sink.kind.get_ref() != SinkKind::Files {
        let given = [
            ("sink.dir", sink.dir.as_ref().map(Spanned::span)),
            ("sink.prefix", sink.prefix.as_ref().map(Spanned::span)),
            ("sink.roll_bytes", sink.roll_bytes.as_ref().map(Spanned::span)),
            ("sink.roll_seconds", sink.roll_seconds.as_ref().map(Spanned::span)),
        ];
        if let Some((field, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
            return Err(cx.err(span, field, "only a files sink takes it"));
        }
        return Ok(None);
    }
    let Some(dir) = &sink.dir else { return Err(cx.err(raw.span(), "sink.dir", "required for sink kind files")) };
    let prefix = sink.prefix.as_ref().map_or_else(|| job.to_owned(), |p| p.get_ref().clone());
    if prefix.is_empty() || prefix.contains('/') || prefix.starts_with('.') {
        let span = sink.prefix.as_ref().map_or(raw.span(), Spanned::span);
        return Err(cx.err(span, "sink.prefix", "must be a file name start: not empty, no '/', not starting with '.'"));
    }
    if let Some(b) = sink.roll_bytes.as_ref().filter(|b| *b.get_ref() == 0) {
        return Err(cx.err(b.span(), "sink.roll_bytes", "must be at least 1"));
    }
    Ok(Some(FilesPlan {
        dir: cx.path(dir.get_ref()),
        prefix,
        guarantee: sink.guarantee.as_ref().map_or(Guarantee::ExactlyOnce, |g| *g.get_ref()),
        roll_bytes: sink.roll_bytes.as_ref().map_or(128 << 20, |b| *b.get_ref()),
        roll_interval: sink
            .roll_seconds
            .as_ref()
            .map(|s| std::time::Duration::from_secs(*s.get_ref()))
            .filter(|d| !d.is_zero()),
    }))
}

/// A Kafka sink's fields: its brokers and topic (required), its guarantee (default
/// exactly once) and the prefix of its transactional ids (default the job's name); other
/// sink kinds take none of them.
fn kafka_sink(cx: &Ctx<'_>, raw: &Spanned<RawSink>, job: &str) -> Result<Option<KafkaSinkPlan>, Error> {
    let sink = raw.get_ref();
    if *sink.kind.get_ref() != SinkKind::Kafka {
        let fields = [
            (sink.bootstrap.as_ref().map(Spanned::span), "sink.bootstrap"),
            (sink.topic.as_ref().map(Spanned::span), "sink.topic"),
            (sink.transactional_id_prefix.as_ref().map(Spanned::span), "sink.transactional_id_prefix"),
        ];
        return match fields.into_iter().find_map(|(s, f)| s.map(|s| (s, f))) {
            Some((span, field)) => Err(cx.err(span, field, "only a kafka sink takes it")),
            None => Ok(None),
        };
    }
    let required = |f: &Option<Spanned<String>>, name: &str| {
        f.as_ref()
            .map(|v| v.get_ref().clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| cx.err(raw.span(), name, "required for sink kind kafka"))
    };
    let (bootstrap, topic) = (required(&sink.bootstrap, "sink.bootstrap")?, required(&sink.topic, "sink.topic")?);
    let transactional_id_prefix = match &sink.transactional_id_prefix {
        None => job.to_owned(),
        Some(p) => {
            let ok = !p.get_ref().is_empty()
                && p.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(cx.err(p.span(), "sink.transactional_id_prefix", "must be non-empty, of [A-Za-z0-9._-]"));
            }
            p.get_ref().clone()
        }
    };
    let guarantee = sink.guarantee.as_ref().map_or(Guarantee::ExactlyOnce, |g| *g.get_ref());
    Ok(Some(KafkaSinkPlan { bootstrap, topic, guarantee, transactional_id_prefix }))
}

/// A `mysql` sink's `url` and `table` (required) and `guarantee` (exactly_once unless
/// set); other sinks take none of them.
fn mysql_plan(cx: &Ctx<'_>, raw: &Spanned<RawSink>) -> Result<Option<MysqlPlan>, Error> {
    let sink = raw.get_ref();
    if *sink.kind.get_ref() != SinkKind::Mysql {
        let only =
            |f: Option<Range<usize>>, name| f.map_or(Ok(()), |s| Err(cx.err(s, name, "only a mysql sink takes it")));
        only(sink.url.as_ref().map(Spanned::span), "sink.url")?;
        only(sink.table.as_ref().map(Spanned::span), "sink.table")?;
        return Ok(None);
    }
    let required = |f: Option<&Spanned<String>>, name: &str| {
        f.filter(|v| !v.get_ref().is_empty())
            .cloned()
            .ok_or_else(|| cx.err(raw.span(), name, "required for sink kind mysql"))
    };
    let (url, table) = (required(sink.url.as_ref(), "sink.url")?, required(sink.table.as_ref(), "sink.table")?);
    // The parser's messages name the part that is wrong, never the URL (which may hold
    // a password).
    mysql::Opts::from_url(url.get_ref()).map_err(|e| cx.err(url.span(), "sink.url", e))?;
    let t = table.get_ref();
    if t.split('.').count() > 2 || t.split('.').any(str::is_empty) {
        return Err(cx.err(table.span(), "sink.table", format!("{t:?}: `table` or `db.table`")));
    }
    Ok(Some(MysqlPlan {
        url: url.get_ref().clone(),
        table: t.clone(),
        guarantee: sink.guarantee.as_ref().map_or(Guarantee::ExactlyOnce, |g| *g.get_ref()),
    }))
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
