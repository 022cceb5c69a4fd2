//! State descriptors and value encodings (docs/FORMAT.md §4).
//!
//! Each state records how its values are encoded, so a tool can render any value as JSON
//! without the user's code: plain numbers take a fixed-width little-endian fast path,
//! strings are UTF-8, anything else is MessagePack (self-describing).
//! List state stores a sequence of elements, each `varint len | element`; appending is a
//! byte concatenation, which is what lets RocksDB append with a merge operator.
use serde::{Deserialize, Serialize};

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
        ValueEncoding::I64 => J::from(i64::from_le_bytes(fixed8("i64 value", b)?)),
        ValueEncoding::U64 => J::from(u64::from_le_bytes(fixed8("u64 value", b)?)),
        ValueEncoding::F64 => J::from(f64::from_le_bytes(fixed8("f64 value", b)?)),
        ValueEncoding::Bool => match b {
            [0] => J::Bool(false),
            [1] => J::Bool(true),
            _ => return Err(FormatError::Invalid { what: "bool value", offset: 0, reason: format!("{b:?}") }),
        },
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
    })
}

/// Appends one framed list element.
pub fn put_list_element(out: &mut Vec<u8>, element: &[u8]) {
    varint::put(out, element.len() as u64);
    out.extend_from_slice(element);
}

/// Iterates the framed elements of a list value, failing on the first bad frame.
pub fn list_elements(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], FormatError>> {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= buf.len() {
            return None;
        }
        let item = (|| {
            let (len, n) = varint::get(buf.get(pos..).unwrap_or_default(), pos)?;
            if len > VALUE_LEN_MAX as u64 {
                return Err(FormatError::TooLarge { what: "list element", len, max: VALUE_LEN_MAX as u64 });
            }
            let start = pos + n;
            let end = start + len as usize;
            let el = buf.get(start..end).ok_or(FormatError::Truncated {
                what: "list element",
                offset: start,
                needed: len as usize,
                have: buf.len().saturating_sub(start),
            })?;
            pos = end;
            Ok(el)
        })();
        failed = item.is_err();
        Some(item)
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
