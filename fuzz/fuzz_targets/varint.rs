//! Invariants: reading a varint at any offset of arbitrary bytes never panics; what reads
//! consumed 1 to 10 bytes, and writing the value again gives exactly those bytes (no
//! overlong encoding is accepted).
#![no_main]
use formats::varint::{get, put, VARINT_LEN_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        match get(rest, at) {
            Ok((v, n)) => {
                assert!((1..=VARINT_LEN_MAX).contains(&n));
                let mut again = Vec::new();
                put(&mut again, v);
                assert_eq!(Some(&again[..]), rest.get(..n));
                at += n;
            }
            Err(_) => at += 1,
        }
    }
});
