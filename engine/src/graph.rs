//! The job graph: what the Rust job API builds and the runtime consumes. It sits below
//! both, so the runtime never reaches up into the user-facing builder (`job`).
//!
//! A graph is one source, the chained stateless operators before `key_by`, the
//! watermark strategy, the key
//! extractor, the keyed process function (made once per shard by its factory), the
//! chained operators after it, and the sink.
use std::sync::Arc;

use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::sink::SinkFactory;
use crate::source::Source;
use crate::state::context::StateRegistry;
use crate::time::strategy::WatermarkStrategy;

/// Stateless operators fused into one function: each input yields zero or more outputs.
pub type Chain<S, T> = Arc<dyn Fn(S, &mut dyn FnMut(T)) + Send + Sync>;

/// Makes a shard's process function, declaring the states it uses.
pub type ProcessFactory<P> = Arc<dyn Fn(&mut StateRegistry) -> Result<P, Error> + Send + Sync>;

/// Everything a job is made of, shared by all shards.
pub struct Program<S, T, K, P: KeyedProcessFunction, O> {
    pub name: String,
    pub source: Arc<dyn Source<S>>,
    pub chain: Chain<S, T>,
    /// Timestamps and watermarks of the records after `chain` (None: no event time but
    /// the end of the input).
    pub watermarks: Option<WatermarkStrategy<T>>,
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub factory: ProcessFactory<P>,
    pub post: Chain<P::Out, O>,
    pub sink: Arc<dyn SinkFactory<O>>,
}
