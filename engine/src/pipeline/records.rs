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

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
pub fn split_csv(line: &str, delimiter: u8) -> Result<Vec<String>, String> {
    let d = char::from(delimiter);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => {
                    quoted = false;
                    if let Some(&n) = chars.peek() {
                        if n != d {
                            return Err(format!("unexpected {n:?} after closing quote of column {}", out.len() + 1));
                        }
                    }
                }
                c => cur.push(c),
            }
        } else if c == d {
            out.push(std::mem::take(&mut cur));
            at_start = true;
            continue;
        } else if c == '"' && at_start {
            quoted = true;
        } else {
            cur.push(c);
        }
        at_start = false;
    }
    if quoted {
        return Err(format!("unterminated quote in column {}", out.len() + 1));
    }
    out.push(cur);
    Ok(out)
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
                let s = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
                let fields = split_csv(s, delimiter)?;
                if fields.len() != cols.len() {
                    return Err(format!("expected {} columns, found {}", cols.len(), fields.len()));
                }
                let k = fields.get(ki).cloned().unwrap_or_default();
                let v = value_of(vi.and_then(|i| fields.get(i)).map(String::as_str), agg, ty, &value)?;
                out.push(Input { key: k, value: v });
                Ok(())
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

    #[test]
    fn words_lowercase_and_split() {
        let mut out = Vec::new();
        words("The cat's 'hat', THE end.", &mut out);
        let keys: Vec<_> = out.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, vec!["the", "cat's", "hat", "the", "end"]);
    }
}
