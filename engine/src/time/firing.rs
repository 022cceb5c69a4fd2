//! A firing pass: every timer of one domain due at `until` (the new watermark, or the
//! clock's now) on the key groups a shard owns, fired in time order (ties in key order),
//! each deleted before its `on_timer` runs. Timers that `on_timer` registers and that
//! are already due fire in the same pass, in order; timers it deletes do not fire.
//!
//! Each key group's timers of a domain are one sorted run of the timer state
//! (`formats::timerkey`), read from its start (a seek, on RocksDB) up to the first timer
//! after `until`. The pass merges the runs in a queue holding at most
//! [`DUE_PER_KEY_GROUP`] timers of each key group (plus those registered during the
//! pass), so its memory is bounded whatever the number of timers due: a key group's
//! next timers are read when the queue holds none of those read of it any more. That
//! keeps the order: while a key group has a timer read in the queue, every timer of it
//! not read yet sorts after that one, so the queue's smallest is the smallest due timer
//! of all. Timers registered during the pass go into the queue directly and do not
//! count (they bound nothing). A read starts at the run's start again, which finds the
//! timers not read yet, since every one read has fired or been deleted by then (one
//! registered during the pass may be found again: the second copy finds it gone and is
//! skipped).
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use formats::keygroup::{key_group_of, KeyGroup, KeyGroupRange, ShardId};
use formats::statekey;
use formats::timerkey::{self, TimeDomain};

use super::scope::TimeScope;
use crate::clock::Clock;
use crate::error::{Error, StateError};
use crate::state::backend::{Backend, StateId};
use crate::state::context::{Context, Scratch};

/// The most timers of one key group a pass reads at a time.
pub const DUE_PER_KEY_GROUP: usize = 4096;

/// What a pass calls for each timer: the key's bytes, the timer's time, a context
/// scoped to the key.
pub type OnTimer<'f> = dyn FnMut(&[u8], i64, &mut Context<'_>) -> Result<(), Error> + 'f;

/// What a pass needs of the shard's operator (or of a test harness).
pub struct TimerEnv<'a> {
    pub backend: &'a mut dyn Backend,
    pub state: StateId,
    pub range: KeyGroupRange,
    /// The job's key-group count: a timer must be in its key's key group.
    pub max_key_groups: u32,
    pub clock: &'a Arc<dyn Clock>,
    pub scratch: &'a mut Scratch,
    pub time: &'a mut TimeScope,
    pub shard: ShardId,
}

