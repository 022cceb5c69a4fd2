//! Invariants: decoding arbitrary bytes as a checkpoint manifest never panics; whatever
//! decodes satisfies invariants 9.1–9.6 (it validates), and encoding it again decodes to
//! an equal manifest.
#![no_main]
use formats::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert!(m.validate().is_ok(), "a decoded manifest is valid");
        let again = m.encode().expect("a decoded manifest re-encodes");
        assert_eq!(Manifest::decode(&again).expect("and decodes again"), m);
    }
});
