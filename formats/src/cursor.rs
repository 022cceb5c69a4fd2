//! The one reader of fixed-width fields and length-prefixed parts (docs/FORMAT.md §3,
//! §4, §11). A [`Cursor`] walks a byte slice and never slices past its end: every read
//! that would runs out of bytes returns [`FormatError::Truncated`] naming what was being
//! read, where, how many bytes it needed and how many were left, and leaves the cursor
//! where it was. Length prefixes are LEB128 varints ([`crate::varint`]) and are capped
//! before any slice is taken, so a corrupt length can neither allocate nor panic.
//!
//! Offsets in errors are those of the enclosing file or buffer: a cursor made with
//! [`Cursor::with_base`] over a part of a file reports `base + position`.
use crate::error::FormatError;
use crate::varint;

#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`, reporting offsets within `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0, base: 0 }
    }

    /// A cursor at the start of `buf`, which begins at offset `base` of a larger file;
    /// errors report offsets in that file.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The offset of the next byte, in the enclosing file (`base + position`).
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes every byte not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }

    /// Takes the next `n` bytes, or fails with `Truncated` and does not move.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            // Built only on failure: an eager `ok_or` constructs (and drops) an error on
            // every read, which showed in profiles of whole-checkpoint scans.
            .ok_or_else(|| FormatError::Truncated { what, offset: self.offset(), needed: n, have: self.remaining() })?;
        self.pos += n;
        Ok(bytes)
    }

    /// Moves past the next `n` bytes, or fails with `Truncated` and does not move.
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), FormatError> {
        self.take(n, what).map(drop)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, FormatError> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// Big-endian: only the key group at the start of a state key (§3) is.
    pub fn u16_be(&mut self, what: &'static str) -> Result<u16, FormatError> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, FormatError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, FormatError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A canonical LEB128 varint. Errors name `what` (the field the varint encodes), at
    /// the varint's first byte; the cursor does not move on error.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let offset = self.offset();
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let (v, n) = varint::get(rest, offset).map_err(|e| match e {
            FormatError::Truncated { offset, needed, have, .. } => {
                FormatError::Truncated { what, offset, needed, have }
            }
            FormatError::Invalid { offset, reason, .. } => FormatError::Invalid { what, offset, reason },
            e => e,
        })?;
        self.pos += n;
        Ok(v)
    }

    /// A part framed as `varint len | bytes`: the length is checked against `max`
    /// (`TooLarge`) before the bytes are taken (`Truncated` when fewer remain). On error
    /// the cursor does not move, not even past the length.
    pub fn len_prefixed(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], FormatError> {
        let mut c = *self;
        let len = c.varint(what)?;
        if len > max as u64 {
            return Err(FormatError::TooLarge { what, len, max: max as u64 });
        }
        // len <= max, a usize, so the conversion is lossless.
        let bytes = c.take(len as usize, what)?;
        *self = c;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_width_fields_read_little_endian_in_order() {
        let b = [1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 4];
        let mut c = Cursor::new(&b);
        assert_eq!(c.u16_le("a").ok(), Some(1));
        assert_eq!(c.u32_le("b").ok(), Some(2));
        assert_eq!(c.u64_le("c").ok(), Some(3));
        assert_eq!(c.u16_be("d").ok(), Some(4));
        assert!(c.is_empty());
    }

    #[test]
    fn truncation_is_typed_and_does_not_move() {
        let b = [1, 2, 3];
        let mut c = Cursor::with_base(&b, 100);
        assert_eq!(c.take(1, "first").ok(), Some(&[1u8][..]));
        let e = c.u32_le("field");
        assert!(matches!(e, Err(FormatError::Truncated { what: "field", offset: 101, needed: 4, have: 2 })), "{e:?}");
        assert_eq!(c.position(), 1, "a failed read leaves the cursor in place");
        assert_eq!(c.rest(), &[2, 3]);
        assert!(matches!(c.take(usize::MAX, "huge"), Err(FormatError::Truncated { .. })), "no overflow");
    }

    #[test]
    fn len_prefixed_caps_before_slicing() {
        // A length of 2^40 in a 6-byte buffer: refused by the cap, not by slicing.
        let mut b = Vec::new();
        varint::put(&mut b, 1 << 40);
        let mut c = Cursor::new(&b);
        let e = c.len_prefixed("part", 1 << 20);
        assert!(
            matches!(e, Err(FormatError::TooLarge { what: "part", len: 1_099_511_627_776, max: 1_048_576 })),
            "{e:?}"
        );
        assert_eq!(c.position(), 0);
        // Within the cap but longer than what is left.
        let b = [5, b'a', b'b'];
        let mut c = Cursor::new(&b);
        let e = c.len_prefixed("part", 10);
        assert!(matches!(e, Err(FormatError::Truncated { what: "part", offset: 1, needed: 5, have: 2 })), "{e:?}");
        assert_eq!(c.position(), 0, "not even the length is consumed");
    }

    #[test]
    fn varint_errors_name_the_field() {
        assert!(matches!(
            Cursor::new(&[0x80, 0x00]).varint("key length"),
            Err(FormatError::Invalid { what: "key length", .. })
        ));
        assert!(matches!(
            Cursor::new(&[7, 0x80]).len_prefixed("x", 6),
            Err(FormatError::TooLarge { what: "x", len: 7, .. })
        ));
        assert!(matches!(
            Cursor::new(&[0x80]).varint("len"),
            Err(FormatError::Truncated { what: "len", offset: 0, .. })
        ));
    }

    proptest! {
        /// Invariant: a sequence of length-prefixed parts reads back exactly, and every
        /// proper prefix of its encoding fails with `Truncated` (never panics, never
        /// returns a part that was not written whole).
        #[test]
        fn len_prefixed_round_trip_and_truncation(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..6)) {
            let mut buf = Vec::new();
            for p in &parts {
                varint::put(&mut buf, p.len() as u64);
                buf.extend_from_slice(p);
            }
            let mut c = Cursor::new(&buf);
            for p in &parts {
                prop_assert_eq!(c.len_prefixed("part", 200).ok(), Some(&p[..]));
            }
            prop_assert!(c.is_empty());
            for cut in 0..buf.len() {
                let mut c = Cursor::new(buf.get(..cut).unwrap_or_default());
                let mut failed = None;
                for _ in &parts {
                    match c.len_prefixed("part", 200) {
                        Ok(_) => {}
                        Err(e) => { failed = Some(e); break; }
                    }
                }
                prop_assert!(matches!(failed, Some(FormatError::Truncated { what: "part", .. })), "cut at {}: {:?}", cut, failed);
            }
        }
    }
}
