//! Operator (non-keyed) state in a checkpoint manifest (FORMAT.md §9.7): named lists of
//! opaque items per shard, and how they are dealt to another shard count on restore
//! (Flink's `OperatorStateStore`): a **list** state's items, of every old shard in
//! shard order, are split into contiguous runs as even as they can be (the first
//! `n % m` new shards take one more); a **union** state's items all go to every shard.
use serde::{Deserialize, Serialize};

use crate::error::FormatError;

/// How a state's items are dealt on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each item goes to exactly one shard.
    List,
    /// Every shard gets every item.
    Union,
}

/// One named operator state of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    pub name: String,
    pub mode: Mode,
    /// The items, each stored as lowercase hex in the manifest's JSON.
    #[serde(with = "hex_items")]
    pub items: Vec<Vec<u8>>,
}

/// The operator states of new shard `shard` of `shards`, dealt from `old` (each old
/// shard's states, in shard order). Fails when one name has two modes.
pub fn redistribute(old: &[&[OperatorState]], shard: u32, shards: u32) -> Result<Vec<OperatorState>, FormatError> {
    let mut names: Vec<(&str, Mode)> = Vec::new();
    for s in old.iter().flat_map(|s| s.iter()) {
        match names.iter().find(|(n, _)| *n == s.name) {
            Some((_, m)) if *m != s.mode => {
                return Err(FormatError::Invalid {
                    what: "operator state",
                    offset: 0,
                    reason: format!("state {:?} is both list and union state", s.name),
                })
            }
            Some(_) => {}
            None => names.push((&s.name, s.mode)),
        }
    }
    let shards = shards.max(1) as usize;
    let shard = shard as usize;
    Ok(names
        .into_iter()
        .map(|(name, mode)| {
            let all: Vec<&Vec<u8>> =
                old.iter().flat_map(|s| s.iter()).filter(|s| s.name == name).flat_map(|s| s.items.iter()).collect();
            let items = match mode {
                Mode::Union => all.into_iter().cloned().collect(),
                Mode::List => {
                    let (base, extra) = (all.len() / shards, all.len() % shards);
                    let start = shard * base + shard.min(extra);
                    let len = base + usize::from(shard < extra);
                    all.iter().skip(start).take(len).map(|i| (*i).clone()).collect()
                }
            };
            OperatorState { name: name.to_owned(), mode, items }
        })
        .collect())
}

/// Every item of state `name` across `old` shards, in shard order (what a restore of
/// one shard would get of a list state).
pub fn all_items(old: &[&[OperatorState]], name: &str) -> Vec<Vec<u8>> {
    old.iter().flat_map(|s| s.iter()).filter(|s| s.name == name).flat_map(|s| s.items.iter().cloned()).collect()
}

/// The version byte of a pending transaction item.
const PENDING_VERSION: u8 = 1;
/// Version, checkpoint (u64 LE), shard (u16 LE).
const PENDING_HEADER_LEN: usize = 1 + 8 + 2;

/// A two-phase-commit sink's pending transaction as an item of `_sink.pending`
/// (§9.7): version 1, the checkpoint that pre-committed it (u64 LE), the shard that
/// wrote it (u16 LE), then the sink's own handle to the end.
pub fn encode_pending(checkpoint: u64, shard: u16, handle: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(PENDING_HEADER_LEN + handle.len());
    b.push(PENDING_VERSION);
    b.extend_from_slice(&checkpoint.to_le_bytes());
    b.extend_from_slice(&shard.to_le_bytes());
    b.extend_from_slice(handle);
    b
}

/// The parts of a pending transaction item; None when it is not one of version 1.
pub fn decode_pending(item: &[u8]) -> Option<(u64, u16, &[u8])> {
    let (header, handle) = item.split_at_checked(PENDING_HEADER_LEN)?;
    let (version, rest) = header.split_first()?;
    let (checkpoint, shard) = rest.split_at_checked(8)?;
    (*version == PENDING_VERSION).then_some(())?;
    Some((u64::from_le_bytes(checkpoint.try_into().ok()?), u16::from_le_bytes(shard.try_into().ok()?), handle))
}

