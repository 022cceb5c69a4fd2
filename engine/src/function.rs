//! The keyed process function: user code that sees one record at a time with its key,
//! owns state handles, and emits outputs (Flink's `KeyedProcessFunction`).
use formats::timerkey::TimeDomain;

use crate::error::Error;
use crate::state::codec::Key;
use crate::state::context::Context;
use crate::state::operator::OperatorStates;

pub trait KeyedProcessFunction: 'static {
    type Key: Key;
    type In: Send + 'static;
    type Out: 'static;

    /// Called for every record, on the shard that owns the record's key group, with a
    /// context scoped to `key`.
    fn process(
        &mut self,
        key: &Self::Key,
        input: Self::In,
        ctx: &mut Context<'_>,
        out: &mut Vec<Self::Out>,
    ) -> Result<(), Error>;

    /// Called when a timer of `key` fires (`TimerService`): an event-time timer once the
    /// shard's watermark reaches `timestamp`, a processing-time timer once the clock
    /// does. The context is scoped to `key` (its `timestamp()` is the timer's, its
    /// `timer_namespace()` the one the timer was registered in); timers registered here
    /// that are already due fire in the same pass, after this one.
    fn on_timer(
        &mut self,
        _key: &Self::Key,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut Context<'_>,
        _out: &mut Vec<Self::Out>,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Called once per shard after every input of that shard has ended (bounded sources,
    /// or a stop), after every event-time timer has fired (the watermark is then at the
    /// end of time; pending processing-time timers stay in state). The context has no
    /// current key; use the handles' `for_each` to visit every key the shard owns.
    fn end_of_input(&mut self, _ctx: &mut Context<'_>, _out: &mut Vec<Self::Out>) -> Result<(), Error> {
        Ok(())
    }

    /// Called once per shard at start, before any record, with the operator states this
    /// shard restored (empty on a fresh start): list states dealt evenly over the shards,
    /// union states whole (Flink's `CheckpointedFunction::initializeState`).
    fn initialize_state(&mut self, _restored: &OperatorStates) -> Result<(), Error> {
        Ok(())
    }

    /// Called on every checkpoint's barrier, with an empty store to fill with this
    /// shard's operator states (Flink's `CheckpointedFunction::snapshotState`).
    fn snapshot_state(&mut self, _checkpoint: u64, _store: &mut OperatorStates) -> Result<(), Error> {
        Ok(())
    }
}
