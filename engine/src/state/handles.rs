//! Typed handles for the five state kinds. A handle is created once per shard from the
//! [`StateRegistry`] and used with the per-record [`Context`], which fixes the key.
//!
//! TTL rules (as Flink's `StateTtlConfig` with `NeverReturnExpired`): a value carries its
//! expiry; an expired value reads as absent and is deleted when met; `OnReadAndWrite`
//! pushes the expiry forward on every successful read. List and map TTL is per element
//! and per entry.
use std::marker::PhantomData;

use formats::statekey;
use formats::ttl::{self, TtlConfig, TtlUpdate};
use formats::value::{self, StateKind};

use super::backend::StateId;
use super::codec::{decode_err, StateCodec};
use super::context::{Context, StateRegistry};
use crate::error::StateError;

/// Shared plumbing of all handles: the state id, its name and TTL.
#[derive(Debug, Clone)]
struct Slot {
    id: StateId,
    name: String,
    ttl: Option<TtlConfig>,
}

impl Slot {
    fn register<V: StateCodec>(
        reg: &mut StateRegistry,
        name: &str,
        kind: StateKind,
        user_key: Option<formats::value::ValueEncoding>,
        ttl: Option<TtlConfig>,
    ) -> Result<Self, StateError> {
        let id = reg.register(name, kind, V::encoding(), user_key, ttl)?;
        Ok(Slot { id, name: name.to_owned(), ttl })
    }

    /// Encodes `v` with its TTL header (if any) into `out`.
    fn encode<V: StateCodec>(&self, now_ms: u64, v: &V, out: &mut Vec<u8>) {
        out.clear();
        if let Some(t) = &self.ttl {
            ttl::put_header(out, t.expiry_for(now_ms));
        }
        v.encode(out);
    }

    fn decode<V: StateCodec>(&self, payload: &[u8]) -> Result<V, StateError> {
        V::decode(payload).map_err(|r| decode_err(&self.name, r))
    }

    /// Reads `key` into scratch.val. Returns the payload start, or None when absent or
    /// expired (an expired value is deleted). Applies `OnReadAndWrite`.
    fn read(&self, ctx: &mut Context<'_>, key: &[u8]) -> Result<Option<usize>, StateError> {
        if !ctx.backend.get(self.id, key, &mut ctx.scratch.val)? {
            return Ok(None);
        }
        let Some(t) = &self.ttl else { return Ok(Some(0)) };
        let now = ctx.clock.now_ms();
        let (exp, _) = ttl::split(&ctx.scratch.val)?;
        if ttl::is_expired(exp, now) {
            ctx.backend.delete(self.id, key)?;
            ctx.scratch.count_expired(self.id, 1);
            return Ok(None);
        }
        if t.update == TtlUpdate::OnReadAndWrite {
            ttl::rewrite_header(&mut ctx.scratch.val, t.expiry_for(now))?;
            ctx.backend.put(self.id, key, &ctx.scratch.val)?;
        }
        Ok(Some(ttl::TTL_HEADER_LEN))
    }

    fn get<V: StateCodec>(&self, ctx: &mut Context<'_>) -> Result<Option<V>, StateError> {
        let prefix = ctx.prefix;
        match self.read(ctx, prefix)? {
            Some(at) => self.decode(ctx.scratch.val.get(at..).unwrap_or_default()).map(Some),
            None => Ok(None),
        }
    }

    fn set<V: StateCodec>(&self, ctx: &mut Context<'_>, v: &V) -> Result<(), StateError> {
        let now = if self.ttl.is_some() { ctx.clock.now_ms() } else { 0 };
        self.encode(now, v, &mut ctx.scratch.enc);
        ctx.backend.put(self.id, ctx.prefix, &ctx.scratch.enc)
    }

    fn clear(&self, ctx: &mut Context<'_>) -> Result<(), StateError> {
        ctx.backend.delete(self.id, ctx.prefix)
    }

    /// Visits every live (key bytes, payload) of this state in the shard. Used at end of
    /// input, where the context has no current key.
    fn for_each_raw(&self, ctx: &mut Context<'_>, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StateError> {
        let now = ctx.clock.now_ms();
        let ttl_on = self.ttl.is_some();
        let mut err = None;
        ctx.backend.scan_prefix(self.id, &[], &mut |k, v| {
            let payload = if ttl_on {
                match ttl::split(v) {
                    Ok((exp, _)) if ttl::is_expired(exp, now) => return true,
                    Ok((_, p)) => p,
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                }
            } else {
                v
            };
            match statekey::decode(k) {
                Ok(sk) => f(sk.key, payload),
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            }
            true
        })?;
        err.map_or(Ok(()), |e| Err(e.into()))
    }
}

