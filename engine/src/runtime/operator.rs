//! The keyed operator of one shard: the process function, its state backend, the
//! operators after it and the shard's sink. Records arrive in batches, from the local
//! producer and from every peer's channel; all run on the shard's thread.
use std::sync::Arc;

use event_listener::Event;
use formats::operator_state::OperatorState;
use formats::statekey;
use formats::timerkey::{TimeDomain, TIMER_STATE};
use formats::{KeyGroup, KeyGroupRange, ShardId};

use crate::clock::Clock;
use crate::error::{Error, StateError};
use crate::function::KeyedProcessFunction;
use crate::graph::Chain;
use crate::runtime::metrics::Metrics;
use crate::sink::two_phase::PENDING_STATE;
use crate::sink::Sink;
use crate::state::backend::{Backend, StateId};
use crate::state::codec::Key;
use crate::state::context::Context;
use crate::state::context::Scratch;
use crate::state::operator::OperatorStates;
use crate::state::sweeper::Sweeper;
use crate::time::firing::{self, TimerEnv};
use crate::time::scope::TimeScope;
use crate::time::valve::Valve;

/// A record on its way to the shard that owns its key group.
pub struct Routed<K, T> {
    pub kg: KeyGroup,
    pub key: K,
    pub value: T,
    /// Event time, when the stream assigns timestamps.
    pub ts: Option<i64>,
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
    /// The key groups this shard owns (where its timers are), of how many.
    range: KeyGroupRange,
    max_key_groups: u32,
    /// The shard's event time over its inputs (own producer, one channel per peer).
    valve: Valve,
    time: TimeScope,
    /// The internal timer state, when the function declared its timer service.
    timers: Option<StateId>,
    /// The earliest processing-time timer, or earlier (a deleted one): the shard's one
    /// clock timer waits for it.
    next_processing: Option<i64>,
    /// Notified when `next_processing` moves earlier.
    pub processing_changed: Event,
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
        time: OperatorTime,
    ) -> Self {
        let scratch = Scratch { expired: Some(sweeper.counts().clone()), ..Scratch::default() };
        Operator {
            range: time.range,
            max_key_groups: time.max_key_groups,
            valve: Valve::new(time.inputs),
            time: TimeScope::default(),
            timers: time.timers,
            next_processing: None,
            processing_changed: Event::new(),
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
            self.time.timestamp = r.ts;
            let mut ctx = Context::new(
                &mut *self.backend,
                &self.prefix,
                &self.clock,
                &mut self.scratch,
                &mut self.time,
                self.shard,
                r.kg,
            );
            self.func.process(&r.key, r.value, &mut ctx, &mut self.out)?;
            self.emit()?;
        }
        self.time.timestamp = None;
        self.note_processing_timers();
        self.metrics.add_processed(self.shard.0 as usize, n);
        self.busy = true;
        // Incremental TTL cleanup: `cleanup_size` entries per record, once per batch.
        if self.sweeper.cleans_after_records() {
            self.sweeper.after_record(&mut *self.backend, self.clock.now_ms(), n as usize)?;
        }
        Ok(())
    }

    /// On checkpoint `id`'s barrier: the function's operator states and the sink's
    /// pending transactions ([`PENDING_STATE`]), pre-committing the open one.
    pub fn snapshot_operator_state(&mut self, id: u64) -> Result<Vec<OperatorState>, Error> {
        let mut store = OperatorStates::default();
        self.func.snapshot_state(id, &mut store)?;
        let pending = self.sink.snapshot(id)?;
        if !pending.is_empty() {
            *store.list(PENDING_STATE) = pending;
        }
        Ok(store.into_states())
    }

    /// Every `state::cleanup::IDLE_TICK`: samples the entries stored, and runs
    /// incremental TTL cleanup when the shard had no input since the last tick.
    /// Also fires the processing-time timers that are due (for clocks the shard's
    /// clock timer cannot sleep on, such as a test's manual clock).
    pub fn tick(&mut self) -> Result<(), Error> {
        self.metrics.set_state_entries(self.shard.0 as usize, self.backend.stored_entries());
        self.fire_processing_time()?;
        if std::mem::replace(&mut self.busy, false) || !self.sweeper.has_idle_work() {
            return Ok(());
        }
        Ok(self.sweeper.on_idle_tick(&mut *self.backend, self.clock.now_ms())?)
    }

    pub fn end_of_input(&mut self) -> Result<(), Error> {
        let mut ctx = Context::new(
            &mut *self.backend,
            &[],
            &self.clock,
            &mut self.scratch,
            &mut self.time,
            self.shard,
            KeyGroup(0),
        );
        self.func.end_of_input(&mut ctx, &mut self.out)?;
        self.emit()
    }

    /// Input `input` (a shard id: the own producer or a peer) reports watermark `w`;
    /// fires the event-time timers the shard's new watermark passes.
    pub fn on_watermark(&mut self, input: usize, w: i64) -> Result<(), Error> {
        match self.valve.watermark(input, w) {
            Some(w) => self.advance_event_time(w),
            None => Ok(()),
        }
    }

    /// Input `input` went idle: it no longer holds the shard's watermark back.
    pub fn on_idle(&mut self, input: usize) -> Result<(), Error> {
        match self.valve.idle(input) {
            Some(w) => self.advance_event_time(w),
            None => Ok(()),
        }
    }

    fn advance_event_time(&mut self, w: i64) -> Result<(), Error> {
        self.time.watermark = w;
        self.fire(TimeDomain::EventTime, w)
    }

    /// Loads the earliest processing-time timer of the restored state (at start).
    pub fn open_timers(&mut self) -> Result<(), Error> {
        if let Some(state) = self.timers {
            self.next_processing = firing::earliest(&mut *self.backend, state, self.range, TimeDomain::ProcessingTime)?;
        }
        Ok(())
    }

    /// When the shard's clock timer should next wake (None: no processing-time timer).
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.next_processing
    }

    /// Fires the processing-time timers due at the clock's now, if any are.
    pub fn fire_processing_time(&mut self) -> Result<(), Error> {
        let now = i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX);
        if self.next_processing.is_none_or(|n| n > now) {
            return Ok(());
        }
        self.fire(TimeDomain::ProcessingTime, now)?;
        if let Some(state) = self.timers {
            self.next_processing = firing::earliest(&mut *self.backend, state, self.range, TimeDomain::ProcessingTime)?;
        }
        self.processing_changed.notify(usize::MAX);
        Ok(())
    }

    fn fire(&mut self, domain: TimeDomain, until: i64) -> Result<(), Error> {
        let Some(state) = self.timers else { return Ok(()) };
        let env = TimerEnv {
            backend: &mut *self.backend,
            state,
            range: self.range,
            max_key_groups: self.max_key_groups,
            clock: &self.clock,
            scratch: &mut self.scratch,
            time: &mut self.time,
            shard: self.shard,
        };
        let (func, out, sink, post, metrics, shard) =
            (&mut self.func, &mut self.out, &mut *self.sink, &self.post, &self.metrics, self.shard);
        let mut on_timer = |key: &[u8], ts: i64, ctx: &mut Context<'_>| -> Result<(), Error> {
            let key = P::Key::read_key(key).ok_or_else(|| StateError::Decode {
                state: TIMER_STATE.to_owned(),
                reason: format!("the key of a timer ({} bytes) does not decode", key.len()),
            })?;
            func.on_timer(&key, ts, domain, ctx, out)?;
            emit(out, sink, post, metrics, shard)
        };
        firing::fire_due(env, domain, until, &mut on_timer)?;
        self.note_processing_timers();
        Ok(())
    }

    /// Takes the earliest processing-time timer the last calls registered; wakes the
    /// shard's clock timer when it is earlier than the one it waits for.
    fn note_processing_timers(&mut self) {
        if let Some(t) = self.time.earliest_processing.take() {
            if self.next_processing.is_none_or(|n| t < n) {
                self.next_processing = Some(t);
                self.processing_changed.notify(usize::MAX);
            }
        }
    }

    fn emit(&mut self) -> Result<(), Error> {
        emit(&mut self.out, &mut *self.sink, &self.post, &self.metrics, self.shard)
    }
}

/// Writes the function's outputs through the operators after it to the sink.
fn emit<T, O>(
    out: &mut Vec<T>,
    sink: &mut dyn Sink<O>,
    post: &Chain<T, O>,
    metrics: &Metrics,
    shard: ShardId,
) -> Result<(), Error> {
    if out.is_empty() {
        return Ok(());
    }
    let mut result = Ok(());
    let mut written = 0u64;
    for o in out.drain(..) {
        post(o, &mut |x| {
            if result.is_ok() {
                result = sink.write(x);
                written += 1;
            }
        });
    }
    metrics.add_out(shard.0 as usize, written);
    result
}

/// What the operator needs to know to keep time: its key groups, its inputs (one per
/// shard) and its timer state.
pub struct OperatorTime {
    pub range: KeyGroupRange,
    pub max_key_groups: u32,
    pub inputs: usize,
    pub timers: Option<StateId>,
}
