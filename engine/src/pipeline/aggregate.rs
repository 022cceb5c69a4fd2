//! The keyed function of a TOML job: one aggregate per key, kept in keyed state.
//!
//! sum, min, max and average keep their values in the field's [`ValueType`] (int,
//! decimal or float; see [`Number`]), so the manifest records the type as the state's
//! encoding. A record whose value would take a sum out of its type's range is a bad record
//! reported against its key: it is skipped, counted and dead-lettered like a record that
//! does not parse, or it stops the job under `fail_on_bad_record`.
use std::sync::Arc;

use formats::ttl::TtlConfig;
use rust_decimal::Decimal;

use super::number::Number;
use super::plan::{AggregateKind, Emit, ValueType};
use super::records::{Field, Input};
use super::ttl::TtlPlan;
use crate::badrecord::BadRecords;
use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::state::context::{Context, StateRegistry};
use crate::state::handles::{MapState, ValueState};

/// One result: a key and its aggregate (and, for `sequence`, the largest value and sum).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub key: String,
    /// count and distinct_count: an int; sum, min and max: the field's type; average: a
    /// decimal (a float for `type = "float"`); sequence: the count.
    pub value: Number,
    pub extra: Option<SeqState>,
}

/// State of the `sequence` aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SeqState {
    pub count: u64,
    pub max: u64,
    pub sum: u64,
}
crate::msgpack_codec!(SeqState);

/// State of an average over ints: the exact sum and the count.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct IntAverage {
    sum: i64,
    count: u64,
}
crate::msgpack_codec!(IntAverage);

/// State of an average over decimals: the exact sum as decimal text (so statetool shows
/// it exactly, as MessagePack has no decimal type) and the count.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct DecimalAverage {
    sum: String,
    count: u64,
}
crate::msgpack_codec!(DecimalAverage);

/// A number kept per key in the state type of its [`ValueType`].
enum NumberState {
    Int(ValueState<i64>),
    Decimal(ValueState<Decimal>),
    Float(ValueState<f64>),
}

impl NumberState {
    fn open(reg: &mut StateRegistry, name: &str, ty: ValueType, ttl: Option<TtlConfig>) -> Result<Self, Error> {
        Ok(match ty {
            ValueType::Int => NumberState::Int(reg.value(name, ttl)?),
            ValueType::Decimal => NumberState::Decimal(reg.value(name, ttl)?),
            ValueType::Float => NumberState::Float(reg.value(name, ttl)?),
        })
    }

    fn get(&self, ctx: &mut Context<'_>) -> Result<Option<Number>, Error> {
        Ok(match self {
            NumberState::Int(s) => s.get(ctx)?.map(Number::Int),
            NumberState::Decimal(s) => s.get(ctx)?.map(Number::Decimal),
            NumberState::Float(s) => s.get(ctx)?.map(Number::Float),
        })
    }

    fn set(&self, ctx: &mut Context<'_>, v: Number) -> Result<(), Error> {
        match (self, v) {
            (NumberState::Int(s), Number::Int(v)) => s.set(ctx, v)?,
            (NumberState::Decimal(s), Number::Decimal(v)) => s.set(ctx, v)?,
            (NumberState::Float(s), Number::Float(v)) => s.set(ctx, v)?,
            (_, v) => return Err(Error::user(format!("value {v} is not of the aggregate's type"))),
        }
        Ok(())
    }

    fn for_each(&self, ctx: &mut Context<'_>, mut f: impl FnMut(&[u8], Number)) -> Result<(), Error> {
        match self {
            NumberState::Int(s) => s.for_each(ctx, |k, v| f(k, Number::Int(v)))?,
            NumberState::Decimal(s) => s.for_each(ctx, |k, v| f(k, Number::Decimal(v)))?,
            NumberState::Float(s) => s.for_each(ctx, |k, v| f(k, Number::Float(v)))?,
        }
        Ok(())
    }
}

/// An average's exact sum and count per key. The float state keeps the name and
/// encoding it had before types existed, so older checkpoints restore with
/// `type = "float"`; the others have their own names, so such a checkpoint is refused by
/// name rather than misread.
enum AverageState {
    Int(ValueState<IntAverage>),
    Decimal(ValueState<DecimalAverage>),
    Float(ValueState<(f64, u64)>),
}

