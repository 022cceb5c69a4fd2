//! The job function and model shared by the failure tests (restart, fault seam): the
//! sum of `seq` per key `seq % KEYS`, with a failure that can be planted.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use engine::{Context, Error, KeyedProcessFunction, ValueState};

pub const KEYS: u64 = 500;

/// Sums `seq` per key; fails at `fail_at` while `failures_left` is positive.
pub struct Sum {
    pub sum: ValueState<u64>,
    pub fail_at: u64,
    pub failures_left: Arc<AtomicU32>,
}

impl Sum {
    /// A `Sum` that never fails (the factory for `process`).
    #[allow(dead_code, reason = "not every test binary that includes this module uses it")]
    pub fn never_failing(reg: &mut engine::StateRegistry) -> Result<Sum, Error> {
        Ok(Sum { sum: reg.value("sum", None)?, fail_at: u64::MAX, failures_left: Arc::new(AtomicU32::new(0)) })
    }
}

impl KeyedProcessFunction for Sum {
    type Key = u64;
    type In = u64;
    type Out = (u64, u64);

    fn process(&mut self, _: &u64, seq: u64, ctx: &mut Context<'_>, _: &mut Vec<(u64, u64)>) -> Result<(), Error> {
        if seq == self.fail_at && self.failures_left.load(Ordering::SeqCst) > 0 {
            self.failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::user(format!("planted failure at seq {seq}")));
        }
        let s = self.sum.get(ctx)?.unwrap_or(0) + seq;
        Ok(self.sum.set(ctx, s)?)
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<(u64, u64)>) -> Result<(), Error> {
        self.sum.for_each(ctx, |k, v| out.push((u64::from_le_bytes(k.try_into().unwrap_or([0; 8])), v)))?;
        Ok(())
    }
}

/// Every key's sum over `0..records`, without failures.
pub fn model(records: u64) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for s in 0..records {
        *m.entry(s % KEYS).or_default() += s;
    }
    m
}
