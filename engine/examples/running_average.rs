//! Per-key running average with AggregatingState: every reading updates its sensor's
//! average, and each update is emitted.
//!
//!     cargo run --release -p sluice-engine --example running_average
use engine::Generator;
use engine::LineSink;
use engine::{AggregateFunction, AggregatingState};
use engine::{BackendKind, Context, Error, Job, KeyedProcessFunction, RunConfig};

struct Average;

impl AggregateFunction for Average {
    type In = f64;
    type Acc = (f64, u64);
    type Out = f64;
    fn create(&self) -> (f64, u64) {
        (0.0, 0)
    }
    fn add(&self, v: f64, (sum, n): (f64, u64)) -> (f64, u64) {
        (sum + v, n + 1)
    }
    fn result(&self, (sum, n): &(f64, u64)) -> f64 {
        sum / (*n).max(1) as f64
    }
}

struct RunningAverage {
    avg: AggregatingState<Average>,
}

impl KeyedProcessFunction for RunningAverage {
    type Key = u64;
    type In = (u64, f64);
    type Out = (u64, f64);

    fn process(
        &mut self,
        sensor: &u64,
        (_, reading): (u64, f64),
        ctx: &mut Context<'_>,
        out: &mut Vec<(u64, f64)>,
    ) -> Result<(), Error> {
        self.avg.add(ctx, reading)?;
        out.push((*sensor, self.avg.get(ctx)?.unwrap_or(reading)));
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // 40 readings over 4 sensors (sensor = seq % 4, reading = seq % 10 + sensor); every
    // reading prints its sensor's running average (sensor 3 ends at 8.0).
    Job::new("running-average")
        .source(Generator::new(Some(40), |seq| (seq % 4, (seq % 10) as f64 + (seq % 4) as f64)))
        .key_by(|r: &(u64, f64)| r.0)
        .process(|reg| Ok(RunningAverage { avg: reg.aggregating("average", Average, None)? }))
        .sink(LineSink::stdout(|(s, a): &(u64, f64), buf| buf.push_str(&format!("sensor {s}: average {a:.3}"))))
        .run(&RunConfig::new(2, BackendKind::Rocksdb, dir.path().to_owned()))?;
    Ok(())
}
