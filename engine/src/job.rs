//! The Rust job API: `Job::new(..).source(..).map(..).key_by(..).process(..).sink(..)`.
//!
//! Operators before `key_by` are chained into one function that runs where the record is
//! read; `key_by` decides the owning shard; the process function runs there, followed by
//! the operators after it and the sink (Flink's operator chaining, with one shuffle).
use std::sync::Arc;

use crate::error::{Error, JobError};
use crate::function::KeyedProcessFunction;
use crate::graph::{Chain, ProcessFactory, Program};
use crate::runtime::config::{RunConfig, RunReport};
use crate::runtime::driver;
use crate::sink::SinkFactory;
use crate::source::Source;
use crate::state::codec::Key;
use crate::state::context::StateRegistry;
use crate::state::handles::AggregateFunction;
use crate::time::strategy::WatermarkStrategy;
use crate::window::aggregate::{WindowAggregate, Windowed};
use crate::window::tumbling::TumblingEventTimeWindows;

pub struct Job {
    pub(crate) name: String,
}

impl Job {
    pub fn new(name: impl Into<String>) -> Self {
        Job { name: name.into() }
    }

    pub fn source<S: Send + 'static>(self, source: impl Source<S>) -> Stream<S, S> {
        Stream { job: self, source: Arc::new(source), chain: Arc::new(|s, emit| emit(s)), watermarks: None }
    }
}

/// A stream of `T` read from a source of `S`, before the key_by.
pub struct Stream<S, T> {
    job: Job,
    source: Arc<dyn Source<S>>,
    chain: Chain<S, T>,
    watermarks: Option<WatermarkStrategy<T>>,
}

impl<S: Send + 'static, T: 'static> Stream<S, T> {
    pub fn flat_map<U: 'static, I: IntoIterator<Item = U>>(
        self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Stream<S, U> {
        let prev = self.chain;
        Stream {
            job: self.job,
            source: self.source,
            chain: Arc::new(move |s, emit| {
                prev(s, &mut |t| {
                    for u in f(t) {
                        emit(u)
                    }
                })
            }),
            watermarks: None,
        }
    }

