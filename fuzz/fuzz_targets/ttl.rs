//! Invariants: splitting arbitrary bytes into a TTL header and payload never panics; it
//! succeeds exactly when the header fits, and header plus payload are the input.
#![no_main]
use formats::ttl::{put_header, split, TTL_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match split(data) {
        Ok((expiry, payload)) => {
            let mut again = Vec::new();
            put_header(&mut again, expiry);
            again.extend_from_slice(payload);
            assert_eq!(again, data);
        }
        Err(_) => assert!(data.len() < TTL_HEADER_LEN),
    }
});
