//! Encoded values written as JSON text straight into a buffer: the text
//! `serde_json::to_string(&value::render_json(enc, b)?)` gives, byte for byte, without
//! building a `serde_json::Value` (what makes `statetool dump` fast: a 1 KiB `bytes`
//! value is 1,024 numbers, which as a `Value` tree cost a heap node each).
use serde::Serialize;

use crate::error::FormatError;
use crate::value::{fixed, render_json, Decimal, ValueEncoding};

/// Appends the JSON text of the value `b` encoded as `enc` to `out`; on an error `out`
/// may hold part of it (callers truncate back to their mark).
pub fn write_json(out: &mut Vec<u8>, enc: &ValueEncoding, b: &[u8]) -> Result<(), FormatError> {
    match enc {
        ValueEncoding::I64 => write_display(out, fixed::get_i64(b)?),
        ValueEncoding::U64 => write_display(out, fixed::get_u64(b)?),
        ValueEncoding::F64 => write_serde(out, &fixed::get_f64(b)?)?,
        ValueEncoding::Bool => out.extend_from_slice(if fixed::get_bool(b)? { b"true" } else { b"false" }),
        ValueEncoding::Unit => out.extend_from_slice(b"null"),
        ValueEncoding::Utf8 => {
            let s = std::str::from_utf8(b).map_err(|e| FormatError::Invalid {
                what: "utf8 value",
                offset: e.valid_up_to(),
                reason: e.to_string(),
            })?;
            write_serde(out, s)?;
        }
        ValueEncoding::Bytes => write_byte_array(out, b),
        // Rare in dumps of big state, and nested: through the `Value` tree.
        ValueEncoding::MsgPack => write_serde(out, &render_json(enc, b)?)?,
        ValueEncoding::Decimal => write_serde(out, &Decimal::decode(b)?.to_text())?,
    }
    Ok(())
}

/// Appends `s` as a JSON string (escaped as serde_json escapes it).
pub fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), FormatError> {
    write_serde(out, s)
}

/// Appends `b` as a JSON array of numbers, `[1,2,3]`: how `bytes` values and keys that
/// are not text render. Each byte is one copy of 4 bytes from [`BYTE_TEXT`] (its digits
/// and a comma, padded) into space made beforehand, advancing by its length: no branch
/// and no capacity check per byte.
pub fn write_byte_array(out: &mut Vec<u8>, b: &[u8]) {
    let start = out.len();
    out.resize(start + 1 + b.len() * 4 + 1, 0);
    let mut at = start;
    if let Some(open) = out.get_mut(at) {
        *open = b'[';
    }
    at += 1;
    for &x in b {
        let (text, len) = BYTE_TEXT.get(usize::from(x)).copied().unwrap_or(([0; 4], 0));
        if let Some(dst) = out.get_mut(at..at + 4) {
            dst.copy_from_slice(&text);
        }
        at += usize::from(len);
    }
    // The last comma, if any, becomes the closing bracket.
    if !b.is_empty() {
        at -= 1;
    }
    if let Some(close) = out.get_mut(at) {
        *close = b']';
    }
    out.truncate(at + 1);
}

/// Each byte's decimal digits followed by a comma, in 4 bytes, and how many of them
/// count.
static BYTE_TEXT: [([u8; 4], u8); 256] = byte_text();

#[expect(clippy::indexing_slicing, reason = "a const fn (no get_mut); i < 256 = the array's length")]
const fn byte_text() -> [([u8; 4], u8); 256] {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, o) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            ([b'0' + h, b'0' + d, b'0' + o, b','], 4)
        } else if i >= 10 {
            ([b'0' + d, b'0' + o, b',', 0], 3)
        } else {
            ([b'0' + o, b',', 0, 0], 2)
        };
        i += 1;
    }
    t
}

/// Appends an integer (`itoa`'s text, which is serde_json's).
pub fn write_display(out: &mut Vec<u8>, v: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

fn write_serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), FormatError> {
    serde_json::to_writer(out, v).map_err(|e| FormatError::Invalid {
        what: "json text",
        offset: 0,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encodings() -> impl Strategy<Value = ValueEncoding> {
        prop_oneof![
            Just(ValueEncoding::I64),
            Just(ValueEncoding::U64),
            Just(ValueEncoding::F64),
            Just(ValueEncoding::Bool),
            Just(ValueEncoding::Unit),
            Just(ValueEncoding::Utf8),
            Just(ValueEncoding::Bytes),
            Just(ValueEncoding::MsgPack),
            Just(ValueEncoding::Decimal),
        ]
    }

    /// Bytes that are often valid for the encoding (fixed widths, text, msgpack of a
    /// small document, a decimal), and sometimes not.
    fn bytes_for(enc: &ValueEncoding) -> BoxedStrategy<Vec<u8>> {
        let arbitrary = proptest::collection::vec(any::<u8>(), 0..40).boxed();
        let valid = match enc {
            ValueEncoding::I64 | ValueEncoding::U64 | ValueEncoding::F64 => {
                any::<u64>().prop_map(|v| v.to_le_bytes().to_vec()).boxed()
            }
            ValueEncoding::Bool => (0u8..3).prop_map(|b| vec![b]).boxed(),
            ValueEncoding::Utf8 => ".{0,20}".prop_map(String::into_bytes).boxed(),
            ValueEncoding::MsgPack => (any::<i64>(), ".{0,8}", any::<f64>())
                .prop_map(|(n, s, f)| {
                    let doc = serde_json::json!({ "n": n, "s": s, "f": if f.is_finite() { f } else { 0.5 } });
                    rmp_serde::to_vec_named(&doc).unwrap_or_default()
                })
                .boxed(),
            ValueEncoding::Decimal => (any::<bool>(), 0u32..=28, any::<u64>())
                .prop_map(|(negative, scale, m)| {
                    Decimal { negative, scale, mantissa: u128::from(m) }.encode().map(Vec::from).unwrap_or_default()
                })
                .boxed(),
            ValueEncoding::Unit | ValueEncoding::Bytes => arbitrary.clone(),
        };
        prop_oneof![3 => valid, 1 => arbitrary].boxed()
    }

    proptest! {
        /// Pins: for every encoding and any bytes, `write_json` writes exactly the text
        /// serde_json makes of `render_json`'s `Value`, and fails exactly when it fails
        /// (the model: the `Value` rendering that `dump` printed before).
        #[test]
        fn writes_what_the_value_tree_prints((enc, b) in encodings().prop_flat_map(|e| (Just(e.clone()), bytes_for(&e)))) {
            let mut out = Vec::new();
            let fast = write_json(&mut out, &enc, &b).map(|()| String::from_utf8(out).unwrap_or_default());
            let model = render_json(&enc, &b).map(|v| v.to_string());
            match (fast, model) {
                (Ok(f), Ok(m)) => prop_assert_eq!(f, m),
                (Err(_), Err(_)) => {}
                (f, m) => prop_assert!(false, "{enc:?} {b:?}: fast {f:?}, model {m:?}"),
            }
        }
    }

    #[test]
    fn every_byte_renders_as_its_number() {
        // Pins: all 256 byte values (the digit paths of `write_u8`) and the empty array.
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        write_byte_array(&mut out, &all);
        assert_eq!(String::from_utf8(out).unwrap_or_default(), serde_json::Value::from(all).to_string());
        let mut out = Vec::new();
        write_byte_array(&mut out, &[]);
        assert_eq!(out, b"[]");
    }
}
