//! Parsing input lines of a TOML job into (key, value) records. Only the key field and
//! the aggregated field are extracted; anything that cannot be is a bad record.
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::number::Number;
use super::plan::{AggregateKind, CsvPlan, Format, ValueType};
use crate::source::LineParser;

/// The aggregated field of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    None,
    Num(Number),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub key: String,
    pub value: Field,
}

pub fn trim(line: &[u8]) -> &[u8] {
    crate::source::trim_eol(line)
}

/// One CSV record as csv_core leaves it: the fields' bytes, unquoted, back to back, and
/// where each field ends.
#[derive(Default)]
struct CsvFields {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    len: usize,
}

impl CsvFields {
    fn len(&self) -> usize {
        self.len
    }

    /// Field `i`. The line was valid UTF-8 and csv_core only removes ASCII quotes and
    /// splits at an ASCII delimiter, so every field is valid UTF-8 too.
    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { *self.ends.get(i - 1)? };
        let end = *self.ends.get(i).filter(|_| i < self.len)?;
        std::str::from_utf8(self.bytes.get(start..end)?).ok()
    }
}

/// A csv_core reader and its buffers, one per thread (each shard), reused line after
/// line: a record's end leaves the reader ready for the next one. A `csv::Reader` is
/// made per input (parser, DFA and buffer); made per line, it left a CSV job 12 to 20
/// times slower (docs/PERFORMANCE.md, "CSV parsing").
struct CsvSplitter {
    delimiter: u8,
    reader: csv_core::Reader,
    fields: CsvFields,
}

impl CsvSplitter {
    fn new(delimiter: u8) -> Self {
        CsvSplitter { delimiter, reader: Self::reader(delimiter), fields: CsvFields::default() }
    }

    fn reader(delimiter: u8) -> csv_core::Reader {
        // Only `\n` ends a record: a `\r` inside a line is data, as the line reader has
        // already removed the line's own `\r\n`.
        let mut reader =
            csv_core::ReaderBuilder::new().delimiter(delimiter).terminator(csv_core::Terminator::Any(b'\n')).build();
        // A reader drops a UTF-8 byte order mark from the first bytes it is given, which
        // here would be any line's; an empty record first (which it skips) prevents that.
        let _ = reader.read_record(b"\n", &mut [], &mut []);
        reader
    }

    /// Splits one line. The line is fed to the reader followed by a `\n`, which ends the
    /// record unless a quote is still open: then the reader asks for more input, and the
    /// line has an unterminated quote (a record never spans lines here). After a record
    /// the reader is back at the start of the next one; after an error it is replaced.
    fn split(&mut self, line: &[u8]) -> Result<&CsvFields, String> {
        let r = self.split_line(line);
        if r.is_err() {
            self.reader = Self::reader(self.delimiter);
        }
        r.map(|()| &self.fields)
    }

