//! End to end through the Rust API: word count over a generated corpus equals a
//! reference computed here, independently, for 1 and 2 shards and both backends.
use std::collections::HashMap;
use std::io::Write;

use engine::CollectSink;
use engine::FileSource;
use engine::ValueState;
use engine::{BackendKind, Context, Error, Job, KeyedProcessFunction, RunConfig};

struct Count {
    count: ValueState<u64>,
}

impl KeyedProcessFunction for Count {
    type Key = String;
    type In = String;
    type Out = (String, u64);

    fn process(&mut self, _: &String, _: String, ctx: &mut Context<'_>, _: &mut Vec<Self::Out>) -> Result<(), Error> {
        let n = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, n).map_err(Error::from)
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<Self::Out>) -> Result<(), Error> {
        self.count.for_each(ctx, |k, n| out.push((String::from_utf8(k.to_vec()).expect("utf8 key"), n)))?;
        Ok(())
    }
}

/// A deterministic corpus: Zipf-ish words from a small vocabulary, varied line lengths,
/// blank lines, and CRLF endings.
fn corpus(lines: usize) -> String {
    let vocab: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut s = String::new();
    for l in 0..lines {
        let words = rng.usize(..17);
        for w in 0..words {
            let r = rng.usize(..5000);
            let idx = r * r / 5000; // skewed towards small indices
            if w > 0 {
                s.push(if rng.u8(..3) == 0 { ',' } else { ' ' });
            }
            s.push_str(&vocab[idx]);
        }
        s.push_str(if l % 10 == 0 { "\r\n" } else { "\n" });
    }
    s
}

fn reference(text: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for line in text.lines() {
        for w in line.split([' ', ',', '\r']) {
            if !w.is_empty() {
                *m.entry(w.to_string()).or_insert(0) += 1;
            }
        }
    }
    m
}

#[test]
fn word_count_matches_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corpus.txt");
    let text = corpus(20_000);
    std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes())).expect("write corpus");
    let want = reference(&text);
    assert!(want.len() > 1000, "corpus has a real vocabulary");

    for backend in [BackendKind::Heap, BackendKind::Rocksdb] {
        for shards in [1, 2] {
            let sink = CollectSink::default();
            let out = sink.handle();
            let mut cfg = RunConfig::new(shards, backend, dir.path().join("data"));
            cfg.pin = false;
            cfg.rocks.cache_entries_max = 1000; // smaller than the vocabulary: evictions happen
            Job::new("wc")
                .source(FileSource::lines(&path))
                .flat_map(|l: String| {
                    l.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .key_by(|w: &String| w.clone())
                .process(|reg| Ok(Count { count: reg.value("count", None)? }))
                .sink(sink)
                .run(&cfg)
                .expect("job runs");
            let got: Vec<(String, u64)> = out.lock().expect("lock").clone();
            let got_map: HashMap<String, u64> = got.iter().cloned().collect();
            assert_eq!(got.len(), got_map.len(), "{backend} x{shards}: each word emitted once");
            assert_eq!(got_map, want, "{backend} x{shards}");
        }
    }
}
