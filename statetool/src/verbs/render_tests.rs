use formats::keygroup::KeyGroup;
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::put_list_element;
use proptest::prelude::*;

use super::*;

/// The model: one entry as `dump` printed it before [`write_entry`], the rendered stored value (`value`, `expires_ms`,
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

fn encoding() -> impl Strategy<Value = ValueEncoding> {
    prop_oneof![
        Just(ValueEncoding::I64),
        Just(ValueEncoding::U64),
        Just(ValueEncoding::Utf8),
        Just(ValueEncoding::Bytes),
        Just(ValueEncoding::Bool),
        Just(ValueEncoding::F64),
    ]
}

fn kind() -> impl Strategy<Value = StateKind> {
    prop_oneof![
        Just(StateKind::Value),
        Just(StateKind::List),
        Just(StateKind::Map),
        Just(StateKind::Reducing),
        Just(StateKind::Aggregating),
    ]
}

/// A payload that is often valid for `enc` and sometimes not.
fn payload(enc: &ValueEncoding, seed: u64, bytes: &[u8]) -> Vec<u8> {
    match (enc, seed % 4) {
        (_, 0) => bytes.to_vec(),
        (ValueEncoding::I64 | ValueEncoding::U64 | ValueEncoding::F64, _) => seed.to_le_bytes().to_vec(),
        (ValueEncoding::Bool, _) => vec![u8::from(seed.is_multiple_of(2))],
        (ValueEncoding::Utf8, _) => format!("v\"{seed}\u{e9}").into_bytes(),
        _ => bytes.to_vec(),
    }
}

/// A stored value of `desc`: the TTL header when it has one, list framing for lists.
fn stored(desc: &StateDescriptor, seeds: &[u64], bytes: &[u8]) -> Vec<u8> {
    let one = |seed: u64| {
        let mut v = Vec::new();
        if desc.ttl.is_some() {
            v.extend_from_slice(&seed.wrapping_mul(7).to_le_bytes());
        }
        v.extend_from_slice(&payload(&desc.value, seed, bytes));
        v
    };
    if desc.kind != StateKind::List {
        return one(seeds.first().copied().unwrap_or(0));
    }
    let mut out = Vec::new();
    for s in seeds {
        put_list_element(&mut out, &one(*s));
    }
    out
}

proptest! {
    /// Pins: `write_entry` writes, for every state kind, with and without TTL, a user
    /// key or not, any key encoding (or none), valid values and invalid ones, exactly
    /// the text of `entry_json(..).to_string()` (the model: what `dump` printed when it
    /// built a `serde_json::Value` per entry), and fails exactly when it fails, leaving
    /// the buffer as it was.
    #[test]
    fn write_entry_prints_what_entry_json_prints(
        kind in kind(),
        value in encoding(),
        user_key in encoding(),
        key_enc in proptest::option::of(encoding()),
        ttl in any::<bool>(),
        kg in any::<u16>(),
        key in proptest::collection::vec(any::<u8>(), 0..12),
        uk in proptest::collection::vec(any::<u8>(), 0..12),
        seeds in proptest::collection::vec(any::<u64>(), 0..4),
        bytes in proptest::collection::vec(any::<u8>(), 0..12),
        corrupt_key in 0u8..10,
    ) {
        let desc = StateDescriptor {
            name: "s\"t".into(),
            kind,
            value: value.clone(),
            user_key: (kind == StateKind::Map).then_some(user_key),
            ttl: ttl.then_some(TtlConfig { ttl_ms: 10, update: TtlUpdate::OnCreateAndWrite }),
        };
        let mut k = Vec::new();
        formats::statekey::encode_prefix(&mut k, KeyGroup(kg), &key, b"");
        k.extend_from_slice(&uk);
        if corrupt_key == 0 {
            k.truncate(k.len().min(3));
        }
        let v = stored(&desc, &seeds, &bytes);
        let mut out = b"before".to_vec();
        let fast = write_entry(&mut out, &desc, key_enc.as_ref(), &k, &v);
        let model = entry_json(&desc, key_enc.as_ref(), &k, &v).map(|j| j.to_string());
        match (fast, model) {
            (Ok(()), Ok(m)) => prop_assert_eq!(String::from_utf8_lossy(&out), format!("before{m}")),
            (Err(_), Err(_)) => prop_assert_eq!(&out, b"before"),
            (f, m) => prop_assert!(false, "{desc:?} {k:?} {v:?}: fast {f:?}, model {m:?}"),
        }
    }
}

proptest! {
    /// Pins: a timer entry (FORMAT.md §3.3) renders its user key as `key` and its
    /// domain, namespace and time under `timer`, the same through `write_entry` and
    /// the `serde_json` model, for any key, namespace and time.
    #[test]
    fn timer_entries_show_key_and_timer(
        kg in any::<u16>(),
        key in proptest::collection::vec(any::<u8>(), 0..12),
        ns in proptest::collection::vec(any::<u8>(), 0..4),
        time in any::<i64>(),
        processing in any::<bool>(),
    ) {
        let desc = StateDescriptor {
            name: formats::timerkey::TIMER_STATE.into(),
            kind: StateKind::Timer,
            value: ValueEncoding::Unit,
            user_key: None,
            ttl: None,
        };
        let domain = if processing { timerkey::TimeDomain::ProcessingTime } else { timerkey::TimeDomain::EventTime };
        let mut k = Vec::new();
        timerkey::encode(&mut k, KeyGroup(kg), domain, time, &key, &ns);
        let mut out = Vec::new();
        write_entry(&mut out, &desc, Some(&ValueEncoding::Bytes), &k, b"").expect("renders");
        let model = entry_json(&desc, Some(&ValueEncoding::Bytes), &k, b"").expect("model");
        prop_assert_eq!(String::from_utf8_lossy(&out), model.to_string());
        prop_assert_eq!(&model["key"], &serde_json::Value::from(key.clone()));
        prop_assert_eq!(&model["timer"]["time"], &serde_json::Value::from(time));
        prop_assert_eq!(&model["timer"]["domain"], &serde_json::Value::from(domain.name()));
    }
}
