//! Invariants: decoding arbitrary bytes as a checkpoint root's `_job` never panics;
//! whatever decodes satisfies 15.1 and 15.2 (it validates), and encoding it again
//! decodes to an equal value.
#![no_main]
use formats::jobfile::JobFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(j) = JobFile::decode(data) {
        assert!(j.validate().is_ok(), "a decoded job file is valid");
        let again = j.encode().expect("a decoded job file re-encodes");
        assert_eq!(JobFile::decode(&again).expect("and decodes again"), j);
    }
});
