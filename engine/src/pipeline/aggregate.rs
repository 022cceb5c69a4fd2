//! The keyed function of a TOML job: one aggregate per key, kept in keyed state.
use super::records::{Field, Input};
use super::spec::{AggregateKind, Emit};
use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::state::{Context, MapState, StateRegistry, ValueState};

/// One result: a key and its aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub key: String,
    pub value: f64,
}

enum Slots {
    Count(ValueState<i64>),
    Number(ValueState<f64>),
    Average(ValueState<(f64, u64)>),
    Distinct { seen: MapState<String, ()>, count: ValueState<i64> },
}

pub struct Aggregate {
    kind: AggregateKind,
    emit: Emit,
    slots: Slots,
}

impl Aggregate {
    pub fn open(kind: AggregateKind, emit: Emit, reg: &mut StateRegistry) -> Result<Self, Error> {
        let slots = match kind {
            AggregateKind::Count => Slots::Count(reg.value("count", None)?),
            AggregateKind::Sum | AggregateKind::Min | AggregateKind::Max => Slots::Number(reg.value(kind.name(), None)?),
            AggregateKind::Average => Slots::Average(reg.value("average", None)?),
            AggregateKind::DistinctCount => {
                Slots::Distinct { seen: reg.map("distinct_seen", None)?, count: reg.value("distinct_count", None)? }
            }
        };
        Ok(Aggregate { kind, emit, slots })
    }

    fn number(field: &Field) -> f64 {
        match field {
            Field::Num(v) => *v,
            _ => 0.0,
        }
    }
}

impl KeyedProcessFunction for Aggregate {
    type Key = String;
    type In = Input;
    type Out = Output;

    fn process(&mut self, key: &String, input: Input, ctx: &mut Context<'_>, out: &mut Vec<Output>) -> Result<(), Error> {
        let updated = match &self.slots {
            Slots::Count(s) => {
                let n = s.get(ctx)?.unwrap_or(0) + 1;
                s.set(ctx, n)?;
                n as f64
            }
            Slots::Number(s) => {
                let v = Self::number(&input.value);
                let next = match (s.get(ctx)?, self.kind) {
                    (None, _) => v,
                    (Some(cur), AggregateKind::Sum) => cur + v,
                    (Some(cur), AggregateKind::Min) => cur.min(v),
                    (Some(cur), _) => cur.max(v),
                };
                s.set(ctx, next)?;
                next
            }
            Slots::Average(s) => {
                let (sum, n) = s.get(ctx)?.unwrap_or((0.0, 0));
                let next = (sum + Self::number(&input.value), n + 1);
                s.set(ctx, next)?;
                next.0 / next.1 as f64
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
                n as f64
            }
        };
        if self.emit == Emit::Updates {
            out.push(Output { key: key.clone(), value: updated });
        }
        Ok(())
    }

    fn end_of_input(&mut self, ctx: &mut Context<'_>, out: &mut Vec<Output>) -> Result<(), Error> {
        if self.emit != Emit::Final {
            return Ok(());
        }
        let key = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        match &self.slots {
            Slots::Count(s) | Slots::Distinct { count: s, .. } => {
                s.for_each(ctx, |k, v| out.push(Output { key: key(k), value: v as f64 }))?
            }
            Slots::Number(s) => s.for_each(ctx, |k, v| out.push(Output { key: key(k), value: v }))?,
            Slots::Average(s) => {
                s.for_each(ctx, |k, (sum, n)| out.push(Output { key: key(k), value: sum / n.max(1) as f64 }))?
            }
        }
        Ok(())
    }
}
