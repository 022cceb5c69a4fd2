//! Invariants: decoding arbitrary bytes as a savepoint's `_savepoint` never panics;
//! whatever decodes satisfies 13.1–13.3 (it validates: savepoint paths, no parent, a
//! canonical savepoint has only snapshot shards), and encoding it again decodes to an
//! equal value.
#![no_main]
use formats::savepoint::SavepointMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SavepointMeta::decode(data) {
        assert!(m.validate().is_ok(), "decoded savepoint metadata is valid");
        let again = m.encode().expect("decoded savepoint metadata re-encodes");
        assert_eq!(SavepointMeta::decode(&again).expect("and decodes again"), m);
    }
});
