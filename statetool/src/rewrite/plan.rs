//! What a rewrite (`compact`, `migrate`) makes of its input: the output's shard count,
//! key-group count, form, states (renamed, dropped) and whether expired TTL entries go.
//! Everything here is decided from the input's manifest before a byte is read, so a bad
//! argument fails before any output exists.
use std::collections::{BTreeSet, HashMap};

use anyhow::{bail, ensure};
use formats::keygroup::{validate_key_groups, validate_shards};
use formats::manifest::Manifest;
use formats::value::StateDescriptor;

/// The shape of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A checkpoint (`<to>/chk-<n>/_manifest`, shared files in `<to>/shared/`), its
    /// shards in the input backend's format: a job restores from it as from its own.
    Checkpoint,
    /// A native savepoint: one RocksDB instance per shard.
    Native,
    /// A canonical savepoint: one snapshot file per shard.
    Canonical,
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Form::Checkpoint => "checkpoint",
            Form::Native => "native",
            Form::Canonical => "canonical",
        })
    }
}

/// What the user asked for, before it is checked against the input.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub shards: Option<u32>,
    pub key_groups: Option<u32>,
    pub form: Option<Form>,
    /// `OLD=NEW` pairs.
    pub renames: Vec<String>,
    pub drops: Vec<String>,
    /// Drop TTL entries expired at this instant (ms since the Unix epoch).
    pub purge_at: Option<u64>,
}

/// A request checked against the input manifest.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shards: u32,
    pub key_groups: u32,
    pub form: Form,
    /// The output's states, in input order less the dropped ones.
    pub states: Vec<StateDescriptor>,
    /// Input state name -> index in `states` (None: dropped).
    pub mapping: HashMap<String, Option<usize>>,
    pub purge_at: Option<u64>,
    /// Whether keys move to other key groups (a key-group count change).
    pub rehash: bool,
}

fn parse_rename(s: &str) -> anyhow::Result<(&str, &str)> {
    match s.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => Ok((old, new)),
        _ => bail!("--rename-state {s:?}: expected OLD=NEW"),
    }
}

impl Request {
    /// Checks the request against the input manifest `m`. The default form keeps what
    /// the input is (`default_form`), the defaults for shards and key groups the input's.
    pub fn plan(&self, m: &Manifest, default_form: Form) -> anyhow::Result<Plan> {
        let shards = self.shards.unwrap_or(m.shards.len() as u32);
        let key_groups = self.key_groups.unwrap_or(m.max_key_groups);
        validate_key_groups(key_groups).map_err(|e| anyhow::anyhow!("--key-groups {key_groups}: {e}"))?;
        validate_shards(shards, key_groups).map_err(|e| anyhow::anyhow!("--shards {shards}: {e}"))?;
        let known: BTreeSet<&str> = m.states.iter().map(|d| d.name.as_str()).collect();
        let names = || known.iter().copied().collect::<Vec<_>>().join(", ");
        let mut renamed: HashMap<&str, &str> = HashMap::new();
        for r in &self.renames {
            let (old, new) = parse_rename(r)?;
            ensure!(known.contains(old), "--rename-state {r}: no state {old:?} (states: {})", names());
            ensure!(renamed.insert(old, new).is_none(), "--rename-state: {old:?} renamed twice");
        }
        for d in &self.drops {
            ensure!(known.contains(d.as_str()), "--drop-state {d}: no state {d:?} (states: {})", names());
            ensure!(!renamed.contains_key(d.as_str()), "state {d:?} is both renamed and dropped");
        }
        let mut states = Vec::new();
        let mut mapping = HashMap::new();
        let mut taken = BTreeSet::new();
        for d in &m.states {
            if self.drops.contains(&d.name) {
                mapping.insert(d.name.clone(), None);
                continue;
            }
            let mut out = d.clone();
            if let Some(new) = renamed.get(d.name.as_str()) {
                out.name = (*new).to_owned();
            }
            ensure!(taken.insert(out.name.clone()), "two states would be named {:?} in the output", out.name);
            mapping.insert(d.name.clone(), Some(states.len()));
            states.push(out);
        }
        Ok(Plan {
            shards,
            key_groups,
            form: self.form.unwrap_or(default_form),
            states,
            mapping,
            purge_at: self.purge_at,
            rehash: key_groups != m.max_key_groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use formats::value::{StateKind, ValueEncoding};

    use super::*;

    fn manifest(states: &[&str]) -> Manifest {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "job": "j", "checkpoint": 3, "parent": null, "created_ms": 0, "max_key_groups": 128,
            "backend": "heap", "states": [],
            "shards": ([0, 1].map(|i| serde_json::json!({"shard": i, "range": {"start": i * 64, "end": i * 64 + 64},
                "format": "snapshot", "files": [], "source_position": null}))),
        }))
        .expect("manifest");
        m.states = states
            .iter()
            .map(|n| StateDescriptor {
                name: (*n).into(),
                kind: StateKind::Value,
                value: ValueEncoding::U64,
                user_key: None,
                ttl: None,
            })
            .collect();
        m
    }

    #[test]
    fn renames_and_drops_map_every_input_state() {
        // Pins: a dropped state maps to None, a renamed one keeps its place under its
        // new name, and the output keeps input order.
        let m = manifest(&["a", "b", "c"]);
        let r = Request { renames: vec!["c=z".into()], drops: vec!["a".into()], ..Request::default() };
        let p = r.plan(&m, Form::Canonical).expect("plan");
        assert_eq!(p.states.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["b", "z"]);
        assert_eq!(p.mapping.get("a"), Some(&None));
        assert_eq!(p.mapping.get("c"), Some(&Some(1)));
        assert!(!p.rehash);
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        // Pins: unknown states, collisions, bad shard and key-group counts are refused
        // with the argument named.
        let m = manifest(&["a", "b"]);
        let cases: Vec<(Request, &str)> = vec![
            (Request { drops: vec!["x".into()], ..Request::default() }, "no state \"x\""),
            (Request { renames: vec!["a=b".into()], ..Request::default() }, "two states would be named \"b\""),
            (Request { renames: vec!["a".into()], ..Request::default() }, "expected OLD=NEW"),
            (Request { shards: Some(0), ..Request::default() }, "--shards 0"),
            (Request { key_groups: Some(70000), ..Request::default() }, "--key-groups 70000"),
            (Request { shards: Some(9), key_groups: Some(4), ..Request::default() }, "--shards 9"),
        ];
        for (r, want) in cases {
            let e = r.plan(&m, Form::Canonical).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
}