/// The time of a stored timer key (`formats::timerkey` §3.3), for the sorted scans that
/// only need it.
fn time_of(k: &[u8]) -> Option<i64> {
    let b: [u8; 8] = k.get(timerkey::TIME_OFFSET..timerkey::TIME_OFFSET + 8)?.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

/// Reads up to `max` timers of `domain` in key group `kg` due at `until`, in key order,
/// into `queue` (each with `index`); returns how many.
#[expect(clippy::too_many_arguments, reason = "one private read of a firing pass")]
fn read_due(
    backend: &mut dyn Backend,
    state: StateId,
    kg: KeyGroup,
    index: usize,
    domain: TimeDomain,
    until: i64,
    max: usize,
    queue: &mut BinaryHeap<Reverse<Due>>,
) -> Result<usize, Error> {
    let mut prefix = Vec::with_capacity(timerkey::DOMAIN_PREFIX_LEN);
    timerkey::domain_prefix(&mut prefix, kg, domain);
    let mut n = 0;
    backend.scan_prefix(state, &prefix, &mut |k, _| match time_of(k) {
        Some(t) if t <= until && n < max => {
            queue.push(Reverse((t, k.to_vec(), index, true)));
            n += 1;
            true
        }
        _ => false,
    })?;
    Ok(n)
}

/// A timer in a pass's queue: its time, its key, the index of its key group in the
/// range, and whether a read put it there (rather than a registration in the pass).
type Due = (i64, Vec<u8>, usize, bool);

/// The earliest timer of `domain` on `range`, if any (one seek per key group).
pub fn earliest(
    backend: &mut dyn Backend,
    state: StateId,
    range: KeyGroupRange,
    domain: TimeDomain,
) -> Result<Option<i64>, Error> {
    let mut first: Option<i64> = None;
    let mut prefix = Vec::with_capacity(timerkey::DOMAIN_PREFIX_LEN);
    for kg in range.start..range.end {
        prefix.clear();
        timerkey::domain_prefix(&mut prefix, KeyGroup(kg), domain);
        backend.scan_prefix(state, &prefix, &mut |k, _| {
            if let Some(t) = time_of(k) {
                first = Some(first.map_or(t, |f| f.min(t)));
            }
            false
        })?;
    }
    Ok(first)
}

/// Fires every timer of `domain` due at `until`; `on_timer` gets the key's bytes, the
/// timer's time and a context scoped to the key. Returns how many fired.
pub fn fire_due(env: TimerEnv<'_>, domain: TimeDomain, until: i64, on_timer: &mut OnTimer<'_>) -> Result<u64, Error> {
    fire_due_by(env, domain, until, DUE_PER_KEY_GROUP, on_timer)
}

/// [`fire_due`], reading at most `per_key_group` timers of a key group at a time (tests
/// use a small number, so that passes read key groups many times).
pub fn fire_due_by(
    env: TimerEnv<'_>,
    domain: TimeDomain,
    until: i64,
    per_key_group: usize,
    on_timer: &mut OnTimer<'_>,
) -> Result<u64, Error> {
    let TimerEnv { backend, state, range, max_key_groups, clock, scratch, time, shard } = env;
    let per_key_group = per_key_group.max(1);
    let groups = usize::from(range.end.saturating_sub(range.start));
    let kg_at = |i: usize| KeyGroup(range.start.saturating_add(i as u16));
    // Per key group: timers read of it still in the queue, and whether the last read
    // found every due one.
    let mut queued = vec![0usize; groups];
    let mut read_all = vec![false; groups];
    let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    for i in 0..groups {
        let n = read_due(backend, state, kg_at(i), i, domain, until, per_key_group, &mut queue)?;
        if let (Some(q), Some(a)) = (queued.get_mut(i), read_all.get_mut(i)) {
            (*q, *a) = (n, n < per_key_group);
        }
    }
    let (saved_ts, saved_firing) = (time.timestamp, time.firing.replace((domain, until)));
    time.due.clear();
    let mut prefix = Vec::new();
    let mut probe = Vec::new();
    let mut fired = 0;
    let result = (|| {
        while let Some(Reverse((ts, k, i, was_read))) = queue.pop() {
            if was_read {
                if let Some(q) = queued.get_mut(i) {
                    *q = q.saturating_sub(1);
                }
            }
            // Deleted since it was read (by an `on_timer` of this pass): it does not fire.
            if backend.get(state, &k, &mut probe)? {
                backend.delete(state, &k)?;
                let t = timerkey::decode(&k)?;
                // State restored or rewritten wrongly would otherwise run `on_timer` with
                // the key's state in another key group: refuse it.
                let owner = key_group_of(t.key, max_key_groups);
                if owner != t.key_group {
                    return Err(StateError::Decode {
                        state: timerkey::TIMER_STATE.to_owned(),
                        reason: format!(
                            "a timer stored in key group {} for a key of key group {}",
                            t.key_group.0, owner.0
                        ),
                    }
                    .into());
                }
                prefix.clear();
                statekey::encode_prefix(&mut prefix, t.key_group, t.key, b"");
                time.timestamp = Some(ts);
                time.timer_namespace.clear();
                time.timer_namespace.extend_from_slice(t.namespace);
                let mut ctx =
                    Context::new(&mut *backend, &prefix, clock, &mut *scratch, &mut *time, shard, t.key_group);
                on_timer(t.key, ts, &mut ctx)?;
                fired += 1;
                // Timers registered by `on_timer` that are already due fire in this pass.
                queue.extend(time.due.drain(..).map(|(t, key)| Reverse((t, key, usize::MAX, false))));
            }
            // The queue holds no timer read of this key group any more: read its next ones.
            if was_read && queued.get(i) == Some(&0) && read_all.get(i) == Some(&false) {
                let n = read_due(backend, state, kg_at(i), i, domain, until, per_key_group, &mut queue)?;
                if let (Some(q), Some(a)) = (queued.get_mut(i), read_all.get_mut(i)) {
                    (*q, *a) = (n, n < per_key_group);
                }
            }
        }
        Ok(fired)
    })();
    time.timestamp = saved_ts;
    time.firing = saved_firing;
    time.timer_namespace.clear();
    time.due.clear();
    result
}
