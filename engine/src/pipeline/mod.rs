//! Jobs written as TOML files: a source, a key field, one aggregate, a sink. No Rust.
//! See docs/OPERATIONS.md for the file's fields.
pub mod aggregate;
pub mod plan;
pub mod records;
pub mod spec;
pub mod table;

use std::sync::Arc;

pub use aggregate::{Aggregate, Output};
pub use spec::{load, JobPlan};

use crate::badrecord::BadRecords;
use crate::error::Error;
use crate::job::Job;
use crate::runtime::{RunConfig, RunReport};
use crate::sink::{LineSink, SinkFactory};
use crate::source::{FileSource, Generator, Source, TcpSource};
use records::Input;
use spec::{SinkKind, SourcePlan};
use table::TopTable;

/// Formats a number as JSON: integers without a fraction.
pub fn number_json(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or_else(|| "null".into(), |n| n.to_string())
    }
}

fn json_line(field: &'static str) -> impl Fn(&Output, &mut String) + Send + Sync + 'static {
    move |o, buf| {
        let key = serde_json::Value::String(o.key.clone());
        match &o.extra {
            Some(s) => {
                buf.push_str(&format!("{{\"key\":{key},\"count\":{},\"max\":{},\"sum\":{}}}", s.count, s.max, s.sum))
            }
            None => buf.push_str(&format!("{{\"key\":{key},\"{field}\":{}}}", number_json(o.value))),
        }
    }
}

fn source_of(plan: &JobPlan) -> Arc<dyn Source<Input>> {
    let (agg, vf) = (plan.aggregate, plan.value_field.clone());
    match &plan.source {
        SourcePlan::File { path, format, csv } => Arc::new(
            FileSource::with_parser(path, records::parser(*format, csv, &plan.key_field, agg, vf.as_deref()))
                .skip_header(csv.header),
        ),
        SourcePlan::Tcp { address, format, csv } => {
            Arc::new(TcpSource::new(*address, records::parser(*format, csv, &plan.key_field, agg, vf.as_deref())))
        }
        SourcePlan::Generator { count, keys, rate_per_s } => {
            let keys = *keys;
            Arc::new(
                Generator::new(*count, move |seq| records::generated(seq, keys, agg, vf.as_deref()))
                    .rate_per_s(*rate_per_s),
            )
        }
    }
}

fn sink_of(plan: &JobPlan) -> Result<Arc<dyn SinkFactory<Output>>, Error> {
    let field = plan.aggregate.name();
    Ok(match (plan.sink, &plan.sink_path, plan.top) {
        (SinkKind::Stdout, _, Some(top)) => Arc::new(TopTable::new(top, field)),
        (SinkKind::File, Some(p), _) => Arc::new(LineSink::file(p, json_line(field))?),
        _ => Arc::new(LineSink::stdout(json_line(field))),
    })
}

/// Runs a TOML job. The source is checked before the sink is created, so a missing
/// input leaves no output file behind.
pub fn run(plan: &JobPlan, cfg: &RunConfig) -> Result<RunReport, Error> {
    let source = source_of(plan);
    source.check()?;
    crate::runtime::check_data_dir(cfg)?;
    let mut cfg = cfg.clone();
    cfg.bad_records = Arc::new(BadRecords::new(plan.fail_on_bad_record, plan.dead_letter.as_deref())?);
    if let Some(g) = plan.max_key_groups {
        cfg.max_key_groups = g;
    }
    if cfg.checkpoint.is_none() {
        cfg.checkpoint = plan.checkpoint.clone();
    }
    let sink = sink_of(plan)?;
    let (kind, emit) = (plan.aggregate, plan.emit);
    Job::new(plan.name.clone())
        .source(source)
        .key_by(|i: &Input| i.key.clone())
        .process(move |reg| Aggregate::open(kind, emit, reg))
        .sink(sink)
        .run(&cfg)
}
