//! Watermarks through a running job (2 shards, both backends): records stamped at the
//! source, watermarks carried over the shuffle, event-time timers fired as each shard's
//! watermark (the minimum over its active inputs) passes them, idle splits left out
//! after their timeout, and a bounded input's end firing every timer that is left.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::END_OF_TIME;
use engine::{BackendKind, CollectSink, Context, Error, Generator, Job, KeyedProcessFunction, RunConfig};
use engine::{Source, SourceContext, SourceReader, TimeDomain, TimerService, WatermarkStrategy};

/// One firing: (key, timer time, the shard's watermark then, the job's sources still
/// ran, the largest watermark the inputs allowed then).
type Fired = (u64, i64, i64, bool, i64);

/// The largest watermark a shard may have now (from what its sources have read).
type Bound = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Registers an event-time timer `delay` after each record's timestamp; reports each
/// firing with the watermark it saw.
struct Delay {
    timers: TimerService,
    delay: i64,
    running: Arc<AtomicBool>,
    bound: Bound,
}

impl KeyedProcessFunction for Delay {
    type Key = u64;
    type In = u64;
    type Out = Fired;

    fn process(&mut self, _: &u64, _: u64, ctx: &mut Context<'_>, _: &mut Vec<Fired>) -> Result<(), Error> {
        let ts = ctx.timestamp().expect("the stream assigns timestamps");
        Ok(self.timers.register_event_time_timer(ctx, ts + self.delay)?)
    }

    fn on_timer(
        &mut self,
        key: &u64,
        ts: i64,
        d: TimeDomain,
        ctx: &mut Context<'_>,
        out: &mut Vec<Fired>,
    ) -> Result<(), Error> {
        assert_eq!(d, TimeDomain::EventTime);
        assert!(ctx.current_watermark() >= ts, "a timer fires once the watermark has passed it");
        out.push((*key, ts, ctx.current_watermark(), self.running.load(Ordering::Relaxed), (self.bound)()));
        Ok(())
    }
}

fn config(dir: &std::path::Path, backend: BackendKind) -> RunConfig {
    let mut cfg = RunConfig::new(2, backend, dir.join("data"));
    cfg.pin = false;
    cfg.batch_records = 64;
    cfg
}

// Pins: timers fire mid-stream as watermarks cross the shuffle (not only at the end),
// each exactly once, and the end of a bounded input fires every timer left with the
// watermark at the end of time.
fn watermarks_fire_timers_then_the_end_fires_the_rest(backend: BackendKind) {
    const N: u64 = 20_000;
    const DELAY: i64 = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = CollectSink::<Fired>::default();
    let fired = sink.handle();
    let running = Arc::new(AtomicBool::new(true));
    let r = running.clone();
    // The largest sequence number each split has yielded: split 0 is [0, N/2), split 1
    // [N/2, N). While both run, no watermark may pass the smaller one.
    let read: Arc<[AtomicI64; 2]> = Arc::new([AtomicI64::new(-1), AtomicI64::new(-1)]);
    let seen = read.clone();
    let bound: Bound = Arc::new(move || {
        let a = read[0].load(Ordering::SeqCst);
        let b = read[1].load(Ordering::SeqCst);
        let a = if a == (N / 2) as i64 - 1 { END_OF_TIME } else { a };
        let b = if b == N as i64 - 1 { END_OF_TIME } else { b };
        a.min(b)
    });
    Job::new("wm")
        // About 0.8 s of input per shard: several watermark intervals.
        .source(
            Generator::new(Some(N), move |s| {
                seen[usize::from(s >= N / 2)].fetch_max(s as i64, Ordering::SeqCst);
                s
            })
            .rate_per_s(Some(25_000)),
        )
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(5))
                .with_timestamp_assigner(|s: &u64| *s as i64)
                .with_emit_interval(Duration::from_millis(20)),
        )
        .key_by(|s: &u64| s % 16)
        .process(move |reg| Ok(Delay { timers: reg.timers()?, delay: DELAY, running: r.clone(), bound: bound.clone() }))
        .sink(sink)
        .run(&config(dir.path(), backend))
        .expect("job runs");
    running.store(false, Ordering::Relaxed);
    let fired = fired.lock().expect("lock").clone();
    let mut times: Vec<(u64, i64)> = fired.iter().map(|f| (f.0, f.1)).collect();
    times.sort();
    let want: Vec<(u64, i64)> = {
        let mut w: Vec<(u64, i64)> = (0..N).map(|s| (s % 16, s as i64 + DELAY)).collect();
        w.sort();
        w
    };
    assert!(
        times == want,
        "{backend}: every timer fires exactly once ({} fired, {} registered)",
        times.len(),
        want.len()
    );
    let early = fired.iter().filter(|f| f.2 < END_OF_TIME).count();
    assert!(early > 0, "{backend}: watermarks fire timers before the input ends");
    let over: Vec<&Fired> = fired.iter().filter(|f| f.2 > f.4).collect();
    assert!(over.is_empty(), "{backend}: the watermark is the minimum over the inputs: {:?}", over.first());
    let last = fired.iter().filter(|f| f.1 > N as i64 - 1 - 5).all(|f| f.2 == END_OF_TIME);
    assert!(last, "{backend}: timers past the last watermark fire only at the end of time");
}

