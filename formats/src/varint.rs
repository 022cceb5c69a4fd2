//! LEB128 unsigned varints (at most 10 bytes for a u64), used for lengths inside state
//! keys and list elements. Decoding is strict: overlong or unterminated encodings fail.
use crate::error::FormatError;

/// The longest encoding of a u64.
pub const VARINT_LEN_MAX: usize = 10;

pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// How many bytes [`put`] writes for `v`.
pub fn len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Decodes a varint at the start of `buf`; returns the value and the bytes consumed.
/// `offset` is only used to report where a bad encoding sits in a larger buffer.
pub fn get(buf: &[u8], offset: usize) -> Result<(u64, usize), FormatError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().take(VARINT_LEN_MAX).enumerate() {
        let bits = u64::from(b & 0x7f);
        if i == VARINT_LEN_MAX - 1 && b > 1 {
            return Err(FormatError::Invalid { what: "varint", offset, reason: "overflows u64".into() });
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(FormatError::Invalid { what: "varint", offset, reason: "overlong encoding".into() });
            }
            return Ok((v, i + 1));
        }
    }
    Err(FormatError::Truncated { what: "varint", offset, needed: buf.len() + 1, have: buf.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant: every u64 round-trips and consumes exactly the bytes written.
        #[test]
        fn round_trip(v in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = Vec::new();
            put(&mut buf, v);
            let n = buf.len();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(get(&buf, 0).ok(), Some((v, n)));
            prop_assert_eq!(len(v), n);
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert!(matches!(get(&[0x80, 0x00], 0), Err(FormatError::Invalid { .. })));
        assert!(matches!(get(&[0x80], 0), Err(FormatError::Truncated { .. })));
        assert!(matches!(get(&[0xff; 10], 0), Err(FormatError::Invalid { .. })));
    }
}
