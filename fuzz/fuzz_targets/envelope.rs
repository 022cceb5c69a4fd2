//! Invariants: verifying arbitrary bytes as an envelope of any kind never panics and
//! never allocates; whatever verifies re-encodes (same kind, version and body) to
//! exactly the input, so a checksum-valid envelope has one encoding.
#![no_main]
use formats::envelope::{decode, encode, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::CheckpointManifest, Kind::SnapshotIndex, Kind::SavepointMetadata] {
        if let Ok((version, body)) = decode(kind, data) {
            assert_eq!(encode(kind, version, body).expect("a decoded body re-encodes"), data);
        }
    }
});
