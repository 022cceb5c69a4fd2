//! `statetool ranges --shards N`: the contiguous key-group range of every shard.
use formats::keygroup::{range_for_shard, KEY_GROUPS_DEFAULT};
use formats::ShardId;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    shards: u32,
    #[arg(long, default_value_t = KEY_GROUPS_DEFAULT)]
    key_groups: u32,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    super::check(a.shards, a.key_groups)?;
    let ranges: Vec<_> =
        (0..a.shards).map(|i| (i, range_for_shard(ShardId(i as u16), a.shards, a.key_groups))).collect();
    if a.json {
        let v: Vec<_> =
            ranges.iter().map(|(i, r)| serde_json::json!({ "shard": i, "start": r.start, "end": r.end })).collect();
        super::out(&format!("{}\n", serde_json::Value::Array(v)));
        return Ok(0);
    }
    let mut t = format!("{:>5}  {:>6}  {:>6}  {:>10}\n", "shard", "start", "end", "key_groups");
    for (i, r) in ranges {
        t.push_str(&format!("{i:>5}  {:>6}  {:>6}  {:>10}\n", r.start, r.end, r.len()));
    }
    super::out(&t);
    Ok(0)
}
