//! Per-key dedupe with TTL: an event id seen within the last `ttl` is dropped. The "seen"
//! marker lives in ValueState with a time-to-live, so memory does not grow forever.
//!
//!     cargo run --release -p sluice-engine --example dedupe_ttl
use std::time::Duration;

use engine::Generator;
use engine::LineSink;
use engine::ValueState;
use engine::{BackendKind, Context, Error, Job, KeyedProcessFunction, RunConfig};
use formats::ttl::{TtlConfig, TtlUpdate};

struct Dedupe {
    seen: ValueState<bool>,
}

impl KeyedProcessFunction for Dedupe {
    type Key = String;
    type In = String;
    type Out = String;

    fn process(&mut self, id: &String, _: String, ctx: &mut Context<'_>, out: &mut Vec<String>) -> Result<(), Error> {
        if self.seen.get(ctx)?.is_none() {
            self.seen.set(ctx, true)?;
            out.push(id.clone());
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ttl = TtlConfig { ttl_ms: Duration::from_secs(60).as_millis() as u64, update: TtlUpdate::OnCreateAndWrite };
    // 30 events over 10 distinct ids: each id passes once.
    let report = Job::new("dedupe")
        .source(Generator::new(Some(30), |seq| format!("event-{}", seq % 10)))
        .key_by(|id: &String| id.clone())
        .process(move |reg| Ok(Dedupe { seen: reg.value("seen", Some(ttl))? }))
        .sink(LineSink::stdout(|id: &String, buf| buf.push_str(id)))
        .run(&RunConfig::new(2, BackendKind::Rocksdb, dir.path().to_owned()))?;
    eprintln!("{} events in, {} unique out", report.records_in, report.records_out);
    Ok(())
}
