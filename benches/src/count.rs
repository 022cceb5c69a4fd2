//! The keyed count both benches run, the same job as the Flink peer
//! (`../shared/peers/flink/KeyedCount.java`): a `ValueState<i64>` count per key, an
//! output when `seq & 0xFFFFF == 0`.
use engine::ValueState;
use engine::{Context, Error, KeyedProcessFunction};

pub struct Count {
    pub count: ValueState<i64>,
}

impl KeyedProcessFunction for Count {
    type Key = u64;
    type In = u64;
    type Out = i64;

    // Inlined into the engine's operator loop across codegen units (a separate module
    // without it measured 4-6% slower on RocksDB: the bench would measure the harness).
    #[inline]
    fn process(&mut self, _: &u64, seq: u64, ctx: &mut Context<'_>, out: &mut Vec<i64>) -> Result<(), Error> {
        let n = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, n)?;
        if seq & 0xFFFFF == 0 {
            out.push(n);
        }
        Ok(())
    }
}
