//! The `[sink]` section of a job file: its kinds and their settings, resolved into
//! the plans `pipeline::sink_of` builds sinks from (with `[output]`, which `top`
//! depends on). Errors name the file, the line and the field, through the job file's context (`ctx`).
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::ctx::Ctx;
use super::plan::Emit;
use crate::error::Error;
use crate::sink::two_phase::Guarantee;

/// Largest `sink.top`: the top-N table keeps this many rows per shard.
pub const TOP_ROWS_MAX: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    pub(super) emit: Spanned<Emit>,
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
pub(super) struct RawSink {
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

/// A `mysql` sink: where, which table, and how exactly.
#[derive(Debug, Clone)]
pub struct MysqlPlan {
    /// `mysql://user:password@host:port/db` or `mysql://user@localhost/db?socket=PATH`.
    pub url: String,
    /// `table` (in the URL's database) or `db.table`.
    pub table: String,
    pub guarantee: Guarantee,
}

/// `[sink]` and `[output]` resolved together: `top` depends on both.
pub(super) struct OutputPlan {
    pub(super) emit: Emit,
    pub(super) sink: SinkKind,
    pub(super) sink_path: Option<PathBuf>,
    pub(super) files: Option<FilesPlan>,
    pub(super) kafka: Option<KafkaSinkPlan>,
    pub(super) mysql: Option<MysqlPlan>,
    pub(super) top: Option<usize>,
}

pub(super) fn output_plan(
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
