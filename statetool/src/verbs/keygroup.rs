//! `statetool key-group KEY...`: the key group of each key and the shard that owns it.
use formats::keygroup::{key_group_of, shard_of, KEY_GROUPS_DEFAULT};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KeyType {
    /// The key's UTF-8 bytes (TOML jobs, `String` keys).
    String,
    /// A `u64` key, 8 bytes little-endian.
    U64,
    /// An `i64` key, 8 bytes little-endian.
    I64,
}

#[derive(clap::Args)]
pub struct Args {
    /// Keys to look up.
    #[arg(required = true)]
    keys: Vec<String>,
    #[arg(long, default_value_t = KEY_GROUPS_DEFAULT)]
    key_groups: u32,
    #[arg(long, default_value_t = 1)]
    shards: u32,
    #[arg(long, value_enum, default_value = "string")]
    key_type: KeyType,
    #[arg(long)]
    json: bool,
}

fn key_bytes(k: &str, t: KeyType) -> anyhow::Result<Vec<u8>> {
    Ok(match t {
        KeyType::String => k.as_bytes().to_vec(),
        KeyType::U64 => {
            k.parse::<u64>().map_err(|e| anyhow::anyhow!("key {k:?} is not a u64: {e}"))?.to_le_bytes().to_vec()
        }
        KeyType::I64 => {
            k.parse::<i64>().map_err(|e| anyhow::anyhow!("key {k:?} is not an i64: {e}"))?.to_le_bytes().to_vec()
        }
    })
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    super::check(a.shards, a.key_groups)?;
    let mut rows = Vec::new();
    for k in &a.keys {
        let kg = key_group_of(&key_bytes(k, a.key_type)?, a.key_groups);
        rows.push((k.clone(), kg.0, shard_of(kg, a.shards, a.key_groups).0));
    }
    if a.json {
        for (k, kg, s) in rows {
            super::out(&format!("{}\n", serde_json::json!({ "key": k, "key_group": kg, "shard": s })));
        }
        return Ok(0);
    }
    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(3);
    let mut t = format!("{:<w$}  {:>9}  {:>5}\n", "key", "key_group", "shard");
    for (k, kg, s) in rows {
        t.push_str(&format!("{k:<w$}  {kg:>9}  {s:>5}\n"));
    }
    super::out(&t);
    Ok(0)
}
