//! The RocksDB write-back cache's native checkpoint, checked against a model: a
//! checkpoint holds exactly the cached state, also when its dirty run is written as an
//! ingested file. (Reading checkpoints is `reader`'s.)
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use formats::keygroup::KeyGroup;
    use formats::value::{StateKind, ValueEncoding};

    use formats::keygroup::KeyGroupRange;
    use formats::statekey;
    use formats::value::StateDescriptor;
    use reader::scan;

    use crate::state::backend::{Backend, StateId};
    use crate::state::cache::CachedBackend;
    use crate::state::rocks::{RocksBackend, RocksConfig};

    #[test]
    fn a_checkpoint_holds_exactly_the_cached_state_also_when_written_as_files() {
        // 40k dirty entries, more than a write batch takes at a checkpoint: the cache's
        // run is ingested as an SST. Deletes of keys RocksDB holds must win too.
        let tmp = tempfile::tempdir().expect("tempdir");
        let states = vec![StateDescriptor {
            name: "v".into(),
            kind: StateKind::Value,
            value: ValueEncoding::U64,
            user_key: None,
            ttl: None,
        }];
        let rocks = RocksBackend::open(
            &tmp.path().join("db"),
            states.clone(),
            &RocksConfig::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("open");
        let mut b = CachedBackend::new(rocks, 1 << 20);
        let mut model = BTreeMap::new();
        let key = |k: u64| {
            let mut out = Vec::new();
            statekey::encode_prefix(&mut out, KeyGroup((k % 7) as u16), &k.to_be_bytes(), &[]);
            out
        };
        for round in 0..3u64 {
            for k in 0..40_000u64 {
                let kb = key(k);
                if (k + round) % 5 == 0 {
                    b.delete(StateId(0), &kb).expect("delete");
                    model.remove(&kb);
                } else {
                    let v = (k * 10 + round).to_le_bytes().to_vec();
                    b.put(StateId(0), &kb, &v).expect("put");
                    model.insert(kb, v);
                }
            }
            let dir = tmp.path().join(format!("chk-{round}"));
            b.native_checkpoint(&dir).expect("checkpoint");
            let mut got = BTreeMap::new();
            scan(&dir, &states, KeyGroupRange { start: 0, end: 7 }, &mut |_, k, v| {
                got.insert(k.to_vec(), v.to_vec());
                Ok(())
            })
            .expect("scan");
            assert_eq!(got.len(), model.len(), "round {round}");
            assert!(got == model, "round {round}: the checkpoint differs from the model");
        }
        assert!(!formats::layout::ingest_scratch_file(&tmp.path().join("db")).exists(), "no scratch file left");
    }
}
