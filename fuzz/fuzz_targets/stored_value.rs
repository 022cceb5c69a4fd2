//! Invariant: rendering arbitrary stored bytes under every encoding, kind and TTL setting
//! never panics (a tool reading a corrupt value reports an error instead); and the JSON
//! text `formats::value_json::write_json` writes straight into a buffer (what `statetool
//! dump` prints) is exactly what serde_json makes of `render_json`'s `Value`, or both fail.
#![no_main]
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::{render_json, render_stored, StateDescriptor, StateKind, ValueEncoding};
use formats::value_json::write_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let encs = [
        ValueEncoding::I64,
        ValueEncoding::U64,
        ValueEncoding::F64,
        ValueEncoding::Bool,
        ValueEncoding::Unit,
        ValueEncoding::Utf8,
        ValueEncoding::Bytes,
        ValueEncoding::MsgPack,
        ValueEncoding::Decimal,
    ];
    let kinds = [StateKind::Value, StateKind::List, StateKind::Map];
    let desc = StateDescriptor {
        name: "f".into(),
        kind: kinds[(sel as usize >> 3) % kinds.len()],
        value: encs[sel as usize % encs.len()].clone(),
        user_key: None,
        ttl: (sel & 0x80 != 0).then_some(TtlConfig { ttl_ms: 1, update: TtlUpdate::OnCreateAndWrite }),
    };
    let _ = render_stored(&desc, rest);
    let mut text = Vec::new();
    match (write_json(&mut text, &desc.value, rest), render_json(&desc.value, rest)) {
        (Ok(()), Ok(v)) => assert_eq!(text, v.to_string().into_bytes()),
        (Err(_), Err(_)) => {}
        (fast, model) => panic!("write_json {fast:?}, render_json {model:?}"),
    }
});
