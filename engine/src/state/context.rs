//! What a process function sees of keyed state: the registry it declares states in when a
//! shard starts, and the per-record context that scopes every state access to the
//! current key.
use std::sync::Arc;

use formats::ttl::TtlConfig;
use formats::value::{StateDescriptor, StateKind, ValueEncoding};
use formats::{KeyGroup, ShardId};

use super::backend::{Backend, StateId};
use super::cleanup::TtlCleanup;
use super::expired::ExpiredCounts;
use crate::clock::Clock;
use crate::error::StateError;
use crate::time::scope::TimeScope;

/// Collects the states a process function declares. The order of declaration gives each
/// state its [`StateId`].
#[derive(Default)]
pub struct StateRegistry {
    descriptors: Vec<StateDescriptor>,
    /// One per state: `TtlCleanup::default()` for a state with a TTL unless set, else none.
    cleanups: Vec<TtlCleanup>,
}

impl StateRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn register(
        &mut self,
        name: &str,
        kind: StateKind,
        value: ValueEncoding,
        user_key: Option<ValueEncoding>,
        ttl: Option<TtlConfig>,
    ) -> Result<StateId, StateError> {
        if self.descriptors.iter().any(|d| d.name == name) {
            return Err(StateError::Conflict { name: name.to_owned() });
        }
        self.cleanups.push(if ttl.is_some() { TtlCleanup::default() } else { TtlCleanup::none() });
        self.descriptors.push(StateDescriptor { name: name.to_owned(), kind, value, user_key, ttl });
        Ok(StateId((self.descriptors.len() - 1) as u32))
    }

    /// Chooses how expired entries of state `name` (declared, with a TTL) are cleaned up
    /// (Flink's `StateTtlConfig.Builder.cleanup*`); the default is `TtlCleanup::default()`.
    pub fn set_ttl_cleanup(&mut self, name: &str, cleanup: TtlCleanup) -> Result<(), StateError> {
        let at = self.descriptors.iter().position(|d| d.name == name && d.ttl.is_some());
        match at.and_then(|i| self.cleanups.get_mut(i)) {
            Some(c) => {
                *c = cleanup;
                Ok(())
            }
            None => Err(StateError::CleanupWithoutTtl { name: name.to_owned() }),
        }
    }

    pub fn descriptors(&self) -> &[StateDescriptor] {
        &self.descriptors
    }

    /// The TTL cleanup of each state, in state-id order.
    pub fn cleanups(&self) -> &[TtlCleanup] {
        &self.cleanups
    }

    /// The internal timer state, if the function declared its timer service
    /// (`StateRegistry::timers`).
    pub(crate) fn timer_state(&self) -> Option<StateId> {
        self.descriptors.iter().position(|d| d.kind == StateKind::Timer).map(|i| StateId(i as u32))
    }

    pub fn into_descriptors(self) -> Vec<StateDescriptor> {
        self.descriptors
    }

    pub fn into_parts(self) -> (Vec<StateDescriptor>, Vec<TtlCleanup>) {
        (self.descriptors, self.cleanups)
    }
}

/// Reusable buffers so state access does not allocate per record.
#[derive(Default)]
pub(crate) struct Scratch {
    pub key: Vec<u8>,
    pub val: Vec<u8>,
    pub enc: Vec<u8>,
    /// Where reads that meet expired values count what they delete.
    pub expired: Option<Arc<ExpiredCounts>>,
}

impl Scratch {
    pub fn count_expired(&self, s: StateId, n: u64) {
        if let Some(c) = &self.expired {
            c.add(s, n);
        }
    }
}

/// Access to keyed state for the record being processed (or, at end of input, for scans
/// over every key of the shard, where the current key is empty).
pub struct Context<'a> {
    pub(crate) backend: &'a mut dyn Backend,
    /// `formats::statekey` prefix of the current key (key group, key, namespace).
    pub(crate) prefix: &'a [u8],
    pub(crate) clock: &'a Arc<dyn Clock>,
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) time: &'a mut TimeScope,
    shard: ShardId,
    key_group: KeyGroup,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        backend: &'a mut dyn Backend,
        prefix: &'a [u8],
        clock: &'a Arc<dyn Clock>,
        scratch: &'a mut Scratch,
        time: &'a mut TimeScope,
        shard: ShardId,
        key_group: KeyGroup,
    ) -> Self {
        Context { backend, prefix, clock, scratch, time, shard, key_group }
    }

    /// The shard running this function.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The key group of the current key.
    pub fn key_group(&self) -> KeyGroup {
        self.key_group
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The current record's event time, if its stream assigns timestamps (none in
    /// `on_timer` and `end_of_input`).
    pub fn timestamp(&self) -> Option<i64> {
        self.time.timestamp
    }

    /// The shard's event time: the minimum watermark over its active inputs
    /// (docs/EVENT_TIME.md); `i64::MIN` before any, `i64::MAX` once the input ended.
    pub fn current_watermark(&self) -> i64 {
        self.time.watermark
    }

    /// Processing time: the job's clock, in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX)
    }

    /// In `on_timer`: the namespace the firing timer was registered in (empty for the
    /// plain `register_*_timer` calls).
    pub fn timer_namespace(&self) -> &[u8] {
        &self.time.timer_namespace
    }
}
