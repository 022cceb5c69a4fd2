//! The envelope around every sluice metadata file (docs/FORMAT.md §8):
//!
//! ```text
//! offset size field
//!      0    4 magic       b"SLUI"
//!      4    2 kind        u16 LE (1: checkpoint manifest, 2: snapshot index)
//!      6    2 version     u16 LE, version of the body's format
//!      8    4 body_len    u32 LE, at most BODY_LEN_MAX
//!     12    4 header_crc  crc32 of bytes 0..12
//!     16    n body
//!   16+n    4 body_crc    crc32 of the body
//! ```
//!
//! A reader checks the header checksum before it trusts `body_len`, caps the length,
//! requires the file to end exactly after the trailer, and checks the body checksum
//! before anything parses the body.
use crate::error::FormatError;

pub const MAGIC: [u8; 4] = *b"SLUI";
pub const MAGIC_OFFSET: usize = 0;
pub const KIND_OFFSET: usize = 4;
pub const VERSION_OFFSET: usize = 6;
pub const BODY_LEN_OFFSET: usize = 8;
pub const HEADER_CRC_OFFSET: usize = 12;
pub const HEADER_LEN: usize = 16;
pub const TRAILER_LEN: usize = 4;
/// Bodies above this size are refused before any allocation.
pub const BODY_LEN_MAX: usize = 16 << 20;
const _: () = assert!(HEADER_LEN == HEADER_CRC_OFFSET + 4);
const _: () = assert!(BODY_LEN_OFFSET + 4 == HEADER_CRC_OFFSET);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    CheckpointManifest = 1,
    SnapshotIndex = 2,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub fn encode(kind: Kind, version: u16, body: &[u8]) -> Result<Vec<u8>, FormatError> {
    if body.len() > BODY_LEN_MAX {
        return Err(FormatError::TooLarge { what: "envelope body", len: body.len() as u64, max: BODY_LEN_MAX as u64 });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(kind as u16).to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let hcrc = crc32fast::hash(out.get(..HEADER_CRC_OFFSET).unwrap_or_default());
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    Ok(out)
}

/// Verifies an envelope of `kind` and returns (version, body).
pub fn decode(kind: Kind, bytes: &[u8]) -> Result<(u16, &[u8]), FormatError> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(FormatError::Truncated {
            what: "envelope",
            offset: 0,
            needed: HEADER_LEN + TRAILER_LEN,
            have: bytes.len(),
        });
    }
    if bytes.get(MAGIC_OFFSET..MAGIC_OFFSET + 4) != Some(&MAGIC[..]) {
        return Err(FormatError::Invalid { what: "envelope magic", offset: 0, reason: "not a sluice file".into() });
    }
    let stored = u32_at(bytes, HEADER_CRC_OFFSET);
    let computed = crc32fast::hash(bytes.get(..HEADER_CRC_OFFSET).unwrap_or_default());
    if stored != computed {
        return Err(FormatError::Checksum { what: "envelope header", offset: HEADER_CRC_OFFSET, stored, computed });
    }
    let found_kind = u16_at(bytes, KIND_OFFSET);
    if found_kind != kind as u16 {
        return Err(FormatError::Invalid {
            what: "envelope kind",
            offset: KIND_OFFSET,
            reason: format!("expected {}, found {found_kind}", kind as u16),
        });
    }
    let len = u32_at(bytes, BODY_LEN_OFFSET) as usize;
    if len > BODY_LEN_MAX {
        return Err(FormatError::TooLarge { what: "envelope body", len: len as u64, max: BODY_LEN_MAX as u64 });
    }
    let total = HEADER_LEN + len + TRAILER_LEN;
    if bytes.len() != total {
        return Err(FormatError::Invalid {
            what: "envelope length",
            offset: BODY_LEN_OFFSET,
            reason: format!("header says {total} bytes, file has {}", bytes.len()),
        });
    }
    let body = bytes.get(HEADER_LEN..HEADER_LEN + len).unwrap_or_default();
    let stored = u32_at(bytes, HEADER_LEN + len);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(FormatError::Checksum { what: "envelope body", offset: HEADER_LEN + len, stored, computed });
    }
    Ok((u16_at(bytes, VERSION_OFFSET), body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Invariant 8.1: decode(encode(body)) == body.
        #[test]
        fn round_trip(body in proptest::collection::vec(any::<u8>(), 0..300), v in any::<u16>()) {
            let e = encode(Kind::CheckpointManifest, v, &body).expect("encode");
            let (dv, db) = decode(Kind::CheckpointManifest, &e).expect("decode");
            prop_assert_eq!(dv, v);
            prop_assert_eq!(db, &body[..]);
        }

        /// Invariant 8.2: any single bit flip is detected.
        #[test]
        fn every_bit_flip_is_detected(body in proptest::collection::vec(any::<u8>(), 0..64), bit in any::<usize>()) {
            let mut e = encode(Kind::CheckpointManifest, 1, &body).expect("encode");
            let bit = bit % (e.len() * 8);
            if let Some(b) = e.get_mut(bit / 8) { *b ^= 1 << (bit % 8); }
            prop_assert!(decode(Kind::CheckpointManifest, &e).is_err());
        }

        /// Invariant 8.3: every truncation or extension is detected.
        #[test]
        fn length_changes_are_detected(body in proptest::collection::vec(any::<u8>(), 0..64), cut in 0usize..80, extra in 1usize..4) {
            let e = encode(Kind::CheckpointManifest, 1, &body).expect("encode");
            let cut = cut % e.len();
            prop_assert!(decode(Kind::CheckpointManifest, e.get(..cut).unwrap_or_default()).is_err());
            let mut longer = e.clone();
            longer.extend(std::iter::repeat_n(0, extra));
            prop_assert!(decode(Kind::CheckpointManifest, &longer).is_err());
        }
    }
}