impl Slot {
    /// Every live (key bytes, decoded value) of this state; the first undecodable value
    /// is the error, after the scan.
    fn for_each_decoded<V: StateCodec>(
        &self,
        ctx: &mut Context<'_>,
        mut f: impl FnMut(&[u8], V),
    ) -> Result<(), StateError> {
        let mut first_err = None;
        self.for_each_raw(ctx, &mut |k, p| match self.decode::<V>(p) {
            Ok(v) => f(k, v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        })?;
        first_err.map_or(Ok(()), Err)
    }
}

/// A single value per key (Flink's `ValueState`).
pub struct ValueState<T> {
    slot: Slot,
    _t: PhantomData<fn() -> T>,
}

impl<T: StateCodec> ValueState<T> {
    pub fn get(&self, ctx: &mut Context<'_>) -> Result<Option<T>, StateError> {
        self.slot.get(ctx)
    }
    pub fn set(&self, ctx: &mut Context<'_>, v: T) -> Result<(), StateError> {
        self.slot.set(ctx, &v)
    }
    pub fn clear(&self, ctx: &mut Context<'_>) -> Result<(), StateError> {
        self.slot.clear(ctx)
    }
    /// Every live (key bytes, value) of this state on this shard.
    pub fn for_each(&self, ctx: &mut Context<'_>, f: impl FnMut(&[u8], T)) -> Result<(), StateError> {
        self.slot.for_each_decoded(ctx, f)
    }
}

/// An ordered list of values per key, appended without reading (Flink's `ListState`).
pub struct ListState<T> {
    slot: Slot,
    _t: PhantomData<fn() -> T>,
}

impl<T: StateCodec> ListState<T> {
    pub fn add(&self, ctx: &mut Context<'_>, v: T) -> Result<(), StateError> {
        self.add_all(ctx, std::iter::once(v))
    }

    pub fn add_all(&self, ctx: &mut Context<'_>, vs: impl IntoIterator<Item = T>) -> Result<(), StateError> {
        let framed = self.frame(ctx, vs);
        ctx.backend.append(self.slot.id, ctx.prefix, &framed)?;
        ctx.scratch.enc = framed;
        Ok(())
    }

    /// Replaces the whole list.
    pub fn update(&self, ctx: &mut Context<'_>, vs: impl IntoIterator<Item = T>) -> Result<(), StateError> {
        let framed = self.frame(ctx, vs);
        if framed.is_empty() {
            ctx.backend.delete(self.slot.id, ctx.prefix)?;
        } else {
            ctx.backend.put(self.slot.id, ctx.prefix, &framed)?;
        }
        ctx.scratch.enc = framed;
        Ok(())
    }

    fn frame(&self, ctx: &mut Context<'_>, vs: impl IntoIterator<Item = T>) -> Vec<u8> {
        let now = if self.slot.ttl.is_some() { ctx.clock.now_ms() } else { 0 };
        let mut framed = std::mem::take(&mut ctx.scratch.enc);
        framed.clear();
        let mut one = Vec::new();
        for v in vs {
            self.slot.encode(now, &v, &mut one);
            value::put_list_element(&mut framed, &one);
        }
        framed
    }

    /// The live elements, oldest first. Expired elements are dropped from storage; with
    /// `OnReadAndWrite` the survivors' expiry is pushed forward.
    pub fn get(&self, ctx: &mut Context<'_>) -> Result<Vec<T>, StateError> {
        if !ctx.backend.get(self.slot.id, ctx.prefix, &mut ctx.scratch.val)? {
            return Ok(Vec::new());
        }
        let Some(t) = self.slot.ttl else {
            return value::list_elements(&ctx.scratch.val).map(|e| self.slot.decode(e?)).collect();
        };
        let now = ctx.clock.now_ms();
        let mut out = Vec::new();
        let mut kept = Vec::new();
        let mut expired = 0;
        for e in value::list_elements(&ctx.scratch.val) {
            let (exp, payload) = ttl::split(e?)?;
            if ttl::is_expired(exp, now) {
                expired += 1;
                continue;
            }
            out.push(self.slot.decode(payload)?);
            let mut el = Vec::with_capacity(ttl::TTL_HEADER_LEN + payload.len());
            let new_exp = if t.update == TtlUpdate::OnReadAndWrite { t.expiry_for(now) } else { exp };
            ttl::put_header(&mut el, new_exp);
            el.extend_from_slice(payload);
            value::put_list_element(&mut kept, &el);
        }
        ctx.scratch.count_expired(self.slot.id, expired);
        if expired > 0 || t.update == TtlUpdate::OnReadAndWrite {
            if kept.is_empty() {
                ctx.backend.delete(self.slot.id, ctx.prefix)?;
            } else {
                ctx.backend.put(self.slot.id, ctx.prefix, &kept)?;
            }
        }
        Ok(out)
    }

