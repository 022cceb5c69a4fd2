//! How entries are shown, shared by `dump` and `diff` so both print a key or a value the
//! same way: keys with the manifest's key encoding, values with the state's encodings
//! (`formats::value::render_stored`). [`write_entry`] writes `dump`'s line as text
//! straight into a buffer (`formats::value_json`): the text a `serde_json::Value` of the
//! same entry prints (its model in the tests), at a fraction of the cost; `diff` keeps
//! the `Value`s it compares.
use formats::error::FormatError;
use formats::timerkey;
use formats::value::{list_elements, render_json, StateDescriptor, StateKind, ValueEncoding};
use formats::value_json::{write_byte_array, write_display, write_json, write_str};

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
    if desc.kind == StateKind::Timer {
        let t = timerkey::decode(k)?;
        row.insert("key".into(), key_json(key, t.key));
        row.insert(
            "timer".into(),
            serde_json::json!({"domain": t.domain.name(), "namespace": t.namespace, "time": t.timestamp}),
        );
        return Ok(());
    }
    row.insert("key".into(), key_json(key, sk.key));
    if let Some(uk) = &desc.user_key {
        row.insert("user_key".into(), key_json(Some(uk), sk.user_key));
    }
    Ok(())
}

/// Appends a key as [`key_json`] renders it, as JSON text.
pub fn write_key(out: &mut Vec<u8>, enc: Option<&ValueEncoding>, k: &[u8]) -> Result<(), FormatError> {
    let mark = out.len();
    if let Some(e) = enc {
        if write_json(out, e, k).is_ok() {
            return Ok(());
        }
        out.truncate(mark);
    }
    match std::str::from_utf8(k) {
        Ok(s) => write_str(out, s),
        Err(_) => {
            write_byte_array(out, k);
            Ok(())
        }
    }
}

/// Appends one entry as `dump` prints it: `expires_ms` (a TTL state's value), `key`,
/// `key_group`, `list` (a list's elements, each `{expires_ms?, value}`), `state`,
/// `user_key` (a map's), `value`, in this order (alphabetical, a `serde_json` map's),
/// written straight into `out` with no `serde_json::Value` built. On an error `out` is
/// left as it was.
pub fn write_entry(
    out: &mut Vec<u8>,
    desc: &StateDescriptor,
    key: Option<&ValueEncoding>,
    k: &[u8],
    v: &[u8],
) -> Result<(), FormatError> {
    let mark = out.len();
    let written = write_entry_fields(out, desc, key, k, v);
    if written.is_err() {
        out.truncate(mark);
    }
    written
}

fn write_entry_fields(
    out: &mut Vec<u8>,
    desc: &StateDescriptor,
    key: Option<&ValueEncoding>,
    k: &[u8],
    v: &[u8],
) -> Result<(), FormatError> {
    let sk = formats::statekey::decode(k)?;
    // A timer shows its user key as the key, and its domain, namespace and time apart
    // (FORMAT.md §3.3).
    let timer = if desc.kind == StateKind::Timer { Some(timerkey::decode(k)?) } else { None };
    out.push(b'{');
    let payload = if desc.kind == StateKind::List { None } else { Some(write_expiry(out, desc, v)?) };
    out.extend_from_slice(b"\"key\":");
    write_key(out, key, timer.map_or(sk.key, |t| t.key))?;
    out.extend_from_slice(b",\"key_group\":");
    write_display(out, sk.key_group.0);
    if payload.is_none() {
        out.extend_from_slice(b",\"list\":[");
        for (i, e) in list_elements(v).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_element(out, desc, e?)?;
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"state\":");
    write_str(out, &desc.name)?;
    if let Some(t) = timer {
        out.extend_from_slice(b",\"timer\":{\"domain\":");
        write_str(out, t.domain.name())?;
        out.extend_from_slice(b",\"namespace\":");
        write_byte_array(out, t.namespace);
        out.extend_from_slice(b",\"time\":");
        write_display(out, t.timestamp);
        out.push(b'}');
    }
    if let Some(uk) = &desc.user_key {
        out.extend_from_slice(b",\"user_key\":");
        write_key(out, Some(uk), sk.user_key)?;
    }
    if let Some(p) = payload {
        out.extend_from_slice(b",\"value\":");
        write_json(out, &desc.value, p)?;
    }
    out.push(b'}');
    Ok(())
}

/// For a state with a TTL, appends `"expires_ms":<expiry>,` from the stored value's
/// header; returns the payload after the header (all of `stored` without a TTL).
fn write_expiry<'a>(out: &mut Vec<u8>, desc: &StateDescriptor, stored: &'a [u8]) -> Result<&'a [u8], FormatError> {
    if desc.ttl.is_none() {
        return Ok(stored);
    }
    let (exp, payload) = formats::ttl::split(stored)?;
    out.extend_from_slice(b"\"expires_ms\":");
    write_display(out, exp);
    out.push(b',');
    Ok(payload)
}

/// One list element: `{"expires_ms":..,"value":..}` or `{"value":..}`.
fn write_element(out: &mut Vec<u8>, desc: &StateDescriptor, e: &[u8]) -> Result<(), FormatError> {
    out.push(b'{');
    let payload = write_expiry(out, desc, e)?;
    out.extend_from_slice(b"\"value\":");
    write_json(out, &desc.value, payload)?;
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
