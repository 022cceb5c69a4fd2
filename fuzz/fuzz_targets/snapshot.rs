//! Invariants: opening and reading arbitrary bytes as a snapshot never panics and never
//! allocates past the bounds (index ≤ 16 MiB, block ≤ 80 MiB raw); an envelope fed as
//! a manifest never panics either.
#![no_main]
use formats::keygroup::KeyGroupRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = formats::snapshot::SnapshotReader::open(data) {
        let _ = r.for_each_in(KeyGroupRange { start: 0, end: u16::MAX }, &mut |_, _, _| {});
    }
    let _ = formats::manifest::Manifest::decode(data);
});
