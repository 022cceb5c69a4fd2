//! `MapState::is_empty` (issue 8: it no longer builds the map): true exactly when no
//! live entry is left, expired entries not counting, on both backends, with and without
//! TTL, and it reads no value, so it refreshes no TTL.
use std::sync::Arc;

use engine::{BackendKind, ManualClock, MapState, StateHarness, StateRegistry};
use formats::ttl::{TtlConfig, TtlUpdate};

const TTL_MS: u64 = 100;

#[test]
fn is_empty_follows_live_entries_only() {
    // Pins: after puts, removals and expiry, is_empty equals "entries() is empty" for
    // every key, on the heap and on RocksDB. Planted: an is_empty that counts expired
    // entries fails the expiry step; one that ignores the key prefix fails key "b".
    for kind in [BackendKind::Heap, BackendKind::Rocksdb] {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(1_000);
        let mut reg = StateRegistry::new();
        let plain: MapState<u64, u64> = reg.map("plain", None).expect("plain");
        let rw = TtlConfig { ttl_ms: TTL_MS, update: TtlUpdate::OnReadAndWrite };
        let ttl: MapState<u64, u64> = reg.map("ttl", Some(rw)).expect("ttl");
        let mut h = StateHarness::open(kind, reg, Some(dir.path()), 0, clock.clone() as Arc<_>).expect("open");
        let empty = |h: &mut StateHarness, m: &MapState<u64, u64>, key: &[u8]| {
            h.with_key(key, |c| {
                let e = m.is_empty(c).expect("is_empty");
                assert_eq!(e, m.entries(c).expect("entries").is_empty(), "{kind:?}: is_empty agrees with entries");
                e
            })
        };
        assert!(empty(&mut h, &plain, b"a") && empty(&mut h, &ttl, b"a"), "{kind:?}: new maps are empty");
        h.with_key(b"a", |c| {
            plain.put(c, &1, 10).expect("put");
            ttl.put(c, &1, 10).expect("put");
        });
        assert!(!empty(&mut h, &plain, b"a") && !empty(&mut h, &ttl, b"a"), "{kind:?}: one entry");
        assert!(empty(&mut h, &plain, b"b") && empty(&mut h, &ttl, b"b"), "{kind:?}: another key's map is empty");
        // is_empty reads no value: it does not push the expiry forward.
        clock.advance_ms(TTL_MS / 2);
        assert!(h.with_key(b"a", |c| !ttl.is_empty(c).expect("is_empty")));
        clock.advance_ms(TTL_MS / 2);
        assert!(h.with_key(b"a", |c| ttl.is_empty(c).expect("is_empty")), "{kind:?}: expired entries do not count");
        h.with_key(b"a", |c| plain.remove(c, &1).expect("remove"));
        assert!(empty(&mut h, &plain, b"a"), "{kind:?}: removed");
    }
}
