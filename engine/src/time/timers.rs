//! The timer service of a keyed process function (Flink's `TimerService`): event-time
//! and processing-time timers for the current key, stored as entries of the internal
//! timer state (`formats::timerkey`), so they are checkpointed, restored onto any shard
//! count and backend, and shown by statetool like any keyed state. A timer is a key, so
//! there is at most one per (key, namespace, time) and domain.
use formats::statekey;
use formats::timerkey::{self, TimeDomain, TIMER_STATE};
use formats::value::{StateKind, ValueEncoding};

use crate::error::StateError;
use crate::state::backend::StateId;
use crate::state::context::{Context, StateRegistry};

/// A handle on the shard's timers, declared once per shard (`StateRegistry::timers`).
#[derive(Debug, Clone, Copy)]
pub struct TimerService {
    state: StateId,
}

impl StateRegistry {
    /// Declares the timer service: the internal state `_timers` (kind `timer`) that
    /// holds the function's timers. Declare it once, before or after the other states.
    pub fn timers(&mut self) -> Result<TimerService, StateError> {
        let state = self.register(TIMER_STATE, StateKind::Timer, ValueEncoding::Unit, None, None)?;
        Ok(TimerService { state })
    }
}

impl TimerService {
    /// A timer that fires once the watermark reaches `ts` (`on_timer` with `EventTime`).
    pub fn register_event_time_timer(&self, ctx: &mut Context<'_>, ts: i64) -> Result<(), StateError> {
        self.register(ctx, TimeDomain::EventTime, ts, b"")
    }

    /// Deletes the event-time timer at `ts` of the current key, if there is one.
    pub fn delete_event_time_timer(&self, ctx: &mut Context<'_>, ts: i64) -> Result<(), StateError> {
        self.delete(ctx, TimeDomain::EventTime, ts, b"")
    }

    /// A timer that fires once the job's clock reaches `ts` (ms since the Unix epoch).
    pub fn register_processing_time_timer(&self, ctx: &mut Context<'_>, ts: i64) -> Result<(), StateError> {
        self.register(ctx, TimeDomain::ProcessingTime, ts, b"")
    }

    /// Deletes the processing-time timer at `ts` of the current key, if there is one.
    pub fn delete_processing_time_timer(&self, ctx: &mut Context<'_>, ts: i64) -> Result<(), StateError> {
        self.delete(ctx, TimeDomain::ProcessingTime, ts, b"")
    }

    /// Registers a timer of the current key in `namespace` (windows keep one per window);
    /// `on_timer` sees it in `Context::timer_namespace`. Registering it again is a no-op.
    pub fn register(
        &self,
        ctx: &mut Context<'_>,
        domain: TimeDomain,
        ts: i64,
        namespace: &[u8],
    ) -> Result<(), StateError> {
        Self::with_timer_key(ctx, domain, ts, namespace, |ctx, key| {
            ctx.backend.put(self.state, key, b"")?;
            ctx.time.registered(domain, ts, key);
            Ok(())
        })
    }

    /// Deletes the timer of the current key in `namespace` at `ts`, if there is one.
    pub fn delete(
        &self,
        ctx: &mut Context<'_>,
        domain: TimeDomain,
        ts: i64,
        namespace: &[u8],
    ) -> Result<(), StateError> {
        Self::with_timer_key(ctx, domain, ts, namespace, |ctx, key| ctx.backend.delete(self.state, key))
    }

    /// Runs `op` with the current key's timer key in `namespace` at `ts`, built in the
    /// context's scratch buffer (no allocation per call).
    fn with_timer_key(
        ctx: &mut Context<'_>,
        domain: TimeDomain,
        ts: i64,
        namespace: &[u8],
        op: impl FnOnce(&mut Context<'_>, &[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut key = std::mem::take(&mut ctx.scratch.key);
        let r = Self::timer_key(ctx, domain, ts, namespace, &mut key).and_then(|()| op(ctx, &key));
        ctx.scratch.key = key;
        r
    }

    fn timer_key(
        ctx: &Context<'_>,
        domain: TimeDomain,
        ts: i64,
        namespace: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StateError> {
        if ctx.prefix.is_empty() {
            return Err(StateError::NoCurrentKey { what: "a timer" });
        }
        let sk = statekey::decode(ctx.prefix)?;
        out.clear();
        timerkey::encode(out, sk.key_group, domain, ts, sk.key, namespace);
        Ok(())
    }
}