mod hex_items {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items.iter().map(|i| encode(i)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let strings = Vec::<String>::deserialize(d)?;
        strings.iter().map(|s| decode(s).ok_or_else(|| D::Error::custom("an item is not lowercase hex"))).collect()
    }

    fn encode(bytes: &[u8]) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    fn decode(s: &str) -> Option<Vec<u8>> {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let b = s.as_bytes();
        if !b.len().is_multiple_of(2) {
            return None;
        }
        b.chunks(2)
            .map(|p| match p {
                [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn state(name: &str, mode: Mode, items: &[&[u8]]) -> OperatorState {
        OperatorState { name: name.into(), mode, items: items.iter().map(|i| i.to_vec()).collect() }
    }

    #[test]
    fn items_round_trip_through_json_as_hex() {
        // Pins: items are stored as lowercase hex and read back byte for byte; other text is refused.
        let s = state("pos", Mode::List, &[b"", b"\x00\xffab"]);
        let json = serde_json::to_string(&s).expect("encode");
        assert_eq!(json, r#"{"name":"pos","mode":"list","items":["","00ff6162"]}"#);
        assert_eq!(serde_json::from_str::<OperatorState>(&json).expect("decode"), s);
        assert!(serde_json::from_str::<OperatorState>(r#"{"name":"p","mode":"list","items":["0g"]}"#).is_err());
        assert!(serde_json::from_str::<OperatorState>(r#"{"name":"p","mode":"list","items":["abc"]}"#).is_err());
    }

    #[test]
    fn pending_items_round_trip_and_refuse_other_versions() {
        // Pins: a pending transaction item's layout (version 1, checkpoint, shard,
        // handle) reads back; short items and other versions are refused.
        let item = encode_pending(7, 3, b"xid");
        assert_eq!(item, [&[1u8][..], &7u64.to_le_bytes(), &3u16.to_le_bytes(), b"xid"].concat());
        assert_eq!(decode_pending(&item), Some((7, 3, &b"xid"[..])));
        assert_eq!(decode_pending(item.get(..10).expect("short")), None);
        let other = [&[2u8][..], item.get(1..).expect("rest")].concat();
        assert_eq!(decode_pending(&other), None);
    }

    #[test]
    fn one_name_with_two_modes_is_refused() {
        // Pins: a state that is list state on one shard and union on another is an error.
        let (a, b) = ([state("x", Mode::List, &[b"1"])], [state("x", Mode::Union, &[b"2"])]);
        assert!(redistribute(&[&a, &b], 0, 1).is_err());
    }

    proptest! {
        #[test]
        fn dealing_matches_the_model(
            old in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..7), 1..6),
            union_items in prop::collection::vec(any::<u8>(), 0..4),
            shards in 1u32..6,
        ) {
            // Pins: onto 1-5 shards, list items are dealt in contiguous runs whose sizes
            // differ by at most one (larger first), each item exactly once and in order;
            // union items all reach every shard (against a model of the two rules).
            let olds: Vec<Vec<OperatorState>> = old.iter().enumerate().map(|(i, items)| {
                let list = state("l", Mode::List, &items.iter().map(std::slice::from_ref).collect::<Vec<_>>());
                let mut v = vec![list];
                if i == 0 {
                    v.push(state("u", Mode::Union, &union_items.iter().map(std::slice::from_ref).collect::<Vec<_>>()));
                }
                v
            }).collect();
            let refs: Vec<&[OperatorState]> = olds.iter().map(Vec::as_slice).collect();
            let all: Vec<u8> = old.iter().flatten().copied().collect();
            let mut dealt = Vec::new();
            let mut sizes = Vec::new();
            for s in 0..shards {
                let got = redistribute(&refs, s, shards).expect("dealt");
                let list = got.iter().find(|g| g.name == "l").expect("list");
                let union = got.iter().find(|g| g.name == "u").expect("union");
                prop_assert_eq!(union.items.concat(), union_items.clone());
                sizes.push(list.items.len());
                dealt.extend(list.items.concat());
            }
            prop_assert_eq!(dealt, all.clone());
            let n = all.len();
            let model: Vec<usize> = (0..shards as usize).map(|s| n / shards as usize + usize::from(s < n % shards as usize)).collect();
            prop_assert_eq!(sizes, model);
        }
    }
}
