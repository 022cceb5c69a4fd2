//! State descriptors and value encodings (docs/FORMAT.md §4).
//!
//! Each state records how its values are encoded, so a tool can render any value as JSON
//! without the user's code: plain numbers take a fixed-width little-endian fast path,
//! strings are UTF-8, anything else is MessagePack (self-describing).
//! List state stores a sequence of elements, each `varint len | element`; appending is a
//! byte concatenation, which is what lets RocksDB append with a merge operator.
use serde::{Deserialize, Serialize};

use crate::cursor::Cursor;
use crate::error::FormatError;
use crate::ttl::{self, TtlConfig};
use crate::varint;

/// Largest single encoded value or list element accepted by a reader.
pub const VALUE_LEN_MAX: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Value,
    List,
    Map,
    Reducing,
    Aggregating,
    /// The internal timer state (`timerkey`): keys are timers, values are empty.
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueEncoding {
    /// 8 bytes, little-endian two's complement.
    I64,
    /// 8 bytes, little-endian.
    U64,
    /// 8 bytes, little-endian IEEE 754.
    F64,
    /// 1 byte, 0 or 1.
    Bool,
    /// Zero bytes.
    Unit,
    /// UTF-8 text.
    Utf8,
    /// Opaque bytes (rendered as an array of numbers).
    Bytes,
    /// MessagePack, as written by `rmp_serde` with named struct fields.
    MsgPack,
    /// An exact decimal number, [`DECIMAL_LEN`] bytes: see [`Decimal`] (FORMAT.md §4.2).
    Decimal,
}

/// Bytes of a [`ValueEncoding::Decimal`] value.
pub const DECIMAL_LEN: usize = 16;
/// Largest scale (digits after the point) of a decimal value.
pub const DECIMAL_SCALE_MAX: u32 = 28;
/// Bits 16..=23 of a decimal's flags word: the scale.
const DECIMAL_SCALE_SHIFT: u32 = 16;
/// Bit 31 of a decimal's flags word: the sign.
const DECIMAL_SIGN_BIT: u32 = 1 << 31;
/// The bits of the flags word that carry something; the others must be zero.
const DECIMAL_FLAGS_USED: u32 = DECIMAL_SIGN_BIT | (0xff << DECIMAL_SCALE_SHIFT);
const _: () = assert!(DECIMAL_LEN == 4 + 12);

/// An exact decimal, `(-1)^negative × mantissa / 10^scale`, as stored (FORMAT.md §4.2):
///
/// | offset | size | name | meaning |
/// |---|---|---|---|
/// | 0 | 4 | flags | u32 LE: bits 16..=23 scale (0..=28), bit 31 sign, others 0 |
/// | 4 | 12 | mantissa | 96-bit unsigned integer, little-endian |
///
/// This is the layout of `rust_decimal::Decimal::serialize`, written out here so that a
/// reader needs no decimal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub negative: bool,
    /// Digits after the decimal point, at most [`DECIMAL_SCALE_MAX`].
    pub scale: u32,
    /// Below 2^96.
    pub mantissa: u128,
}

impl Decimal {
    /// Largest mantissa plus one.
    pub const MANTISSA_END: u128 = 1 << 96;

    /// Encodes; `None` if the scale or the mantissa is out of range. Zero is stored
    /// without a sign.
    pub fn encode(&self) -> Option<[u8; DECIMAL_LEN]> {
        if self.scale > DECIMAL_SCALE_MAX || self.mantissa >= Self::MANTISSA_END {
            return None;
        }
        let sign = if self.negative && self.mantissa != 0 { DECIMAL_SIGN_BIT } else { 0 };
        let flags = sign | (self.scale << DECIMAL_SCALE_SHIFT);
        let mut out = [0u8; DECIMAL_LEN];
        let (head, tail) = out.split_at_mut(4);
        head.copy_from_slice(&flags.to_le_bytes());
        tail.copy_from_slice(self.mantissa.to_le_bytes().get(..12)?);
        Some(out)
    }