impl AverageState {
    fn open(reg: &mut StateRegistry, ty: ValueType, ttl: Option<TtlConfig>) -> Result<Self, Error> {
        Ok(match ty {
            ValueType::Int => AverageState::Int(reg.value("average_int", ttl)?),
            ValueType::Decimal => AverageState::Decimal(reg.value("average_decimal", ttl)?),
            ValueType::Float => AverageState::Float(reg.value("average", ttl)?),
        })
    }

    fn get(&self, ctx: &mut Context<'_>) -> Result<Option<(Number, u64)>, Error> {
        Ok(match self {
            AverageState::Int(s) => s.get(ctx)?.map(|a| (Number::Int(a.sum), a.count)),
            AverageState::Decimal(s) => match s.get(ctx)? {
                Some(a) => Some((Number::Decimal(decimal_sum(&a.sum)?), a.count)),
                None => None,
            },
            AverageState::Float(s) => s.get(ctx)?.map(|(sum, n)| (Number::Float(sum), n)),
        })
    }

    fn set(&self, ctx: &mut Context<'_>, sum: Number, count: u64) -> Result<(), Error> {
        match (self, sum) {
            (AverageState::Int(s), Number::Int(sum)) => s.set(ctx, IntAverage { sum, count })?,
            (AverageState::Decimal(s), Number::Decimal(sum)) => {
                s.set(ctx, DecimalAverage { sum: sum.to_string(), count })?
            }
            (AverageState::Float(s), Number::Float(sum)) => s.set(ctx, (sum, count))?,
            (_, v) => return Err(Error::user(format!("value {v} is not of the aggregate's type"))),
        }
        Ok(())
    }

    /// Every key's average.
    fn for_each(&self, ctx: &mut Context<'_>, mut f: impl FnMut(&[u8], Number)) -> Result<(), Error> {
        match self {
            AverageState::Int(s) => s.for_each(ctx, |k, a| f(k, Number::average(Number::Int(a.sum), a.count)))?,
            AverageState::Decimal(s) => {
                let mut bad = None;
                s.for_each(ctx, |k, a| match decimal_sum(&a.sum) {
                    Ok(d) => f(k, Number::average(Number::Decimal(d), a.count)),
                    Err(e) => bad = Some(e),
                })?;
                if let Some(e) = bad {
                    return Err(e);
                }
            }
            AverageState::Float(s) => s.for_each(ctx, |k, (sum, n)| f(k, Number::average(Number::Float(sum), n)))?,
        }
        Ok(())
    }
}

fn decimal_sum(text: &str) -> Result<Decimal, Error> {
    Decimal::from_str_exact(text)
        .map_err(|e| Error::user(format!("state \"average_decimal\": stored sum {text:?} is not a decimal: {e}")))
}

enum Slots {
    Count(ValueState<i64>),
    Number(NumberState),
    Average(AverageState),
    Distinct { seen: MapState<String, ()>, count: ValueState<i64> },
    Sequence(ValueState<SeqState>),
}

pub struct Aggregate {
    kind: AggregateKind,
    ty: ValueType,
    emit: Emit,
    slots: Slots,
    /// Where a record that would overflow its key's aggregate is reported.
    bad: Arc<BadRecords>,
}

impl Aggregate {
    pub fn open(
        kind: AggregateKind,
        ty: ValueType,
        emit: Emit,
        ttl: Option<TtlPlan>,
        bad: Arc<BadRecords>,
        reg: &mut StateRegistry,
    ) -> Result<Self, Error> {
        let t = ttl.map(|t| t.config);
        let slots = match kind {
            AggregateKind::Count => Slots::Count(reg.value("count", t)?),
            AggregateKind::Sum | AggregateKind::Min | AggregateKind::Max => {
                Slots::Number(NumberState::open(reg, kind.name(), ty, t)?)
            }
            AggregateKind::Average => Slots::Average(AverageState::open(reg, ty, t)?),
            AggregateKind::DistinctCount => {
                Slots::Distinct { seen: reg.map("distinct_seen", t)?, count: reg.value("distinct_count", t)? }
            }
            AggregateKind::Sequence => Slots::Sequence(reg.value("sequence", t)?),
        };
        if let Some(plan) = ttl {
            // Every state the aggregate declared has the TTL; each gets its cleanup.
            let names: Vec<String> = reg.descriptors().iter().map(|d| d.name.clone()).collect();
            for name in names {
                reg.set_ttl_cleanup(&name, plan.cleanup)?;
            }
        }
        Ok(Aggregate { kind, ty, emit, slots, bad })
    }

    fn number(field: &Field) -> Result<Number, Error> {
        match field {
            Field::Num(v) => Ok(*v),
            other => Err(Error::user(format!("a numeric aggregate got a record without a number: {other:?}"))),
        }
    }