    pub fn map<U: 'static>(self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Stream<S, U> {
        let prev = self.chain;
        Stream {
            job: self.job,
            source: self.source,
            chain: Arc::new(move |s, emit| prev(s, &mut |t| emit(f(t)))),
            watermarks: None,
        }
    }

    pub fn filter(self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Stream<S, T> {
        let prev = self.chain;
        Stream {
            job: self.job,
            source: self.source,
            chain: Arc::new(move |s, emit| {
                prev(s, &mut |t| {
                    if f(&t) {
                        emit(t)
                    }
                })
            }),
            watermarks: self.watermarks,
        }
    }

    /// Gives the stream's records timestamps and its splits watermarks (Flink's
    /// `assignTimestampsAndWatermarks`). Only `filter` and `key_by` may follow: an
    /// operator that changes the record type would leave the assigner nothing to read.
    pub fn assign_timestamps_and_watermarks(mut self, strategy: WatermarkStrategy<T>) -> TimedStream<S, T> {
        self.watermarks = Some(strategy);
        TimedStream { stream: self }
    }

    /// Partitions the stream by key: each record goes to the shard owning its key group.
    pub fn key_by<K: Key>(self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> KeyedStream<S, T, K>
    where
        T: Send,
    {
        KeyedStream { stream: self, key: Arc::new(f) }
    }
}

/// A stream with timestamps and watermarks, before the key_by.
pub struct TimedStream<S, T> {
    stream: Stream<S, T>,
}

impl<S: Send + 'static, T: Send + 'static> TimedStream<S, T> {
    pub fn filter(self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> TimedStream<S, T> {
        TimedStream { stream: self.stream.filter(f) }
    }

    /// Partitions the stream by key, as [`Stream::key_by`].
    pub fn key_by<K: Key>(self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> KeyedStream<S, T, K> {
        self.stream.key_by(f)
    }
}

pub struct KeyedStream<S, T, K> {
    stream: Stream<S, T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<S: Send + 'static, T: Send + 'static, K: Key> KeyedStream<S, T, K> {
    /// `factory` runs once per shard, on the shard's thread, and declares the states the
    /// function uses.
    pub fn process<P>(
        self,
        factory: impl Fn(&mut StateRegistry) -> Result<P, Error> + Send + Sync + 'static,
    ) -> Processed<S, T, K, P, P::Out>
    where
        P: KeyedProcessFunction<Key = K, In = T>,
    {
        Processed { keyed: self, factory: Arc::new(factory), post: Arc::new(|o, emit| emit(o)) }
    }

    /// Groups each key's records into event-time windows (Flink's `window`); the stream
    /// must assign timestamps and watermarks before `key_by`.
    pub fn window(self, windows: TumblingEventTimeWindows) -> WindowedStream<S, T, K> {
        WindowedStream { keyed: self, windows }
    }
}

/// A keyed stream grouped into windows (Flink's `WindowedStream`).
pub struct WindowedStream<S, T, K> {
    keyed: KeyedStream<S, T, K>,
    windows: TumblingEventTimeWindows,
}

impl<S: Send + 'static, T: Send + 'static, K: Key> WindowedStream<S, T, K> {
    /// Keeps each window's running aggregate (never its records) and emits
    /// `Windowed::Result` when the watermark passes the window's end; records that come
    /// after their window fired go out as `Windowed::Late`.
    #[expect(clippy::type_complexity, reason = "the builder's type names every part of the job")]
    pub fn aggregate<A>(self, agg: A) -> Processed<S, T, K, WindowAggregate<K, A>, Windowed<K, A::Out, T>>
    where
        A: AggregateFunction<In = T> + Clone + Send + Sync,
        A::Out: 'static,
    {
        let windows = self.windows;
        self.keyed.process(move |reg| Ok(WindowAggregate::new(reg, windows, agg.clone())?))
    }
}

/// The stream after the process function; more stateless operators may follow.
pub struct Processed<S, T, K, P: KeyedProcessFunction, O> {
    keyed: KeyedStream<S, T, K>,
    factory: ProcessFactory<P>,
    post: Chain<P::Out, O>,
}

impl<S, T, K, P, O> Processed<S, T, K, P, O>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    pub fn map<U: 'static>(self, f: impl Fn(O) -> U + Send + Sync + 'static) -> Processed<S, T, K, P, U> {
        let prev = self.post;
        Processed {
            keyed: self.keyed,
            factory: self.factory,
            post: Arc::new(move |s, emit| prev(s, &mut |o| emit(f(o)))),
        }
    }

    pub fn filter(self, f: impl Fn(&O) -> bool + Send + Sync + 'static) -> Processed<S, T, K, P, O> {
        let prev = self.post;
        Processed {
            keyed: self.keyed,
            factory: self.factory,
            post: Arc::new(move |s, emit| {
                prev(s, &mut |o| {
                    if f(&o) {
                        emit(o)
                    }
                })
            }),
        }
    }

    pub fn sink(self, sink: impl SinkFactory<O>) -> RunnableJob<S, T, K, P, O> {
        RunnableJob {
            program: Arc::new(Program {
                name: self.keyed.stream.job.name,
                source: self.keyed.stream.source,
                chain: self.keyed.stream.chain,
                watermarks: self.keyed.stream.watermarks,
                key: self.keyed.key,
                factory: self.factory,
                post: self.post,
                sink: Arc::new(sink),
            }),
        }
    }
}

pub struct RunnableJob<S, T, K, P: KeyedProcessFunction, O> {
    program: Arc<Program<S, T, K, P, O>>,
}

impl<S, T, K, P, O> RunnableJob<S, T, K, P, O>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    /// Runs the job until its sources end or `cfg.stop` is raised.
    pub fn run(&self, cfg: &RunConfig) -> Result<RunReport, JobError> {
        driver::run(self.program.clone(), cfg)
    }
}
