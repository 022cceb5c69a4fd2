//! Invariants: opening and reading arbitrary bytes as a snapshot never panics and never
//! allocates past the bounds (index ≤ 16 MiB, block ≤ 80 MiB raw); a snapshot that
//! reads completely yields exactly the entries its index declares.
#![no_main]
use formats::keygroup::KeyGroupRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = formats::snapshot::SnapshotReader::open(data) {
        let mut entries = 0u64;
        if r.for_each_in(KeyGroupRange { start: 0, end: u16::MAX }, &mut |_, _, _| entries += 1).is_ok() {
            assert_eq!(entries, r.index.blocks.iter().map(|b| u64::from(b.entries)).sum::<u64>());
        }
    }
});
