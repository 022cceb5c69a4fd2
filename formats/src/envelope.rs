//! The envelope around every sluice metadata file (docs/FORMAT.md §8):
//!
//! ```text
//! offset size field
//!      0    4 magic       b"SLUI"
//!      4    2 kind        u16 LE (1: checkpoint manifest, 2: snapshot index, 3: savepoint,
//!                         4: job file)
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
use crate::cursor::Cursor;
use crate::error::FormatError;

pub const MAGIC: [u8; 4] = *b"SLUI";
// One constant per header field (docs/FORMAT.md §8); the asserts below keep them
// contiguous, which is the order `decode` reads them in through a `Cursor`.
/// §8 `magic`: `SLUI`.
pub const MAGIC_OFFSET: usize = 0;
pub const MAGIC_SIZE: usize = 4;
/// §8 `kind`: u16, see [`Kind`].
pub const KIND_OFFSET: usize = 4;
pub const KIND_SIZE: usize = 2;
/// §8 `version`: u16, the version of the body's format.
pub const VERSION_OFFSET: usize = 6;
pub const VERSION_SIZE: usize = 2;
/// §8 `body_len`: u32, at most [`BODY_LEN_MAX`].
pub const BODY_LEN_OFFSET: usize = 8;
pub const BODY_LEN_SIZE: usize = 4;
/// §8 `header_crc`: crc32 of bytes `0..HEADER_CRC_OFFSET`.
pub const HEADER_CRC_OFFSET: usize = 12;
pub const HEADER_CRC_SIZE: usize = 4;
/// §8: the body starts right after the header.
pub const HEADER_LEN: usize = 16;
/// §8 `body_crc`: crc32 of the body, right after it.
pub const TRAILER_LEN: usize = 4;
/// Bodies above this size are refused before any allocation.
pub const BODY_LEN_MAX: usize = 16 << 20;
const _: () = assert!(MAGIC_OFFSET == 0 && MAGIC_SIZE == MAGIC.len());
const _: () = assert!(KIND_OFFSET == MAGIC_OFFSET + MAGIC_SIZE && KIND_SIZE == size_of::<u16>());
const _: () = assert!(VERSION_OFFSET == KIND_OFFSET + KIND_SIZE && VERSION_SIZE == size_of::<u16>());
const _: () = assert!(BODY_LEN_OFFSET == VERSION_OFFSET + VERSION_SIZE && BODY_LEN_SIZE == size_of::<u32>());
const _: () = assert!(HEADER_CRC_OFFSET == BODY_LEN_OFFSET + BODY_LEN_SIZE && HEADER_CRC_SIZE == size_of::<u32>());
const _: () = assert!(HEADER_LEN == HEADER_CRC_OFFSET + HEADER_CRC_SIZE && HEADER_LEN == 16);
const _: () = assert!(TRAILER_LEN == size_of::<u32>());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    CheckpointManifest = 1,
    SnapshotIndex = 2,
    /// A savepoint's `_savepoint` (§13).
    SavepointMetadata = 3,
    /// A checkpoint root's `_job` (§15).
    JobFile = 4,
}

// §8's table of kinds: the numbers are part of the format.
const _: () = assert!(
    Kind::CheckpointManifest as u16 == 1
        && Kind::SnapshotIndex as u16 == 2
        && Kind::SavepointMetadata as u16 == 3
        && Kind::JobFile as u16 == 4
);

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
    let mut c = Cursor::new(bytes);
    let magic: [u8; MAGIC_SIZE] = c.array("envelope magic")?;
    if magic != MAGIC {
        return Err(FormatError::Invalid { what: "envelope magic", offset: 0, reason: "not a sluice file".into() });
    }
    let found_kind = c.u16_le("envelope kind")?;
    let version = c.u16_le("envelope version")?;
    let len = c.u32_le("envelope body length")? as usize;
    debug_assert_eq!(c.position(), HEADER_CRC_OFFSET);
    let stored = c.u32_le("envelope header crc")?;
    // Nothing read so far is trusted until the header checksum matches.
    let computed = crc32fast::hash(bytes.get(..HEADER_CRC_OFFSET).unwrap_or_default());
    if stored != computed {
        return Err(FormatError::Checksum { what: "envelope header", offset: HEADER_CRC_OFFSET, stored, computed });
    }
    if found_kind != kind as u16 {
        return Err(FormatError::Invalid {
            what: "envelope kind",
            offset: KIND_OFFSET,
            reason: format!("expected {}, found {found_kind}", kind as u16),
        });
    }
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
    let body = c.take(len, "envelope body")?;
    let stored = c.u32_le("envelope body crc")?;
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(FormatError::Checksum { what: "envelope body", offset: HEADER_LEN + len, stored, computed });
    }
    Ok((version, body))
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
