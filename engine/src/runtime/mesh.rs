//! The shuffle's full mesh: one bounded SPSC channel from every shard to every other,
//! carrying batches of routed records, checkpoint barriers and the sender's event time
//! (its watermark, or that it is idle), in band with the records they follow. A full channel makes its
//! sender wait (backpressure); no queue is unbounded.
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};

use crate::runtime::operator::Routed;

/// Records bound for one shard, shipped together.
pub type Batch<K, T> = Vec<Routed<K, T>>;

/// What travels on the mesh: records, the barrier of a checkpoint, or the sender's
/// event time.
pub enum Msg<K, T> {
    Batch(Batch<K, T>),
    Barrier(u64),
    /// Every record the sender sends after this has a timestamp above it (or is late).
    /// Also marks the sender active again after `Idle`.
    Watermark(i64),
    /// The sender's split yielded nothing for its idle timeout: leave it out of the
    /// watermark until its next `Watermark`.
    Idle,
}

pub type Sender<K, T> = SharedSender<Msg<K, T>>;
pub type Receiver<K, T> = SharedReceiver<Msg<K, T>>;

/// The channel ends of shard i: `senders[to]` (None for itself) and one receiver per peer.
pub struct Ends<K: Send, T: Send> {
    pub senders: Vec<Option<Sender<K, T>>>,
    pub receivers: Vec<Receiver<K, T>>,
}

/// Builds the mesh of `n` shards, each channel holding `capacity` batches; returns each
/// shard's ends, in shard order.
pub fn build<K: Send + 'static, T: Send + 'static>(n: usize, capacity: usize) -> Vec<Ends<K, T>> {
    let mut ends: Vec<Ends<K, T>> =
        (0..n).map(|_| Ends { senders: (0..n).map(|_| None).collect(), receivers: Vec::new() }).collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (s, r) = shared_channel::new_bounded(capacity);
            if let Some(slot) = ends.get_mut(from).and_then(|e| e.senders.get_mut(to)) {
                *slot = Some(s);
            }
            if let Some(e) = ends.get_mut(to) {
                e.receivers.push(r);
            }
        }
    }
    ends
}
