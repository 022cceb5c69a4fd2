//! Exact numbers of the TOML pipeline.
//!
//! A job's aggregated field has a [`ValueType`]: `int` (i64), `decimal` (rust_decimal: 96
//! bits of mantissa, up to 28 digits after the point) or `float` (f64). Values are read
//! in that type, added up in it, and printed exactly as JSON numbers: the sum of
//! 9007199254740993 and 1 is 9007199254740994, and 0.1 + 0.2 is 0.3 as a decimal.
//! Arithmetic never wraps or rounds silently: [`Number::checked_add`] returns `None`
//! when the exact result does not fit the type, and the caller reports the record.
//! Only an average divides; it is computed from the exact sum and count.
use std::cmp::Ordering;
use std::fmt;

use formats::value::ValueEncoding;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::value::RawValue;

use super::plan::ValueType;
use crate::state::codec::StateCodec;

/// Largest |exponent| taken in a decimal written in scientific notation (`1.5e3`): a
/// decimal has at most 29 digits, so a larger exponent cannot give an exact value.
const DECIMAL_EXPONENT_MAX: usize = 60;

/// One value of the aggregated field, or an aggregate of such values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Decimal(Decimal),
    Float(f64),
}

impl Number {
    /// Reads a field's text (a CSV column, a JSON number as written, a JSON string) as
    /// `ty`. The error says why, without the field's name.
    pub fn parse(ty: ValueType, raw: &str) -> Result<Number, String> {
        let t = raw.trim();
        match ty {
            ValueType::Int => t
                .parse()
                .map(Number::Int)
                .map_err(|_| format!("{raw:?} is not a number of type int (a whole number from -2^63 to 2^63-1)")),
            ValueType::Decimal => parse_decimal(t).map(Number::Decimal).ok_or_else(|| {
                format!("{raw:?} is not a number of type decimal (at most 28 digits after the point, 29 in all)")
            }),
            ValueType::Float => {
                let v: f64 = t.parse().map_err(|_| format!("{raw:?} is not a number"))?;
                if !v.is_finite() {
                    return Err(format!("{raw:?} is not a finite number"));
                }
                Ok(Number::Float(v))
            }
        }
    }

    /// A whole number as `ty` (the generator's fields); an int saturates at i64::MAX.
    pub fn from_u64(ty: ValueType, v: u64) -> Number {
        match ty {
            ValueType::Int => Number::Int(i64::try_from(v).unwrap_or(i64::MAX)),
            ValueType::Decimal => Number::Decimal(Decimal::from(v)),
            ValueType::Float => Number::Float(v as f64),
        }
    }

    /// The exact sum, or `None` if it does not fit the type: i64 overflow, a decimal
    /// beyond 96 bits of mantissa or one that would have to be rounded, a float sum that
    /// is infinite. Mixed types (which a job never produces) add as decimals or floats.
    pub fn checked_add(self, other: Number) -> Option<Number> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.checked_add(b).map(Number::Int),
            (Number::Float(a), b) | (b, Number::Float(a)) => {
                Some(a + b.to_f64()).filter(|s| s.is_finite()).map(Number::Float)
            }
            (a, b) => exact_decimal_add(a.to_decimal()?, b.to_decimal()?).map(Number::Decimal),
        }
    }

    pub fn min(self, other: Number) -> Number {
        if other.total_cmp(&self) == Ordering::Less {
            other
        } else {
            self
        }
    }

    pub fn max(self, other: Number) -> Number {
        if other.total_cmp(&self) == Ordering::Greater {
            other
        } else {
            self
        }
    }

    /// A total order: by value, exactly within a type (floats by `f64::total_cmp`).
    pub fn total_cmp(&self, other: &Number) -> Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(b),
            (Number::Decimal(a), Number::Decimal(b)) => a.cmp(b),
            (Number::Float(a), Number::Float(b)) => a.total_cmp(b),
            (Number::Int(a), Number::Decimal(b)) => Decimal::from(*a).cmp(b),
            (Number::Decimal(a), Number::Int(b)) => a.cmp(&Decimal::from(*b)),
            (a, b) => a.to_f64().total_cmp(&b.to_f64()),
        }
    }

    /// The average of `count` values summing to `sum`: a float for floats, otherwise
    /// the exact quotient rounded to the nearest decimal (28 or 29 significant digits,
    /// at most 28 after the point: 1/3 is 0.3333…33).
    pub fn average(sum: Number, count: u64) -> Number {
        let n = count.max(1);
        match sum {
            Number::Float(s) => Number::Float(s / n as f64),
            // Cannot overflow: |sum / n| <= |sum| for n >= 1, and an i64 fits a decimal.
            Number::Int(s) => Number::Decimal(Decimal::from(s) / Decimal::from(n)),
            Number::Decimal(s) => Number::Decimal(s / Decimal::from(n)),
        }
    }

    fn to_f64(self) -> f64 {
        match self {
            Number::Int(v) => v as f64,
            Number::Decimal(d) => d.to_f64().unwrap_or(f64::NAN),
            Number::Float(v) => v,
        }
    }

    fn to_decimal(self) -> Option<Decimal> {
        match self {
            Number::Int(v) => Some(Decimal::from(v)),
            Number::Decimal(d) => Some(d),
            Number::Float(_) => None,
        }
    }

    /// The value as a JSON number token, digit for digit what [`fmt::Display`] prints.
    /// serde_json's own numbers are i64, u64 or f64; a raw value carries every digit of
    /// a decimal (and serde_json checks it is valid JSON).
    pub fn to_json(&self) -> Box<RawValue> {
        RawValue::from_string(self.to_string()).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }
}