#[test]
fn heap_watermarks_fire_timers() {
    watermarks_fire_timers_then_the_end_fires_the_rest(BackendKind::Heap);
}

#[test]
fn rocksdb_watermarks_fire_timers() {
    watermarks_fire_timers_then_the_end_fires_the_rest(BackendKind::Rocksdb);
}

/// Shard 0's split yields timestamps 0..RECORDS at once, then nothing; shard 1's yields
/// nothing. Both stay open until `open_for` has passed, then end (lowering `running`
/// first).
struct Quiet {
    open_for: Duration,
    running: Arc<AtomicBool>,
}

const RECORDS: u64 = 1_000;

struct QuietReader {
    shard: u16,
    next: u64,
    until: Instant,
    running: Arc<AtomicBool>,
}

impl Source<u64> for Quiet {
    fn name(&self) -> String {
        "quiet".into()
    }
    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<u64>>, Error> {
        let until = Instant::now() + self.open_for;
        Ok(Box::new(QuietReader { shard: ctx.shard.0, next: 0, until, running: self.running.clone() }))
    }
}

impl SourceReader<u64> for QuietReader {
    fn read<'a>(
        &'a mut self,
        out: &'a mut Vec<u64>,
        max: usize,
    ) -> Pin<Box<dyn Future<Output = Result<bool, Error>> + 'a>> {
        Box::pin(async move {
            if self.shard == 0 && self.next < RECORDS {
                let end = (self.next + max as u64).min(RECORDS);
                out.extend(self.next..end);
                self.next = end;
                return Ok(true);
            }
            if Instant::now() >= self.until {
                self.running.store(false, Ordering::Relaxed);
                return Ok(false);
            }
            // A quiet split: nothing to read for a while.
            glommio::timer::sleep(Duration::from_millis(5)).await;
            Ok(true)
        })
    }
}

/// Runs the quiet job; returns its firings.
fn quiet_job(backend: BackendKind, idleness: Option<Duration>) -> Vec<Fired> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = CollectSink::<Fired>::default();
    let fired = sink.handle();
    let running = Arc::new(AtomicBool::new(true));
    let mut strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|s: &u64| *s as i64)
        .with_emit_interval(Duration::from_millis(20));
    if let Some(t) = idleness {
        strategy = strategy.with_idleness(t);
    }
    let r = running.clone();
    Job::new("quiet")
        .source(Quiet { open_for: Duration::from_millis(1_500), running: running.clone() })
        .assign_timestamps_and_watermarks(strategy)
        .key_by(|s: &u64| s % 8)
        .process(move |reg| {
            Ok(Delay { timers: reg.timers()?, delay: 10, running: r.clone(), bound: Arc::new(|| END_OF_TIME) })
        })
        .sink(sink)
        .run(&config(dir.path(), backend))
        .expect("job runs");
    let out = fired.lock().expect("lock").clone();
    assert_eq!(out.len() as u64, RECORDS, "{backend}: every timer fires once in the end");
    out
}