    /// Reports a record that cannot be added to its key's aggregate; an error only when
    /// bad records stop the job.
    fn refuse(&self, key: &str, why: String, value: Number) -> Result<(), Error> {
        let source = format!("the {} aggregate", self.kind.name());
        self.bad.report(&source, &format!("key {key:?}"), &why, value.to_string().as_bytes())
    }

    fn overflow(&self, key: &str, sum: Number, value: Number) -> Result<(), Error> {
        let why = format!("the sum leaves the range of type {}: {sum} + {value}", self.ty.name());
        self.refuse(key, why, value)
    }

    /// The next sequence state, or `None` if the record was refused.
    fn sequence(&self, key: &str, st: SeqState, value: Number) -> Result<Option<SeqState>, Error> {
        let Some(v) = (match value {
            Number::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }) else {
            self.refuse(key, "sequence takes whole numbers of at least 0".into(), value)?;
            return Ok(None);
        };
        let Some(sum) = st.sum.checked_add(v) else {
            let why = format!("the sum leaves the range of u64: {} + {v}", st.sum);
            self.refuse(key, why, value)?;
            return Ok(None);
        };
        Ok(Some(SeqState { count: st.count + 1, max: st.max.max(v), sum }))
    }
}

impl KeyedProcessFunction for Aggregate {
    type Key = String;
    type In = Input;
    type Out = Output;

    fn process(
        &mut self,
        key: &String,
        input: Input,
        ctx: &mut Context<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), Error> {
        let updated = match &self.slots {
            Slots::Count(s) => {
                let n = s.get(ctx)?.unwrap_or(0) + 1;
                s.set(ctx, n)?;
                Number::Int(n)
            }
            Slots::Number(s) => {
                let v = Self::number(&input.value)?;
                let next = match (s.get(ctx)?, self.kind) {
                    (None, _) => v,
                    (Some(cur), AggregateKind::Sum) => match cur.checked_add(v) {
                        Some(n) => n,
                        None => return self.overflow(key, cur, v),
                    },
                    (Some(cur), AggregateKind::Min) => cur.min(v),
                    (Some(cur), _) => cur.max(v),
                };
                s.set(ctx, next)?;
                next
            }
            Slots::Average(s) => {
                let v = Self::number(&input.value)?;
                let (sum, n) = match s.get(ctx)? {
                    None => (v, 1),
                    Some((sum, n)) => match sum.checked_add(v) {
                        Some(next) => (next, n + 1),
                        None => return self.overflow(key, sum, v),
                    },
                };
                s.set(ctx, sum, n)?;
                Number::average(sum, n)
            }
            Slots::Distinct { seen, count } => {
                let item = match input.value {
                    Field::Text(t) => t,
                    Field::Num(v) => v.to_string(),
                    Field::None => String::new(),
                };
                let mut n = count.get(ctx)?.unwrap_or(0);
                if !seen.contains(ctx, &item)? {
                    seen.put(ctx, &item, ())?;
                    n += 1;
                    count.set(ctx, n)?;
                }
                Number::Int(n)
            }
            Slots::Sequence(s) => {
                let v = Self::number(&input.value)?;
                let Some(st) = self.sequence(key, s.get(ctx)?.unwrap_or_default(), v)? else {
                    return Ok(());
                };
                s.set(ctx, st)?;
                if self.emit == Emit::Updates {
                    out.push(Output { key: key.clone(), value: Number::Int(st.count as i64), extra: Some(st) });
                }
                return Ok(());
            }
        };
        if self.emit == Emit::Updates {
            out.push(Output { key: key.clone(), value: updated, extra: None });
        }
        Ok(())
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<Output>) -> Result<(), Error> {
        if self.emit != Emit::Final {
            return Ok(());
        }
        let key = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        let mut push = |k: &[u8], value: Number| out.push(Output { key: key(k), value, extra: None });
        match &self.slots {
            Slots::Count(s) | Slots::Distinct { count: s, .. } => s.for_each(ctx, |k, v| push(k, Number::Int(v)))?,
            Slots::Number(s) => s.for_each(ctx, push)?,
            Slots::Average(s) => s.for_each(ctx, push)?,
            Slots::Sequence(s) => s.for_each(ctx, |k, st| {
                out.push(Output { key: key(k), value: Number::Int(st.count as i64), extra: Some(st) })
            })?,
        }
        Ok(())
    }
}
