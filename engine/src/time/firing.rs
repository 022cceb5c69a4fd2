//! A firing pass: every timer of one domain due at `until` (the new watermark, or the
//! clock's now) on the key groups a shard owns, fired in time order (ties in key order),
//! each deleted before its `on_timer` runs. Timers that `on_timer` registers and that
//! are already due fire in the same pass, in order; timers it deletes do not fire.
//!
//! Each key group's timers of a domain are one sorted run of the timer state
//! (`formats::timerkey`), read from its start up to the first timer after `until` (a
//! seek, on RocksDB). The pass merges the runs in a queue that holds every due timer:
//! its memory is proportional to the timers due at once (docs/EVENT_TIME.md, "Limits").
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use formats::keygroup::{KeyGroup, KeyGroupRange, ShardId};
use formats::statekey;
use formats::timerkey::{self, TimeDomain};

use super::scope::TimeScope;
use crate::clock::Clock;
use crate::error::Error;
use crate::state::backend::{Backend, StateId};
use crate::state::context::{Context, Scratch};

/// What a pass calls for each timer: the key's bytes, the timer's time, a context
/// scoped to the key.
pub type OnTimer<'f> = dyn FnMut(&[u8], i64, &mut Context<'_>) -> Result<(), Error> + 'f;

/// What a pass needs of the shard's operator (or of a test harness).
pub struct TimerEnv<'a> {
    pub backend: &'a mut dyn Backend,
    pub state: StateId,
    pub range: KeyGroupRange,
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

/// Visits the timers of `domain` on `range` due at `until`, in key order per key group.
fn scan_due(
    backend: &mut dyn Backend,
    state: StateId,
    range: KeyGroupRange,
    domain: TimeDomain,
    until: i64,
    visit: &mut dyn FnMut(i64, &[u8]),
) -> Result<(), Error> {
    let mut prefix = Vec::with_capacity(timerkey::DOMAIN_PREFIX_LEN);
    for kg in range.start..range.end {
        prefix.clear();
        timerkey::domain_prefix(&mut prefix, KeyGroup(kg), domain);
        backend.scan_prefix(state, &prefix, &mut |k, _| match time_of(k) {
            Some(t) if t <= until => {
                visit(t, k);
                true
            }
            _ => false,
        })?;
    }
    Ok(())
}

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
    let TimerEnv { backend, state, range, clock, scratch, time, shard } = env;
    let mut queue: BinaryHeap<Reverse<(i64, Vec<u8>)>> = BinaryHeap::new();
    scan_due(backend, state, range, domain, until, &mut |t, k| queue.push(Reverse((t, k.to_vec()))))?;
    let (saved_ts, saved_firing) = (time.timestamp, time.firing.replace((domain, until)));
    time.due.clear();
    let mut prefix = Vec::new();
    let mut probe = Vec::new();
    let mut fired = 0;
    let result = (|| {
        while let Some(Reverse((ts, k))) = queue.pop() {
            // Deleted since the scan (or a duplicate of one fired already): skip it.
            if !backend.get(state, &k, &mut probe)? {
                continue;
            }
            backend.delete(state, &k)?;
            let t = timerkey::decode(&k)?;
            prefix.clear();
            statekey::encode_prefix(&mut prefix, t.key_group, t.key, b"");
            time.timestamp = Some(ts);
            time.timer_namespace.clear();
            time.timer_namespace.extend_from_slice(t.namespace);
            let mut ctx = Context::new(&mut *backend, &prefix, clock, &mut *scratch, &mut *time, shard, t.key_group);
            on_timer(t.key, ts, &mut ctx)?;
            fired += 1;
            queue.extend(time.due.drain(..).map(Reverse));
        }
        Ok(fired)
    })();
    time.timestamp = saved_ts;
    time.firing = saved_firing;
    time.timer_namespace.clear();
    time.due.clear();
    result
}
