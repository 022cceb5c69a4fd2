//! Keys, key groups and shards.
//!
//! `kg = xxh3_64(key_bytes) % max_key_groups`. Shard `i` of `n` owns the contiguous range
//! `[i*G/n, (i+1)*G/n)` (integer division). Because ownership is a range of key groups,
//! restoring onto another shard count is a matter of clipping ranges (docs/FORMAT.md §2).
use crate::error::FormatError;

/// Default number of key groups, as Flink's default max parallelism for small jobs.
pub const KEY_GROUPS_DEFAULT: u32 = 128;
/// Upper bound on key groups: a key group is stored as a big-endian u16 in every key.
pub const KEY_GROUPS_MAX: u32 = 32768;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyGroup(pub u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShardId(pub u16);

/// Half-open range of key groups `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    pub start: u16,
    pub end: u16,
}

impl KeyGroupRange {
    pub fn contains(&self, kg: KeyGroup) -> bool {
        self.start <= kg.0 && kg.0 < self.end
    }
    pub fn len(&self) -> u32 {
        u32::from(self.end.saturating_sub(self.start))
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Checks a key-group count chosen by a user or read from a file.
pub fn validate_key_groups(max_key_groups: u32) -> Result<(), FormatError> {
    if max_key_groups == 0 || max_key_groups > KEY_GROUPS_MAX {
        return Err(FormatError::Invalid {
            what: "max_key_groups",
            offset: 0,
            reason: format!("{max_key_groups} is not in 1..={KEY_GROUPS_MAX}"),
        });
    }
    Ok(())
}

/// Checks that `shards` shards can each own at least one key group.
pub fn validate_shards(shards: u32, max_key_groups: u32) -> Result<(), FormatError> {
    validate_key_groups(max_key_groups)?;
    if shards == 0 || shards > max_key_groups {
        return Err(FormatError::Invalid {
            what: "shards",
            offset: 0,
            reason: format!("{shards} shards cannot split {max_key_groups} key groups (need 1..={max_key_groups})"),
        });
    }
    Ok(())
}

pub fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The key group of a key. `max_key_groups` must have passed [`validate_key_groups`].
pub fn key_group_of(key: &[u8], max_key_groups: u32) -> KeyGroup {
    KeyGroup((hash_key(key) % u64::from(max_key_groups.max(1))) as u16)
}

/// The key groups shard `shard` of `shards` owns.
pub fn range_for_shard(shard: ShardId, shards: u32, max_key_groups: u32) -> KeyGroupRange {
    let g = u64::from(max_key_groups);
    let n = u64::from(shards.max(1));
    let i = u64::from(shard.0);
    KeyGroupRange { start: (i * g / n) as u16, end: ((i + 1) * g / n) as u16 }
}

/// The shard that owns `kg`: the unique `i` with `kg` in `range_for_shard(i)`.
/// Derivation: `floor(iG/n) <= kg < floor((i+1)G/n)` iff `i = floor(((kg+1)n - 1)/G)`.
pub fn shard_of(kg: KeyGroup, shards: u32, max_key_groups: u32) -> ShardId {
    let g = u64::from(max_key_groups.max(1));
    let n = u64::from(shards.max(1));
    ShardId((((u64::from(kg.0) + 1) * n - 1) / g) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant 2.1: for every valid (shards, key groups), the ranges of all shards
        /// partition [0, G) in order, and `shard_of` agrees with `range_for_shard`.
        #[test]
        fn ranges_partition_and_owner_agrees(g in 1u32..=KEY_GROUPS_MAX, n_raw in 1u32..=64) {
            let n = n_raw.min(g);
            let mut next = 0u32;
            for i in 0..n {
                let r = range_for_shard(ShardId(i as u16), n, g);
                prop_assert_eq!(u32::from(r.start), next);
                prop_assert!(!r.is_empty());
                next = u32::from(r.end);
                for kg in [r.start, r.end - 1] {
                    prop_assert_eq!(shard_of(KeyGroup(kg), n, g), ShardId(i as u16));
                }
            }
            prop_assert_eq!(next, g);
        }

        /// Invariant 2.2: every key lands in a key group below G.
        #[test]
        fn key_group_in_bounds(key in proptest::collection::vec(any::<u8>(), 0..64), g in 1u32..=KEY_GROUPS_MAX) {
            prop_assert!(u32::from(key_group_of(&key, g).0) < g);
        }
    }

    #[test]
    fn validation() {
        assert!(validate_key_groups(0).is_err());
        assert!(validate_key_groups(KEY_GROUPS_MAX + 1).is_err());
        assert!(validate_shards(129, 128).is_err());
        assert!(validate_shards(128, 128).is_ok());
    }
}
