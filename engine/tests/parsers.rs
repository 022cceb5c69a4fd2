//! Input parsers never panic: arbitrary job files and arbitrary input lines either parse
//! or produce an error (the engine-side counterpart of the `fuzz/` targets).
use std::path::Path;

use engine::pipeline::{parse, parser, split_csv, AggregateKind, CsvPlan, Format, ValueType};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn job_spec_never_panics(text in "(\\[(job|source|key|aggregate|sink|errors|output)\\]\n|[a-z_]{1,10} = (\"[a-z./ ]{0,8}\"|[0-9]{1,3}|true|\\[\\])\n|.{0,20}\n){0,12}") {
        let _ = parse(Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn csv_split_never_panics(line in ".{0,60}") {
        let _ = split_csv(&line, b',');
    }

    /// Invariant: a row of arbitrary fields, quoted as RFC 4180 says (a field holding
    /// the delimiter or a quote is quoted, its quotes doubled), splits back into exactly
    /// those fields.
    #[test]
    fn csv_round_trip(fields in proptest::collection::vec("[^\r\n]{0,8}", 1..8), quote_all in any::<bool>()) {
        let line: Vec<String> = fields
            .iter()
            .map(|f| if quote_all || f.contains([',', '"']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.clone() })
            .collect();
        prop_assert_eq!(split_csv(&line.join(","), b',').expect("well-formed"), fields);
    }

    #[test]
    fn numbers_never_panic(text in "[-+0-9.eE_ ]{0,40}|.{0,40}") {
        for ty in [ValueType::Int, ValueType::Decimal, ValueType::Float] {
            if let Ok(n) = engine::pipeline::Number::parse(ty, &text) {
                let _ = n.checked_add(n);
                let _ = n.to_json();
            }
        }
    }

    #[test]
    fn line_parsers_never_panic(line in proptest::collection::vec(any::<u8>(), 0..80)) {
        let csv = CsvPlan { delimiter: b',', columns: vec!["a".into(), "b".into()], header: false };
        for format in [Format::Lines, Format::Words, Format::Csv, Format::Json] {
            for agg in [AggregateKind::Count, AggregateKind::Sum, AggregateKind::DistinctCount] {
                for ty in [ValueType::Int, ValueType::Decimal, ValueType::Float] {
                    let p = parser(format, &csv, "a", agg, ty, Some("b"));
                    let mut out = Vec::new();
                    let _ = p(&line, &mut out);
                }
            }
        }
    }
}
