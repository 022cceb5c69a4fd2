//! How entries are shown, shared by `dump` and `diff` so both print a key or a value the
//! same way: keys with the manifest's key encoding, values with the state's encodings
//! (`formats::value::render_stored`).
use formats::error::FormatError;
use formats::value::{render_json, StateDescriptor, ValueEncoding};

/// Keys are rendered with the manifest's key encoding; without one (older manifests),
/// as text when they are UTF-8, otherwise as an array of bytes.
pub fn key_json(enc: Option<&ValueEncoding>, k: &[u8]) -> serde_json::Value {
    if let Some(v) = enc.and_then(|e| render_json(e, k).ok()) {
        return v;
    }
    match std::str::from_utf8(k) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        Err(_) => serde_json::Value::from(k.to_vec()),
    }
}

/// Adds what identifies an entry to `row`, in `dump`'s order: `state`, `key_group`,
/// `key` and, for map states, `user_key`. `k` is the full state key.
pub fn add_identity(
    row: &mut serde_json::Map<String, serde_json::Value>,
    desc: &StateDescriptor,
    key: Option<&ValueEncoding>,
    k: &[u8],
) -> Result<(), FormatError> {
    let sk = formats::statekey::decode(k)?;
    row.insert("state".into(), desc.name.clone().into());
    row.insert("key_group".into(), sk.key_group.0.into());
    row.insert("key".into(), key_json(key, sk.key));
    if let Some(uk) = &desc.user_key {
        row.insert("user_key".into(), key_json(Some(uk), sk.user_key));
    }
    Ok(())
}

/// One entry as `dump` prints it: the rendered stored value (`value`, `expires_ms`,
/// `list`) followed by the entry's identity.
pub fn entry_json(
    desc: &StateDescriptor,
    key: Option<&ValueEncoding>,
    k: &[u8],
    v: &[u8],
) -> Result<serde_json::Value, FormatError> {
    let mut row = formats::value::render_stored(desc, v)?;
    if let Some(o) = row.as_object_mut() {
        add_identity(o, desc, key, k)?;
    }
    Ok(row)
}
