//! Key groups covered exactly once (FORMAT.md §9.1): the shards' ranges of a manifest
//! tile `[0, max_key_groups)`. `Manifest::validate` refuses a manifest that breaks this
//! with the first break it meets; this says which key groups are wrong and how, for a
//! manifest read without validation: a sweep over the ranges' ends, so its cost is in the
//! number of shards, not of key groups.
use std::collections::BTreeMap;
use std::fmt;

use formats::manifest::ShardSnapshot;

/// One way the ranges miss `[0, max_key_groups)` exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Key groups `start..end` no shard covers.
    Missing { start: u32, end: u32 },
    /// Key groups `start..end` that several shards cover.
    Repeated { start: u32, end: u32, shards: Vec<u16> },
    /// Key groups `start..end`, at or past `max_key_groups`, that shards claim.
    Beyond { start: u32, end: u32, shards: Vec<u16> },
    /// A shard whose range holds no key group.
    Empty { shard: u16, start: u16, end: u16 },
}

/// Every fault of `shards`' ranges against `[0, max_key_groups)`, in key-group order
/// (empty ranges first); none when they cover it exactly once.
pub fn faults(max_key_groups: u32, shards: &[ShardSnapshot]) -> Vec<Fault> {
    let mut out: Vec<Fault> = shards
        .iter()
        .filter(|s| s.range.is_empty())
        .map(|s| Fault::Empty { shard: s.shard, start: s.range.start, end: s.range.end })
        .collect();
    // Per boundary, the shards whose range starts there and those whose range ends there.
    let mut edges: BTreeMap<u32, (Vec<u16>, Vec<u16>)> = BTreeMap::new();
    edges.entry(0).or_default();
    edges.entry(max_key_groups).or_default();
    for s in shards.iter().filter(|s| !s.range.is_empty()) {
        edges.entry(u32::from(s.range.start)).or_default().0.push(s.shard);
        edges.entry(u32::from(s.range.end)).or_default().1.push(s.shard);
    }
    let mut owners: Vec<u16> = Vec::new();
    let mut points = edges.iter().peekable();
    while let Some((&at, (starts, ends))) = points.next() {
        owners.retain(|s| !ends.contains(s));
        owners.extend(starts);
        owners.sort_unstable();
        let Some((&next, _)) = points.peek() else { break };
        let fault = if at >= max_key_groups {
            (!owners.is_empty()).then(|| Fault::Beyond { start: at, end: next, shards: owners.clone() })
        } else {
            match owners.len() {
                0 => Some(Fault::Missing { start: at, end: next }),
                1 => None,
                _ => Some(Fault::Repeated { start: at, end: next, shards: owners.clone() }),
            }
        };
        if let Some(f) = fault {
            push_merged(&mut out, f);
        }
    }
    out
}

/// Appends `f`, or extends the last fault when `f` continues it with the same shards.
fn push_merged(out: &mut Vec<Fault>, f: Fault) {
    match (out.last_mut(), f) {
        (Some(Fault::Missing { end, .. }), Fault::Missing { start, end: e }) if *end == start => *end = e,
        (Some(Fault::Repeated { end, shards, .. }), Fault::Repeated { start, end: e, shards: s })
            if *end == start && *shards == s =>
        {
            *end = e
        }
        (Some(Fault::Beyond { end, shards, .. }), Fault::Beyond { start, end: e, shards: s })
            if *end == start && *shards == s =>
        {
            *end = e
        }
        (_, f) => out.push(f),
    }
}

/// `key group 7` or `key groups 7..9`.
fn groups(start: u32, end: u32) -> String {
    if end == start + 1 {
        format!("key group {start}")
    } else {
        format!("key groups {start}..{end}")
    }
}

/// `shard 1` or `shards 0, 1 and 2`.
fn shard_list(shards: &[u16]) -> String {
    match shards {
        [one] => format!("shard {one}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(u16::to_string).collect();
            format!("shards {} and {last}", init.join(", "))
        }
        [] => "no shard".into(),
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Missing { start, end } => write!(f, "{} covered by no shard", groups(*start, *end)),
            Fault::Repeated { start, end, shards } => {
                write!(f, "{} covered by {}", groups(*start, *end), shard_list(shards))
            }
            Fault::Beyond { start, end, shards } => {
                write!(f, "{} of {} lie past max_key_groups", groups(*start, *end), shard_list(shards))
            }
            Fault::Empty { shard, start, end } => write!(f, "shard {shard} has the empty range {start}..{end}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use formats::keygroup::KeyGroupRange;
    use formats::manifest::ShardFormat;

    use super::*;

    fn shards(ranges: &[(u16, u16)]) -> Vec<ShardSnapshot> {
        (0u16..)
            .zip(ranges)
            .map(|(shard, &(start, end))| ShardSnapshot {
                shard,
                range: KeyGroupRange { start, end },
                format: ShardFormat::Snapshot,
                files: Vec::new(),
                source_position: serde_json::Value::Null,
                operator_state: Vec::new(),
            })
            .collect()
    }

    fn said(max: u32, ranges: &[(u16, u16)]) -> Vec<String> {
        faults(max, &shards(ranges)).iter().map(Fault::to_string).collect()
    }

    #[test]
    fn a_tiling_has_no_fault() {
        // Pins: ranges that tile [0, G) exactly, in one shard or several, are clean.
        assert!(said(128, &[(0, 64), (64, 128)]).is_empty());
        assert!(said(1, &[(0, 1)]).is_empty());
    }

    #[test]
    fn gaps_overlaps_overruns_and_empty_ranges_are_named() {
        // Pins: each way to miss the tiling is reported with the key groups and shards
        // involved, adjacent pieces merged, in key-group order.
        assert_eq!(said(128, &[(0, 60), (64, 128)]), ["key groups 60..64 covered by no shard"]);
        assert_eq!(said(128, &[(0, 64), (63, 128)]), ["key group 63 covered by shards 0 and 1"]);
        assert_eq!(said(128, &[(0, 64)]), ["key groups 64..128 covered by no shard"]);
        assert_eq!(said(100, &[(0, 50), (50, 110)]), ["key groups 100..110 of shard 1 lie past max_key_groups"]);
        assert_eq!(
            said(8, &[(0, 8), (2, 2), (0, 4), (1, 3)]),
            [
                "shard 1 has the empty range 2..2",
                "key group 0 covered by shards 0 and 2",
                "key groups 1..3 covered by shards 0, 2 and 3",
                "key group 3 covered by shards 0 and 2",
            ]
        );
        assert_eq!(said(4, &[]), ["key groups 0..4 covered by no shard"]);
    }
}