// Pins idleness: a split with no data holds every shard back until it is idle for its
// timeout, and is then left out (timers up to the other split's watermark fire while
// both splits are still open, whichever goes idle first); with every split idle the
// watermark holds (nothing past the last watermark fires before the end); without
// idleness nothing fires before the quiet split ends.
fn idle_split(backend: BackendKind) {
    let last_watermark = RECORDS as i64 - 2; // monotonous: largest timestamp - 0 - 1
    let with = quiet_job(backend, Some(Duration::from_millis(100)));
    let early: Vec<&Fired> = with.iter().filter(|f| f.3).collect();
    assert!(!early.is_empty(), "{backend}: the idle split no longer holds the watermark back");
    assert!(
        early.iter().all(|f| f.1 <= last_watermark && f.2 <= last_watermark),
        "{backend}: with every split idle the watermark holds at the last one emitted"
    );
    assert_eq!(early.len() as i64, last_watermark - 10 + 1, "{backend}: every timer up to the watermark fired");
    let without = quiet_job(backend, None);
    assert!(
        without.iter().all(|f| !f.3),
        "{backend}: without idleness the quiet split holds every timer until it ends"
    );
}

#[test]
fn heap_idle_split_is_left_out() {
    idle_split(BackendKind::Heap);
}

#[test]
fn rocksdb_idle_split_is_left_out() {
    idle_split(BackendKind::Rocksdb);
}

/// Registers a processing-time timer 100 ms after each record (rounded to 50 ms, so
/// records share them); reports each firing with the clock's time then.
struct Later {
    timers: TimerService,
    running: Arc<AtomicBool>,
    registered: Arc<std::sync::Mutex<std::collections::BTreeSet<(u64, i64)>>>,
}

impl KeyedProcessFunction for Later {
    type Key = u64;
    type In = u64;
    type Out = (u64, i64, i64, bool);

    fn process(&mut self, key: &u64, _: u64, ctx: &mut Context<'_>, _: &mut Vec<Self::Out>) -> Result<(), Error> {
        let at = (ctx.current_processing_time() / 50 + 2) * 50;
        self.registered.lock().expect("lock").insert((*key, at));
        Ok(self.timers.register_processing_time_timer(ctx, at)?)
    }

    fn on_timer(
        &mut self,
        key: &u64,
        ts: i64,
        d: TimeDomain,
        ctx: &mut Context<'_>,
        out: &mut Vec<Self::Out>,
    ) -> Result<(), Error> {
        assert_eq!(d, TimeDomain::ProcessingTime);
        out.push((*key, ts, ctx.current_processing_time(), self.running.load(Ordering::Relaxed)));
        Ok(())
    }
}

// Pins processing-time timers in a running job: each fires once, when the shard's
// clock reaches it (not before), while the job still runs (the shard's one clock
// timer, not the end of the input), on both backends.
fn processing_time_timers_fire_on_the_clock(backend: BackendKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = CollectSink::default();
    let fired = sink.handle();
    let running = Arc::new(AtomicBool::new(true));
    let registered = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let (r, reg_set) = (running.clone(), registered.clone());
    Job::new("later")
        .source(Quiet { open_for: Duration::from_millis(800), running: running.clone() })
        .key_by(|s: &u64| s % 8)
        .process(move |reg| Ok(Later { timers: reg.timers()?, running: r.clone(), registered: reg_set.clone() }))
        .sink(sink)
        .run(&config(dir.path(), backend))
        .expect("job runs");
    let fired = fired.lock().expect("lock").clone();
    let registered = registered.lock().expect("lock").clone();
    let mut once: Vec<(u64, i64)> = fired.iter().map(|f| (f.0, f.1)).collect();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), fired.len(), "{backend}: each timer fires once");
    assert!(once.iter().copied().eq(registered.iter().copied()), "{backend}: every registered timer fired");
    assert!(fired.iter().all(|f| f.2 >= f.1), "{backend}: never before its time");
    assert!(fired.iter().all(|f| f.3), "{backend}: on the shard's clock, while the job runs");
}

#[test]
fn heap_processing_time_timers_fire_on_the_clock() {
    processing_time_timers_fire_on_the_clock(BackendKind::Heap);
}

#[test]
fn rocksdb_processing_time_timers_fire_on_the_clock() {
    processing_time_timers_fire_on_the_clock(BackendKind::Rocksdb);
}
