//! The keyed operator of one shard: the process function, its state backend, the
//! operators after it and the shard's sink. Records arrive in batches, from the local
//! producer and from every peer's channel; all run on the shard's thread.
use std::sync::Arc;

use formats::statekey;
use formats::{KeyGroup, ShardId};

use crate::clock::Clock;
use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::graph::Chain;
use crate::runtime::metrics::Metrics;
use crate::sink::Sink;
use crate::state::backend::Backend;
use crate::state::codec::Key;
use crate::state::context::Context;
use crate::state::context::Scratch;
use crate::state::sweeper::Sweeper;

/// A record on its way to the shard that owns its key group.
pub struct Routed<K, T> {
    pub kg: KeyGroup,
    pub key: K,
    pub value: T,
}

pub struct Operator<P: KeyedProcessFunction, O> {
    pub shard: ShardId,
    pub func: P,
    pub backend: Box<dyn Backend>,
    pub sink: Box<dyn Sink<O>>,
    pub post: Chain<P::Out, O>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// The shard's TTL cleanup (incremental steps, full-snapshot settings).
    pub sweeper: Sweeper,
    pub(crate) scratch: Scratch,
    prefix: Vec<u8>,
    key_bytes: Vec<u8>,
    out: Vec<P::Out>,
    /// Records came since the last idle tick.
    busy: bool,
}

impl<P: KeyedProcessFunction, O> Operator<P, O> {
    #[expect(clippy::too_many_arguments, reason = "each part is opened by its own step of Shard::open_operator")]
    pub fn new(
        shard: ShardId,
        func: P,
        backend: Box<dyn Backend>,
        sink: Box<dyn Sink<O>>,
        post: Chain<P::Out, O>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        sweeper: Sweeper,
    ) -> Self {
        let scratch = Scratch { expired: Some(sweeper.counts().clone()), ..Scratch::default() };
        Operator {
            shard,
            func,
            backend,
            sink,
            post,
            clock,
            metrics,
            sweeper,
            scratch,
            prefix: Vec::new(),
            key_bytes: Vec::new(),
            out: Vec::new(),
            busy: false,
        }
    }

    pub fn process_batch(&mut self, batch: &mut Vec<Routed<P::Key, P::In>>) -> Result<(), Error> {
        let n = batch.len() as u64;
        for r in batch.drain(..) {
            self.key_bytes.clear();
            r.key.write_key(&mut self.key_bytes);
            self.prefix.clear();
            statekey::encode_prefix(&mut self.prefix, r.kg, &self.key_bytes, b"");
            let mut ctx =
                Context::new(&mut *self.backend, &self.prefix, &self.clock, &mut self.scratch, self.shard, r.kg);
            self.func.process(&r.key, r.value, &mut ctx, &mut self.out)?;
            self.emit()?;
        }
        self.metrics.add_processed(self.shard.0 as usize, n);
        self.busy = true;
        // Incremental TTL cleanup: `cleanup_size` entries per record, once per batch.
        if self.sweeper.cleans_after_records() {
            self.sweeper.after_record(&mut *self.backend, self.clock.now_ms(), n as usize)?;
        }
        Ok(())
    }

    /// Every `state::cleanup::IDLE_TICK`: samples the entries stored, and runs
    /// incremental TTL cleanup when the shard had no input since the last tick.
    pub fn tick(&mut self) -> Result<(), Error> {
        self.metrics.set_state_entries(self.shard.0 as usize, self.backend.stored_entries());
        if std::mem::replace(&mut self.busy, false) || !self.sweeper.has_idle_work() {
            return Ok(());
        }
        Ok(self.sweeper.on_idle_tick(&mut *self.backend, self.clock.now_ms())?)
    }

    pub fn end_of_input(&mut self) -> Result<(), Error> {
        let mut ctx = Context::new(&mut *self.backend, &[], &self.clock, &mut self.scratch, self.shard, KeyGroup(0));
        self.func.end_of_input(&mut ctx, &mut self.out)?;
        self.emit()
    }

    fn emit(&mut self) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        let mut written = 0u64;
        let sink = &mut self.sink;
        for o in self.out.drain(..) {
            (self.post)(o, &mut |x| {
                if result.is_ok() {
                    result = sink.write(x);
                    written += 1;
                }
            });
        }
        self.metrics.add_out(self.shard.0 as usize, written);
        result
    }
}
