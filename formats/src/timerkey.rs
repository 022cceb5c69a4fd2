//! The layout of a timer (docs/FORMAT.md §3.3): an entry of the internal timer state
//! (kind `timer`, named [`TIMER_STATE`]) whose state key is a valid §3 state key
//!
//! ```text
//! key_group u16 BE | varint 9 | domain u8 | time u64 BE (sign bit flipped)
//!                  | varint len | varint key_len | key | namespace
//! ```
//!
//! so that everything that reads state keys (clipping by key group, snapshots,
//! statetool) reads timers too, and so that the timers of one key group and domain sort
//! by time: the next timer is a seek to `key_group | 9 | domain`. The §3 "key" of a
//! timer is its domain and time; its §3 "namespace" holds the user's key and namespace.
//! The stored value is empty. One entry per (key group, domain, time, key, namespace):
//! registering a timer twice stores it once.
use crate::cursor::Cursor;
use crate::error::FormatError;
use crate::keygroup::KeyGroup;
use crate::statekey::{self, KEY_LEN_MAX};
use crate::varint;

/// The name of the internal state that holds a job's timers.
pub const TIMER_STATE: &str = "_timers";

/// Length of a timer's §3 key part: the domain byte and the time.
pub const TIME_PART_LEN: usize = 9;
/// Offset of the domain byte in a timer key (after the key group and the varint 9).
pub const DOMAIN_OFFSET: usize = 3;
/// Offset of the time, 8 bytes big-endian with the sign bit flipped.
pub const TIME_OFFSET: usize = 4;
/// Length of the prefix shared by every timer of one key group and domain.
pub const DOMAIN_PREFIX_LEN: usize = 4;
const _: () = assert!(DOMAIN_OFFSET + 1 == TIME_OFFSET && DOMAIN_PREFIX_LEN == TIME_OFFSET);

/// When a timer fires: when the watermark passes its time (event time) or when the
/// shard's clock does (processing time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    EventTime,
    ProcessingTime,
}

impl TimeDomain {
    pub fn byte(self) -> u8 {
        match self {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(TimeDomain::EventTime),
            1 => Some(TimeDomain::ProcessingTime),
            _ => None,
        }
    }

    /// The name statetool shows (`event_time`, `processing_time`).
    pub fn name(self) -> &'static str {
        match self {
            TimeDomain::EventTime => "event_time",
            TimeDomain::ProcessingTime => "processing_time",
        }
    }
}

/// A time as 8 bytes whose byte order is the numeric order of the i64.
pub fn time_bytes(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_bytes(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// Appends the prefix of every timer of `kg` in `domain`.
pub fn domain_prefix(out: &mut Vec<u8>, kg: KeyGroup, domain: TimeDomain) {
    out.extend_from_slice(&statekey::key_group_prefix(kg));
    varint::put(out, TIME_PART_LEN as u64);
    out.push(domain.byte());
}

/// Appends the state key of the timer (kg, domain, ts, key, namespace).
pub fn encode(out: &mut Vec<u8>, kg: KeyGroup, domain: TimeDomain, ts: i64, key: &[u8], namespace: &[u8]) {
    domain_prefix(out, kg, domain);
    out.extend_from_slice(&time_bytes(ts));
    varint::put(out, (varint::len(key.len() as u64) + key.len() + namespace.len()) as u64);
    varint::put(out, key.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(namespace);
}

/// The parts of a timer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey<'a> {
    pub key_group: KeyGroup,
    pub domain: TimeDomain,
    pub timestamp: i64,
    pub key: &'a [u8],
    pub namespace: &'a [u8],
}

/// Splits a timer key into its parts; anything else (a state key of another layout, a
/// trailing user key, an unknown domain) is an error naming the part.
pub fn decode(buf: &[u8]) -> Result<TimerKey<'_>, FormatError> {
    let sk = statekey::decode(buf)?;
    let invalid = |what, offset, reason: String| FormatError::Invalid { what, offset, reason };
    if sk.key.len() != TIME_PART_LEN {
        return Err(invalid("timer time", 3, format!("expected {TIME_PART_LEN} bytes, found {}", sk.key.len())));
    }
    let mut c = Cursor::new(sk.key);
    let [d] = c.array::<1>("timer domain")?;
    let domain = TimeDomain::from_byte(d)
        .ok_or_else(|| invalid("timer domain", DOMAIN_OFFSET, format!("unknown domain {d}")))?;
    let timestamp = time_from_bytes(c.array::<8>("timer time")?);
    let mut c = Cursor::new(sk.namespace);
    let key = c.len_prefixed("timer key", KEY_LEN_MAX)?;
    let namespace = c.rest();
    if !sk.user_key.is_empty() {
        return Err(invalid("timer key", buf.len() - sk.user_key.len(), "trailing bytes after the timer".into()));
    }
    Ok(TimerKey { key_group: sk.key_group, domain, timestamp, key, namespace })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant 3.3: decode(encode(t)) == t, and timer keys of one key group and
        /// domain sort by time, whatever their keys and namespaces.
        #[test]
        fn round_trip_and_time_order(kg in any::<u16>(), a in any::<i64>(), b in any::<i64>(),
                                     ka in proptest::collection::vec(any::<u8>(), 0..40),
                                     kb in proptest::collection::vec(any::<u8>(), 0..40),
                                     ns in proptest::collection::vec(any::<u8>(), 0..8),
                                     processing in any::<bool>()) {
            let domain = if processing { TimeDomain::ProcessingTime } else { TimeDomain::EventTime };
            let (mut x, mut y) = (Vec::new(), Vec::new());
            encode(&mut x, KeyGroup(kg), domain, a, &ka, &ns);
            encode(&mut y, KeyGroup(kg), domain, b, &kb, b"");
            let d = decode(&x).expect("decodes");
            prop_assert_eq!(d, TimerKey { key_group: KeyGroup(kg), domain, timestamp: a, key: &ka, namespace: &ns });
            prop_assert!(statekey::decode(&x).is_ok(), "a timer key is a state key");
            if a < b {
                prop_assert!(x < y);
            }
            let mut p = Vec::new();
            domain_prefix(&mut p, KeyGroup(kg), domain);
            prop_assert!(x.starts_with(&p));
        }
    }

    #[test]
    fn other_state_keys_are_refused() {
        let mut k = Vec::new();
        statekey::encode_prefix(&mut k, KeyGroup(1), b"user", b"");
        assert!(matches!(decode(&k), Err(FormatError::Invalid { what: "timer time", .. })));
        let mut t = Vec::new();
        encode(&mut t, KeyGroup(1), TimeDomain::EventTime, 5, b"k", b"");
        if let Some(b) = t.get_mut(DOMAIN_OFFSET) {
            *b = 7;
        }
        assert!(matches!(decode(&t), Err(FormatError::Invalid { what: "timer domain", .. })));
    }
}
