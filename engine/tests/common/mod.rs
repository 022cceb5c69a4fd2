//! What the tests of the `sequence` aggregate share: its output read back, and the
//! failure-free model it must equal.
pub mod kill;

use std::collections::BTreeMap;
use std::path::Path;

/// Per key: (count, largest sequence number, sum of sequence numbers).
pub type SeqResults = BTreeMap<u64, (u64, u64, u64)>;

/// The `sequence` aggregate's output file; a key emitted twice fails the test.
#[allow(dead_code, reason = "each test binary that includes `common` uses part of it")]
pub fn read_sequence_results(path: &Path) -> SeqResults {
    let text = std::fs::read_to_string(path).expect("output");
    let mut got = SeqResults::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let key: u64 = v["key"].as_str().and_then(|k| k.parse().ok()).expect("key");
        let row =
            (v["count"].as_u64().expect("count"), v["max"].as_u64().expect("max"), v["sum"].as_u64().expect("sum"));
        assert!(got.insert(key, row).is_none(), "key {key} emitted twice");
    }
    got
}

/// What a failure-free run over the generator's `0..count` with `keys` keys outputs.
pub fn sequence_model(count: u64, keys: u64) -> SeqResults {
    let mut want = SeqResults::new();
    for seq in 0..count {
        let e = want.entry(seq % keys).or_default();
        *e = (e.0 + 1, e.1.max(seq), e.2 + seq);
    }
    want
}