    /// Decodes, refusing a wrong length, a scale above 28 and set reserved bits.
    pub fn decode(b: &[u8]) -> Result<Decimal, FormatError> {
        let invalid = |reason: String| FormatError::Invalid { what: "decimal value", offset: 0, reason };
        let b: &[u8; DECIMAL_LEN] =
            b.try_into().map_err(|_| invalid(format!("expected {DECIMAL_LEN} bytes, found {}", b.len())))?;
        let (head, tail) = b.split_at(4);
        let flags = u32::from_le_bytes(head.try_into().map_err(|_| invalid("short flags".into()))?);
        if flags & !DECIMAL_FLAGS_USED != 0 {
            return Err(invalid(format!("reserved flag bits set: {flags:#010x}")));
        }
        let scale = (flags >> DECIMAL_SCALE_SHIFT) & 0xff;
        if scale > DECIMAL_SCALE_MAX {
            return Err(invalid(format!("scale {scale} above {DECIMAL_SCALE_MAX}")));
        }
        let mut m = [0u8; 16];
        m.get_mut(..12).ok_or_else(|| invalid("short mantissa".into()))?.copy_from_slice(tail);
        Ok(Decimal { negative: flags & DECIMAL_SIGN_BIT != 0, scale, mantissa: u128::from_le_bytes(m) })
    }

    /// The exact value as decimal text, without trailing zeros after the point and
    /// without a sign on zero: `-12.5`, `0.3`, `9007199254740994`.
    pub fn to_text(&self) -> String {
        let digits = self.mantissa.to_string();
        let scale = self.scale as usize;
        // At least one digit before the point.
        let digits =
            if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
        let (int, frac) = digits.split_at(digits.len() - scale);
        let frac = frac.trim_end_matches('0');
        let sign = if self.negative && self.mantissa != 0 { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }
}

/// Everything a reader needs to know about one state (stored per state in manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDescriptor {
    pub name: String,
    pub kind: StateKind,
    /// Encoding of values (list elements, map values, accumulators).
    pub value: ValueEncoding,
    /// Encoding of map user keys; `None` unless `kind` is `Map`.
    pub user_key: Option<ValueEncoding>,
    pub ttl: Option<TtlConfig>,
}

#[inline]
fn fixed8(what: &'static str, b: &[u8]) -> Result<[u8; 8], FormatError> {
    b.try_into().map_err(|_| FormatError::Invalid {
        what,
        offset: 0,
        reason: format!("expected 8 bytes, found {}", b.len()),
    })
}

/// Renders one encoded value as JSON.
pub fn render_json(enc: &ValueEncoding, b: &[u8]) -> Result<serde_json::Value, FormatError> {
    use serde_json::Value as J;
    Ok(match enc {
        ValueEncoding::I64 => J::from(fixed::get_i64(b)?),
        ValueEncoding::U64 => J::from(fixed::get_u64(b)?),
        ValueEncoding::F64 => J::from(fixed::get_f64(b)?),
        ValueEncoding::Bool => J::Bool(fixed::get_bool(b)?),
        ValueEncoding::Unit => J::Null,
        ValueEncoding::Utf8 => J::String(
            std::str::from_utf8(b)
                .map_err(|e| FormatError::Invalid {
                    what: "utf8 value",
                    offset: e.valid_up_to(),
                    reason: e.to_string(),
                })?
                .to_owned(),
        ),
        ValueEncoding::Bytes => J::from(b.to_vec()),
        ValueEncoding::MsgPack => rmp_serde::from_slice::<serde_json::Value>(b).map_err(|e| FormatError::Invalid {
            what: "msgpack value",
            offset: 0,
            reason: e.to_string(),
        })?,
        // A string, not a JSON number: a `serde_json::Value` number is an i64, u64 or f64,
        // and most JSON readers round numbers to f64, which would lose digits.
        ValueEncoding::Decimal => J::String(Decimal::decode(b)?.to_text()),
    })
}

/// Appends one framed list element.
pub fn put_list_element(out: &mut Vec<u8>, element: &[u8]) {
    varint::put(out, element.len() as u64);
    out.extend_from_slice(element);
}

/// Iterates the framed elements of a list value, failing on the first bad frame.
pub fn list_elements(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], FormatError>> {
    let mut c = Cursor::new(buf);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || c.is_empty() {
            return None;
        }
        let item = c.len_prefixed("list element", VALUE_LEN_MAX);
        failed = item.is_err();
        Some(item)
    })
}

/// The fixed-width encodings of plain values (§4): what the engine writes for `i64`,
/// `u64`, `f64`, `bool` and `()` states, and reads back. Tools decode the same bytes
/// through [`render_json`].
pub mod fixed {
    use super::fixed8;
    use crate::error::FormatError;