    pub fn clear(&self, ctx: &mut Context<'_>) -> Result<(), StateError> {
        self.slot.clear(ctx)
    }
}

/// A map per key (Flink's `MapState`). Entries are separate storage keys, so reading one
/// entry does not read the map.
pub struct MapState<K, V> {
    slot: Slot,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: StateCodec, V: StateCodec> MapState<K, V> {
    fn entry_key(ctx: &mut Context<'_>, uk: &K) -> Vec<u8> {
        let mut key = std::mem::take(&mut ctx.scratch.key);
        key.clear();
        key.extend_from_slice(ctx.prefix);
        uk.encode(&mut key);
        key
    }

    pub fn get(&self, ctx: &mut Context<'_>, uk: &K) -> Result<Option<V>, StateError> {
        let key = Self::entry_key(ctx, uk);
        let r = self.slot.read(ctx, &key);
        ctx.scratch.key = key;
        match r? {
            Some(at) => self.slot.decode(ctx.scratch.val.get(at..).unwrap_or_default()).map(Some),
            None => Ok(None),
        }
    }

    pub fn contains(&self, ctx: &mut Context<'_>, uk: &K) -> Result<bool, StateError> {
        let key = Self::entry_key(ctx, uk);
        let r = self.slot.read(ctx, &key);
        ctx.scratch.key = key;
        Ok(r?.is_some())
    }

    pub fn put(&self, ctx: &mut Context<'_>, uk: &K, v: V) -> Result<(), StateError> {
        let key = Self::entry_key(ctx, uk);
        let now = if self.slot.ttl.is_some() { ctx.clock.now_ms() } else { 0 };
        self.slot.encode(now, &v, &mut ctx.scratch.enc);
        let r = ctx.backend.put(self.slot.id, &key, &ctx.scratch.enc);
        ctx.scratch.key = key;
        r
    }

    pub fn remove(&self, ctx: &mut Context<'_>, uk: &K) -> Result<(), StateError> {
        let key = Self::entry_key(ctx, uk);
        let r = ctx.backend.delete(self.slot.id, &key);
        ctx.scratch.key = key;
        r
    }

    /// The live entries, in the order of their encoded user keys.
    pub fn entries(&self, ctx: &mut Context<'_>) -> Result<Vec<(K, V)>, StateError> {
        let now = ctx.clock.now_ms();
        let prefix_len = ctx.prefix.len();
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        ctx.backend.scan_prefix(self.slot.id, ctx.prefix, &mut |k, v| {
            raw.push((k.to_vec(), v.to_vec()));
            true
        })?;
        let mut out = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let payload = match self.slot.ttl {
                Some(_) => match ttl::split(&v)? {
                    (exp, _) if ttl::is_expired(exp, now) => {
                        ctx.backend.delete(self.slot.id, &k)?;
                        ctx.scratch.count_expired(self.slot.id, 1);
                        continue;
                    }
                    (_, p) => p,
                },
                None => &v[..],
            };
            let uk = self.slot.decode(k.get(prefix_len..).unwrap_or_default())?;
            out.push((uk, self.slot.decode(payload)?));
        }
        if let Some(TtlConfig { update: TtlUpdate::OnReadAndWrite, .. }) = self.slot.ttl {
            for (uk, v) in &out {
                let key = Self::entry_key(ctx, uk);
                self.slot.encode(now, v, &mut ctx.scratch.enc);
                ctx.backend.put(self.slot.id, &key, &ctx.scratch.enc)?;
                ctx.scratch.key = key;
            }
        }
        Ok(out)
    }

    /// Whether the map has no live entry. Stops at the first live entry and decodes
    /// nothing (it reads no value, so it does not refresh a TTL).
    pub fn is_empty(&self, ctx: &mut Context<'_>) -> Result<bool, StateError> {
        let now = if self.slot.ttl.is_some() { ctx.clock.now_ms() } else { 0 };
        let ttl_on = self.slot.ttl.is_some();
        let (mut live, mut err) = (false, None);
        ctx.backend.scan_prefix(self.slot.id, ctx.prefix, &mut |_, v| {
            if ttl_on {
                match ttl::split(v) {
                    Ok((exp, _)) if ttl::is_expired(exp, now) => return true,
                    Ok(_) => {}
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                }
            }
            live = true;
            false
        })?;
        match err {
            Some(e) => Err(e.into()),
            None => Ok(!live),
        }
    }

