//! The shuffle's full mesh: one bounded SPSC channel from every shard to every other,
//! carrying batches of routed records and checkpoint barriers. A full channel makes its
//! sender wait (backpressure); no queue is unbounded.
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};

use crate::runtime::operator::Routed;

/// Records bound for one shard, shipped together.
pub type Batch<K, T> = Vec<Routed<K, T>>;

/// What travels on the mesh: records, or the barrier of a checkpoint.
pub enum Msg<K, T> {
    Batch(Batch<K, T>),
    Barrier(u64),
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