    #[inline]
    pub fn put_i64(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn put_u64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn put_f64(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn put_bool(out: &mut Vec<u8>, v: bool) {
        out.push(u8::from(v));
    }
    #[inline]
    pub fn get_i64(b: &[u8]) -> Result<i64, FormatError> {
        Ok(i64::from_le_bytes(fixed8("i64 value", b)?))
    }
    #[inline]
    pub fn get_u64(b: &[u8]) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(fixed8("u64 value", b)?))
    }
    #[inline]
    pub fn get_f64(b: &[u8]) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(fixed8("f64 value", b)?))
    }
    #[inline]
    pub fn get_bool(b: &[u8]) -> Result<bool, FormatError> {
        match b {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(FormatError::Invalid { what: "bool value", offset: 0, reason: format!("{b:?}") }),
        }
    }
    /// The unit value has no bytes.
    #[inline]
    pub fn get_unit(b: &[u8]) -> Result<(), FormatError> {
        if b.is_empty() {
            Ok(())
        } else {
            Err(FormatError::Invalid { what: "unit value", offset: 0, reason: format!("{} bytes", b.len()) })
        }
    }
}

/// Renders a stored value of a state (with its TTL header and list framing) as JSON:
/// `{"value": ..}` or, for lists, `{"value": [..]}`, plus `"expires_ms"` when the state
/// has a TTL. A list element carries its own TTL header.
pub fn render_stored(desc: &StateDescriptor, stored: &[u8]) -> Result<serde_json::Value, FormatError> {
    let one = |b: &[u8]| -> Result<serde_json::Value, FormatError> {
        if desc.ttl.is_some() {
            let (exp, payload) = ttl::split(b)?;
            Ok(serde_json::json!({ "value": render_json(&desc.value, payload)?, "expires_ms": exp }))
        } else {
            Ok(serde_json::json!({ "value": render_json(&desc.value, b)? }))
        }
    };
    match desc.kind {
        StateKind::List => {
            let items: Result<Vec<_>, _> = list_elements(stored).map(|e| e.and_then(one)).collect();
            Ok(serde_json::json!({ "list": items? }))
        }
        _ => one(stored),
    }
}

/// What [`purge_expired`] makes of a stored value.
#[derive(Debug, PartialEq, Eq)]
pub enum Purged {
    /// Nothing in it has expired (or the state has no TTL): keep the bytes as they are.
    Keep,
    /// All of it has expired: drop the entry.
    Drop,
    /// A list some of whose elements expired: the elements still live, framed.
    Rewritten(Vec<u8>),
}

