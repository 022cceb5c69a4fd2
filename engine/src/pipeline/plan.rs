//! The plain vocabulary of a resolved job that both the job-file parser (`spec`) and the
//! record parsers (`records`) speak: input formats, CSV settings, aggregates and emit
//! modes. It depends on nothing else in the pipeline, so `spec -> records -> plan` and
//! `spec -> plan` are the only directions imports take.
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Lines,
    Words,
    Csv,
    Json,
}

#[derive(Debug, Clone, Default)]
pub struct CsvPlan {
    pub delimiter: u8,
    /// Column names, from `columns` or the file's header line.
    pub columns: Vec<String>,
    pub header: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    Count,
    Sum,
    Min,
    Max,
    Average,
    DistinctCount,
    /// Count, largest value and sum of a numeric field (the exactly-once harness uses
    /// it over the generator's `seq`).
    Sequence,
}

impl AggregateKind {
    pub fn name(self) -> &'static str {
        match self {
            AggregateKind::Count => "count",
            AggregateKind::Sum => "sum",
            AggregateKind::Min => "min",
            AggregateKind::Max => "max",
            AggregateKind::Average => "average",
            AggregateKind::DistinctCount => "distinct_count",
            AggregateKind::Sequence => "sequence",
        }
    }
    pub fn needs_field(self) -> bool {
        self != AggregateKind::Count
    }
    pub fn numeric(self) -> bool {
        matches!(
            self,
            AggregateKind::Sum
                | AggregateKind::Min
                | AggregateKind::Max
                | AggregateKind::Average
                | AggregateKind::Sequence
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// One output per key when the input ends (or the job is stopped).
    Final,
    /// One output per input record: the key's new aggregate.
    Updates,
}

/// How the aggregated field's values are read and added up (`[aggregate] type`).
/// See docs/OPERATIONS.md, "Numbers", for the rule applied when the job names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Whole numbers, i64; a sum that leaves the i64 range is a bad record.
    Int,
    /// Exact decimals of up to 28 significant digits (rust_decimal).
    Decimal,
    /// IEEE 754 doubles, rounded as floats are.
    Float,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int => "int",
            ValueType::Decimal => "decimal",
            ValueType::Float => "float",
        }
    }
}
