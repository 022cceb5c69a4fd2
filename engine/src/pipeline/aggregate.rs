//! The keyed function of a TOML job: one aggregate per key, kept in keyed state.
use super::plan::{AggregateKind, Emit};
use super::records::{Field, Input};
use crate::error::Error;
use crate::function::KeyedProcessFunction;
use crate::state::{Context, MapState, StateRegistry, ValueState};

/// One result: a key and its aggregate (and, for `sequence`, the largest value and sum).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub key: String,
    pub value: f64,
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

enum Slots {
    Count(ValueState<i64>),
    Number(ValueState<f64>),
    Average(ValueState<(f64, u64)>),
    Distinct { seen: MapState<String, ()>, count: ValueState<i64> },
    Sequence(ValueState<SeqState>),
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
            AggregateKind::Sum | AggregateKind::Min | AggregateKind::Max => {
                Slots::Number(reg.value(kind.name(), None)?)
            }
            AggregateKind::Average => Slots::Average(reg.value("average", None)?),
            AggregateKind::DistinctCount => {
                Slots::Distinct { seen: reg.map("distinct_seen", None)?, count: reg.value("distinct_count", None)? }
            }
            AggregateKind::Sequence => Slots::Sequence(reg.value("sequence", None)?),
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
            Slots::Sequence(s) => {
                let v = Self::number(&input.value) as u64;
                let mut st = s.get(ctx)?.unwrap_or_default();
                st.count += 1;
                st.max = st.max.max(v);
                st.sum += v;
                s.set(ctx, st)?;
                if self.emit == Emit::Updates {
                    out.push(Output { key: key.clone(), value: st.count as f64, extra: Some(st) });
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
        match &self.slots {
            Slots::Count(s) | Slots::Distinct { count: s, .. } => {
                s.for_each(ctx, |k, v| out.push(Output { key: key(k), value: v as f64, extra: None }))?
            }
            Slots::Number(s) => s.for_each(ctx, |k, v| out.push(Output { key: key(k), value: v, extra: None }))?,
            Slots::Average(s) => s.for_each(ctx, |k, (sum, n)| {
                out.push(Output { key: key(k), value: sum / n.max(1) as f64, extra: None })
            })?,
            Slots::Sequence(s) => {
                s.for_each(ctx, |k, st| out.push(Output { key: key(k), value: st.count as f64, extra: Some(st) }))?
            }
        }
        Ok(())
    }
}