    pub fn clear(&self, ctx: &mut Context<'_>) -> Result<(), StateError> {
        ctx.backend.delete_prefix(self.slot.id, ctx.prefix)
    }
}

/// One value per key, folded with a reduce function on every add (Flink's `ReducingState`).
pub struct ReducingState<T> {
    slot: Slot,
    reduce: Box<dyn Fn(T, T) -> T>,
}

impl<T: StateCodec> ReducingState<T> {
    pub fn add(&self, ctx: &mut Context<'_>, v: T) -> Result<(), StateError> {
        let next = match self.slot.get::<T>(ctx)? {
            Some(cur) => (self.reduce)(cur, v),
            None => v,
        };
        self.slot.set(ctx, &next)
    }
    pub fn get(&self, ctx: &mut Context<'_>) -> Result<Option<T>, StateError> {
        self.slot.get(ctx)
    }
    pub fn clear(&self, ctx: &mut Context<'_>) -> Result<(), StateError> {
        self.slot.clear(ctx)
    }
    pub fn for_each(&self, ctx: &mut Context<'_>, f: impl FnMut(&[u8], T)) -> Result<(), StateError> {
        self.slot.for_each_decoded(ctx, f)
    }
}

/// Flink's `AggregateFunction`: inputs fold into an accumulator, which yields a result.
pub trait AggregateFunction: 'static {
    type In;
    type Acc: StateCodec;
    type Out;
    fn create(&self) -> Self::Acc;
    fn add(&self, input: Self::In, acc: Self::Acc) -> Self::Acc;
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// One accumulator per key (Flink's `AggregatingState`).
pub struct AggregatingState<A: AggregateFunction> {
    slot: Slot,
    agg: A,
}

impl<A: AggregateFunction> AggregatingState<A> {
    pub fn add(&self, ctx: &mut Context<'_>, input: A::In) -> Result<(), StateError> {
        let acc = self.slot.get::<A::Acc>(ctx)?.unwrap_or_else(|| self.agg.create());
        let acc = self.agg.add(input, acc);
        self.slot.set(ctx, &acc)
    }
    pub fn get(&self, ctx: &mut Context<'_>) -> Result<Option<A::Out>, StateError> {
        Ok(self.slot.get::<A::Acc>(ctx)?.map(|a| self.agg.result(&a)))
    }
    pub fn clear(&self, ctx: &mut Context<'_>) -> Result<(), StateError> {
        self.slot.clear(ctx)
    }
    pub fn for_each(&self, ctx: &mut Context<'_>, mut f: impl FnMut(&[u8], A::Out)) -> Result<(), StateError> {
        self.slot.for_each_decoded(ctx, |k, acc: A::Acc| f(k, self.agg.result(&acc)))
    }
}

impl StateRegistry {
    pub fn value<T: StateCodec>(&mut self, name: &str, ttl: Option<TtlConfig>) -> Result<ValueState<T>, StateError> {
        Ok(ValueState { slot: Slot::register::<T>(self, name, StateKind::Value, None, ttl)?, _t: PhantomData })
    }
    pub fn list<T: StateCodec>(&mut self, name: &str, ttl: Option<TtlConfig>) -> Result<ListState<T>, StateError> {
        Ok(ListState { slot: Slot::register::<T>(self, name, StateKind::List, None, ttl)?, _t: PhantomData })
    }
    pub fn map<K: StateCodec, V: StateCodec>(
        &mut self,
        name: &str,
        ttl: Option<TtlConfig>,
    ) -> Result<MapState<K, V>, StateError> {
        let slot = Slot::register::<V>(self, name, StateKind::Map, Some(K::encoding()), ttl)?;
        Ok(MapState { slot, _t: PhantomData })
    }
    pub fn reducing<T: StateCodec>(
        &mut self,
        name: &str,
        reduce: impl Fn(T, T) -> T + 'static,
        ttl: Option<TtlConfig>,
    ) -> Result<ReducingState<T>, StateError> {
        let slot = Slot::register::<T>(self, name, StateKind::Reducing, None, ttl)?;
        Ok(ReducingState { slot, reduce: Box::new(reduce) })
    }
    pub fn aggregating<A: AggregateFunction>(
        &mut self,
        name: &str,
        agg: A,
        ttl: Option<TtlConfig>,
    ) -> Result<AggregatingState<A>, StateError> {
        let slot = Slot::register::<A::Acc>(self, name, StateKind::Aggregating, None, ttl)?;
        Ok(AggregatingState { slot, agg })
    }
}
