//! A shard's producer: reads the shard's split of the source, runs the chained operators
//! before `key_by`, and routes each record to the shard owning its key group. Records
//! for itself go straight to the keyed operator; others are batched per peer and sent
//! over the mesh. Between batches it answers checkpoint requests with barriers and
//! emits its split's event time (`SourceTime`): watermarks, idleness, and the end of
//! time when the source ends.
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use formats::keygroup::{key_group_of, shard_of};

use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::runtime::align::{Aligner, FAILURE_CHECK};
use crate::runtime::checkpoint::barriers::FinalOutcome;
use crate::runtime::mesh::{Batch, Msg};
use crate::runtime::operator::{Operator, Routed};
use crate::runtime::shard::{Senders, Shard};
use crate::source::{SourceContext, SourceReader, Split};
use crate::state::codec::Key;
use crate::time::strategy::WatermarkGenerator;
use crate::time::strategy::WatermarkStrategy;
use crate::time::END_OF_TIME;

impl<S, T, K, P, O> Shard<S, T, K, P, O>
where
    S: Send + 'static,
    T: Send + 'static,
    K: Key,
    P: KeyedProcessFunction<Key = K, In = T>,
    O: 'static,
{
    async fn send(&self, senders: &Senders<K, T>, to: usize, msg: Msg<K, T>) -> bool {
        let delivered = match senders.get(to) {
            Some(Some(s)) => s.send(msg).await.is_ok(),
            _ => true,
        };
        if !delivered {
            self.failed.store(true, Ordering::Relaxed);
        }
        delivered
    }

    /// Ships the outboxes: this shard's own records to its operator, the others' as one
    /// batch per peer. With `all`, every non-empty outbox goes; otherwise only full ones.
    /// False when a peer is gone (see [`Self::send`]).
    async fn ship(
        &self,
        senders: &Senders<K, T>,
        op: &RefCell<Operator<P, O>>,
        outboxes: &mut [Batch<K, T>],
        all: bool,
    ) -> Result<bool, Error> {
        let (me, batch) = (self.id.0 as usize, self.cfg.batch_records);
        for (j, ob) in outboxes.iter_mut().enumerate() {
            if ob.is_empty() || (!all && ob.len() < batch) {
                continue;
            }
            if j == me {
                op.borrow_mut().process_batch(ob)?;
            } else if !self.send(senders, j, Msg::Batch(std::mem::replace(ob, Vec::with_capacity(batch)))).await {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub async fn produce(
        &self,
        senders: &Senders<K, T>,
        op: &RefCell<Operator<P, O>>,
        align: &RefCell<Aligner>,
    ) -> Result<(), Error> {
        let p = &self.program;
        let restored = match &self.cfg.restore {
            Some(r) => r.splits_for(self.id.0, self.cfg.shards)?,
            None => None,
        };
        let ctx = SourceContext {
            shard: self.id,
            shards: self.cfg.shards,
            bad: self.cfg.bad_records.clone(),
            stop: self.cfg.stop.clone(),
            abort: self.failed.clone(),
            restored,
        };
        let mut reader = p.source.open(&ctx)?;
        let batch = self.cfg.batch_records;
        let (n, g) = (self.cfg.shards, self.cfg.max_key_groups);
        let me = self.id.0 as usize;
        let mut input: Vec<S> = Vec::with_capacity(batch);
        let mut outboxes: Vec<Batch<K, T>> = (0..n).map(|_| Vec::with_capacity(batch)).collect();
        let mut key_bytes = Vec::new();
        let assigner = p.watermarks.as_ref().and_then(|w| w.assigner().cloned());
        let mut time = p.watermarks.as_ref().map(SourceTime::new);
        // Checkpoints already taken (before a restore) are not answered again.
        let mut emitted = align.borrow().done();
        let mut source_done = false;
        // The positions of the barriers emitted, until their checkpoint completes.
        let mut positions = Positions::default();
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            positions.notify(&mut *reader, self.barriers.completion().completed);
            if let Some(id) = self.barriers.pending(emitted) {
                let position = reader.position();
                positions.record(id, position.as_deref());
                if !self.emit_barrier(senders, op, align, &mut outboxes, id, position).await? {
                    return Ok(());
                }
                emitted = id;
                continue;
            }
            if source_done {
                let changed = self.barriers.listen();
                if self.barriers.try_close(emitted) {
                    // The final checkpoint's positions are committed once it is published.
                    if self.cfg.checkpoint.is_some() {
                        if let FinalOutcome::Published(id) =
                            self.barriers.final_outcome(&self.failed, FAILURE_CHECK).await
                        {
                            positions.notify(&mut *reader, id);
                        }
                    }
                    return Ok(());
                }
                if self.barriers.pending(emitted).is_none() {
                    futures_lite::future::or(changed, glommio::timer::sleep(FAILURE_CHECK)).await;
                }
                continue;
            }
            input.clear();
            let more = reader.read(&mut input, batch).await? && !ctx.stopping();
            // A short read means the source is not saturated: ship what we have now, so a
            // slow source's records are not held back waiting for a full batch.
            let short = input.len() < batch;
            let read = input.len();
            self.metrics.add_in(me, read as u64);
            let mut generator = time.as_mut().map(|t| &mut t.generator);
            for s in input.drain(..) {
                (p.chain)(s, &mut |t| {
                    let ts = assigner.as_ref().map(|a| a(&t));
                    if let (Some(ts), Some(g)) = (ts, generator.as_mut()) {
                        g.on_event(ts);
                    }
                    let key = (p.key)(&t);
                    key_bytes.clear();
                    key.write_key(&mut key_bytes);
                    let kg = key_group_of(&key_bytes, g);
                    let owner = shard_of(kg, n, g).0 as usize;
                    if let Some(ob) = outboxes.get_mut(owner) {
                        ob.push(Routed { kg, key, value: t, ts });
                    }
                });
            }
            let shipped_all = !more || short;
            if !self.ship(senders, op, &mut outboxes, shipped_all).await? {
                return Ok(());
            }
            if let Some(t) = time.as_mut() {
                if !self.emit_time(senders, op, &mut outboxes, t, read, shipped_all).await? {
                    return Ok(());
                }
            }
            if !more {
                source_done = true;
                // The end of the input is the end of event time (Flink's MAX_WATERMARK),
                // unless the job failed. Every record was shipped before it.
                if !self.failed.load(Ordering::Relaxed)
                    && !self.broadcast(senders, op, TimeMsg::Watermark(END_OF_TIME)).await?
                {
                    return Ok(());
                }
                self.barriers.source_finished();
            }
            glommio::yield_if_needed().await;
        }
    }

    /// Sends the split's event time to every peer and applies it to the own shard.
    /// False when a peer is gone.
    async fn broadcast(
        &self,
        senders: &Senders<K, T>,
        op: &RefCell<Operator<P, O>>,
        m: TimeMsg,
    ) -> Result<bool, Error> {
        let me = self.id.0 as usize;
        for j in 0..self.cfg.shards as usize {
            let msg = match m {
                TimeMsg::Watermark(w) => Msg::Watermark(w),
                TimeMsg::Idle => Msg::Idle,
            };
            if j != me && !self.send(senders, j, msg).await {
                return Ok(false);
            }
        }
        match m {
            TimeMsg::Watermark(w) => op.borrow_mut().on_watermark(me, w)?,
            TimeMsg::Idle => op.borrow_mut().on_idle(me)?,
        }
        Ok(true)
    }

    /// After a read of `read` records: emits the split's watermark when it advanced
    /// and is due (every outbox is shipped first, so no record it covers trails it),
    /// marks the split active again when records came while it was idle, and idle when
    /// none came for the idle timeout. False when a peer is gone.
    async fn emit_time(
        &self,
        senders: &Senders<K, T>,
        op: &RefCell<Operator<P, O>>,
        outboxes: &mut [Batch<K, T>],
        t: &mut SourceTime,
        read: usize,
        shipped_all: bool,
    ) -> Result<bool, Error> {
        let now = Instant::now();
        if read > 0 {
            t.last_record = now;
        }
        let reactivate = t.idle && read > 0;
        let w = t.generator.current().max(t.emitted);
        let due = shipped_all || now.duration_since(t.last_emit) >= t.interval;
        if reactivate || (w > t.emitted && due) {
            if !shipped_all && !self.ship(senders, op, outboxes, true).await? {
                return Ok(false);
            }
            if !self.broadcast(senders, op, TimeMsg::Watermark(w)).await? {
                return Ok(false);
            }
            (t.emitted, t.last_emit, t.idle) = (w, now, false);
        }
        if let Some(timeout) = t.idleness {
            if !t.idle && now.duration_since(t.last_record) >= timeout {
                if !self.broadcast(senders, op, TimeMsg::Idle).await? {
                    return Ok(false);
                }
                t.idle = true;
            }
        }
        Ok(true)
    }

    /// Checkpoint `id` at this producer: everything read before the barrier is shipped
    /// before it, the barrier goes to every peer, and the producer arrives at its own
    /// shard's aligner with the source position it recorded, then waits for the
    /// snapshot. False when a peer is gone.
    async fn emit_barrier(
        &self,
        senders: &Senders<K, T>,
        op: &RefCell<Operator<P, O>>,
        align: &RefCell<Aligner>,
        outboxes: &mut [Batch<K, T>],
        id: u64,
        position: Option<Vec<Split>>,
    ) -> Result<bool, Error> {
        // The planted bug sends the barrier first: records read before it then land
        // after it, outside checkpoint `id` (the kill loop must see them lost).
        let barrier_first = crate::canary::planted("barrier-before-outboxes");
        if !barrier_first && !self.ship(senders, op, outboxes, true).await? {
            return Ok(false);
        }
        let me = self.id.0 as usize;
        for j in 0..self.cfg.shards as usize {
            if j != me && !self.send(senders, j, Msg::Barrier(id)).await {
                return Ok(false);
            }
        }
        if barrier_first && !self.ship(senders, op, outboxes, true).await? {
            return Ok(false);
        }
        Aligner::arrive(align, op, id, Some(position));
        Aligner::aligned(align, id).await;
        Ok(true)
    }
}

/// The source positions of the barriers a producer emitted, until their checkpoint is
/// published; then the reader hears of the newest one published.
#[derive(Default)]
struct Positions {
    emitted: std::collections::VecDeque<(u64, Vec<Split>)>,
}

impl Positions {
    fn record(&mut self, id: u64, position: Option<&[Split]>) {
        if let Some(p) = position {
            self.emitted.push_back((id, p.to_vec()));
        }
    }

    /// Tells `reader` of the newest recorded checkpoint up to `completed`, if any.
    fn notify<S>(&mut self, reader: &mut dyn SourceReader<S>, completed: u64) {
        let mut newest = None;
        while self.emitted.front().is_some_and(|(id, _)| *id <= completed) {
            newest = self.emitted.pop_front();
        }
        if let Some((id, position)) = newest {
            reader.checkpoint_complete(id, &position);
        }
    }
}

/// The event time a producer sends (a watermark, or that its split is idle).
#[derive(Debug, Clone, Copy)]
enum TimeMsg {
    Watermark(i64),
    Idle,
}

/// A producer's event time: its split's watermark generator, what it last emitted and
/// when, and whether it declared itself idle.
struct SourceTime {
    generator: WatermarkGenerator,
    emitted: i64,
    last_emit: Instant,
    last_record: Instant,
    interval: Duration,
    idleness: Option<Duration>,
    idle: bool,
}

impl SourceTime {
    fn new<T>(s: &WatermarkStrategy<T>) -> Self {
        let now = Instant::now();
        SourceTime {
            generator: s.generator(),
            emitted: crate::time::WATERMARK_MIN,
            last_emit: now,
            last_record: now,
            interval: s.emit_interval(),
            idleness: s.idleness(),
            idle: false,
        }
    }
}
