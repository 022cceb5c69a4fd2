//! Invariant: rendering arbitrary stored bytes under every encoding, kind and TTL setting
//! never panics (a tool reading a corrupt value reports an error instead).
#![no_main]
use formats::ttl::{TtlConfig, TtlUpdate};
use formats::value::{render_stored, StateDescriptor, StateKind, ValueEncoding};
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
});
