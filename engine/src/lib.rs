//! sluice's engine: a thread-per-core keyed dataflow (glommio), keyed state on RocksDB
//! or the heap, and the pieces the `sluice` binary is made of.
//!
//! Modules are private; the API is what this file re-exports. Layers point one way:
//! `job` (the builder users call) and `pipeline` (TOML jobs) build a `graph` that the
//! `runtime` consumes; the runtime uses `state`, `source` and `sink`; nothing below
//! reaches up. The crate's internals are opened to its own benchmarks only behind the
//! `internals` feature.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod badrecord;
mod canary;
mod clock;
mod error;
mod function;
mod graph;
mod job;
pub mod pipeline;
mod priority;
mod runtime;
mod sink;
mod source;
mod state;
mod testing;
mod time;
mod window;

pub use badrecord::BadRecords;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, JobError, StateError, UserError};
/// Which clock a timer fires on (`KeyedProcessFunction::on_timer`).
pub use formats::timerkey::TimeDomain;
/// How a state's values are encoded, recorded in checkpoints (`msgpack_codec!` uses it).
pub use formats::value::ValueEncoding;
pub use function::KeyedProcessFunction;
pub use job::{Job, KeyedStream, Processed, RunnableJob, Stream, TimedStream, WindowedStream};
pub use runtime::checkpoint::config::{CheckpointConfig, CheckpointMode, Cleanup, FsFactory};
pub use runtime::checkpoint::restore::{Origin, Restore};
pub use runtime::config::{available_cores, RunConfig, RunReport};
pub use runtime::control::{CheckpointRecord, JobControl, JobState, Operation, Refusal, Snapshot as JobSnapshot};
pub use runtime::restart::RestartStrategy;
pub use runtime::setup::{lock_checkpoint_root, release_after_failed_setup};
pub use sink::files::PartFiles;
pub use sink::kafka::KafkaSink;
pub use sink::mysql::{self as mysql_sink, MysqlSink};
pub use sink::two_phase::{
    Guarantee, Pending, Transactional, TransactionalWriter, TwoPhaseCommitSink, TxnContext, PENDING_STATE,
};
pub use sink::{CollectSink, DiscardSink, LineFormat, LineSink, Sink, SinkFactory};
pub use source::file::FileSource;
pub use source::generator::Generator;
pub use source::kafka::{KafkaSource, StartFrom};
pub use source::tcp::TcpSource;
pub use source::{utf8_lines, LineParser, Source, SourceContext, SourceReader, Split};
pub use state::backend::BackendKind;
pub use state::cleanup::{
    CompactionFilterCleanup, IncrementalCleanup, TtlCleanup, CLEANUP_SIZE_MAX, IDLE_TICK, IDLE_TICK_FACTOR,
};
pub use state::codec::{msgpack_decode, msgpack_encode, Key, StateCodec};
pub use state::context::{Context, StateRegistry};
pub use state::handles::{AggregateFunction, AggregatingState, ListState, MapState, ReducingState, ValueState};
pub use state::operator::OperatorStates;
pub use state::rocks::RocksConfig;
pub use testing::{StateHarness, StoredEntry};
pub use time::strategy::{TimestampAssigner, WatermarkStrategy};
pub use time::timers::TimerService;
pub use time::{END_OF_TIME, WATERMARK_MIN};
pub use window::aggregate::{WindowAggregate, Windowed};
pub use window::tumbling::TumblingEventTimeWindows;

/// The engine's internals, for its own benchmarks (feature `internals`): raw backends
/// and the incremental checkpoint's shared-file staging.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::runtime::checkpoint::incremental::SharedFiles;
    pub use crate::state::backend::{Backend, StateId, Visit};
    pub use crate::state::cache::CachedBackend;
    pub use crate::state::heap::HeapBackend;
    pub use crate::state::rocks::RocksBackend;
    pub use crate::state::snapshot::collect;
}
