//! sluice's engine: a thread-per-core keyed dataflow (glommio), keyed state on RocksDB
//! or the heap, and the pieces the `sluice` binary is made of.
pub mod badrecord;
pub mod canary;
pub mod clock;
pub mod error;
pub mod function;
pub mod job;
pub mod pipeline;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod state;
pub mod testing;

pub use error::{Error, StateError};
pub use function::KeyedProcessFunction;
pub use job::Job;
pub use runtime::{RunConfig, RunReport};
pub use state::{BackendKind, Context, StateRegistry};