    fn split_line(&mut self, line: &[u8]) -> Result<(), String> {
        let f = &mut self.fields;
        f.len = 0;
        // csv_core skips empty records; an empty line is one empty field.
        if line.is_empty() {
            f.ends.clear();
            f.ends.push(0);
            f.len = 1;
            return Ok(());
        }
        // Unquoting never lengthens a field, so the bytes always fit.
        f.bytes.resize(line.len() + 1, 0);
        if f.ends.len() < 16 {
            f.ends.resize(16, 0);
        }
        let (mut input, mut newline_fed, mut written) = (line, false, 0usize);
        loop {
            // An empty input would tell csv_core the data has ended (and it would close
            // an open quote silently), so the line's end is always given as a `\n`.
            if input.is_empty() {
                if newline_fed {
                    return Err(format!("unterminated quote in column {}", f.len + 1));
                }
                input = b"\n";
                newline_fed = true;
            }
            let out = f.bytes.get_mut(written..).unwrap_or_default();
            let ends = f.ends.get_mut(f.len..).unwrap_or_default();
            // Field ends count from the start of the record, across calls.
            let (result, read, wrote, ended) = self.reader.read_record(input, out, ends);
            input = input.get(read..).unwrap_or_default();
            written += wrote;
            f.len += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => f.bytes.resize(f.bytes.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => f.ends.resize(f.ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
    }
}

thread_local! {
    static CSV: std::cell::RefCell<Option<CsvSplitter>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on the fields of one CSV line, split by this thread's reader.
fn with_csv_fields<T>(
    line: &[u8],
    delimiter: u8,
    f: impl FnOnce(&CsvFields) -> Result<T, String>,
) -> Result<T, String> {
    CSV.with(|cell| {
        let mut slot = cell.borrow_mut();
        let splitter = match slot.as_mut() {
            Some(s) if s.delimiter == delimiter => s,
            _ => slot.insert(CsvSplitter::new(delimiter)),
        };
        f(splitter.split(line)?)
    })
}

/// Splits one CSV line with csv_core, the parser of the `csv` crate (RFC 4180 quoting:
/// a quoted field may hold the delimiter and doubled quotes). Lines come from a line
/// reader, so a record is one line: a quote still open at the end of the line is an
/// error, not a field that goes on to the next line. csv_core is lenient elsewhere:
/// text after a closing quote (`"a"b`) is kept as part of the field.
pub fn split_csv(line: &str, delimiter: u8) -> Result<Vec<String>, String> {
    with_csv_fields(line.as_bytes(), delimiter, |f| {
        Ok((0..f.len()).map(|i| f.get(i).unwrap_or_default().to_owned()).collect())
    })
}

fn value_of(raw: Option<&str>, agg: AggregateKind, ty: ValueType, field: &str) -> Result<Field, String> {
    if !agg.needs_field() {
        return Ok(Field::None);
    }
    let raw = raw.ok_or_else(|| format!("missing field {field:?}"))?;
    if agg.numeric() {
        Number::parse(ty, raw).map(Field::Num).map_err(|e| format!("field {field:?}: {e}"))
    } else {
        Ok(Field::Text(raw.to_owned()))
    }
}

/// The members of one JSON object, each kept as the text it was written as.
type JsonObject<'a> = HashMap<Cow<'a, str>, &'a RawValue>;

/// Looks up `a.b.c` in a JSON object.
fn json_path<'a>(top: &JsonObject<'a>, path: &str) -> Option<&'a RawValue> {
    let mut parts = path.split('.');
    let mut cur: &'a RawValue = top.get(parts.next()?)?;
    for part in parts {
        let inner: JsonObject<'a> = serde_json::from_str(cur.get()).ok()?;
        cur = inner.get(part)?;
    }
    Some(cur)
}

/// A string's text, a boolean's `true` or `false`, a number as its exact text as written
/// (`as_written`, for values: `0.10` and `1e3` stay exact) or as serde_json reprints it
/// (for keys: `1.50` and `1.5` are one key); `None` for null, arrays and objects.
fn json_scalar(v: &RawValue, as_written: bool) -> Option<String> {
    let t = v.get();
    match t.as_bytes().first()? {
        b'"' => serde_json::from_str(t).ok(),
        b't' | b'f' => Some(t.to_owned()),
        b'-' | b'0'..=b'9' if as_written => Some(t.to_owned()),
        b'-' | b'0'..=b'9' => serde_json::from_str::<serde_json::Number>(t).ok().map(|n| n.to_string()),
        _ => None,
    }
}

/// Parses one line as a JSON object; a line of valid JSON that is not an object has no
/// fields, so it is reported as missing the key.
fn json_object<'a>(line: &'a [u8], key: &str) -> Result<JsonObject<'a>, String> {
    serde_json::from_slice(line).map_err(|e| match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
        Ok(_) => format!("missing field {key:?}"),
        Err(_) => format!("invalid JSON: {e}"),
    })
}

/// Splits text into lowercase words (runs of letters, digits and apostrophes).
pub fn words(line: &str, out: &mut Vec<Input>) {
    for w in line.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let w = w.trim_matches('\'');
        if !w.is_empty() {
            out.push(Input { key: w.to_lowercase(), value: Field::None });
        }
    }
}

