//! The layout of a key in keyed state (docs/FORMAT.md §3):
//!
//! ```text
//! key_group u16 BE | varint len | key bytes | varint len | namespace | user key (rest)
//! ```
//!
//! The key group comes first so a key-group range is a byte range (rescaling clips by
//! range). Lengths make the prefix up to the namespace unambiguous, so map-state entries
//! of one key are exactly the keys that start with that prefix.
use crate::cursor::Cursor;
use crate::error::FormatError;
use crate::keygroup::KeyGroup;
use crate::varint;

/// Largest key or namespace accepted, so a corrupt length cannot make a reader allocate
/// or slice past reason.
pub const KEY_LEN_MAX: usize = 1 << 20;

/// Appends the prefix that identifies (key group, key, namespace).
pub fn encode_prefix(out: &mut Vec<u8>, kg: KeyGroup, key: &[u8], namespace: &[u8]) {
    out.extend_from_slice(&kg.0.to_be_bytes());
    varint::put(out, key.len() as u64);
    out.extend_from_slice(key);
    varint::put(out, namespace.len() as u64);
    out.extend_from_slice(namespace);
}

/// The first two bytes of a state key: the key group, big-endian.
pub fn key_group_prefix(kg: KeyGroup) -> [u8; 2] {
    kg.0.to_be_bytes()
}

/// The state key `buf` moved to key group `kg` (what rewriting state for another
/// key-group count does: the key group is recomputed from the key, the rest is kept).
/// `buf` must decode; the error names the part that does not.
pub fn with_key_group(buf: &[u8], kg: KeyGroup) -> Result<Vec<u8>, FormatError> {
    decode(buf)?;
    let mut out = Vec::with_capacity(buf.len());
    out.extend_from_slice(&key_group_prefix(kg));
    out.extend_from_slice(buf.get(2..).unwrap_or_default());
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateKey<'a> {
    pub key_group: KeyGroup,
    pub key: &'a [u8],
    pub namespace: &'a [u8],
    /// Empty except for map state, where it is the encoded user key.
    pub user_key: &'a [u8],
}

/// Splits a state key into its parts. Lengths are capped at [`KEY_LEN_MAX`] before any
/// slice is taken; a short buffer is a `Truncated` error naming the part.
pub fn decode(buf: &[u8]) -> Result<StateKey<'_>, FormatError> {
    let mut c = Cursor::new(buf);
    let key_group = KeyGroup(c.u16_be("key group")?);
    let key = c.len_prefixed("key", KEY_LEN_MAX)?;
    let namespace = c.len_prefixed("namespace", KEY_LEN_MAX)?;
    Ok(StateKey { key_group, key, namespace, user_key: c.rest() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant 3.1: decode(encode_prefix(kg, k, ns) ++ uk) == (kg, k, ns, uk).
        #[test]
        fn round_trip(kg in any::<u16>(), key in proptest::collection::vec(any::<u8>(), 0..300),
                      ns in proptest::collection::vec(any::<u8>(), 0..20),
                      uk in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut buf = Vec::new();
            encode_prefix(&mut buf, KeyGroup(kg), &key, &ns);
            buf.extend_from_slice(&uk);
            let d = decode(&buf).expect("decodes");
            prop_assert_eq!(d, StateKey { key_group: KeyGroup(kg), key: &key, namespace: &ns, user_key: &uk });
        }

        /// Invariant 3.2: keys of a lower key group sort before keys of a higher one.
        #[test]
        fn key_group_orders_bytes(a in any::<u16>(), b in any::<u16>(), k in proptest::collection::vec(any::<u8>(), 0..8)) {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            encode_prefix(&mut x, KeyGroup(a), &k, b"");
            encode_prefix(&mut y, KeyGroup(b), &k, b"");
            if a < b { prop_assert!(x < y); }
        }
    }

    proptest! {
        /// Pins with_key_group: only the key group changes; key, namespace and user key
        /// decode as before.
        #[test]
        fn moving_key_group_keeps_the_rest(a in any::<u16>(), b in any::<u16>(), key in proptest::collection::vec(any::<u8>(), 0..30),
                                           uk in proptest::collection::vec(any::<u8>(), 0..10)) {
            let mut buf = Vec::new();
            encode_prefix(&mut buf, KeyGroup(a), &key, b"ns");
            buf.extend_from_slice(&uk);
            let moved = with_key_group(&buf, KeyGroup(b)).expect("decodes");
            prop_assert_eq!(decode(&moved).expect("decodes"), StateKey { key_group: KeyGroup(b), key: &key, namespace: b"ns", user_key: &uk });
        }
    }

    #[test]
    fn rejects_truncation() {
        assert!(matches!(decode(&[0]), Err(FormatError::Truncated { .. })));
        assert!(matches!(decode(&[0, 1, 5, b'a']), Err(FormatError::Truncated { .. })));
    }

    #[test]
    fn truncation_at_every_offset_names_the_part() {
        let mut buf = Vec::new();
        encode_prefix(&mut buf, KeyGroup(7), b"key", b"ns");
        // 2 (key group) + 1 + 3 (key) + 1 + 2 (namespace): each cut falls in one part.
        for cut in 0..buf.len() {
            let part = match cut {
                0..=1 => "key group",
                2..=5 => "key",
                _ => "namespace",
            };
            let e = decode(buf.get(..cut).unwrap_or_default());
            assert!(matches!(e, Err(FormatError::Truncated { what, .. }) if what == part), "cut {cut}: {e:?}");
        }
    }

    #[test]
    fn lengths_are_capped_before_slicing() {
        let mut buf = vec![0, 0];
        varint::put(&mut buf, KEY_LEN_MAX as u64 + 1);
        let e = decode(&buf);
        assert!(matches!(e, Err(FormatError::TooLarge { what: "key", .. })), "{e:?}");
    }
}