/// Exact JSON number text: an int's digits, a decimal's digits without trailing zeros
/// after the point (never an exponent), a float as serde_json writes f64 (shortest text
/// that reads back as the same f64: `0.30000000000000004`, `3.0`).
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(v) => write!(f, "{v}"),
            Number::Decimal(d) => write!(f, "{}", d.normalize()),
            Number::Float(v) => match serde_json::Number::from_f64(*v) {
                Some(n) => write!(f, "{n}"),
                None => f.write_str("null"),
            },
        }
    }
}

/// A decimal sum that is exact, or `None`. rust_decimal rounds a sum whose digits do not
/// fit 96 bits (10^28 + 0.1 becomes 10^28): the sum is exact when neither operand has a
/// digit below the result's scale.
fn exact_decimal_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let r = a.checked_add(b)?;
    if r.scale() >= a.scale().max(b.scale()) {
        return Some(r);
    }
    let fits = |d: Decimal| d.normalize().scale() <= r.scale();
    (fits(a) && fits(b)).then_some(r)
}

/// Plain (`-12.50`) or scientific (`1.25e-3`, as JSON writes numbers) decimal text,
/// exactly; `None` if it is not a number or cannot be held without rounding.
fn parse_decimal(t: &str) -> Option<Decimal> {
    // rust_decimal takes `1_000` as 1000; int and float do not, and neither does JSON.
    if t.contains('_') {
        return None;
    }
    let Some((mantissa, exponent)) = t.split_once(['e', 'E']) else {
        return Decimal::from_str_exact(t).ok();
    };
    let exponent: i64 = exponent.parse().ok()?;
    if exponent.unsigned_abs() > DECIMAL_EXPONENT_MAX as u64 {
        return None;
    }
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Where the point goes in `digits` once the exponent is applied.
    let point = int.len() as i64 + exponent;
    let text = if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{sign}{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (i, f) = digits.split_at(point as usize);
        format!("{sign}{i}.{f}")
    };
    Decimal::from_str_exact(&text).ok()
}

