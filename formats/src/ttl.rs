//! Time-to-live. A value of a state with TTL is stored behind an 8-byte header: the
//! expiry instant in milliseconds since the Unix epoch, little-endian (docs/FORMAT.md §5).
//! A value whose expiry is at or before "now" is never returned.
use crate::cursor::Cursor;
use crate::error::FormatError;

pub const TTL_HEADER_LEN: usize = 8;
const _: () = assert!(TTL_HEADER_LEN == size_of::<u64>());

/// When the expiry of a value is pushed forward (as Flink's `StateTtlConfig.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtlUpdate {
    /// Expiry is set when the value is created or written.
    OnCreateAndWrite,
    /// Expiry is also pushed forward when the value is read.
    OnReadAndWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TtlConfig {
    pub ttl_ms: u64,
    pub update: TtlUpdate,
}

impl TtlConfig {
    pub fn expiry_for(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.ttl_ms)
    }
}

pub fn put_header(out: &mut Vec<u8>, expiry_ms: u64) {
    out.extend_from_slice(&expiry_ms.to_le_bytes());
}

/// Splits a stored value into (expiry_ms, payload).
pub fn split(buf: &[u8]) -> Result<(u64, &[u8]), FormatError> {
    let mut c = Cursor::new(buf);
    let expiry_ms = c.u64_le("ttl header")?;
    Ok((expiry_ms, c.rest()))
}

/// Overwrites the expiry of a stored value in place (a read that pushes the expiry
/// forward, `TtlUpdate::OnReadAndWrite`); the payload is left as it is.
pub fn rewrite_header(buf: &mut [u8], expiry_ms: u64) -> Result<(), FormatError> {
    let have = buf.len();
    match buf.first_chunk_mut::<TTL_HEADER_LEN>() {
        Some(h) => {
            *h = expiry_ms.to_le_bytes();
            Ok(())
        }
        None => Err(FormatError::Truncated { what: "ttl header", offset: 0, needed: TTL_HEADER_LEN, have }),
    }
}

pub fn is_expired(expiry_ms: u64, now_ms: u64) -> bool {
    expiry_ms <= now_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant: rewriting the header changes the expiry split returns and nothing
        /// else; the result is what writing the value afresh with that expiry gives.
        #[test]
        fn rewrite_changes_only_the_expiry(old in any::<u64>(), new in any::<u64>(),
                                           payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut stored = Vec::new();
            put_header(&mut stored, old);
            stored.extend_from_slice(&payload);
            rewrite_header(&mut stored, new).expect("long enough");
            let mut fresh = Vec::new();
            put_header(&mut fresh, new);
            fresh.extend_from_slice(&payload);
            prop_assert_eq!(&stored, &fresh);
            prop_assert_eq!(split(&stored).ok(), Some((new, &payload[..])));
        }
    }

    #[test]
    fn rewrite_refuses_a_value_shorter_than_the_header() {
        let mut short = [1u8; TTL_HEADER_LEN - 1];
        let e = rewrite_header(&mut short, 5);
        assert!(matches!(e, Err(FormatError::Truncated { what: "ttl header", needed: 8, have: 7, .. })), "{e:?}");
        assert_eq!(short, [1u8; TTL_HEADER_LEN - 1], "nothing is written");
    }
}
