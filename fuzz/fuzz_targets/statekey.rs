//! Invariants: decoding arbitrary bytes as a state key never panics; whatever decodes
//! re-encodes to exactly the input (the layout is canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = formats::statekey::decode(data) {
        let mut again = Vec::new();
        formats::statekey::encode_prefix(&mut again, k.key_group, k.key, k.namespace);
        again.extend_from_slice(k.user_key);
        assert_eq!(again, data);
    }
    let _ = formats::varint::get(data, 0);
});
