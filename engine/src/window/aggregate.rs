//! A tumbling event-time window with an incremental aggregate, as a keyed process
//! function over the timer service: per key, a map state from window start to the
//! window's accumulator (the running aggregate, never the records) and one event-time
//! timer per window at its last millisecond (`end - 1`, Flink's `maxTimestamp`). When
//! the watermark passes it, the window's result is emitted and its state removed, so
//! nothing is kept for a window that has fired.
//!
//! A record whose window has already fired (its end - 1 is at or below the watermark)
//! is late: it is not added anywhere, and goes out as `Windowed::Late` with its
//! timestamp and the watermark, so it is never dropped silently. Allowed lateness is not
//! built yet.
use std::marker::PhantomData;

use formats::timerkey::TimeDomain;

use super::tumbling::TumblingEventTimeWindows;
use crate::error::{Error, StateError};
use crate::function::KeyedProcessFunction;
use crate::state::codec::Key;
use crate::state::context::{Context, StateRegistry};
use crate::state::handles::{AggregateFunction, MapState};
use crate::time::timers::TimerService;

/// What a windowed aggregate emits.
#[derive(Debug, Clone, PartialEq)]
pub enum Windowed<K, R, T> {
    /// A window's result, when the watermark passed its end.
    Result { key: K, window_start: i64, window_end: i64, value: R },
    /// A record that came after its window fired.
    Late { key: K, timestamp: i64, watermark: i64, record: T },
}

/// The state names a windowed aggregate declares.
pub const WINDOW_STATE: &str = "window";

pub struct WindowAggregate<K, A: AggregateFunction> {
    windows: TumblingEventTimeWindows,
    agg: A,
    timers: TimerService,
    acc: MapState<i64, A::Acc>,
    _k: PhantomData<fn() -> K>,
}

impl<K, A: AggregateFunction> WindowAggregate<K, A> {
    /// Declares the window's states in `reg` (the map `window` and the timer service).
    pub fn new(reg: &mut StateRegistry, windows: TumblingEventTimeWindows, agg: A) -> Result<Self, StateError> {
        Ok(WindowAggregate { windows, agg, timers: reg.timers()?, acc: reg.map(WINDOW_STATE, None)?, _k: PhantomData })
    }
}

impl<K: Key, A> KeyedProcessFunction for WindowAggregate<K, A>
where
    A: AggregateFunction,
    A::In: Send + 'static,
    A::Out: 'static,
{
    type Key = K;
    type In = A::In;
    type Out = Windowed<K, A::Out, A::In>;

    fn process(&mut self, key: &K, input: A::In, ctx: &mut Context<'_>, out: &mut Vec<Self::Out>) -> Result<(), Error> {
        let Some(ts) = ctx.timestamp() else {
            return Err(Error::Config(
                "an event-time window needs timestamps: assign_timestamps_and_watermarks before key_by".into(),
            ));
        };
        let start = self.windows.start_of(ts);
        let last = start.saturating_add(self.windows.size_ms() - 1);
        let watermark = ctx.current_watermark();
        if last <= watermark {
            out.push(Windowed::Late { key: key.clone(), timestamp: ts, watermark, record: input });
            return Ok(());
        }
        let acc = self.acc.get(ctx, &start)?.unwrap_or_else(|| self.agg.create());
        self.acc.put(ctx, &start, self.agg.add(input, acc))?;
        Ok(self.timers.register_event_time_timer(ctx, last)?)
    }

    fn on_timer(
        &mut self,
        key: &K,
        ts: i64,
        domain: TimeDomain,
        ctx: &mut Context<'_>,
        out: &mut Vec<Self::Out>,
    ) -> Result<(), Error> {
        if domain != TimeDomain::EventTime {
            return Ok(());
        }
        let start = ts - (self.windows.size_ms() - 1);
        if let Some(acc) = self.acc.get(ctx, &start)? {
            self.acc.remove(ctx, &start)?;
            out.push(Windowed::Result {
                key: key.clone(),
                window_start: start,
                window_end: start.saturating_add(self.windows.size_ms()),
                value: self.agg.result(&acc),
            });
        }
        Ok(())
    }
}