/// Decimals are stored as [`ValueEncoding::Decimal`] (docs/FORMAT.md §4.2), which is
/// rust_decimal's 16-byte `serialize` form; decoding goes through `formats`, which checks
/// the scale and the reserved bits.
impl StateCodec for Decimal {
    fn encoding() -> ValueEncoding {
        ValueEncoding::Decimal
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.serialize());
    }
    fn decode(b: &[u8]) -> Result<Self, String> {
        let d = formats::value::Decimal::decode(b).map_err(|e| e.to_string())?;
        let m = i128::try_from(d.mantissa).map_err(|e| e.to_string())?;
        Decimal::try_from_i128_with_scale(if d.negative { -m } else { m }, d.scale).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(t: &str) -> Number {
        Number::parse(ValueType::Decimal, t).expect("decimal")
    }

    /// Pins the exact sums of issue 8 and that nothing wraps or rounds silently.
    #[test]
    fn sums_are_exact_or_refused() {
        let int = |t| Number::parse(ValueType::Int, t).expect("int");
        assert_eq!(
            int("9007199254740993").checked_add(int("1")).map(|n| n.to_string()).as_deref(),
            Some("9007199254740994")
        );
        assert_eq!(
            dec("9007199254740993").checked_add(dec("1")).map(|n| n.to_string()).as_deref(),
            Some("9007199254740994")
        );
        assert_eq!(dec("0.1").checked_add(dec("0.2")).map(|n| n.to_string()).as_deref(), Some("0.3"));
        let float = |t| Number::parse(ValueType::Float, t).expect("float");
        assert_eq!(
            float("0.1").checked_add(float("0.2")).map(|n| n.to_string()).as_deref(),
            Some("0.30000000000000004")
        );
        assert_eq!(int(&i64::MAX.to_string()).checked_add(int("1")), None);
        assert_eq!(dec("79228162514264337593543950335").checked_add(dec("1")), None);
        assert_eq!(dec("10000000000000000000000000000").checked_add(dec("0.1")), None, "would round");
        assert_eq!(
            dec("10000000000000000000000000000").checked_add(dec("1.000")).map(|n| n.to_string()).as_deref(),
            Some("10000000000000000000000000001")
        );
        assert_eq!(float("1e308").checked_add(float("1e308")), None);
    }

    /// Pins how field text is read: scientific notation exactly, no rounding, no NaN.
    #[test]
    fn parsing_is_exact() {
        assert_eq!(dec("1.25e-3").to_string(), "0.00125");
        assert_eq!(dec("-12E2").to_string(), "-1200");
        assert_eq!(dec(" 0.10 ").to_string(), "0.1");
        for bad in ["abc", "NaN", "1e999", "0.12345678901234567890123456789", "", "1e", "1_000"] {
            assert!(Number::parse(ValueType::Decimal, bad).is_err(), "{bad:?}");
        }
        assert!(Number::parse(ValueType::Int, "1.5").is_err());
        assert!(Number::parse(ValueType::Int, "9223372036854775808").is_err());
        assert!(Number::parse(ValueType::Float, "inf").is_err());
    }

    #[test]
    fn average_and_order() {
        assert_eq!(Number::average(Number::Int(10), 4).to_string(), "2.5");
        assert_eq!(Number::average(dec("1"), 3).to_string(), "0.3333333333333333333333333333");
        assert_eq!(Number::average(Number::Float(1.0), 2).to_string(), "0.5");
        assert_eq!(dec("-0.0").to_string(), "0");
        assert_eq!(dec("2.50").max(dec("2.6")), dec("2.6"));
        assert_eq!(Number::Int(3).min(Number::Int(-3)), Number::Int(-3));
        assert_eq!(dec("0.3").to_json().get(), "0.3");
    }

    /// The engine's decimal encoding is the layout `formats` documents and renders.
    #[test]
    fn decimal_codec_agrees_with_formats() {
        for t in ["0", "-12.50", "0.3", "79228162514264337593543950335", "-0.0000000000000000000000000001"] {
            let Number::Decimal(d) = dec(t) else { panic!("decimal") };
            let mut b = Vec::new();
            d.encode(&mut b);
            let parts = formats::value::Decimal::decode(&b).expect("formats decodes");
            let m = d.mantissa();
            let want = formats::value::Decimal { negative: m < 0, scale: d.scale(), mantissa: m.unsigned_abs() };
            assert_eq!((parts, Some(b.clone())), (want, want.encode().map(|a| a.to_vec())), "{t}");
            assert_eq!(Decimal::decode(&b).expect("decode"), d);
            let rendered = formats::value::render_json(&ValueEncoding::Decimal, &b).expect("render");
            assert_eq!(rendered, serde_json::Value::String(Number::Decimal(d).to_string()), "{t}");
        }
    }
}