/// Drops what has expired at `now_ms` from a stored value of `desc` (§5): a value, map
/// entry, reducing or aggregating accumulator whose expiry is at or before `now_ms` is
/// dropped whole; a list keeps its live elements in order (dropped when none is left).
/// A state without a TTL is kept as it is. Malformed bytes are an error, never dropped.
pub fn purge_expired(desc: &StateDescriptor, stored: &[u8], now_ms: u64) -> Result<Purged, FormatError> {
    if desc.ttl.is_none() {
        return Ok(Purged::Keep);
    }
    let live = |b: &[u8]| ttl::split(b).map(|(exp, _)| !ttl::is_expired(exp, now_ms));
    if desc.kind != StateKind::List {
        return Ok(if live(stored)? { Purged::Keep } else { Purged::Drop });
    }
    let (mut kept, mut all) = (Vec::new(), true);
    for e in list_elements(stored) {
        let e = e?;
        if live(e)? {
            put_list_element(&mut kept, e);
        } else {
            all = false;
        }
    }
    Ok(match (all, kept.is_empty()) {
        (true, _) => Purged::Keep,
        (false, true) => Purged::Drop,
        (false, false) => Purged::Rewritten(kept),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Pins purge_expired against a model: exactly the values (list elements) whose
        /// expiry is after `now` survive, in order, and nothing else is touched.
        #[test]
        fn purge_keeps_exactly_the_live(expiries in proptest::collection::vec(0u64..20, 0..12), now in 0u64..20,
                                        list in any::<bool>()) {
            let desc = StateDescriptor {
                name: "s".into(),
                kind: if list { StateKind::List } else { StateKind::Value },
                value: ValueEncoding::U64,
                user_key: None,
                ttl: Some(TtlConfig { ttl_ms: 5, update: crate::ttl::TtlUpdate::OnCreateAndWrite }),
            };
            let item = |i: usize, exp: u64| { let mut b = Vec::new(); ttl::put_header(&mut b, exp); b.extend_from_slice(&(i as u64).to_le_bytes()); b };
            let live: Vec<Vec<u8>> = expiries.iter().enumerate().filter(|(_, e)| **e > now).map(|(i, e)| item(i, *e)).collect();
            if list {
                let mut stored = Vec::new();
                for (i, e) in expiries.iter().enumerate() { put_list_element(&mut stored, &item(i, *e)); }
                let got = purge_expired(&desc, &stored, now).expect("valid");
                let want = if live.len() == expiries.len() { Purged::Keep } else if live.is_empty() { Purged::Drop } else {
                    let mut b = Vec::new();
                    for l in &live { put_list_element(&mut b, l); }
                    Purged::Rewritten(b)
                };
                prop_assert_eq!(got, want);
            } else if let Some(e) = expiries.first() {
                let got = purge_expired(&desc, &item(0, *e), now).expect("valid");
                prop_assert_eq!(got, if *e > now { Purged::Keep } else { Purged::Drop });
            }
        }
    }

    #[test]
    fn purge_refuses_a_value_shorter_than_its_ttl_header() {
        // Pins: malformed bytes are an error, not silently dropped or kept.
        let desc = StateDescriptor {
            name: "s".into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: Some(TtlConfig { ttl_ms: 5, update: crate::ttl::TtlUpdate::OnCreateAndWrite }),
        };
        assert!(purge_expired(&desc, &[1, 2, 3], 0).is_err());
    }

    proptest! {
        /// Invariant 4.1: framing then iterating a list returns exactly its elements.
        #[test]
        fn list_round_trip(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
            let mut buf = Vec::new();
            for i in &items { put_list_element(&mut buf, i); }
            let back: Vec<Vec<u8>> = list_elements(&buf).map(|e| e.map(<[u8]>::to_vec)).collect::<Result<_, _>>().expect("valid");
            prop_assert_eq!(back, items);
        }
    }

    #[test]
    fn renders_numbers_and_rejects_bad_width() {
        assert_eq!(render_json(&ValueEncoding::I64, &(-5i64).to_le_bytes()).expect("i64"), serde_json::json!(-5));
        assert!(matches!(render_json(&ValueEncoding::I64, &[1, 2]), Err(FormatError::Invalid { .. })));
        let mp = rmp_serde::to_vec_named(&serde_json::json!({"sum": 3.5, "count": 2})).expect("encode");
        assert_eq!(render_json(&ValueEncoding::MsgPack, &mp).expect("mp"), serde_json::json!({"sum": 3.5, "count": 2}));
    }

    /// Pins FORMAT.md §4.2 byte for byte: flags (scale in bits 16..=23, sign in bit 31),
    /// then the 96-bit mantissa; rendered as the exact decimal text, in a JSON string.
    #[test]
    fn decimal_layout_and_rendering() {
        // -12.50: mantissa 1250, scale 2, negative.
        let golden = [0x00, 0x00, 0x02, 0x80, 0xe2, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let d = Decimal { negative: true, scale: 2, mantissa: 1250 };
        assert_eq!(d.encode(), Some(golden));
        assert_eq!(Decimal::decode(&golden).expect("valid"), d);
        assert_eq!(render_json(&ValueEncoding::Decimal, &golden).expect("decimal"), serde_json::json!("-12.5"));
        let text = |negative, scale, mantissa| Decimal { negative, scale, mantissa }.to_text();
        assert_eq!(text(false, 1, 3), "0.3");
        assert_eq!(text(false, 0, 9_007_199_254_740_994), "9007199254740994");
        assert_eq!(text(true, 0, 0), "0");
        assert_eq!(text(false, 28, 1), "0.0000000000000000000000000001");
        assert_eq!(text(false, 3, 1000), "1");
        let max = Decimal { negative: false, scale: 0, mantissa: Decimal::MANTISSA_END - 1 };
        assert_eq!(max.to_text(), "79228162514264337593543950335");
        assert_eq!(Decimal::decode(&max.encode().expect("in range")).expect("valid"), max);
        assert_eq!(Decimal { negative: false, scale: 29, mantissa: 1 }.encode(), None);
        assert_eq!(Decimal { negative: false, scale: 0, mantissa: Decimal::MANTISSA_END }.encode(), None);
        let mut bad_scale = golden;
        if let Some(b) = bad_scale.get_mut(2) {
            *b = 29;
        }
        assert!(matches!(Decimal::decode(&bad_scale), Err(FormatError::Invalid { .. })));
        let mut reserved = golden;
        if let Some(b) = reserved.first_mut() {
            *b = 1;
        }
        assert!(matches!(Decimal::decode(&reserved), Err(FormatError::Invalid { .. })));
        assert!(matches!(Decimal::decode(golden.get(..15).unwrap_or_default()), Err(FormatError::Invalid { .. })));
    }

    #[test]
    fn truncated_list_fails_once() {
        let mut buf = Vec::new();
        put_list_element(&mut buf, b"abc");
        buf.pop();
        let r: Vec<_> = list_elements(&buf).collect();
        assert_eq!(r.len(), 1);
        assert!(matches!(r.first(), Some(Err(FormatError::Truncated { .. }))));
    }
}