/// Builds the line parser of a file or TCP source.
pub fn parser(
    format: Format,
    csv: &CsvPlan,
    key: &str,
    agg: AggregateKind,
    ty: ValueType,
    value: Option<&str>,
) -> LineParser<Input> {
    let key = key.to_owned();
    let value = value.unwrap_or_default().to_owned();
    match format {
        Format::Lines => Arc::new(move |line, out| {
            let s = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
            out.push(Input { key: s.to_owned(), value: Field::None });
            Ok(())
        }),
        Format::Words => Arc::new(move |line, out| {
            let s = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
            words(s, out);
            Ok(())
        }),
        Format::Csv => {
            let cols = csv.columns.clone();
            let delimiter = csv.delimiter;
            let ki = cols.iter().position(|c| *c == key).unwrap_or(0);
            let vi = cols.iter().position(|c| *c == value);
            Arc::new(move |line, out| {
                std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
                with_csv_fields(line, delimiter, |fields| {
                    if fields.len() != cols.len() {
                        return Err(format!("expected {} columns, found {}", cols.len(), fields.len()));
                    }
                    let k = fields.get(ki).unwrap_or_default().to_owned();
                    let v = value_of(vi.and_then(|i| fields.get(i)), agg, ty, &value)?;
                    out.push(Input { key: k, value: v });
                    Ok(())
                })
            })
        }
        Format::Json => Arc::new(move |line, out| {
            let v = json_object(line, &key)?;
            let k = json_path(&v, &key).ok_or_else(|| format!("missing field {key:?}"))?;
            let k = json_scalar(k, false).ok_or_else(|| format!("field {key:?} is not a string, number or boolean"))?;
            let raw = if agg.needs_field() {
                let f = json_path(&v, &value).ok_or_else(|| format!("missing field {value:?}"))?;
                Some(
                    json_scalar(f, true)
                        .ok_or_else(|| format!("field {value:?} is not a string, number or boolean"))?,
                )
            } else {
                None
            };
            out.push(Input { key: k, value: value_of(raw.as_deref(), agg, ty, &value)? });
            Ok(())
        }),
    }
}

/// The generator's record for sequence number `seq`: key `seq % keys`, value `seq % 100`.
pub fn generated(seq: u64, keys: u64, agg: AggregateKind, ty: ValueType, value_field: Option<&str>) -> Input {
    let key = (seq % keys).to_string();
    let value = match value_field {
        None => Field::None,
        Some("seq") if agg.numeric() => Field::Num(Number::from_u64(ty, seq)),
        Some("seq") => Field::Text(seq.to_string()),
        Some("key") if agg.numeric() => Field::Num(Number::from_u64(ty, seq % keys)),
        Some("key") => Field::Text(key.clone()),
        Some(_) if agg.numeric() => Field::Num(Number::from_u64(ty, seq % 100)),
        Some(_) => Field::Text((seq % 100).to_string()),
    };
    Input { key, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(split_csv(r#"a,"b,c","d""e""#, b',').expect("ok"), vec!["a", "b,c", "d\"e"]);
        assert!(split_csv(r#"a,"b"#, b',').is_err());
        assert_eq!(split_csv("", b',').expect("ok"), vec![""]);
    }

    /// Pins the csv_core-based splitter's edges: the column an unterminated quote is
    /// reported in, empty fields, other delimiters on one thread, `\r` as data, and
    /// more fields than the first buffer holds.
    #[test]
    fn csv_edges() {
        assert_eq!(split_csv(r#"a,b,"c"#, b',').expect_err("open quote"), "unterminated quote in column 3");
        assert_eq!(split_csv(",,", b',').expect("ok"), vec!["", "", ""]);
        assert_eq!(split_csv("a;\"b;c\"", b';').expect("ok"), vec!["a", "b;c"]);
        assert_eq!(split_csv("a,b", b';').expect("ok"), vec!["a,b"]);
        assert_eq!(split_csv("a\rb,c", b',').expect("ok"), vec!["a\rb", "c"]);
        assert_eq!(split_csv("é,\"ü,ö\"", b',').expect("ok"), vec!["é", "ü,ö"]);
        assert_eq!(split_csv("\u{feff}a,b", b',').expect("ok"), vec!["\u{feff}a", "b"], "a BOM is data");
        assert!(split_csv("\"a", b',').is_err());
        assert_eq!(split_csv("x,y", b',').expect("a reader after an error starts afresh"), vec!["x", "y"]);
        let wide: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        assert_eq!(split_csv(&wide.join(","), b',').expect("ok"), wide);
    }

    #[test]
    fn words_lowercase_and_split() {
        let mut out = Vec::new();
        words("The cat's 'hat', THE end.", &mut out);
        let keys: Vec<_> = out.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, vec!["the", "cat's", "hat", "the", "end"]);
    }
}
